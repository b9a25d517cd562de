"""Size and power of synthetic-control and synthetic-DiD inference with 1 to 8 treated regions of 20.

A script, not a test: ``nice -n 19 .venv/bin/python analyses/simulations/synth_size.py`` writes the committed
``synth_size.csv`` (about 70 minutes on a shared, loaded 2-core machine, and 15 more for the ``pretrend``
group); ``synth_size_stress.csv`` is ``--groups default --errors "treated noisier" --reps 200
--treated 1 --treated 3 --treated 8 --out ...``; ``--markdown`` prints the README tables from the CSV.

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

Methods, in three groups run one after the other (a stopped run keeps the groups already done; every
group sees the same panels, replication by replication):

* defaults, ``--reps`` replications (1,000): what ``tidy()`` shows without options.
  ``synthetic_control`` (one treated region only; it takes one ``treated_unit``): in-space placebo
  permutation of the post/pre RMSPE ratio (Abadie, Diamond & Hainmueller 2010), the ``ATT`` row and
  the per-period rows ``t=``. ``sdid`` (``se_method="permutation"``): randomisation inference over
  assignments of the adoption pattern, statistic ``|tau| / s``, ``s^2`` the treated units' mean
  squared pre-period gap to the weighted controls over their number (Fisher; studentised as ADH's
  ratio; ``sdid_statistic.py`` compares the candidate statistics), the ``ATT`` row and, with
  staggered adoption, the cohort rows ``g=``. The unstudentised permutation of ``|tau|`` comes from the same fits (not a default);
* options, ``--option-reps`` replications (200): ``sdid`` placebo and jackknife variances with
  normal intervals (Arkhangelsky et al. 2021, Algorithms 3-4; Clarke et al. 2023: what synthdid and
  Stata sdid report), and the defaults of ``sdid(estimator="sc")`` and ``sdid(estimator="did")``;
* the unit bootstrap (Algorithm 2, weights re-estimated in each of 50 draws), ``--bootstrap-reps``
  replications (100) of the block designs with 2+ treated regions.

Every replication measures size (true effect 0), power (effect ``--effect`` on the same draws) and
whether the interval misses the true effect in the power panel (the interval's non-coverage). Rows
of one replication (periods, cohorts) are pooled; their Monte Carlo s.e. counts replications, not
rows. The permutation tests use ``--permutations`` random assignments (default 100; every assignment
when there are fewer, e.g. the 20 with one treated region), the placebo SE 100 draws: a permutation
p-value is exact for any number of draws, more draws only smooth it and add a little power (the
package default is 1,000). ``pretrend_test`` on these designs (which have no event-time leads) is an
in-time placebo: the estimator refitted on the years before the (earliest) start as if it had started
half-way through them, with the design's default test; the ``pretrend`` group measures its size on the
same panels with ``--reps`` replications (an effect after the start cannot change it).

Writes analyses/simulations/synth_size.csv and prints the tables and the default cells outside [3%, 7%].

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


ALPHA = 0.05
# Passes, most important first: a run stopped early keeps the defaults at full size.
PASSES = ("default", "option", "bootstrap", "pretrend")


def _sdid(frame: pd.DataFrame, **options) -> im.synth.SyntheticDiDResult:
    return im.synth.sdid(frame, outcome="y", unit="unit", time="year", treatment="treated", **options)


def _rows(result, terms: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p-values and interval bounds of the headline ATT row (``terms=None``) or of the rows whose term
    starts with ``terms`` ("g=": SDID cohorts, "t=": synthetic-control periods), as tidy() shows them."""
    table = result.tidy()
    keep = table["term"] == "ATT" if terms is None else table["term"].str.startswith(terms)
    rows = table.loc[keep]
    return tuple(rows[c].to_numpy(dtype=float) for c in ("p_value", "conf_low", "conf_high"))


NO_INTERVAL = (np.array([np.nan]), np.array([np.nan]))


def methods(n_treated: int, adoption: str, group: str, permutations: int) -> dict:
    """Method name -> function(frame, D, seed) -> {label: (p-values, interval lows, interval highs)}.

    ``group``: "default" (what tidy() shows without options: ``synthetic_control`` with one treated
    region, ``sdid``), "option" (the other variances and estimators) or "bootstrap"."""
    out = {}
    if group == "default":
        if n_treated == 1:
            def sc(frame, D, seed):
                unit = int(np.flatnonzero(D.max(axis=1))[0])
                res = im.synth.synthetic_control(frame, outcome="y", unit="unit", time="year", treated_unit=unit,
                                                 treatment_time=START)
                return {"synthetic_control default (placebo permutation, RMSPE ratio)": _rows(res),
                        "synthetic_control default, period rows t=": _rows(res, "t=")}
            out["synthetic_control"] = sc

        def permutation(frame, D, seed):
            res = _sdid(frame, n_replications=permutations, seed=seed)
            raw = np.abs(res.replicates)
            found = {"sdid default (permutation, |tau|/pre-fit scale)": _rows(res),
                     "sdid permutation, raw |tau|": (np.array([np.mean(raw >= raw[0] - 1e-12 * raw[0])]), *NO_INTERVAL)}
            if adoption == "staggered":
                found["sdid default, cohort rows g="] = _rows(res, "g=")
            return found
        out["sdid permutation"] = permutation
    elif group == "option":
        out["sdid placebo SE, normal CI"] = lambda f, D, s: {"sdid placebo SE, normal CI": _rows(_sdid(f, se_method="placebo", n_replications=100, seed=s))}
        if n_treated >= 2:
            out["sdid jackknife SE, normal CI"] = lambda f, D, s: {"sdid jackknife SE, normal CI": _rows(_sdid(f, se_method="jackknife"))}
        out["sdid(estimator='sc') default (permutation)"] = lambda f, D, s: {
            "sdid(estimator='sc') default (permutation)": _rows(_sdid(f, estimator="sc", n_replications=permutations, seed=s))}
        out["sdid(estimator='did') default (permutation)"] = lambda f, D, s: {
            "sdid(estimator='did') default (permutation)": _rows(_sdid(f, estimator="did", n_replications=permutations, seed=s))}
    elif group == "pretrend":  # pretrend_test: in-time placebos on the years before the (earliest) start
        if n_treated == 1:
            def sc_pretrend(frame, D, seed):
                unit = int(np.flatnonzero(D.max(axis=1))[0])
                res = im.synth.synthetic_control(frame, outcome="y", unit="unit", time="year", treated_unit=unit,
                                                 treatment_time=START)
                return {"synthetic_control pretrend_test (in-time placebo)": (np.array([res.pretrend_test()["p_value"]]), *NO_INTERVAL)}
            out["synthetic_control pretrend_test"] = sc_pretrend
        out["sdid pretrend_test"] = lambda f, D, s: {"sdid pretrend_test (in-time placebo)": (
            np.array([_sdid(f, n_replications=permutations, seed=s).pretrend_test()["p_value"]]), *NO_INTERVAL)}
    elif n_treated >= 2 and adoption == "block":
        out["sdid bootstrap SE (50), normal CI"] = lambda f, D, s: {
            "sdid bootstrap SE (50), normal CI": _rows(_sdid(f, se_method="bootstrap", n_replications=50, seed=s))}
    return out


def run_cell(group: str, reps: int, seed: int, effect: float | None, permutations: int, n_treated: int, adoption: str,
             errors: str) -> tuple[list[dict], float]:
    """One configuration, one group of methods: rejection rates over ``reps`` replications (size; with
    ``effect``, also power and how often the interval misses the true effect, on the same draws).
    The draws depend on the configuration and the replication only, so every group sees the same panels."""
    rng = np.random.default_rng([seed, n_treated, len(adoption), ERRORS.index(errors) if errors in ERRORS else 9])
    table = methods(n_treated, adoption, group, permutations)
    if not table:
        return [], 0.0
    counts: dict[tuple[str, str], list[np.ndarray]] = {}
    started = time.perf_counter()
    for rep in range(reps):
        frame, D = simulate(rng, n_treated, adoption, errors)
        targets = [("size", frame, 0.0)]
        if effect is not None:
            targets.append(("power", frame.assign(y=frame["y"] + effect * frame["treated"]), effect))
        for fit in table.values():
            for target, data, truth in targets:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    found = fit(data, D, rep)
                for label, (p, low, high) in found.items():
                    counts.setdefault((label, target), []).append(p <= ALPHA)
                    if target == "power" and not np.isnan(low).any():  # an unbounded interval covers
                        counts.setdefault((label, "interval misses the true effect"), []).append(~((low <= truth) & (truth <= high)))
    elapsed = time.perf_counter() - started
    rows = []
    for (label, target), hits in counts.items():
        flat = np.concatenate(hits)
        rate = float(np.mean(flat))
        rows.append({"errors": errors, "adoption": adoption, "treated": n_treated, "units": N_UNITS, "method": label,
                     "default": group in ("default", "pretrend") and "raw" not in label, "quantity": target,
                     "true_effect": 0.0 if target == "size" else effect, "replications": len(hits), "tests": flat.size,
                     # rows of one replication (periods, cohorts) are correlated: the s.e. counts replications
                     "rejection_rate": rate, "mc_std_error": float(np.sqrt(rate * (1 - rate) / len(hits)))})
    return rows, elapsed


def run(reps: dict[str, int], seed: int, effect: float, permutations: int, errors: tuple[str, ...],
        configs: list[tuple[int, str]], out: Path | None = None, groups: tuple[str, ...] = PASSES) -> pd.DataFrame:
    """Every group in turn over every configuration; ``reps`` maps a group to its replications."""
    rows: list[dict] = []
    for group in groups:
        for kind in errors:
            for n_treated, adoption in configs:
                # a pre-trend test sees only years before the start: an effect after it changes nothing
                found, elapsed = run_cell(group, reps[group], seed, None if group == "pretrend" else effect,
                                          permutations, n_treated, adoption, kind)
                if not found:
                    continue
                rows += found
                print(f"{group}: {kind}, {n_treated} treated ({adoption}): {reps[group]} replications in {elapsed:.0f}s", flush=True)
                if out is not None:  # keep what is done if the run is stopped
                    pd.DataFrame(rows).to_csv(out, index=False)
    return pd.DataFrame(rows)


ROW_ORDER = (
    ("synthetic_control default (placebo permutation, RMSPE ratio)", "`synthetic_control` ATT — **default** (placebo permutation)"),
    ("synthetic_control default, period rows t=", "`synthetic_control` period rows `t=` — **default**"),
    ("sdid default (permutation, |tau|/pre-fit scale)", "`sdid` ATT — **default** (randomisation, studentised)"),
    ("sdid default, cohort rows g=", "`sdid` cohort rows `g=` — **default**"),
    ("sdid permutation, raw |tau|", "`sdid` randomisation of raw \\|tau\\|"),
    ("sdid placebo SE, normal CI", "`sdid` placebo SE (synthdid/Stata with 1 treated)"),
    ("sdid jackknife SE, normal CI", "`sdid` jackknife SE"),
    ("sdid bootstrap SE (50), normal CI", "`sdid` bootstrap SE (50 draws)"),
    ("sdid(estimator='sc') default (permutation)", "`sdid(estimator=\"sc\")` — its default (randomisation)"),
    ("sdid(estimator='did') default (permutation)", "`sdid(estimator=\"did\")` — its default (randomisation)"),
    ("synthetic_control pretrend_test (in-time placebo)", "`pretrend_test(synthetic_control)` — in-time placebo"),
    ("sdid pretrend_test (in-time placebo)", "`pretrend_test(sdid)` — in-time placebo"),
)


def markdown(table: pd.DataFrame, quantity: str) -> str:
    """The README table of one quantity: a row per method, a column per configuration, each cell
    'homoskedastic / heteroskedastic'."""
    configs = sorted({(a, t) for a, t in zip(table["adoption"], table["treated"])}, key=lambda c: (c[0] != "block", c[1]))
    head = ["method"] + [f"{t} {a}" for a, t in configs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    part = table.loc[table["quantity"] == quantity]
    for method, label in ROW_ORDER:
        rows = part.loc[part["method"] == method]
        if rows.empty:
            continue
        cells = []
        for adoption, treated in configs:
            pair = [rows.loc[(rows["adoption"] == adoption) & (rows["treated"] == treated) & (rows["errors"] == e), "rejection_rate"]
                    for e in ERRORS]
            cells.append(" / ".join(f"{v.iloc[0]:.3f}" if len(v) else "–" for v in pair) if any(len(v) for v in pair) else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="replications of the defaults (size and power)")
    parser.add_argument("--option-reps", type=int, default=200, help="replications of the non-default options")
    parser.add_argument("--bootstrap-reps", type=int, default=100, help="replications with the bootstrap (block designs)")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--effect", type=float, default=1.5)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--errors", choices=[*ERRORS, "treated noisier"], action="append",
                        help="error designs to run (default: homoskedastic and heteroskedastic)")
    parser.add_argument("--stress", action="store_true", help="add the 'treated noisier' error design")
    parser.add_argument("--groups", choices=PASSES, action="append", help="groups of methods to run (default: all, in turn)")
    parser.add_argument("--treated", type=int, action="append", help="only these numbers of treated units")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("synth_size.csv"))
    parser.add_argument("--markdown", action="store_true", help="print the README tables from the CSV and stop")
    args = parser.parse_args()
    if args.markdown:
        table = pd.read_csv(args.out)
        for quantity in ("size", "power", "interval misses the true effect"):
            print(f"\n{quantity}\n\n{markdown(table, quantity)}")
        return
    errors = tuple(args.errors or ERRORS) + (("treated noisier",) if args.stress else ())
    configs = [c for c in CONFIGS if args.treated is None or c[0] in args.treated]
    reps = {"default": args.reps, "option": args.option_reps, "bootstrap": args.bootstrap_reps, "pretrend": args.reps}
    groups = tuple(g for g in PASSES if args.groups is None or g in args.groups)
    table = run(reps, args.seed, args.effect, args.permutations, errors, configs, args.out, groups)
    for quantity in ("size", "power", "interval misses the true effect"):
        wide = table.loc[table["quantity"] == quantity].pivot_table(
            index=["errors", "method"], columns=["adoption", "treated"], values="rejection_rate")
        print(f"\n{quantity} (rejection rate at 5%; true effect {'0' if quantity == 'size' else args.effect}):")
        print(wide.to_string(float_format="{:.3f}".format))
    size = table.loc[(table["quantity"] == "size") & table["default"]]
    outside = size.loc[(size["rejection_rate"] < 0.03) | (size["rejection_rate"] > 0.07)]
    print(f"\ndefault size cells outside [0.03, 0.07]: {len(outside)} of {len(size)}")
    if len(outside):
        print(outside[["errors", "adoption", "treated", "method", "rejection_rate"]].to_string(index=False))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
