"""Bad-input battery (issue 11, items 5-12): every public estimator x many kinds of bad data and options.

For every case the estimator must either raise a typed :class:`impact.errors.ImpactError` (whose
message names the column or option at fault), or return a finite result that is correct: equal to
the result on the clean data where the perturbation must not matter (row order, unit labels, index
labels, text-coded numeric time), scaled by ``c`` when the outcome is scaled by ``c``, and equal to
the missing-value result when a value is +-inf. Nothing may raise an untyped exception, hang, or
modify the caller's DataFrame.
"""

from __future__ import annotations

import math
import signal
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import impact as im
from impact.errors import ImpactError

SEED = 11


# --------------------------------------------------------------------------------------------------
# Clean data sets (small, so the whole battery runs in well under 30 s)
# --------------------------------------------------------------------------------------------------
def _panel(two_periods: bool = False) -> pd.DataFrame:
    """20 regions x 8 years, 6 treated (3 from 2005, 3 from 2006); true effect 1.0."""
    rng = np.random.default_rng(1)
    n_units, years = 20, np.arange(2001, 2009)
    if two_periods:
        years = np.array([2004, 2005])
    cohort = np.zeros(n_units, dtype=int)
    cohort[:3] = 2005 if not two_periods else 2005
    cohort[3:6] = 2006 if not two_periods else 2005
    unit = np.repeat([f"r{i:02d}" for i in range(n_units)], len(years))
    time = np.tile(years, n_units)
    g = np.repeat(cohort, len(years))
    d = ((g > 0) & (time >= g)).astype(int)
    alpha = np.repeat(rng.normal(0, 1, n_units), len(years))
    x = rng.normal(0, 1, len(unit)) + 0.3 * alpha
    y = 2 + alpha + 0.2 * (time - 2000) + 0.5 * x + 1.0 * d + rng.normal(0, 0.3, len(unit))
    w = np.repeat(rng.uniform(0.5, 2.0, n_units), len(years))
    ever = np.repeat((cohort > 0).astype(int), len(years))
    return pd.DataFrame({"unit": unit, "time": time, "y": y, "d": d, "cohort": g, "x": x, "w": w, "ever": ever})


def _cross() -> pd.DataFrame:
    """A 160-unit trial in 16 clusters and 4 blocks; effect 2.0, one-sided non-compliance."""
    rng = np.random.default_rng(2)
    n = 160
    z = np.tile([0, 1], n // 2)
    x1 = rng.normal(0, 1, n)
    x2 = rng.normal(0, 1, n)
    comply = rng.uniform(size=n) < 0.7
    d_take = (z * comply).astype(int)
    y = 1 + 2 * z + x1 + 0.5 * x2 + rng.normal(0, 1, n)
    observed = (rng.uniform(size=n) < np.where(z == 1, 0.9, 0.8)).astype(int)
    return pd.DataFrame({
        "y": y, "y2": y + rng.normal(0, 1, n), "d": z, "x1": x1, "x2": x2, "take": d_take, "z": z,
        "observed": observed, "block": np.repeat(np.arange(4), n // 4), "cl": np.repeat(np.arange(16), n // 16),
        "w": rng.uniform(0.5, 2.0, n),
    })


def _synth() -> pd.DataFrame:
    """16 units x 14 periods, unit u15 treated from period 10 with effect 5."""
    rng = np.random.default_rng(3)
    n_units, n_periods = 16, 14
    F = np.cumsum(rng.normal(size=(n_periods, 2)), axis=0)
    load = rng.normal(1, 1, (n_units, 2))
    load[-1] = load[:4].mean(axis=0)
    alpha = rng.normal(10, 3, n_units)
    alpha[-1] = alpha[:4].mean()
    Y = alpha[:, None] + load @ F.T + rng.normal(0, 0.3, (n_units, n_periods))
    D = np.zeros_like(Y, dtype=int)
    D[-1, 10:] = 1
    Y = Y + 5 * D
    return pd.DataFrame({
        "unit": np.repeat([f"u{i:02d}" for i in range(n_units)], n_periods),
        "time": np.tile(np.arange(1990, 1990 + n_periods), n_units),
        "y": Y.ravel(), "d": D.ravel(), "x": rng.normal(0, 1, n_units * n_periods),
    })


def _rd() -> pd.DataFrame:
    """400 units, running variable on [-1, 1], a jump of 2 at 0."""
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, 400)
    return pd.DataFrame({"y": 1 + x + 2 * (x >= 0) + rng.normal(0, 0.5, 400), "x": x, "z": rng.normal(0, 1, 400)})


PANEL, PANEL2, CROSS, SYNTH, RD = _panel(), _panel(two_periods=True), _cross(), _synth(), _rd()
# an unbalanced panel (two units miss 2003) for att_gt(unbalanced="keep")
PANEL_GAPS = PANEL.loc[~(PANEL["unit"].isin(["r02", "r11"]) & (PANEL["time"] == 2003))].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# The estimators, each with the columns the perturbations act on
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    data: pd.DataFrame
    run: Callable[..., Any]  # run(df, **options) -> object with .estimate (and .std_error)
    outcome: str | None = "y"
    covariate: str | None = None
    weight: str | None = None
    unit: str | None = None
    time: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # option name -> passes through run(**)
    has_se: bool = True
    seed: bool = False
    level: bool = True


def _twfe(df, **o):
    return im.did.twfe(df, outcome=o.pop("outcome", "y"), treatment="d", unit="unit", time="time",
                       covariates=o.pop("covariates", ["x"]), weights=o.pop("weights", "w"), **o)


def _twfe_wild(df, **o):
    return im.did.twfe(df, outcome=o.pop("outcome", "y"), treatment="d", unit="unit", time="time",
                       vcov="wild", n_bootstrap=199, seed=o.pop("seed", 1), **o)


def _event(df, **o):
    return im.did.event_study(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", cohort="cohort",
                              covariates=o.pop("covariates", ["x"]), **o)


def _att_gt(df, **o):
    return im.did.att_gt(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", cohort="cohort",
                         covariates=o.pop("covariates", ["x"]), **o).aggregate("simple")


def _att_gt_rcs(df, **o):
    return im.did.att_gt(df, outcome=o.pop("outcome", "y"), time="time", cohort="cohort", panel=False,
                         covariates=o.pop("covariates", ["x"]), **o).aggregate("dynamic")


def _att_gt_keep(df, **o):
    return im.did.att_gt(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", cohort="cohort",
                         unbalanced="keep", covariates=o.pop("covariates", ["x"]), **o).aggregate("simple")


def _att_gt_boot(df, **o):
    return im.did.att_gt(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", cohort="cohort",
                         bootstrap=99, seed=o.pop("seed", 1), **o).aggregate("simple")


def _drdid(df, **o):
    return im.did.drdid(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", treatment="ever",
                        covariates=o.pop("covariates", ["x"]), **o)


def _sun_abraham(df, **o):
    return im.did.sun_abraham(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", cohort="cohort",
                              covariates=o.pop("covariates", ["x"]), **o)


def _imputation(df, **o):
    return im.did.imputation(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", cohort="cohort",
                             covariates=o.pop("covariates", ["x"]), **o)


def _did2s(df, **o):
    return im.did.did2s(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", cohort="cohort",
                        covariates=o.pop("covariates", ["x"]), **o)


def _bacon(df, **o):
    return im.did.bacon(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", treatment="d", **o)


def _matched_did(df, **o):
    return im.matching.matched_did(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", cohort="cohort",
                                   covariates=o.pop("covariates", ["x"]), **o)


def _match(df, **o):
    level = o.pop("level", 0.95)
    outcome = o.pop("outcome", "y")
    m = im.matching.match(df, treatment="d", covariates=o.pop("covariates", ["x1", "x2"]), replace=True, **o)
    return m.effect(outcome, level=level)


def _ipw(df, **o):
    return im.matching.ipw(df, outcome=o.pop("outcome", "y"), treatment="d", covariates=o.pop("covariates", ["x1", "x2"]), **o)


def _aipw(df, **o):
    return im.matching.aipw(df, outcome=o.pop("outcome", "y"), treatment="d", covariates=o.pop("covariates", ["x1", "x2"]), **o)


def _ebal(df, **o):
    return im.matching.entropy_balance(df, outcome=o.pop("outcome", "y"), treatment="d",
                                       covariates=o.pop("covariates", ["x1", "x2"]), **o)


def _dim(df, **o):
    return im.rct.difference_in_means(df, outcome=o.pop("outcome", "y"), treatment="d", weights=o.pop("weights", None), **o)


def _dim_blocks(df, **o):
    return im.rct.difference_in_means(df, outcome=o.pop("outcome", "y"), treatment="d", blocks="block", **o)


def _lin(df, **o):
    return im.rct.lin(df, outcome=o.pop("outcome", "y"), treatment="d", covariates=o.pop("covariates", ["x1", "x2"]), **o)


def _regression(df, **o):
    return im.rct.regression(df, outcome=o.pop("outcome", "y"), treatment="d", covariates=o.pop("covariates", ["x1", "x2"]),
                             clusters="cl", weights=o.pop("weights", "w"), **o)


def _ri(df, **o):
    return im.rct.randomization_test(df, outcome=o.pop("outcome", "y"), treatment="d", n_permutations=499,
                                     seed=o.pop("seed", 1), **o)


class _PValue:
    """Wraps a result whose headline number to compare is a p-value."""

    def __init__(self, r, p):
        self.r = r
        self.estimate = p
        self.std_error = float("nan")


def _ri_clustered(df, **o):
    return im.rct.randomization_test(df, outcome=o.pop("outcome", "y"), treatment="d", blocks="block", n_permutations=499,
                                     seed=o.pop("seed", 1), **o)


def _rct_balance_blocked(df, **o):
    return im.rct.balance_table(df, treatment="d", covariates=o.pop("covariates", ["x1", "x2"]), blocks="block",
                                n_permutations=199, seed=o.pop("seed", 1), **o)


def _rdd(df, **o):
    return im.rd.rdd(df, outcome=o.pop("outcome", "y"), running="x", covariates=o.pop("covariates", ["z"]), **o)


def _rct_balance(df, **o):
    r = im.rct.balance_table(df, treatment="d", covariates=o.pop("covariates", ["x1", "x2"]), n_permutations=199,
                             seed=o.pop("seed", 1), **o)
    return r


def _late(df, **o):
    return im.rct.late(df, outcome=o.pop("outcome", "y"), treatment="take", assignment="z",
                       covariates=o.pop("covariates", ["x1"]), **o)


def _lee(df, **o):
    return im.rct.lee_bounds(df, outcome=o.pop("outcome", "y"), treatment="d", observed="observed", n_bootstrap=99,
                             seed=o.pop("seed", 1), **o)


def _multiple(df, **o):
    out = o.pop("outcome", "y")
    return im.rct.multiple_outcomes(df, outcomes=[out, "y2"], treatment="d", n_permutations=199, n_bootstrap=99,
                                    seed=o.pop("seed", 1), **o)


def _dose_response(df, **o):
    return im.did.dose_response(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", dose="dose",
                                cohort="cohort", degree=1, n_permutations=199, n_bootstrap=None, **o)


def _sc(df, **o):
    return im.synth.synthetic_control(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", treated_unit="u15",
                                      treatment_time=o.pop("treatment_time", 2000), v_method="equal", **o)


def _sc_placebo(df, **o):
    r = _sc(df, **o).placebo()
    return _PValue(r, r.p_value)


def _ascm(df, **o):
    return im.synth.augmented_synthetic_control(df, outcome=o.pop("outcome", "y"), unit="unit", time="time",
                                                treated_unit="u15", treatment_time=o.pop("treatment_time", 2000), **o)


def _sdid(df, **o):
    return im.synth.sdid(df, outcome=o.pop("outcome", "y"), unit="unit", time="time", treatment="d", n_replications=50,
                         seed=o.pop("seed", 1), **o)


CASES = [
    Case("twfe", PANEL, _twfe, covariate="x", weight="w", unit="unit", time="time"),
    Case("twfe_wild", PANEL, _twfe_wild, unit="unit", time="time", seed=True),
    Case("event_study", PANEL, _event, covariate="x", unit="unit", time="time"),
    Case("att_gt", PANEL, _att_gt, covariate="x", unit="unit", time="time"),
    Case("att_gt_bootstrap", PANEL, _att_gt_boot, unit="unit", time="time", seed=True),
    Case("att_gt_rcs", PANEL, _att_gt_rcs, covariate="x", time="time"),
    Case("att_gt_keep", PANEL_GAPS, _att_gt_keep, covariate="x", unit="unit", time="time"),
    Case("drdid", PANEL2, _drdid, covariate="x", unit="unit", time="time"),
    Case("sun_abraham", PANEL, _sun_abraham, covariate="x", unit="unit", time="time"),
    Case("imputation", PANEL, _imputation, covariate="x", unit="unit", time="time"),
    Case("did2s", PANEL, _did2s, covariate="x", unit="unit", time="time"),
    Case("dose_response", PANEL.assign(dose=np.where(PANEL.cohort > 0, 0.5 + (PANEL.unit.str[1:].astype(int) % 6) / 4, 0.0)),
         _dose_response, unit="unit", time="time", seed=True),
    Case("bacon", PANEL, _bacon, unit="unit", time="time", has_se=False, level=False),
    Case("matched_did", PANEL, _matched_did, covariate="x", unit="unit", time="time", seed=True),
    Case("match", CROSS, _match, covariate="x1"),
    Case("ipw", CROSS, _ipw, covariate="x1"),
    Case("aipw", CROSS, _aipw, covariate="x1"),
    Case("entropy_balance", CROSS, _ebal, covariate="x1"),
    Case("difference_in_means", CROSS, _dim, weight="w"),
    Case("difference_in_means_blocks", CROSS, _dim_blocks),
    Case("lin", CROSS, _lin, covariate="x1"),
    Case("regression", CROSS, _regression, covariate="x1", weight="w"),
    Case("randomization_test", CROSS, _ri, seed=True),
    Case("randomization_test_blocks", CROSS, _ri_clustered, unit="block", seed=True),
    Case("rct.balance_table", CROSS, _rct_balance, outcome=None, covariate="x1", seed=True, has_se=False),
    Case("rct.balance_table_blocks", CROSS, _rct_balance_blocked, outcome=None, covariate="x1", unit="block", seed=True,
         has_se=False),
    Case("late", CROSS, _late, covariate="x1"),
    Case("lee_bounds", CROSS, _lee, seed=True, has_se=False),  # partial identification: bounds, no SE
    Case("multiple_outcomes", CROSS, _multiple, seed=True),
    Case("synthetic_control", SYNTH, _sc, unit="unit", time="time", has_se=False),
    Case("synthetic_control.placebo", SYNTH, _sc_placebo, unit="unit", time="time", has_se=False),
    Case("augmented_synthetic_control", SYNTH, _ascm, unit="unit", time="time", has_se=False),
    Case("sdid", SYNTH, _sdid, unit="unit", time="time", seed=True),
    Case("rdd", RD, _rdd, covariate="z"),
]
CASE_BY_NAME = {c.name: c for c in CASES}


# --------------------------------------------------------------------------------------------------
# Running one case
# --------------------------------------------------------------------------------------------------
class Hang(BaseException):  # not an Exception, so no estimator can swallow it
    pass


def _alarm(signum, frame):
    raise Hang("estimator ran for more than 20 s")


def attempt(case: Case, df: pd.DataFrame, **options) -> tuple[str, Any]:
    """("error", ImpactError) or ("ok", result); any other exception fails the test."""
    before = df.copy(deep=True)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = ("ok", case.run(df, **options))
    except ImpactError as err:
        assert len(str(err)) > 30, f"{case.name}: typed error without a useful message: {err!r}"
        out = ("error", err)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    pd.testing.assert_frame_equal(df, before, obj=f"{case.name} modified the caller's DataFrame")
    return out


def headline(case: Case, result: Any) -> tuple[float, float]:
    est = float(result.estimate)
    se = float(result.std_error) if case.has_se else float("nan")
    return est, se


def assert_finite(case: Case, result: Any, what: str) -> tuple[float, float]:
    est, se = headline(case, result)
    assert math.isfinite(est), f"{case.name} [{what}]: estimate {est} is not finite"
    if case.has_se:
        assert math.isfinite(se) and se > 0, f"{case.name} [{what}]: standard error {se} is not finite and positive"
    return est, se


_BASE: dict[str, tuple[float, float]] = {}


def base(case: Case) -> tuple[float, float]:
    if case.name not in _BASE:
        status, result = attempt(case, case.data)
        assert status == "ok", f"{case.name} fails on clean data: {result}"
        _BASE[case.name] = assert_finite(case, result, "clean data")
    return _BASE[case.name]


def assert_same(case: Case, status: str, result: Any, what: str, rel: float = 1e-7) -> None:
    """A perturbation that must not matter: same estimate and SE as on the clean data (or a typed error)."""
    if status == "error":
        return
    est, se = assert_finite(case, result, what)
    b_est, b_se = base(case)
    assert est == pytest.approx(b_est, rel=rel, abs=1e-10), f"{case.name} [{what}]: estimate {est} != {b_est}"
    if case.has_se:
        assert se == pytest.approx(b_se, rel=rel, abs=1e-10), f"{case.name} [{what}]: SE {se} != {b_se}"


def _row(case: Case, where: str = "treated") -> Any:
    """A row label to perturb: one in a treated unit's post period where that matters."""
    df = case.data
    if case.name.startswith("synth") or case.name.startswith("augmented") or case.name == "sdid":
        return df.index[(df["unit"] == "u03") & (df["time"] == 1995)][0]  # a donor's pre-period value
    return df.index[7]


# --------------------------------------------------------------------------------------------------
# The battery
# --------------------------------------------------------------------------------------------------
def _set(df: pd.DataFrame, column: str, row: Any, value: float) -> pd.DataFrame:
    out = df.copy()
    out[column] = out[column].astype(float)
    out.loc[row, column] = value
    return out


def _missing_result(case: Case, column: str):
    return attempt(case, _set(case.data, column, _row(case), np.nan))


NONFINITE = [(case, role, v) for case in CASES for role in ("outcome", "covariate", "weight") for v in (np.inf, -np.inf)
             if getattr(case, role) is not None]


@pytest.mark.parametrize("case,role,value", NONFINITE, ids=[f"{c.name}-{r}={v}" for c, r, v in NONFINITE])
def test_infinite_values_are_missing_or_refused(case, role, value):
    """Item 5: +-inf is bad input like NaN: dropped under the missing policy (same result) or refused."""
    column = getattr(case, role)
    status, result = attempt(case, _set(case.data, column, _row(case), value))
    if status == "error":
        assert column in str(result) or "inf" in str(result).lower(), str(result)
        return
    est, se = assert_finite(case, result, f"{role}={value}")
    nan_status, nan_result = _missing_result(case, column)
    assert nan_status == "ok", f"{case.name}: inf accepted but NaN refused: {nan_result}"
    assert (est, se) == pytest.approx(headline(case, nan_result), rel=1e-9, nan_ok=True)


WITH_OUTCOME = [c for c in CASES if c.outcome]


@pytest.mark.parametrize("case", WITH_OUTCOME, ids=lambda c: c.name)
def test_missing_value_in_outcome(case):
    status, result = _missing_result(case, case.outcome)
    if status == "ok":
        assert_finite(case, result, "NaN outcome")


@pytest.mark.parametrize("case", WITH_OUTCOME, ids=lambda c: c.name)
def test_huge_outcome_value(case):
    """Item 6: one outcome of 1e300 gives a finite answer or a typed error, never inf/NaN."""
    status, result = attempt(case, _set(case.data, case.outcome, _row(case), 1e300))
    if status == "ok":
        assert_finite(case, result, "outcome 1e300")


SCALES = [1e-8, 1e-3, 1e3, 1e8, 1e300]


@pytest.mark.parametrize("c", SCALES)
@pytest.mark.parametrize("case", WITH_OUTCOME, ids=lambda c: c.name)
def test_scale_equivariance(case, c):
    """Item 6: scaling the outcome by c scales estimate and SE by c (or, for 1e300, a typed error)."""
    df = case.data.copy()
    df[case.outcome] = df[case.outcome] * c
    if case.name == "multiple_outcomes":
        df["y2"] = df["y2"] * c
    status, result = attempt(case, df)
    if status == "error":
        assert c >= 1e300, f"{case.name}: refused an outcome scaled by {c}: {result}"
        return
    est, se = assert_finite(case, result, f"outcome x {c}")
    b_est, b_se = base(case)
    factor = 1.0 if isinstance(result, _PValue) else c
    assert est == pytest.approx(b_est * factor, rel=1e-6), f"{case.name}: estimate not scale-equivariant at c={c}"
    if case.has_se:
        assert se == pytest.approx(b_se * factor, rel=1e-6), f"{case.name}: SE not scale-equivariant at c={c}"


@pytest.mark.parametrize("case", WITH_OUTCOME, ids=lambda c: c.name)
def test_constant_outcome_is_refused(case):
    """Item 7: a constant outcome has no variation to estimate from: typed error, not SE 0 or p = 0."""
    df = case.data.copy()
    df[case.outcome] = 3.0
    status, result = attempt(case, df)
    assert status == "error", f"{case.name}: constant outcome accepted: estimate {headline(case, result)}"
    assert "constant" in str(result) or "variation" in str(result), str(result)


@pytest.mark.parametrize("case", [c for c in CASES if c.covariate and c.outcome], ids=lambda c: c.name)
def test_covariate_equal_to_outcome_is_refused(case):
    """Item 7: conditioning on the outcome itself is a specification error."""
    df = case.data.copy()
    df[case.covariate] = df[case.outcome]
    status, result = attempt(case, df)
    assert status == "error", f"{case.name}: covariate equal to the outcome accepted"


@pytest.mark.parametrize("case", [c for c in CASES if c.covariate], ids=lambda c: c.name)
def test_constant_covariate(case):
    """Item 7: a constant covariate is refused (or, where it is absorbed, gives the result without it)."""
    df = case.data.copy()
    df[case.covariate] = 5.0
    status, result = attempt(case, df)
    if status == "ok":
        assert_finite(case, result, "constant covariate")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_shuffled_rows(case):
    """Item 9: results do not depend on row order."""
    base(case)
    df = case.data.sample(frac=1.0, random_state=5)
    status, result = attempt(case, df)
    assert status == "ok", f"{case.name}: refused shuffled data: {result}"
    assert_same(case, status, result, "shuffled rows")


@pytest.mark.parametrize("case", [c for c in CASES if c.unit], ids=lambda c: c.name)
def test_relabelled_units(case):
    """Item 9: results do not depend on unit labels (an order-reversing relabelling)."""
    base(case)
    df = case.data.copy()
    labels = sorted(df[case.unit].unique())
    new = {u: f"z{len(labels) - i:03d}" for i, u in enumerate(labels)}
    df[case.unit] = df[case.unit].map(new)
    options = {}
    if case.name.startswith("synth") or case.name.startswith("augmented"):
        # the treated unit keeps its label so that the call is the same
        df.loc[case.data[case.unit] == "u15", case.unit] = "u15"
    status, result = attempt(case, df, **options)
    assert status == "ok", f"{case.name}: refused relabelled data: {result}"
    assert_same(case, status, result, "relabelled units")


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_property_any_row_order_and_unit_labels(case, seed):
    """Item 9 as a property: any shuffle of the rows with any renaming of the units gives the same result."""
    base(case)
    rng = np.random.default_rng(seed)
    df = case.data.iloc[rng.permutation(len(case.data))].copy()
    if case.unit:
        labels = pd.unique(case.data[case.unit])
        fresh = rng.permutation(len(labels))
        new = {u: f"k{fresh[i]:04d}" for i, u in enumerate(labels)}
        if case.name.startswith("synth") or case.name.startswith("augmented"):
            new["u15"] = "u15"
        df[case.unit] = df[case.unit].map(new)
    status, result = attempt(case, df)
    assert status == "ok", f"{case.name}: refused reordered data: {result}"
    assert_same(case, status, result, f"rows shuffled and units renamed (seed {seed})")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_duplicated_index_labels(case):
    """Item 12: a non-unique index is the user's business; results as on a clean index."""
    base(case)
    df = case.data.copy()
    df.index = np.arange(len(df)) // 2
    status, result = attempt(case, df)
    assert_same(case, status, result, "duplicated index")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_string_dtype_columns(case):
    """pandas 3: text columns of the string dtype work as object columns."""
    base(case)
    df = case.data.copy()
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].astype("string")
    status, result = attempt(case, df)
    assert status == "ok", f"{case.name}: refused string-dtype data: {result}"
    assert_same(case, status, result, "string dtype")


@pytest.mark.parametrize("case", [c for c in CASES if c.time], ids=lambda c: c.name)
def test_text_time_column(case):
    """Item 10: numbers stored as text are parsed as numbers (never sorted as text) or refused."""
    base(case)
    df = case.data.copy()
    df[case.time] = (df[case.time] - df[case.time].min() + 1).astype(str)  # '1'..'14': '10' < '2' as text
    options = {}
    if case.name.startswith("synth") or case.name.startswith("augmented"):
        options["treatment_time"] = "11"
    if case.name in ("att_gt", "att_gt_bootstrap", "att_gt_rcs", "att_gt_keep", "event_study", "sun_abraham", "imputation", "did2s", "matched_did"):
        df["cohort"] = np.where(case.data["cohort"] > 0, case.data["cohort"] - case.data["time"].min() + 1, 0)
    status, result = attempt(case, df, **options)
    if status == "error":
        assert case.time in str(result), str(result)
        return
    assert_same(case, status, result, "text time")


@pytest.mark.parametrize("case", [c for c in CASES if c.time], ids=lambda c: c.name)
def test_datetime_time_column(case):
    """Item 10: datetime periods are handled in time order or refused with a typed error."""
    base(case)
    df = case.data.copy()
    df[case.time] = pd.to_datetime(df[case.time].astype(str) + "-01-01")
    options = {}
    if case.name.startswith("synth") or case.name.startswith("augmented"):
        options["treatment_time"] = pd.Timestamp("2000-01-01")
    if case.name in ("att_gt", "att_gt_bootstrap", "att_gt_rcs", "att_gt_keep", "event_study", "sun_abraham", "imputation", "did2s", "matched_did"):
        return  # cohorts are period numbers; a datetime time with numeric cohorts is the text case above
    status, result = attempt(case, df, **options)
    if status == "error":
        assert case.time in str(result), str(result)
        return
    assert_same(case, status, result, "datetime time")


BAD_LEVELS = ["0.95", 0, 1, 1.5, -0.1, float("nan"), None, True]


@pytest.mark.parametrize("level", BAD_LEVELS, ids=repr)
@pytest.mark.parametrize("case", [c for c in CASES if c.level and c.name != "synthetic_control.placebo"], ids=lambda c: c.name)
def test_bad_level_is_refused(case, level):
    """Items 8, 12: level must be a number strictly between 0 and 1."""
    status, result = attempt(case, case.data, level=level)
    assert status == "error", f"{case.name}: level={level!r} accepted"
    assert "level" in str(result)


BAD_SEEDS = [-1, 1.5, "1", np.nan]


@pytest.mark.parametrize("seed", BAD_SEEDS, ids=repr)
@pytest.mark.parametrize("case", [c for c in CASES if c.seed], ids=lambda c: c.name)
def test_bad_seed_is_refused(case, seed):
    status, result = attempt(case, case.data, seed=seed)
    assert status == "error", f"{case.name}: seed={seed!r} accepted"
    assert "seed" in str(result)


BAD_OUTCOMES = [None, 123, ["y"], "no_such_column"]


@pytest.mark.parametrize("outcome", BAD_OUTCOMES, ids=repr)
@pytest.mark.parametrize("case", [c for c in CASES if c.outcome], ids=lambda c: c.name)
def test_bad_outcome_argument_is_refused(case, outcome):
    status, result = attempt(case, case.data, outcome=outcome)
    assert status == "error", f"{case.name}: outcome={outcome!r} accepted"
    assert "outcome" in str(result)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_not_a_dataframe_or_empty(case):
    for bad in (case.data.to_dict("list"), case.data.iloc[:0]):
        status, result = attempt(case, bad) if isinstance(bad, pd.DataFrame) else _attempt_any(case, bad)
        assert status == "error", f"{case.name}: {type(bad).__name__} accepted"


def _attempt_any(case, bad):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "ok", case.run(bad)
    except ImpactError as err:
        return "error", err


# --------------------------------------------------------------------------------------------------
# The issue's own reproductions (issue 11, items 5-12), one test each
# --------------------------------------------------------------------------------------------------
def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_inf_outcome_in_twfe_is_dropped_and_reported_not_nan():
    """Item 5: one inf outcome made twfe return NaN without a word."""
    df = _set(PANEL, "y", PANEL.index[3], np.inf)
    with pytest.warns(im.errors.MissingDataWarning, match=r"infinite"):
        res = im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="time")
    assert math.isfinite(res.estimate) and math.isfinite(res.std_error)
    assert any("infinite" in step.note for step in res.sample_flow)
    with pytest.raises(im.errors.DataError, match=r"y: 1 infinite"):
        _quiet(im.did.twfe, df, outcome="y", treatment="d", unit="unit", time="time", missing="error")


def test_inf_donor_value_is_refused_by_synth_and_sdid_quickly():
    """Item 5: an inf donor value made sdid return ATT = inf and synthetic_control hang for 90 s."""
    df = _set(SYNTH, "y", _row(CASE_BY_NAME["sdid"]), np.inf)
    with pytest.raises(im.errors.DataError, match=r"infinite"):
        _quiet(im.synth.sdid, df, outcome="y", unit="unit", time="time", treatment="d", seed=1)
    with pytest.raises(im.errors.DataError, match=r"infinite"):
        _quiet(_sc, df)


def test_huge_values_are_refused_with_the_column_and_rows():
    """Item 6: 1e300 gave inf/NaN standard errors silently."""
    df = _set(CROSS, "y", CROSS.index[4], 1e300)
    with pytest.raises(im.errors.DataError, match=r"'y' holds values too large.*rows 4"):
        im.rct.difference_in_means(df, outcome="y", treatment="d")


def test_constant_outcome_in_late_is_refused_not_significant():
    """Item 7: late on a constant outcome gave LATE 1.5e-14 with p = 0.00078."""
    df = CROSS.assign(y=1.0)
    with pytest.raises(im.errors.DataError, match=r"'y' is constant"):
        im.rct.late(df, outcome="y", treatment="take", assignment="z")


def test_constant_outcome_in_synthetic_control_placebo_is_refused():
    """Item 7: SC placebo on a constant outcome gave p = 0.0 (rank 1 of 39)."""
    with pytest.raises(im.errors.DataError, match=r"constant"):
        _quiet(_sc_placebo, SYNTH.assign(y=2.0))


@pytest.mark.parametrize("weights", [None, "w"])
def test_twfe_covariate_absorbed_by_unit_effects_is_refused(weights):
    """Item 7: a covariate the fixed effects absorb gave k = -1.3e4 with SE 2.8e13 (with weights)."""
    df = PANEL.assign(xu=PANEL.groupby("unit")["x"].transform("mean"))
    with pytest.raises(im.errors.EstimationError, match=r"'xu'.*no variation left after absorbing"):
        _quiet(im.did.twfe, df, outcome="y", treatment="d", unit="unit", time="time", covariates=["xu"], weights=weights)
    with pytest.raises(im.errors.DataError, match=r"covariate 'x' is constant"):
        _quiet(im.did.twfe, PANEL.assign(x=1.0), outcome="y", treatment="d", unit="unit", time="time",
               covariates=["x"], weights=weights)


def test_att_gt_refuses_a_cohort_between_periods():
    """Item 8: att_gt accepted cohort 2004.5 (read as 2005)."""
    df = PANEL.assign(cohort=PANEL["cohort"].astype(float).replace(2005.0, 2004.5))
    with pytest.raises(im.errors.DataError, match=r"2004.5.*not periods"):
        _quiet(im.did.att_gt, df, outcome="y", unit="unit", time="time", cohort="cohort")


def test_synthetic_control_refuses_post_treatment_mspe_periods_and_idle_predictor_periods():
    """Item 8: mspe_periods after treatment moved Prop 99's ATT from -19.5 to +6.5; predictor_periods
    was silently ignored."""
    with pytest.raises(im.errors.SpecError, match=r"mspe_periods \[2001, 2002, 2003\] are after"):
        _quiet(_sc, SYNTH, mspe_periods=range(1995, 2004))
    with pytest.raises(im.errors.SpecError, match=r"predictor_periods.*no effect"):
        _quiet(_sc, SYNTH, predictor_periods=[1995, 1996])
    with pytest.warns(im.errors.FragileInferenceWarning, match="first treated period"):
        _sc(SYNTH, mspe_periods=range(1990, 2001))  # the Mixtape's Texas replication does this


@pytest.mark.parametrize("level", [0, 1, 1.5, float("nan")])
def test_difference_in_means_level_out_of_range(level):
    """Item 8: level 0, 1, 1.5 or NaN returned NaN intervals."""
    with pytest.raises(im.errors.SpecError, match=r"level must be a number strictly between 0 and 1"):
        im.rct.difference_in_means(CROSS, outcome="y", treatment="d", level=level)


def test_assign_refuses_fractional_counts_and_a_single_cluster():
    """Item 8: assign(n=2.5) treated 2 units silently; method='cluster' with one cluster treated everyone."""
    with pytest.raises(im.errors.SpecError, match=r"n must be a whole number; got 2.5"):
        im.rct.assign(CROSS, n=2.5, seed=1)
    with pytest.raises(im.errors.DataError, match=r"at least as many clusters"):
        im.rct.assign(CROSS.assign(one=1), method="cluster", clusters="one", seed=1)
    assert (im.rct.assign(CROSS, n=3.0, seed=1).data["assignment"] == "treatment").sum() == 3


def test_matched_did_refuses_treatment_that_switches_off():
    """Item 9: matched_did accepted treatment that switches off."""
    df = PANEL.copy()
    df.loc[(df["unit"] == "r00") & (df["time"] == 2008), "d"] = 0
    with pytest.raises(im.errors.DataError, match=r"absorbing.*r00"):
        _quiet(im.matching.matched_did, df, outcome="y", unit="unit", time="time", treatment="d")


def test_text_time_sorts_as_numbers_in_twfe():
    """Item 10: '10' < '2' gave a false 'treatment switches off at Year=3' in twfe."""
    df = PANEL.assign(time=(PANEL["time"] - 2000).astype(str))  # '1'..'8'
    df = pd.concat([df, df.assign(time=(PANEL["time"] - 1990).astype(str), unit=df["unit"] + "b")])  # + '11'..'18'
    res = _quiet(im.did.twfe, df, outcome="y", treatment="d", unit="unit", time="time")
    assert math.isfinite(res.estimate)
    with pytest.raises(im.errors.DataError, match=r"time column 'time' holds text that is not a number"):
        im.did.twfe(PANEL.assign(time="Y" + PANEL["time"].astype(str)), outcome="y", treatment="d", unit="unit", time="time")


def test_datetime_time_in_synthetic_control_matches_numeric_years():
    """Item 10: datetime time broke synthetic_control."""
    df = SYNTH.assign(time=pd.to_datetime(SYNTH["time"].astype(str) + "-01-01"))
    res = _quiet(_sc, df, treatment_time="2000-01-01")
    assert res.estimate == pytest.approx(base(CASE_BY_NAME["synthetic_control"])[0], rel=1e-9)
    with pytest.raises(im.errors.DataError, match=r"holds dates"):
        _quiet(im.did.event_study, PANEL.assign(time=pd.to_datetime(PANEL["time"].astype(str) + "-01-01")),
               outcome="y", unit="unit", time="time", cohort="cohort")


def test_messages_name_the_actual_cause():
    """Item 11: inf in an outcome gave 'no pre-treatment coefficients'; inf in a covariate 'no variation left'."""
    df = _set(PANEL, "y", PANEL.index[0], np.inf)
    with pytest.raises(im.errors.DataError, match=r"unbalanced after the missing-value step dropped 1 row\(s\) with missing or infinite values \(y: 1 infinite"):
        _quiet(im.did.att_gt, df, outcome="y", unit="unit", time="time", cohort="cohort")
    df = _set(CROSS, "x1", CROSS.index[5], -np.inf)
    with pytest.warns(im.errors.MissingDataWarning, match=r"x1: 1 infinite; first rows: 5\)"):
        im.rct.lin(df, outcome="y", treatment="d", covariates=["x1"])


def test_typed_errors_instead_of_tracebacks():
    """Item 12: duplicated index labels, lee_bounds, late with a covariate named 'const', notyet without
    not-yet-treated units, wrong argument types."""
    dup = CROSS.set_axis(np.zeros(len(CROSS), dtype=int))
    assert _quiet(im.rct.lee_bounds, dup, outcome="y", treatment="d", observed="observed", seed=1).estimate == \
        pytest.approx(_quiet(_lee, CROSS).estimate)
    assert _quiet(_match, dup).estimate == pytest.approx(_quiet(_match, CROSS).estimate)
    named = CROSS.assign(const=CROSS["x1"])
    assert _quiet(im.rct.late, named, outcome="y", treatment="take", assignment="z", covariates=["const"]).estimate == \
        pytest.approx(_quiet(_late, CROSS).estimate)
    only_treated = PANEL.loc[PANEL["cohort"] == 2005]
    with pytest.raises(im.errors.ImpactError):
        _quiet(im.did.att_gt, only_treated, outcome="y", unit="unit", time="time", cohort="cohort", control_group="notyet")
    with pytest.raises(im.errors.SpecError, match="level"):
        im.did.twfe(PANEL, outcome="y", treatment="d", unit="unit", time="time", level="0.95")
    with pytest.raises(im.errors.SpecError, match="seed"):
        im.rct.randomization_test(CROSS, outcome="y", treatment="d", seed=-1)
    with pytest.raises(im.errors.SpecError, match="outcome= is required"):
        im.did.twfe(PANEL, outcome=None, treatment="d", unit="unit", time="time")
    with pytest.raises(im.errors.SpecError, match="effect must be a finite number"):
        im.rct.power(effect=float("nan"), n=100)
