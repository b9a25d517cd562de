"""Matching against R MatchIt 4.5.1 and against an independent brute-force greedy matcher.

Reference: tests/matching/reference/matchit.json and matchit_units.csv, written by
tests/matching/reference/matchit.R (R MatchIt 4.5.1, Debian r-cran-matchit; sandwich for the
cluster-robust SEs) on lalonde.csv with treat ~ age + educ + race + married + nodegree + re74 + re75.
MatchIt 4.5.1's nearest-neighbour matcher is broken (it returns controls that are not the nearest),
so nearest-neighbour matching is checked against ``brute_greedy`` below: plain Python loops over
every treated/control pair with MatchIt's conventions (largest score first, every treated unit gets
its first match before any gets its second, caliper in SD of the score over all units, ties to the
control that comes first in the data).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import SampleWarning, SpecError

REF_DIR = Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "matchit.json").read_text())["results"]
UNITS = pd.read_csv(REF_DIR / "matchit_units.csv")
COVS = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]


@pytest.fixture(scope="module")
def lalonde() -> pd.DataFrame:
    return im.datasets.load("lalonde")


# -- brute force -----------------------------------------------------------------------------
def brute_greedy(t_score, c_score, order, *, ratio=1, caliper=math.inf, replace=False):
    """Greedy nearest neighbour by exhaustive search (O(n_t * n_c) Python loops)."""
    n_c = len(c_score)
    available = [True] * n_c
    matches = [[-1] * ratio for _ in t_score]
    for r in range(ratio):
        for i in order:
            if r > 0 and matches[i][r - 1] < 0:
                continue
            best, best_d = -1, math.inf
            for j in range(n_c):
                if not available[j] or (replace and j in matches[i][:r]):
                    continue
                dist = abs(t_score[i] - c_score[j])
                if dist <= caliper and dist < best_d:
                    best, best_d = j, dist
            if best >= 0:
                matches[i][r] = best
                if not replace:
                    available[best] = False
    return np.array(matches)


def brute_greedy_mahalanobis(Xt, Xc, order, S_inv, *, ratio=1, replace=False):
    n_c = len(Xc)
    available = [True] * n_c
    matches = [[-1] * ratio for _ in Xt]
    for r in range(ratio):
        for i in order:
            best, best_d = -1, math.inf
            for j in range(n_c):
                if not available[j] or (replace and j in matches[i][:r]):
                    continue
                diff = Xt[i] - Xc[j]
                dist = float(diff @ S_inv @ diff)
                if dist < best_d:
                    best, best_d = j, dist
            matches[i][r] = best
            if not replace:
                available[best] = False
    return np.array(matches)


def implied_pairs(m: im.matching.Matching, df: pd.DataFrame) -> np.ndarray:
    """The matcher's pairs as positions among the controls (data order)."""
    controls = df.index[df["treat"] == 0]
    pos = {label: k for k, label in enumerate(controls)}
    return m.pairs.apply(lambda col: col.map(lambda v: pos.get(v, -1) if v is not None else -1)).to_numpy()


def att_from_pairs(pairs, y_t, y_c):
    keep = (pairs >= 0).any(axis=1)
    return float(np.mean([y_t[i] - np.mean(y_c[pairs[i][pairs[i] >= 0]]) for i in np.flatnonzero(keep)]))


# -- propensity scores (R glm via MatchIt) ---------------------------------------------------
@pytest.mark.parametrize("link, tol_coef, tol_ps", [("logit", 1e-7, 1e-8), ("probit", 1e-5, 5e-6)])
def test_propensity_matches_r_glm(lalonde, link, tol_coef, tol_ps):
    # R: glm(treat ~ age + educ + race + married + nodegree + re74 + re75, binomial(link)).
    # Probit tolerance is looser because R's glm stops at |dev change| / (|dev| + 0.1) < 1e-8;
    # ours iterates further (its deviance is 3e-10 lower than R's).
    m = im.matching.match(lalonde, treatment="treat", covariates=COVS, distance=link)
    ref = REF["propensity"][link]["coefficients"]
    coef = m.score_model.coef
    for name, value in zip(m.score_model.names, coef):
        assert value == pytest.approx(ref[name], rel=tol_coef, abs=1e-12), name
    np.testing.assert_allclose(m.distance.to_numpy(), UNITS[f"ps_{link}"], atol=tol_ps)


def test_balance_before_matches_matchit(lalonde):
    # R: summary(matchit(f, method = NULL, distance = "glm"), un = TRUE)$sum.all
    bal = im.matching.match(lalonde, treatment="treat", covariates=COVS).balance().set_index("covariate")
    for name, ref in REF["balance_before"].items():
        row = bal.loc[name]
        # the 'distance' row inherits the 1e-9 difference between our and glm's converged scores
        tol = 1e-7 if name == "distance" else 1e-10
        assert row["mean_treated_before"] == pytest.approx(ref["mean_treated"], rel=tol)
        assert row["mean_control_before"] == pytest.approx(ref["mean_control"], rel=tol)
        assert row["smd_before"] == pytest.approx(ref["std_mean_diff"], rel=max(tol, 1e-8))
        assert row["ecdf_mean_before"] == pytest.approx(ref["ecdf_mean"], rel=1e-8)
        assert row["ecdf_max_before"] == pytest.approx(ref["ecdf_max"], rel=1e-8)
        if ref["var_ratio"] is None:
            assert np.isnan(row["var_ratio_before"])
        else:
            assert row["var_ratio_before"] == pytest.approx(ref["var_ratio"], rel=max(tol, 1e-8))


# -- exact and coarsened exact matching (MatchIt) -----------------------------------------------
CASES = {
    "exact": ("exact", "exact", dict(covariates=["race", "married", "nodegree"])),
    "cem_default": ("cem", "cem", dict(covariates=COVS)),
    "cem_user": ("cem", "cemuser", dict(covariates=COVS, cutpoints={"age": 4, "educ": [0, 9, 12, 16], "re74": 3})),
}


@pytest.mark.parametrize("key", list(CASES))
def test_exact_and_cem_match_matchit(lalonde, key):
    method, prefix, kwargs = CASES[key]
    ref = REF[key]
    m = im.matching.match(lalonde, treatment="treat", method=method, **kwargs)
    # weights (1e-12) and the partition into strata (labels differ, the partition must not)
    np.testing.assert_allclose(m.weights.to_numpy(), UNITS[f"{prefix}_weight"], atol=1e-12)
    ours, theirs = m.subclass.to_numpy(), UNITS[f"{prefix}_subclass"].to_numpy()
    assert (pd.isna(ours) == pd.isna(theirs)).all()
    both = ~pd.isna(theirs)
    table = pd.crosstab(ours[both].astype(int), theirs[both])
    assert ((table > 0).sum(axis=1) == 1).all() and ((table > 0).sum(axis=0) == 1).all()
    assert m.diagnostics["n_strata"] == ref["n_subclasses"]
    assert m.n_matched == ref["n_matched"]
    # ATT: lm(re78 ~ treat, weights) with sandwich::vcovCL(cluster = ~subclass, type = "HC1") and vcovHC HC3
    res = m.effect(outcome="re78", se="cluster")
    assert res.estimate == pytest.approx(ref["att"]["estimate"], rel=1e-10)
    assert res.std_error == pytest.approx(ref["att"]["se_vcovCL_subclass_HC1"], rel=1e-10)
    assert res.n_clusters == ref["att"]["n_subclasses"]
    # the default for strata: HC3 (MatchIt's vignette "Estimating Effects After Matching")
    assert m.effect(outcome="re78").std_error == pytest.approx(ref["att"]["se_vcovHC_HC3"], rel=1e-10)
    # balance after matching: summary(m, un = TRUE)$sum.matched
    bal = m.balance().set_index("covariate")
    for name, r in ref["balance_after"].items():
        if name not in bal.index:  # addlvariables (age, educ, re74, re75) for exact matching
            continue
        row = bal.loc[name]
        assert row["mean_treated_after"] == pytest.approx(r["mean_treated"], rel=1e-10, abs=1e-12)
        assert row["mean_control_after"] == pytest.approx(r["mean_control"], rel=1e-10, abs=1e-12)
        assert row["smd_after"] == pytest.approx(r["std_mean_diff"], rel=1e-8, abs=1e-12)
        assert row["ecdf_max_after"] == pytest.approx(r["ecdf_max"], rel=1e-8, abs=1e-12)
        assert row["ecdf_mean_after"] == pytest.approx(r["ecdf_mean"], rel=1e-8, abs=1e-12)
        if r["var_ratio"] is not None:
            assert row["var_ratio_after"] == pytest.approx(r["var_ratio"], rel=1e-8)


def test_cem_sturges_breaks_match_matchit(lalonde):
    # the implied Sturges breaks recorded from R (ceil(log2(614) + 1) = 11 bins)
    m = im.matching.match(lalonde, treatment="treat", method="cem", covariates=COVS)
    assert m.diagnostics["cutpoints"]["age"] == REF["cem_default"]["implied_breaks"]["age"]["n_bins"] == 11


# -- nearest neighbour against brute force ----------------------------------------------------
def _scores(m, df):
    t = df["treat"].to_numpy() == 1
    s = m.distance.to_numpy()
    return s[t], s[~t]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(ratio=2),
        dict(caliper=0.1),
        dict(caliper=0.05, ratio=2),
        dict(m_order="smallest"),
        dict(m_order="data"),
        dict(replace=True),
        dict(replace=True, ratio=3, caliper=0.2),
    ],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default",
)
def test_nearest_equals_brute_force(lalonde, kwargs):
    with pytest.warns(Warning):
        m = im.matching.match(lalonde, treatment="treat", covariates=COVS, **kwargs)
    ts, cs = _scores(m, lalonde)
    pos = np.arange(len(ts))
    order = {"largest": np.lexsort((pos, -ts)), "smallest": np.lexsort((pos, ts)), "data": pos}[kwargs.get("m_order", "largest")]
    caliper = kwargs.get("caliper")
    width = math.inf if caliper is None else caliper * np.std(m.distance.to_numpy(), ddof=1)
    expected = brute_greedy(ts, cs, order, ratio=kwargs.get("ratio", 1), caliper=width, replace=kwargs.get("replace", False))
    np.testing.assert_array_equal(implied_pairs(m, lalonde), expected)
    y = lalonde["re78"].to_numpy()
    t = lalonde["treat"].to_numpy() == 1
    att = att_from_pairs(expected, y[t], y[~t])
    se = "robust" if kwargs.get("replace") else "cluster"
    assert m.effect(outcome="re78", se=se).estimate == pytest.approx(att, rel=1e-10)


def test_nearest_default_att_in_published_range(lalonde):
    # 1:1 without replacement, largest score first: about $894-908 depending on how ties between
    # identical controls are broken (ours: the control that comes first in the data)
    m = im.matching.match(lalonde, treatment="treat", covariates=COVS)
    res = m.effect(outcome="re78")
    assert 894 <= res.estimate <= 908
    assert res.n_clusters == 185 and res.n_obs == 370


def test_caliper_in_logit_units(lalonde):
    m = im.matching.match(lalonde, treatment="treat", covariates=COVS, caliper=0.2, caliper_scale="logit")
    lin = m.score_model.coef[0] + m.design.model @ m.score_model.coef[1:]
    t = lalonde["treat"].to_numpy() == 1
    width = 0.2 * np.std(lin, ddof=1)
    pos = np.arange(t.sum())
    expected = brute_greedy(lin[t], lin[~t], np.lexsort((pos, -lin[t])), caliper=width)
    np.testing.assert_array_equal(implied_pairs(m, lalonde), expected)


@pytest.mark.parametrize("replace, ratio", [(False, 1), (False, 2), (True, 1), (True, 2)])
def test_mahalanobis_equals_brute_force(lalonde, replace, ratio):
    covs = ["age", "educ", "married", "nodegree", "re74", "re75"]
    m = im.matching.match(lalonde, treatment="treat", covariates=covs, method="mahalanobis", replace=replace, ratio=ratio)
    X = lalonde[covs].to_numpy(dtype=float)
    t = lalonde["treat"].to_numpy() == 1
    # pooled within-group covariance (MatchIt 4)
    S = (np.cov(X[t].T) * (t.sum() - 1) + np.cov(X[~t].T) * ((~t).sum() - 1)) / (len(X) - 2)
    expected = brute_greedy_mahalanobis(X[t], X[~t], range(t.sum()), np.linalg.inv(S), ratio=ratio, replace=replace)
    np.testing.assert_array_equal(implied_pairs(m, lalonde), expected)


def test_matching_weights_follow_matchit_rules(lalonde):
    m = im.matching.match(lalonde, treatment="treat", covariates=COVS, ratio=2, replace=True)
    w = m.weights
    t = lalonde["treat"] == 1
    assert (w[t] == 1).all()
    # controls sum to the number of distinct matched controls
    assert w[~t].sum() == pytest.approx((w[~t] > 0).sum())
    md = m.matched_data
    assert set(md.columns) >= {"weights", "subclass", "distance", "re78"}
    assert "weights" not in lalonde.columns  # the user's frame is untouched


# -- Abadie-Imbens -------------------------------------------------------------------------------
def brute_abadie_imbens(ts, cs, yt, yc, M, J=2, bias_X=None, convention="sample_variance"):
    """AI (2006) ATT variance by loops: matches with replacement (ties to the first control).

    Conditional variance of control j from itself and its J nearest controls: their sample variance
    (statistics.variance, denominator J; R Matching / Stata teffects) or AI (2006) eq. 14."""
    n1 = len(ts)
    matches = brute_greedy(ts, cs, range(n1), ratio=M, replace=True)
    K = np.zeros(len(cs))
    for row in matches:
        for j in row:
            K[j] += 1
    y0 = np.array([np.mean(yc[row]) for row in matches])
    tau = float(np.mean(yt - y0))
    sigma2 = np.zeros(len(cs))
    for j in range(len(cs)):
        if K[j] <= 1:
            continue
        d = np.abs(cs - cs[j])
        d[j] = np.inf
        nb = np.lexsort((np.arange(len(cs)), d))[:J]
        if convention == "sample_variance":
            sigma2[j] = statistics.variance([float(yc[j]), *map(float, yc[nb])])
        else:
            sigma2[j] = J / (J + 1) * (yc[j] - yc[nb].mean()) ** 2
    var = (np.sum((yt - y0 - tau) ** 2) + np.sum(K * (K - 1) / M**2 * sigma2)) / n1**2
    return tau, math.sqrt(var)


@pytest.mark.parametrize("convention", ["sample_variance", "abadie_imbens_2006"])
@pytest.mark.parametrize("ratio", [1, 3])
def test_abadie_imbens_se_equals_formula(lalonde, ratio, convention):
    # Abadie & Imbens (2006, Econometrica 74(1), Theorem 7), conditional variances from J = 2
    # same-group matches (J = 2 as Stata teffects nnmatch vce(robust, nn(2))); either the sample variance
    # of the unit and its J neighbours (R Matching / Stata teffects, the default) or AI (2006) eq. 14;
    # computed by loops. Tolerance 1e-8 relative.
    m = im.matching.match(lalonde, treatment="treat", covariates=COVS, replace=True, ratio=ratio)
    res = m.effect(outcome="re78", se="abadie_imbens", **({} if convention == "sample_variance" else {"conditional_variance": convention}))
    t = lalonde["treat"].to_numpy() == 1
    ts, cs = _scores(m, lalonde)
    y = lalonde["re78"].to_numpy(dtype=float)
    tau, se = brute_abadie_imbens(ts, cs, y[t], y[~t], ratio, convention=convention)
    assert res.estimate == pytest.approx(tau, rel=1e-10)
    assert res.std_error == pytest.approx(se, rel=1e-8)
    assert "Abadie-Imbens" in res.inference
    assert ("R Matching" in res.inference) == (convention == "sample_variance")


def test_bias_adjustment_changes_estimate_by_regression_term(lalonde):
    m = im.matching.match(lalonde, treatment="treat", covariates=COVS, replace=True)
    plain = m.effect(outcome="re78")
    adj = m.effect(outcome="re78", bias_adjust=True)
    assert adj.estimate != pytest.approx(plain.estimate)
    # bias adjustment by hand: mu0 = WLS of re78 on the covariates among used controls (weights K)
    t = lalonde["treat"].to_numpy() == 1
    X = np.column_stack([np.ones(len(t)), m.design.model])
    pairs = implied_pairs(m, lalonde)[:, 0]
    y = lalonde["re78"].to_numpy(dtype=float)
    Xc, yc, Xt = X[~t], y[~t], X[t]
    K = np.bincount(pairs, minlength=len(yc)).astype(float)
    used = K > 0
    beta = np.linalg.lstsq(Xc[used] * np.sqrt(K[used])[:, None], yc[used] * np.sqrt(K[used]), rcond=None)[0]
    adj_by_hand = np.mean(y[t] - (yc[pairs] + Xt @ beta - Xc[pairs] @ beta))
    assert adj.estimate == pytest.approx(adj_by_hand, rel=1e-9)


# -- results ----------------------------------------------------------------------------------------
def test_effect_result_carries_balance_and_figures(lalonde):
    import matplotlib

    matplotlib.use("Agg")
    m = im.matching.match(lalonde, treatment="treat", covariates=COVS)
    res = m.effect(outcome="re78")
    assert isinstance(res, im.matching.BalanceResult)
    assert set(res.figures()) >= {"Covariate balance (love plot)", "Propensity score overlap"}
    for draw in res.figures().values():
        ax = draw(None)
        assert ax is not None
    d = res.to_dict()
    assert isinstance(d["diagnostics"]["balance"], list)
    assert d["diagnostics"]["balance"][0]["covariate"] == "distance"
    assert {"covariate", "smd_before", "smd_after", "var_ratio_before", "var_ratio_after", "ecdf_mean_before",
            "ecdf_mean_after", "ecdf_max_before", "ecdf_max_after"} <= set(res.balance.columns)
    assert any(step.step == "matched" for step in res.sample_flow)


def test_discard_records_counts(lalonde):
    with pytest.warns(SampleWarning):
        m = im.matching.match(lalonde, treatment="treat", covariates=COVS, discard="both")
    step = [s for s in m.sample_flow if s.step == "common support"][0]
    assert "dropped" in step.note
    d = m.diagnostics["discarded"]
    s = m.distance.to_numpy()
    t = lalonde["treat"].to_numpy() == 1
    assert d["treated"] == int((t & ((s < s[~t].min()) | (s > s[~t].max()))).sum())
    assert d["control"] == int((~t & ((s < s[t].min()) | (s > s[t].max()))).sum())


def test_exact_constraint_within_nearest(lalonde):
    m = im.matching.match(lalonde, treatment="treat", covariates=COVS, exact=["race"], replace=True)
    pairs = m.pairs["control_1"].dropna()
    assert (lalonde.loc[pairs.index, "race"].to_numpy() == lalonde.loc[pairs.to_numpy(), "race"].to_numpy()).all()


def test_atc_is_att_with_roles_swapped(lalonde):
    # ATC by nearest neighbour = minus the ATT of the reversed treatment (same score up to sign)
    flipped = lalonde.assign(treat=1 - lalonde["treat"])
    with pytest.warns(Warning):
        atc = im.matching.match(lalonde, treatment="treat", covariates=COVS, estimand="ATC", replace=True,
                                m_order="data").effect(outcome="re78", se="robust")
        att_rev = im.matching.match(flipped, treatment="treat", covariates=COVS, replace=True,
                                    m_order="data").effect(outcome="re78", se="robust")
    assert atc.estimate == pytest.approx(-att_rev.estimate, rel=1e-9)


def test_effect_with_regression_covariates_equals_statsmodels_wls(lalonde):
    # MatchIt's advice: lm(re78 ~ treat + covariates, weights) on the matched data, vcovCL by
    # subclass; checked against statsmodels 0.15 WLS with cluster-robust (CR1) covariance
    sm = pytest.importorskip("statsmodels.api")
    m = im.matching.match(lalonde, treatment="treat", covariates=COVS, ratio=2)
    res = m.effect(outcome="re78", covariates=["age", "educ", "re74"])
    md = m.matched_data
    X = sm.add_constant(md[["treat", "age", "educ", "re74"]].astype(float))
    fit = sm.WLS(md["re78"], X, weights=md["weights"]).fit(
        cov_type="cluster", cov_kwds={"groups": md["subclass"].astype(int).to_numpy()})
    assert res.estimate == pytest.approx(fit.params["treat"], rel=1e-10)
    assert res.std_error == pytest.approx(fit.bse["treat"], rel=1e-8)


def test_outcome_given_to_match_is_used_by_effect(lalonde):
    # programme specs call match(df, outcome=..., **options) and then .effect()
    with pytest.warns(Warning):
        m = im.matching.match(lalonde, treatment="treat", covariates=COVS, outcome="re78")
    assert m.effect().estimate == m.effect(outcome="re78").estimate
    with pytest.raises(im.errors.DataError, match="'earnings'"):
        im.matching.match(lalonde, treatment="treat", covariates=COVS, outcome="earnings")


def test_exact_matching_ate_is_stratified_difference(lalonde):
    # with exact strata, the ATE weights give sum_s (n_s / N) (mean_t,s - mean_c,s) over matched strata
    covs = ["race", "married", "nodegree"]
    m = im.matching.match(lalonde, treatment="treat", covariates=covs, method="exact", estimand="ATE")
    res = m.effect(outcome="re78")
    md = m.matched_data
    by = md.groupby("subclass")
    diff = by.apply(lambda g: g.loc[g.treat == 1, "re78"].mean() - g.loc[g.treat == 0, "re78"].mean(), include_groups=False)
    expected = float((diff * by.size() / len(md)).sum())
    assert res.estimate == pytest.approx(expected, rel=1e-10)
    assert res.estimand == "ATE"


def test_conditional_variance_conventions_agree_for_one_neighbour_and_are_validated(lalonde):
    # For J = 1 the sample variance of two outcomes, (a - b)^2 / 2, equals AI (2006) eq. 14's
    # J/(J+1) (a - b)^2; for J = 2 they differ.
    m = im.matching.match(lalonde, treatment="treat", covariates=COVS, replace=True)
    one = [m.effect(outcome="re78", se="abadie_imbens", n_variance_matches=1, conditional_variance=c).std_error
           for c in ("sample_variance", "abadie_imbens_2006")]
    assert one[0] == pytest.approx(one[1], rel=1e-12)
    two = [m.effect(outcome="re78", se="abadie_imbens", conditional_variance=c).std_error for c in ("sample_variance", "abadie_imbens_2006")]
    assert two[0] != pytest.approx(two[1], rel=1e-6)
    with pytest.raises(SpecError, match="conditional_variance"):
        m.effect(outcome="re78", conditional_variance="stata")
