"""att_gt(panel=False) and att_gt(unbalanced="keep") against moderndid 0.2.0 (PyPI), which equals R did
to 5e-5. Reference: tests/did/reference/moderndid_att_gt_rcs.json, written by
make_moderndid_att_gt_rcs.py beside it (moderndid.att_gt(..., panel=False[, allow_unbalanced_panel=True])
and moderndid.aggte(type=kind); the script's docstring has the calls and the id alignment it needs).

Tolerances, per quantity: ATT(g, t) and every aggregated estimate 1e-9 absolute (the outcomes are logs
of about 5-10 and earnings of about 1e4: NSW uses 1e-9 relative); standard errors of ATT(g, t) and of
every aggregation 1e-7 relative. Both implementations solve the same closed forms (logit MLE and
weighted least squares), so agreement is at rounding level; the tolerances leave room for the logit's
iterative solution.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact as im

HERE = Path(__file__).parent
REF = json.loads((HERE / "reference" / "moderndid_att_gt_rcs.json").read_text())
CASES = REF["cases"]
NSW_COVS = ["age", "educ", "black", "married", "nodegree", "hisp", "re74"]


def _data(name: str) -> tuple[pd.DataFrame, dict]:
    if name in ("mpdta", "mpdta_short"):
        df = im.datasets.load("mpdta").assign(w=lambda f: 1.0 + (f["countyreal"] % 4) / 3.0)
        if name == "mpdta_short":  # 10% of rows removed (seed 2026 in the script); ids as they are
            df = df.drop(index=REF["mpdta_short_dropped_rows"]).reset_index(drop=True)
        return df, {"outcome": "lemp", "time": "year", "cohort": "first.treat", "unit": "countyreal"}
    if name == "nsw":
        nsw = im.datasets.load("nsw_long")
        nsw = nsw[(nsw["treated"] == 0) | (nsw["sample"] == 2)].assign(cohort=lambda f: 1978 * f["experimental"])
        return nsw, {"outcome": "re", "time": "year", "cohort": "cohort", "unit": "id"}
    df = pd.read_csv(HERE / "reference" / "sim_unbalanced.csv")
    return df, {"outcome": "y", "time": "t", "cohort": "g", "unit": "id"}


def _fit(case: dict):
    df, columns = _data(case["data"])
    if not case["panel"]:
        columns = {k: v for k, v in columns.items() if k != "unit"}
        options = {"panel": False}
    else:
        options = {"unbalanced": "keep"}
    return im.did.att_gt(df, **columns, method=case["method"], covariates=case["covariates"] or None,
                         inference="analytic", **options, **case.get("options", {}))


def _close(ours, theirs, *, estimate: bool, scale: float = 1.0) -> None:
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    if estimate:
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9 * scale)
    else:
        np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=0)


@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
@pytest.mark.parametrize("name", sorted(CASES))
def test_group_time_and_aggregations_equal_moderndid(name: str) -> None:
    case = CASES[name]
    scale = 1e4 if case["data"] == "nsw" else 1.0
    res = _fit(case)
    cells = res.group_time()
    np.testing.assert_array_equal(cells["group"], case["groups"])
    np.testing.assert_array_equal(cells["time"], case["times"])
    _close(cells["estimate"], case["att_gt"], estimate=True, scale=scale)
    reference_se = np.asarray(case["se_gt"], float)
    finite = np.isfinite(reference_se)  # moderndid: NaN for the reference cell of a universal base period
    assert np.array_equal(finite, cells["std_error"].notna().to_numpy())
    _close(cells["std_error"][finite], reference_se[finite], estimate=False)
    for kind in ("simple", "dynamic", "group", "calendar"):
        table = res.aggregate(kind).tidy()
        ref = case[kind]
        _close(table["estimate"][:1], [ref["att"]], estimate=True, scale=scale)
        _close(table["std_error"][:1], [ref["se"]], estimate=False)
        if kind != "simple":
            rows = table.iloc[1:]
            column = {"dynamic": "event_time", "group": "group", "calendar": "time"}[kind]
            np.testing.assert_array_equal(rows[column], ref["labels"])
            _close(rows["estimate"], ref["atts"], estimate=True, scale=scale)
            se_ref = np.asarray(ref["ses"], float)
            ok = np.isfinite(se_ref)
            _close(rows["std_error"].to_numpy()[ok], se_ref[ok], estimate=False)


CSDID = json.loads((HERE / "reference" / "csdid_att_gt_rcs.json").read_text())["cases"]


@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
@pytest.mark.parametrize("name", sorted(CSDID))
def test_second_peer_csdid(name: str) -> None:
    """csdid 0.4.3 (make_csdid_att_gt_rcs.py): ATT(g, t) and every aggregated estimate to 1e-9; standard
    errors to 1e-7 relative without covariates. With covariates csdid's DR standard errors differ from
    moderndid's (= R did's, which impact reproduces to 1e-7 above) by 0.1% (repeated cross-sections)
    to 1.2% (unbalanced panel) while its estimates agree to 1e-14, so only its estimates are compared."""
    case = CSDID[name]
    res = _fit(case)
    cells = res.group_time()
    _close(cells["estimate"], case["att_gt"], estimate=True)
    check_se = not case["covariates"]
    if check_se:
        _close(cells["std_error"], case["se_gt"], estimate=False)
    for kind in ("simple", "dynamic", "group", "calendar"):
        table = res.aggregate(kind).tidy()
        ref = case[kind]
        estimates, ses = [ref["att"], *ref.get("atts", [])], [ref["se"], *ref.get("ses", [])]
        _close(table["estimate"], estimates, estimate=True)
        if check_se:
            _close(table["std_error"], ses, estimate=False)


# ---------------------------------------------------------------------------------------------------
# Behaviour and bad input

from impact.errors import DataError, FragileInferenceWarning, SpecError  # noqa: E402


def _cross_sections(n: int = 600, periods: int = 5, seed: int = 0, cohorts=(0, 3, 4), trend_x: float = 0.0,
                    p=None) -> pd.DataFrame:
    """Fresh observations every period (repeated cross-sections). Effect 1 + 0.5 e from event time
    e = t - g >= 0; with ``trend_x`` the trend depends on a covariate that differs by cohort, so only
    the conditional estimators are unbiased."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(1, periods + 1), n)
    g = rng.choice(cohorts, size=n * periods, p=p)
    x = rng.normal(size=n * periods) + 0.5 * (g > 0)
    effect = np.where((g > 0) & (t >= g), 1.0 + 0.5 * (t - g), 0.0)
    y = 1.0 + 0.3 * t + 0.5 * x + trend_x * x * t + 0.1 * g + effect + rng.normal(size=n * periods)
    return pd.DataFrame({"t": t, "g": g, "x": x, "y": y, "region": rng.integers(0, 40, size=n * periods)})


RC = {"outcome": "y", "time": "t", "cohort": "g", "panel": False}


def test_cohort_missing_in_a_period_names_it() -> None:
    data = _cross_sections()
    data = data.loc[~((data["g"] == 3) & (data["t"] == 2))]
    with pytest.raises(DataError, match=r"no observations of cohort 3 in 2 \(needed by g=3,t=2, g=3,t=3"):
        im.did.att_gt(data, **RC)


def test_period_with_one_group_only() -> None:
    data = _cross_sections()
    data = data.loc[~((data["t"] == 4) & (data["g"] != 0))]
    with pytest.raises(DataError, match="period 4 holds observations of one group only \\(never treated\\)"):
        im.did.att_gt(data, **RC)


def test_weights_must_be_positive_and_options_must_fit_cross_sections() -> None:
    data = _cross_sections().assign(w=1.0)
    data.loc[data.index[[3, 7]], "w"] = 0.0
    with pytest.raises(DataError, match="must be positive; rows 3, 7"):
        im.did.att_gt(data, **RC, weights="w")
    data.loc[data.index[[3, 7]], "w"] = np.inf
    with pytest.raises(DataError):
        im.did.att_gt(data, **RC, weights="w", missing="error")
    good = _cross_sections()
    for bad in ({"unbalanced": "keep"}, {"unbalanced": "error"}, {"allow_unbalanced": True},
                {"inference": "randomization"}, {"panel": 0}):
        with pytest.raises(SpecError):
            im.did.att_gt(good, **{**RC, **bad})
    with pytest.raises(SpecError, match="need cohort="):
        im.did.att_gt(good.assign(d=(good["g"] > 0) & (good["t"] >= good["g"])), outcome="y", time="t",
                      treatment="d", panel=False)
    with pytest.raises(SpecError, match="unit="):
        im.did.att_gt(good, outcome="y", time="t", cohort="g")


def test_infinite_outcome_is_bad_input_and_the_data_are_not_modified() -> None:
    data = _cross_sections()
    data["g"] = data["g"].astype(float).where(data["g"] > 0)  # never treated as missing cohort
    data.loc[5, "y"] = -np.inf
    before = data.copy()
    with pytest.raises(DataError):
        im.did.att_gt(data, **RC, missing="error")
    with pytest.warns(im.errors.MissingDataWarning):
        res = im.did.att_gt(data, **RC, inference="analytic")
    assert res.n_obs == len(data) - 1
    pd.testing.assert_frame_equal(data, before)


def test_unit_is_ignored_and_row_order_does_not_matter() -> None:
    data = _cross_sections().assign(person=lambda f: np.arange(len(f)) % 97)
    base = im.did.att_gt(data, **RC, inference="analytic").tidy()
    with_unit = im.did.att_gt(data, **RC, unit="person", inference="analytic").tidy()
    shuffled = im.did.att_gt(data.sample(frac=1.0, random_state=1), **RC, inference="analytic").tidy()
    pd.testing.assert_frame_equal(base, with_unit)
    np.testing.assert_allclose(shuffled["estimate"], base["estimate"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(shuffled["std_error"], base["std_error"], rtol=1e-12)


def test_clustering_and_bootstrap_use_the_rows() -> None:
    data = _cross_sections().assign(row=lambda f: np.arange(len(f)))
    plain = im.did.att_gt(data, **RC, inference="analytic")
    by_row = im.did.att_gt(data, **RC, cluster="row", inference="analytic")
    np.testing.assert_allclose(by_row.tidy()["std_error"], plain.tidy()["std_error"], rtol=1e-12)
    by_region = im.did.att_gt(data, **RC, cluster="region", inference="analytic")
    assert by_region.n_clusters == 40 and "40 clusters" in by_region.inference
    boot = im.did.att_gt(data, **RC, bootstrap=499, seed=3)
    again = im.did.att_gt(data, **RC, bootstrap=499, seed=3)
    pd.testing.assert_frame_equal(boot.tidy(), again.tidy())
    ratio = boot.tidy()["std_error"][1:].dropna() / plain.tidy()["std_error"][1:].dropna()
    assert ratio.between(0.8, 1.25).all()  # the multiplier bootstrap of the same influence functions
    assert boot.aggregate("dynamic").tidy()["band_low"].notna().iloc[1:].all()


def _regional(seed: int = 5, regions: int = 20) -> pd.DataFrame:
    """Adoption by region: regions 0-1 from period 3, 2-3 from period 4, the others never."""
    data = _cross_sections(seed=seed)
    region = np.random.default_rng(seed).integers(0, regions, size=len(data))
    return data.assign(region=region, g=np.select([region < 2, region < 4], [3, 4], 0))


def test_auto_uses_randomisation_across_clusters_with_few_treated_clusters() -> None:
    data = _regional()
    res = im.did.att_gt(data, **RC, cluster="region", n_permutations=999)
    assert res.settings["inference"] == "randomization"
    assert "random draws of the 29,070 assignments of start years across 20 clusters (region)" in res.inference
    assert "randomisation inference" in res.aggregate("dynamic").inference
    assert "randomisation test" in res.diagnostics["pretrend_wald"]["method"]
    # the estimates are those of the analytic fit; only p-values, intervals and implied SEs change
    analytic = im.did.att_gt(data, **RC, cluster="region", inference="analytic")
    np.testing.assert_allclose(res.tidy()["estimate"], analytic.tidy()["estimate"], rtol=1e-12)


def test_auto_stays_analytic_and_warns_with_covariates() -> None:
    data, reason = _regional(), "with covariates"
    kw = {**RC, "cluster": "region", "covariates": "x"}
    with pytest.warns(FragileInferenceWarning, match=reason):
        res = im.did.att_gt(data, **kw)
    assert res.settings["inference"] == "analytic"
    assert "inference='auto' is analytic" in res.aggregate("dynamic").inference
    with pytest.raises(SpecError, match=reason):
        im.did.att_gt(data, **kw, inference="randomization")


def test_cohort_varying_within_cluster_or_unsampled_cluster_stays_analytic() -> None:
    data = _regional()
    mixed = data.assign(g=np.where(np.arange(len(data)) == 0, 3, data["g"]))  # one observation off its region's cohort
    with pytest.raises(SpecError, match="start years differ within some clusters"):
        im.did.att_gt(mixed.loc[mixed["region"] >= 0], **RC, cluster="region", inference="randomization")
    gap = data.loc[~((data["region"] == 7) & (data["t"] == 2))]
    with pytest.raises(SpecError, match="not sampled in every period"):
        im.did.att_gt(gap, **RC, cluster="region", inference="randomization")


@pytest.mark.filterwarnings("ignore::UserWarning")  # the few-cluster warnings of 8 regions, once per refit
def test_randomisation_equals_refitting_every_assignment() -> None:
    """Exact enumeration (168 assignments of 2 + 1 treated of 8 regions) against a brute-force loop that
    refits att_gt(panel=False, inference="analytic") on every re-assigned data set: estimates and
    clustered SEs of every cell (tolerance 1e-10 relative), and for one cell also the shifted data
    Y - tau D of the sharp null (tau = 0.3), and the resulting p-values (exact equality of counts)."""
    rng = np.random.default_rng(11)
    n = 8 * 5 * 6  # 8 regions x 5 periods x 6 observations
    region, t = np.repeat(np.arange(8), 30), np.tile(np.repeat(np.arange(1, 6), 6), 8)
    start = np.array([3, 3, 4, 0, 0, 0, 0, 0])
    data = pd.DataFrame({"region": region, "t": t, "g": start[region], "w": rng.uniform(0.5, 2.0, n),
                         "y": rng.normal(size=8)[region] + 0.2 * t + rng.normal(size=n)})
    kw = {**RC, "cluster": "region", "weights": "w"}
    res = im.did.att_gt(data, **kw, inference="randomization", n_permutations=999)
    ctx = res.randomization
    table = res.tidy()
    assert "all 168 assignments" in res.inference
    p = len(ctx.cell_cohort)
    omega = np.eye(p)
    j = int(np.flatnonzero(table["term"].to_numpy()[1:] == "g=3,t=4")[0])
    M = ctx.treated_mask(omega)
    comps = ctx.components_rc(omega, M, ctx.Yb)
    labels, _ = ctx.scheme().enumerate(limit=999)  # every assignment, the engine's order
    labels = labels[~np.all(labels == ctx.labels[None, :], axis=1)]  # the observed one is the "1 +" of p
    assert len(labels) == 167
    fast = comps(labels)
    tau = 0.3
    d = ((data["g"] == 3) & (data["t"] == 4)).to_numpy(float)  # the observed treated cells of row g=3,t=4
    starts = np.array([3.0, 4.0, 0.0])  # cohort codes 0, 1 and K = 2 (never treated)
    for i, lab in enumerate(labels):
        permuted = data.assign(g=starts[lab[data["region"]]])
        refit = im.did.att_gt(permuted, **kw, inference="analytic").tidy().iloc[1:]
        np.testing.assert_allclose(fast.a[i], refit["estimate"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.sqrt(fast.v0[i]), refit["std_error"].fillna(0), rtol=1e-10, atol=1e-12)
        if i % 8 == 0:
            shifted = im.did.att_gt(permuted.assign(y=data["y"] - tau * d), **kw, inference="analytic").tidy().iloc[1 + j]
            np.testing.assert_allclose(fast.a[i, j] - tau * fast.b[i, j], shifted["estimate"], rtol=1e-10)
            var = fast.v0[i, j] - 2 * tau * fast.v1[i, j] + tau**2 * fast.v2[i, j]
            np.testing.assert_allclose(np.sqrt(var), shifted["std_error"], rtol=1e-10)
    # the p-value: share of all assignments (the observed one included) with |t| at least the observed
    t_obs = table["estimate"].to_numpy()[1:] / im.did.att_gt(data, **kw, inference="analytic").tidy()["std_error"].to_numpy()[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_all = np.abs(fast.a / np.sqrt(fast.v0))
    active = ~ctx.cell_reference
    expected = (1 + (t_all[:, active] >= np.abs(t_obs[active]) * (1 - 1e-9)).sum(axis=0)) / 168
    np.testing.assert_allclose(table["p_value"].to_numpy()[1:][active], expected, rtol=1e-12)


def test_keep_on_a_balanced_panel_is_the_panel_estimator() -> None:
    # R did: allow_unbalanced_panel = TRUE changes nothing when the panel is balanced
    mpdta = im.datasets.load("mpdta")
    kw = {"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat", "inference": "analytic"}
    pd.testing.assert_frame_equal(im.did.att_gt(mpdta, **kw, unbalanced="keep").tidy(), im.did.att_gt(mpdta, **kw).tidy())


def test_keep_checks_units() -> None:
    data, columns = _data("sim_unbalanced")
    bad = data.copy()
    bad.loc[bad.index[:2], "g"] = 4 - bad.loc[bad.index[:2], "g"] * 0  # cohort varies within unit 0
    bad.loc[bad.index[0], "g"] = 3
    bad.loc[bad.index[1], "g"] = 5
    with pytest.raises(DataError):
        im.did.att_gt(bad, **columns, unbalanced="keep")
    with pytest.raises(SpecError, match="needs cohort="):
        im.did.att_gt(data.assign(d=(data["g"] > 0) & (data["t"] >= data["g"])), outcome="y", unit="id", time="t",
                      treatment="d", unbalanced="keep")
    res = im.did.att_gt(data, **columns, unbalanced="keep", inference="analytic")
    assert res.n_units == data["id"].nunique() and res.n_obs == len(data)


# ---------------------------------------------------------------------------------------------------
# Simulation with a known effect: ATT(g, t) = 1 + 0.5 (t - g); simple ATT 1.4, dynamic ATT 1.5


def _coverage(n_sims: int, method: str, covariates, trend_x: float, seed0: int):
    truth = {"simple": 1.4, "dynamic": 1.5}
    hits = {k: 0 for k in truth}
    estimates = {k: [] for k in truth}
    for s in range(n_sims):
        data = _cross_sections(n=400, seed=seed0 + s, trend_x=trend_x, p=[0.5, 0.25, 0.25])
        res = im.did.att_gt(data, **RC, method=method, covariates=covariates, inference="analytic")
        for kind, value in truth.items():
            row = res.aggregate(kind).tidy().iloc[0]
            hits[kind] += row["conf_low"] <= value <= row["conf_high"]
            estimates[kind].append(row["estimate"])
    return {k: hits[k] / n_sims for k in truth}, {k: np.mean(v) - truth[k] for k, v in estimates.items()}, estimates


@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
def test_simulation_known_effect_coverage_no_covariates() -> None:
    # 120 draws of 2,000 observations (400 per period), 3 cohort groups: coverage of the 95% analytic
    # interval must lie in [0.89, 0.99] (binomial sd 0.02) and the bias within 4 Monte Carlo SEs
    coverage, bias, estimates = _coverage(120, "reg", None, 0.0, 100)
    for kind in coverage:
        assert 0.89 <= coverage[kind] <= 0.99, (kind, coverage[kind])
        assert abs(bias[kind]) < 4 * np.std(estimates[kind]) / np.sqrt(120), (kind, bias[kind])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
def test_simulation_known_effect_coverage_doubly_robust_with_covariates() -> None:
    # trends depend on x, which differs by cohort: the unconditional estimator is biased, DR with x is not
    coverage, bias, estimates = _coverage(400, "dr", ["x"], 0.3, 5000)
    for kind in coverage:
        assert 0.925 <= coverage[kind] <= 0.975, (kind, coverage[kind])
        assert abs(bias[kind]) < 4 * np.std(estimates[kind]) / np.sqrt(400), (kind, bias[kind])
    _, naive_bias, naive = _coverage(50, "reg", None, 0.3, 5000)
    assert abs(naive_bias["simple"]) > 10 * np.std(naive["simple"]) / np.sqrt(50)


def test_spec_options_accept_cross_sections_and_keep() -> None:
    # a programme spec may write `panel = false` or `unbalanced = "keep"` for did.att_gt
    from impact.programme.spec import option_value_problem

    assert option_value_problem(im.did.att_gt, "panel", False) is None
    assert option_value_problem(im.did.att_gt, "unbalanced", "keep") is None
    assert option_value_problem(im.did.att_gt, "unbalanced", "keep_all") is not None
    assert option_value_problem(im.did.att_gt, "panel", "no") is not None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
def test_simulation_known_effect_keep_all_unbalanced_panel() -> None:
    # 300 draws of 500 units x 5 periods with 20% of rows missing at random; ATT(g, t) = 1 + 0.5 (t - g)
    # for cohorts 3 and 4 (simple ATT 1.4, dynamic 1.5); unit effects make rows of a unit correlated,
    # which the unit-summed influence functions must carry: coverage of the 95% interval in [0.92, 0.98]
    truth = {"simple": 1.4, "dynamic": 1.5}
    hits = {k: 0 for k in truth}
    n_sims = 300
    for s in range(n_sims):
        rng = np.random.default_rng(9000 + s)
        units, periods = 500, 5
        g = rng.choice([0, 3, 4], size=units, p=[0.5, 0.25, 0.25])[np.repeat(np.arange(units), periods)]
        t = np.tile(np.arange(1, periods + 1), units)
        unit = np.repeat(np.arange(units), periods)
        y = (2.0 * rng.normal(size=units)[unit] + 0.3 * t + np.where((g > 0) & (t >= g), 1.0 + 0.5 * (t - g), 0.0)
             + rng.normal(size=units * periods))
        data = pd.DataFrame({"id": unit, "t": t, "g": g, "y": y}).loc[rng.random(units * periods) > 0.2]
        res = im.did.att_gt(data, outcome="y", unit="id", time="t", cohort="g", unbalanced="keep", inference="analytic")
        for kind, value in truth.items():
            row = res.aggregate(kind).tidy().iloc[0]
            hits[kind] += row["conf_low"] <= value <= row["conf_high"]
    for kind in truth:
        assert 0.92 <= hits[kind] / n_sims <= 0.98, (kind, hits[kind] / n_sims)


def test_programme_spec_runs_a_cross_section_evaluation(tmp_path: Path) -> None:
    # end to end: a spec evaluation with `panel = false` validates, runs and is written to the report
    from impact.programme.runner import run_spec

    data = _cross_sections(n=300, seed=4).rename(columns={"y": "NB_EMPRATE"}).assign(RCO01=lambda f: (f["g"] > 0) * 10)
    data.to_csv(tmp_path / "survey.csv", index=False)
    spec = '''\
[programme]
id = "survey"
name = "Survey-based evaluation"
regions = ["A", "B"]
questions = ["Did it work?"]

[effect_chain]
outputs = [{ text = "Enterprises supported", indicators = ["RCO01"] }]
impacts = [{ text = "Employment", indicators = ["NB_EMPRATE"] }]

[[data]]
name = "survey"
path = "survey.csv"
description = "Repeated cross-sections of firms, a fresh sample every period."

[[evaluations]]
name = "Employment (repeated cross-sections)"
question = "Did employment rise?"
outcome = "NB_EMPRATE"
data = "survey"
design = "did.att_gt"
options = { time = "t", cohort = "g", panel = false, method = "dr", covariates = ["x"], cluster = "region" }
then = [{ method = "aggregate", kind = "dynamic" }]
'''
    (tmp_path / "survey.toml").write_text(spec, encoding="utf-8")
    run, report = run_spec(tmp_path / "survey.toml", out=tmp_path / "out", command="impact run survey.toml")
    outcome = run.outcomes[0]
    assert outcome.ok, outcome.error
    assert outcome.result.estimate == pytest.approx(1.5, abs=0.3)  # true dynamic ATT 1.5
    assert "repeated cross-sections" in outcome.result.inference
    assert "repeated cross-sections" in report.read_text(encoding="utf-8")
