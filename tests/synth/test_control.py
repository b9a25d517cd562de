"""Abadie synthetic control: published reproductions, the exact QP, placebos and bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

import impact as im
from impact.errors import DataError, FragileInferenceWarning, OverlapWarning, SmallComparisonWarning, SpecError
from impact.synth._qp import simplex_least_squares

SC = im.synth.synthetic_control
PROP99 = dict(outcome="PacksPerCapita", unit="State", time="Year", treated_unit="California", treatment_time=1989)

# Cunningham, Causal Inference: The Mixtape (2021), ch. 10, texas_synth.do:
#   synth bmprison bmprison(1990) bmprison(1992) bmprison(1991) bmprison(1988) alcohol(1990)
#     aidscapita(1990) aidscapita(1991) income ur poverty black(1990) black(1991) black(1992)
#     perc1519(1990), trunit(48) trperiod(1993) unitnames(state) mspeperiod(1985(1)1993)
# Stata synth's default V is its regression-based V (no `nested` option).
TEXAS = dict(
    outcome="bmprison", unit="state", time="year", treated_unit="Texas", treatment_time=1993,
    predictors=["income", "ur", "poverty"],
    special_predictors=[
        ("bmprison", 1990), ("bmprison", 1992), ("bmprison", 1991), ("bmprison", 1988), ("alcohol", 1990),
        ("aidscapita", 1990), ("aidscapita", 1991), ("black", 1990), ("black", 1991), ("black", 1992), ("perc1519", 1990),
    ],
    mspe_periods=range(1985, 1994),
)
MIXTAPE_WEIGHTS = {"California": 0.394, "Florida": 0.095, "Illinois": 0.394, "Louisiana": 0.118}


def test_prop99_outcome_only_matches_exact_simplex_fit(prop99):
    # PROVENANCE.md: the exact simplex least-squares fit on the outcome alone gives -19.51
    # (Abadie et al. 2010 report -19.6 with covariates; Stata sdid's SC -19.48). Tolerance 0.01.
    res = SC(prop99, **PROP99)
    assert res.estimate == pytest.approx(-19.51, abs=0.01)
    assert res.settings["v_method"] == "outcome_only"
    w = res.weights.to_numpy()
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0, abs=1e-12)
    # Independent check of optimality: SLSQP on the same problem cannot do better.
    pre = prop99.loc[prop99["Year"] < 1989].pivot(index="State", columns="Year", values="PacksPerCapita")
    z1, z0 = pre.loc["California"].to_numpy(), pre.drop(index="California").to_numpy().T
    ours = np.mean((z1 - z0 @ res.weights.reindex(pre.drop(index="California").index).to_numpy()) ** 2)
    other = optimize.minimize(
        lambda w: np.mean((z1 - z0 @ w) ** 2), np.full(38, 1 / 38), method="SLSQP", bounds=[(0, 1)] * 38,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}], options={"ftol": 1e-14, "maxiter": 2000},
    )
    assert ours <= other.fun + 1e-8
    assert res.diagnostics["pre_rmspe"] == pytest.approx(np.sqrt(ours), rel=1e-10)


def test_texas_regression_v_reproduces_mixtape_weights(texas):
    # Mixtape ch. 10 (Stata synth, regression-based V): California .394, Florida .095, Illinois .394,
    # Louisiana .118. Same four donors; each weight within 0.04. The residual differences come from
    # Stata's QP plugin (an interior-point method stopped at margin 0.005, reporting rounded
    # weights) against our exact active-set solution, with the same V construction.
    res = SC(texas, v_method="regression", **TEXAS)
    positive = res.weights[res.weights > 1e-3]
    assert set(positive.index) == set(MIXTAPE_WEIGHTS)
    for state, weight in MIXTAPE_WEIGHTS.items():
        assert positive[state] == pytest.approx(weight, abs=0.04)
    assert res.v_weights is not None and res.v_weights.sum() == pytest.approx(1.0)
    assert list(res.balance.columns) == ["predictor", "treated", "synthetic", "donor_mean", "v_weight"]


def test_texas_nested_v_improves_the_pre_fit(texas):
    # The nested V minimises the outcome MSPE over mspe_periods; it must do at least as well as the
    # regression-based V it starts from (and as equal weights).
    nested = SC(texas, v_method="nested", **TEXAS)
    regression = SC(texas, v_method="regression", **TEXAS)
    equal = SC(texas, v_method="equal", **TEXAS)
    assert nested.diagnostics["mspe_loss"] <= regression.diagnostics["mspe_loss"] + 1e-9
    assert nested.diagnostics["mspe_loss"] <= equal.diagnostics["mspe_loss"] + 1e-9
    # Deterministic: the same call gives the same weights bit for bit.
    again = SC(texas, v_method="nested", **TEXAS)
    pd.testing.assert_series_equal(nested.weights, again.weights)


@pytest.mark.parametrize("seed", range(25))
def test_active_set_qp_satisfies_kkt(seed):
    rng = np.random.default_rng(seed)
    m, J = int(rng.integers(2, 20)), int(rng.integers(2, 40))
    A = rng.normal(size=(m, J))
    b = rng.normal(size=m) * rng.uniform(0, 2)
    sol = simplex_least_squares(A.T @ A, A.T @ b)
    w = sol.weights
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0, abs=1e-12)
    grad = A.T @ (A @ w - b)
    mu = grad[w > 0].mean()
    scale = max(1.0, np.abs(grad).max())
    assert np.all(np.abs(grad[w > 0] - mu) <= 1e-8 * scale)  # stationarity on the support
    assert np.all(grad[w == 0] >= mu - 1e-8 * scale)  # no improving vertex off it


def test_simulated_factor_model_recovers_effect(make_panel):
    df = make_panel(n_units=30, n_periods=30, adoption=20, effect=5.0, noise=0.3, seed=3)
    res = SC(df, outcome="y", unit="unit", time="time", treated_unit="u29", treatment_time=20)
    # True effect 5 in every post period; the pre-fit is good, so the ATT is within about 3 noise sds.
    assert res.estimate == pytest.approx(5.0, abs=1.0)
    with_predictor = SC(df, outcome="y", unit="unit", time="time", treated_unit="u29", treatment_time=20,
                        predictors=["x"], special_predictors=[("y", t) for t in (5, 10, 15, 19)])
    assert with_predictor.estimate == pytest.approx(5.0, abs=1.5)


def test_placebo_p_value_is_the_rank_of_the_ratio(prop99):
    res = SC(prop99, **PROP99, inference="none")
    pl = res.placebo()
    assert SC(prop99, **PROP99).p_value == pl.p_value  # placebo inference is the default
    table = pl.placebo_table
    assert len(table) == 39 and table["treated"].iloc[0]
    ratio = table["ratio"].to_numpy()
    assert pl.p_value == pytest.approx(np.mean(ratio >= ratio[0]))
    assert pl.diagnostics["placebo_rank"] == int(np.sum(ratio > ratio[0]) + 1)
    assert pl.estimate == res.estimate  # inference never changes the estimate
    assert res.placebo_table is None  # the original result is untouched
    dropped = res.placebo(drop_poor_fit=2)
    assert dropped.diagnostics["placebo_units"] < 38
    titles = set(pl.figures())
    assert {"In-space placebo gaps", "Post/pre RMSPE ratios", "Donor weights", "Treated and synthetic paths"} <= titles
    json.dumps(pl.to_dict())
    with pytest.raises(SpecError):
        res.placebo(drop_poor_fit=-1)


def test_in_time_placebo_and_leave_one_out(make_panel):
    df = make_panel(n_units=25, n_periods=30, adoption=20, effect=5.0, noise=0.3, seed=5)
    res = SC(df, outcome="y", unit="unit", time="time", treated_unit="u24", treatment_time=20)
    fake = res.in_time_placebo(14)
    # No programme before period 20: the fake 'effect' is small relative to the real one.
    assert abs(fake.estimate) < 1.5
    assert fake.paths["time"].max() == 19
    loo = res.leave_one_out()
    table = loo.diagnostics["leave_one_out"]
    assert set(table["dropped"]) == set(res.weights[res.weights > 1e-8].index)
    assert "Leave-one-out synthetic controls" in loo.figures()
    with pytest.raises(SpecError):
        res.in_time_placebo(25)


def test_figures_draw(prop99):
    import matplotlib

    matplotlib.use("Agg")
    res = SC(prop99, **PROP99).placebo().leave_one_out()
    for title, draw in res.figures().items():
        ax = draw(None)
        assert ax is not None, title


def test_does_not_mutate_input(prop99):
    before = prop99.copy()
    SC(prop99, **PROP99)
    pd.testing.assert_frame_equal(prop99, before)


# -- bad input -----------------------------------------------------------------------------------

def test_treated_unit_missing_pre_period_outcome(prop99):
    df = prop99.copy()
    df.loc[(df["State"] == "California") & (df["Year"] == 1980), "PacksPerCapita"] = np.nan
    with pytest.raises(DataError, match="treated unit 'California' has missing 'PacksPerCapita' in pre-period.*1980"):
        SC(df, **PROP99)


def test_more_predictors_than_pre_periods_warns(make_panel):
    df = make_panel(n_units=20, n_periods=8, adoption=4, seed=1)
    with pytest.warns(FragileInferenceWarning, match="6 predictors but only 4 pre-periods"):
        res = SC(df, outcome="y", unit="unit", time="time", treated_unit="u19", treatment_time=4,
                 predictors=["x"], special_predictors=[("y", 0), ("y", 1), ("y", 2), ("y", 3), ("x", 3)])
    assert any("FragileInferenceWarning" in w for w in res.warnings)


def test_donor_pool_of_one(prop99):
    with pytest.raises(DataError, match="donor pool has 1 unit"):
        SC(prop99, donors=["Utah"], **PROP99)


def test_treated_outside_convex_hull_warns_and_reports_fit(make_panel):
    df = make_panel(n_units=20, n_periods=20, adoption=15, seed=2)
    df.loc[df["unit"] == "u19", "y"] += 50.0  # far above every donor
    with pytest.warns(OverlapWarning, match="outside the donors' convex hull.*RMSPE"):
        res = SC(df, outcome="y", unit="unit", time="time", treated_unit="u19", treatment_time=15)
    assert res.diagnostics["pre_rmspe"] > 10


def test_unbalanced_panel_names_units_and_periods(prop99):
    df = prop99.loc[~((prop99["State"] == "Utah") & (prop99["Year"].isin([1975, 1976])))]
    with pytest.raises(DataError, match=r"unbalanced.*'Utah' lacks Year 1975, 1976"):
        SC(df, **PROP99)


def test_option_and_column_errors(prop99):
    with pytest.raises(SpecError, match="v_method"):
        SC(prop99, v_method="bfgs", **PROP99)
    with pytest.raises(DataError, match="did you mean"):
        SC(prop99, **{**PROP99, "outcome": "PacksPerCapit"})
    with pytest.raises(DataError, match="treated_unit='Atlantis'"):
        SC(prop99, **{**PROP99, "treated_unit": "Atlantis"})
    with pytest.raises(SpecError, match="special predictor"):
        SC(prop99, special_predictors=["PacksPerCapita"], **PROP99)


@pytest.mark.slow
def test_placebo_p_values_uniform_under_the_null(make_panel):
    # Under no effect and exchangeable units the permutation p-value is (super-)uniform:
    # P(p <= 0.1) should be about 0.1. 120 simulated panels; binomial sd ~0.027.
    p_values = []
    for seed in range(120):
        df = make_panel(n_units=20, n_periods=20, adoption=15, effect=0.0, noise=1.0, seed=1000 + seed)
        treated = f"u{seed % 20:02d}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p_values.append(SC(df, outcome="y", unit="unit", time="time", treated_unit=treated, treatment_time=15).placebo().p_value)
    p_values = np.array(p_values)
    assert np.mean(p_values <= 0.1) <= 0.1 + 3 * 0.027
    assert np.mean(p_values <= 0.5) == pytest.approx(0.5, abs=0.15)


def test_custom_v_equals_equal_method(texas):
    k = len(TEXAS["predictors"]) + len(TEXAS["special_predictors"])
    custom = SC(texas, custom_v=[2.0] * k, **TEXAS)
    equal = SC(texas, v_method="equal", **TEXAS)
    np.testing.assert_allclose(custom.weights.to_numpy(), equal.weights.to_numpy(), atol=1e-12)
    assert custom.settings["v_method"] == "custom"
    with pytest.raises(SpecError, match="custom_v has 2 weights"):
        SC(texas, custom_v=[1.0, 1.0], **TEXAS)


def test_placebo_pool_with_and_without_treated(prop99):
    res = SC(prop99, **PROP99)
    with_treated = res.placebo()
    without = res.placebo(include_treated_in_pool=False)
    # Same units ranked; the treated unit's own ratio does not depend on the placebo pools.
    assert with_treated.placebo_table["ratio"].iloc[0] == without.placebo_table["ratio"].iloc[0]
    assert list(with_treated.placebo_table["unit"]) == list(without.placebo_table["unit"])


def test_predictor_after_treatment_is_rejected(texas):
    with pytest.raises(SpecError, match=r"bmprison\(1992\).*at or after treatment_time=1991"):
        SC(texas, v_method="regression", **{**TEXAS, "treatment_time": 1991, "mspe_periods": None})


def test_period_p_values_rank_the_gap_relative_to_the_pre_period_fit(prop99):
    # Independent recomputation from the placebo gaps: each period's p-value is the share of units whose
    # |gap_t| / pre-period RMSPE is at least California's.
    res = SC(prop99, **PROP99)
    gaps = res.placebo_gaps.to_numpy()
    pre = np.asarray(res.placebo_gaps.index < 1989)
    studentised = np.abs(gaps[~pre]) / np.sqrt(np.mean(gaps[pre] ** 2, axis=0))
    expected = np.mean(studentised >= studentised[:, :1] * (1 - 1e-9), axis=1)
    rows = res.tidy().loc[lambda t: t["term"].str.startswith("t=")]
    np.testing.assert_allclose(rows["p_value"].to_numpy(), expected, rtol=0, atol=1e-12)
    assert rows["inference"].str.contains("absolute gap / pre-period RMSPE").all()


def test_period_p_values_do_not_reject_a_noisier_treated_unit_without_effect():
    # The bug: per-period rows ranked the raw |gap_t|, so a treated region whose noise sd is 4 times the
    # donors' (no effect) had the largest gap in most periods and p = 1/20 (the 'treated noisier'
    # design of analyses/simulations/synth_size.py rejected 22% at 5%). Studentised by each unit's
    # pre-period fit, its gaps are ordinary.
    rng = np.random.default_rng(11)
    n_units, n_periods, start = 20, 14, 9
    sd = np.where(np.arange(n_units) == 0, 4.0, 1.0)
    y = rng.normal(0, 1, n_units)[:, None] + np.linspace(0, 2, n_periods)[None, :] + sd[:, None] * rng.normal(size=(n_units, n_periods))
    df = pd.DataFrame({"unit": np.repeat(np.arange(n_units), n_periods), "time": np.tile(np.arange(n_periods), n_units), "y": y.ravel()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = SC(df, outcome="y", unit="unit", time="time", treated_unit=0, treatment_time=start)
    gaps = res.placebo_gaps.to_numpy()[start:]
    raw = np.mean(np.abs(gaps) >= np.abs(gaps[:, :1]), axis=1)
    assert np.mean(raw <= 0.05) >= 0.6  # what the raw rank reported
    rows = res.tidy().loc[lambda t: t["term"].str.startswith("t=")]
    assert (rows["p_value"] > 0.05).all()


def _shift_treated(df, unit, start, tau):
    out = df.copy()
    rows = (out["unit"] == unit) & (out["time"] >= start)
    out.loc[rows, "y"] = out.loc[rows, "y"] - tau
    return out


def test_placebo_interval_inverts_the_test_checked_by_refitting(make_panel):
    # Independent check of the test inversion: subtract a constant effect tau from the treated unit's
    # post-period outcomes, refit everything (treated fit and every placebo) and recompute the
    # permutation p-value. Inside the interval p > alpha, just outside p <= alpha (tolerance 1e-6 in tau).
    df = make_panel(n_units=25, n_periods=16, adoption=11, effect=3.0, noise=0.6, seed=4)
    call = dict(outcome="y", unit="unit", time="time", treated_unit="u24", treatment_time=11)
    res = SC(df, **call, level=0.9)
    low, high = res.conf_int()
    assert np.isfinite([low, high]).all() and low < res.estimate < high
    assert res.tidy()["conf_low"].notna().all() and res.tidy()["conf_high"].notna().all()
    for inside, outside in ((low + 1e-6, low - 1e-6), (high - 1e-6, high + 1e-6)):
        assert SC(_shift_treated(df, "u24", 11, inside), **call, level=0.9).p_value > 0.1
        assert SC(_shift_treated(df, "u24", 11, outside), **call, level=0.9).p_value <= 0.1
    # The p-value and the interval agree: 0 is outside the interval exactly when p <= 1 - level.
    rows = res.tidy()
    assert ((rows["conf_low"] <= 0) & (rows["conf_high"] >= 0)).tolist() == (rows["p_value"] > 0.1).tolist()
    assert rows["std_error"].isna().all()  # no SE by design; the inference column says so
    assert rows["inference"].iloc[0].startswith("placebo permutation over 24 donors")
    assert "no standard error" in res.inference


def test_one_treated_of_twenty_warns_that_the_smallest_p_is_one_twentieth(make_panel):
    df = make_panel(n_units=20, n_periods=14, adoption=10, effect=0.0, noise=1.0, seed=2)
    with pytest.warns(SmallComparisonWarning, match=r"1/20 = 0\.050"):
        res = SC(df, outcome="y", unit="unit", time="time", treated_unit="u19", treatment_time=10)
    assert res.diagnostics["placebo_smallest_p_value"] == pytest.approx(0.05)
    with pytest.warns(SmallComparisonWarning, match=r"cannot reject"):
        few = SC(df.loc[df["unit"] < "u15"], outcome="y", unit="unit", time="time", treated_unit="u03", treatment_time=10)
    assert few.conf_int() == (-np.inf, np.inf)
    none = SC(df, outcome="y", unit="unit", time="time", treated_unit="u19", treatment_time=10, inference="none")
    assert none.placebo_table is None and np.isnan(none.p_value)
    with pytest.raises(SpecError, match="inference"):
        SC(df, outcome="y", unit="unit", time="time", treated_unit="u19", treatment_time=10, inference="exact")


@pytest.mark.slow
def test_default_placebo_test_has_its_size_with_one_treated_of_twenty(size_design):
    # Issue 10: the default p-value rejects a true null at 5% between 3% and 7% with 1 treated of 20
    # (homoskedastic and heteroskedastic AR(1) errors). 1,000 replications of the design of
    # analyses/simulations/synth_size.py; binomial sd 0.007, so the band is about 3 sd wide.
    sim = size_design
    for errors in ("homoskedastic", "heteroskedastic"):
        rng = np.random.default_rng([2026, len(errors)])
        hits = []
        for _ in range(1000):
            frame, D = sim.simulate(rng, 1, "block", errors)
            unit = int(np.flatnonzero(D.max(axis=1))[0])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = SC(frame, outcome="y", unit="unit", time="year", treated_unit=unit, treatment_time=sim.START).p_value
            hits.append(p <= 0.05)
        assert 0.03 <= np.mean(hits) <= 0.07, errors
