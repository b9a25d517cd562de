"""Default standard errors of ``Matching.effect`` and the designs' estimands, against their sources.

Stratum designs (exact, CEM, propensity-score subclassification): tests/matching/reference/matchit_effects.json, written by
matchit_effects.R (R 4.2.2, MatchIt 4.5.1, sandwich 3.0.2): ``lm(re78 ~ treat, data =
match.data(m), weights = weights)`` with ``sandwich::vcovHC(fit, type = "HC3")``, the SE MatchIt's
vignette "Estimating Effects After Matching" recommends for stratum designs
(``marginaleffects::avg_comparisons(fit, vcov = "HC3")``), and the g-computation contrast of
``lm(re78 ~ treat * (age + educ + re74 + re75), weights)`` with its delta-method HC3 SE.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import impact as im
from impact.errors import EstimationError

REF_DIR = Path(__file__).parent / "reference"
EFFECTS = json.loads((REF_DIR / "matchit_effects.json").read_text())["results"]
COVS = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]
OUTCOME_COVS = ["age", "educ", "re74", "re75"]
DESIGNS = {
    "exact": dict(covariates=["race", "married", "nodegree"], method="exact"),
    "cem_default": dict(covariates=COVS, method="cem"),
    "cem_user": dict(covariates=COVS, method="cem", cutpoints={"age": 4, "educ": [0, 9, 12, 16], "re74": 3}),
    "subclass": dict(covariates=COVS, method="subclass"),  # MatchIt's default 6 subclasses, logit score
}
# CEM leaves strata with one group only; their ATE is refused (see test below), MatchIt's is not
CASES = [("exact", "ATT"), ("exact", "ATE"), ("cem_default", "ATT"), ("cem_user", "ATT"),
         ("subclass", "ATT"), ("subclass", "ATE"), ("subclass", "ATC")]


pytestmark = pytest.mark.filterwarnings("ignore::impact.errors.OverlapWarning")


@pytest.fixture(scope="module")
def lalonde():
    return im.datasets.load("lalonde")


@pytest.mark.parametrize("design, estimand", CASES)
def test_stratum_designs_default_to_hc3_of_the_weighted_regression(lalonde, design, estimand):
    ref = EFFECTS[f"{design}_{estimand}"]
    m = im.matching.match(lalonde, treatment="treat", estimand=estimand, **DESIGNS[design])
    assert m.default_se == "robust"
    res = m.effect(outcome="re78")
    assert res.n_obs == ref["n_matched"]
    # tolerances: both sides are closed-form least squares; 1e-10 relative leaves room for summation order
    assert res.estimate == pytest.approx(ref["estimate"], rel=1e-10)
    assert res.std_error == pytest.approx(ref["se_HC3"], rel=1e-10)
    assert "HC3" in res.inference and "MatchIt" in res.inference
    assert res.settings["se"] == "robust"
    # clustering on strata stays available as an option (sandwich::vcovCL(fit, ~subclass, type = "HC1"))
    assert m.effect(outcome="re78", se="cluster").std_error == pytest.approx(ref["se_vcovCL_subclass_HC1"], rel=1e-10)


@pytest.mark.parametrize("design, estimand", CASES)
def test_interacted_outcome_model_is_the_vignettes_g_computation(lalonde, design, estimand):
    ref = EFFECTS[f"{design}_{estimand}"]["interacted"]
    m = im.matching.match(lalonde, treatment="treat", estimand=estimand, **DESIGNS[design])
    res = m.effect(outcome="re78", covariates=OUTCOME_COVS, outcome_model="interacted")
    assert res.estimate == pytest.approx(ref["estimate"], rel=1e-10)
    assert res.std_error == pytest.approx(ref["se_HC3"], rel=1e-10)
    with pytest.raises(im.errors.SpecError, match="outcome_model"):
        m.effect(outcome="re78", covariates=OUTCOME_COVS, outcome_model="saturated")


def test_cem_ate_with_one_sided_strata_is_refused(lalonde):
    with pytest.raises(EstimationError, match=r"estimand='ATE' needs treated and comparison units in every stratum"):
        im.matching.match(lalonde, treatment="treat", estimand="ATE", **DESIGNS["cem_default"])


def test_subclass_input_errors(lalonde):
    with pytest.raises(EstimationError, match="subclasses hold units of one group only"):
        im.matching.match(lalonde, treatment="treat", covariates=COVS, method="subclass", n_subclasses=40)
    with pytest.raises(im.errors.SpecError, match="n_subclasses must be an integer of at least 2"):
        im.matching.match(lalonde, treatment="treat", covariates=COVS, method="subclass", n_subclasses=1)
    with pytest.raises(im.errors.SpecError, match="n_subclasses= is for method='subclass'"):
        im.matching.match(lalonde, treatment="treat", covariates=COVS, n_subclasses=4)


def test_pair_matching_keeps_clustering_on_pairs(lalonde):
    # the vignette's vcov = ~subclass for matching without replacement
    m = im.matching.match(lalonde, treatment="treat", covariates=COVS, ratio=2)
    assert m.default_se == "cluster"
    res = m.effect(outcome="re78")
    assert res.n_clusters == m.n_matched["treated"]


@pytest.mark.r
def test_stratum_reference_values_regenerate_in_r(tmp_path):
    """Reruns matchit_effects.R (needs R with MatchIt, sandwich, jsonlite) and compares with the JSON."""
    if shutil.which("Rscript") is None:
        pytest.skip("R is not installed")
    script = tmp_path / "matchit_effects.R"
    shutil.copy(REF_DIR / "matchit_effects.R", script)
    root = Path(__file__).parents[2]
    subprocess.run(["Rscript", str(script)], cwd=root, check=True, capture_output=True)
    fresh = json.loads((tmp_path / "matchit_effects.json").read_text())["results"]
    for key, ref in EFFECTS.items():
        assert fresh[key]["estimate"] == pytest.approx(ref["estimate"], rel=1e-12)
        assert fresh[key]["se_HC3"] == pytest.approx(ref["se_HC3"], rel=1e-12)
        assert fresh[key]["interacted"]["se_HC3"] == pytest.approx(ref["interacted"]["se_HC3"], rel=1e-12)
