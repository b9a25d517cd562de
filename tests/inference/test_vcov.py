"""Covariance estimators against R clubSandwich 0.5.8 / sandwich 3.0.2 (R 4.2.2).

Reference values: tests/inference/reference/clubsandwich.json, produced by clubsandwich.R beside it
(exact calls in the JSON's ``source``). Tolerances: 1e-8 relative on SEs, 1e-6 absolute on df.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.data import cluster_codes
from impact.errors import EstimationError, SpecError
from impact.inference.vcov import linear_vcov, wald_test

REF = json.loads((Path(__file__).parent / "reference" / "clubsandwich.json").read_text())["results"]


def _thornton(weighted: bool):
    d = im.datasets.load("thornton_hiv")
    d["w"] = 1 + (np.arange(1, len(d) + 1) % 3)  # built before dropping NAs (see JSON notes)
    d = d.dropna(subset=["got", "any", "age", "distvct", "villnum"])
    X = np.column_stack([np.ones(len(d)), d["any"], d["age"], d["distvct"]])
    y = d["got"].to_numpy()
    w = d["w"].to_numpy(float) if weighted else np.ones(len(d))
    beta = np.linalg.solve(X.T @ (X * w[:, None]), (X * w[:, None]).T @ y)
    codes, G = cluster_codes(d["villnum"], where="test")  # 119 villages: no few-cluster warning
    return X, y - X @ beta, beta, (w if weighted else None), codes, G


@pytest.mark.parametrize("weighted", [False, True])
def test_cr2_satterthwaite_matches_clubsandwich_on_thornton(weighted):
    # coef_test(lm(got ~ any + age + distvct[, weights = w]), vcov = "CR2", cluster = villnum,
    #           test = "Satterthwaite")  -- clubSandwich 0.5.8
    X, resid, beta, w, codes, G = _thornton(weighted)
    ref = REF["thornton"]["weighted" if weighted else "unweighted"]
    cr2 = linear_vcov(X, resid, kind="CR2", weights=w, clusters=codes, n_clusters=G)
    cr1 = linear_vcov(X, resid, kind="CR1", weights=w, clusters=codes, n_clusters=G)
    for i, name in enumerate(["(Intercept)", "any", "age", "distvct"]):
        assert beta[i] == pytest.approx(ref[name]["estimate"], rel=1e-10)
        assert cr2.std_errors[i] == pytest.approx(ref[name]["CR2"]["se"], rel=1e-8)
        assert cr2.df[i] == pytest.approx(ref[name]["CR2"]["df_Satterthwaite"], abs=1e-6)
        assert cr1.std_errors[i] == pytest.approx(ref[name]["CR1S"]["se"], rel=1e-8)  # CR1S = Stata CR1
        assert cr1.df[i] == ref[name]["CR1S"]["df_naive"]


def test_hc_kinds_match_sandwich_on_kielmc():
    # sandwich::vcovHC(lm(rprice ~ nearinc + y81 + nearinc:y81 + age + I(age^2)), type = "HC0".."HC3")
    k = im.datasets.load("kielmc")
    X = np.column_stack([np.ones(len(k)), k["nearinc"], k["y81"], k["age"], k["agesq"], k["y81nrinc"]])
    y = k["rprice"].to_numpy()
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    resid = y - X @ beta
    names = ["(Intercept)", "nearinc", "y81", "age", "I(age^2)", "nearinc:y81"]
    ref = REF["kielmc"]["coefficients"]
    for kind in ["iid", "HC0", "HC1", "HC2", "HC3"]:
        se = linear_vcov(X, resid, kind=kind).std_errors
        for i, name in enumerate(names):
            assert se[i] == pytest.approx(ref[name][kind]["se"], rel=1e-8), (kind, name)


def test_wald_test_naive_f_matches_clubsandwich():
    # Wald_test(fit, constrain_zero(c("age","distvct")), vcov = "CR2", test = "Naive-F"): F, df (2, G-1)
    X, resid, beta, w, codes, G = _thornton(False)
    cov = linear_vcov(X, resid, kind="CR2", clusters=codes, n_clusters=G)
    ref = REF["thornton_wald"]["Naive-F"]
    out = wald_test(beta[2:], cov.matrix[2:, 2:], df_denom=G - 1)
    assert out["statistic"] == pytest.approx(ref["F"], rel=1e-8)
    assert out["p_value"] == pytest.approx(ref["p_val"], rel=1e-6)


def test_unknown_kind_and_missing_clusters_are_spec_errors():
    X = np.column_stack([np.ones(10), np.arange(10.0)])
    with pytest.raises(SpecError, match="choose one of"):
        linear_vcov(X, np.ones(10), kind="HC9")
    with pytest.raises(SpecError, match="needs a cluster variable"):
        linear_vcov(X, np.ones(10), kind="CR2")


def test_singular_design_is_an_estimation_error():
    X = np.column_stack([np.ones(10), np.ones(10)])
    with pytest.raises(EstimationError, match="singular"):
        linear_vcov(X, np.ones(10), kind="HC1")


def test_wald_test_refuses_a_rank_deficient_covariance():
    # Regression: att_gt's pre-trend test on 15 clusters with 16 restrictions returned F = -2.9e15.
    # A cluster-robust covariance from G clusters has rank <= G; with more tested effects than that
    # there is no test, and the result must say so instead of printing a number.
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(3, 5))  # 3 clusters, 5 effects: rank 3
    V = scores.T @ scores
    out = wald_test(rng.normal(size=5), V, df_denom=2)
    assert out["statistic"] is None and out["p_value"] is None
    assert "rank 3 < 5" in out["note"]
    ok = wald_test(np.ones(2), np.eye(2), df_denom=10)
    assert ok["statistic"] == pytest.approx(1.0) and "note" not in ok
