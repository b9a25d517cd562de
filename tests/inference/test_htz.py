"""CR2 Wald tests (HTZ, HTA, Naive-F) against R clubSandwich 0.5.8 (R 4.2.2).

Reference values: tests/inference/reference/htz.json, written by htz.R beside it (exact calls in the
JSON's ``source``; R and clubSandwich versions in ``r_version`` / ``package_versions``), and the
Thornton Wald test of clubsandwich.json. clubSandwich's working model is matched: ``lm`` with the
fixed effects as factor dummies, identity working variance. Tolerances: 1e-8 relative on F, delta
and the denominator df, 1e-10 absolute on p-values.
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.did._staggered import fe_regression
from impact.errors import EstimationError, SpecError
from impact.inference.htz import cr2_wald_test

HERE = Path(__file__).parent / "reference"
REF = json.loads((HERE / "htz.json").read_text())
SIM = pd.read_csv(HERE / "htz_sim.csv")
REL, P_ABS = 1e-8, 1e-10
pytestmark = pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")


def _check(out, ref):
    assert out["statistic"] == pytest.approx(ref["F"], rel=REL)
    assert out["delta"] == pytest.approx(ref["delta"], rel=REL)
    assert out["df_num"] == ref["df_num"]
    if ref["df_denom"] is None:  # chi-sq
        assert out["df_denom"] == np.inf
    else:
        assert out["df_denom"] == pytest.approx(ref["df_denom"], rel=REL)
    if ref["p_val"] is None:
        assert out["p_value"] is None and "not computable" in out["note"]
    else:
        assert out["p_value"] == pytest.approx(ref["p_val"], abs=P_ABS, rel=1e-7)


def _sim_design():
    e = np.where(SIM["cohort"] > 0, SIM["period"] - SIM["cohort"], np.nan)
    cols = {f"lead{-k}" if k < 0 else f"lag{k}": (e == k).astype(float) for k in (-3, -2, 0, 1, 2)}
    cols["x"] = SIM["x"].to_numpy(float)
    return list(cols), np.column_stack(list(cols.values()))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("test", ["HTZ", "HTA", "Naive-F", "chi-sq"])
def test_simulated_full_dummy_design_matches_clubsandwich(weighted, test):
    # lm(y ~ lead3 + lead2 + lag0 + lag1 + lag2 + x + factor(unit) + factor(period) [, weights = w]),
    # Wald_test(..., vcov = "CR2", cluster = region, test = ...) -- clubSandwich 0.5.8
    names, D = _sim_design()
    U = pd.get_dummies(SIM["unit"], drop_first=True).to_numpy(float)
    T = pd.get_dummies(SIM["period"], drop_first=True).to_numpy(float)
    X = np.column_stack([D, np.ones(len(SIM)), U, T])
    y = SIM["y"].to_numpy(float)
    w = SIM["w"].to_numpy(float) if weighted else None
    root = np.ones(len(y)) if w is None else np.sqrt(w)
    coef = np.linalg.lstsq(X * root[:, None], y * root, rcond=None)[0]
    all_names = names + [f"fe{j}" for j in range(X.shape[1] - len(names))]
    block = REF["results"]["simulated"]["weighted" if weighted else "unweighted"]
    for key in ("leads", "lags", "lags_and_x"):
        if key in block:
            out = cr2_wald_test(X, y - X @ coef, coef, SIM["region"].to_numpy(), block[key]["terms"],
                                names=all_names, weights=w, test=test)
            _check(out, block[key][test])


@pytest.mark.parametrize("weighted", [False, True])
def test_absorbed_unit_effects_match_full_dummy_design(weighted):
    # impact absorbs the unit effects (nested in the region clusters) and keeps period dummies:
    # the same clubSandwich numbers as the full-dummy lm, to 1e-8
    names, D = _sim_design()
    w = SIM["w"].to_numpy(float) if weighted else None
    fit = fe_regression(SIM["y"].to_numpy(float), D, names, unit_codes=pd.factorize(SIM["unit"])[0],
                        time_codes=pd.factorize(SIM["period"], sort=True)[0], weights=w,
                        cluster_values=SIM["region"].to_numpy(), cluster_name="region", vcov="CR2",
                        treated=(SIM["cohort"] > 0).to_numpy(), where="test")
    assert fit.X.shape[1] == len(names) + 7  # period dummies kept as columns: not nested in regions
    block = REF["results"]["simulated"]["weighted" if weighted else "unweighted"]
    assert fit.coef[:5] == pytest.approx(block["coefficients"]["estimate"][:5], rel=1e-9)
    for key in ("leads", "lags_and_x"):
        for test in ("HTZ", "HTA", "Naive-F"):
            out = cr2_wald_test(fit.X, fit.resid, fit.design_coef, fit.clusters, block[key]["terms"],
                                names=fit.design_names, weights=w, test=test)
            _check(out, block[key][test])


def test_event_study_pretrend_test_is_htz_with_cr2():
    # mpdta: lm(lemp ~ lead4 + lead3 + lead2 + lag0 + ... + lag3 + factor(countyreal) + factor(year)),
    # Wald_test(constrain_zero(leads), vcov = "CR2", cluster = countyreal, test = "HTZ") -- clubSandwich 0.5.8
    ref = REF["results"]["mpdta"]
    res = im.did.event_study(im.datasets.load("mpdta"), outcome="lemp", unit="countyreal", time="year",
                             cohort="first.treat", vcov="CR2")
    est = res.effects.set_index("term")
    terms = ["e=-4", "e=-3", "e=-2", "e=0", "e=1", "e=2", "e=3"]
    assert est.loc[terms, "estimate"].to_numpy() == pytest.approx(ref["coefficients"]["estimate"], rel=1e-9)
    assert est.loc[terms, "std_error"].to_numpy() == pytest.approx(ref["coefficients"]["se"], rel=1e-8)
    test = res.pretrend_test()
    _check(test, ref["leads"]["HTZ"])
    assert "HTZ" in test["method"] and test["event_times"] == [-4, -3, -2]
    assert res.diagnostics["pretrend_test"]["p_value"] == test["p_value"]
    for kind in ("HTZ", "HTA", "Naive-F"):
        _check(im.inference.htz_test(res, ["e=0", "e=1", "e=2", "e=3"], test=kind), ref["lags"][kind])
    assert "HTZ" in im.did.pretrends.describe_wald(test)
    res.to_dict()  # the kept linear model is never serialised


def test_thornton_htz_and_naive_f():
    # Wald_test(lm(got ~ any + age + distvct), constrain_zero(c("age","distvct")), vcov = "CR2",
    #           cluster = villnum, test = c("HTZ","Naive-F")) -- clubSandwich 0.5.8 (clubsandwich.json)
    ref = json.loads((HERE / "clubsandwich.json").read_text())["results"]["thornton_wald"]
    d = im.datasets.load("thornton_hiv").dropna(subset=["got", "any", "age", "distvct", "villnum"])
    X = np.column_stack([np.ones(len(d)), d["any"], d["age"], d["distvct"]])
    y = d["got"].to_numpy(float)
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    for kind in ("HTZ", "Naive-F"):
        out = cr2_wald_test(X, y - X @ coef, coef, d["villnum"].to_numpy(), [2, 3], test=kind)
        _check(out, ref[kind])


def test_one_constraint_is_the_satterthwaite_t_test():
    # with q = 1, HTZ = the CR2 Satterthwaite t test (coef_test(..., test = "Satterthwaite"))
    organ = im.datasets.load("organ_donations")
    organ["treated"] = ((organ.State == "California") & (organ.Quarter_Num >= 4)).astype(int)
    res = im.did.twfe(organ, outcome="Rate", treatment="treated", unit="State", time="Quarter_Num", vcov="CR2")
    out = im.inference.htz_test(res, "ATT")
    row = res.tidy().iloc[0]
    assert out["df_denom"] == pytest.approx(row["df"], rel=1e-10)
    assert out["p_value"] == pytest.approx(row["p_value"], rel=1e-10)
    assert out["statistic"] == pytest.approx(row["statistic"] ** 2, rel=1e-10)


def test_sun_abraham_pretrend_uses_htz_on_the_aggregated_leads():
    res = im.did.sun_abraham(im.datasets.load("mpdta"), outcome="lemp", unit="countyreal", time="year",
                             cohort="first.treat", vcov="CR2")
    test = res.pretrend_test()
    assert test["test"] == "HTZ" and test["event_times"] == [-4, -3, -2]
    # q = 1: the aggregated lead's HTZ equals its own Satterthwaite t test
    one = im.inference.htz_test(res, "e=-4")
    row = res.effects.set_index("term").loc["e=-4"]
    assert one["p_value"] == pytest.approx(row["p_value"], rel=1e-8)


def test_htz_keeps_size_with_few_clusters_where_naive_f_does_not():
    # known truth: all tested coefficients are zero; 12 clusters of unequal size, q = 3 regressors that
    # vary mostly between clusters (the hard case for cluster-robust tests)
    rng = np.random.default_rng(7)
    sizes = np.array([2, 3, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25])
    cl = np.repeat(np.arange(12), sizes)
    n, reps = len(cl), 300
    rejections = {"HTZ": 0, "Naive-F": 0}
    for _ in range(reps):
        Z = rng.normal(size=(12, 3))[cl] + 0.3 * rng.normal(size=(n, 3))
        X = np.column_stack([np.ones(n), Z])
        y = rng.normal(size=12)[cl] + rng.normal(size=n)
        coef = np.linalg.lstsq(X, y, rcond=None)[0]
        for kind in rejections:
            out = cr2_wald_test(X, y - X @ coef, coef, cl, [1, 2, 3], test=kind)
            rejections[kind] += out["p_value"] < 0.05
    rate = {k: v / reps for k, v in rejections.items()}
    assert rate["HTZ"] <= 0.08, rate  # MC s.e. 0.013 at 5%
    assert rate["Naive-F"] > rate["HTZ"] + 0.03, rate


def test_bad_input_is_typed():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(12), rng.normal(size=(12, 3))])
    y = rng.normal(size=12)
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    r = y - X @ coef
    with pytest.raises(EstimationError, match="3 clusters cannot support a joint test of 3"):
        cr2_wald_test(X, r, coef, np.repeat([0, 1, 2], 4), [1, 2, 3])
    with pytest.raises(SpecError, match="test="):
        cr2_wald_test(X, r, coef, np.arange(12), [1], test="HTB")
    with pytest.raises(SpecError, match="no coefficient named 'z'"):
        cr2_wald_test(X, r, coef, np.arange(12), ["z"], names=["a", "b", "c", "d"])
    with pytest.raises(SpecError, match="linearly dependent"):
        cr2_wald_test(X, r, coef, np.arange(12), np.array([[0, 1.0, 0, 0], [0, 2.0, 0, 0]]))
    bad = X.copy()
    bad[0, 1] = np.inf
    with pytest.raises(SpecError, match="infinite"):
        cr2_wald_test(bad, r, coef, np.arange(12), [1])
    with pytest.raises(SpecError, match="weights"):
        cr2_wald_test(X, r, coef, np.arange(12), [1], weights=-np.ones(12))
    res = im.did.event_study(im.datasets.load("mpdta"), outcome="lemp", unit="countyreal", time="year",
                             cohort="first.treat", vcov="cluster")
    with pytest.raises(SpecError, match="vcov='CR2'"):
        im.inference.htz_test(res, ["e=-4"])
    cr2 = im.did.event_study(im.datasets.load("mpdta"), outcome="lemp", unit="countyreal", time="year",
                             cohort="first.treat", vcov="CR2")
    with pytest.raises(SpecError, match="reference"):
        im.inference.htz_test(cr2, ["e=-1"])
    with pytest.raises(SpecError, match="no effect or coefficient named"):
        im.inference.htz_test(cr2, ["e=-9"])


@pytest.mark.r
def test_reference_script_reproduces_the_json(tmp_path):
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript not installed")
    script = tmp_path / "htz.R"
    shutil.copy(HERE / "htz.R", script)
    subprocess.run(["Rscript", str(script)], check=True, cwd=Path(__file__).parents[2], capture_output=True)
    fresh = json.loads((tmp_path / "htz.json").read_text())
    assert fresh["results"] == REF["results"]


def test_cr2_result_with_its_linear_model_pickles_for_parallel_runs():
    import pickle

    organ = im.datasets.load("organ_donations")
    organ["treated"] = ((organ.State == "California") & (organ.Quarter_Num >= 4)).astype(int)
    res = im.did.twfe(organ, outcome="Rate", treatment="treated", unit="State", time="Quarter_Num", vcov="CR2")
    again = pickle.loads(pickle.dumps(res))
    assert im.inference.htz_test(again, "ATT")["p_value"] == im.inference.htz_test(res, "ATT")["p_value"]
    with pytest.raises(AttributeError):
        res.linear_fit.X = None


def test_contrast_of_a_single_cluster_warns():
    # a dummy that is nonzero in one cluster only: the fit reproduces it there, its CR2 variance is ~0
    from impact.errors import FewTreatedClustersWarning

    rng = np.random.default_rng(3)
    clusters = np.repeat(np.arange(10), 6)
    X = np.column_stack([np.ones(60), (clusters == 0) & (np.arange(60) % 6 == 5), rng.normal(size=60)]).astype(float)
    y = rng.normal(size=60)
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    with pytest.warns(FewTreatedClustersWarning, match="\\['d'\\] vary within a single cluster"):
        cr2_wald_test(X, y - X @ coef, coef, clusters, ["d", "x"], names=["(Intercept)", "d", "x"])
