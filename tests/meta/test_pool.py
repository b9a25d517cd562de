"""Tests of impact.meta.pool against R metafor and a simulation with known mean and heterogeneity.

Reference: tests/meta/reference/metafor.json, written by tests/meta/reference/metafor.R with
R 4.2.2, metafor 3.8.1 on data/bcg.csv:
    dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = bcg)
    fit <- rma(yi, vi, data = dat, method = METHOD, test = "z" | "knha");  predict(fit)
for METHOD in REML, DL, PM, FE.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import impact as im
from impact.errors import DataError, EstimationError, SpecError
from impact.meta import MetaResult, pool

REFERENCE = json.loads((Path(__file__).parent / "reference" / "metafor.json").read_text())["results"]
TOL = 1e-6  # absolute, every quantity (achieved: < 1e-13)


def bcg_log_risk_ratios() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """escalc(measure = "RR") computed from the bundled CSV, independently of the JSON."""
    bcg = im.datasets.load("bcg")
    n_t = bcg["tpos"] + bcg["tneg"]
    n_c = bcg["cpos"] + bcg["cneg"]
    yi = np.log((bcg["tpos"] / n_t) / (bcg["cpos"] / n_c)).to_numpy()
    vi = (1 / bcg["tpos"] - 1 / n_t + 1 / bcg["cpos"] - 1 / n_c).to_numpy()
    labels = [f"{a} ({y})" for a, y in zip(bcg["author"], bcg["year"], strict=True)]
    return yi, np.sqrt(vi), labels


def test_escalc_inputs_match_metafor():
    yi, se, _ = bcg_log_risk_ratios()
    np.testing.assert_allclose(yi, REFERENCE["studies"]["yi"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(se**2, REFERENCE["studies"]["vi"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("test", ["z", "knha"])
@pytest.mark.parametrize("method", ["REML", "DL", "PM", "FE"])
def test_reproduces_metafor_rma(method, test):
    # rma(yi, vi, data = dat, method = method, test = test); metafor 3.8.1
    ref = REFERENCE["rma"][method][test]
    yi, se, labels = bcg_log_risk_ratios()
    # metafor's Paule-Mandel stops short of the root (uniroot, tol eps^(1/4)): pm_solver="metafor" stops there
    res = pool(yi, se, method=method, knha=test == "knha", labels=labels, pm_solver="metafor")
    d = res.diagnostics
    low, high = res.conf_int()
    headline = res.tidy().set_index("term").loc["pooled"]
    assert res.estimate == pytest.approx(ref["estimate"], abs=TOL)
    assert res.std_error == pytest.approx(ref["se"], abs=TOL)
    assert res.p_value == pytest.approx(ref["pval"], abs=TOL)
    assert headline["statistic"] == pytest.approx(ref["zval"] if test == "z" else ref["tval"], abs=TOL)
    assert low == pytest.approx(ref["ci_lb"], abs=TOL)
    assert high == pytest.approx(ref["ci_ub"], abs=TOL)
    assert d["tau2"] == pytest.approx(ref["tau2"], abs=TOL)
    assert res.tau2 == d["tau2"]
    if ref["se_tau2"] is None:
        assert d["se_tau2"] is None
    else:
        assert d["se_tau2"] == pytest.approx(ref["se_tau2"], abs=TOL)
    assert d["I2"] == pytest.approx(ref["I2"], abs=TOL)
    assert d["H2"] == pytest.approx(ref["H2"], abs=TOL)
    assert d["Q"] == pytest.approx(ref["QE"], abs=TOL)
    assert d["Q_p_value"] == pytest.approx(ref["QEp"], abs=TOL)
    assert d["k"] == ref["k"] == 13
    if ref["pi_lb"] is None:
        # metafor gives no prediction interval for FE: with tau2 = 0 it is the confidence interval
        assert res.prediction_interval == pytest.approx((ref["ci_lb"], ref["ci_ub"]), abs=TOL)
    else:
        assert res.prediction_interval == pytest.approx((ref["pi_lb"], ref["pi_ub"]), abs=TOL)
    pi = d["prediction_interval"]
    assert (pi["low"], pi["high"]) == res.prediction_interval
    if test == "knha":
        assert headline["df"] == ref["df"] == 12
        assert d["knapp_hartung_factor"] == pytest.approx(ref["s2w"], abs=TOL)
    else:
        assert math.isinf(headline["df"])


def test_fe_matches_ee_label():
    # metafor's EE (equal effects) is the same model as FE; both stored in the JSON
    for test in ("z", "knha"):
        assert REFERENCE["rma"]["EE"][test]["estimate"] == REFERENCE["rma"]["FE"][test]["estimate"]


def test_study_rows_and_weights():
    yi, se, labels = bcg_log_risk_ratios()
    res = pool(yi, se, method="REML", labels=labels)
    studies = res.studies()
    assert list(studies["term"]) == labels
    np.testing.assert_allclose(studies["estimate"], yi)
    np.testing.assert_allclose(studies["std_error"], se)
    np.testing.assert_allclose(studies["conf_low"], yi - 1.959963984540054 * se)
    w = 1 / (se**2 + res.tau2)
    np.testing.assert_allclose(studies["weight"], 100 * w / w.sum())
    assert studies["weight"].sum() == pytest.approx(100)
    assert res.headline == "pooled" and res.n_obs == 13
    assert isinstance(res, MetaResult) and isinstance(res, im.Result)


def test_series_index_names_the_studies():
    estimates = pd.Series([0.1, 0.3, 0.2], index=["north", "south", "east"])
    res = pool(estimates, np.array([0.1, 0.2, 0.1]))
    assert res.studies()["term"].tolist() == ["north", "south", "east"]
    assert pool(estimates.reset_index(drop=True), [0.1, 0.2, 0.1]).studies()["term"].tolist() == ["study 1", "study 2", "study 3"]


def test_result_is_jsonable_and_summarises():
    yi, se, labels = bcg_log_risk_ratios()
    res = pool(yi, se, method="PM", knha=True, labels=labels, pm_solver="metafor")
    record = res.to_dict()
    json.dumps(record)
    assert record["headline"]["term"] == "pooled"
    assert record["diagnostics"]["prediction_interval"]["high"] == pytest.approx(REFERENCE["rma"]["PM"]["knha"]["pi_ub"])
    assert "Knapp-Hartung" in res.summary()


def test_homogeneous_studies_give_zero_tau2():
    # identical estimates: Q = 0 < k - 1, so every estimator truncates tau^2 at zero and I^2 = 0
    se = np.array([0.1, 0.2, 0.15, 0.3])
    for method in ("REML", "DL", "PM"):
        res = pool(np.full(4, 0.5), se, method=method)
        assert res.tau2 == 0
        assert res.diagnostics["I2"] == 0
        assert res.estimate == pytest.approx(0.5)
        assert res.prediction_interval == pytest.approx(res.conf_int())


def test_identical_estimates_with_knha_are_an_estimation_error():
    with pytest.raises(EstimationError, match="knha=False"):
        pool([0.5, 0.5, 0.5], [0.1, 0.2, 0.3], knha=True)


@pytest.mark.parametrize(
    ("estimates", "std_errors", "kwargs", "error", "match"),
    [
        ([0.1, 0.2, 0.3], [0.1, 0.2], {}, DataError, "same length"),
        ([0.1, 0.2], [0.1, 0.0], {}, DataError, "positive; zero or negative for: study 2"),
        ([0.1, 0.2], [0.1, -1.0], {"labels": ["north", "south"]}, DataError, "south"),
        ([0.1], [0.1], {}, DataError, "at least 2"),
        ([0.1, float("nan")], [0.1, 0.1], {}, DataError, "finite"),
        ([0.1, 0.2], [0.1, float("inf")], {}, DataError, "finite"),
        ([0.1, 0.2], [0.1, 0.1], {"method": "HS"}, SpecError, "'REML', 'DL', 'PM', 'FE'"),
        ([0.1, 0.2], [0.1, 0.1], {"level": 95}, SpecError, "between 0 and 1"),
        ([0.1, 0.2], [0.1, 0.1], {"labels": ["a"]}, DataError, "one entry per estimate"),
        ([0.1, 0.2], [0.1, 0.1], {"labels": ["a", "a"]}, DataError, "unique"),
        ([0.1, 0.2], [0.1, 0.1], {"labels": ["a", "pooled"]}, DataError, "reserved"),
        ([0.1, 0.2], [0.1, 0.1], {"knha": "yes"}, SpecError, "knha"),
        (["a", "b"], [0.1, 0.1], {}, DataError, "numbers"),
        ([[0.1, 0.2]], [[0.1, 0.1]], {}, DataError, "one-dimensional"),
    ],
)
def test_invalid_input_raises_typed_errors(estimates, std_errors, kwargs, error, match):
    with pytest.raises(error, match=match):
        pool(estimates, std_errors, **kwargs)


def test_does_not_mutate_inputs():
    yi, se, labels = bcg_log_risk_ratios()
    yi0, se0 = yi.copy(), se.copy()
    pool(yi, se, labels=labels)
    np.testing.assert_array_equal(yi, yi0)
    np.testing.assert_array_equal(se, se0)


def test_forest_plot_draws_every_study_and_the_pooled_row():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yi, se, labels = bcg_log_risk_ratios()
    res = pool(yi, se, method="REML", knha=True, labels=labels)
    figures = res.figures()
    assert list(figures) == ["Forest plot: estimates and pooled effect"]
    fig, ax = plt.subplots()
    out = figures["Forest plot: estimates and pooled effect"](ax)
    assert out is ax
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert len(ticks) == 15 and ticks[-2] == "Pooled (REML, Knapp-Hartung)" and ticks[-1] == "95% prediction interval"
    assert any(label.split("  (")[0] == labels[0] for label in ticks)
    assert len(ax.collections) >= 3  # study intervals, study markers, prediction interval
    assert len(ax.patches) == 1  # the pooled diamond
    plt.close(fig)


def simulate(method, knha, *, k, mu, tau2, reps, seed):
    """Coverage of the pooled interval for the known mean, and the pooled estimates."""
    rng = np.random.default_rng(seed)
    covered = 0
    estimates = np.empty(reps)
    for r in range(reps):  # each replicate is one small meta-analysis; k is tiny, the loop is cheap
        vi = rng.uniform(0.01, 0.2, size=k)
        yi = mu + rng.normal(0, math.sqrt(tau2), size=k) + rng.normal(0, np.sqrt(vi))
        res = pool(yi, np.sqrt(vi), method=method, knha=knha)
        low, high = res.conf_int()
        covered += low <= mu <= high
        estimates[r] = res.estimate
    return covered / reps, estimates


def test_simulation_reml_knha_coverage_near_nominal():
    # Known mean 0.3 and tau^2 = 0.05 over k = 10 regions; 800 replicates: Monte Carlo SE of coverage
    # is 0.0077, so a band of +/- 0.025 (3.2 SE) around 0.95. Mean estimate within 4 Monte Carlo SEs.
    coverage, estimates = simulate("REML", True, k=10, mu=0.3, tau2=0.05, reps=800, seed=20261126)
    assert abs(coverage - 0.95) < 0.025, coverage
    assert abs(estimates.mean() - 0.3) < 4 * estimates.std() / math.sqrt(estimates.size)


@pytest.mark.slow
def test_simulation_estimates_and_coverage_all_methods():
    # k = 8, mu = -0.2, tau^2 = 0.1, 4000 replicates (Monte Carlo SE of coverage 0.0035).
    # With the true tau^2 the Knapp-Hartung interval is exact under normality (0.946 here); with tau^2
    # estimated, the untruncated HKSJ interval is known to fall a little below nominal at small k
    # (about 0.93 here for REML, DL and PM; Jackson et al. 2017, doi:10.1002/sim.7411), hence the band
    # 0.92-0.97. DL with z intervals under-covers clearly more (IntHout et al. 2014).
    knha = {}
    for method in ("REML", "DL", "PM"):
        coverage, estimates = simulate(method, True, k=8, mu=-0.2, tau2=0.1, reps=4000, seed=7)
        knha[method] = coverage
        assert 0.92 < coverage < 0.97, (method, coverage)
        assert abs(estimates.mean() + 0.2) < 4 * estimates.std() / math.sqrt(estimates.size)
    dl_z, _ = simulate("DL", False, k=8, mu=-0.2, tau2=0.1, reps=4000, seed=7)
    assert dl_z < knha["DL"] - 0.01, (dl_z, knha)


def test_reml_falls_back_to_likelihood_search_when_fisher_scoring_oscillates():
    # A simulated draw (k = 10) on which metafor's Fisher scoring from tau2 = 0 cycles between ~0.02
    # and ~0.045 (rma stops with "Fisher scoring algorithm did not converge"). The fallback must land on
    # the REML score root (the derivative of the restricted log-likelihood is zero there).
    yi = np.array([0.149876, 0.149132, 0.256281, 0.214569, 0.379884, 0.193537, 0.56714, 0.324567, -0.331577, -0.281938])
    vi = np.array([0.055124, 0.198884, 0.155924, 0.071821, 0.151282, 0.165627, 0.013289, 0.167949, 0.161208, 0.158591])
    res = pool(yi, np.sqrt(vi), method="REML")
    assert "did not converge" in res.settings["reml_algorithm"]
    w = 1 / (vi + res.tau2)
    mu = (w * yi).sum() / w.sum()
    trace_p = w.sum() - (w**2).sum() / w.sum()
    score = ((w**2) * (yi - mu) ** 2).sum() - trace_p
    assert res.tau2 > 0 and abs(score) < 1e-5
    assert res.estimate == pytest.approx(mu, abs=1e-12)

studies = st.integers(min_value=2, max_value=12).flatmap(
    lambda k: st.tuples(
        st.lists(st.floats(-3, 3, allow_nan=False), min_size=k, max_size=k),
        st.lists(st.floats(0.05, 2.0, allow_nan=False), min_size=k, max_size=k),
        st.permutations(range(k)),
    )
)


@settings(max_examples=60, deadline=None)
@given(data=studies, method=st.sampled_from(["REML", "DL", "PM", "FE"]), scale=st.floats(0.1, 10))
def test_properties_order_invariance_scale_equivariance_and_bounds(data, method, scale):
    estimates, std_errors, order = data
    y, se = np.array(estimates), np.array(std_errors)
    res = pool(y, se, method=method)
    # the pooled estimate is a weighted mean: within the range of the estimates
    assert y.min() - 1e-9 <= res.estimate <= y.max() + 1e-9
    assert res.tau2 >= 0 and 0 <= res.diagnostics["I2"] <= 100
    # order of the studies does not matter
    permuted = pool(y[list(order)], se[list(order)], method=method)
    assert permuted.estimate == pytest.approx(res.estimate, abs=1e-6)
    assert permuted.tau2 == pytest.approx(res.tau2, abs=1e-6)
    # changing the unit of measurement rescales the estimate, SE and tau (Q and I2 unchanged); tau^2
    # is found to a solver tolerance, so compare loosely
    scaled = pool(y * scale, se * scale, method=method)
    if method in ("PM", "REML"):
        # tau^2 comes from metafor's iterative solvers with their ABSOLUTE stopping rules (PM: Brent,
        # tol eps^(1/4); REML: Fisher scoring, 1e-5), kept so that R is reproduced to 1e-6. So tau^2 is
        # equivariant up to that tolerance, and the estimate is exactly the weighted mean at the tau^2
        # found (a scale-relative tolerance on the estimate fails for small scales; hypothesis found
        # y = (0, 0, 0, 0, 0, 2), se = (1, 1, 1, 1, 1, 0.5), scale 0.125).
        # each fit is within the tolerance in its own units; the unscaled error grows by scale^2
        tol = 2 * np.finfo(float).eps ** 0.25
        assert scaled.tau2 == pytest.approx(res.tau2 * scale**2, abs=tol * (1 + scale**2))
        w = 1 / ((se * scale) ** 2 + scaled.tau2)
        assert scaled.estimate == pytest.approx((w * y * scale).sum() / w.sum(), rel=1e-10, abs=1e-12)
    else:
        assert scaled.estimate == pytest.approx(res.estimate * scale, rel=1e-9, abs=1e-12)
    assert scaled.diagnostics["Q"] == pytest.approx(res.diagnostics["Q"], rel=1e-9)
    if method in ("FE", "DL"):  # closed forms: exact equivariance
        assert scaled.std_error == pytest.approx(res.std_error * scale, rel=1e-9)
        assert scaled.tau2 == pytest.approx(res.tau2 * scale**2, rel=1e-9, abs=1e-12)


def test_paule_mandel_finds_roots_beyond_metafors_bracket():
    # Regression (found by hypothesis): y = (20, 20, -20), se = 10 gives mad(y) = 0, so metafor's bracket
    # [0, max(100, 10 mad^2)] = [0, 100] misses the root and metafor errors; the root is where the
    # generalised Q equals k - 1 = 2, which for equal variances is tau^2 = var(y) - v exactly.
    y = np.array([20.0, 20.0, -20.0])
    se = np.full(3, 10.0)
    res = pool(y, se, method="PM")
    assert res.tau2 == pytest.approx(np.var(y, ddof=1) - 100.0, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Dependent estimates (cluster=): CR2 with Satterthwaite df, against R clubSandwich
# ---------------------------------------------------------------------------------------------
CLUSTERED = json.loads((Path(__file__).parent / "reference" / "clubsandwich_pool.json").read_text())["results"]


@pytest.mark.parametrize("case", sorted(CLUSTERED))
def test_cluster_robust_pool_reproduces_clubsandwich(case):
    """Source: tests/meta/reference/clubsandwich_pool.R (R 4.2.2, metafor 3.8.1, clubSandwich 0.5.8):
    coef_test(rma(yi, vi, method = M), vcov = "CR2", cluster = CL, test = "Satterthwaite").
    Tolerances: tau^2 and estimate 1e-6 absolute (REML stops at metafor's 1e-5 step, so compared at
    its precision), SE, df and p 1e-6 relative."""
    ref = CLUSTERED[case]
    with pytest.warns(im.errors.FewClustersWarning) if ref["df"] < 4 else _no_warning():
        res = pool(ref["yi"], ref["sei"], method=ref["method"], cluster=ref["cluster"])
    row = res.tidy().iloc[-1]
    assert res.tau2 == pytest.approx(ref["tau2"], abs=1e-6)
    assert row["estimate"] == pytest.approx(ref["estimate"], abs=1e-6)
    assert row["std_error"] == pytest.approx(ref["se"], rel=1e-6)
    assert row["df"] == pytest.approx(ref["df"], rel=1e-6)
    assert row["p_value"] == pytest.approx(ref["p_value"], rel=1e-6)
    assert "CR2 cluster-robust" in res.inference and "Satterthwaite" in res.inference


def _no_warning():
    import contextlib
    import warnings

    @contextlib.contextmanager
    def guard():
        with warnings.catch_warnings():
            warnings.simplefilter("error", im.errors.FewClustersWarning)
            yield

    return guard()


def test_cluster_robust_pool_of_singletons_keeps_the_estimate_and_weights():
    # every estimate its own cluster: same point estimate and weights, only the pooled SE changes
    yi, se, labels = bcg_log_risk_ratios()
    plain = pool(yi, se, labels=labels)
    robust = pool(yi, se, labels=labels, cluster=labels)
    assert robust.estimate == pytest.approx(plain.estimate, abs=1e-14)
    pd.testing.assert_series_equal(robust.tidy()["weight"], plain.tidy()["weight"])
    # with one study per cluster CR2 is the HC2-type sum_i w_i^2 e_i^2 / (1 - w_i / W) / W^2
    w = 1 / (se**2 + robust.tau2)
    e = yi - robust.estimate
    closed_form = math.sqrt(np.sum(w**2 * e**2 / (1 - w / w.sum()))) / w.sum()
    assert robust.std_error == pytest.approx(closed_form, rel=1e-12)


@pytest.mark.parametrize(
    ("cluster", "match"),
    [(["a"] * 13, "one cluster"), (["a"] * 12, "one label per estimate"), (["a"] * 12 + [None], "missing")],
)
def test_cluster_input_errors(cluster, match):
    yi, se, _ = bcg_log_risk_ratios()
    with pytest.raises(DataError, match=match):
        pool(yi, se, cluster=cluster)


def test_cluster_robust_pool_holds_its_size_where_the_independent_pool_does_not():
    """Simulation with a known pooled effect: 8 programmes x 4 regions; the regions of a programme share
    a comparison-group error (sd 0.2) on top of their own (sd 0.15). Pooling the 32 estimates as
    independent (REML, Knapp-Hartung) rejects the true effect far above 5%; CR2 by programme holds it
    (500 replicates, Monte Carlo SE 0.01)."""
    rng = np.random.default_rng(20261129)
    n_prog, per, reps = 8, 4, 500
    cluster = np.repeat(np.arange(n_prog), per)
    se = np.full(n_prog * per, 0.15)
    naive = robust = 0
    for _ in range(reps):
        y = 0.3 + rng.normal(0, 0.2, n_prog)[cluster] + rng.normal(0, 0.15, n_prog * per)
        naive += _rejects(pool(y, se, knha=True), 0.3)
        robust += _rejects(pool(y, se, cluster=cluster), 0.3)
    assert naive / reps > 0.15, naive / reps
    assert 0.02 <= robust / reps <= 0.08, robust / reps


def _rejects(res, value: float) -> bool:
    low, high = res.conf_int()
    return not (low <= value <= high)


def test_reml_is_not_left_at_metafors_early_stop_when_variances_are_small():
    """Regression (found by hypothesis): metafor 3.8.1's absolute rule (tau^2 changes by < 1e-5) stops
    after one Fisher step at tau^2 = 7.19e-6 on these data in quarter units (R: rma(y/4, sei = se/4,
    method = "REML")$tau2 = 7.191665e-06), where the restricted likelihood peaks at 0.2096908 / 16.
    impact keeps metafor's value where Fisher scoring has converged (the BCG references above) and
    maximises the likelihood where it has not, so tau^2 follows the unit of measurement."""
    y = np.array([0.046875, 1, 1, 1.75, 1, 1, 1, 0.078125, 1, 1, 0.5, 0.5])
    se = np.array([0.0625, 1, 1, 0.5, 1, 1, 1, 0.078125, 1, 1, 0.5, 0.5])
    full = pool(y, se, method="REML")
    assert full.tau2 == pytest.approx(0.2096928, abs=1e-6)  # metafor: 0.2096928 (converged; kept)
    for scale in (0.25, 0.1):
        scaled = pool(y * scale, se * scale, method="REML")
        assert scaled.tau2 / scale**2 == pytest.approx(full.tau2, rel=1e-4), scale
        assert "bounded search" in scaled.settings["reml_algorithm"]
