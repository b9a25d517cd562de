"""Size of att_gt(panel=False) inference when treatment is assigned to few regions.

A script, not a test: ``PYTHONPATH=src python analyses/simulations/rcs_few_treated.py [--reps 400]``.

Design (true effect zero). Repeated cross-sections: 20 regions, 6 periods, 50 fresh observations per
region and period; 4 regions treated (2 from period 3, 2 from period 4, drawn at random); the outcome is
a region effect, a common trend, a region-by-period shock (sd 0.3: the reason to cluster by region)
and noise. For each replication ``im.did.att_gt(panel=False, cluster="region")`` is fitted with its
default inference (randomisation inference permuting start years across the 20 regions; 999 random
draws of the 29,070 assignments here to keep the script fast, the default is 9,999; seeded apart from
the data's seed, so the draws are independent of the observed assignment), with
``inference="analytic"`` (influence-function SEs summed within regions) and with the multiplier
bootstrap by region with Webb weights (499 draws); the table reports the share of replications whose
95% interval for the dynamic ATT excludes zero, with its Monte Carlo standard error. Prints the table.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

import impact as im


def draw(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    regions, periods, per_cell = 20, 6, 50
    cohort = np.zeros(regions)
    cohort[:2], cohort[2:4] = 3, 4
    rng.shuffle(cohort)
    region = np.repeat(np.arange(regions), periods * per_cell)
    t = np.tile(np.repeat(np.arange(1, periods + 1), per_cell), regions)
    shock = rng.normal(0, 0.3, (regions, periods))[region, t - 1]
    y = rng.normal(size=regions)[region] + 0.2 * t + shock + rng.normal(size=len(region))
    return pd.DataFrame({"y": y, "t": t, "g": cohort[region], "region": region})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=400)
    reps = parser.parse_args().reps
    warnings.simplefilter("ignore")
    rejections = {"randomisation over regions (default)": 0, "analytic, clustered by region": 0,
                  "multiplier bootstrap by region, Webb": 0}
    for seed in range(reps):
        df = draw(seed)
        kw = {"outcome": "y", "time": "t", "cohort": "g", "panel": False, "cluster": "region"}
        for (name, options) in zip(rejections, ({"n_permutations": 999, "seed": 10**6 + seed}, {"inference": "analytic"},
                                                {"bootstrap": 499, "bootstrap_weights": "webb", "seed": seed})):
            row = im.did.att_gt(df, **kw, **options).aggregate("dynamic").tidy().iloc[0]
            rejections[name] += not (row["conf_low"] <= 0 <= row["conf_high"])
    for name, count in rejections.items():
        share = count / reps
        print(f"{name:45s} rejects {share:.3f} (MC se {np.sqrt(share * (1 - share) / reps):.3f}) of {reps}")


if __name__ == "__main__":
    main()
