"""Tests of Callaway & Sant'Anna group-time ATTs and their aggregations (impact.did.att_gt)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.did import att_gt
from impact.errors import (
    DataError,
    FewClustersWarning,
    FewTreatedClustersWarning,
    SampleWarning,
    SpecError,
)

MP = {"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"}


@pytest.fixture(scope="module")
def mpdta() -> pd.DataFrame:
    return im.datasets.load("mpdta")


@pytest.fixture(scope="module")
def mp_result(mpdta: pd.DataFrame):
    return att_gt(mpdta, **MP, method="reg")


# ---------------------------------------------------------------------------------------------------
# mpdta: R did README, att_gt(yname="lemp", tname="year", idname="countyreal", gname="first.treat",
# xformla=NULL, data=mpdta, est_method="reg") and aggte(..., type=...) with analytic SEs
# (values as listed in /work/shared/datasets/PROVENANCE.md). Tolerance 1e-4 on estimates (the README
# prints 4 decimals, so 0.5e-4 rounding + margin), 2% on standard errors.
README_ATT_GT = {
    (2004, 2004): -0.0105, (2004, 2005): -0.0704, (2004, 2006): -0.1373, (2004, 2007): -0.1008,
    (2006, 2004): 0.0065, (2006, 2005): -0.0028, (2006, 2006): -0.0046, (2006, 2007): -0.0412,
    (2007, 2004): 0.0305, (2007, 2005): -0.0027, (2007, 2006): -0.0311, (2007, 2007): -0.0261,
}
README_AGGREGATES = {"simple": (-0.0400, 0.0120), "dynamic": (-0.0772, 0.0200),
                     "group": (-0.0310, 0.0125), "calendar": (-0.0417, 0.0160)}
README_EVENT_TIME = {-3: 0.0305, -2: -0.0006, -1: -0.0245, 0: -0.0199, 1: -0.0510, 2: -0.1373, 3: -0.1008}
README_GROUP = {2004: -0.0797, 2006: -0.0229, 2007: -0.0261}


def test_mpdta_group_time_effects(mp_result) -> None:
    table = mp_result.group_time()
    assert len(table) == 12
    for (g, t), value in README_ATT_GT.items():
        row = table.loc[(table["group"] == g) & (table["time"] == t)].iloc[0]
        assert row["term"] == f"g={g},t={t}"
        assert row["estimate"] == pytest.approx(value, abs=1e-4)
        assert row["event_time"] == t - g


@pytest.mark.parametrize("kind", list(README_AGGREGATES))
def test_mpdta_aggregations(mp_result, kind: str) -> None:
    estimate, std_error = README_AGGREGATES[kind]
    agg = mp_result.aggregate(kind)
    assert agg.headline == "ATT"
    assert agg.estimate == pytest.approx(estimate, abs=1e-4)
    assert agg.std_error == pytest.approx(std_error, rel=0.02)


def test_mpdta_event_time_and_group_effects(mp_result) -> None:
    dynamic = mp_result.aggregate("dynamic").tidy().set_index("term")
    for e, value in README_EVENT_TIME.items():
        assert dynamic.loc[f"e={e}", "estimate"] == pytest.approx(value, abs=1e-4)
        assert dynamic.loc[f"e={e}", "event_time"] == e
    group = mp_result.aggregate("group").tidy().set_index("term")
    for g, value in README_GROUP.items():
        assert group.loc[f"g={g}", "estimate"] == pytest.approx(value, abs=1e-4)


def test_mpdta_simple_headline_equals_simple_aggregation(mp_result) -> None:
    simple = mp_result.aggregate("simple")
    assert mp_result.estimate == pytest.approx(simple.estimate, abs=1e-12)
    assert mp_result.std_error == pytest.approx(simple.std_error, rel=1e-12)


def test_mpdta_pretrend_wald(mpdta: pd.DataFrame, mp_result) -> None:
    # R did README's summary of the same att_gt call: "P-value for pre-test of parallel trends
    # assumption: 0.16812" (Wald test of the 5 pre-treatment ATT(g,t) with the analytic covariance);
    # impact gives it with inference="analytic".
    test = att_gt(mpdta, **MP, method="reg", inference="analytic").diagnostics["pretrend_wald"]
    assert test["df_num"] == 5
    assert test["p_value"] == pytest.approx(0.16812, abs=1e-4)
    # the default keeps the analytic effects (191 treated, 309 untreated counties) but tests pre-trends by
    # randomisation: the Wald test over-rejects with cohorts of tens of units (issue 10, few_treated.py)
    default = mp_result.diagnostics["pretrend_wald"]
    assert mp_result.inference.startswith("analytic") and "randomisation test" in default["method"]
    assert 0.01 < default["p_value"] < 1


# ---------------------------------------------------------------------------------------------------
# Peer reference: csdid 0.4.3 (Python port of R did), analytic SEs, on mpdta:
#   ATTgt(yname="lemp", tname="year", idname="countyreal", gname="first.treat", data=mpdta, **init)
#     .fit(bstrap=False, **fit); results["att"], results["se"]
# Tolerances: 1e-7 on ATT(g,t) (values rounded to 8 decimals), 1e-5 relative on SEs.
CSDID = {
    "dr_lpop": ({"covariates": "lpop", "method": "dr"}, [
        (2004, 2004, -0.01452967, 0.02212916), (2004, 2005, -0.07642188, 0.02867131), (2004, 2006, -0.14044834, 0.03537815),
        (2004, 2007, -0.1069039, 0.03288649), (2006, 2004, -0.00047215, 0.02222344), (2006, 2005, -0.00620252, 0.0184957),
        (2006, 2006, 0.00096057, 0.0194002), (2006, 2007, -0.04129387, 0.01972114), (2007, 2004, 0.0267278, 0.01406566),
        (2007, 2005, -0.00457657, 0.01571776), (2007, 2006, -0.02844749, 0.01818088), (2007, 2007, -0.02878136, 0.01623895)]),
    "ipw_lpop": ({"covariates": "lpop", "method": "ipw"}, [
        (2004, 2004, -0.01454843, 0.02211453), (2004, 2005, -0.07644986, 0.02864886), (2004, 2006, -0.1404646, 0.035371),
        (2004, 2007, -0.10693256, 0.03288915), (2006, 2004, -0.00086856, 0.02215284), (2006, 2005, -0.00639724, 0.01845733),
        (2006, 2006, 0.00120805, 0.01948793), (2006, 2007, -0.04130823, 0.0197214), (2007, 2004, 0.0265561, 0.01404416),
        (2007, 2005, -0.0046609, 0.01566916), (2007, 2006, -0.0283403, 0.01818931), (2007, 2007, -0.02889477, 0.01624641)]),
    "reg_lpop": ({"covariates": "lpop", "method": "reg"}, [
        (2004, 2004, -0.01491124, 0.02205569), (2004, 2005, -0.07699632, 0.02835975), (2004, 2006, -0.1410801, 0.03483629),
        (2004, 2007, -0.10754427, 0.03273769), (2006, 2004, -0.00206606, 0.02212229), (2006, 2005, -0.00696828, 0.01834579),
        (2006, 2006, 0.00076553, 0.01919591), (2006, 2007, -0.04153564, 0.01971687), (2007, 2004, 0.02636583, 0.01401895),
        (2007, 2005, -0.00475984, 0.01566997), (2007, 2006, -0.02850211, 0.01813207), (2007, 2007, -0.02878949, 0.01616787)]),
    "notyet": ({"control_group": "notyet"}, [
        (2004, 2004, -0.01937236, 0.02231011), (2004, 2005, -0.0783191, 0.03039023), (2004, 2006, -0.13627435, 0.03540338),
        (2004, 2007, -0.10081136, 0.03435923), (2006, 2004, -0.00256255, 0.02253024), (2006, 2005, -0.00193925, 0.01904216),
        (2006, 2006, 0.00466088, 0.01633558), (2006, 2007, -0.04122447, 0.02022918), (2007, 2004, 0.02975936, 0.01453354),
        (2007, 2005, -0.00241061, 0.0160313), (2007, 2006, -0.03108712, 0.01787751), (2007, 2007, -0.02605441, 0.01665544)]),
    "universal": ({"base_period": "universal"}, [
        (2004, 2003, 0.0, math.nan), (2004, 2004, -0.01050325, 0.02325104), (2004, 2005, -0.07042316, 0.03098477),
        (2004, 2006, -0.13725874, 0.03643566), (2004, 2007, -0.10081136, 0.03435923), (2006, 2003, -0.00376929, 0.03134203),
        (2006, 2004, 0.00275082, 0.01955856), (2006, 2005, 0.0, math.nan), (2006, 2006, -0.00459461, 0.0177552),
        (2006, 2007, -0.04122447, 0.02022918), (2007, 2003, 0.00330636, 0.02445187), (2007, 2004, 0.03381301, 0.02112917),
        (2007, 2005, 0.03108712, 0.01787751), (2007, 2006, 0.0, math.nan), (2007, 2007, -0.02605441, 0.01665544)]),
    "anticipation": ({"anticipation": 1}, [
        (2006, 2004, 0.00652011, 0.02332681), (2006, 2005, -0.00275082, 0.01955856), (2006, 2006, -0.00734543, 0.02294286),
        (2006, 2007, -0.04397529, 0.02657877), (2007, 2004, 0.03050666, 0.01503356), (2007, 2005, -0.00272589, 0.01639583),
        (2007, 2006, -0.03108712, 0.01787751), (2007, 2007, -0.05714153, 0.02021016)]),
}


@pytest.mark.parametrize("case", list(CSDID))
def test_mpdta_matches_csdid(mpdta: pd.DataFrame, case: str) -> None:
    options, reference = CSDID[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleWarning)  # anticipation=1 drops cohort 2004 (as csdid)
        table = att_gt(mpdta, **MP, **options).group_time()
    assert len(table) == len(reference)
    for g, t, estimate, std_error in reference:
        row = table.loc[(table["group"] == g) & (table["time"] == t)].iloc[0]
        assert row["estimate"] == pytest.approx(estimate, abs=1e-7)
        if math.isnan(std_error):
            assert math.isnan(row["std_error"])
        else:
            assert row["std_error"] == pytest.approx(std_error, rel=1e-5)


def test_cells_with_covariates_equal_two_period_drdid(mpdta: pd.DataFrame) -> None:
    # one post cell = the 2x2 traditional DR estimator on cohort 2006 + never treated, 2005 vs 2007
    res = att_gt(mpdta, **MP, covariates="lpop", method="dr").group_time().set_index("term")
    sub = mpdta.loc[mpdta["year"].isin([2005, 2007]) & mpdta["first.treat"].isin([0, 2006])]
    two = im.did.drdid(sub.assign(d=(sub["first.treat"] == 2006).astype(int)), outcome="lemp", unit="countyreal",
                       time="year", treatment="d", covariates="lpop", method="trad")
    assert res.loc["g=2006,t=2007", "estimate"] == pytest.approx(two.estimate, abs=1e-12)


def test_methods_coincide_without_covariates(mpdta: pd.DataFrame, mp_result) -> None:
    for method in ("ipw", "dr"):
        other = att_gt(mpdta, **MP, method=method)
        np.testing.assert_allclose(other.tidy()["estimate"], mp_result.tidy()["estimate"], atol=1e-12)


def test_missing_cohort_means_never_treated(mpdta: pd.DataFrame, mp_result) -> None:
    data = mpdta.assign(**{"first.treat": mpdta["first.treat"].replace(0, np.nan)})
    res = att_gt(data, **MP)
    np.testing.assert_allclose(res.tidy()["estimate"], mp_result.tidy()["estimate"], atol=1e-12)
    assert not res.warnings  # no missing-value warning: missing cohort is a valid code


def test_treatment_column_gives_the_same_cohorts(mpdta: pd.DataFrame, mp_result) -> None:
    data = mpdta.assign(d=((mpdta["first.treat"] > 0) & (mpdta["year"] >= mpdta["first.treat"])).astype(int))
    res = att_gt(data, outcome="lemp", unit="countyreal", time="year", treatment="d")
    # cohort 2004 loses nothing: it is treated from 2004, the second period
    np.testing.assert_allclose(res.tidy()["estimate"], mp_result.tidy()["estimate"], atol=1e-12)


def test_input_not_mutated_and_result_serialisable(mpdta: pd.DataFrame) -> None:
    data = mpdta.assign(**{"first.treat": mpdta["first.treat"].replace(0, np.nan)})
    before = data.copy()
    res = att_gt(data, **MP, bootstrap=99, seed=1)
    pd.testing.assert_frame_equal(data, before)
    json.dumps(res.to_dict())
    json.dumps(res.aggregate("dynamic").to_dict())
    assert "g=2004,t=2006" in res.summary()


def test_figures_draw(mp_result) -> None:
    import matplotlib

    matplotlib.use("Agg")
    for res in (mp_result, mp_result.aggregate("dynamic"), mp_result.aggregate("group")):
        for draw in res.figures().values():
            ax = draw(None)
            assert ax.has_data()


def test_dynamic_options(mp_result) -> None:
    dyn = mp_result.aggregate("dynamic", min_e=-1, max_e=2).tidy()
    assert list(dyn["term"]) == ["ATT", "e=-1", "e=0", "e=1", "e=2"]
    # balance_e=1: only cohorts observed at least one period after treatment (2004 and 2006)
    bal = mp_result.aggregate("dynamic", balance_e=1).tidy().set_index("term")
    e0 = mp_result.group_time().set_index("term").loc[["g=2004,t=2004", "g=2006,t=2006"], "estimate"]
    weights = np.array([20, 40]) / 60  # cohort sizes in mpdta
    assert bal.loc["e=0", "estimate"] == pytest.approx(float(weights @ e0.to_numpy()), abs=1e-12)
    assert "e=2" not in bal.index
    with pytest.raises(SpecError, match="kind"):
        mp_result.aggregate("event")


# ---------------------------------------------------------------------------------------------------
# Multiplier bootstrap


def test_bootstrap_seeded_and_close_to_analytic(mpdta: pd.DataFrame, mp_result) -> None:
    a = att_gt(mpdta, **MP, bootstrap=999, seed=42)
    b = att_gt(mpdta, **MP, bootstrap=999, seed=42)
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())
    analytic = mp_result.tidy()["std_error"].to_numpy()
    boot = a.tidy()["std_error"].to_numpy()
    # 999 draws: IQR-based SEs have Monte Carlo error of about 4%; allow 15%
    np.testing.assert_allclose(boot, analytic, rtol=0.15)
    crit = a.diagnostics["band_critical_value"]
    z = 1.959963984540054
    # 12 correlated cells: the uniform critical value lies between the pointwise and Bonferroni ones
    assert z < crit < 3.2
    gt = a.group_time()
    assert (gt["band_low"] <= gt["conf_low"] + 1e-12).all() and (gt["band_high"] >= gt["conf_high"] - 1e-12).all()
    dyn = a.aggregate("dynamic")
    assert "band_critical_value" in dyn.diagnostics and dyn.tidy()["band_low"].iloc[1:].notna().all()
    # R did README, bootstrapped aggte(dynamic): SE 0.0196; group: 0.0123 (Monte Carlo: 15%)
    assert dyn.std_error == pytest.approx(0.0196, rel=0.15)
    assert a.aggregate("group").std_error == pytest.approx(0.0123, rel=0.15)


def test_multiplier_engine_matches_analytic_variance() -> None:
    from impact.inference.multiplier import multiplier_bootstrap

    rng = np.random.default_rng(0)
    psi = rng.normal(size=(5000, 3)) * np.array([1.0, 2.0, 3.0])
    analytic = np.sqrt((psi**2).sum(axis=0)) / 5000
    for kind in ("rademacher", "mammen"):
        draws = multiplier_bootstrap(psi, n_draws=4000, seed=1, kind=kind, scale="sd", estimates=np.zeros(3))
        np.testing.assert_allclose(draws.std_errors, analytic, rtol=0.05)
        assert draws.draws.shape == (4000, 3)
        # independent columns: the uniform critical value is near the Sidak value for 3 tests (2.39)
        assert 2.25 < draws.critical_value < 2.55
    clustered = multiplier_bootstrap(psi, n_draws=2000, seed=1, clusters=np.arange(5000) // 10, scale="sd")
    sums = np.stack([np.bincount(np.arange(5000) // 10, weights=psi[:, j]) for j in range(3)], axis=1)
    np.testing.assert_allclose(clustered.std_errors, np.sqrt((sums**2).sum(axis=0)) / 5000, rtol=0.07)
    with pytest.raises(SpecError):
        multiplier_bootstrap(psi, n_draws=1)
    # chunking only bounds memory: the draws are the same whatever the chunk size
    whole = multiplier_bootstrap(psi, n_draws=50, seed=3)
    chunked = multiplier_bootstrap(psi, n_draws=50, seed=3, chunk_elements=12_000)
    np.testing.assert_allclose(whole.deviations, chunked.deviations, rtol=1e-5, atol=1e-9)  # float32 sums


# ---------------------------------------------------------------------------------------------------
# Bad input


def _panel(n: int = 400, periods: int = 6, seed: int = 0, cohorts=(0, 3, 5)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.choice(cohorts, size=n)
    unit = np.repeat(np.arange(n), periods)
    t = np.tile(np.arange(1, periods + 1), n)
    G = g[unit]
    y = rng.normal(size=n)[unit] + 0.2 * t + np.where((G > 0) & (t >= G), 1.0, 0.0) + rng.normal(size=n * periods)
    return pd.DataFrame({"id": unit, "t": t, "g": G, "y": y, "region": unit % 40, "x": rng.normal(size=n)[unit]})


KW = {"outcome": "y", "unit": "id", "time": "t", "cohort": "g"}


def test_no_never_treated_suggests_notyet() -> None:
    data = _panel(cohorts=(3, 5, 6))
    with pytest.raises(DataError, match="notyet"):
        att_gt(data, **KW)
    with pytest.warns(SampleWarning, match="last cohort"):
        res = att_gt(data, **KW, control_group="notyet")
    assert res.group_time()["time"].max() == 5  # periods from the last cohort (6) on are dropped
    assert set(res.group_time()["group"]) == {3, 5}


def test_cells_without_comparison_units() -> None:
    data = _panel(cohorts=(0, 3, 5))
    data = data.loc[~((data["g"] == 0) & (data["id"] % 1 == 0))]  # drop every never-treated unit
    data = pd.concat([data, _panel(n=3, cohorts=(0,), seed=9).assign(id=lambda f: f["id"] + 10_000)])
    data = data.loc[~((data["id"] >= 10_000) & (data["t"] == 6))]  # comparison units unbalanced ...
    with pytest.raises(DataError, match="unbalanced"):
        att_gt(data, **KW)
    # ... and dropped, leaving none
    with pytest.warns(SampleWarning, match="3 unit"), pytest.raises(DataError, match="no never-treated units"):
        att_gt(data, **KW, unbalanced="drop_units")
    # not-yet-treated comparison with one cohort left and no never treated: no comparison at all
    only = _panel(cohorts=(3,))
    with pytest.warns(SampleWarning), pytest.raises(DataError):
        att_gt(only, **KW, control_group="notyet")


def test_empty_comparison_cells_named() -> None:
    # never-treated units present but with zero sampling weight: no usable comparison units
    data = _panel(cohorts=(0, 3, 5))
    data["w"] = np.where(data["g"] == 0, 0.0, 1.0)
    with pytest.raises(DataError, match="no comparison units for 10 group-time cell"):
        att_gt(data, **KW, weights="w")
    # with not-yet-treated comparisons, cohort 3 lacks them once cohort 5 is treated, cohort 5 once
    # cohort 3 is (from t=3 on)
    with pytest.raises(DataError, match=r"no comparison units for 6 group-time cell\(s\) \(g=3,t=5, g=3,t=6, g=5,t=3"):
        att_gt(data, **KW, weights="w", control_group="notyet")


def test_units_treated_in_first_period_dropped() -> None:
    data = _panel(cohorts=(0, 1, 3, 5))
    n_first = data.loc[data["g"] == 1, "id"].nunique()
    with pytest.warns(SampleWarning, match=f"dropped {n_first} unit"):
        res = att_gt(data, **KW)
    assert res.n_units == data["id"].nunique() - n_first
    assert any(step.step == "treated in first period" for step in res.sample_flow)
    assert 1 not in set(res.group_time()["group"])


def test_non_absorbing_treatment() -> None:
    data = _panel()
    data["d"] = ((data["g"] > 0) & (data["t"] >= data["g"])).astype(int)
    data.loc[(data["g"] == 3) & (data["t"] == 5), "d"] = 0
    with pytest.raises(DataError, match="absorbing"):
        att_gt(data, outcome="y", unit="id", time="t", treatment="d")
    with pytest.raises(SpecError, match="exactly one"):
        att_gt(data, outcome="y", unit="id", time="t", cohort="g", treatment="d")


def test_duplicates_and_varying_cohort_and_cluster() -> None:
    data = _panel()
    with pytest.raises(DataError, match="share the same"):
        att_gt(pd.concat([data, data.iloc[[3]]]), **KW)
    bad = data.copy()
    bad.loc[bad.index[1], "g"] = 5 if bad.loc[bad.index[1], "g"] != 5 else 3
    with pytest.raises(DataError, match="constant within"):
        att_gt(bad, **KW)
    bad_cluster = data.copy()
    bad_cluster.loc[bad_cluster.index[2], "region"] = 99
    with pytest.raises(DataError, match="'region' must be constant within"):
        att_gt(bad_cluster, **KW, cluster="region")


def test_few_clusters_warn_with_counts() -> None:
    data = _panel()
    data["state"] = data["id"] % 8
    with pytest.warns(FewClustersWarning, match="only 8 clusters"):
        res = att_gt(data, **KW, cluster="state")
    assert res.n_clusters == 8
    data["state2"] = np.where(data["g"] > 0, data["id"] % 3, 3 + data["id"] % 40)
    with pytest.warns(FewTreatedClustersWarning, match="only 3 treated cluster"):
        att_gt(data, **KW, cluster="state2")


def test_invalid_options() -> None:
    data = _panel()
    for bad in ({"control_group": "never_treated"}, {"method": "imp"}, {"base_period": "fixed"},
                {"anticipation": -1}, {"bootstrap": 1}, {"bootstrap": True}, {"level": 95}, {"panel": "no"}):
        with pytest.raises(SpecError):
            att_gt(data, **KW, **bad)
    with pytest.raises(DataError, match="did you mean"):
        att_gt(data, outcome="yy", unit="id", time="t", cohort="g")


def test_unbalanced_panel_dropped_with_count() -> None:
    data = _panel()
    short = data.drop(index=data.index[(data["id"] < 7) & (data["t"] == 2)])
    with pytest.raises(DataError, match="7 of 400"):
        att_gt(short, **KW)
    with pytest.warns(SampleWarning, match="dropped 7 unit"):
        res = att_gt(short, **KW, unbalanced="drop_units")
    assert res.n_units == 393
    assert res.settings["unbalanced"] == "drop_units"


def test_allow_unbalanced_still_works_but_says_it_drops() -> None:
    # issue 17 item 4: the old flag name hid that incomplete units are dropped
    from impact.errors import ImpactDeprecationWarning

    data = _panel()
    short = data.drop(index=data.index[(data["id"] < 7) & (data["t"] == 2)])
    with pytest.warns(ImpactDeprecationWarning, match="DROPS incomplete units.*unbalanced='drop_units'"):
        res = att_gt(short, **KW, allow_unbalanced=True)
    new = att_gt(short, **KW, unbalanced="drop_units")
    pd.testing.assert_frame_equal(res.tidy(), new.tidy())
    kept = att_gt(short, **KW, unbalanced="keep")  # R did's allow_unbalanced_panel = TRUE: no unit dropped
    assert kept.n_units == 400 and kept.settings["unbalanced"] == "keep"


def test_cluster_at_unit_equals_unclustered(mpdta: pd.DataFrame, mp_result) -> None:
    res = att_gt(mpdta, **MP, cluster="countyreal")
    np.testing.assert_allclose(res.tidy()["std_error"], mp_result.tidy()["std_error"], rtol=1e-12)


def test_frequency_weights_equal_duplicated_units() -> None:
    data = _panel(seed=3)
    data["w"] = np.where(data["id"] % 4 == 0, 2.0, 1.0)
    weighted = att_gt(data, **KW, weights="w")
    copies = data.loc[data["w"] == 2.0].assign(id=lambda f: f["id"] + 100_000)
    duplicated = att_gt(pd.concat([data, copies]), **KW)
    np.testing.assert_allclose(weighted.tidy()["estimate"], duplicated.tidy()["estimate"], atol=1e-12)
    for kind in ("dynamic", "group", "calendar"):
        assert weighted.aggregate(kind).estimate == pytest.approx(duplicated.aggregate(kind).estimate, abs=1e-12)


# ---------------------------------------------------------------------------------------------------
# Simulation with heterogeneous, dynamic effects (staggered): truth ATT(g,t) = 1 + 0.5 (t - g) + 0.2 g


def _staggered(n: int, seed: int, periods: int = 8, cohorts=(0, 3, 4, 6)) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    # selection on x and trends depending on x: unconditional parallel trends fail, conditional hold
    g = np.array(cohorts)[np.minimum((rng.random(size=n) * len(cohorts) + 0.6 * (x > 0)).astype(int), len(cohorts) - 1)]
    unit = np.repeat(np.arange(n), periods)
    t = np.tile(np.arange(1, periods + 1), n)
    G = g[unit]
    effect = np.where((G > 0) & (t >= G), 1 + 0.5 * (t - G) + 0.2 * G, 0.0)
    y = rng.normal(size=n)[unit] + 0.3 * t + 0.4 * t * x[unit] + effect + rng.normal(size=n * periods)
    truth = {(gg, tt): 1 + 0.5 * (tt - gg) + 0.2 * gg for gg in cohorts if gg for tt in range(gg, periods + 1)}
    return pd.DataFrame({"id": unit, "t": t, "g": G, "y": y, "x": x[unit]}), truth


def test_simulation_recovers_heterogeneous_dynamic_effects() -> None:
    data, truth = _staggered(6000, seed=1)
    res = att_gt(data, **KW, covariates="x", method="dr")
    gt = res.group_time()
    post = gt.loc[gt["post"]]
    errors = [(row.estimate - truth[(row.group, row.time)]) / row.std_error for row in post.itertuples()]
    assert np.max(np.abs(errors)) < 4
    pre = gt.loc[~gt["post"]]
    assert np.max(np.abs(pre["estimate"] / pre["std_error"])) < 4
    assert res.diagnostics["pretrend_wald"]["p_value"] > 0.001
    # without the covariate, the x-dependent trends bias the estimates and the pre-test sees it
    naive = att_gt(data, **KW)
    assert naive.diagnostics["pretrend_wald"]["p_value"] < 1e-6
    dyn = res.aggregate("dynamic").tidy().set_index("term")
    e_truth = {e: np.mean([1 + 0.5 * e + 0.2 * g for g in (3, 4, 6) if g + e <= 8]) for e in range(6)}
    # cohort-size-weighted in the estimator; cohorts have unequal sizes, so compare with a tolerance
    # of 4 SE plus the spread of the truth across cohorts (0.2 per cohort step)
    for e, value in e_truth.items():
        assert abs(dyn.loc[f"e={e}", "estimate"] - value) < 4 * dyn.loc[f"e={e}", "std_error"] + 0.3


def test_simulation_coverage() -> None:
    """95% CIs of ATT(g,t) (DR with the covariate) cover the truth about 95% of the time.

    200 replications x 14 post cells; each cell's coverage is binomial(200, 0.95): pooled coverage
    must lie within [0.92, 0.975]. Runs in about 15 s on 2 cores."""
    hits, total = 0, 0
    for rep in range(200):
        data, truth = _staggered(800, seed=1000 + rep)
        gt = att_gt(data, **KW, covariates="x", method="dr").group_time()
        post = gt.loc[gt["post"]]
        values = np.array([truth[(g, t)] for g, t in zip(post["group"], post["time"])])
        hits += int(((post["conf_low"] <= values) & (values <= post["conf_high"])).sum())
        total += len(post)
    assert 0.92 <= hits / total <= 0.975


def test_time_varying_covariates_taken_from_base_period(mpdta: pd.DataFrame) -> None:
    # lpop is time-invariant in mpdta; adding noise in periods that are never a base period of a
    # post-treatment cell (2007) leaves the post-treatment ATT(g,t) unchanged
    noisy = mpdta.assign(lpop=np.where(mpdta["year"] == 2007, mpdta["lpop"] + 1.0, mpdta["lpop"]))
    a = att_gt(mpdta, **MP, covariates="lpop", method="dr").group_time().set_index("term")
    b = att_gt(noisy, **MP, covariates="lpop", method="dr")
    assert "covariates_note" in b.diagnostics
    b = b.group_time().set_index("term")
    post = a.index[a["post"]]
    np.testing.assert_allclose(b.loc[post, "estimate"], a.loc[post, "estimate"], atol=1e-12)


# csdid 0.4.3, sampling weights w = 1 + countyreal % 3, DR with lpop, analytic SEs:
#   a = ATTgt(yname="lemp", tname="year", idname="countyreal", gname="first.treat", data=mpdta,
#             xformla="lemp~lpop", weights_name="w"); a.fit(est_method="dr", bstrap=False)
#   a.aggte(typec=..., bstrap=False) -> overall_att, overall_se, att_egt, se_egt
# Tolerances: 1e-7 on estimates, 1e-5 relative on SEs (values rounded to 8 decimals).
CSDID_WEIGHTED = {
    "simple": ([-0.03387409], [0.01295779]),
    "dynamic": ([-0.06961576, 0.02409559, -0.01339681, -0.02537962, -0.01676085, -0.03891012, -0.13379923, -0.08899284],
                [0.02092569, 0.01543968, 0.01376952, 0.01534826, 0.0135869, 0.01772765, 0.03830945, 0.03597618]),
    "group": ([-0.0259754, -0.07210754, -0.01681148, -0.02206771], [0.01402295, 0.02787407, 0.01848753, 0.01891604]),
    "calendar": ([-0.0352116, -0.01152348, -0.05411463, -0.04439974, -0.03080854],
                 [0.01702054, 0.02397428, 0.03407401, 0.02136328, 0.01505046]),
}


def test_weighted_aggregations_match_csdid(mpdta: pd.DataFrame) -> None:
    data = mpdta.assign(w=1.0 + mpdta["countyreal"] % 3)
    res = att_gt(data, **MP, covariates="lpop", method="dr", weights="w")
    for kind, (estimates, std_errors) in CSDID_WEIGHTED.items():
        table = res.aggregate(kind).tidy()
        np.testing.assert_allclose(table["estimate"], estimates, atol=1e-7)
        np.testing.assert_allclose(table["std_error"], std_errors, rtol=1e-5)


def test_webb_multiplier_bootstrap_for_few_clusters() -> None:
    # Issue 3: aggregated CS effects with a wild (Webb) bootstrap of clustered influence functions.
    # mpdta has no state identifier, so counties are grouped into 20 pseudo-regions by id; Webb and
    # Rademacher draws must agree with the analytic clustered SE up to Monte Carlo error.
    import impact as im

    mpdta = im.datasets.load("mpdta")
    mpdta["region"] = pd.factorize(mpdta["countyreal"])[0] % 20
    kwargs = dict(outcome="lemp", unit="countyreal", time="year", cohort="first.treat", cluster="region")
    with pytest.warns(im.errors.FewClustersWarning, match="20 clusters"):
        analytic = im.did.att_gt(mpdta, **kwargs).aggregate("dynamic")
        webb = im.did.att_gt(mpdta, **kwargs, bootstrap=1999, bootstrap_weights="webb", seed=3).aggregate("dynamic")
    assert "Webb weights" in webb.inference and "20 clusters" in webb.inference
    assert webb.estimate == pytest.approx(analytic.estimate, abs=1e-12)
    assert webb.std_error == pytest.approx(analytic.std_error, rel=0.15)
    with pytest.raises(im.errors.SpecError, match="bootstrap_weights"):
        im.did.att_gt(mpdta, **kwargs, bootstrap=99, bootstrap_weights="normal")


def test_dynamic_aggregation_feeds_pretrend_test_and_honest() -> None:
    # The dynamic aggregation carries the covariance of its rows (from the influence functions), so the
    # shared pre-trend test and the Rambachan-Roth sensitivity work on it as on an event study.
    import impact as im

    mpdta = im.datasets.load("mpdta")
    dyn = im.did.att_gt(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                        base_period="universal").aggregate("dynamic")
    se = np.sqrt(np.diag(dyn.vcov))
    tidy = dyn.tidy()
    assert np.allclose(se[tidy["std_error"].notna()], tidy["std_error"].dropna(), rtol=1e-10)
    test = dyn.pretrend_test()
    assert test["event_times"] == [-4, -3, -2] and 0 < test["p_value"] < 1
    sensitivity = dyn.honest_relative_magnitude(Mbar=[0, 1], test="bonferroni")
    rows = sensitivity.tidy().set_index("term")
    # Mbar = 0 is parallel trends: the original interval (for the Bonferroni set; the default hybrid test
    # has its own Mbar = 0 interval); a larger Mbar can only widen it
    assert rows.loc["Mbar=0", "conf_low"] == pytest.approx(rows.loc["original", "conf_low"], abs=1e-10)
    assert rows.loc["Mbar=1", "conf_high"] > rows.loc["Mbar=0", "conf_high"]
