"""Restricted wild cluster bootstrap.

Independent check: with Rademacher weights and few clusters every sign vector is enumerated, so the
p-value is deterministic. The test rebuilds each bootstrap sample explicitly (restricted fit,
y* = fitted_r + u_r * v_g, full OLS refit, CR1 t statistic) in a plain loop and must agree exactly.
"""

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

from impact.errors import SpecError
from impact.inference.wild import bootstrap_weights, wild_cluster_bootstrap


def _data(seed=3, G=8, per=15, beta=0.0):
    rng = np.random.default_rng(seed)
    clusters = np.repeat(np.arange(G), per)
    n = G * per
    x = rng.normal(size=n) + 0.5 * rng.normal(size=G)[clusters]
    z = rng.normal(size=n)
    y = 1.0 + beta * x + 0.3 * z + rng.normal(size=n) + rng.normal(size=G)[clusters]
    X = np.column_stack([x, np.ones(n), z])
    return X, y, clusters, G


def _brute_force_p(X, y, clusters, G, null):
    n, k = X.shape
    def fit_t(yy):
        b = np.linalg.lstsq(X, yy, rcond=None)[0]
        e = yy - X @ b
        M = np.linalg.inv(X.T @ X)
        meat = np.zeros((k, k))
        for g in range(G):
            s = X[clusters == g].T @ e[clusters == g]
            meat += np.outer(s, s)
        V = G / (G - 1) * (n - 1) / (n - k) * M @ meat @ M
        return b[0], np.sqrt(V[0, 0])
    b_hat, se_hat = fit_t(y)
    t_obs = (b_hat - null) / se_hat
    Z = X[:, 1:]
    gamma = np.linalg.lstsq(Z, y - null * X[:, 0], rcond=None)[0]
    fitted = null * X[:, 0] + Z @ gamma
    u = y - fitted
    hits = 0
    draws = list(itertools.product((-1.0, 1.0), repeat=G))
    for v in draws:
        b_star, se_star = fit_t(fitted + u * np.asarray(v)[clusters])
        hits += abs((b_star - null) / se_star) >= abs(t_obs) - 1e-12
    return hits / len(draws), b_hat, se_hat


@pytest.mark.parametrize("null", [0.0, 0.4])
def test_enumerated_rademacher_p_value_equals_brute_force(null):
    X, y, clusters, G = _data()
    expected, b_hat, se_hat = _brute_force_p(X, y, clusters, G, null)
    out = wild_cluster_bootstrap(X, y, clusters, coef=0, null=null, weight_type="rademacher", n_bootstrap=999)
    assert out.enumerated and out.n_bootstrap == 2**G
    assert out.estimate == pytest.approx(b_hat, rel=1e-10)
    assert out.std_error == pytest.approx(se_hat, rel=1e-10)
    assert out.p_value == pytest.approx(expected, abs=1e-12)


def test_interval_is_the_set_of_non_rejected_nulls():
    X, y, clusters, G = _data(seed=5)
    out = wild_cluster_bootstrap(X, y, clusters, coef=0, weight_type="rademacher", n_bootstrap=999, level=0.9)
    assert out.conf_low < out.estimate < out.conf_high
    inside = wild_cluster_bootstrap(X, y, clusters, coef=0, null=out.conf_low + 1e-4, weight_type="rademacher", n_bootstrap=999)
    outside = wild_cluster_bootstrap(X, y, clusters, coef=0, null=out.conf_low - 1e-2, weight_type="rademacher", n_bootstrap=999)
    assert inside.p_value >= 0.1 > outside.p_value


def test_webb_draws_are_seeded_and_have_unit_variance():
    a, enumerated = bootstrap_weights(20_000, 12, weight_type="webb", seed=7)
    b, _ = bootstrap_weights(20_000, 12, weight_type="webb", seed=7)
    assert not enumerated and np.array_equal(a, b)
    assert a.mean() == pytest.approx(0, abs=0.02) and (a**2).mean() == pytest.approx(1, abs=0.02)
    assert len(np.unique(a)) == 6


def test_weighted_fit_matches_transformed_unweighted_fit():
    X, y, clusters, G = _data(seed=11)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    a = wild_cluster_bootstrap(X, y, clusters, coef=0, weights=w, weight_type="rademacher", n_bootstrap=999)
    r = np.sqrt(w)
    b = wild_cluster_bootstrap(X * r[:, None], y * r, clusters, coef=0, weight_type="rademacher", n_bootstrap=999)
    assert a.p_value == b.p_value and a.estimate == pytest.approx(b.estimate)


def test_bad_options():
    X, y, clusters, G = _data()
    with pytest.raises(SpecError, match="weight_type"):
        wild_cluster_bootstrap(X, y, clusters, coef=0, weight_type="mammen")
    with pytest.raises(SpecError, match="too small"):
        wild_cluster_bootstrap(X, y, clusters, coef=0, n_bootstrap=10)


@pytest.mark.slow
def test_null_rejection_rate_is_near_nominal_with_12_clusters():
    rejections = []
    for rep in range(300):
        X, y, clusters, G = _data(seed=100 + rep, G=12, per=20, beta=0.0)
        rejections.append(wild_cluster_bootstrap(X, y, clusters, coef=0, n_bootstrap=399, seed=rep).p_value < 0.05)
    assert 0.02 <= np.mean(rejections) <= 0.09


def test_enumeration_threshold_is_an_option_and_is_reported():
    # issue 17 item 6: above 20 clusters the Rademacher sign vectors were drawn silently
    import impact as im
    from impact.inference.wild import bootstrap_weights

    grid, enumerated = bootstrap_weights(4096, 12, weight_type="rademacher", seed=1)
    assert enumerated and grid.shape == (4096, 12) and len(np.unique(grid, axis=0)) == 4096
    drawn, enumerated = bootstrap_weights(4096, 12, weight_type="rademacher", seed=1, enumerate_up_to=10)
    assert not enumerated and drawn.shape == (4096, 12)
    rng = np.random.default_rng(0)
    n_units, n_periods = 12, 6
    unit = np.repeat(np.arange(n_units), n_periods)
    year = np.tile(np.arange(n_periods), n_units)
    treat = ((unit < 4) & (year >= 3)).astype(int)
    df = pd.DataFrame({"unit": unit, "year": year, "d": treat, "y": rng.normal(size=len(unit)) + treat})
    kw = dict(outcome="y", treatment="d", unit="unit", time="year", vcov="wild", bootstrap_weights="rademacher",
              n_bootstrap=4096, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = im.did.twfe(df, **kw)
        drawn_fit = im.did.twfe(df, bootstrap_enumerate_up_to=10, **kw)
    assert "all 4,096 Rademacher sign vectors of the 12 clusters enumerated" in full.inference
    assert "4,096 random draws (full enumeration needs at most 10 clusters" in drawn_fit.inference
    with pytest.raises(SpecError, match="enumerate_up_to"):
        bootstrap_weights(99, 5, weight_type="rademacher", seed=1, enumerate_up_to=40)
