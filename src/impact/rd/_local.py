"""Local polynomial building blocks shared by the RD estimator and its bandwidth selectors.

Everything here works on one side of the cutoff with the running variable already centred
(``x - cutoff``) and sorted ascending. The conventions are those of Calonico, Cattaneo and
Titiunik (2014) as implemented in ``rdrobust``: kernel weights divided by the bandwidth, the
nearest-neighbour residuals of Abadie and Imbens (2006) with whole groups of tied values, and a
sandwich "meat" that combines the residual columns (outcome, treatment, covariates) with a
vector ``s`` before squaring, so that fuzzy and covariate-adjusted designs need one formula.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import linalg

__all__ = ["Kernel", "Vce", "KERNELS", "VCES", "kernel_weights", "vander", "inv_spd", "nn_residuals",
           "fit_residuals", "meat", "leverage", "side_clusters"]

Kernel = Literal["triangular", "epanechnikov", "uniform"]
Vce = Literal["nn", "hc0", "hc1", "hc2", "hc3"]
KERNELS = ("triangular", "epanechnikov", "uniform")
VCES = ("nn", "hc0", "hc1", "hc2", "hc3")


def kernel_weights(x: np.ndarray, h: float, kernel: str) -> np.ndarray:
    """K(x/h)/h for the centred running variable ``x``; zero outside the bandwidth."""
    u = x / h
    inside = np.abs(u) <= 1
    if kernel == "epanechnikov":
        return np.where(inside, 0.75 * (1 - u**2), 0.0) / h
    if kernel == "uniform":
        return np.where(inside, 0.5, 0.0) / h
    return np.where(inside, 1 - np.abs(u), 0.0) / h


def vander(x: np.ndarray, order: int) -> np.ndarray:
    """Columns 1, x, ..., x**order."""
    out = np.empty((x.size, order + 1))
    out[:, 0] = 1.0
    for j in range(1, order + 1):
        out[:, j] = out[:, j - 1] * x
    return out


def inv_spd(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix (Cholesky; pseudo-inverse if that fails)."""
    try:
        factor = linalg.cho_factor(matrix, lower=True)
        return linalg.cho_solve(factor, np.eye(matrix.shape[0]))
    except linalg.LinAlgError:
        return np.linalg.pinv(matrix)


def nn_residuals(x: np.ndarray, values: np.ndarray, matches: int) -> np.ndarray:
    """Nearest-neighbour residuals of each column of ``values`` (rows sorted by ``x``).

    For each observation the window starts as its group of tied ``x`` values and grows by whole
    groups, towards the nearer side (both when equidistant), until it holds at least ``matches``
    other observations. The residual is ``sqrt(J/(J+1)) * (v_i - mean of the J others)``
    (Abadie and Imbens 2006; Calonico, Cattaneo and Titiunik 2014, section 4.1). Observations in
    a tie group share a window, so the search runs once per distinct value, vectorised over them.
    """
    n = x.size
    uniq, start = np.unique(x, return_index=True)
    counts = np.diff(np.append(start, n))
    n_groups = uniq.size
    cum = np.concatenate(([0], np.cumsum(counts)))  # points before group g: cum[g]
    left = np.arange(n_groups)
    right = np.arange(n_groups)
    cap = min(matches, n - 1)
    tol_scale = np.sqrt(np.finfo(float).eps)
    for _ in range(cap + 1):
        size = cum[right + 1] - cum[left]
        active = size - 1 < cap
        if not active.any():
            break
        can_left = left > 0
        can_right = right < n_groups - 1
        d_left = np.where(can_left, uniq - uniq[np.maximum(left - 1, 0)], np.inf)
        d_right = np.where(can_right, uniq[np.minimum(right + 1, n_groups - 1)] - uniq, np.inf)
        both_finite = can_left & can_right
        tol = np.where(both_finite, np.maximum(d_left, d_right) * tol_scale, 0.0)
        go_right = np.where(both_finite, d_left - d_right > tol, can_right)
        go_left = np.where(both_finite, d_right - d_left > tol, ~can_right)
        tie = both_finite & ~go_right & ~go_left
        right = np.where(active & (go_right | tie), right + 1, right)
        left = np.where(active & (go_left | tie), left - 1, left)
    group = np.repeat(np.arange(n_groups), counts)
    lo = cum[left][group]
    hi = cum[right + 1][group]
    others = (hi - lo - 1).astype(float)
    values = np.asarray(values, dtype=float).reshape(n, -1)
    csum = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    window = csum[hi] - csum[lo] - values
    scale = np.sqrt(others / (others + 1))[:, None]
    return scale * (values - window / others[:, None])


def leverage(design: np.ndarray, inv_gram: np.ndarray, weighted: np.ndarray) -> np.ndarray:
    """Diagonal of the weighted hat matrix: h_ii = r_i' G^{-1} (w_i r_i)."""
    return np.einsum("ij,ij->i", design @ inv_gram, weighted)


def fit_residuals(values: np.ndarray, fitted: np.ndarray, vce: str, *, n_params: int,
                  hat: np.ndarray | None, clustered: bool) -> np.ndarray:
    """Regression residuals with the HC0-HC3 scaling (HC1's n/(n-k) is left to CR1 when clustered)."""
    n = values.shape[0]
    if vce == "hc0":
        scale = np.ones(n)
    elif vce == "hc1":
        scale = np.ones(n) if clustered else np.full(n, np.sqrt(n / (n - n_params)))
    elif vce == "hc2":
        scale = np.sqrt(1 / np.maximum(1 - hat, 1e-8))
    else:
        scale = 1 / np.maximum(1 - hat, 1e-8)
    return scale[:, None] * (values - fitted)


def side_clusters(codes: np.ndarray | None) -> tuple[np.ndarray | None, int]:
    """Re-number cluster codes within a subsample (0..G-1) and count them."""
    if codes is None:
        return None, 0
    uniq, inverse = np.unique(codes, return_inverse=True)
    return inverse, uniq.size


def meat(scores_x: np.ndarray, residuals: np.ndarray, s: np.ndarray, clusters: np.ndarray | None = None,
         n_clusters: int = 0, n_params: int | None = None) -> np.ndarray:
    """Sum of outer products of ``scores_x_i * (residuals_i . s)``, by observation or by cluster.

    With clusters the CR1 factor (n-1)/(n-k) * G/(G-1) is applied, ``k = n_params``.
    """
    r = residuals @ np.atleast_1d(np.asarray(s, dtype=float))
    contrib = scores_x * r[:, None]
    if clusters is None:
        return contrib.T @ contrib
    k = scores_x.shape[1] if n_params is None else n_params
    summed = np.column_stack([np.bincount(clusters, weights=contrib[:, j], minlength=n_clusters)
                              for j in range(contrib.shape[1])])
    n = contrib.shape[0]
    factor = (n - 1) / (n - k) * n_clusters / (n_clusters - 1) if n_clusters > 1 else np.nan
    return factor * (summed.T @ summed)
