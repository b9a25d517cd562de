"""Manipulation test of the running variable: does its density jump at the cutoff?

If units can place themselves just above the threshold (an applicant nudging the score), the
density of the running variable jumps there and the RD comparison is compromised (McCrary 2008).
The test is the local polynomial density estimator of Cattaneo, Jansson and Ma (2020): the
empirical distribution function, ``F(x_i) = (i - 1)/(n - 1)`` on the sorted sample, is fitted by
a kernel-weighted polynomial of order q = p + 1 on each side; the slope at the cutoff is the
density. Standard errors are the jackknife ones, and bandwidths the MSE-optimal choices of
Cattaneo, Jansson and Ma (2020) with ``rddensity``'s regularisation ("comb": the median of the
one-sided, difference and sum bandwidths on each side). Values equal ``rddensity`` 3.0 (PyPI;
tests/rd/test_density.py) for its default unrestricted model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from impact.data import check_integer, check_number, check_option, prepare, show
from impact.errors import DataError, SpecError

__all__ = ["DensityTest", "density_test"]

DensityBandwidth = Literal["comb", "each", "diff", "sum"]
_KERNELS = ("triangular", "epanechnikov", "uniform")
# rddensity's constants of the rule-of-thumb pilots (bias and variance), for p = 1..7
_CB = (25884.444444494150957, 3430865.4551236177795, 845007948.04262602329, 330631733667.03808594,
       187774809656037.3125, 145729502641999264, 146013502974449876992)
_CC = (4.8000000000000246914, 548.57142857155463389, 100800.00000020420703, 29558225.458100609481,
       12896196859.612621307, 7890871468221.609375, 6467911284037581)


@dataclass(frozen=True)
class DensityTest:
    """Result of :func:`density_test`.

    Attributes
    ----------
    density_left, density_right : float
        Estimated density of the running variable just below and at/above the cutoff.
    difference, std_error, statistic, p_value : float
        Right minus left density, its jackknife standard error, the t statistic and two-sided
        p-value of "no jump" (a small p-value suggests manipulation).
    bandwidths : tuple of float
        Bandwidths below and above the cutoff.
    n_left, n_right, n_effective_left, n_effective_right : int
    """

    density_left: float
    density_right: float
    difference: float
    std_error: float
    statistic: float
    p_value: float
    bandwidths: tuple[float, float]
    n_left: int
    n_right: int
    n_effective_left: int
    n_effective_right: int
    p: int
    kernel: str
    mass_points: bool

    def summary_dict(self) -> dict[str, Any]:
        """Plain values for reports and ``to_dict``."""
        return {
            "density_left": self.density_left, "density_right": self.density_right, "difference": self.difference,
            "std_error": self.std_error, "statistic": self.statistic, "p_value": self.p_value,
            "bandwidth_left": self.bandwidths[0], "bandwidth_right": self.bandwidths[1],
            "n_effective_left": self.n_effective_left, "n_effective_right": self.n_effective_right,
            "method": f"Cattaneo, Jansson & Ma (2020) local polynomial density, p={self.p}, {self.kernel} kernel, "
                      "jackknife standard errors",
        }


def _moments(low_power: int, count: int, kernel: str) -> np.ndarray:
    """Integrals of u^m K(u) over [0, 1] for m = low_power .. low_power + count - 1."""
    m = np.arange(low_power, low_power + count, dtype=float)
    if kernel == "uniform":
        return 0.5 / (m + 1)
    if kernel == "epanechnikov":
        return 0.75 * (1 / (m + 1) - 1 / (m + 3))
    return 1 / (m + 1) - 1 / (m + 2)


def _bias_constant(p: int, kernel: str) -> float:
    moments = _moments(0, 2 * p + 2, kernel)
    s = np.array([[moments[i + j] for j in range(p + 1)] for i in range(p + 1)])
    c = _moments(p + 1, p + 1, kernel)
    return float(np.linalg.solve(s, c)[1])


def _hermite(x: float, p: int) -> float:
    """Probabilists' Hermite polynomial He_p(x)."""
    return float(np.polynomial.hermite_e.hermeval(x, [0] * p + [1]))


def _groups(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values of a sorted array, their counts and first positions."""
    last = np.flatnonzero(np.r_[x[1:] != x[:-1], True])
    freq = np.diff(np.r_[-1, last])
    return x[last], freq, last - freq + 1


@dataclass(frozen=True)
class _Fit:
    hat: np.ndarray  # left, right (density)
    higher: np.ndarray  # left, right coefficient of order s (for the bias of the bandwidth)
    variance: np.ndarray  # left, right, diff, sum (jackknife)


def _fit(y: np.ndarray, x: np.ndarray, n: int, hl: float, hr: float, order: int, s: int, kernel: str,
         mass: bool) -> _Fit | None:
    """Local polynomial fit of the empirical CDF ``y`` on ``x`` (centred, sorted), separately by side."""
    left = x < 0
    scale = np.where(left, hl, hr)
    u = x / scale
    if kernel == "uniform":
        w = 1 / (2 * scale)
    elif kernel == "triangular":
        w = (1 - np.abs(u)) / scale
    else:
        w = 0.75 * (1 - u**2) / scale
    powers = u[:, None] ** np.arange(order + 1)
    design = np.zeros((x.size, 2 * order + 2))
    design[:, 0::2] = np.where(left[:, None], powers, 0.0)
    design[:, 1::2] = np.where(left[:, None], 0.0, powers)
    h_inv = 1 / np.power.outer(np.array([hl, hr]), np.arange(order + 1)).T.reshape(-1)  # hl^0, hr^0, hl^1, ...
    weighted = design * w[:, None]
    try:
        s_inv = np.linalg.inv(weighted.T @ design)
    except np.linalg.LinAlgError:
        return None
    beta = (weighted.T @ y) @ s_inv * h_inv
    # jackknife: each observation's influence is the weighted design summed over those after it
    tails = np.vstack([np.zeros((1, design.shape[1])), np.cumsum(weighted[::-1], axis=0)]) / (n - 1)
    after = tails[x.size - 1::-1]
    if mass:
        _, freq, first = _groups(x)
        after = np.repeat(after[first], freq, axis=0)
    v = (h_inv[:, None] * s_inv) @ (after.T @ after) @ (s_inv * h_inv[None, :])
    var = np.array([v[2, 2], v[3, 3], v[2, 2] + v[3, 3] - 2 * v[2, 3], v[2, 2] + v[3, 3] + 2 * v[2, 3]])
    var = np.where(var < 0, np.nan, var)
    return _Fit(beta[[2, 3]], beta[[2 * s, 2 * s + 1]], var)


def _bandwidths(x: np.ndarray, y: np.ndarray, uniq: np.ndarray, p: int, kernel: str, mass: bool,
                selector: str) -> tuple[float, float]:
    n = x.size
    nl = int(np.count_nonzero(x < 0))
    nr = n - nl
    ul = int(np.count_nonzero(uniq < 0))
    ur = uniq.size - ul
    abs_left, right = np.sort(np.abs(x[x < 0])), x[x >= 0]
    uabs_left, uright = np.sort(np.abs(uniq[uniq < 0])), uniq[uniq >= 0]
    mu, sd = float(np.mean(x)), float(np.std(x, ddof=1))
    z = mu / sd
    fhat_b = 1 / (_hermite(z, p + 2) ** 2 * stats.norm.pdf(z))
    fhat_c = 1 / (_hermite(z, p) ** 2 * stats.norm.pdf(z))
    bn = ((2 * p + 1) / 4 * fhat_b * _CB[p - 1] / n) ** (1 / (2 * p + 5)) * sd
    cn = (1 / (2 * p) * fhat_c * _CC[p - 1] / n) ** (1 / (2 * p + 1)) * sd
    widest = float(np.max(np.abs(uniq)))
    bn, cn = min(bn, widest), min(cn, widest)
    # rddensity: pilots hold at least 20 + p + 3 (bias) / 20 + p + 1 (variance) points and distinct values
    def floor(k: int) -> float:
        return max(abs_left[min(k, nl) - 1], right[min(k, nr) - 1], uabs_left[min(k, ul) - 1], uright[min(k, ur) - 1])

    bn, cn = max(bn, floor(20 + p + 3)), max(cn, floor(20 + p + 1))
    inside_b, inside_c = np.abs(x) <= bn, np.abs(x) <= cn
    fb = _fit(y[inside_b], x[inside_b], n, bn, bn, p + 2, p + 1, kernel, mass)
    fc = _fit(y[inside_c], x[inside_c], n, cn, cn, p, 1, kernel, mass)
    if fb is None or fc is None:
        return math.nan, math.nan
    variance = n * cn * fc.variance
    constant = _bias_constant(p, kernel)
    bl, br = fb.higher[0] * constant * (-1) ** p, fb.higher[1] * constant
    bias_sq = np.array([bl, br, br - bl, br + bl]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        h = (1 / (2 * p) * variance / bias_sq / n) ** (1 / (2 * p + 1))
    h = np.where(np.isnan(h) | (variance < 0), 0.0, h)
    left_range, right_range = abs(uniq[0]), uniq[-1]
    h = np.minimum(h, [left_range, right_range, max(left_range, right_range), max(left_range, right_range)])
    k = 20 + p + 1
    hlmin = max(abs_left[min(nl, k) - 1], uabs_left[min(ul, k) - 1])
    hrmin = max(right[min(nr, k) - 1], uright[min(ur, k) - 1])
    h = np.maximum(h, [hlmin, hrmin, max(hlmin, hrmin), max(hlmin, hrmin)])
    if selector == "each":
        return float(h[0]), float(h[1])
    if selector == "diff":
        return float(h[2]), float(h[2])
    if selector == "sum":
        return float(h[3]), float(h[3])
    return float(np.median([h[0], h[2], h[3]])), float(np.median([h[1], h[2], h[3]]))


def density_test(
    df: pd.DataFrame,
    *,
    running: str,
    cutoff: float = 0.0,
    p: int = 2,
    kernel: Literal["triangular", "epanechnikov", "uniform"] = "triangular",
    bandwidth: DensityBandwidth | float | Sequence[float] = "comb",
    mass_points: bool = True,
) -> DensityTest:
    """Test whether the density of the running variable jumps at the cutoff (manipulation test).

    Parameters
    ----------
    running : str
        The running variable (score).
    p : int
        Order of the local polynomial for the distribution function (1-7); the density is
        estimated with order p + 1, as ``rddensity``'s default q.
    bandwidth : {"comb", "each", "diff", "sum"} or float or (float, float)
        MSE-optimal bandwidth target, or a manual bandwidth (below, above).
    mass_points : bool
        Treat repeated values as one point in the distribution function and the jackknife.

    Returns
    -------
    DensityTest

    Notes
    -----
    With :math:`\\hat F` the empirical distribution function, the estimator fits
    :math:`\\hat F(X_i) \\approx \\sum_{j=0}^{q} b_j^{\\pm} (X_i - c)^j` by weighted least squares
    on each side; :math:`\\hat f_\\pm = b_1^\\pm`. The test statistic is
    :math:`(\\hat f_+ - \\hat f_-)/\\hat{se}`, asymptotically standard normal without manipulation.

    References
    ----------
    Cattaneo, M. D., Jansson, M. and Ma, X. (2020). Simple local polynomial density estimators.
    *Journal of the American Statistical Association* 115(531), 1449-1455.
    doi:10.1080/01621459.2019.1635480.
    McCrary, J. (2008). Manipulation of the running variable in the regression discontinuity design:
    a density test. *Journal of Econometrics* 142(2), 698-714. doi:10.1016/j.jeconom.2007.05.005.
    """
    where = "density_test"
    check_option("kernel", kernel, _KERNELS)
    p = check_integer("p", p, where, minimum=1)
    if p > 7:
        raise SpecError(f"{where}: p={p!r} must be an integer from 1 to 7.")
    cutoff = check_number("cutoff", cutoff, where)
    manual = None
    if isinstance(bandwidth, str):
        check_option("bandwidth", bandwidth, ("comb", "each", "diff", "sum"))
    else:
        values = [float(v) for v in (bandwidth if isinstance(bandwidth, Sequence) else [bandwidth])]
        if len(values) not in (1, 2) or not all(math.isfinite(v) and v > 0 for v in values):
            raise SpecError(f"{where}: bandwidth={bandwidth!r} must be a selector or one or two positive numbers.")
        manual = (values[0], values[-1])
    prepared = prepare(df, where=where, roles={"running": running}, numeric=[running])
    x = np.sort(prepared.frame[running].to_numpy(dtype=float))
    if not np.all(np.isfinite(x)):
        raise DataError(f"{where}: column {running!r} holds infinite values; remove or recode them.")
    if not x[0] < cutoff < x[-1]:
        raise DataError(f"{where}: the cutoff {show(cutoff)} must lie strictly inside the range of {running!r} "
                        f"({show(x[0])} to {show(x[-1])}).")
    x = x - float(cutoff)
    n = x.size
    nl = int(np.count_nonzero(x < 0))
    uniq, freq, first = _groups(x)
    minimum = 20 + p + 1
    for side, count, distinct in (("below", nl, int(np.count_nonzero(uniq < 0))),
                                  ("at or above", n - nl, int(np.count_nonzero(uniq >= 0)))):
        if count < minimum or distinct < p + 3:
            raise DataError(f"{where}: {count} observation(s) ({distinct} distinct value(s)) lie {side} the cutoff; "
                            f"the density test needs at least {minimum} observations and {p + 3} distinct values "
                            "on each side.")
    mass = bool(mass_points and uniq.size != n)
    y = np.arange(n) / (n - 1)
    if mass:
        y = np.repeat(y[first + freq - 1], freq)  # a tied value takes the CDF at its last copy
    if manual is None:
        hl, hr = _bandwidths(x, y, uniq, p, kernel, mass, bandwidth)
    else:
        hl, hr = manual
    inside = (x >= -hl) & (x <= hr)
    fit = _fit(y[inside], x[inside], n, hl, hr, p + 1, 1, kernel, mass)
    if fit is None or not np.isfinite(fit.variance[2]):
        raise DataError(f"{where}: the density near the cutoff cannot be estimated with bandwidths ({hl:.4g}, "
                        f"{hr:.4g}); too few distinct values of {running!r} near the cutoff.")
    se = math.sqrt(fit.variance[2])
    diff = float(fit.hat[1] - fit.hat[0])
    stat = diff / se
    n_eff_left = int(np.count_nonzero(inside & (x < 0)))
    return DensityTest(
        density_left=float(fit.hat[0]), density_right=float(fit.hat[1]), difference=diff, std_error=se,
        statistic=stat, p_value=float(2 * stats.norm.sf(abs(stat))), bandwidths=(float(hl), float(hr)),
        n_left=nl, n_right=n - nl, n_effective_left=n_eff_left,
        n_effective_right=int(np.count_nonzero(inside)) - n_eff_left, p=p, kernel=kernel, mass_points=mass,
    )
