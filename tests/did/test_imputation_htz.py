"""imputation(pretrend_vcov="CR2"): the BJS Test 1 leads regression tested with CR2 and the HTZ test.

Reference values: tests/did/reference/imputation_htz.json, written by imputation_htz.R beside it with
R 4.2.2 and clubSandwich 0.5.8 (exact calls in the JSON's ``source`` and ``notes``): on the untreated
observations, ``lm(y ~ lead3 + lead2 + lead1 + factor(unit) + factor(period))`` and
``Wald_test(fit, constrain_zero(leads), vcov = "CR2", cluster = ..., test = "HTZ")``. Tolerances:
1e-8 relative on F, delta, the denominator df, lead estimates and CR2 standard errors (the same
algebra, only rounding differs); 1e-10 absolute on p-values.
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import SpecError

HERE = Path(__file__).parent / "reference"
REF = json.loads((HERE / "imputation_htz.json").read_text())
SIM = pd.read_csv(HERE / "imputation_htz_sim.csv")
REL, P_ABS = 1e-8, 1e-10
pytestmark = pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")


def _check(test, ref):
    assert test["test"] == "HTZ"
    assert test["event_times"] == ref["event_times"]
    assert test["statistic"] == pytest.approx(ref["HTZ"]["F"], rel=REL)
    assert test["delta"] == pytest.approx(ref["HTZ"]["delta"], rel=REL)
    assert test["df_num"] == ref["HTZ"]["df_num"]
    assert test["df_denom"] == pytest.approx(ref["HTZ"]["df_denom"], rel=REL)
    assert test["p_value"] == pytest.approx(ref["HTZ"]["p_val"], abs=P_ABS)
    coefs = pd.DataFrame(test["coefficients"])
    np.testing.assert_allclose(coefs["estimate"], ref["estimate"], rtol=REL)
    np.testing.assert_allclose(coefs["std_error"], ref["se"], rtol=REL)
    assert "CR2 with the HTZ test" in test["method"] and "clubSandwich" in test["method"]


def test_mpdta_matches_clubsandwich():
    # Wald_test(lm(lemp ~ lead3 + lead2 + lead1 + factor(countyreal) + factor(year), untreated obs),
    #           constrain_zero(leads), vcov = "CR2", cluster = countyreal, test = "HTZ") -- clubSandwich 0.5.8
    res = im.did.imputation(im.datasets.load("mpdta"), outcome="lemp", unit="countyreal", time="year",
                            cohort="first.treat", pretrend_leads=3, pretrend_vcov="CR2")
    _check(res.diagnostics["pretrend_test"], REF["results"]["mpdta"])
    assert res.settings["pretrend_vcov"] == "CR2"


@pytest.mark.parametrize("weighted", [False, True])
def test_few_treated_regions_match_clubsandwich(weighted):
    # 3 treated regions of 12, unbalanced, clusters = region (unit effects nested, period effects as columns)
    res = im.did.imputation(SIM, outcome="y", unit="unit", time="period", cohort="cohort", cluster="region",
                            weights="w" if weighted else None, pretrend_leads=3, pretrend_vcov="CR2")
    _check(res.diagnostics["pretrend_test"], REF["results"]["simulated"]["weighted" if weighted else "unweighted"])


def test_explicit_cr2_pretest_stays_when_the_effects_are_randomised():
    # a balanced panel with 6 treated counties: inference="auto" randomises the effects and, by default,
    # the pre-trend test too; pretrend_vcov="CR2" asks for the analytic HTZ pre-test instead
    mpdta = im.datasets.load("mpdta")
    treated = mpdta.loc[mpdta["first.treat"] > 0, "countyreal"].unique()[:6]
    few = mpdta.loc[(mpdta["first.treat"] == 0) | mpdta["countyreal"].isin(treated)]
    kwargs = {"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat",
              "n_permutations": 99, "seed": 1}
    default = im.did.imputation(few, **kwargs)
    cr2 = im.did.imputation(few, **kwargs, pretrend_vcov="CR2")
    analytic = im.did.imputation(few, **kwargs, pretrend_vcov="CR2", inference="analytic")
    assert default.settings["inference"] == cr2.settings["inference"] == "randomization"
    assert "randomisation" in default.diagnostics["pretrend_test"]["method"]
    assert cr2.diagnostics["pretrend_test"]["test"] == "HTZ"
    assert cr2.diagnostics["pretrend_test"]["p_value"] == analytic.diagnostics["pretrend_test"]["p_value"]
    pd.testing.assert_frame_equal(cr2.tidy(), default.tidy())  # the effects do not depend on the pre-test


def test_default_and_cluster_keep_the_cr1_test():
    mpdta = im.datasets.load("mpdta")
    kwargs = {"outcome": "lemp", "unit": "countyreal", "time": "year", "cohort": "first.treat"}
    default = im.did.imputation(mpdta, **kwargs).diagnostics["pretrend_test"]
    cr1 = im.did.imputation(mpdta, **kwargs, pretrend_vcov="cluster").diagnostics["pretrend_test"]
    cr2 = im.did.imputation(mpdta, **kwargs, pretrend_vcov="CR2").diagnostics["pretrend_test"]
    assert default["p_value"] == cr1["p_value"] and "CR1 by countyreal" in cr1["method"]
    assert cr1["df_denom"] == 499 and cr2["p_value"] != pytest.approx(cr1["p_value"], abs=1e-3)
    # the same lead estimates whichever covariance
    np.testing.assert_allclose(pd.DataFrame(cr2["coefficients"])["estimate"],
                               pd.DataFrame(cr1["coefficients"])["estimate"], rtol=1e-9)


def test_bad_options_are_typed():
    kwargs = {"outcome": "y", "unit": "unit", "time": "period", "cohort": "cohort", "cluster": "region"}
    with pytest.raises(SpecError, match="pretrend_vcov='CR1'.*'cluster', 'CR2'"):
        im.did.imputation(SIM, **kwargs, pretrend_vcov="CR1")
    with pytest.raises(SpecError, match="pretrend_leads=None skips"):
        im.did.imputation(SIM, **kwargs, pretrend_leads=None, pretrend_vcov="CR2")


def test_too_few_clusters_for_the_joint_test_says_why():
    # 3 regions: the CR2 covariance of 3 leads has rank at most 2, so the joint test cannot be computed
    few = SIM.loc[SIM["region"].isin([1, 2, 3])]
    test = im.did.imputation(few, outcome="y", unit="unit", time="period", cohort="cohort", cluster="region",
                             pretrend_vcov="CR2", inference="analytic").diagnostics["pretrend_test"]
    assert test["p_value"] is None and "not computable" in test["note"] and "3 clusters" in test["note"]


@pytest.mark.r
def test_reference_script_reproduces_the_json(tmp_path):
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript not installed")
    script = tmp_path / "imputation_htz.R"
    shutil.copy(HERE / "imputation_htz.R", script)
    subprocess.run(["Rscript", str(script)], check=True, cwd=Path(__file__).parents[2], capture_output=True)
    fresh = json.loads((tmp_path / "imputation_htz.json").read_text())
    assert fresh["results"] == REF["results"]


def test_one_treated_region_warns_that_the_cr2_pretest_over_rejects():
    # with a single treated region each lead is fitted exactly in that region: its CR2 variance is near zero,
    # and the HTZ pre-test rejected 86-95% of true nulls at 5% (analyses/simulations/few_treated_options.csv)
    from impact.errors import FewTreatedClustersWarning

    one = SIM.loc[(SIM["cohort"] == 0) | (SIM["region"] == 2)]
    kwargs = {"outcome": "y", "unit": "unit", "time": "period", "cohort": "cohort", "cluster": "region",
              "pretrend_vcov": "CR2", "inference": "analytic"}
    with pytest.warns(FewTreatedClustersWarning, match="\\['e=-3', 'e=-2', 'e=-1'\\] vary within a single cluster"):
        res = im.did.imputation(one, **kwargs)
    assert any("vary within a single cluster" in w for w in res.warnings)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        im.did.imputation(SIM, **kwargs)  # 3 treated regions: no such warning
    assert not any("single cluster" in str(w.message) for w in caught)
