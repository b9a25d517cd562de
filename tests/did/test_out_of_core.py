"""Tests of the out-of-core path (impact.did.out_of_core): estimates from DuckDB aggregates.

The independent source is the in-memory estimator itself, whose mpdta results are checked against
R did's README in test_att_gt.py (to 1e-4) and against moderndid to 1e-9: the cohort-moment formulas
must reproduce ``att_gt(..., inference="analytic")`` to 1e-10 (absolute, every estimate, standard error,
aggregation and pre-trend statistic), which only an exact rewrite of the same influence functions can.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import DataError, SampleWarning, SpecError

duckdb = pytest.importorskip("duckdb")

MP = {"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"}
TOL = 1e-10  # absolute, on estimates, standard errors, interval ends and Wald statistics (observed ~1e-15)


@pytest.fixture(scope="module")
def mpdta() -> pd.DataFrame:
    return im.datasets.load("mpdta")


def simulated_panel(n_units: int = 3_000, n_periods: int = 8, seed: int = 1, effect: float = 2.0,
                    never_share: float = 0.3) -> pd.DataFrame:
    """Staggered adoption with a constant effect ``effect`` from the start year on, unit and period
    effects, a level far from zero (1,000: centring matters) and heteroskedastic noise."""
    rng = np.random.default_rng(seed)
    periods = np.arange(2001, 2001 + n_periods)
    starts = np.array([2003, 2005, 2006])
    cohort = np.where(rng.random(n_units) < never_share, 0, rng.choice(starts, n_units))
    unit = np.repeat(np.arange(n_units), n_periods)
    year = np.tile(periods, n_units)
    g = np.repeat(cohort, n_periods)
    alpha = np.repeat(rng.normal(0, 3, n_units), n_periods)
    treated = (g > 0) & (year >= g)
    sd = np.where(g > 0, 1.5, 1.0)
    y = 1_000 + alpha + 0.3 * (year - 2000) + 0.1 * g / 2000 + effect * treated + rng.normal(0, 1, len(unit)) * sd
    return pd.DataFrame({"id": unit, "year": year, "first": g, "y": y, "d": treated.astype(int)})


def _assert_same(ooc, mem, kinds=("simple", "dynamic", "group", "calendar")) -> None:
    a, b = ooc.tidy(), mem.tidy()
    assert list(a["term"]) == list(b["term"])
    for column in ("estimate", "std_error", "conf_low", "conf_high", "n_treated", "n_comparison"):
        np.testing.assert_allclose(a[column].to_numpy(float), b[column].to_numpy(float), rtol=0, atol=TOL)
    assert ooc.n_units == mem.n_units and ooc.n_obs == mem.n_obs and ooc.n_treated == mem.n_treated
    wald_a, wald_b = ooc.diagnostics["pretrend_wald"], mem.diagnostics["pretrend_wald"]
    if isinstance(wald_b, dict):
        assert wald_a["statistic"] == pytest.approx(wald_b["statistic"], abs=TOL)
    for kind in kinds:
        x, y = ooc.aggregate(kind).tidy(), mem.aggregate(kind).tidy()
        assert list(x["term"]) == list(y["term"])
        for column in ("estimate", "std_error", "conf_low", "conf_high"):
            np.testing.assert_allclose(x[column].to_numpy(float), y[column].to_numpy(float), rtol=0, atol=TOL,
                                       err_msg=f"{kind} {column}")


@pytest.mark.parametrize("control_group,anticipation,base_period",
                         list(itertools.product(["never", "notyet"], [0, 1], ["varying", "universal"])))
def test_mpdta_equals_in_memory(mpdta, control_group, anticipation, base_period) -> None:
    options = {"control_group": control_group, "anticipation": anticipation, "base_period": base_period}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ooc = im.did.att_gt_from_duckdb(duckdb.from_df(mpdta), **MP, **options)
        mem = im.did.att_gt(mpdta, **MP, **options, inference="analytic")
    # the same warnings (with anticipation 1 the 2004 cohort has no pre-period), under each name
    assert [str(w.message).split(": ", 1)[1] for w in caught[:len(caught) // 2]] == \
        [str(w.message).split(": ", 1)[1] for w in caught[len(caught) // 2:]]
    _assert_same(ooc, mem)
    assert ooc.tidy()["inference"].iloc[0].startswith("analytic influence function, computed from DuckDB aggregates")


def test_mpdta_aggregation_options_equal_in_memory(mpdta) -> None:
    ooc = im.did.att_gt_from_duckdb(duckdb.from_df(mpdta), **MP)
    mem = im.did.att_gt(mpdta, **MP, inference="analytic")
    for kind, options in [("dynamic", {"balance_e": 1}), ("dynamic", {"min_e": -2, "max_e": 2}),
                          ("group", {"max_e": 1}), ("calendar", {"max_e": 0}), ("simple", {"max_e": 2})]:
        x, y = ooc.aggregate(kind, **options), mem.aggregate(kind, **options)
        np.testing.assert_allclose(x.tidy()["estimate"], y.tidy()["estimate"], rtol=0, atol=TOL)
        np.testing.assert_allclose(x.tidy()["std_error"], y.tidy()["std_error"], rtol=0, atol=TOL)
    dyn_a, dyn_b = ooc.aggregate("dynamic"), mem.aggregate("dynamic")
    assert dyn_a.diagnostics["pretrend_wald_event_time"]["statistic"] == pytest.approx(
        dyn_b.diagnostics["pretrend_wald_event_time"]["statistic"], abs=TOL)
    np.testing.assert_allclose(dyn_a.vcov, dyn_b.vcov, rtol=0, atol=TOL)


def test_mpdta_headline_matches_r_did_readme(mpdta) -> None:
    # R did README (mpdta, est_method = "reg"): aggte(type = "simple") -0.0400 (0.0120); "dynamic" -0.0772 (0.0200)
    res = im.did.att_gt_from_duckdb(duckdb.from_df(mpdta), **MP)
    assert res.estimate == pytest.approx(-0.0400, abs=1e-4)
    assert res.std_error == pytest.approx(0.0120, rel=0.02)
    dynamic = res.aggregate("dynamic")
    assert dynamic.estimate == pytest.approx(-0.0772, abs=1e-4)
    assert dynamic.std_error == pytest.approx(0.0200, rel=0.02)


@pytest.mark.parametrize("control_group", ["never", "notyet"])
def test_simulated_panel_equals_in_memory_and_recovers_effect(control_group) -> None:
    df = simulated_panel()
    ooc = im.did.att_gt_from_duckdb(duckdb.from_df(df), outcome="y", unit="id", time="year", cohort="first",
                                    control_group=control_group)
    mem = im.did.att_gt(df, outcome="y", unit="id", time="year", cohort="first", control_group=control_group,
                        inference="analytic")
    _assert_same(ooc, mem)
    # true effect 2 in every post cell, 0 before: the overall ATT within 4 standard errors of 2
    assert abs(ooc.estimate - 2.0) < 4 * ooc.std_error
    pre = ooc.group_time().query("not post")
    assert np.all(np.abs(pre["estimate"]) < 5 * pre["std_error"])


def test_coverage_of_the_true_effect_over_replications() -> None:
    # 40 small panels, true dynamic ATT 2: 95% intervals must cover it in 33..40 of them (binomial(40, .95)
    # puts 99.8% of its mass there); a wrong variance formula (e.g. without the cohort-share term or
    # with raw instead of centred moments) falls outside
    covered = 0
    for seed in range(40):
        df = simulated_panel(n_units=400, n_periods=6, seed=100 + seed)
        res = im.did.att_gt_from_duckdb(duckdb.from_df(df), outcome="y", unit="id", time="year", cohort="first")
        low, high = res.aggregate("dynamic").conf_int()
        covered += low <= 2.0 <= high
    assert 33 <= covered <= 40


def test_treatment_status_equals_cohort_and_in_memory() -> None:
    df = simulated_panel(n_units=600, seed=3)
    by_status = im.did.att_gt_from_duckdb(duckdb.from_df(df), outcome="y", unit="id", time="year", treatment="d")
    by_cohort = im.did.att_gt_from_duckdb(duckdb.from_df(df), outcome="y", unit="id", time="year", cohort="first")
    mem = im.did.att_gt(df, outcome="y", unit="id", time="year", treatment="d", inference="analytic")
    _assert_same(by_status, mem, kinds=("dynamic",))
    np.testing.assert_allclose(by_status.tidy()["estimate"], by_cohort.tidy()["estimate"], rtol=0, atol=TOL)


def test_parquet_paths_and_sql_relations(mpdta, tmp_path) -> None:
    mem = im.did.att_gt(mpdta, **MP, inference="analytic")
    path = tmp_path / "panel"
    path.mkdir()
    for i, (_, part) in enumerate(mpdta.groupby("year")):  # one file per year, read as a folder and as a glob
        part.to_parquet(path / f"year={i}.parquet")
    for source in (path, str(path / "*.parquet")):
        res = im.did.att_gt_from_duckdb(source, **MP, memory_limit="500MB", temp_directory=str(tmp_path / "spill"))
        np.testing.assert_allclose(res.tidy()["std_error"], mem.tidy()["std_error"], rtol=0, atol=TOL)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW panel AS SELECT * FROM read_parquet('{path}/*.parquet')")
    rel = con.sql('SELECT countyreal, "year", lemp, "first.treat" FROM panel WHERE "year" >= 2004')
    with pytest.warns(SampleWarning, match="already treated in the first period 2004"):
        res = im.did.att_gt_from_duckdb(rel, **MP)
    subset = mpdta.loc[mpdta["year"] >= 2004]
    with pytest.warns(SampleWarning):
        mem = im.did.att_gt(subset, **MP, inference="analytic")
    _assert_same(res, mem, kinds=("dynamic",))


def test_late_and_first_period_cohorts_as_in_memory(mpdta) -> None:
    df = mpdta.copy()
    df.loc[(df["first.treat"] == 2007) & (df["countyreal"] % 2 == 0), "first.treat"] = 2009  # after the sample
    never = df.loc[df["first.treat"] == 0, "countyreal"].unique()[:30]
    df.loc[df["countyreal"].isin(never), "first.treat"] = 2003  # treated from the start: dropped
    with pytest.warns(SampleWarning, match="already treated in the first period"):
        ooc = im.did.att_gt_from_duckdb(duckdb.from_df(df), **MP)
    with pytest.warns(SampleWarning, match="already treated in the first period"):
        mem = im.did.att_gt(df, **MP, inference="analytic")
    _assert_same(ooc, mem)
    assert [s.units for s in ooc.sample_flow][-1] == mem.n_units


def test_no_never_treated_with_not_yet_treated_as_in_memory(mpdta) -> None:
    df = mpdta.loc[mpdta["first.treat"] > 0]
    with pytest.warns(SampleWarning, match="no never-treated units"):
        ooc = im.did.att_gt_from_duckdb(duckdb.from_df(df), **MP, control_group="notyet")
    with pytest.warns(SampleWarning, match="no never-treated units"):
        mem = im.did.att_gt(df, **MP, control_group="notyet", inference="analytic")
    _assert_same(ooc, mem, kinds=("simple", "dynamic"))
    with pytest.raises(DataError, match="no never-treated units"):
        im.did.att_gt_from_duckdb(duckdb.from_df(df), **MP)


# -- bad input: the in-memory estimator's error types, found by SQL ------------------------------------------


def _both_raise(df, match, **kw) -> None:
    options = {**MP, **kw}
    with pytest.raises(DataError, match=match):
        im.did.att_gt_from_duckdb(duckdb.from_df(df), **options)
    with pytest.raises(DataError), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # in memory, missing values are dropped (warning) before the panel fails
        im.did.att_gt(df, **options)


def test_unbalanced_panel_raises(mpdta) -> None:
    _both_raise(mpdta.drop(index=[3, 17]), r"unbalanced: 2 of 500 unit\(s\) are not observed in all 5 periods")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_missing_or_infinite_outcome_raises(mpdta, value) -> None:
    df = mpdta.copy()
    df.loc[5, "lemp"] = value
    _both_raise(df, r"missing or infinite in the columns used \(lemp: (missing|infinite) 1\); first rows: countyreal=")


def test_missing_time_raises(mpdta) -> None:
    df = mpdta.copy()
    df["year"] = df["year"].astype(float)
    df.loc[5, "year"] = np.nan
    _both_raise(df, r"year: missing or infinite 1")


def test_duplicate_rows_raise(mpdta) -> None:
    df = pd.concat([mpdta, mpdta.iloc[[10]]], ignore_index=True)
    _both_raise(df, "share the same countyreal x year")


def test_treatment_switching_off_raises() -> None:
    df = simulated_panel(n_units=600, seed=4)
    first_treated = df.loc[df["d"] == 1, "id"].iloc[0]
    df.loc[(df["id"] == first_treated) & (df["year"] == 2008), "d"] = 0
    kw = {"outcome": "y", "unit": "id", "time": "year", "treatment": "d"}
    with pytest.raises(DataError, match=rf"switches off for 1 unit\(s\): {first_treated}"):
        im.did.att_gt_from_duckdb(duckdb.from_df(df), **kw)
    with pytest.raises(DataError, match="switches off"):
        im.did.att_gt(df, **kw)


def test_non_binary_treatment_raises() -> None:
    df = simulated_panel(n_units=600, seed=5)
    df.loc[7, "d"] = 2
    kw = {"outcome": "y", "unit": "id", "time": "year", "treatment": "d"}
    with pytest.raises(DataError, match="must be coded 0/1"):
        im.did.att_gt_from_duckdb(duckdb.from_df(df), **kw)
    with pytest.raises(DataError, match="must be coded 0/1"):
        im.did.att_gt(df, **kw)


def test_cohort_varying_within_unit_raises(mpdta) -> None:
    df = mpdta.copy()
    df.loc[df.index[df["countyreal"] == df["countyreal"].iloc[0]][0], "first.treat"] = 2006
    _both_raise(df, "must be constant within each countyreal but varies for 1 unit")


def test_cohort_off_the_period_grid_raises(mpdta) -> None:
    df = mpdta.assign(**{"first.treat": mpdta["first.treat"].astype(float)})
    df.loc[df["first.treat"] == 2006, "first.treat"] = 2005.5
    _both_raise(df, "not periods of 'year'")


def test_missing_and_non_numeric_columns_raise(mpdta) -> None:
    with pytest.raises(DataError, match=r"outcome='lempp' \(did you mean 'lemp'"):
        im.did.att_gt_from_duckdb(duckdb.from_df(mpdta), **{**MP, "outcome": "lempp"})
    df = mpdta.assign(lemp=mpdta["lemp"].astype(str))
    with pytest.raises(DataError, match="must be numeric but has type VARCHAR"):
        im.did.att_gt_from_duckdb(duckdb.from_df(df), **MP)


def test_few_treated_units_refused_with_the_rule(mpdta) -> None:
    treated = mpdta.loc[mpdta["first.treat"] > 0, "countyreal"].unique()[:20]
    df = mpdta.loc[(mpdta["first.treat"] == 0) | mpdta["countyreal"].isin(treated)]
    with pytest.raises(SpecError, match="fewer than 50 of either, att_gt's default is randomisation inference"):
        im.did.att_gt_from_duckdb(duckdb.from_df(df), **MP)


def test_bad_options_and_sources_raise(mpdta, tmp_path) -> None:
    with pytest.raises(SpecError, match="DuckDB relation"):
        im.did.att_gt_from_duckdb(mpdta, **MP)
    with pytest.raises(DataError, match="no Parquet file or folder"):
        im.did.att_gt_from_duckdb(tmp_path / "absent.parquet", **MP)
    with pytest.raises(SpecError, match="control_group"):
        im.did.att_gt_from_duckdb(duckdb.from_df(mpdta), **MP, control_group="later")
    with pytest.raises(SpecError, match="exactly one of cohort"):
        im.did.att_gt_from_duckdb(duckdb.from_df(mpdta), outcome="lemp", unit="countyreal", time="year")


# -- twfe from the same moments ------------------------------------------------------------------------------


def _with_treat(df: pd.DataFrame, cohort: str) -> pd.DataFrame:
    return df.assign(treat=((df[cohort] > 0) & (df["year"] >= df[cohort])).astype(int))


@pytest.mark.parametrize("data", ["mpdta", "simulated"])
def test_twfe_equals_in_memory_cr1(mpdta, data) -> None:
    # the in-memory twfe(vcov="cluster") reproduces Stata/fixest on organ donations (test_twfe.py); here the
    # moment formulas must give its estimate, CR1 SE, df and interval to 1e-10
    df, kw = ((_with_treat(mpdta, "first.treat"), {"outcome": "lemp", "unit": "countyreal"}) if data == "mpdta"
              else (_with_treat(simulated_panel(n_units=800, seed=9), "first"), {"outcome": "y", "unit": "id"}))
    cohort = "first.treat" if data == "mpdta" else "first"
    mem = im.did.twfe(df, **kw, time="year", treatment="treat", vcov="cluster")
    for timing in ({"treatment": "treat"}, {"cohort": cohort}):
        ooc = im.did.twfe_from_duckdb(duckdb.from_df(df), **kw, time="year", **timing)
        a, b = ooc.tidy().iloc[0], mem.tidy().iloc[0]
        for column in ("estimate", "std_error", "conf_low", "conf_high", "p_value", "df"):
            assert a[column] == pytest.approx(b[column], abs=TOL), column
        assert "computed from DuckDB aggregates" in a["inference"]
        assert (ooc.n_obs, ooc.n_units, ooc.n_clusters, ooc.n_treated) == (mem.n_obs, mem.n_units, mem.n_clusters, mem.n_treated)


def test_twfe_recovers_a_homogeneous_effect() -> None:
    df = simulated_panel(n_units=2_000, seed=11)  # constant effect 2: TWFE is unbiased here
    res = im.did.twfe_from_duckdb(duckdb.from_df(df), outcome="y", unit="id", time="year", cohort="first")
    assert abs(res.estimate - 2.0) < 4 * res.std_error


def test_twfe_bad_input_raises_as_in_memory() -> None:
    df = _with_treat(simulated_panel(n_units=600, seed=12), "first")
    kw = {"outcome": "y", "unit": "id", "time": "year", "treatment": "treat"}
    off = df.copy()
    unit = off.loc[off["treat"] == 1, "id"].iloc[0]
    off.loc[(off["id"] == unit) & (off["year"] == 2008), "treat"] = 0
    with pytest.raises(DataError, match="switches off"):
        im.did.twfe_from_duckdb(duckdb.from_df(off), **kw)
    with pytest.raises(DataError, match="switches off"):
        im.did.twfe(off, **kw, vcov="cluster")
    # in memory twfe also takes unbalanced panels; this path needs a balanced one and says so
    with pytest.raises(DataError, match="unbalanced"):
        im.did.twfe_from_duckdb(duckdb.from_df(df.drop(index=[4])), **kw)
    few = df.loc[(df["first"] == 0) | (df["id"] < 60)]
    with pytest.raises(SpecError, match="twfe's default is randomisation inference"):
        im.did.twfe_from_duckdb(duckdb.from_df(few), **kw)
