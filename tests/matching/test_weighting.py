"""IPW, AIPW and entropy balancing.

References: statsmodels 0.15.0 ``statsmodels.treatment.treatment_effects.TreatmentEffect`` (ipw,
aipw), run here on lalonde.csv. Two documented differences of statsmodels' implementation:
(1) its GMM step clips propensity scores to [0.01, 0.99] (one lalonde unit has 0.00908 with the full
covariate set), so on that specification only its closed-form estimates (``return_results=False``)
are unclipped; (2) its GMM Jacobian is numerical with an absolute step, which is inaccurate for
coefficients of earnings in dollars (1e-5), so we give it earnings in $1000s (the effect and its
SE do not depend on the scale of a covariate).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special

import impact as im
from impact.errors import OverlapWarning, SampleWarning

sys.path.insert(0, str(Path(__file__).parent))
from _dw import DW_COVARIATES, nsw_cps, nsw_psid  # noqa: E402

COVS_NO_RACE = ["age", "educ", "married", "nodegree", "re74", "re75"]
COVS = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]


@pytest.fixture(scope="module")
def lalonde() -> pd.DataFrame:
    return im.datasets.load("lalonde")


def _statsmodels(df, covs):
    sm = pytest.importorskip("statsmodels.api")
    from statsmodels.treatment.treatment_effects import TreatmentEffect

    X = pd.get_dummies(df[covs], columns=[c for c in covs if c == "race"], drop_first=True, dtype=float)
    X[["re74", "re75"]] = X[["re74", "re75"]] / 1000
    X = sm.add_constant(X)
    d = df["treat"].to_numpy()
    sel = sm.Logit(d, X).fit(disp=0, method="newton", tol=1e-12)
    return TreatmentEffect(sm.OLS(df["re78"].to_numpy(), X), d, results_select=sel)


@pytest.mark.parametrize("kind", ["ipw_ate", "ipw_att", "aipw"])
def test_matches_statsmodels_treatment_effect(lalonde, kind):
    # statsmodels: TreatmentEffect(OLS(re78, X), treat, results_select=Logit(treat, X).fit())
    #   .ipw() / .ipw(effect_group=1) / .aipw(); rows ATE (or ATT), POM0, POM1.
    # Scores stay inside [0.01, 0.99] with these covariates, so no clipping is involved.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        te = _statsmodels(lalonde, COVS_NO_RACE)
        sm_res = {"ipw_ate": te.ipw, "ipw_att": lambda: te.ipw(effect_group=1), "aipw": te.aipw}[kind]()
    fn = im.matching.aipw if kind == "aipw" else im.matching.ipw
    ours = fn(lalonde, outcome="re78", treatment="treat", covariates=COVS_NO_RACE,
              estimand="ATT" if kind == "ipw_att" else "ATE")
    np.testing.assert_allclose(ours.effects["estimate"], sm_res.effect[:3], rtol=1e-6)
    # 2e-6: the residual error of statsmodels' finite-difference Jacobian
    np.testing.assert_allclose(ours.effects["std_error"], sm_res.sd[:3], rtol=2e-6)


def test_full_specification_against_statsmodels(lalonde):
    # with race the lowest score (0.00908) is clipped to 0.01 in statsmodels' GMM: compare the
    # unclipped closed-form estimates to 1e-9 and the SEs to 1e-4 (clipping moves them by ~3e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        te = _statsmodels(lalonde, COVS)
        ours = im.matching.ipw(lalonde, outcome="re78", treatment="treat", covariates=COVS)
        aipw = im.matching.aipw(lalonde, outcome="re78", treatment="treat", covariates=COVS)
        att = im.matching.ipw(lalonde, outcome="re78", treatment="treat", covariates=COVS, estimand="ATT")
        closed = te.ipw(return_results=False)
        closed_att = te.ipw(return_results=False, effect_group=1)
        closed_aipw = te.aipw(return_results=False)
        sm_ipw = te.ipw()
    assert ours.estimate == pytest.approx(closed[0], rel=1e-9)
    assert att.estimate == pytest.approx(closed_att[0], rel=1e-9)
    assert aipw.estimate == pytest.approx(closed_aipw[0], rel=1e-9)
    assert ours.std_error == pytest.approx(sm_ipw.sd[0], rel=1e-4)


def test_overlap_warning_counts_extreme_scores(lalonde):
    with pytest.warns(OverlapWarning, match="1 unit"):
        res = im.matching.ipw(lalonde, outcome="re78", treatment="treat", covariates=COVS)
    assert res.diagnostics["n_score_below_0.01"] == 1
    assert any("OverlapWarning" in w for w in res.warnings)


def _crump_uniform_alpha() -> float:
    # Crump et al. (2009): for e ~ U(0, 1), E[1/(e(1-e)) | a <= e <= 1-a] = 2 log((1-a)/a) / (1-2a);
    # alpha solves 1/(a(1-a)) = 2 E[...]
    f = lambda a: 1 / (a * (1 - a)) - 4 * np.log((1 - a) / a) / (1 - 2 * a)  # noqa: E731
    return optimize.brentq(f, 1e-4, 0.45)


def test_crump_threshold_uniform_scores():
    scores = (np.arange(200_000) + 0.5) / 200_000
    assert im.matching.crump_threshold(scores) == pytest.approx(_crump_uniform_alpha(), abs=2e-4)
    assert im.matching.crump_threshold(np.linspace(0.3, 0.7, 100)) == 0.0


def test_crump_trimming_recorded_in_sample_flow(lalonde):
    with pytest.warns(SampleWarning, match="Crump"):
        res = im.matching.ipw(lalonde, outcome="re78", treatment="treat", covariates=COVS, trim="crump")
    step = [s for s in res.sample_flow if s.step == "overlap trimming"][0]
    n_trim = res.diagnostics["trimmed_treated"] + res.diagnostics["trimmed_control"]
    assert step.rows == len(lalonde) - n_trim == res.n_obs
    assert n_trim > 0


def test_entropy_balance_weights_and_effect(lalonde):
    covs = COVS_NO_RACE
    res = im.matching.entropy_balance(lalonde, outcome="re78", treatment="treat", covariates=covs)
    assert res.diagnostics["converged"]
    assert res.diagnostics["max_abs_smd_after"] < 1e-6
    # independent solution: minimise the dual with scipy BFGS on the raw covariates
    t = lalonde["treat"].to_numpy() == 1
    X = lalonde[covs].to_numpy(dtype=float)
    X = (X - X.mean(0)) / X.std(0)
    Zc = X[~t] - X[t].mean(0)
    sol = optimize.minimize(lambda l: special.logsumexp(Zc @ l), np.zeros(len(covs)),
                            jac=lambda l: special.softmax(Zc @ l) @ Zc, method="BFGS", options={"gtol": 1e-12})
    w = special.softmax(Zc @ sol.x)
    y = lalonde["re78"].to_numpy()
    assert res.estimate == pytest.approx(y[t].mean() - w @ y[~t], rel=1e-6)


def test_entropy_balance_unreachable_target_raises():
    df = pd.DataFrame({"d": [1, 1, 0, 0, 0, 0], "x": [5.0, 6.0, 0.0, 1.0, 2.0, 1.5], "z": [0, 1, 1, 0, 1, 0], "y": np.arange(6.0)})
    with pytest.raises(im.errors.EstimationError, match="separates|cannot be matched"):
        im.matching.entropy_balance(df, outcome="y", treatment="d", covariates=["x", "z"])


# -- Dehejia & Wahba ---------------------------------------------------------------------------------
EXPERIMENTAL = 1794.34  # nsw_dw experimental difference in means (Dehejia & Wahba 1999; LaLonde 1986)


def _dw_estimates(df):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = im.matching.match(df, treatment="treat", covariates=DW_COVARIATES)
        mr = im.matching.match(df, treatment="treat", covariates=DW_COVARIATES, replace=True)
        return {
            "nearest 1:1": m.effect(outcome="re78"),
            "nearest with replacement, bias-adjusted": mr.effect(outcome="re78", bias_adjust=True),
            "ipw ATT": im.matching.ipw(df, outcome="re78", treatment="treat", covariates=DW_COVARIATES, estimand="ATT"),
            "aipw ATT": im.matching.aipw(df, outcome="re78", treatment="treat", covariates=DW_COVARIATES, estimand="ATT"),
            "entropy balancing": im.matching.entropy_balance(df, outcome="re78", treatment="treat", covariates=DW_COVARIATES),
        }, m


@pytest.mark.parametrize("sample, raw_published", [("cps", -8498), ("psid", -15205)])
def test_dehejia_wahba_estimates_move_towards_experiment(sample, raw_published):
    # Dehejia & Wahba (1999, JASA 94(448), Table 3): raw differences -8,498 (CPS-1), -15,205 (PSID-1);
    # their propensity-score estimates are roughly $1,500-1,800 against the experimental $1,794.
    df = nsw_cps() if sample == "cps" else nsw_psid()
    t = df["treat"] == 1
    raw = df.loc[t, "re78"].mean() - df.loc[~t, "re78"].mean()
    assert raw == pytest.approx(raw_published, abs=1)
    estimates, m = _dw_estimates(df)
    for name, res in estimates.items():
        # each removes at least 80% of the raw bias against the experimental benchmark
        assert abs(res.estimate - EXPERIMENTAL) < 0.2 * abs(raw - EXPERIMENTAL), name
    bal = m.balance()
    assert bal["smd_after"].abs().mean() < bal["smd_before"].abs().mean()


# -- simulation with a known effect ------------------------------------------------------------------
def simulate(n, seed):
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    region = rng.choice(["north", "south", "west"], size=n)
    shift = np.select([region == "north", region == "south"], [0.4, -0.3], 0.0)
    d = rng.binomial(1, special.expit(-0.6 + 0.8 * x1 - 0.5 * x2 + shift))
    effect = 2.0 + 0.5 * x1  # heterogeneous: ATT != ATE
    y = 1.0 + 1.5 * x1 + 1.0 * x2 + 2.0 * shift + effect * d + rng.normal(size=n)
    df = pd.DataFrame({"d": d, "x1": x1, "x2": x2, "region": region, "y": y})
    return df, float(effect[d == 1].mean()), float(effect.mean())


def test_simulation_all_estimators_recover_known_effect():
    df, att, ate = simulate(20_000, 1)
    naive = df.loc[df.d == 1, "y"].mean() - df.loc[df.d == 0, "y"].mean()
    covs = ["x1", "x2", "region"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = {
            "nearest": (im.matching.match(df, treatment="d", covariates=covs, replace=True).effect(outcome="y", bias_adjust=True), att),
            "nearest 1:1 caliper": (im.matching.match(df, treatment="d", covariates=covs, caliper=0.05).effect(outcome="y"), None),
            "mahalanobis": (im.matching.match(df, treatment="d", covariates=covs, method="mahalanobis", replace=True).effect(outcome="y", bias_adjust=True), att),
            "ipw ATE": (im.matching.ipw(df, outcome="y", treatment="d", covariates=covs), ate),
            "ipw ATT": (im.matching.ipw(df, outcome="y", treatment="d", covariates=covs, estimand="ATT"), att),
            "aipw ATE": (im.matching.aipw(df, outcome="y", treatment="d", covariates=covs), ate),
            "aipw ATT": (im.matching.aipw(df, outcome="y", treatment="d", covariates=covs, estimand="ATT"), att),
            "entropy": (im.matching.entropy_balance(df, outcome="y", treatment="d", covariates=covs), att),
        }
    assert abs(naive - att) > 0.5  # confounded (the naive SE is about 0.03)
    for name, (res, truth) in results.items():
        if truth is None:  # caliper matching targets the matched treated units: compare with their effect
            md = res.diagnostics
            truth = att
            assert md["max_abs_smd_after"] < 0.05
            assert abs(res.estimate - truth) < 0.15, name
            continue
        assert abs(res.estimate - truth) < 4 * res.std_error, (name, res.estimate, truth, res.std_error)
        assert res.diagnostics["max_abs_smd_after"] < res.diagnostics["max_abs_smd_before"]


def test_simulation_coverage_ipw_and_entropy():
    # 95% intervals should cover the true sample effect ~95% of the time (200 replications)
    hits = {"ipw": 0, "entropy": 0}
    reps = 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(reps):
            df, att, ate = simulate(800, 100 + r)
            lo, hi = im.matching.ipw(df, outcome="y", treatment="d", covariates=["x1", "x2", "region"]).conf_int()
            hits["ipw"] += lo <= ate <= hi
            lo, hi = im.matching.entropy_balance(df, outcome="y", treatment="d", covariates=["x1", "x2", "region"]).conf_int()
            hits["entropy"] += lo <= att <= hi
    for name, h in hits.items():
        assert 0.89 <= h / reps <= 0.99, (name, h / reps)


@pytest.mark.parametrize("fn, kwargs", [
    ("ipw", dict(estimand="ATE")), ("ipw", dict(estimand="ATT")), ("ipw", dict(estimand="ATE", link="probit")),
    ("ipw", dict(estimand="ATT", link="probit")), ("aipw", dict(estimand="ATE")), ("aipw", dict(estimand="ATT")),
    ("aipw", dict(estimand="ATE", link="probit")), ("entropy_balance", {}),
])
def test_analytic_jacobians_equal_complex_step(lalonde, monkeypatch, fn, kwargs):
    # the analytic Jacobians used for speed must equal the numerical (complex-step) ones
    from impact.matching import _mestimation, weighting

    checked = []

    def checking_sandwich(psi, theta, where, jac=None):
        numeric = _mestimation.jacobian(psi, theta)
        np.testing.assert_allclose(jac(theta), numeric, rtol=1e-6, atol=1e-9 * np.abs(numeric).max())
        checked.append(True)
        return _mestimation.sandwich(psi, theta, where, jac)

    monkeypatch.setattr(weighting, "sandwich", checking_sandwich)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(im.matching, fn)(lalonde, outcome="re78", treatment="treat", covariates=COVS, **kwargs)
    assert checked
