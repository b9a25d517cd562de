"""Tests of impact.did.event_study and the shared pre-trend test (impact.did.pretrends)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.did.pretrends import pretrend_test, pretrend_wald
from impact.errors import DataError, EstimationError, SampleWarning, SpecError


def simulate(seed=1, n_units=400, n_periods=10, noise=0.2, never=True, heterogeneous=True):
    """Staggered panel: cohorts 4, 6, 8 and never treated (or cohorts 4, 7, 9 and no never-treated).

    Effects grow with event time at a cohort-specific slope, so TWFE is contaminated; ``tau`` is the
    true effect of each observation.
    """
    rng = np.random.default_rng(seed)
    cohorts = np.array([4, 6, 8, 0] if never else [4, 7, 9])
    g = cohorts[rng.integers(0, len(cohorts), n_units)]
    slope = {4: 0.30, 6: 0.15, 7: 0.1, 8: 0.05, 9: 0.05, 0: 0.0} if heterogeneous else dict.fromkeys((4, 6, 7, 8, 9), 0.2) | {0: 0.0}
    unit = np.repeat(np.arange(n_units), n_periods)
    t = np.tile(np.arange(1, n_periods + 1), n_units)
    gi = np.repeat(g, n_periods)
    e = t - gi
    treated = (gi > 0) & (e >= 0)
    level = 0.5 * (gi == 4) if heterogeneous else 0.0
    tau = np.where(treated, np.array([slope[v] for v in gi]) * (e + 1) + level, 0.0)
    y = rng.normal(0, 1, n_units)[unit] + np.sin(t / 2.0) + tau + rng.normal(0, noise, len(t))
    return pd.DataFrame({"unit": unit, "time": t, "cohort": gi, "y": y, "tau": tau, "D": treated.astype(int)})


def dense_twfe(y, X, unit, time, weights=None):
    """Independent check: OLS/WLS with explicit unit and period dummies (small data only)."""
    U = pd.get_dummies(pd.Series(unit).astype(str)).to_numpy(float)
    T = pd.get_dummies(pd.Series(time).astype(str), drop_first=True).to_numpy(float)
    Z = np.column_stack([X, U, T])
    w = np.ones(len(y)) if weights is None else np.sqrt(weights)
    Zw = Z * w[:, None]
    coef = np.linalg.solve(Zw.T @ Zw, Zw.T @ (y * w))  # full rank: all units, periods but one
    return coef[: X.shape[1]]


@pytest.fixture(scope="module")
def mpdta():
    return im.datasets.load("mpdta")


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


class TestMpdtaAgainstPyfixest:
    # Reference: pyfixest 0.60.0,
    #   rel = year - first.treat (never treated: -1000)
    #   pf.feols("lemp ~ i(rel, ref=-1.0) | countyreal + year", mpdta, vcov={"CRV1": "countyreal"})
    # coefficients e = -4, -3, -2, 0, 1, 2, 3.
    COEF = (0.0035493269, 0.024623502, 0.0233548149, -0.018143927, -0.0434723726, -0.1317948578, -0.0922467942)
    # same call: fixest small-sample factor (FE nested in clusters not counted)
    SE_FIXEST = (0.0228285814, 0.0176793712, 0.0134366994, 0.0109822183, 0.017576947, 0.0288374074, 0.0323361932)
    # same call with ssc=pf.ssc(k_fixef="full"): every fixed effect counted, = Stata's CR1
    SE_FULL = (0.0255321109, 0.0197730931, 0.0150279727, 0.0122828138, 0.019658539, 0.0322525464, 0.0361656843)

    def test_coefficients_and_cr1(self, mpdta):
        res = quiet(im.did.event_study, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
        tidy = res.tidy()
        rows = tidy.loc[~tidy["reference"] & tidy["event_time"].notna()]
        assert rows["event_time"].tolist() == [-4, -3, -2, 0, 1, 2, 3]
        np.testing.assert_allclose(rows["estimate"], self.COEF, atol=1e-9)  # printed to 10 digits
        np.testing.assert_allclose(rows["std_error"], self.SE_FULL, rtol=1e-8)
        ref = tidy.loc[tidy["term"] == "e=-1"].iloc[0]
        assert ref["estimate"] == 0 and ref["reference"] and math.isnan(ref["std_error"])
        # headline: equally weighted average of e = 0..3 with its delta-method standard error
        assert res.headline == "ATT (average e>=0)"
        assert res.estimate == pytest.approx(np.mean(self.COEF[3:]), abs=1e-9)
        post = rows["event_time"].to_numpy() >= 0
        idx = np.flatnonzero((tidy["event_time"] >= 0).to_numpy())
        V = res.vcov[np.ix_(idx, idx)]
        assert res.std_error == pytest.approx(math.sqrt(np.full(4, 0.25) @ V @ np.full(4, 0.25)), rel=1e-12)
        assert post.sum() == 4
        assert res.n_clusters == 500 and res.n_obs == 2500 and res.n_treated == 191

    def test_cr1_fixest_convention(self, mpdta):
        res = quiet(im.did.event_study, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                    vcov="CR1-fixest")
        rows = res.tidy().loc[lambda t: ~t["reference"] & t["event_time"].notna()]
        # pyfixest counts the 5 period effects, impact's CR1-fixest the 4 identified ones: 2e-4 relative
        np.testing.assert_allclose(rows["std_error"], self.SE_FIXEST, rtol=5e-4)


def test_binned_endpoints_match_dense_regression():
    d = simulate(seed=3, n_units=120)
    res = quiet(im.did.event_study, d, outcome="y", unit="unit", time="time", cohort="cohort", leads=3, lags=2)
    e = np.where(d["cohort"] > 0, d["time"] - d["cohort"], np.nan)
    binned = np.clip(e, -3, 2)
    cols = [k for k in range(-3, 3) if k != -1]
    X = np.column_stack([(binned == k).astype(float) for k in cols])
    expected = dense_twfe(d["y"].to_numpy(), X, d["unit"], d["time"])
    got = res.tidy().set_index("term").loc[[f"e={k}" for k in cols], "estimate"].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-8)
    assert "binned" in res.diagnostics["binning"]


def test_trimmed_window_drops_observations_and_weights():
    d = simulate(seed=4, n_units=120)
    d["w"] = np.random.default_rng(0).uniform(0.5, 2, len(d))
    res = quiet(im.did.event_study, d, outcome="y", unit="unit", time="time", cohort="cohort", leads=2, lags=2,
                bin_endpoints=False, weights="w")
    e = np.where(d["cohort"] > 0, d["time"] - d["cohort"], np.nan)
    keep = np.isnan(e) | ((e >= -2) & (e <= 2))
    cols = [-2, 0, 1, 2]
    X = np.column_stack([(e[keep] == k).astype(float) for k in cols])
    expected = dense_twfe(d["y"].to_numpy()[keep], X, d["unit"][keep], d["time"][keep], d["w"].to_numpy()[keep])
    got = res.tidy().set_index("term").loc[[f"e={k}" for k in cols], "estimate"].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-8)
    assert res.n_obs == int(keep.sum())
    assert res.sample_flow[-1].step == "event window"
    assert any("SampleWarning" in w for w in res.warnings)


def test_pretrend_test_is_the_joint_wald_of_the_leads(mpdta):
    res = quiet(im.did.event_study, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                inference="analytic")
    test = res.diagnostics["pretrend_test"]
    idx = np.flatnonzero((res.tidy()["event_time"] < -1).to_numpy())
    b = res.tidy()["estimate"].to_numpy()[idx]
    W = float(b @ np.linalg.solve(res.vcov[np.ix_(idx, idx)], b))
    assert test["df_num"] == 3 and test["df_denom"] == 499
    assert test["chi2"] == pytest.approx(W, rel=1e-10)
    from scipy import stats

    assert test["p_value"] == pytest.approx(stats.f.sf(W / 3, 3, 499), rel=1e-10)
    assert test == pretrend_test(res)
    with pytest.raises(EstimationError, match="no estimated pre-treatment"):
        pretrend_wald([0, 1], [0.1, 0.2], np.eye(2))


def test_default_pretrend_test_above_the_threshold_is_a_randomisation_test(mpdta):
    # mpdta: 309 treated and 191 untreated counties, so "auto" keeps the effects analytic (CR1), but the
    # pre-trend F-test over-rejects with cohorts of this size (analyses/simulations/few_treated_threshold.csv:
    # 0.077-0.087 at 5%), so the default pre-test permutes start years (500 units <= RI_MAX_UNITS)
    kw = {"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"}
    for design in (im.did.event_study, im.did.sun_abraham):
        res = quiet(design, mpdta, **kw, n_permutations=199, seed=1)
        assert "randomisation" not in res.tidy()["inference"].iloc[0]  # the effects stay analytic
        test = pretrend_test(res)
        assert "randomisation" in test["method"] and 0 < test["p_value"] <= 1
        analytic = pretrend_test(quiet(design, mpdta, **kw, inference="analytic"))
        assert "randomisation" not in analytic["method"]


def test_simulation_twfe_contaminated_but_truth_in_sun_abraham():
    """Heterogeneous dynamic effects: the dynamic TWFE shows spurious pre-trends (true leads are 0)."""
    d = simulate(seed=1)
    es = quiet(im.did.event_study, d, outcome="y", unit="unit", time="time", cohort="cohort")
    leads = es.tidy().loc[lambda t: t["event_time"] <= -4, "estimate"]
    assert leads.min() > 0.2  # bias of at least 0.2 at every lead e <= -4 (truth 0, SE about 0.03)
    # the analytic F-test of the leads rejects: it tests the contaminated coefficients, not the trends
    analytic = quiet(im.did.event_study, d, outcome="y", unit="unit", time="time", cohort="cohort", inference="analytic")
    assert analytic.diagnostics["pretrend_test"]["p_value"] < 1e-6
    # the default pre-test (300 treated units: randomisation over start years, 9,999 draws) is exact for
    # parallel pre-trends: it confines the leads to periods 1-3, before the earliest start (4), where no
    # unit is treated under any assignment, so the post-period heterogeneity behind the biased leads cannot
    # enter it, and pre-trends are parallel here by construction
    test = es.diagnostics["pretrend_test"]
    assert test["pre_periods"] == 3 and "before the earliest start" in test["method"]
    assert test["p_value"] > 0.05


def test_homogeneous_effects_recovered_with_coverage():
    d = simulate(seed=7, heterogeneous=False, n_units=300)
    res = quiet(im.did.event_study, d, outcome="y", unit="unit", time="time", cohort="cohort")
    tidy = res.tidy().set_index("term")
    for k in range(7):
        truth = 0.2 * (k + 1)
        row = tidy.loc[f"e={k}"]
        assert row["conf_low"] - 0.01 < truth < row["conf_high"] + 0.01
    assert res.diagnostics["pretrend_test"]["p_value"] > 0.001


def test_vcov_kinds_and_cr2(mpdta):
    base = quiet(im.did.event_study, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    for kind in ("iid", "HC1", "CR2"):
        res = quiet(im.did.event_study, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", vcov=kind)
        np.testing.assert_allclose(res.tidy()["estimate"], base.tidy()["estimate"], atol=1e-10)
        assert np.all(res.tidy()["std_error"].dropna() > 0)
    cr2 = quiet(im.did.event_study, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", vcov="CR2")
    assert cr2.tidy()["df"].iloc[0] < 499  # Satterthwaite df below G - 1


def test_result_contract(mpdta):
    res = quiet(im.did.event_study, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                leads=3, lags=3)
    json.dumps(res.to_dict())
    assert set(res.figures()) == {"Event study", "Pre-trends"}
    import matplotlib

    matplotlib.use("Agg")
    for draw in res.figures().values():
        assert draw(None) is not None
    assert "e=-3" in res.tidy()["term"].tolist()
    assert mpdta.columns.tolist() == ["year", "countyreal", "lpop", "lemp", "first.treat", "treat"]


class TestBadInput:
    def test_duplicate_rows(self, mpdta):
        dup = pd.concat([mpdta, mpdta.iloc[[0]]])
        with pytest.raises(DataError, match="share the same countyreal x year"):
            im.did.event_study(dup, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")

    def test_cohort_varies_within_unit(self, mpdta):
        bad = mpdta.copy()
        bad.loc[bad.index[0], "first.treat"] = 2006
        with pytest.raises(DataError, match="must be constant within each countyreal"):
            im.did.event_study(bad, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")

    def test_no_never_treated_fully_dynamic(self):
        d = simulate(seed=2, never=False, n_units=90)
        with pytest.raises(EstimationError, match="no never-treated units"):
            quiet(im.did.event_study, d, outcome="y", unit="unit", time="time", cohort="cohort")
        # a second reference period identifies it (cohorts 4, 7, 9 avoid the parity collinearity of 4, 6, 8)
        res = quiet(im.did.event_study, d, outcome="y", unit="unit", time="time", cohort="cohort", reference=(-1, -8))
        assert res.tidy().set_index("term").loc["e=-8", "reference"]

    def test_window_outside_data_and_options(self, mpdta):
        with pytest.raises(SpecError, match="not observed"):
            im.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", lags=6)
        with pytest.raises(SpecError, match="vcov='wild2'"):
            im.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", vcov="wild2")
        with pytest.raises(SpecError, match="reference"):
            im.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", reference=0)
        with pytest.raises(DataError, match="not found"):
            im.did.event_study(mpdta, outcome="lemp", unit="county", time="year", cohort="first.treat")

    def test_units_treated_in_first_period_reported(self, mpdta):
        d = mpdta.copy()
        d.loc[d["countyreal"] < 8100, "first.treat"] = 2003
        with pytest.warns(SampleWarning, match="treated from the first observed period"):
            res = im.did.event_study(d, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
        assert res.diagnostics["treated_in_first_period"] == d.loc[d["countyreal"] < 8100, "countyreal"].nunique()

    def test_missing_cohort_means_never_treated(self, mpdta):
        d = mpdta.copy()
        d["first.treat"] = d["first.treat"].replace(0, np.nan)
        a = quiet(im.did.event_study, d, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
        b = quiet(im.did.event_study, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
        np.testing.assert_allclose(a.tidy()["estimate"], b.tidy()["estimate"])
        assert d["first.treat"].isna().any()  # the caller's frame is untouched


def test_wild_bootstrap_equals_twfe_wild_for_a_single_post_bin(mpdta):
    """leads=1, lags=0 with binned endpoints is the static TWFE (e>=0 indicator, e<=-1 reference), so the
    restricted wild cluster bootstrap must reproduce im.did.twfe(vcov="wild") draw for draw (same seed)."""
    d = mpdta.assign(D=((mpdta["first.treat"] > 0) & (mpdta["year"] >= mpdta["first.treat"])).astype(int))
    es = quiet(im.did.event_study, d, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
               leads=1, lags=0, vcov="wild", seed=3, n_bootstrap=999)
    tw = quiet(im.did.twfe, d, outcome="lemp", treatment="D", unit="countyreal", time="year", vcov="wild", seed=3,
               n_bootstrap=999)
    row = es.tidy().set_index("term").loc["e=0"]
    assert row["estimate"] == pytest.approx(tw.estimate, abs=1e-12)
    assert row["std_error"] == pytest.approx(tw.std_error, rel=1e-10)
    assert row["p_value"] == pytest.approx(tw.p_value, abs=1e-12)
    assert (row["conf_low"], row["conf_high"]) == pytest.approx(tw.conf_int(), abs=1e-9)
    assert es.settings["bootstrap_weights"] == "webb"
    with pytest.raises(SpecError, match="vcov='wild'"):
        im.did.sun_abraham(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", vcov="wild")
