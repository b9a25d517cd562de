"""Size and power of synthetic-control and synthetic-DiD inference with 1 to 8 treated regions of 20.

A script, not a test: ``nice -n 10 .venv/bin/python analyses/simulations/synth_size.py [--reps 1000]``.

Design. 20 regions x 12 years. ``Y_it = a_i + d_t + l_i f_t + e_it`` with region effects
``a_i ~ N(0, 1)``, a year trend ``d_t`` (random walk with drift), a common factor ``f_t`` (random
walk) with region loadings ``l_i ~ N(0, 0.5^2)``, and AR(1) errors (coefficient 0.5, stationary).
Errors are

* ``homoskedastic``: every region's innovation sd is 1;
* ``heteroskedastic``: each region's sd is drawn from U(0.5, 2) in every replication, independently
  of treatment (region-specific variance, as issue 10 measures);
* ``treated noisier`` (stress test, ``--stress``): treated regions have sd 2, the others 1; no test
  can be exact here with one treated region, the row shows how far each method drifts.

The treated regions are drawn at random. ``block``: all start in year 8 (7 pre-, 5 post-years);
``staggered``: start years cycle through 6, 8, 10 (singleton cohorts with 3 treated). Size: true effect
0; power: the same draws with a constant effect ``--effect`` (default 1.5, about one error sd) added
to every treated cell. Rejection of H0: effect = 0 at 5% (``p <= 0.05`` for permutation p-values,
whose smallest value with one treated region of 20 is exactly 1/20).

Methods:

* ``synthetic_control`` default (one treated region only): in-space placebo permutation of the
  post/pre RMSPE ratio (Abadie, Diamond & Hainmueller 2010);
* ``sdid`` default (``se_method="permutation"``): randomisation inference over assignments of the
  adoption pattern, statistic ``|tau| / pre-period RMSPE`` (Fisher; studentised as ADH's ratio);
* ``sdid`` permutation of the raw ``|tau|`` (the same draws, unstudentised);
* ``sdid`` placebo, jackknife and bootstrap variances with normal intervals (Arkhangelsky et al.
  2021, Algorithms 2-4; Clarke et al. 2023): what synthdid and Stata sdid report;
* ``sdid(estimator="sc")`` and ``sdid(estimator="did")`` defaults (permutation).

The bootstrap re-estimates weights per draw (about 1 s per fit), so it runs on the first
``--bootstrap-reps`` replications (default 100) of block designs, size only, with 50 draws each. Power
is measured on the first ``--power-reps`` replications (default 300). The permutation tests use
``--permutations`` random assignments (default 100; every assignment when there are fewer), the
placebo SE 100 draws: a permutation p-value is exact for any number of draws, more draws only
smooth it (the package default is 1,000).

Writes analyses/simulations/synth_size.csv and prints the table (rejection rate, Monte Carlo SE).

References
----------
Abadie, A., Diamond, A. & Hainmueller, J. (2010). JASA 105(490), 493-505. https://doi.org/10.1198/jasa.2009.ap08746
Arkhangelsky, D., Athey, S., Hirshberg, D., Imbens, G. & Wager, S. (2021). AER 111(12), 4088-4118. https://doi.org/10.1257/aer.20190159
Clarke, D., Pailanir, D., Athey, S. & Imbens, G. (2023). IZA DP 16437. https://doi.org/10.2139/ssrn.4436443
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import impact as im

N_UNITS, N_YEARS, START, STAGGERED_STARTS = 20, 12, 8, (6, 8, 10)
ERRORS = ("homoskedastic", "heteroskedastic")
# Most informative first (a stopped run keeps the cells already done).
CONFIGS = [(1, "block"), (3, "staggered"), (8, "block"), (2, "block"), (3, "block"), (5, "block"), (8, "staggered"),
           (5, "staggered")]


def simulate(rng: np.random.Generator, n_treated: int, adoption: str, errors: str) -> tuple[pd.DataFrame, np.ndarray]:
    """One panel with a zero effect; returns the long frame and the treatment matrix (units x years)."""
    treated = rng.choice(N_UNITS, n_treated, replace=False)
    if errors == "homoskedastic":
        sd = np.ones(N_UNITS)
    elif errors == "heteroskedastic":
        sd = rng.uniform(0.5, 2.0, N_UNITS)
    else:  # treated noisier (stress)
        sd = np.where(np.isin(np.arange(N_UNITS), treated), 2.0, 1.0)
    e = np.empty((N_UNITS, N_YEARS))
    e[:, 0] = rng.normal(0, 1, N_UNITS) / np.sqrt(1 - 0.25)
    for t in range(1, N_YEARS):
        e[:, t] = 0.5 * e[:, t - 1] + rng.normal(0, 1, N_UNITS)
    y = (rng.normal(0, 1, N_UNITS)[:, None] + np.cumsum(rng.normal(0.2, 0.5, N_YEARS))[None, :]
         + rng.normal(0, 0.5, N_UNITS)[:, None] * np.cumsum(rng.normal(0, 1, N_YEARS))[None, :] + sd[:, None] * e)
    starts = np.full(N_UNITS, N_YEARS + 1)
    if adoption == "block":
        starts[treated] = START
    else:
        starts[treated] = [STAGGERED_STARTS[i % len(STAGGERED_STARTS)] for i in range(n_treated)]
    years = np.arange(1, N_YEARS + 1)
    D = (years[None, :] >= starts[:, None]).astype(int)
    frame = pd.DataFrame({"unit": np.repeat(np.arange(N_UNITS), N_YEARS), "year": np.tile(years, N_UNITS),
                          "y": y.ravel(), "treated": D.ravel()})
    return frame, D


def _sdid(frame: pd.DataFrame, **options) -> im.synth.SyntheticDiDResult:
    return im.synth.sdid(frame, outcome="y", unit="unit", time="year", treatment="treated", **options)


def methods(n_treated: int, adoption: str, permutations: int, with_bootstrap: bool, other_estimators: bool = True) -> dict:
    """Method name -> function(frame, D, seed) -> p-value (or a dict of p-values from one fit)."""
    out = {}
    if n_treated == 1:
        def sc(frame, D, seed):
            unit = int(np.flatnonzero(D.max(axis=1))[0])
            return im.synth.synthetic_control(frame, outcome="y", unit="unit", time="year", treated_unit=unit,
                                              treatment_time=START).p_value
        out["synthetic_control default (placebo permutation, RMSPE ratio)"] = sc

    def permutation(frame, D, seed):
        res = _sdid(frame, n_replications=permutations, seed=seed)
        raw = np.abs(res.replicates)
        return {"sdid default (permutation, |tau|/pre-RMSPE)": res.p_value,
                "sdid permutation, raw |tau|": float(np.mean(raw >= raw[0] - 1e-12 * raw[0]))}
    out["sdid permutation"] = permutation
    out["sdid placebo SE, normal CI"] = lambda f, D, s: _sdid(f, se_method="placebo", n_replications=100, seed=s).p_value
    if n_treated >= 2 and other_estimators:
        out["sdid jackknife SE, normal CI"] = lambda f, D, s: _sdid(f, se_method="jackknife").p_value
        if with_bootstrap:
            out["sdid bootstrap SE (50), normal CI"] = lambda f, D, s: _sdid(f, se_method="bootstrap", n_replications=50, seed=s).p_value
    if other_estimators:
        out["sdid(estimator='sc') default (permutation)"] = lambda f, D, s: _sdid(f, estimator="sc", n_replications=permutations, seed=s).p_value
        out["sdid(estimator='did') default (permutation)"] = lambda f, D, s: _sdid(f, estimator="did", n_replications=permutations, seed=s).p_value
    return out


def run(reps: int, seed: int, effect: float, permutations: int, bootstrap_reps: int, power_reps: int,
        errors: tuple[str, ...], configs: list[tuple[int, str]], out: Path | None = None,
        other_estimators: bool = True) -> pd.DataFrame:
    rows = []
    for kind in errors:
        for n_treated, adoption in configs:
            rng = np.random.default_rng([seed, n_treated, len(adoption), ERRORS.index(kind) if kind in ERRORS else 9])
            counts: dict[tuple[str, str], list[int]] = {}
            started = time.perf_counter()
            for rep in range(reps):
                frame, D = simulate(rng, n_treated, adoption, kind)
                shifted = frame.assign(y=frame["y"] + effect * frame["treated"])
                table = methods(n_treated, adoption, permutations, with_bootstrap=rep < bootstrap_reps and adoption == "block",
                                other_estimators=other_estimators)
                targets = (("size", frame), ("power", shifted)) if rep < power_reps else (("size", frame),)
                for name, fit in table.items():
                    for target, data in targets:
                        if target == "power" and "bootstrap" in name:
                            continue
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            p = fit(data, D, rep)
                        for label, value in (p.items() if isinstance(p, dict) else [(name, p)]):
                            counts.setdefault((label, target), []).append(bool(value <= 0.05))
            elapsed = time.perf_counter() - started
            for (label, target), hits in counts.items():
                rate = float(np.mean(hits))
                rows.append({"errors": kind, "adoption": adoption, "treated": n_treated, "units": N_UNITS,
                             "method": label, "quantity": target, "replications": len(hits),
                             "rejection_rate": rate, "mc_std_error": float(np.sqrt(rate * (1 - rate) / len(hits)))})
            print(f"{kind}, {n_treated} treated ({adoption}): {reps} replications in {elapsed:.0f}s", flush=True)
            if out is not None:  # keep what is done if the run is stopped
                pd.DataFrame(rows).to_csv(out, index=False)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--effect", type=float, default=1.5)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--bootstrap-reps", type=int, default=100, help="replications with the bootstrap (block designs, size only)")
    parser.add_argument("--power-reps", type=int, default=300, help="replications (the first ones) that also measure power")
    parser.add_argument("--errors", choices=[*ERRORS, "treated noisier"], action="append",
                        help="error designs to run (default: homoskedastic and heteroskedastic)")
    parser.add_argument("--stress", action="store_true", help="add the 'treated noisier' error design")
    parser.add_argument("--no-other-estimators", action="store_true",
                        help="only the defaults and the placebo SE (skip jackknife, bootstrap, sdid(estimator='sc'/'did'))")
    parser.add_argument("--treated", type=int, action="append", help="only these numbers of treated units")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("synth_size.csv"))
    args = parser.parse_args()
    errors = tuple(args.errors or ERRORS) + (("treated noisier",) if args.stress else ())
    configs = [c for c in CONFIGS if args.treated is None or c[0] in args.treated]
    table = run(args.reps, args.seed, args.effect, args.permutations, args.bootstrap_reps, args.power_reps, errors,
                configs, args.out, other_estimators=not args.no_other_estimators)
    for quantity in ("size", "power"):
        wide = table.loc[table["quantity"] == quantity].pivot_table(
            index=["errors", "method"], columns=["adoption", "treated"], values="rejection_rate")
        print(f"\nRejection rate at 5% ({quantity}; true effect {'0' if quantity == 'size' else args.effect}):")
        print(wide.to_string(float_format="{:.3f}".format))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
