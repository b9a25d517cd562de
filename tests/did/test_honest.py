"""Tests of impact.did.honest (Rambachan & Roth 2023 sensitivity).

The HonestDiD vignette's example (Benzarti & Carloni BCdata) is not bundled and R HonestDiD is not
installed here. References: for smoothness, an independent brute-force computation (the worst-case bias
of each linear estimator by linear programming over the restriction set, the optimum by a grid search);
for relative magnitudes, the honestdid 0.1.1 port of HonestDiD (reference/honestdid_rm.json, written by
reference/make_honestdid_rm.py) on the same grid.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats

import impact as im
from impact.did.honest import _critical_value_exact, flci_smoothness
from impact.errors import EstimationError, SpecError


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def mpdta_es():
    d = im.datasets.load("mpdta")
    return quiet(im.did.event_study, d, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", leads=3)


def estimated(res):
    t = res.tidy()
    idx = np.flatnonzero((t["event_time"].notna() & ~t["reference"]).to_numpy())
    return t["event_time"].to_numpy()[idx], t["estimate"].to_numpy()[idx], res.vcov[np.ix_(idx, idx)]


def lp_max_bias(v_full, grid, M):
    """sup over {delta: |second differences| <= M, delta(-1) = 0} of v'delta, by linear programming."""
    n = len(grid)
    D2 = np.zeros((n - 2, n))
    for j in range(n - 2):
        D2[j, j : j + 3] = (1, -2, 1)
    A_ub = np.vstack([D2, -D2])
    b_ub = np.full(2 * (n - 2), M)
    A_eq = (grid == -1).astype(float)[None, :]
    out = optimize.linprog(-v_full, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[0.0], bounds=[(None, None)] * n,
                           method="highs")
    assert out.status == 0
    return -out.fun


def test_flci_smoothness_matches_brute_force(mpdta_es):
    e, b, V = estimated(mpdta_es)  # e = -3, -2, 0, 1, 2, 3
    grid = np.arange(-3, 4)
    l_post = np.full(4, 0.25)
    M = 0.01
    ours = flci_smoothness(b, V, e, l_post, M, alpha=0.05)
    # one free pre-period weight: v_-3 * (-2) + v_-2 * (-1) + l'(e+1) = 0  =>  v_-2 = -2 v_-3 + l'(e+1)
    trend_post = float(l_post @ (np.arange(0, 4) + 1))

    def half_length(v3):
        v = np.array([v3, -2 * v3 + trend_post, *l_post])
        v_full = np.insert(v, 2, 0.0)  # grid includes e=-1 with delta(-1) = 0
        sd = math.sqrt(v @ V @ v)
        return _critical_value_exact(lp_max_bias(v_full, grid, M) / sd, 0.05) * sd

    coarse = np.linspace(-5, 5, 41)
    start = coarse[np.argmin([half_length(x) for x in coarse])]
    best = optimize.minimize_scalar(half_length, bounds=(start - 0.3, start + 0.3), method="bounded",
                                    options={"xatol": 1e-10})
    assert ours["half_length"] == pytest.approx(best.fun, rel=1e-6)
    assert ours["weights_pre"][0] == pytest.approx(best.x, abs=1e-4)


def test_smoothness_m0_is_linear_trend_extrapolation(mpdta_es):
    """M = 0: only linear violations; the FLCI is the minimum-variance trend-annihilating estimator +- z sd."""
    e, b, V = estimated(mpdta_es)
    l_post = np.full(4, 0.25)
    res = quiet(im.did.honest, mpdta_es, method="smoothness", M=[0.0])
    # Lagrange: min v'Vv s.t. v_post = l, v'(e + 1) = 0
    trend = e + 1
    n_pre = 2
    k = len(e)
    C = np.zeros((5, k))
    C[:4, n_pre:] = np.eye(4)
    C[4] = trend
    rhs = np.concatenate([l_post, [0.0]])
    KKT = np.block([[2 * V, C.T], [C, np.zeros((5, 5))]])
    v = np.linalg.solve(KKT, np.concatenate([np.zeros(k), rhs]))[:k]
    sd = math.sqrt(v @ V @ v)
    row = res.tidy().set_index("term").loc["M=0"]
    assert row["estimate"] == pytest.approx(v @ b, abs=1e-8)
    assert row["conf_high"] - row["conf_low"] == pytest.approx(2 * 1.959963984540054 * sd, rel=1e-6)


def test_relative_magnitudes_identified_set_and_bonferroni(mpdta_es):
    res = quiet(im.did.honest, mpdta_es, Mbar=[0, 0.5, 1, 2], test="bonferroni")
    _, b, _ = estimated(mpdta_es)
    tidy = res.tidy().set_index("term")
    # Mbar = 0 is the original interval
    assert tidy.loc["Mbar=0", "conf_low"] == pytest.approx(tidy.loc["original", "conf_low"], rel=1e-12)
    # identified set by LP: delta_pre = beta_pre, post first differences within Mbar * max pre difference
    pre = np.array([b[0], b[1], 0.0])  # e = -3, -2, -1
    dbar = np.abs(np.diff(pre)).max()
    post = b[2:]
    l_post = np.full(4, 0.25)
    for entry in res.diagnostics["bounds"]:
        Mbar = entry["Mbar"]
        # variables: post deltas d_0..d_3; |d_0 - 0| <= Mbar*dbar, |d_j - d_{j-1}| <= Mbar*dbar
        Dm = np.eye(4) - np.eye(4, k=-1)
        A_ub = np.vstack([Dm, -Dm])
        b_ub = np.full(8, Mbar * dbar)
        hi = -optimize.linprog(-l_post, A_ub=A_ub, b_ub=b_ub, bounds=[(None, None)] * 4, method="highs").fun
        assert entry["identified_high"] == pytest.approx(l_post @ post + hi, abs=1e-10)
        assert entry["identified_low"] == pytest.approx(l_post @ post - hi, abs=1e-10)
        row = tidy.loc[f"Mbar={Mbar:g}"]
        assert row["conf_low"] <= entry["identified_low"] and row["conf_high"] >= entry["identified_high"]
    widths = (tidy["conf_high"] - tidy["conf_low"]).iloc[1:].to_numpy()
    assert np.all(np.diff(widths) > 0)


def test_breakdown_value_is_where_zero_enters():
    d = im.datasets.load("mpdta")
    full = quiet(im.did.event_study, d, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    for method, key in (("relative_magnitude", "Mbar"), ("smoothness", "M")):
        res = quiet(im.did.honest, full, method=method)
        br = res.diagnostics["breakdown"]
        assert 0 < br < math.inf
        kwargs = {key: [br * 0.98, br * 1.02]}
        check = quiet(im.did.honest, full, method=method, **kwargs).tidy()
        assert check["conf_high"].iloc[1] < 0 <= check["conf_high"].iloc[2]


def test_relative_magnitude_coverage_simulation():
    """Draws of beta-hat ~ N(beta, V) with a violation inside Delta^RM(1): coverage of the Bonferroni set >= 95%."""
    rng = np.random.default_rng(0)
    e = np.array([-3, -2, 0, 1, 2])
    V = 0.01 * (np.eye(5) + 0.3)
    delta = np.array([-0.2, -0.1, 0.1, 0.2, 0.3])  # pre steps 0.1; post steps 0.1 <= 1 * 0.1
    tau = np.array([0, 0, 0.5, 0.5, 0.5])
    from impact.did.honest import rm_bonferroni

    l_post = np.full(3, 1 / 3)
    hits = 0
    for _ in range(2000):
        b = rng.multivariate_normal(delta + tau, V)
        f = rm_bonferroni(b, V, e, l_post, 1.0, alpha=0.05)
        hits += f["conf_low"] <= 0.5 <= f["conf_high"]
    assert hits / 2000 >= 0.95


def test_other_results_and_bad_input(mpdta_es):
    d = im.datasets.load("mpdta")
    sa = quiet(im.did.sun_abraham, d, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    res = quiet(im.did.honest, sa, target=0)
    assert res.settings["target"] == "e=0"
    assert set(res.figures()) == {"Sensitivity to violations of parallel trends"}
    import matplotlib

    matplotlib.use("Agg")
    assert res.figures()["Sensitivity to violations of parallel trends"](None) is not None
    res.to_dict()
    bjs = quiet(im.did.imputation, d, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    with pytest.raises(EstimationError, match="no pre-period"):
        im.did.honest(bjs)
    # a result that estimates e=-1 (no normalisation) is refused
    shifted = sa.replace(effects=sa.effects.assign(event_time=sa.effects["event_time"] + 1))
    with pytest.raises(SpecError, match="normalised to zero at e=-1"):
        im.did.honest(shifted)
    with pytest.raises(EstimationError, match="covariance"):
        im.did.honest(sa.replace(vcov=None))
    with pytest.raises(SpecError, match="target"):
        im.did.honest(mpdta_es, target=-2)
    with pytest.raises(SpecError, match="non-negative"):
        im.did.honest(mpdta_es, Mbar=[-1])
    with pytest.raises(SpecError, match="method"):
        im.did.honest(mpdta_es, method="both")
    assert stats.norm.ppf(0.975) == pytest.approx(1.959963984540054)


def test_chained_method_equals_function(mpdta_es):
    a = mpdta_es.honest(method="smoothness", M=[0.0, 0.01])
    b = im.did.honest(mpdta_es, method="smoothness", M=[0.0, 0.01])
    np.testing.assert_allclose(a.tidy()["conf_low"], b.tidy()["conf_low"])
    assert mpdta_es.pretrend_test() == mpdta_es.diagnostics["pretrend_test"]
    c = mpdta_es.honest_smoothness(M=[0.0, 0.01])
    np.testing.assert_allclose(c.tidy()["conf_high"], b.tidy()["conf_high"])
    assert mpdta_es.honest_relative_magnitude(Mbar=[1.0]).settings["method"] == "relative_magnitude"


def test_relative_magnitude_tests_equal_honestdid():
    # honestdid 0.1.1 computeConditionalCS_DeltaRM(betahat, sigma, 2, n_post, l_vec, Mbar, alpha=0.05,
    # hybrid_flag="LF" | "ARP") on mpdta's event study (make_honestdid_rm.py): the same grid (1,000 points
    # on +-20 sd) and the same least-favourable draws (RandomState(0), 1,000) give the same accepted grid
    # points, so the interval ends agree exactly (tolerance 1e-12; the grid step is the resolution of both).
    from impact.did.honest import rm_conditional

    ref = json.loads((Path(__file__).parent / "reference" / "honestdid_rm.json").read_text())
    e, b, V = np.array(ref["event_time"]), np.array(ref["betahat"]), np.array(ref["sigma"])
    for case in ref["cases"]:
        k = 2 + case["n_post"]
        grid = np.linspace(case["grid_low"], case["grid_high"], case["grid_points"])
        fit = rm_conditional(b[:k], V[:k, :k], e[:k], np.array(case["l_vec"]), case["Mbar"], alpha=0.05,
                             hybrid=case["hybrid_flag"] == "LF", grid=grid)
        assert np.flatnonzero(fit["accepted"]).tolist() == case["accepted"], case
        assert fit["conf_low"] == pytest.approx(case["conf_low"], abs=1e-12)
        assert fit["conf_high"] == pytest.approx(case["conf_high"], abs=1e-12)


def test_relative_magnitude_default_is_the_hybrid(mpdta_es):
    res = quiet(im.did.honest, mpdta_es, Mbar=[0.5, 1.0])
    assert res.settings["test"] == "hybrid"
    assert "hybrid" in res.inference and "Bonferroni" not in res.inference
    bonf = quiet(im.did.honest, mpdta_es, Mbar=[0.5, 1.0], test="bonferroni").tidy()
    hyb = res.tidy()
    # the hybrid sets are narrower than the conservative Bonferroni sets on this event study
    assert ((hyb["conf_high"] - hyb["conf_low"]).iloc[1:] < (bonf["conf_high"] - bonf["conf_low"]).iloc[1:]).all()
    with pytest.raises(SpecError, match="test"):
        im.did.honest(mpdta_es, test="lf")


def test_relative_magnitude_hybrid_coverage_simulation():
    """beta-hat ~ N(beta, V) with a violation inside Delta^RM(1) at its boundary (post steps = the largest
    pre step): the hybrid set covers the true average effect in >= 93% of 300 draws (nominal 95%; Monte
    Carlo sd 1.3 points) and is narrower than the Bonferroni set on average."""
    from impact.did.honest import rm_bonferroni, rm_conditional

    rng = np.random.default_rng(1)
    e = np.array([-3, -2, 0, 1, 2])
    V = 0.01 * (np.eye(5) + 0.3)
    delta = np.array([-0.2, -0.1, 0.1, 0.2, 0.3])
    tau = np.array([0, 0, 0.5, 0.5, 0.5])
    l_post = np.full(3, 1 / 3)
    hits, widths = 0, []
    for _ in range(300):
        b = rng.multivariate_normal(delta + tau, V)
        f = rm_conditional(b, V, e, l_post, 1.0, alpha=0.05, grid_points=400)
        hits += f["conf_low"] <= 0.5 <= f["conf_high"]
        g = rm_bonferroni(b, V, e, l_post, 1.0, alpha=0.05)
        widths.append((f["conf_high"] - f["conf_low"]) / (g["conf_high"] - g["conf_low"]))
    assert hits / 300 >= 0.93, hits
    assert np.mean(widths) < 1.0
