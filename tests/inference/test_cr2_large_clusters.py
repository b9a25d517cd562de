"""CR2 with large clusters through the low-rank adjustment (issue 17 item 5) equals the dense formula.

The dense formula (an n_g x n_g pseudo-inverse square root per cluster) is the one checked against
clubSandwich 0.5.8 in test_vcov.py (to 1e-8); those reference tests now run through the low-rank path
wherever a cluster has more than 4k rows (Thornton villages). Here both paths are compared directly
(tolerance 1e-10 relative) on designs that exercise weights, a singular B_g and an intercept.
"""

from __future__ import annotations

import numpy as np
import pytest

from impact.inference import vcov as V


def _dense(Xg, wg, M, MSM):
    XMX = Xg @ M @ Xg.T
    B = np.eye(len(wg)) - XMX * wg[None, :] - wg[:, None] * XMX + Xg @ MSM @ Xg.T
    return V._inv_sqrt_psd(B).__matmul__


def _both(monkeypatch, X, e, clusters, weights=None):
    fast = V.linear_vcov(X, e, kind="CR2", clusters=clusters, weights=weights)
    with monkeypatch.context() as m:
        m.setattr(V, "_low_rank_adjustment", _dense)
        dense = V.linear_vcov(X, e, kind="CR2", clusters=clusters, weights=weights)
    return fast, dense


@pytest.mark.parametrize("weighted", [False, True])
def test_low_rank_equals_dense(monkeypatch, weighted):
    rng = np.random.default_rng(3)
    n, G = 400, 4
    clusters = np.sort(rng.integers(0, G, n))
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 3)), (clusters == 0).astype(float)])  # a cluster dummy: B_0 singular
    e = rng.normal(size=n) * (1 + clusters)
    w = rng.uniform(0.3, 3.0, n) if weighted else None
    fast, dense = _both(monkeypatch, X, e, clusters, w)
    np.testing.assert_allclose(fast.matrix, dense.matrix, rtol=1e-10, atol=1e-14 * np.abs(dense.matrix).max())
    np.testing.assert_allclose(fast.df, dense.df, rtol=1e-10)


def test_equal_weights_take_the_one_block_shortcut(monkeypatch):
    # With constant weights B_g = I + X_g (MSM - 2cM) X_g': the shortcut must equal the dense formula too.
    rng = np.random.default_rng(4)
    n = 300
    clusters = np.arange(n) // 100
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    fast, dense = _both(monkeypatch, X, rng.normal(size=n), clusters, np.full(n, 2.5))
    np.testing.assert_allclose(fast.matrix, dense.matrix, rtol=1e-10)

