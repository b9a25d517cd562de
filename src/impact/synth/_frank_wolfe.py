"""Batched Frank-Wolfe solver for the regularised simplex least squares of synthetic DiD.

Solves, for each problem b of a batch (R ``synthdid::sc.weight.fw``, Arkhangelsky et al. 2021,
Algorithm 1 and its appendix)::

    min_x  zeta^2 * |x|^2 + |A_b x - y_b|^2 / n     over the probability simplex,

with optional column-centring (``intercept=True``: a free intercept), by Frank-Wolfe steps with exact
line search; a problem stops when its objective falls by less than ``min_decrease^2`` in one step
(after at least two steps) or after ``max_iter`` steps, exactly as in synthdid. Problems of a batch
share their shapes (placebo replications); converged problems are frozen and dropped from the
working set, so the cost follows the slowest problem only in iterations, not in work.
"""

from __future__ import annotations

import numpy as np

try:  # numba is a declared dependency; without it the same iterations run as batched numpy steps
    from numba import njit

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    _HAVE_NUMBA = False

__all__ = ["frank_wolfe", "sparsify"]


def sparsify(x: np.ndarray) -> np.ndarray:
    """synthdid's sparsification: zero the weights below a quarter of the largest, renormalise."""
    out = np.where(x <= x.max(axis=-1, keepdims=True) / 4, 0.0, x)
    return out / out.sum(axis=-1, keepdims=True)


def frank_wolfe(
    A: np.ndarray,
    y: np.ndarray,
    x0: np.ndarray,
    *,
    zeta: float | np.ndarray,
    intercept: bool,
    min_decrease: float | np.ndarray,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Run Frank-Wolfe on a batch.

    Parameters
    ----------
    A : (B, n, p) array
    y : (B, n) array
    x0 : (B, p) starting weights on the simplex
    zeta, min_decrease : float or (B,) array
    intercept : bool
        Centre the columns of A and y (a free intercept).
    max_iter : int

    Returns
    -------
    x : (B, p) weights; iterations : (B,) steps taken per problem.
    """
    A = np.asarray(A, dtype=float)
    y = np.asarray(y, dtype=float)
    if intercept:
        A = A - A.mean(axis=1, keepdims=True)
        y = y - y.mean(axis=1, keepdims=True)
    B, n, p = A.shape
    # One problem (a point estimate) runs here too: compiled, its steps cost a fraction of scalar Python
    # steps (a 20-unit staggered sdid fit: 27 ms instead of 97 ms), with the same recurrences.
    # Gram form: every step costs O(p) per problem instead of O(n p).
    G = np.matmul(np.transpose(A, (0, 2, 1)), A)  # (B, p, p)
    c = np.einsum("bnp,bn->bp", A, y)
    yy = np.einsum("bn,bn->b", y, y)
    zeta2 = np.broadcast_to(np.asarray(zeta, dtype=float) ** 2, (B,)).copy()
    threshold = np.broadcast_to(np.asarray(min_decrease, dtype=float) ** 2, (B,)).copy()
    eta = n * zeta2
    x = np.array(x0, dtype=float, copy=True)
    iterations = np.zeros(B, dtype=np.int64)
    idx = np.arange(B)
    xw = x.copy()
    Gx = np.einsum("bpq,bq->bp", G, xw)
    cx = np.einsum("bp,bp->b", c, xw)
    Gw, cw, yyw, eta_w, thr_w = G, c, yy, eta, threshold
    diag_w = np.einsum("bii->bi", G)
    previous = np.full(B, np.inf)
    rows = np.arange(B)
    # Carried along per problem: x, the half-gradient hg = Gx - c + eta x (after a step s towards
    # vertex i: hg <- (1 - s) hg + s (H_i - c) with H = G + eta I, one gathered row), and two scalars,
    # q = hg'x and cx = c'x. Everything else follows from them:
    #   numerator of the line search   hg'x - hg_i = q - hg_i
    #   denominator |A(e_i - x)|^2 + eta |e_i - x|^2 = H_ii - 2 c_i - 2 hg_i + q + cx
    #   objective  zeta^2 |x|^2 + |Ax - y|^2 / n   = (q - cx + y'y) / n      (as eta = n zeta^2)
    H = Gw + eta_w[:, None, None] * np.eye(p)[None]
    Hc = H - cw[:, None, :]
    hg = Gx - cw + eta_w[:, None] * xw
    Hdiag = diag_w + eta_w[:, None]
    # Per coordinate: (c_i, H_ii - 2 c_i, H_ii - c_i), gathered together.
    coords = np.stack([cw, Hdiag - 2.0 * cw, Hdiag - cw], axis=2)
    q = np.einsum("bp,bp->b", hg, xw)
    inv_n = 1.0 / n
    if _HAVE_NUMBA:
        # The same recurrences, one problem at a time in compiled code: the batched numpy loop below
        # spends its time in Python overhead (~15 small array calls per step, up to 10,000 steps).
        _fw_iterate(hg, q, cx, xw, Hc, coords, yyw, thr_w, inv_n, max_iter, iterations)
        return xw, iterations
    t = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        while t < max_iter and idx.size:
            t += 1
            i = hg.argmin(axis=1)
            hgi = hg[rows, i]
            ci, ki, li = coords[rows, i].T
            numer = q - hgi
            # fmax/fmin map 0/0 (a step that cannot move) to 0, as synthdid's guard does.
            step = np.fmin(np.fmax(numer / (ki - 2.0 * hgi + q + cx), 0.0), 1.0)
            keep_share = 1.0 - step
            q = keep_share * (keep_share * q + step * (2.0 * hgi + ci - cx)) + step * step * li
            cx = keep_share * cx + step * ci
            ks_col = keep_share[:, None]
            xw *= ks_col
            xw[rows, i] += step
            hg *= ks_col
            hg += step[:, None] * Hc[rows, i]
            value = (q - cx + yyw) * inv_n
            if t >= 2:
                done = previous - value <= thr_w
                if done.any():
                    iterations[idx[done]] = t
                    x[idx[done]] = xw[done]
                    keep = ~done
                    idx, xw, hg, q, cx = idx[keep], xw[keep], hg[keep], q[keep], cx[keep]
                    Hc, coords, yyw, thr_w, value = Hc[keep], coords[keep], yyw[keep], thr_w[keep], value[keep]
                    rows = np.arange(idx.size)
            previous = value
    if idx.size:
        iterations[idx] = t
        x[idx] = xw
    return x, iterations


def _fw_iterate_py(hg, q, cx, xw, Hc, coords, yy, thr, inv_n, max_iter, iterations):  # pragma: no cover - compiled
    """Frank-Wolfe steps for each problem b until its objective falls by no more than thr[b] (in place).

    Scalar form of the batched loop in :func:`frank_wolfe`, operation for operation (same rounding)."""
    B, p = hg.shape
    for b in range(B):
        qb = q[b]
        cxb = cx[b]
        previous = np.inf
        t = 0
        while t < max_iter:
            t += 1
            i = 0
            hgi = hg[b, 0]
            for j in range(1, p):
                if hg[b, j] < hgi:
                    hgi = hg[b, j]
                    i = j
            ci = coords[b, i, 0]
            ki = coords[b, i, 1]
            li = coords[b, i, 2]
            step = (qb - hgi) / (ki - 2.0 * hgi + qb + cxb)
            if not step >= 0.0:  # also 0/0 = nan: a step that cannot move is 0, as synthdid's guard
                step = 0.0
            elif step > 1.0:
                step = 1.0
            keep_share = 1.0 - step
            qb = keep_share * (keep_share * qb + step * (2.0 * hgi + ci - cxb)) + step * step * li
            cxb = keep_share * cxb + step * ci
            for j in range(p):
                xw[b, j] *= keep_share
                hg[b, j] = hg[b, j] * keep_share + step * Hc[b, i, j]
            xw[b, i] += step
            value = (qb - cxb + yy[b]) * inv_n
            if t >= 2 and previous - value <= thr[b]:
                break
            previous = value
        iterations[b] = t


_fw_iterate = njit(cache=True, error_model="numpy")(_fw_iterate_py) if _HAVE_NUMBA else _fw_iterate_py
