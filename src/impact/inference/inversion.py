"""Confidence sets by inverting a permutation test whose statistic is quadratic in the null effect.

Under the sharp null of a constant effect ``tau`` every outcome of a treated cell is shifted by
``-tau``; for synthetic-control-type estimators each permuted draw's residuals (gaps) are then affine
in ``tau``: ``a_k + c_k tau`` (``c_0 = -1`` for the observed assignment, ``c_k`` = the loading of
draw ``k``'s estimator on the really treated cells). With the statistic

    Q_k(tau) = sum_s (a_ks + c_ks tau)^2 / scale_k

(the post/pre RMSPE ratio of Abadie, Diamond & Hainmueller 2010 when ``s`` runs over post-periods and
``scale_k`` is the pre-period MSPE; a studentised ``|estimate| / pre-fit RMSPE`` when ``s`` is one
term), the permutation p-value ``p(tau) = mean_k 1{Q_k(tau) >= Q_0(tau)}`` is piecewise constant
in ``tau`` and changes only at the real roots of the quadratics ``Q_k - Q_0``. The confidence set
``{tau : p(tau) > alpha}`` is therefore found exactly, without a grid, by evaluating ``p`` at every
root and between consecutive roots (vectorised over draws and candidate points).

References
----------
Firpo, S. & Possebom, V. (2018). Synthetic control method: inference, sensitivity analysis and
confidence sets. Journal of Causal Inference 6(2). https://doi.org/10.1515/jci-2016-0026
Imbens, G. W. & Rubin, D. B. (2015). Causal Inference for Statistics, Social, and Biomedical
Sciences, ch. 5 (Fisher intervals by test inversion). https://doi.org/10.1017/CBO9781139025751
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["InvertedTest", "invert_quadratic_permutation_test"]

_RELATIVE_TIE = 1e-9


@dataclass(frozen=True)
class InvertedTest:
    """p-value at ``tau = 0`` and the ``1 - alpha`` confidence set (its hull when not connected)."""

    p_value: float
    conf_low: float  # -inf when the set is unbounded below
    conf_high: float  # +inf when unbounded above
    connected: bool  # False: the set has holes, (conf_low, conf_high) is its hull
    empty: bool  # True: every tau is rejected; the bounds are the tau with the largest p-value
    n_draws: int


def _coefficients(a: np.ndarray, c: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients of ``Q_k(tau) - Q_0(tau) = A tau^2 + B tau + C`` for every draw k."""
    q2 = np.sum(c * c, axis=1) / scale
    q1 = 2.0 * np.sum(a * c, axis=1) / scale
    q0 = np.sum(a * a, axis=1) / scale
    return q2 - q2[0], q1 - q1[0], q0 - q0[0]


def _p_values(A: np.ndarray, B: np.ndarray, C: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``p(tau)`` at each point: share of draws with ``Q_k >= Q_0`` (ties, to rounding, count)."""
    tau = points[:, None]
    diff = A * tau**2 + B * tau + C
    size = np.abs(A) * tau**2 + np.abs(B) * np.abs(tau) + np.abs(C)
    return np.mean(diff >= -_RELATIVE_TIE * size - 1e-300, axis=1)


def _roots(A: np.ndarray, B: np.ndarray, C: np.ndarray) -> np.ndarray:
    big = np.maximum(np.abs(A), np.abs(B)) + np.abs(C)
    quadratic = np.abs(A) > 1e-12 * np.where(big > 0, big, 1.0)
    linear = ~quadratic & (np.abs(B) > 0)
    disc = B**2 - 4 * A * C
    real = quadratic & (disc >= 0)
    sq = np.sqrt(np.where(real, disc, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r1 = np.where(real, (-B - sq) / (2 * np.where(quadratic, A, 1.0)), np.nan)
        r2 = np.where(real, (-B + sq) / (2 * np.where(quadratic, A, 1.0)), np.nan)
        r3 = np.where(linear, -C / np.where(linear, B, 1.0), np.nan)
    roots = np.concatenate([r1, r2, r3])
    return np.unique(roots[np.isfinite(roots)])


def invert_quadratic_permutation_test(
    a: np.ndarray, c: np.ndarray, scale: np.ndarray, *, alpha: float, estimate: float = 0.0
) -> InvertedTest:
    """Invert the permutation test with statistic ``Q_k(tau) = |a_k + c_k tau|^2 / scale_k``.

    Parameters
    ----------
    a, c : ndarray, shape (draws, terms) or (draws,)
        Residual intercepts and slopes in the null effect ``tau``; row 0 is the observed assignment.
    scale : ndarray, shape (draws,)
        Positive per-draw scale (pre-period MSPE for the RMSPE ratio; 1 for the raw statistic).
    alpha : float
        The test's level; the set keeps every ``tau`` with ``p(tau) > alpha``.
    estimate : float
        Point reported as both bounds when every ``tau`` is rejected and ``p`` is constant (the
        set is empty: no constant effect is compatible with the data; ``empty`` says so).

    Returns
    -------
    InvertedTest
        ``p_value`` at ``tau = 0`` and the bounds of the confidence set (closed at the roots). When
        the set is empty both bounds are the ``tau`` with the largest p-value and ``empty`` is True.
    """
    a = np.asarray(a, dtype=float)
    c = np.asarray(c, dtype=float)
    if a.ndim == 1:
        a, c = a[:, None], c[:, None]
    scale = np.asarray(scale, dtype=float)
    A, B, C = _coefficients(a, c, scale)
    p0 = float(_p_values(A, B, C, np.zeros(1))[0])
    roots = _roots(A, B, C)
    if roots.size == 0:
        if p0 > alpha:
            return InvertedTest(p0, -math.inf, math.inf, True, False, a.shape[0])
        return InvertedTest(p0, float(estimate), float(estimate), True, True, a.shape[0])
    span = 1.0 + float(np.max(np.abs(roots)))
    mids = (roots[:-1] + roots[1:]) / 2
    # Candidates in order: outer left, root_0, mid_0, root_1, ..., root_m, outer right.
    points = np.empty(2 * roots.size + 1)
    points[1:-1:2] = roots
    points[2:-1:2] = mids
    points[0], points[-1] = roots[0] - span, roots[-1] + span
    p = _p_values(A, B, C, points)
    keep = p > alpha
    if not keep.any():
        best = points[int(np.argmax(p))]
        return InvertedTest(p0, float(best), float(best), True, True, a.shape[0])
    first, last = int(np.argmax(keep)), int(len(keep) - 1 - np.argmax(keep[::-1]))
    # An accepted open segment (even index) is closed by the root on its side (odd indices are roots).
    low = -math.inf if first == 0 else float(points[first] if first % 2 == 1 else points[first - 1])
    high = math.inf if last == len(points) - 1 else float(points[last] if last % 2 == 1 else points[last + 1])
    connected = bool(keep[first : last + 1].all())
    return InvertedTest(p0, low, high, connected, False, a.shape[0])
