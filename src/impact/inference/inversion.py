"""Confidence sets by inverting permutation tests whose comparisons are polynomial in the null effect.

Under the sharp null of a constant effect ``tau`` every outcome of a treated cell is shifted by
``-tau``. For the statistics used here, whether draw ``k`` is at least as extreme as the observed
assignment is the sign of a polynomial in ``tau`` of degree at most four:

- synthetic-control-type estimators: each draw's residuals (gaps) are affine in ``tau``,
  ``a_k + c_k tau`` (``c_0 = -1`` for the observed assignment, ``c_k`` = the loading of draw ``k``'s
  estimator on the really treated cells), and with ``Q_k(tau) = sum_s (a_ks + c_ks tau)^2 / scale_k``
  (the post/pre RMSPE ratio of Abadie, Diamond & Hainmueller 2010 when ``s`` runs over post-periods
  and ``scale_k`` is the pre-period MSPE) the comparison ``Q_k >= Q_0`` is a quadratic inequality;
- studentised estimators linear in the outcome (randomisation inference over adoption dates): the
  estimate is affine and its variance quadratic in ``tau``, ``t_k(tau)^2 = N_k(tau)^2 / V_k(tau)``,
  so ``t_k^2 >= t_0^2`` is ``N_k^2 V_0 - N_0^2 V_k >= 0``, a quartic inequality.

The permutation p-value ``p(tau) = (base + #{k : draw k at least as extreme}) / total`` is then piecewise
constant in ``tau`` and changes only at the real roots of these polynomials. The confidence set
``{tau : p(tau) > alpha}`` is found exactly, without a grid or bisection, by a sweep: every draw's
roots are events at which its indicator switches on or off (read from the draw's own sign between
consecutive roots), and the events of all draws, sorted, give ``p`` on every segment and at every
root (vectorised over draws and over independent tests). The set is closed at the roots.

References
----------
Firpo, S. & Possebom, V. (2018). Synthetic control method: inference, sensitivity analysis and
confidence sets. Journal of Causal Inference 6(2). https://doi.org/10.1515/jci-2016-0026
Imbens, G. W. & Rubin, D. B. (2015). Causal Inference for Statistics, Social, and Biomedical
Sciences, ch. 5 (Fisher intervals by test inversion). https://doi.org/10.1017/CBO9781139025751
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["InvertedTest", "invert_quadratic_permutation_test", "AcceptanceHull", "acceptance_hull", "acceptance_sup",
           "real_roots"]

_RELATIVE_TIE = 1e-9
#: a per-draw scale below this fraction of the median scale is an exact fit (rounding error)
_EXACT_FIT = 1e-12


@dataclass(frozen=True)
class InvertedTest:
    """p-value at ``tau = 0`` and the ``1 - alpha`` confidence set (its hull when not connected)."""

    p_value: float
    conf_low: float  # -inf when the set is unbounded below
    conf_high: float  # +inf when unbounded above
    connected: bool  # False: the set has holes, (conf_low, conf_high) is its hull
    empty: bool  # True: every tau is rejected; the bounds are the tau with the largest p-value
    n_draws: int


@dataclass(frozen=True)
class AcceptanceHull:
    """Per test (row): the hull ``[low, high]`` of ``{tau : p(tau) > alpha}`` (``-inf``/``+inf`` when
    unbounded), whether the set is connected, whether it is empty, and the first ``tau`` (from the left)
    with the largest p-value (what an empty set reports)."""

    low: np.ndarray
    high: np.ndarray
    connected: np.ndarray
    empty: np.ndarray
    best: np.ndarray


def _segment_points(roots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A point inside every segment between consecutive roots of each draw (left of its first root,
    between roots, right of its last), shape (..., d + 1); and the number of real roots per draw."""
    d = roots.shape[-1]
    n_real = np.sum(np.isfinite(roots), axis=-1)  # sorted, NaN last
    points = np.full((*roots.shape[:-1], d + 1), _NO_ROOT_POINT)
    if d:
        first = roots[..., 0]
        last = np.take_along_axis(roots, np.maximum(n_real - 1, 0)[..., None], axis=-1)[..., 0]
        span = 1.0 + np.abs(first) + np.abs(last)
        idx = np.arange(d + 1)
        points[..., 0] = first - span
        points[..., 1:d] = (roots[..., :-1] + roots[..., 1:]) / 2
        points = np.where(idx == n_real[..., None], (last + span)[..., None], points)
        points = np.where((idx > n_real[..., None]) | (n_real[..., None] == 0), _NO_ROOT_POINT, points)
    return points, n_real


#: where a draw without real roots is evaluated (its indicator is the same everywhere, except possibly at
#: an isolated point where its polynomial touches zero: not a point such as 0 that data often make special)
_NO_ROOT_POINT = 0.6180339887498949


@dataclass(frozen=True)
class _Sweep:
    """Counts along the sorted roots of one or more tests (rows): at each root and on the segment after it."""

    position: np.ndarray  # (R, n) sorted roots, +inf padded
    valid: np.ndarray  # (R, n) a real root and the last of a group of equal roots (where counts are complete)
    at_root: np.ndarray  # (R, n) count at the root
    on_segment: np.ndarray  # (R, n) count on the open segment after it
    at_minus_inf: np.ndarray  # (R,)
    at_plus_inf: np.ndarray  # (R,)
    start: np.ndarray  # (R, n) first of a group of equal roots


def _sweep(roots: np.ndarray, counted: Callable[[np.ndarray], np.ndarray], base: np.ndarray | float) -> _Sweep:
    R, P, d = roots.shape
    points, n_real = _segment_points(roots)
    inside = np.asarray(counted(points), dtype=bool)
    # segments past a draw's last root repeat its last segment (no change there)
    inside = np.take_along_axis(inside, np.minimum(np.arange(d + 1)[None, None, :], n_real[..., None]), axis=2)
    at_minus_inf = np.asarray(base, dtype=float) + inside[..., 0].sum(axis=1)
    position = roots.reshape(R, P * d)
    real = np.isfinite(position)
    position = np.where(real, position, np.inf)
    before = inside[..., :-1].reshape(R, -1)
    change = np.where(real, inside[..., 1:].reshape(R, -1).astype(float) - before, 0.0)
    to_tie = np.where(real, 1.0 - before, 0.0)  # at its root a draw counts (a tie)
    order = np.argsort(position, axis=1, kind="stable")
    position = np.take_along_axis(position, order, axis=1)
    real = np.take_along_axis(real, order, axis=1)
    cum_change = np.cumsum(np.take_along_axis(change, order, axis=1), axis=1)
    cum_tie = np.cumsum(np.take_along_axis(to_tie, order, axis=1), axis=1)
    n = position.shape[1]
    start = np.ones((R, n), bool)
    start[:, 1:] = position[:, 1:] != position[:, :-1]
    last_of_group = np.ones((R, n), bool)
    last_of_group[:, :-1] = start[:, 1:]
    group_first = np.maximum.accumulate(np.where(start, np.arange(n)[None, :], 0), axis=1)
    zero = np.zeros((R, 1))
    change_before = np.take_along_axis(np.hstack([zero, cum_change]), group_first, axis=1)
    tie_before = np.take_along_axis(np.hstack([zero, cum_tie]), group_first, axis=1)
    at_root = at_minus_inf[:, None] + change_before + (cum_tie - tie_before)
    on_segment = at_minus_inf[:, None] + cum_change
    at_plus_inf = at_minus_inf + (cum_change[:, -1] if n else 0.0)
    return _Sweep(position, real & last_of_group, at_root, on_segment, at_minus_inf, at_plus_inf, start)


def acceptance_hull(
    roots: np.ndarray,
    counted: Callable[[np.ndarray], np.ndarray],
    *,
    base: float,
    total: float,
    alpha: float,
) -> AcceptanceHull:
    """Exact confidence sets of R permutation tests from the roots of every draw's comparison polynomial.

    Parameters
    ----------
    roots : ndarray, shape (R, P, d)
        Real roots of each draw's comparison polynomial (draw ``k`` of test ``r`` is at least as
        extreme as the observed assignment where the polynomial is >= 0), sorted along the last axis
        and NaN-padded; the draw's indicator can change only at these points.
    counted : callable
        ``counted(points)`` with ``points`` of shape (R, P, d + 1) returns whether each draw counts as
        at least as extreme at each point (with the caller's tie rule). It is called once, with a point
        inside every segment between a draw's consecutive roots; at a root itself a draw counts (a tie).
    base, total : float
        ``p(tau) = (base + number of draws counted) / total``.
    alpha : float
        Level: the set keeps every ``tau`` with ``p(tau) > alpha``.
    """
    R = roots.shape[0]
    sw = _sweep(roots, counted, base)

    def accepted(count: np.ndarray) -> np.ndarray:
        return count / total > alpha

    position, n = sw.position, sw.position.shape[1]
    root_ok = accepted(sw.at_root) & sw.valid
    low_unbounded, high_unbounded = accepted(sw.at_minus_inf), accepted(sw.at_plus_inf)
    any_root = root_ok.any(axis=1)
    rows = np.arange(R)
    if n:
        first_ok = position[rows, np.argmax(root_ok, axis=1)]
        last_ok = position[rows, n - 1 - np.argmax(root_ok[:, ::-1], axis=1)]
    else:
        first_ok = last_ok = np.full(R, np.nan)
    low = np.where(low_unbounded, -np.inf, np.where(any_root, first_ok, np.nan))
    high = np.where(high_unbounded, np.inf, np.where(any_root, last_ok, np.nan))
    empty = ~(low_unbounded | high_unbounded | any_root)
    # connected: every segment between the hull's ends is accepted (a root is counted at least as often as
    # the segments on either side of it, so accepted segments imply accepted roots)
    between = sw.valid & (position >= low[:, None]) & (position < high[:, None])
    connected = ~np.any(between & ~accepted(sw.on_segment), axis=1) & ~empty
    # the first tau with the largest p-value, over: the segment left of all roots, then each root and the
    # segment right of it (represented by the midpoint to the next root, or a point past the last root)
    candidates = np.empty((R, 2 * n + 1))
    candidates[:, 0] = sw.at_minus_inf
    candidates[:, 1::2] = np.where(sw.valid, sw.at_root, -np.inf)
    candidates[:, 2::2] = np.where(sw.valid, sw.on_segment, -np.inf)
    best_index = np.argmax(candidates, axis=1)
    n_valid = np.isfinite(position).sum(axis=1)
    lowest = position[:, 0] if n else np.zeros(R)
    highest = position[rows, np.maximum(n_valid - 1, 0)] if n else np.zeros(R)
    outer = 1.0 + np.maximum(np.abs(np.where(n_valid > 0, lowest, 0.0)), np.abs(np.where(n_valid > 0, highest, 0.0)))
    next_start = np.minimum.accumulate(np.where(sw.start, position, np.inf)[:, ::-1], axis=1)[:, ::-1]
    next_position = np.full((R, n), np.inf)
    next_position[:, :-1] = next_start[:, 1:]
    seg_point = np.where(np.isfinite(next_position), (position + next_position) / 2, highest[:, None] + outer[:, None])
    k = np.maximum(best_index - 1, 0) // 2
    best = (np.where(best_index == 0, np.where(n_valid > 0, lowest - outer, 0.0),
                     np.where(best_index % 2 == 1, position[rows, k], seg_point[rows, k])) if n else np.zeros(R))
    return AcceptanceHull(low, high, connected, empty, best)


def acceptance_sup(
    roots: np.ndarray,
    counted: Callable[[np.ndarray], np.ndarray],
    *,
    base: np.ndarray | float,
    total: float,
    alpha: float,
    above: np.ndarray,
    below: np.ndarray | None = None,
) -> np.ndarray:
    """The upper end ``sup {above < tau <= below : p(tau) > alpha}`` of R tests, exactly.

    As :func:`acceptance_hull`, but the counts need only be right in ``(above, below]`` (``above`` an
    accepted point of each test): ``roots`` and ``counted`` may then cover just the draws whose
    indicator can change there, the others entering ``base`` with their (constant) indicator. Without
    ``below`` the window reaches ``+inf`` (the end is ``+inf`` when the set is unbounded above); with it,
    NaN marks a test with no root in the window.
    """
    sw = _sweep(roots, counted, base)
    window = sw.position > above[:, None]
    if below is not None:
        window &= sw.position <= below[:, None]
    ok = (sw.at_root / total > alpha) & sw.valid & window
    n = sw.position.shape[1]
    rows = np.arange(len(above))
    last = sw.position[rows, n - 1 - np.argmax(ok[:, ::-1], axis=1)] if n else np.full(len(above), np.nan)
    found = np.where(ok.any(axis=1), last, np.nan)
    if below is not None:
        return found
    # ``above`` is accepted, so the first root after it is too; no root after it: the set is unbounded
    return np.where((sw.at_plus_inf / total > alpha) | np.isnan(found), np.inf, found)


def _coefficients(a: np.ndarray, c: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients of ``Q_k(tau) - Q_0(tau) = A tau^2 + B tau + C`` for every draw k."""
    q2 = np.sum(c * c, axis=1) / scale
    q1 = 2.0 * np.sum(a * c, axis=1) / scale
    q0 = np.sum(a * a, axis=1) / scale
    return q2 - q2[0], q1 - q1[0], q0 - q0[0]


def _p_values(A: np.ndarray, B: np.ndarray, C: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``p(tau)`` at each point: share of draws with ``Q_k >= Q_0`` (ties, to rounding, count)."""
    return np.mean(_at_least(A, B, C, points[:, None]), axis=1)


def _at_least(A: np.ndarray, B: np.ndarray, C: np.ndarray, tau: np.ndarray) -> np.ndarray:
    diff = A * tau**2 + B * tau + C
    size = np.abs(A) * tau**2 + np.abs(B) * np.abs(tau) + np.abs(C)
    return diff >= -_RELATIVE_TIE * size - 1e-300


def _quadratic_roots(A: np.ndarray, B: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Real roots of ``A tau^2 + B tau + C`` per draw, shape (P, 2), sorted and NaN-padded (a linear
    polynomial when ``A`` is negligible against the other coefficients)."""
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
    roots = np.column_stack([np.where(linear, r3, r1), r2])
    return np.sort(np.where(np.isfinite(roots), roots, np.nan), axis=1)


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
    # A draw whose scale is rounding error against the others' (a placebo that its donors fit exactly)
    # has an infinite statistic: it counts as at least as extreme for every tau. Its comparison
    # polynomial would otherwise put spurious roots near 1e20 (scale 1e-23: a confidence bound of 1.6e23).
    exact_fit = np.zeros(a.shape[0], dtype=bool)
    if scale[0] > _EXACT_FIT * np.median(scale):
        exact_fit[1:] = scale[1:] <= _EXACT_FIT * np.median(scale)
    A, B, C = (np.where(exact_fit, 0.0, A), np.where(exact_fit, 0.0, B), np.where(exact_fit, 1.0, C))
    p0 = float(_p_values(A, B, C, np.zeros(1))[0])
    # draw 0 is the observed assignment (Q_0 - Q_0 = 0: always counted): the "base" of the p-value
    roots = _quadratic_roots(A[1:], B[1:], C[1:])[None]
    hull = acceptance_hull(roots, lambda t: _at_least(A[None, 1:, None], B[None, 1:, None], C[None, 1:, None], t),
                           base=1.0, total=float(a.shape[0]), alpha=alpha)
    n = a.shape[0]
    if hull.empty[0]:
        point = float(estimate) if not np.isfinite(roots).any() else float(hull.best[0])
        return InvertedTest(p0, point, point, True, True, n)
    return InvertedTest(p0, float(hull.low[0]), float(hull.high[0]), bool(hull.connected[0]), False, n)


def real_roots(coefficients: np.ndarray) -> np.ndarray:
    """Real roots of polynomials of degree at most four, vectorised.

    ``coefficients`` (..., d + 1) in ascending order (``c0 + c1 x + ... + cd x^d``, d <= 4); an exactly
    zero leading coefficient lowers the degree (callers zero the coefficients that are rounding noise).
    Returns (..., d) real roots, sorted, NaN-padded. Closed forms (Ferrari's resolvent cubic for the
    quartic, Cardano / Viete for the cubic) followed by Newton steps on the original polynomial.
    """
    c = np.asarray(coefficients, dtype=float)
    shape, d = c.shape[:-1], c.shape[-1] - 1
    if d > 4:
        raise ValueError(f"real_roots handles degree at most 4; got {d}.")
    c = c.reshape(-1, d + 1)
    out = np.full((c.shape[0], max(d, 1)), np.nan)
    nonzero = c != 0
    degree = np.where(nonzero.any(axis=1), d - np.argmax(nonzero[:, ::-1], axis=1), 0)
    for deg, solve in ((1, _linear), (2, _quadratic), (3, _cubic), (4, _quartic)):
        rows = np.flatnonzero(degree == deg)
        if deg > d or rows.size == 0:
            continue
        lead = c[rows, deg][:, None]
        monic = c[rows, :deg] / lead  # ascending, leading 1 implied
        roots = solve(monic)
        if deg >= 3:
            roots = _polish(c[rows, : deg + 1], roots)
        out[rows, : roots.shape[1]] = roots
    out = np.sort(out, axis=1)[:, :d] if d else np.empty((c.shape[0], 0))
    return out.reshape(*shape, d)


def _linear(m: np.ndarray) -> np.ndarray:
    return -m[:, :1]


def _quadratic(m: np.ndarray) -> np.ndarray:
    """x^2 + b x + c (m = [c, b]): real roots, the numerically stable pair."""
    c, b = m[:, 0], m[:, 1]
    disc = b * b - 4 * c
    real = disc >= 0
    q = -0.5 * (b + np.where(b >= 0, 1.0, -1.0) * np.sqrt(np.where(real, disc, 0.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        r1 = q
        r2 = np.where(q != 0, c / q, 0.0)
    return np.where(real[:, None], np.column_stack([r1, r2]), np.nan)


def _cubic(m: np.ndarray) -> np.ndarray:
    """x^3 + a x^2 + b x + c (m = [c, b, a]): real roots (one or three), NaN-padded."""
    c, b, a = m[:, 0], m[:, 1], m[:, 2]
    p = b - a * a / 3
    q = 2 * a**3 / 27 - a * b / 3 + c
    disc = (q / 2) ** 2 + (p / 3) ** 3
    out = np.full((m.shape[0], 3), np.nan)
    one = disc > 0
    sign = np.where(q >= 0, 1.0, -1.0)
    u = np.cbrt(-q / 2 - sign * np.sqrt(np.where(one, disc, 0.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(u != 0, u - p / (3 * np.where(u != 0, u, 1.0)), 0.0)
    out[:, 0] = np.where(one, t - a / 3, np.nan)
    three = ~one
    r = np.sqrt(np.maximum(-p / 3, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        cos_arg = np.where(r > 0, -q / (2 * np.where(r > 0, r**3, 1.0)), 0.0)
    theta = np.arccos(np.clip(cos_arg, -1.0, 1.0)) / 3
    for k in range(3):
        root = 2 * r * np.cos(theta - 2 * np.pi * k / 3) - a / 3
        out[:, k] = np.where(three, root, out[:, k])
    return out


def _quartic(m: np.ndarray) -> np.ndarray:
    """x^4 + a x^3 + b x^2 + c x + d (m = [d, c, b, a]): real roots, NaN-padded (Ferrari)."""
    d, c, b, a = m[:, 0], m[:, 1], m[:, 2], m[:, 3]
    # depressed: x = y - a/4, y^4 + p y^2 + q y + r
    p = b - 3 * a * a / 8
    q = c - a * b / 2 + a**3 / 8
    r = d - a * c / 4 + a * a * b / 16 - 3 * a**4 / 256
    # resolvent cubic m^3 + p m^2 + (p^2/4 - r) m - q^2/8 = 0: its largest root is >= 0
    resolvent = np.column_stack([-q * q / 8, p * p / 4 - r, p])
    mm = np.nanmax(_cubic(resolvent), axis=1)
    mm = _polish(np.column_stack([resolvent, np.ones(len(mm))]), mm[:, None])[:, 0]
    mm = np.maximum(mm, 0.0)
    s = np.sqrt(2 * mm)
    split = (s > 0) & (q != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(split, q / (2 * np.where(split, s, 1.0)), 0.0)
    half = p / 2 + mm
    first = _quadratic(np.column_stack([half + shift, -s]))
    second = _quadratic(np.column_stack([half - shift, s]))
    y = np.hstack([first, second])
    # q == 0 (or a vanishing resolvent root): biquadratic y^4 + p y^2 + r
    z = _quadratic(np.column_stack([r, p]))
    with np.errstate(invalid="ignore"):
        zs = np.sqrt(np.where(z >= 0, z, np.nan))
    y_bi = np.hstack([zs, -zs])
    y = np.where(split[:, None], y, y_bi)
    return y - a[:, None] / 4


def _polish(c: np.ndarray, x: np.ndarray, steps: int = 3) -> np.ndarray:
    """Newton steps on ``sum_j c_j x^j`` (ascending coefficients per row), kept where they reduce |f|."""
    def value(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = np.zeros_like(z)
        df = np.zeros_like(z)
        for j in range(c.shape[1] - 1, -1, -1):
            df = df * z + f
            f = f * z + c[:, j : j + 1]
        return f, df

    f, df = value(x)
    for _ in range(steps):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            candidate = x - f / df
            f_new, df_new = value(candidate)
            better = np.isfinite(candidate) & (np.abs(f_new) < np.abs(f))
        x = np.where(better, candidate, x)
        f = np.where(better, f_new, f)
        df = np.where(better, df_new, df)
    return x
