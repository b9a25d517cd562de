"""Tests of impact.did.imputation (Borusyak, Jaravel & Spiess 2024) and impact.did.did2s (Gardner 2022)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import DataError, SampleWarning, SpecError


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def simulate(seed=1, n_units=400, n_periods=10, noise=0.2, never=True):
    """Cohorts 4, 6, 8 (+ never treated) with cohort-specific dynamic effects; ``tau`` is the truth."""
    rng = np.random.default_rng(seed)
    cohorts = np.array([4, 6, 8, 0] if never else [4, 6, 8])
    g = cohorts[rng.integers(0, len(cohorts), n_units)]
    slope = {4: 0.30, 6: 0.15, 8: 0.05, 0: 0.0}
    unit = np.repeat(np.arange(n_units), n_periods)
    t = np.tile(np.arange(1, n_periods + 1), n_units)
    gi = np.repeat(g, n_periods)
    e = t - gi
    treated = (gi > 0) & (e >= 0)
    tau = np.where(treated, np.array([slope[v] for v in gi]) * (e + 1) + 0.5 * (gi == 4), 0.0)
    x = rng.normal(0, 1, len(t)) + 0.1 * t
    y = rng.normal(0, 1, n_units)[unit] + np.sin(t / 2.0) + tau + 0.5 * x + rng.normal(0, noise, len(t))
    return pd.DataFrame({"unit": unit, "time": t, "cohort": gi, "y": y, "x": x, "tau": tau, "D": treated.astype(int)})


def dense_bjs(d, *, y, unit, time, cohort, covariates=(), weights=None, leave_out=False):
    """Brute-force BJS with explicit dummies: returns estimates and conservative SEs per event time + ATT."""
    g = d[cohort].to_numpy(float)
    t = d[time].to_numpy(float)
    D = (g > 0) & (t >= g)
    U = pd.get_dummies(d[unit].astype(str)).to_numpy(float)
    T = pd.get_dummies(d[time].astype(str), drop_first=True).to_numpy(float)
    Z = np.column_stack([U, T] + [d[c].to_numpy(float) for c in covariates])
    w = np.ones(len(d)) if weights is None else d[weights].to_numpy(float)
    Z0, Z1 = Z[~D], Z[D]
    W0 = w[~D]
    A = np.linalg.inv((Z0 * W0[:, None]).T @ Z0)  # full rank: all units, periods but one
    yv = d[y].to_numpy(float)
    b = A @ (Z0 * W0[:, None]).T @ yv[~D]
    yhat = Z @ b
    tau = yv - yhat
    e = (t - g)[D]
    horizons = sorted(set(e.astype(int)))
    out_est, out_se = [], []
    cells = pd.factorize(pd.MultiIndex.from_arrays([g[D], e]))[0]
    clusters = pd.factorize(d[unit])[0]
    for target in [e == h for h in horizons] + [np.ones(D.sum(), bool)]:
        w1 = np.where(target, w[D], 0.0)
        w1 = w1 / w1.sum()
        v = np.zeros(len(d))
        v[D] = w1
        v[~D] = -(W0 * (Z0 @ (A @ (Z1.T @ w1))))
        est = v @ yv
        tau1 = tau[D]
        v1 = v[D]
        bar = np.empty(D.sum())
        cl1 = clusters[D]
        for c in np.unique(cells):
            m = cells == c
            for i in np.flatnonzero(m):
                mm = m & (cl1 != cl1[i]) if leave_out else m
                if leave_out and (v1[mm] ** 2).sum() == 0:
                    mm = m
                bar[i] = (v1[mm] ** 2 @ tau1[mm]) / (v1[mm] ** 2).sum() if (v1[mm] ** 2).sum() > 0 else 0.0
        eps = np.zeros(len(d))
        eps[D] = tau1 - bar
        eps[~D] = tau[~D]
        score = np.bincount(clusters, weights=v * eps)
        out_est.append(est)
        out_se.append(np.sqrt(score @ score))
    return np.array(out_est), np.array(out_se)


@pytest.fixture(scope="module")
def mpdta():
    return im.datasets.load("mpdta")


def test_mpdta_matches_dense_brute_force(mpdta):
    """Point estimates and BJS conservative SEs against an explicit-dummy implementation (exact)."""
    for leave_out in (False, True):
        res = quiet(im.did.imputation, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                    leave_out=leave_out)
        est, se = dense_bjs(mpdta, y="lemp", unit="countyreal", time="year", cohort="first.treat", leave_out=leave_out)
        np.testing.assert_allclose(res.tidy()["estimate"], est, atol=1e-10)
        np.testing.assert_allclose(res.tidy()["std_error"], se, rtol=1e-8)
    assert res.tidy()["term"].tolist() == ["e=0", "e=1", "e=2", "e=3", "ATT"]


def test_covariates_and_weights_match_dense_brute_force():
    d = simulate(seed=2, n_units=60)
    d["w"] = np.random.default_rng(1).uniform(0.5, 2.0, len(d))
    res = quiet(im.did.imputation, d, outcome="y", unit="unit", time="time", cohort="cohort", covariates="x",
                weights="w", leave_out=False)
    est, se = dense_bjs(d, y="y", unit="unit", time="time", cohort="cohort", covariates=["x"], weights="w")
    np.testing.assert_allclose(res.tidy()["estimate"], est, atol=1e-9)
    np.testing.assert_allclose(res.tidy()["std_error"], se, rtol=1e-7)


def test_did2s_matches_pyfixest_on_mpdta_without_2004_cohort(mpdta):
    """pyfixest 0.60.0 did2s (first_stage="~0|countyreal+year", cluster="countyreal"):
    second_stage "~i(rel, ref=-1000.0)" -> rel 0: -0.0324394116 (0.015016853), rel 1: -0.0392027568 (0.0239318815);
    second_stage "~i(D)" -> -0.0337215623 (0.0146846743). The 2004 cohort is removed because pyfixest 0.60.0 drops
    its single untreated observation per unit as a fixed-effect singleton and then fails. Tolerances: estimates 2e-5
    (pyfixest recovers fixed effects iteratively; impact's are exact, checked against dense OLS above), SEs 1e-5
    relative."""
    d = mpdta.loc[mpdta["first.treat"] != 2004]
    res = quiet(im.did.did2s, d, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    tidy = res.tidy()
    np.testing.assert_allclose(tidy["estimate"], [-0.0324394116, -0.0392027568, -0.0337215623], atol=2e-5)
    np.testing.assert_allclose(tidy["std_error"], [0.015016853, 0.0239318815, 0.0146846743], rtol=1e-5)
    bjs = quiet(im.did.imputation, d, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    np.testing.assert_allclose(bjs.tidy()["estimate"], tidy["estimate"], atol=1e-12)  # same point estimates


def test_did2s_variance_equals_bjs_when_cells_are_the_targets(mpdta):
    """With one treated cohort, cohort x event-time cells are the event-time targets; the BJS variance without
    leave-out then equals the GMM variance of the two-stage estimator (both are sums of squared cluster scores
    of the same linear estimator)."""
    d = mpdta.loc[mpdta["first.treat"].isin([0, 2006])]
    a = quiet(im.did.did2s, d, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    b = quiet(im.did.imputation, d, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
              leave_out=False)
    np.testing.assert_allclose(a.tidy()["std_error"].iloc[:-1], b.tidy()["std_error"].iloc[:-1], rtol=1e-10)


def test_simulation_recovers_truth():
    d = simulate(seed=11)
    res = quiet(im.did.imputation, d, outcome="y", unit="unit", time="time", cohort="cohort", covariates="x")
    tr = d.loc[d["D"] == 1]
    truth = tr.groupby(tr["time"] - tr["cohort"])["tau"].mean()
    tidy = res.tidy().set_index("term")
    for k, value in truth.items():
        row = tidy.loc[f"e={k}"]
        assert abs(row["estimate"] - value) < 4 * row["std_error"], k
    assert abs(res.estimate - tr["tau"].mean()) < 4 * res.std_error
    assert res.std_error < 0.05  # informative, not trivially wide
    twfe = quiet(im.did.bacon, d.drop(columns="x"), outcome="y", unit="unit", time="time", treatment="D")
    assert abs(twfe.estimate - tr["tau"].mean()) > 5 * res.std_error


@pytest.mark.slow
def test_coverage_of_conservative_intervals():
    hits = []
    for seed in range(200):
        d = simulate(seed=100 + seed, n_units=100)
        res = quiet(im.did.imputation, d, outcome="y", unit="unit", time="time", cohort="cohort", covariates="x")
        truth = d.loc[d["D"] == 1, "tau"].mean()
        low, high = res.conf_int()
        hits.append(low <= truth <= high)
    assert np.mean(hits) >= 0.92


def test_units_treated_in_first_period_and_periods_without_controls():
    d = simulate(seed=3, never=False, n_units=120)
    d.loc[d["unit"] < 5, "cohort"] = 1
    with pytest.warns(SampleWarning) as record:
        res = im.did.imputation(d, outcome="y", unit="unit", time="time", cohort="cohort")
    messages = " ".join(str(r.message) for r in record)
    assert "treated from the first period" in messages
    assert "where every unit is treated" in messages  # periods 8..10: all units treated, no never-treated
    steps = [s.step for s in res.sample_flow]
    assert "always-treated units" in steps and "periods without untreated units" in steps
    assert res.n_units == 115


def test_bad_input(mpdta):
    with pytest.raises(SpecError, match="horizons"):
        im.did.imputation(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", horizons=[5])
    with pytest.raises(DataError, match="share the same"):
        im.did.imputation(pd.concat([mpdta, mpdta.tail(1)]), outcome="lemp", unit="countyreal", time="year",
                          cohort="first.treat")
    never = mpdta.assign(**{"first.treat": 0})
    with pytest.raises(DataError, match="no unit is ever treated"):
        im.did.imputation(never, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    with pytest.raises(SpecError, match="leave_out"):
        im.did.imputation(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", leave_out="yes")


def test_sweden_regions_bsp_known_truth():
    """Bundled simulated data with known effects (data/README.md, programme bsp, NB_NEWFIRMS): true ATT over all
    treated post region-years 0.7279; event-time effects e = 0..3: 0.20, 0.40, 0.60, 0.80. Every non-bsp region
    is a clean control for NB_NEWFIRMS. 7 treated of 21 regions: the ATT interval must cover the truth, and each
    of the four event-time estimates must lie within 3 standard errors of it (four 95% intervals need not all
    cover; e=3 misses narrowly with this seed)."""
    d = im.datasets.load("sweden_regions")
    res = quiet(im.did.imputation, d, outcome="NB_NEWFIRMS", unit="region_code", time="year", cohort="bsp_start")
    low, high = res.conf_int()
    assert low < 0.7279 < high
    tidy = res.tidy().set_index("term")
    for k, truth in enumerate([0.20, 0.40, 0.60, 0.80]):
        assert abs(tidy.loc[f"e={k}", "estimate"] - truth) < 3 * tidy.loc[f"e={k}", "std_error"]
    sa = quiet(im.did.sun_abraham, d, outcome="NB_NEWFIRMS", unit="region_code", time="year", cohort="bsp_start",
               vcov="CR2")
    low, high = sa.conf_int()
    assert low < 0.7279 < high


def test_bjs_pretrend_test_matches_dense_regression_on_untreated(mpdta):
    """BJS Test 1: lead coefficients from OLS on untreated observations with unit/period dummies (dense check)."""
    res = quiet(im.did.imputation, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                pretrend_leads=2)
    test = res.diagnostics["pretrend_test"]
    g, t = mpdta["first.treat"].to_numpy(), mpdta["year"].to_numpy()
    untreated = ~((g > 0) & (t >= g))
    d = mpdta.loc[untreated]
    e = np.where(d["first.treat"] > 0, d["year"] - d["first.treat"], np.nan)
    X = np.column_stack([(e == -2).astype(float), (e == -1).astype(float)])
    U = pd.get_dummies(d["countyreal"].astype(str)).to_numpy(float)
    T = pd.get_dummies(d["year"].astype(str), drop_first=True).to_numpy(float)
    Z = np.column_stack([X, U, T])
    coef = np.linalg.solve(Z.T @ Z, Z.T @ d["lemp"].to_numpy(float))[:2]
    assert test["event_times"] == [-2, -1]
    np.testing.assert_allclose([c["estimate"] for c in test["coefficients"]], coef, atol=1e-10)
    assert 0 <= test["p_value"] <= 1 and test["df_denom"] == 499
    import matplotlib

    matplotlib.use("Agg")
    assert set(res.figures()) == {"Event study", "Pre-trends"}
    assert res.figures()["Pre-trends"](None) is not None
    with pytest.raises(SpecError, match="pretrend_leads"):
        im.did.imputation(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", pretrend_leads=0)
