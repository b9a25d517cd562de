"""Bad input: every entry point fails with a typed error that says what is wrong and where."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import DataError, EstimationError, MissingDataWarning, OverlapWarning, SpecError

COVS = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]


@pytest.fixture(scope="module")
def lalonde() -> pd.DataFrame:
    return im.datasets.load("lalonde")


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_perfect_separation_names_the_covariate(lalonde):
    df = lalonde.assign(signup=lalonde["treat"] * 1.0 + 0.0)
    df.loc[df.index[:3], "signup"] = 0.0  # quasi-complete: all with signup = 1 are treated
    for fn in (lambda: im.matching.match(df, treatment="treat", covariates=["age", "signup"]),
               lambda: im.matching.ipw(df, outcome="re78", treatment="treat", covariates=["age", "signup"]),
               lambda: im.matching.aipw(df, outcome="re78", treatment="treat", covariates=["age", "signup"])):
        with pytest.raises(EstimationError, match="'signup'"):
            fn()


def test_continuous_separation_is_no_overlap():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"d": [1] * 50 + [0] * 50, "x": np.r_[rng.uniform(5, 6, 50), rng.uniform(0, 1, 50)],
                       "z": rng.normal(size=100), "y": rng.normal(size=100)})
    with pytest.raises(EstimationError, match="'x'.*do not overlap|no common support"):
        im.matching.match(df, treatment="d", covariates=["x", "z"])


def test_joint_separation_detected_after_fit():
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=400), rng.normal(size=400)
    d = (x1 + x2 > 0).astype(int)  # separated by a combination, not by either covariate
    df = pd.DataFrame({"d": d, "x1": x1, "x2": x2, "y": rng.normal(size=400)})
    with pytest.raises(EstimationError, match="separated"):
        _quiet(im.matching.match, df, treatment="d", covariates=["x1", "x2"])


def test_poor_overlap_warns_with_counts(lalonde):
    with pytest.warns(OverlapWarning, match=r"8 treated unit\(s\)"):
        im.matching.match(lalonde, treatment="treat", covariates=COVS)


def test_caliper_dropping_every_treated_unit_is_an_error():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"d": [1] * 20 + [0] * 20, "score": np.r_[rng.uniform(0.8, 0.9, 20), rng.uniform(0.1, 0.2, 20)],
                       "x": rng.normal(size=40)})
    with pytest.raises(EstimationError, match="within the caliper"):
        im.matching.match(df, treatment="d", covariates=["x"], distance="score", caliper=0.01)


def test_constant_covariate_is_an_error(lalonde):
    with pytest.raises(DataError, match="'one'.*constant"):
        im.matching.match(lalonde.assign(one=1.0), treatment="treat", covariates=["age", "one"])
    with pytest.raises(DataError, match="'one'.*constant"):
        im.matching.ipw(lalonde.assign(one=1.0), outcome="re78", treatment="treat", covariates=["age", "one"])


def test_categorical_with_one_level_is_an_error(lalonde):
    with pytest.raises(DataError, match="'region'.*single value"):
        im.matching.match(lalonde.assign(region="north"), treatment="treat", covariates=["age", "region"])


def test_categorical_dummy_coding_reference_level(lalonde):
    m = _quiet(im.matching.match, lalonde, treatment="treat", covariates=COVS)
    # reference level = first in sorted order ('black'), as R's factor; balance shows every level
    assert "racehispan" in m.score_model.names and "raceblack" not in m.score_model.names
    assert {"raceblack", "racehispan", "racewhite"} <= set(m.balance()["covariate"])
    cat = lalonde.assign(race=pd.Categorical(lalonde["race"], categories=["white", "black", "hispan"]))
    m2 = _quiet(im.matching.match, cat, treatment="treat", covariates=COVS)
    assert "raceblack" in m2.score_model.names and "racewhite" not in m2.score_model.names
    np.testing.assert_allclose(m.distance, m2.distance, atol=1e-9)  # same model, other coding


def test_collinear_covariates_named(lalonde):
    df = lalonde.assign(re_sum=lalonde["re74"] + lalonde["re75"])
    with pytest.raises(EstimationError, match="re_sum|re75"):
        _quiet(im.matching.match, df, treatment="treat", covariates=["age", "re74", "re75", "re_sum"])


def test_missing_values_dropped_and_recorded(lalonde):
    df = lalonde.copy()
    df.loc[df.index[:4], "educ"] = np.nan
    with pytest.warns(MissingDataWarning, match="educ: 4"):
        m = im.matching.match(df, treatment="treat", covariates=COVS)
    assert m.sample_flow[1].rows == len(df) - 4


def test_treatment_not_binary(lalonde):
    with pytest.raises(DataError, match="0/1"):
        im.matching.match(lalonde.assign(treat=lalonde["treat"] * 2), treatment="treat", covariates=COVS)


def test_missing_column_suggests(lalonde):
    with pytest.raises(DataError, match="did you mean 'educ'"):
        im.matching.match(lalonde, treatment="treat", covariates=["age", "edu"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="optimal"), "method='optimal' is not a valid option"),
    (dict(ratio=0), "ratio must be a positive integer"),
    (dict(caliper=-1.0), "caliper must be a positive"),
    (dict(m_order="biggest"), "m_order"),
    (dict(discard="some"), "discard"),
    (dict(estimand="ATE"), "ATE"),
    (dict(method="exact", ratio=2), "apply to nearest-neighbour"),
    (dict(method="mahalanobis", caliper=0.1), "caliper"),
    (dict(cutpoints={"age": 3}), "cutpoints"),
])
def test_invalid_options(lalonde, kwargs, message):
    with pytest.raises(SpecError, match=message):
        im.matching.match(lalonde, treatment="treat", covariates=COVS, **kwargs)


def test_effect_se_options(lalonde):
    m = _quiet(im.matching.match, lalonde, treatment="treat", covariates=COVS)
    with pytest.raises(SpecError, match="replace=True"):
        m.effect(outcome="re78", se="abadie_imbens")
    with pytest.raises(SpecError, match="se="):
        m.effect(outcome="re78", se="bootstrap")
    mr = _quiet(im.matching.match, lalonde, treatment="treat", covariates=COVS, replace=True)
    with pytest.raises(SpecError, match="with replacement"):
        mr.effect(outcome="re78", se="cluster")


def test_inputs_are_not_modified(lalonde):
    before = lalonde.copy()
    _quiet(im.matching.match, lalonde, treatment="treat", covariates=COVS).effect(outcome="re78")
    _quiet(im.matching.ipw, lalonde, outcome="re78", treatment="treat", covariates=COVS, trim="crump")
    _quiet(im.matching.entropy_balance, lalonde, outcome="re78", treatment="treat", covariates=COVS)
    pd.testing.assert_frame_equal(lalonde, before)


def test_weighting_options(lalonde):
    with pytest.raises(SpecError, match="estimand"):
        im.matching.ipw(lalonde, outcome="re78", treatment="treat", covariates=COVS, estimand="ATC")
    with pytest.raises(SpecError, match="trim"):
        im.matching.ipw(lalonde, outcome="re78", treatment="treat", covariates=COVS, trim="yes")
    with pytest.raises(SpecError, match="outcome"):
        im.matching.ipw(lalonde, outcome="age", treatment="treat", covariates=COVS)
