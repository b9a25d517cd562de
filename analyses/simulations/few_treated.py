"""Size and power of every DiD design's default inference with few treated regions (issue 10).

A script, not a test. The issue's table (size 1,000 replications, power 200; peers' formulas and
options on the first 200 replications of each size cell)::

    nice -n 10 python analyses/simulations/few_treated.py --reps 1000 --power-reps 200 --option-reps 200 \
        --perms 99 --p-only

Power (all ten configurations, every default and option, 300 replications each)::

    nice -n 19 python analyses/simulations/few_treated.py --reps 300 --power-reps 300 --effects 1 \
        --perms 99 --p-only --update

Pre-trend tests under a linear pre-trend (``--trend 0.5``: treated regions gain 0.5 a year relative to the
others) and without one (``--reps 1000 --trend 0``), written to ``few_treated_pretrend.csv`` with the
test's ``variant`` (rows appended in this order): "estimated effects removed" (the test before the exact
window, at commit 58c38f6), "exact (sum of squares)" (the exact window with the sum of squared studentised
effects, as committed at 338dd2f) and "exact (min-p with linear trend)" (this code); the earlier variants were run
with that checkout's ``src`` on ``PYTHONPATH``. The same seed gives the same data sets, so the variants
are compared on identical replications::

    nice -n 19 python analyses/simulations/few_treated.py --reps 200 --effects 0 --trend 0.5 --perms 99 \
        --p-only --option-reps 0 --only att_gt event_study sun_abraham imputation --out trend.csv

The small-sample options of issue 10 item 2 (``_small_sample_options``: event_study CR2 with the HTZ
pre-test, wild and subcluster wild bootstrap; twfe subcluster wild; imputation's CR2/HTZ pre-test),
written to ``few_treated_options.csv`` (single-threaded BLAS: on a busy 2-core machine threaded BLAS
on the bootstrap's small matrices was 6x slower)::

    OPENBLAS_NUM_THREADS=1 nice -n 19 python analyses/simulations/few_treated.py --reps 300 --power-reps 300 \
        --treated 1 3 8 --errors heteroskedastic --perms 99 --p-only --bootstrap 399 \
        --only event_study imputation twfe --out analyses/simulations/few_treated_options.csv
    # then the same with --errors homoskedastic --update

Where the options are not valid (size at 5% with 1 / 3 / 8 treated regions of 20, heteroskedastic and
homoskedastic errors, 300 replications each, Monte Carlo s.e. 0.013 at 0.05; power against an effect of 1):

- one treated region: every cluster-robust option over-rejects (CR1 0.54-0.64, CR2 0.58-0.65, the HTZ
  pre-tests 0.86-0.95: each lead is fitted exactly in the treated region, which a FewTreatedClustersWarning
  says), while the wild bootstrap, by region or by observation (subcluster), almost never rejects
  (0.000-0.013; power 0.000-0.020): only randomisation inference is valid there;
- CR2 and HTZ are conservative with 3 treated (ATT 0.003-0.033, power 0.020-0.203; the imputation HTZ
  pre-test 0.000) and close to or below nominal with 8 (0.013-0.050; pre-test 0.027-0.040); event_study's
  HTZ pre-test is not computable with 3 or 8 treated (Hotelling df below q - 1 with 4-7 leads);
- the subcluster wild bootstrap by observation (the only level below a region in this one-unit-per-region
  panel) keeps its size with 3 and 8 treated (0.020-0.063) and gains power over the bootstrap by region
  with 3 (twfe 0.213 / 0.293 vs 0.080 / 0.113, event_study 0.077 / 0.090 vs 0.023 / 0.037, het. / hom.),
  still below randomisation inference (twfe 0.233 / 0.287, event_study 0.160 / 0.233).

``--treated/--errors/--effects/--only GROUP`` run part of the grid and ``--update`` merges it into the
CSV, so cells can be re-run after a fix; ``--units 120 --treated 50`` checks the analytic path of
``inference="auto"`` just above its threshold (fewer than 50 treated or untreated units -> randomisation).

Design (as issue 10). 20 regions x 12 years; region effects, year effects, AR(1) errors (rho 0.5)
that are either homoskedastic (sd 1) or heteroskedastic (each region's sd drawn uniformly on
[0.5, 2]). 1, 2, 3, 5 or 8 regions are treated, drawn at random, starting in years 5, 7 and 9
(1-3 treated: one region per start year, i.e. singleton cohorts; 5: cohorts of 2/2/1; 8: 3/3/2;
other counts: three near-equal cohorts). Size: true effect 0. Power: a constant effect of 1 (about
one error sd) from the start year on.

For each replication and method the two-sided 5% test of "no effect" (or of "no pre-trend") is
recorded. Methods: every design's default call (randomisation inference with few treated regions)
beside the analytic formulas that the peers use (R did / csdid: influence-function SEs; fixest /
Stata: CR1; R didimputation: BJS; R did2s: GMM) and the small-sample options (CR2, wild bootstrap
with Webb weights). A randomisation p-value is exact for any number of draws (the observed
assignment is one of them), so ``--perms 99`` measures the size of the default (9,999 draws) at a
hundredth of the cost; only power is slightly lower. ``--p-only`` skips the test-inversion intervals,
whose rejections are those of the p-value by construction.

Writes analyses/simulations/few_treated.csv (as it goes) and prints size and power tables.
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


def simulate(rng: np.random.Generator, n_treated: int, hetero: bool, effect: float, n_units: int = N,
             trend: float = 0.0) -> pd.DataFrame:
    """One panel; ``trend`` adds ``trend * (year - start)`` to the treated regions in every year (a linear
    pre-trend: parallel trends fail, and a pre-trend test should reject)."""
    N = n_units  # noqa: N806 (20 regions by default)
    sd = rng.uniform(0.5, 2.0, N) if hetero else np.ones(N)
    e = np.empty((N, T))
    e[:, 0] = rng.normal(0, 1, N) / np.sqrt(1 - 0.25)
    for t in range(1, T):
        e[:, t] = 0.5 * e[:, t - 1] + rng.normal(0, 1, N)
    e *= sd[:, None]
    start = np.zeros(N, dtype=int)
    treated = rng.permutation(N)[:n_treated]
    pos = 0
    for size, year in zip(cohort_sizes(n_treated), STARTS):
        start[treated[pos : pos + size]] = year
        pos += size
    year = np.arange(1, T + 1)
    D = (start[:, None] > 0) & (year[None, :] >= start[:, None])
    y = rng.normal(0, 1, N)[:, None] + 0.3 * year[None, :] + rng.normal(0, 0.5, T)[None, :] + e + effect * D
    y += trend * (start[:, None] > 0) * (year[None, :] - start[:, None])
    return pd.DataFrame({"region": np.repeat(np.arange(N), T), "year": np.tile(year, N), "y": y.ravel(),
                         "cohort": np.repeat(start, T), "D": D.ravel().astype(int)})


# the methods, grouped by the fit they need; ``--only GROUP ...`` re-runs some groups (``--update`` merges)
GROUPS = ("att_gt", "event_study", "sun_abraham", "imputation", "did2s", "twfe")


def tests(data: pd.DataFrame, perms: int, seed: int, only: tuple[str, ...] = GROUPS, boot: int = 999,
          options: bool = True) -> dict[str, float]:
    """p-values of every method on one data set (of the method groups in ``only``; the analytic formulas
    and small-sample options only with ``options``)."""
    out: dict[str, float] = {}
    common = {"outcome": "y", "unit": "region", "time": "year"}
    ri_options = {"n_permutations": perms, "seed": seed}

    def wanted(group: str) -> bool:
        return group in only

    if wanted("att_gt"):
        ri = im.did.att_gt(data, cohort="cohort", **ri_options, **common)
        fits = [("default (randomisation)", ri)]
        if options:
            fits.append(("analytic IF (R did, csdid)", im.did.att_gt(data, cohort="cohort", inference="analytic", **common)))
        for label, res in fits:
            dyn = res.aggregate("dynamic")
            out[f"att_gt simple ATT: {label}"] = res.aggregate("simple").p_value
            out[f"att_gt dynamic ATT: {label}"] = dyn.p_value
            out[f"att_gt group ATT: {label}"] = res.aggregate("group").p_value
            out[f"att_gt calendar ATT: {label}"] = res.aggregate("calendar").p_value
            out[f"pretrend_test(att_gt dynamic): {label}"] = im.did.pretrend_test(dyn)["p_value"]
            out[f"att_gt group-time pre-trend test: {label}"] = res.diagnostics["pretrend_wald"]["p_value"]
    for name, fn, analytic in (("event_study", im.did.event_study, {"vcov": "cluster"}),
                               ("sun_abraham", im.did.sun_abraham, {"vcov": "cluster"}),
                               ("imputation", im.did.imputation, {"inference": "analytic"}),
                               ("did2s", im.did.did2s, {"inference": "analytic"})):
        if not wanted(name):
            continue
        analytic_label = {"imputation": "analytic BJS (R didimputation)", "did2s": "analytic GMM (R did2s)"}.get(
            name, "CR1 (fixest, Stata)")
        for label, kwargs in (("default (randomisation)", ri_options), (analytic_label, analytic))[: 2 if options else 1]:
            res = fn(data, cohort="cohort", **kwargs, **common)
            out[f"{name} ATT: {label}"] = res.p_value
            if name == "imputation":  # BJS Test 1 (leads on untreated observations), in the diagnostics
                out[f"pretrend_test({name}): {label}"] = (res.diagnostics.get("pretrend_test") or {}).get("p_value")
            elif name != "did2s":  # did2s estimates no leads, so it has no pre-trend test
                out[f"pretrend_test({name}): {label}"] = im.did.pretrend_test(res)["p_value"]
        if options:
            out.update(_small_sample_options(name, fn, data, common, boot, seed))
    if wanted("twfe"):
        out["twfe: default (randomisation)"] = im.did.twfe(data, treatment="D", **ri_options, **common).p_value
        for label, kind in (("CR1 (fixest, Stata)", "cluster"), ("CR2", "CR2"), (f"wild, Webb {boot}", "wild"))[: 3 if options else 0]:
            out[f"twfe: {label}"] = im.did.twfe(data, treatment="D", vcov=kind, n_bootstrap=boot, seed=seed, **common).p_value
        if options:
            out[f"twfe: {SUBCLUSTER} {boot}"] = im.did.twfe(
                data.assign(cell=np.arange(len(data))), treatment="D", vcov="wild", bootstrap_subcluster="cell",
                n_bootstrap=boot, seed=seed, **common).p_value
    return out


SUBCLUSTER = "wild by observation (subcluster, MacKinnon & Webb 2018), Webb"


def _small_sample_options(name, fn, data, common, boot, seed) -> dict[str, float]:
    """The analytic and bootstrap options of issue 10 item 2 beyond the peers' formulas: event_study's CR2
    (with the HTZ pre-trend test), wild bootstrap and subcluster wild bootstrap (weights by region-year
    observation, the only level finer than the regions here); imputation's CR2/HTZ pre-trend test."""
    out: dict[str, float] = {}
    if name == "event_study":
        cells = data.assign(cell=np.arange(len(data)))
        for label, kwargs in (("CR2", {"vcov": "CR2"}), (f"wild, Webb {boot}", {"vcov": "wild"}),
                              (f"{SUBCLUSTER} {boot}", {"vcov": "wild", "bootstrap_subcluster": "cell"})):
            res = fn(cells, cohort="cohort", n_bootstrap=boot, seed=seed, **kwargs, **common)
            out[f"{name} ATT: {label}"] = res.p_value
            if label == "CR2":  # the wild options test the leads with CR1 (the analytic row above)
                out[f"pretrend_test({name}): CR2 (HTZ)"] = im.did.pretrend_test(res)["p_value"]
    if name == "imputation":
        res = fn(data, cohort="cohort", inference="analytic", pretrend_vcov="CR2", **common)
        out[f"pretrend_test({name}): CR2 (HTZ)"] = res.diagnostics["pretrend_test"].get("p_value")
    return out


def cohort_sizes(n_treated: int) -> tuple[int, ...]:
    """Treated units per start year (singleton cohorts up to 3 treated; else three near-equal cohorts)."""
    if n_treated in COHORT_SIZES:
        return COHORT_SIZES[n_treated]
    base, extra = divmod(n_treated, len(STARTS))
    return tuple(base + (i < extra) for i in range(len(STARTS)))


def run(reps: int, perms: int, seed: int, configs: list[tuple[int, bool]], effects: list[float],
        out: Path | None = None, only: tuple[str, ...] = GROUPS, power_reps: int | None = None, boot: int = 999,
        n_units: int = N, keep: pd.DataFrame | None = None, option_reps: int | None = None,
        trend: float = 0.0) -> pd.DataFrame:
    rows = []
    for effect in effects:
        n_reps = reps if effect == 0 or power_reps is None else power_reps
        for n_treated, hetero in configs:
            rng = np.random.default_rng([seed, n_treated, int(hetero), int(effect * 10)] + ([n_units] if n_units != N else [])
                                        + ([int(round(trend * 1000))] if trend else []))
            started = time.perf_counter()
            reject: dict[str, list[bool]] = {}
            for rep in range(n_reps):
                data = simulate(rng, n_treated, hetero, effect, n_units, trend)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    options = option_reps is None or rep < option_reps
                    for name, p in tests(data, perms, rep, only, boot, options).items():
                        if p is None or not np.isfinite(p):
                            continue
                        reject.setdefault(name, []).append(p <= 0.05)
            for name, r in reject.items():
                rate = float(np.mean(r))
                rows.append({"effect": effect, "trend": trend, "units": n_units, "treated": n_treated,
                             "errors": "heteroskedastic" if hetero else "homoskedastic",
                             "method": name, "replications": len(r), "rejection_rate": rate,
                             "mc_std_error": np.sqrt(rate * (1 - rate) / len(r))})
            print(f"effect {effect}, {n_treated} of {n_units} treated, {'hetero' if hetero else 'homo'}: {n_reps} reps in "
                  f"{time.perf_counter() - started:.0f}s", flush=True)
            if out is not None:  # keep what is done if a long run is stopped
                merged(keep, pd.DataFrame(rows)).to_csv(out, index=False)
    return merged(keep, pd.DataFrame(rows))


KEY = ["effect", "trend", "units", "treated", "errors", "method"]


def merged(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """``old`` with the cells of ``new`` replaced (an ``--update`` re-run of some methods or configs)."""
    if old is None or old.empty:
        return new
    if new.empty:
        return old
    if "trend" not in old.columns:  # tables written before the pre-trend alternative existed
        old = old.assign(trend=0.0)[new.columns]
    stale = old.set_index(KEY).index.isin(new.set_index(KEY).index)
    return pd.concat([old.loc[~stale], new], ignore_index=True).sort_values(KEY, kind="stable", ignore_index=True)


def p_values_only() -> None:
    """Skip the test-inversion intervals (``--p-only``): a rejection is ``p <= 0.05``, and the interval is
    the inversion of the same test (0 lies outside it exactly when p(0) <= 0.05), so the size and power
    of the interval are those of the p-value. The inversion is 70-90% of the cost of a randomisation fit."""
    from impact.inference import randomization

    def no_interval(*args, **kwargs):  # whatever the engine's signature: the rows are those of its components
        observed = next(a for a in args if isinstance(a, randomization.LinearComponents))
        nan = np.full(observed.a.shape[1], np.nan)
        return nan, nan.copy()

    randomization._invert = no_interval


def _rates(table: pd.DataFrame, units: int) -> pd.DataFrame:
    """Rejection rates of the ``units``-region panels without a pre-trend, indexed by (effect, method, errors, treated)."""
    part = table.loc[(table["units"] == units) & ((table["trend"] == 0) if "trend" in table.columns else True)]
    return part.set_index(["effect", "method", "errors", "treated"])["rejection_rate"].sort_index()


def _cells(rates: pd.Series, effect: float, method: str, cols: list[int]) -> list[str]:
    def one(k: int, errors: str) -> str:
        key = (effect, method, errors, k)
        return f"{rates[key]:.3f}" if key in rates.index else "–"

    return [f"{one(k, 'heteroskedastic')} / {one(k, 'homoskedastic')}" for k in cols]


def _methods(rates: pd.Series, effect: float) -> list[str]:
    methods = rates.loc[effect].index.get_level_values("method").unique() if effect in rates.index else []
    return sorted(methods, key=lambda m: (m.split(":")[0], "default" not in m, m))


def _replications(table: pd.DataFrame, units: int, effect: float) -> str:
    n = table.loc[(table["units"] == units) & (table["effect"] == effect)
                  & ((table["trend"] == 0) if "trend" in table.columns else True), "replications"]
    return "" if n.empty else (f"{n.min():,}" if n.min() == n.max() else f"{n.min():,} to {n.max():,}")


def markdown(table: pd.DataFrame, units: int = N) -> str:
    """The README size table: one row per method, size (het. / hom.) for 1, 2, 3, 5, 8 treated."""
    rates = _rates(table, units)
    cols = sorted(rates.index.get_level_values("treated").unique())
    lines = ["| size: het. / hom. errors | " + " | ".join(f"{k} treated" if i == 0 else f"{k}" for i, k in enumerate(cols)) + " |",
             "|---|" + "---|" * len(cols)]
    for m in _methods(rates, 0.0):
        name = m.replace("default (randomisation)", "**default** (randomisation)")
        lines.append(f"| {name} | " + " | ".join(_cells(rates, 0.0, m, cols)) + " |")
    lines.append(f"\nsize: {_replications(table, units, 0.0)} replications per cell")
    return "\n".join(lines)


VALID_SIZE = 0.07  # a method counts as valid in a cell when its size there is at most this


def power_gaps(table: pd.DataFrame, units: int = N) -> pd.DataFrame:
    """Per design and cell, the default's power beside the best valid method's (size <= VALID_SIZE in that
    cell, the default included): the columns ``default``, ``best``, ``best_method`` and ``gap`` (best - default)."""
    rates = _rates(table, units)
    rows = []
    for method in _methods(rates, 1.0):
        if "default" not in method or method.startswith("pretrend") or "pre-trend" in method:
            continue
        design = method.split(":")[0]
        rivals = [m for m in _methods(rates, 1.0) if m.split(":")[0] == design]
        for errors, k in sorted(rates.loc[1.0, method].index):
            if True:
                valid = {m: rates[(1.0, m, errors, k)] for m in rivals
                         if (1.0, m, errors, k) in rates.index and (0.0, m, errors, k) in rates.index
                         and rates[(0.0, m, errors, k)] <= VALID_SIZE}
                best = max(valid, key=valid.get) if valid else method
                default = rates[(1.0, method, errors, k)]
                rows.append({"design": design, "errors": errors, "treated": k, "default": default,
                             "best": valid.get(best, default), "best_method": best.split(": ", 1)[1], "gap": valid.get(best, default) - default})
    return pd.DataFrame(rows)


def power_markdown(table: pd.DataFrame, units: int = N) -> str:
    """The README power table (effect 1; het. / hom. for 1, 2, 3, 5, 8 treated) of every effect row, then
    per design how far the default is from the best valid method."""
    rates = _rates(table, units)
    cols = sorted(rates.loc[1.0].index.get_level_values("treated").unique())
    lines = ["| power (effect 1): het. / hom. errors | " + " | ".join(f"{k} treated" if i == 0 else f"{k}" for i, k in enumerate(cols)) + " |",
             "|---|" + "---|" * len(cols)]
    for m in _methods(rates, 1.0):
        if m.startswith("pretrend") or "pre-trend" in m:
            continue
        name = m.replace("default (randomisation)", "**default** (randomisation)")
        lines.append(f"| {name} | " + " | ".join(_cells(rates, 1.0, m, cols)) + " |")
    lines.append(f"\npower: {_replications(table, units, 1.0)} replications per cell")
    gaps = power_gaps(table, units)
    lines += ["", "| default vs. best valid method (size <= 0.07 in the cell) | cells | default = best | largest gap (best - default) |",
              "|---|---|---|---|"]
    for design, part in gaps.groupby("design", sort=True):
        worst = part.loc[part["gap"].idxmax()]
        where = (f"{worst['gap']:.3f} ({worst['treated']} treated, {worst['errors'][:3]}.: {worst['best_method']} "
                 f"{worst['best']:.3f} vs {worst['default']:.3f})" if worst["gap"] > 0 else "0")
        lines.append(f"| {design} | {len(part)} | {int((part['gap'] <= 0).sum())} | {where} |")
    return "\n".join(lines)


def pretrend_markdown(table: pd.DataFrame, units: int = N) -> str:
    """Size and power (linear pre-trend) of the default pre-trend tests, before and after the exact test."""
    part = table.loc[(table["units"] == units) & table["method"].str.contains("pre-trend|pretrend")]
    cols = sorted(part["treated"].unique())
    lines = ["| pre-trend test (default) | slope | test | " + " | ".join(f"{k} treated" if i == 0 else f"{k}" for i, k in enumerate(cols)) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    rates = part.set_index(["variant", "trend", "method", "errors", "treated"])["rejection_rate"]
    order = part.assign(variant=pd.Categorical(part["variant"], categories=part["variant"].unique()))  # as in the CSV
    for (method, trend, variant), _ in order.groupby(["method", "trend", "variant"], sort=True, observed=True):
        cells = []
        for k in cols:
            pair = [rates.get((variant, trend, method, e, k)) for e in ("heteroskedastic", "homoskedastic")]
            cells.append(" / ".join("–" if v is None else f"{v:.3f}" for v in pair))
        lines.append(f"| {method.split(':')[0]} | {trend:g} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="replications per size cell (effect 0)")
    parser.add_argument("--power-reps", type=int, default=200, help="replications per power cell (effect 1)")
    parser.add_argument("--option-reps", type=int, default=None,
                        help="run the analytic formulas and options on the first N replications only (they over-reject grossly)")
    parser.add_argument("--perms", type=int, default=199,
                        help="randomisation draws per test (exact for any number; the package default is 9,999)")
    parser.add_argument("--bootstrap", type=int, default=399, help="wild bootstrap draws")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--units", type=int, default=N, help="regions in the panel (20; e.g. 120 or 200 for the 'auto' threshold)")
    parser.add_argument("--treated", type=int, nargs="*", default=[1, 2, 3, 5, 8])
    parser.add_argument("--errors", choices=["homoskedastic", "heteroskedastic"], nargs="*",
                        default=["homoskedastic", "heteroskedastic"])
    parser.add_argument("--effects", type=float, nargs="*", default=[0.0, 1.0])
    parser.add_argument("--trend", type=float, default=0.0,
                        help="linear pre-trend slope of the treated regions (power of the pre-trend tests; e.g. 0.3)")
    parser.add_argument("--only", choices=GROUPS, nargs="*", default=list(GROUPS), help="method groups to run")
    parser.add_argument("--p-only", action="store_true", help="skip the test-inversion intervals (faster; same size)")
    parser.add_argument("--markdown", action="store_true", help="print the README table from the CSV and stop")
    parser.add_argument("--update", action="store_true", help="merge into the existing CSV instead of replacing it")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("few_treated.csv"))
    args = parser.parse_args()
    if args.markdown:
        table = pd.read_csv(args.out)
        print(markdown(table, args.units), power_markdown(table, args.units), sep="\n\n")
        pretrend = args.out.with_name("few_treated_pretrend.csv")
        if pretrend.exists():
            print("\n" + pretrend_markdown(pd.read_csv(pretrend), args.units))
        return
    configs = [(k, e == "heteroskedastic") for e in args.errors for k in args.treated]
    if args.p_only:
        p_values_only()
    keep = pd.read_csv(args.out) if args.update and args.out.exists() else None
    table = run(args.reps, args.perms, args.seed, configs, args.effects, args.out, tuple(args.only), args.power_reps,
                args.bootstrap, args.units, keep, args.option_reps, args.trend)
    table.to_csv(args.out, index=False)
    for (effect, trend, units), part in table.groupby(["effect", "trend", "units"]):
        wide = part.pivot_table(index="method", columns=["errors", "treated"], values="rejection_rate")
        what = "size" if effect == 0 and trend == 0 else f"power, effect {effect:g}, pre-trend slope {trend:g}"
        print(f"\nRejection rate at 5%, {units} units ({what}):")
        print(wide.to_string(float_format="{:.3f}".format))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
