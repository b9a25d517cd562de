"""Size of TWFE inference with few clusters: analytic CR1, CR2 and the wild cluster bootstrap (Webb).

A script, not a test: ``PYTHONPATH=src python analyses/simulations/few_clusters.py [--reps 1000]``.

Design (true effect zero). 20 regions (the clusters), 10 firms per region, 10 years; treatment switches
on in year 6 in 3 (or 8) regions. The outcome is a firm effect, a year effect, a region-by-year shock
that follows an AR(1) with coefficient 0.5 (so errors are correlated within region across years, the
reason to cluster), and firm noise; treated regions have twice the shock standard deviation of the
others, the heteroskedasticity that makes few-treated-cluster inference hard (MacKinnon & Webb 2017).
For each replication ``im.did.twfe`` is fitted with vcov="cluster" (CR1, Stata factor, t(G-1)),
vcov="CR2" (Bell-McCaffrey with Satterthwaite df) and vcov="wild" (restricted wild cluster bootstrap,
Webb weights, 999 draws), clustered by region, and, when ``im.did.att_gt`` is available, the
Callaway-Sant'Anna simple ATT with its multiplier bootstrap clustered by region; the table reports the share of replications rejecting
H0: effect = 0 at the 5% level, with its Monte Carlo standard error.

Writes analyses/simulations/few_clusters.csv and prints the table.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import impact as im

N_REGIONS, FIRMS, YEARS, START = 20, 10, 10, 6
METHODS = {"CR1 (analytic, t(G-1))": "cluster", "CR2 (Bell-McCaffrey, Satterthwaite)": "CR2",
           "wild bootstrap (Webb, 999)": "wild"}


def simulate(rng: np.random.Generator, n_treated: int) -> pd.DataFrame:
    region = np.repeat(np.arange(N_REGIONS), FIRMS)
    treated_regions = rng.choice(N_REGIONS, n_treated, replace=False)
    shock_sd = np.where(np.isin(np.arange(N_REGIONS), treated_regions), 2.0, 1.0)
    shocks = np.empty((N_REGIONS, YEARS))
    shocks[:, 0] = rng.normal(0, 1, N_REGIONS) / np.sqrt(1 - 0.25)
    for t in range(1, YEARS):
        shocks[:, t] = 0.5 * shocks[:, t - 1] + rng.normal(0, 1, N_REGIONS)
    shocks *= shock_sd[:, None]
    firm = np.repeat(np.arange(N_REGIONS * FIRMS), YEARS)
    year = np.tile(np.arange(1, YEARS + 1), N_REGIONS * FIRMS)
    reg = region[firm]
    y = (rng.normal(0, 1, N_REGIONS * FIRMS)[firm] + 0.2 * year + shocks[reg, year - 1]
         + rng.normal(0, 1, len(firm)))
    treated_region = np.isin(reg, treated_regions)
    treat = (treated_region & (year >= START)).astype(int)
    cohort = np.where(treated_region, START, 0)
    return pd.DataFrame({"firm": firm, "region": reg, "year": year, "y": y, "treat": treat, "cohort": cohort})


def _fit(data: pd.DataFrame, kind: str, rep: int):
    if kind == "att_gt":  # Callaway-Sant'Anna with the multiplier bootstrap clustered by region
        res = im.did.att_gt(data, outcome="y", unit="firm", time="year", cohort="cohort", cluster="region",
                            bootstrap=999, seed=rep).aggregate(kind="simple")
    else:
        res = im.did.twfe(data, outcome="y", treatment="treat", unit="firm", time="year", cluster="region",
                          vcov=kind, n_bootstrap=999, bootstrap_weights="webb", seed=rep)
    return res


def run(reps: int, seed: int) -> pd.DataFrame:
    methods = dict(METHODS)
    if hasattr(im.did, "att_gt"):  # once att_gt is on main
        methods["att_gt multiplier bootstrap (999, by region)"] = "att_gt"
    rows = []
    for n_treated in (3, 8):
        rng = np.random.default_rng([seed, n_treated])
        rejections = {name: 0 for name in methods}
        started = time.perf_counter()
        for rep in range(reps):
            data = simulate(rng, n_treated)
            for name, kind in methods.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = _fit(data, kind, rep)
                rejections[name] += res.p_value < 0.05
        elapsed = time.perf_counter() - started
        for name in methods:
            rate = rejections[name] / reps
            rows.append({"treated_clusters": n_treated, "clusters": N_REGIONS, "method": name, "replications": reps,
                         "rejection_rate": rate, "mc_std_error": np.sqrt(rate * (1 - rate) / reps),
                         "seconds_per_scenario": round(elapsed, 1)})
        print(f"{n_treated} treated clusters: {reps} replications in {elapsed:.0f}s", flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("few_clusters.csv"))
    args = parser.parse_args()
    table = run(args.reps, args.seed)
    print(table.pivot(index="method", columns="treated_clusters", values="rejection_rate").to_string(float_format="{:.3f}".format))
    table.to_csv(args.out, index=False)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
