"""Nearest-neighbour matching with replacement: ATT/ATC/ATE, ties, Abadie-Imbens (2006) variance and
the Abadie-Imbens (2016) correction for an estimated propensity score.

References
----------
* R Matching 4.10-8 (Debian r-cran-matching, R 4.2.2): tests/matching/reference/matching_ai.json,
  written by matching_ai.R: ``Match(Y = re78, Tr = treat, X = ps, estimand = E, M = M,
  replace = TRUE, ties = TRUE, Var.calc = 2, distance.tolerance = 0)`` on lalonde with the logit
  score of treat ~ age + educ + race + married + nodegree + re74 + re75.
* Stata ``teffects psmatch (bweight) (mbsmoke mmarried mage fage medu prenatal1)`` (logit, one
  match, ties kept) on cattaneo2.dta, printed output: ATE -229.4492 (SE 25.88746), ATET -224.5927
  (SE 30.55147), up to 16 matches. The estimates are reproduced; the SEs are not (ours: 28.93 and
  30.27): Stata's variance for psmatch is not documented in enough detail to replicate, and our AI
  (2006) part equals R Matching's. Recorded here so the gap stays visible.
* Independent loop implementations below (matching with ties, AI 2006 variance with ties, the AI
  2016 adjustment) and a simulation with a known effect.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special

import impact as im
from impact.errors import EstimationError, SpecError

REF = json.loads((Path(__file__).parent / "reference" / "matching_ai.json").read_text())["results"]
COVS = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]
pytestmark = pytest.mark.filterwarnings("ignore::impact.errors.OverlapWarning")


@pytest.fixture(scope="module")
def lalonde():
    return im.datasets.load("lalonde")


# -- loops ------------------------------------------------------------------------------------
def _nearest(p, i, pool, k, *, exclude_self=False):
    """Every unit of ``pool`` as near to unit i as its k-th nearest (ties kept)."""
    cand = sorted((abs(p[j] - p[i]), j) for j in pool if not (exclude_self and j == i))
    dk = cand[k - 1][0]
    return [j for dist, j in cand if dist <= dk]


def loop_matching(p, y, d, M, estimand, J=2):
    """Matching estimate and Abadie-Imbens (2006) SE with ties, by loops over units."""
    n = len(y)
    T = [i for i in range(n) if d[i] == 1]
    C = [i for i in range(n) if d[i] == 0]
    focal = {"ATT": T, "ATC": C, "ATE": T + C}[estimand]
    sets = {i: _nearest(p, i, C if d[i] == 1 else T, M) for i in focal}
    K, K2 = [0.0] * n, [0.0] * n
    for members in sets.values():
        for j in members:
            K[j] += 1 / len(members)
            K2[j] += 1 / len(members) ** 2
    effect = {i: (y[i] - statistics.fmean(y[j] for j in s)) * (1 if d[i] == 1 else -1) for i, s in sets.items()}
    tau = statistics.fmean(effect.values())
    var = sum((e - tau) ** 2 for e in effect.values())
    for i in range(n):
        s2 = statistics.variance([y[i]] + [y[j] for j in _nearest(p, i, T if d[i] == 1 else C, J, exclude_self=True)])
        if estimand == "ATE":
            var += (K[i] ** 2 + 2 * K[i] - K2[i]) * s2
        elif (estimand == "ATT") == (d[i] == 0):
            var += (K[i] ** 2 - K2[i]) * s2
    return tau, math.sqrt(var) / len(focal), sets


def loop_ps_adjustment(p, y, d, X1, M, estimand, L=3):
    """Abadie & Imbens (2016) variance change for a logit score, by loops (Theorems 1-2)."""
    n = len(y)
    T = [i for i in range(n) if d[i] == 1]
    C = [i for i in range(n) if d[i] == 0]
    f = [p[i] * (1 - p[i]) for i in range(n)]
    info = sum(f[i] * np.outer(X1[i], X1[i]) for i in range(n)) / n

    def cov(i, pool):
        H = _nearest(p, i, pool, L)
        xs, ys = X1[H], np.array([y[j] for j in H])
        return ((xs - xs.mean(axis=0)) * (ys - ys.mean())[:, None]).sum(axis=0) / (len(H) - 1)

    cov1 = [cov(i, T) for i in range(n)]
    cov0 = [cov(i, C) for i in range(n)]
    if estimand == "ATE":
        c = sum(f[i] * (cov1[i] / p[i] + cov0[i] / (1 - p[i])) for i in range(n)) / n
        return -float(c @ np.linalg.solve(info, c)) / n
    unit = {}
    for i in range(n):
        other = statistics.fmean(y[j] for j in _nearest(p, i, C if d[i] == 1 else T, M))
        unit[i] = y[i] - other if d[i] == 1 else other - y[i]
    tau_t = statistics.fmean(unit[i] for i in T)
    q = len(T) / n
    c_t = sum(f[i] * (cov1[i] + p[i] / (1 - p[i]) * cov0[i]) for i in range(n)) / n / q
    a = sum(f[i] * X1[i] * (unit[i] - tau_t) for i in range(n)) / n / q
    return (-float(c_t @ np.linalg.solve(info, c_t)) + float(a @ np.linalg.solve(info, a))) / n


def _discrete_sample(n=160, seed=3):
    """Covariates on a coarse grid, so that many units share a propensity score (ties)."""
    rng = np.random.default_rng(seed)
    x1 = rng.integers(0, 5, n).astype(float)
    x2 = rng.integers(0, 3, n).astype(float)
    w = (rng.random(n) < special.expit(-1.2 + 0.4 * x1 + 0.3 * x2)).astype(int)
    y = 1.0 + x1 - x2 + w * (2 + 0.5 * x1) + rng.standard_normal(n)
    return pd.DataFrame({"x1": x1, "x2": x2, "w": w, "y": y})


# -- R Matching ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(REF))
def test_reproduces_r_matching_with_ties(lalonde, key):
    estimand, M = key.split("_M")
    ref = REF[key]
    m = im.matching.match(lalonde, treatment="treat", covariates=COVS, replace=True, ties=True, ratio=int(M),
                          estimand=estimand)
    res = m.effect(outcome="re78", se="abadie_imbens")
    # both sides: sums over the same matched sets; 1e-10 relative
    assert res.estimate == pytest.approx(ref["estimate"], rel=1e-10)
    assert res.std_error == pytest.approx(ref["se"], rel=1e-10)
    # the matching weights make the weighted difference in means the matching estimate
    assert m.effect(outcome="re78", se="robust").estimate == pytest.approx(ref["estimate"], rel=1e-10)
    if estimand == "ATE":
        assert len(m.pairs) == len(lalonde)


@pytest.mark.parametrize("estimand", ["ATT", "ATC", "ATE"])
@pytest.mark.parametrize("M", [1, 2])
def test_ties_and_variance_equal_loops(estimand, M):
    df = _discrete_sample()
    m = im.matching.match(df, treatment="w", covariates=["x1", "x2"], replace=True, ties=True, ratio=M,
                          estimand=estimand)
    p = m.distance.to_numpy()
    tau, se, sets = loop_matching(p, df["y"].to_numpy(), df["w"].to_numpy(), M, estimand)
    res = m.effect(outcome="y", se="abadie_imbens")
    assert res.estimate == pytest.approx(tau, rel=1e-10)
    assert res.std_error == pytest.approx(se, rel=1e-10)
    assert m.diagnostics["max_matches"] == max(len(s) for s in sets.values()) > M  # ties were kept
    first = sets[next(iter(sets))]
    assert sorted(m.pairs.iloc[0].dropna()) == sorted(df.index[first])


@pytest.mark.parametrize("estimand", ["ATT", "ATE"])
def test_propensity_adjustment_equals_loops(estimand):
    rng = np.random.default_rng(11)
    n = 150
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    w = (rng.random(n) < special.expit(-0.3 + x1 + 0.5 * x2)).astype(int)
    y = x1 + 3 * x2 + w * (1 + 1.5 * x1 - x2) + rng.standard_normal(n)
    df = pd.DataFrame({"x1": x1, "x2": x2, "w": w, "y": y})
    m = im.matching.match(df, treatment="w", covariates=["x1", "x2"], replace=True, estimand=estimand)
    p = m.distance.to_numpy()
    X1 = np.column_stack([np.ones(n), x1, x2])
    _, se06, _ = loop_matching(p, y, w, 1, estimand)
    extra = loop_ps_adjustment(p, y, w, X1, 1, estimand)
    res = m.effect(outcome="y")
    assert res.settings["se"] == "abadie_imbens_2016"
    assert "Abadie-Imbens 2016" in res.inference
    assert res.std_error == pytest.approx(math.sqrt(se06**2 + extra), rel=1e-9)
    assert extra != pytest.approx(0.0, abs=1e-6 * se06**2)


def test_stata_psmatch_estimates_on_cattaneo2():
    pytest.importorskip("statsmodels")
    from statsmodels.treatment.tests.results import results_teffects

    path = Path(results_teffects.__file__).parent / "cataneo2.csv"
    df = pd.read_csv(path)
    covs = ["mmarried_", "mage", "fage", "medu", "prenatal1_"]
    # Stata prints 4 decimals: -229.4492 and -224.5927
    for estimand, stata in (("ATE", -229.4492), ("ATT", -224.5927)):
        m = im.matching.match(df, treatment="mbsmoke_", covariates=covs, replace=True, ties=True, estimand=estimand)
        assert m.effect(outcome="bweight").estimate == pytest.approx(stata, abs=5e-5)
        assert m.diagnostics["max_matches"] == 16  # Stata: "Matches: requested = 1, max = 16"


# -- defaults and typed errors ----------------------------------------------------------------------
def test_default_se_follows_the_score(lalonde):
    est = im.matching.match(lalonde, treatment="treat", covariates=COVS, replace=True)
    assert est.default_se == "abadie_imbens_2016"
    assert est.effect(outcome="re78", bias_adjust=True).settings["se"] == "abadie_imbens"
    user = lalonde.assign(score=est.distance.to_numpy())
    given = im.matching.match(user, treatment="treat", covariates=COVS, replace=True, distance="score")
    assert given.default_se == "abadie_imbens"
    with pytest.raises(SpecError, match="supplied by the user"):
        given.effect(outcome="re78", se="abadie_imbens_2016")
    with pytest.warns(Warning):
        caliper = im.matching.match(lalonde, treatment="treat", covariates=COVS, replace=True, caliper=0.1)
    assert caliper.default_se == "abadie_imbens"
    with pytest.raises(SpecError, match="caliper"):
        caliper.effect(outcome="re78", se="abadie_imbens_2016")
    pairs = im.matching.match(lalonde, treatment="treat", covariates=COVS)
    with pytest.raises(SpecError, match="replace=True"):
        pairs.effect(outcome="re78", se="abadie_imbens_2016")


def test_ate_input_errors(lalonde):
    with pytest.raises(SpecError, match="needs replace=True"):
        im.matching.match(lalonde, treatment="treat", covariates=COVS, estimand="ATE")
    with pytest.raises(SpecError, match="ties=True"):
        im.matching.match(lalonde, treatment="treat", covariates=COVS, ties=True)
    with pytest.raises(SpecError, match="ties must be"):
        im.matching.match(lalonde, treatment="treat", covariates=COVS, replace=True, ties="yes")
    with pytest.raises(EstimationError, match="estimand='ATE' needs a match for every unit"):
        im.matching.match(lalonde, treatment="treat", covariates=COVS, replace=True, estimand="ATE", caliper=0.01)


# -- simulation with a known effect ----------------------------------------------------------------
def _simulate(reps: int, n: int, seed: int):
    """tau(X) = 2 + 2 x1 + 1.5 x2, p(X) = expit(-0.5 + 1.2 x1): ATE 2; the outcome varies with x2
    given the score, so estimating the score matters (Abadie-Imbens 2016)."""
    rng = np.random.default_rng(seed)
    out = {"ATE": [], "ATT": []}
    att_truth = []
    for _ in range(reps):
        x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
        w = (rng.random(n) < special.expit(-0.5 + 1.2 * x1)).astype(int)
        tau = 2 + 2 * x1 + 1.5 * x2
        y = 2 * x2 + x1 + w * tau + rng.standard_normal(n)
        df = pd.DataFrame({"x1": x1, "x2": x2, "w": w, "y": y})
        att_truth.append(tau[w == 1].mean())
        for estimand in out:
            m = im.matching.match(df, treatment="w", covariates=["x1", "x2"], replace=True, estimand=estimand)
            a = m.effect(outcome="y", se="abadie_imbens")
            b = m.effect(outcome="y")
            out[estimand].append((a.estimate, a.std_error, b.std_error))
    return {k: np.array(v) for k, v in out.items()}


def test_simulation_known_effect_small():
    # 60 samples of 600: the estimate is centred on the known ATE (2) and the corrected SE is
    # closer to the Monte Carlo SD than the uncorrected one, which ignores the score's estimation
    res = _simulate(60, 600, seed=7)["ATE"]
    sd = res[:, 0].std(ddof=1)
    assert abs(res[:, 0].mean() - 2.0) < 3 * sd / math.sqrt(len(res)) + 0.05
    assert abs(res[:, 2].mean() / sd - 1) < abs(res[:, 1].mean() / sd - 1)
    assert res[:, 2].mean() < res[:, 1].mean()  # the ATE correction is never positive


@pytest.mark.slow
def test_simulation_coverage_1000_samples():
    # 1,000 samples of n = 1,000 (about 2 minutes). Recorded run (seed 2024):
    #   ATE: MC SD 0.2493, mean SE AI 2006 0.3157 (coverage 0.989), AI 2016 0.2319 (0.934)
    #   ATT: MC SD 0.2302, mean SE AI 2006 0.2981 (coverage 0.989), AI 2016 0.2312 (0.955)
    res = _simulate(1000, 1000, seed=2024)
    for estimand, rows in res.items():
        sd = rows[:, 0].std(ddof=1)
        # the SD of a Monte Carlo SD over 1,000 samples is about 2.2%; 10% leaves room for the
        # finite-sample bias of matching estimators of the variance
        assert rows[:, 2].mean() == pytest.approx(sd, rel=0.10)
        assert rows[:, 1].mean() > 1.15 * sd  # ignoring the estimated score is conservative here
