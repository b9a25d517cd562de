"""Between-study variance (tau^2) for the random-effects meta-regression model, shared by
:func:`impact.meta.pool` (intercept only) and :func:`impact.meta.regress` (with moderators).

Every function works on a batch of ``B`` data sets at once (``y`` and ``v`` of shape ``(B, k)``, one
model matrix ``X`` of shape ``(k, p)``), so that the permutation test refits thousands of permuted
data sets without a Python loop over them. A single fit is a batch of one.

With ``W = diag(w)`` the projection ``P(w) = W - W X (X'WX)^{-1} X'W`` gives the weighted residual sum
of squares ``y'P y`` and the traces that the estimators need (Viechtbauer 2005; metafor's rma.uni).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np

PaulMandelSolver = Literal["exact", "metafor"]

# metafor's rma.uni `control` defaults, used so that results agree with it: Fisher scoring for REML
# stops when tau^2 changes by less than 1e-5; R's uniroot (Brent's zeroin) with tol = eps^(1/4) on
# [0, max(100, 10 mad(y)^2)] for Paule-Mandel.
REML_THRESHOLD = 1e-5
REML_MAX_ITER = 100
METAFOR_PM_TOL = np.finfo(float).eps ** 0.25
_EPS = np.finfo(float).eps


def projection(w: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``P(w)`` for each row of weights ``w`` (B, k): an array (B, k, k)."""
    wx = w[:, :, None] * X[None, :, :]  # W X
    xtwx = np.einsum("ki,bkj->bij", X, wx)
    inv = np.linalg.inv(xtwx)
    return np.einsum("bi,ij->bij", w, np.eye(w.shape[1])) - wx @ inv @ np.swapaxes(wx, 1, 2)


def residual_ss(y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``y' P y`` per batch member."""
    return np.einsum("bi,bij,bj->b", y, P, y)


def trace(P: np.ndarray) -> np.ndarray:
    return np.einsum("bii->b", P)


def tau2_dl(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> np.ndarray:
    """DerSimonian-Laird (method of moments with inverse-variance weights), truncated at 0."""
    k, p = X.shape
    P = projection(1.0 / v, X)
    return np.maximum(0.0, (residual_ss(y, P) - (k - p)) / trace(P))


def tau2_he(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Hedges' (Hedges-Olkin) moment estimator with unit weights, metafor's REML starting value."""
    k, p = X.shape
    P = projection(np.ones_like(v), X)
    return np.maximum(0.0, (residual_ss(y, P) - np.einsum("bii,bi->b", P, v)) / (k - p))


def tau2_reml(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fisher scoring on the restricted likelihood from the Hedges estimate, kept >= 0 by step-halving,
    until tau^2 changes by at most 1e-5 (metafor's algorithm). Returns tau^2, iterations, converged."""
    tau2 = tau2_he(y, v, X)
    iterations = np.zeros(tau2.shape, dtype=int)
    active = np.ones(tau2.shape, dtype=bool)
    for iteration in range(1, REML_MAX_ITER + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        P = projection(1.0 / (v[idx] + tau2[idx, None]), X)
        Py = np.einsum("bij,bj->bi", P, y[idx])
        step = ((Py**2).sum(axis=1) - trace(P)) / np.einsum("bij,bji->b", P, P)
        current = tau2[idx]
        step = np.where((current == 0) & (step < 0), 0.0, step)  # halving a step below 0 from 0 ends at 0
        negative = current + step < 0
        while negative.any():
            step = np.where(negative, step / 2, step)
            negative = current + step < 0
        new = current + step
        tau2[idx] = new
        iterations[idx] = iteration
        active[idx[np.abs(step) <= REML_THRESHOLD]] = False
    return tau2, iterations, ~active


def reml_loglik(tau2: float, y: np.ndarray, v: np.ndarray, X: np.ndarray) -> float:
    """Restricted log-likelihood of one data set (up to a constant)."""
    w = 1.0 / (v + tau2)
    P = projection(w[None, :], X)
    xtwx = X.T @ (w[:, None] * X)
    return -0.5 * float(np.log(v + tau2).sum() + np.linalg.slogdet(xtwx)[1] + residual_ss(y[None, :], P)[0])


def generalised_q(tau2: np.ndarray, y: np.ndarray, v: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The generalised Q statistic ``y' P(1/(v + tau^2)) y`` per batch member."""
    return residual_ss(y, projection(1.0 / (v + tau2[:, None]), X))


def pm_upper(y: np.ndarray) -> np.ndarray:
    """metafor's upper end of the Paule-Mandel search, max(100, 10 mad(y)^2)."""
    mad = 1.4826 * np.median(np.abs(y - np.median(y, axis=1, keepdims=True)), axis=1)
    return np.maximum(100.0, 10 * mad**2)


def tau2_pm(y: np.ndarray, v: np.ndarray, X: np.ndarray, solver: PaulMandelSolver = "exact") -> np.ndarray:
    """Paule-Mandel: the tau^2 at which the generalised Q equals its expectation k - p (0 if Q < k - p
    already at tau^2 = 0).

    ``solver="exact"`` finds the root to machine precision by bisection on the monotone generalised Q
    (vectorised over the batch). ``solver="metafor"`` stops where metafor 3.8.1 does: R's ``uniroot``
    (Brent's zeroin, Forsythe, Malcolm & Moler 1977) with tolerance eps^(1/4) from [0, max(100,
    10 mad(y)^2)]; its root can be off by ~1e-5 (hackshaw1998: 0.0128986 vs the exact 0.0128767).
    The bracket is widened where the root lies beyond it (metafor stops with an error there).
    """
    k, p = X.shape
    target = k - p
    B = y.shape[0]
    tau2 = np.zeros(B)
    positive = generalised_q(np.zeros(B), y, v, X) > target
    if not positive.any():
        return tau2
    idx = np.flatnonzero(positive)
    yy, vv = y[idx], v[idx]
    high = pm_upper(yy)
    for _ in range(200):
        beyond = generalised_q(high, yy, vv, X) > target
        if not beyond.any():
            break
        high = np.where(beyond, high * 2, high)
    else:
        raise OverflowError("the Paule-Mandel root lies beyond any bracket")
    if solver == "metafor":
        roots = np.empty(idx.size)
        for j in range(idx.size):  # metafor's exact stopping point needs its sequential algorithm
            y1, v1 = yy[j : j + 1], vv[j : j + 1]

            def excess(t: float, y1: np.ndarray = y1, v1: np.ndarray = v1) -> float:
                return float(generalised_q(np.array([t]), y1, v1, X)[0] - target)

            roots[j] = zeroin(excess, 0.0, float(high[j]), tol=METAFOR_PM_TOL, maxiter=100)
        tau2[idx] = roots
        return tau2
    low = np.zeros(idx.size)
    for _ in range(2000):
        mid = 0.5 * (low + high)
        above = generalised_q(mid, yy, vv, X) > target
        low = np.where(above, mid, low)
        high = np.where(above, high, mid)
        if np.all((high - low) <= 2 * _EPS * high) or np.all(mid == low) and np.all(mid == high):
            break
    tau2[idx] = 0.5 * (low + high)
    return tau2


def zeroin(f: Callable[[float], float], a: float, b: float, *, tol: float, maxiter: int) -> float:
    """Brent's root finder as published by Forsythe, Malcolm & Moler (1977, "zeroin"), the algorithm of
    R's ``uniroot``: secant / inverse quadratic interpolation safeguarded by bisection, stopping when the
    bracket's half-width is at most ``2 eps |b| + tol / 2``."""
    fa, fb = f(a), f(b)
    if fa == 0:
        return a
    if fb == 0:
        return b
    c, fc = a, fa
    for _ in range(maxiter + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * _EPS * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:  # linear interpolation
                t1 = fb / fa
                p_ = cb * t1
                q_ = 1.0 - t1
            else:  # inverse quadratic interpolation
                q_ = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p_ = t2 * (cb * q_ * (q_ - t1) - (b - a) * (t1 - 1.0))
                q_ = (q_ - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p_ > 0:
                q_ = -q_
            else:
                p_ = -p_
            if p_ < (0.75 * cb * q_ - abs(tol_act * q_) / 2) and p_ < abs(prev_step * q_ / 2):
                new_step = p_ / q_
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


def se_tau2(method: str, tau2: float, v: np.ndarray, X: np.ndarray) -> float | None:
    """Standard error of tau^2 as metafor reports it (none for the equal-effect model)."""
    k, p = X.shape
    if method == "FE":
        return None
    if method == "DL":
        P = projection(1.0 / v[None, :], X)[0]
        tr = float(np.trace(P))
        return math.sqrt((2 * (k - p) + 4 * tau2 * tr + 2 * tau2**2 * float((P * P).sum())) / tr**2)
    w = 1.0 / (v + tau2)
    if method == "REML":
        P = projection(w[None, :], X)[0]
        return math.sqrt(2.0 / float((P * P).sum()))
    return math.sqrt(2.0 * k**2 / (k - p)) / float(w.sum())
