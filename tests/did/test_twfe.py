"""Two-way fixed effects DiD: published reproductions, R references, simulation, bad input."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import (
    DataError,
    EstimationError,
    FewClustersWarning,
    FewTreatedClustersWarning,
    MissingDataWarning,
    SpecError,
)
from impact.results import TIDY_COLUMNS

CLUBSANDWICH = json.loads((Path(__file__).parents[1] / "inference" / "reference" / "clubsandwich.json").read_text())


@pytest.fixture(scope="module")
def organ():
    df = im.datasets.load("organ_donations")
    df["treated"] = ((df["State"] == "California") & (df["Quarter_Num"] >= 4)).astype(int)
    return df


def _organ_fit(organ, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewClustersWarning)
        warnings.simplefilter("ignore", FewTreatedClustersWarning)
        return im.did.twfe(organ, outcome="Rate", treatment="treated", unit="State", time="Quarter_Num", **kw)


def test_organ_donations_reproduces_published_twfe(organ):
    # Huntington-Klein, The Effect (2022), ch. 18: Rate ~ Treated | State + Quarter gives -0.0225 (-0.022 in text);
    # state-clustered SE 0.0067 with Stata's small-sample factor (PROVENANCE.md)
    res = _organ_fit(organ, vcov="cluster")  # the analytic CR1 of the reference, requested explicitly
    assert res.estimate == pytest.approx(-0.0225, abs=5e-5)
    assert res.std_error == pytest.approx(0.0067, abs=5e-5)
    # R sandwich::vcovCL(fit, cluster = ~State, type = "HC1") = clubSandwich CR1S (exact reference)
    assert res.std_error == pytest.approx(CLUBSANDWICH["results"]["organ"]["vcovCL_HC1"]["se"], rel=1e-8)
    assert res.n_obs == 162 and res.n_units == 27 and res.n_treated == 1 and res.n_clusters == 27


def test_organ_fixest_convention(organ):
    # pyfixest/fixest feols("Rate ~ Treated | State + Quarter", vcov={"CRV1": "State"}): SE 0.0061 (PROVENANCE.md)
    res = _organ_fit(organ, vcov="CR1-fixest")
    assert res.std_error == pytest.approx(0.0061, abs=5e-5)
    # fixest's factor is G/(G-1) (n-1)/(n-K) with K = 1 + 6 quarters - 1 + 1 = 7 (state effects nested in
    # clusters are not counted, one parameter is added back for the nested set: fixest issue #554);
    # clubSandwich CR1 is G/(G-1) only, so the ratio is sqrt(161/155). Exact pyfixest values: test_ssc_fixest.py
    cr1 = CLUBSANDWICH["results"]["organ"]["CR1"]["se"]
    assert res.std_error == pytest.approx(cr1 * np.sqrt(161 / 155), rel=1e-8)


def test_organ_cr2_matches_clubsandwich(organ):
    # coef_test(lm(Rate ~ Treated + factor(State) + factor(Quarter)), vcov = "CR2", cluster = State,
    #           test = "Satterthwaite") -- clubSandwich 0.5.8: SE, df = 25, p
    ref = CLUBSANDWICH["results"]["organ"]["coef_test_CR2_Satterthwaite"]
    res = _organ_fit(organ, vcov="CR2")
    row = res.tidy().iloc[0]
    assert row["std_error"] == pytest.approx(ref["se"], rel=1e-8)
    assert row["df"] == pytest.approx(ref["df"], abs=1e-6)
    assert row["p_value"] == pytest.approx(ref["p_value"], rel=1e-6)


def test_organ_warns_about_few_and_single_treated_clusters(organ):
    with pytest.warns(FewClustersWarning, match="27 clusters"):
        with pytest.warns(FewTreatedClustersWarning, match="1 treated cluster"):
            res = im.did.twfe(organ, outcome="Rate", treatment="treated", unit="State", time="Quarter_Num")
    assert any("FewTreatedClustersWarning" in w for w in res.warnings)


@pytest.mark.parametrize(
    ("covariates", "estimate", "se"),
    [
        (None, -11863.9, 7456.6),  # Wooldridge (2020), Example 13.3, eq. (13.9)
        (["age", "agesq"], -21920.27, None),  # Example 13.3, with age and age^2
        (["age", "agesq", "intst", "land", "area", "rooms", "baths"], -14177.93, None),  # full controls
    ],
)
def test_kielmc_reproduces_wooldridge_example_13_3(covariates, estimate, se):
    kielmc = im.datasets.load("kielmc")
    res = im.did.twfe(kielmc, outcome="rprice", treatment="y81nrinc", unit="nearinc", time="year",
                      covariates=covariates, vcov="iid", panel=False)
    assert res.estimate == pytest.approx(estimate, abs=0.05)
    if se is not None:
        assert res.std_error == pytest.approx(se, abs=0.05)
    assert res.n_obs == 321


@pytest.mark.parametrize("kind", ["HC0", "HC1", "HC2", "HC3"])
def test_kielmc_hc_standard_errors_match_r_sandwich(kind):
    # sandwich::vcovHC(lm(rprice ~ nearinc + y81 + nearinc:y81 + age + I(age^2)), type = kind)
    ref = CLUBSANDWICH["results"]["kielmc"]["coefficients"]
    kielmc = im.datasets.load("kielmc")
    res = im.did.twfe(kielmc, outcome="rprice", treatment="y81nrinc", unit="nearinc", time="year",
                      covariates=["age", "agesq"], vcov=kind, panel=False)
    tidy = res.tidy().set_index("term")
    assert tidy.loc["ATT", "std_error"] == pytest.approx(ref["nearinc:y81"][kind]["se"], rel=1e-8)
    assert tidy.loc["age", "std_error"] == pytest.approx(ref["age"][kind]["se"], rel=1e-8)


def test_injury_reproduces_wooldridge_example_13_4():
    # Wooldridge (2020), Example 13.4: Kentucky, log(durat) on afchnge, highearn, afchnge*highearn:
    # 0.191 (0.069), n = 5,626
    injury = im.datasets.load("injury")
    ky = injury[injury["ky"] == 1]
    res = im.did.twfe(ky, outcome="ldurat", treatment="afhigh", unit="highearn", time="afchnge",
                      vcov="iid", panel=False)
    assert res.estimate == pytest.approx(0.191, abs=5e-4)
    assert res.std_error == pytest.approx(0.069, abs=5e-4)
    assert res.n_obs == 5626


def _simulated_panel(seed, n_units=60, n_periods=8, effect=2.0, cluster_shocks=True):
    rng = np.random.default_rng(seed)
    units = np.repeat(np.arange(n_units), n_periods)
    periods = np.tile(np.arange(n_periods), n_units)
    treated_unit = np.arange(n_units) < n_units // 3
    d = (treated_unit[units] & (periods >= n_periods // 2)).astype(int)
    x = rng.normal(size=units.size)
    y = (rng.normal(size=n_units)[units] + 0.5 * periods + effect * d + 0.7 * x
         + rng.normal(size=units.size) + (rng.normal(size=n_units)[units] * periods * 0 if cluster_shocks else 0))
    return pd.DataFrame({"unit": units, "period": periods, "d": d, "x": x, "y": y})


def test_simulation_recovers_known_effect_and_covers():
    covered = []
    estimates = []
    for rep in range(200):
        df = _simulated_panel(rep)
        res = im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period", covariates="x")
        low, high = res.conf_int()
        covered.append(low <= 2.0 <= high)
        estimates.append(res.estimate)
    assert np.mean(estimates) == pytest.approx(2.0, abs=0.03)
    assert 0.91 <= np.mean(covered) <= 0.98  # nominal 95%, 200 replications


def test_wild_bootstrap_is_seeded_and_reported(organ):
    a = _organ_fit(organ, vcov="wild", seed=1, n_bootstrap=999)
    b = _organ_fit(organ, vcov="wild", seed=1, n_bootstrap=999)
    assert a.p_value == b.p_value and a.conf_int() == b.conf_int()
    assert "wild cluster bootstrap" in a.inference
    assert a.estimate == pytest.approx(-0.0225, abs=5e-5)


def test_weights_match_weighted_least_squares():
    df = _simulated_panel(1)
    df["w"] = np.random.default_rng(0).uniform(0.5, 3, len(df))
    res = im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period", weights="w", vcov="iid")
    dummies = pd.get_dummies(df[["unit", "period"]].astype(str), drop_first=True).astype(float)
    X = np.column_stack([df["d"], np.ones(len(df)), dummies])
    w = df["w"].to_numpy()
    beta = np.linalg.solve(X.T @ (X * w[:, None]), (X * w[:, None]).T @ df["y"])
    assert res.estimate == pytest.approx(beta[0], rel=1e-9)


def test_unbalanced_panel_absorbs_exactly():
    df = _simulated_panel(2).sample(frac=0.8, random_state=1)
    res = im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period", vcov="iid")
    dummies = pd.get_dummies(df[["unit", "period"]].astype(str), drop_first=True).astype(float)
    X = np.column_stack([df["d"], np.ones(len(df)), dummies])
    beta = np.linalg.lstsq(X, df["y"].to_numpy(), rcond=None)[0]
    assert res.estimate == pytest.approx(beta[0], rel=1e-8)


# -- result interface -----------------------------------------------------------------------
def test_result_interface(organ):
    res = _organ_fit(organ)
    tidy = res.tidy()
    assert list(tidy.columns[:7]) == list(TIDY_COLUMNS)
    assert tidy.loc[0, "term"] == "ATT"
    assert json.loads(json.dumps(res.to_dict()))["headline"]["estimate"] == pytest.approx(res.estimate)
    assert "ATT" in res.summary() and str(res) == res.summary()
    low90, high90 = res.conf_int(0.90)
    low95, high95 = res.conf_int()
    assert low95 < low90 < res.estimate < high90 < high95
    import matplotlib

    matplotlib.use("Agg")
    ax = res.plot()
    assert len(ax.collections) > 0
    with pytest.raises(Exception):
        res.design = "other"  # frozen


def test_input_frame_is_not_modified(organ):
    before = organ.copy()
    _organ_fit(organ, vcov="CR2")
    pd.testing.assert_frame_equal(organ, before)


# -- bad input ------------------------------------------------------------------------------
def _panel():
    return _simulated_panel(0, n_units=40)


def test_missing_column_names_argument_and_suggests():
    with pytest.raises(DataError, match=r"outcome='yy'.*did you mean 'y'"):
        im.did.twfe(_panel(), outcome="yy", treatment="d", unit="unit", time="period")


def test_non_numeric_outcome_names_rows():
    df = _panel().astype({"y": object})
    df.loc[5, "y"] = "n/a"
    with pytest.raises(DataError, match=r"'y' must be numeric.*'n/a'.*rows 5"):
        im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period")


def test_duplicate_unit_time_rows_listed():
    df = pd.concat([_panel(), _panel().iloc[[3]]])
    with pytest.raises(DataError, match=r"share the same unit x period.*unit=0, period=3"):
        im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period")


def test_missing_values_dropped_with_count_or_error():
    df = _panel()
    df.loc[[1, 2, 3], "y"] = np.nan
    with pytest.warns(MissingDataWarning, match="dropped 3 row"):
        res = im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period")
    assert res.n_obs == len(df) - 3
    assert [s.rows for s in res.sample_flow] == [len(df), len(df) - 3]
    assert "y: 3" in res.sample_flow[-1].note
    with pytest.raises(DataError, match="3 row\\(s\\) have missing values"):
        im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period", missing="error")


def test_no_treated_and_no_untreated():
    df = _panel()
    with pytest.raises(DataError, match="no treated"):
        im.did.twfe(df.assign(d=0), outcome="y", treatment="d", unit="unit", time="period")
    with pytest.raises(DataError, match="no untreated"):
        im.did.twfe(df.assign(d=1), outcome="y", treatment="d", unit="unit", time="period")


def test_treatment_switching_off_is_named():
    df = _panel()
    df.loc[(df.unit == 0) & (df.period == 7), "d"] = 0
    with pytest.raises(DataError, match=r"switches off in 1 unit.*unit=0"):
        im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period")
    im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period", absorbing=False)


def test_non_binary_treatment():
    df = _panel()
    df.loc[0, "d"] = 2
    with pytest.raises(DataError, match="coded 0/1"):
        im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period")


def test_collinear_covariates_are_named():
    df = _panel().assign(x2=lambda f: 2 * f["x"])
    with pytest.raises(EstimationError, match=r"'x2' is a linear combination of \['x'\]|'x' is a linear combination of \['x2'\]"):
        im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period", covariates=["x", "x2"])


def test_covariate_absorbed_by_unit_effects_is_named():
    df = _panel()
    df["size"] = df["unit"] * 1.5
    with pytest.raises(EstimationError, match=r"\['size'\] have no variation left after absorbing"):
        im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period", covariates="size")


def test_fewer_than_two_clusters():
    with pytest.raises(DataError, match="at least 2 clusters"):
        im.did.twfe(_panel().assign(region=1), outcome="y", treatment="d", unit="unit", time="period", cluster="region")


def test_invalid_option_lists_allowed_values():
    with pytest.raises(SpecError, match=r"vcov='robust' is not a valid option; choose one of 'iid'"):
        im.did.twfe(_panel(), outcome="y", treatment="d", unit="unit", time="period", vcov="robust")
    with pytest.raises(SpecError, match="ignores clusters"):
        im.did.twfe(_panel(), outcome="y", treatment="d", unit="unit", time="period", vcov="HC1", cluster="unit")


def test_non_dataframe_input():
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        im.did.twfe({"y": [1]}, outcome="y", treatment="d", unit="unit", time="period")


def test_sorted_and_shuffled_panels_give_the_same_fit():
    # a panel sorted by unit and period takes the grid path (checks and demeaning by reshaping); the same
    # rows shuffled take the general path (bincount sweeps): same estimates and SEs for every vcov
    df = _panel()
    assert df.equals(df.sort_values(["unit", "period"]))
    shuffled = df.sample(frac=1.0, random_state=3)
    for vcov in ("cluster", "CR1-fixest", "HC1", "iid"):
        a = im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="period", vcov=vcov).tidy()
        b = im.did.twfe(shuffled, outcome="y", treatment="d", unit="unit", time="period", vcov=vcov).tidy()
        np.testing.assert_allclose(a["estimate"], b["estimate"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(a["std_error"], b["std_error"], rtol=1e-10)


def test_treatment_switching_off_is_named_on_sorted_and_shuffled_panels():
    df = _panel()
    df.loc[(df.unit == 3) & (df.period == 6), "d"] = 0
    for data in (df, df.sample(frac=1.0, random_state=1)):
        with pytest.raises(DataError, match=r"switches off in 1 unit.*unit=3"):
            im.did.twfe(data, outcome="y", treatment="d", unit="unit", time="period")


def test_sorted_period_codes_equal_pandas_factorize():
    from impact.did.twfe import _sorted_codes

    for values in (np.array([2012, 2010, 2011, 2010], dtype=np.int16), np.array([-30000, 30000, 0], dtype=np.int16),
                   np.array([3.5, 1.0, 3.5]), np.array([7, 7], dtype=np.int64)):
        codes, levels = _sorted_codes(values)
        ref_codes, ref_levels = pd.factorize(values, sort=True)
        assert np.array_equal(codes, ref_codes) and np.array_equal(levels, np.asarray(ref_levels))
