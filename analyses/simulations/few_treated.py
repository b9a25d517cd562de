"""Size and power of every DiD design's default inference with few treated regions (issue 10).

A script, not a test: ``python analyses/simulations/few_treated.py [--reps 200] [--perms 999]``.

Design (as issue 10). 20 regions x 12 years; region effects, year effects, AR(1) errors (rho 0.5)
that are either homoskedastic (sd 1) or heteroskedastic (each region's sd drawn uniformly on
[0.5, 2]). 1, 2, 3, 5 or 8 regions are treated, drawn at random, starting in years 5, 7 and 9
(1-3 treated: one region per start year, i.e. singleton cohorts; 5: cohorts of 2/2/1; 8: 3/3/2).
Size: true effect 0. Power: a constant effect of 1 (about one error sd) from the start year on.

For each replication and method the two-sided 5% test of "no effect" (or of "no pre-trend") is
recorded. Methods: every design's default call (now randomisation inference with few treated
regions) beside the analytic formulas that the peers use (R did / csdid: influence-function SEs;
fixest / Stata: CR1) and the small-sample options (CR2, wild bootstrap with Webb weights).

Writes analyses/simulations/few_treated.csv and prints size and power tables.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import impact as im

N, T, STARTS = 20, 12, (5, 7, 9)
COHORT_SIZES = {1: (1,), 2: (1, 1), 3: (1, 1, 1), 5: (2, 2, 1), 8: (3, 3, 2)}


def simulate(rng: np.random.Generator, n_treated: int, hetero: bool, effect: float) -> pd.DataFrame:
    sd = rng.uniform(0.5, 2.0, N) if hetero else np.ones(N)
    e = np.empty((N, T))
    e[:, 0] = rng.normal(0, 1, N) / np.sqrt(1 - 0.25)
    for t in range(1, T):
        e[:, t] = 0.5 * e[:, t - 1] + rng.normal(0, 1, N)
    e *= sd[:, None]
    start = np.zeros(N, dtype=int)
    treated = rng.permutation(N)[:n_treated]
    pos = 0
    for size, year in zip(COHORT_SIZES[n_treated], STARTS):
        start[treated[pos : pos + size]] = year
        pos += size
    year = np.arange(1, T + 1)
    D = (start[:, None] > 0) & (year[None, :] >= start[:, None])
    y = rng.normal(0, 1, N)[:, None] + 0.3 * year[None, :] + rng.normal(0, 0.5, T)[None, :] + e + effect * D
    return pd.DataFrame({"region": np.repeat(np.arange(N), T), "year": np.tile(year, N), "y": y.ravel(),
                         "cohort": np.repeat(start, T), "D": D.ravel().astype(int)})


def tests(data: pd.DataFrame, perms: int, seed: int) -> dict[str, float]:
    """p-values of every method on one data set."""
    out: dict[str, float] = {}
    common = {"outcome": "y", "unit": "region", "time": "year"}
    ri = im.did.att_gt(data, cohort="cohort", n_permutations=perms, seed=seed, **common)
    an = im.did.att_gt(data, cohort="cohort", inference="analytic", **common)
    for label, res in (("default (randomisation)", ri), ("analytic IF (R did, csdid)", an)):
        dyn = res.aggregate("dynamic")
        out[f"att_gt simple ATT: {label}"] = res.aggregate("simple").p_value
        out[f"att_gt dynamic ATT: {label}"] = dyn.p_value
        out[f"att_gt group ATT: {label}"] = res.aggregate("group").p_value
        out[f"att_gt calendar ATT: {label}"] = res.aggregate("calendar").p_value
        out[f"pretrend_test(att_gt dynamic): {label}"] = im.did.pretrend_test(dyn)["p_value"]
        out[f"att_gt group-time pre-trend test: {label}"] = res.diagnostics["pretrend_wald"]["p_value"]
    for name, fn, analytic in (("event_study", im.did.event_study, {"vcov": "cluster"}),
                               ("sun_abraham", im.did.sun_abraham, {"vcov": "cluster"}),
                               ("imputation", im.did.imputation, {"inference": "analytic"})):
        for label, options in (("default (randomisation)", {"n_permutations": perms, "seed": seed}),
                               (("CR1 (fixest, Stata)" if "vcov" in analytic else "analytic BJS (R didimputation)"), analytic)):
            res = fn(data, cohort="cohort", **options, **common)
            out[f"{name} ATT: {label}"] = res.p_value
            out[f"pretrend_test({name}): {label}"] = im.did.pretrend_test(res)["p_value"] if name != "imputation" else (
                res.diagnostics.get("pretrend_test") or {}).get("p_value")
    out["twfe: default (randomisation)"] = im.did.twfe(data, treatment="D", n_permutations=perms, seed=seed, **common).p_value
    for label, kind in (("CR1 (fixest, Stata)", "cluster"), ("CR2", "CR2"), ("wild, Webb 999", "wild")):
        out[f"twfe: {label}"] = im.did.twfe(data, treatment="D", vcov=kind, n_bootstrap=999, seed=seed, **common).p_value
    return out


def run(reps: int, perms: int, seed: int, configs: list[tuple[int, bool]], effects: list[float],
        out: Path | None = None) -> pd.DataFrame:
    rows = []
    for effect in effects:
        for n_treated, hetero in configs:
            rng = np.random.default_rng([seed, n_treated, int(hetero), int(effect * 10)])
            started = time.perf_counter()
            reject: dict[str, list[bool]] = {}
            for rep in range(reps):
                data = simulate(rng, n_treated, hetero, effect)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for name, p in tests(data, perms, rep).items():
                        if p is None or not np.isfinite(p):
                            continue
                        reject.setdefault(name, []).append(p <= 0.05)
            for name, r in reject.items():
                rate = float(np.mean(r))
                rows.append({"effect": effect, "treated": n_treated, "errors": "heteroskedastic" if hetero else "homoskedastic",
                             "method": name, "replications": len(r), "rejection_rate": rate,
                             "mc_std_error": np.sqrt(rate * (1 - rate) / len(r))})
            print(f"effect {effect}, {n_treated} treated, {'hetero' if hetero else 'homo'}: {reps} reps in "
                  f"{time.perf_counter() - started:.0f}s", flush=True)
            if out is not None:  # keep what is done if a long run is stopped
                pd.DataFrame(rows).to_csv(out, index=False)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--perms", type=int, default=999)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--treated", type=int, nargs="*", default=[1, 2, 3, 5, 8])
    parser.add_argument("--effects", type=float, nargs="*", default=[0.0, 1.0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("few_treated.csv"))
    args = parser.parse_args()
    configs = [(k, h) for h in (False, True) for k in args.treated]
    table = run(args.reps, args.perms, args.seed, configs, args.effects, args.out)
    table.to_csv(args.out, index=False)
    for effect, part in table.groupby("effect"):
        wide = part.pivot_table(index="method", columns=["errors", "treated"], values="rejection_rate")
        print(f"\nRejection rate at 5% ({'size' if effect == 0 else f'power, effect {effect:g}'}):")
        print(wide.to_string(float_format="{:.3f}".format))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
