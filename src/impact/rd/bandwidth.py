"""Data-driven bandwidths for local polynomial RD: MSE-optimal and CER-optimal choices.

The selectors are those of Calonico, Cattaneo and Titiunik (2014, section 4; "mserd", one common
bandwidth), Calonico, Cattaneo, Farrell and Titiunik (2019, "msetwo": one per side; "msesum": for
the sum of the two regression functions; "msecomb1/2": minimum / median of these) and Calonico,
Cattaneo and Farrell (2020, "cer*": the MSE choice shrunk by n^{-p/((3+p)(3+2p))} to minimise the
coverage error of the robust interval). Each MSE bandwidth is estimated in three steps: a pilot
bandwidth (rule of thumb), a bandwidth ``d`` for the order q+1 derivative, then ``b`` for the
bias and finally ``h`` for the point estimate, each as (variance / (squared bias + regularisation))
to the power 1/(2o+3). Constants, pilot and regularisation follow ``rdrobust`` 2.1.1 (Calonico,
Cattaneo, Farrell and Titiunik), whose values the tests reproduce.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from impact.rd._local import (
    fit_residuals,
    inv_spd,
    kernel_weights,
    leverage,
    meat,
    nn_residuals,
    side_clusters,
    vander,
)

__all__ = ["Bandwidth", "BANDWIDTHS", "Side", "Bandwidths", "select"]

Bandwidth = Literal["mserd", "msetwo", "msesum", "msecomb1", "msecomb2",
                    "cerrd", "certwo", "cersum", "cercomb1", "cercomb2"]
BANDWIDTHS = ("mserd", "msetwo", "msesum", "msecomb1", "msecomb2", "cerrd", "certwo", "cersum", "cercomb1", "cercomb2")
#: kernel constants of the rule-of-thumb pilot bandwidth (rdrobust's C_c)
_PILOT_CONSTANT = {"epanechnikov": 2.34, "uniform": 1.843, "triangular": 2.576}
_EPS = float(np.sqrt(np.finfo(float).eps))


@dataclass(frozen=True)
class Side:
    """One side of the cutoff: centred running variable (sorted), responses, cluster codes.

    ``values`` has the outcome first, then the treatment (fuzzy designs), then covariates.
    """

    x: np.ndarray
    values: np.ndarray
    clusters: np.ndarray | None
    n_treatment: int
    n_covariates: int

    @property
    def covariate_columns(self) -> np.ndarray:
        return np.arange(1 + self.n_treatment, 1 + self.n_treatment + self.n_covariates)


@dataclass(frozen=True)
class Bandwidths:
    """Main (h) and bias (b) bandwidths on each side, in the units of the running variable."""

    h_left: float
    h_right: float
    b_left: float
    b_right: float
    selector: str


@dataclass(frozen=True)
class _Fit:
    x: np.ndarray
    values: np.ndarray
    weights: np.ndarray
    design: np.ndarray
    inv_gram: np.ndarray
    beta: np.ndarray
    clusters: np.ndarray | None
    n_clusters: int


def _fit(side: Side, order: int, h: float, kernel: str) -> _Fit | None:
    w = kernel_weights(side.x, h, kernel)
    keep = w > 0
    x = side.x[keep]
    if np.unique(x).size < order + 1:
        return None  # the pilot is not identified: the caller reports it
    values = side.values[keep]
    weights = w[keep]
    design = vander(x, order)
    weighted = design * weights[:, None]
    inv_gram = inv_spd(design.T @ weighted)
    beta = inv_gram @ (weighted.T @ values)
    clusters, n_clusters = side_clusters(None if side.clusters is None else side.clusters[keep])
    return _Fit(x, values, weights, design, inv_gram, beta, clusters, n_clusters)


def _residuals(fit: _Fit, vce: str, matches: int) -> np.ndarray:
    if vce == "nn":
        return nn_residuals(fit.x, fit.values, matches)
    weighted = fit.design * fit.weights[:, None]
    hat = leverage(fit.design, fit.inv_gram, weighted) if vce in ("hc2", "hc3") else None
    return fit_residuals(fit.values, fit.design @ fit.beta, vce, n_params=fit.design.shape[1], hat=hat,
                         clustered=fit.clusters is not None)


def _variance(fit: _Fit, s: np.ndarray, vce: str, matches: int) -> np.ndarray:
    res = _residuals(fit, vce, matches)
    middle = meat(fit.design * fit.weights[:, None], res, s, fit.clusters, fit.n_clusters)
    return fit.inv_gram @ middle @ fit.inv_gram


def _combination(fit: _Fit, side: Side, nu: int) -> np.ndarray:
    """The vector ``s`` that turns the outcome, treatment and covariate columns into one effect."""
    beta = fit.beta
    n_t, n_z = side.n_treatment, side.n_covariates
    if n_z == 0:
        if n_t == 0:
            return np.ones(1)
        tau_y, tau_t = math.factorial(nu) * beta[nu, 0], math.factorial(nu) * beta[nu, 1]
        return np.array([1 / tau_t, -tau_y / tau_t**2])
    cols = side.covariate_columns
    weighted = fit.design * fit.weights[:, None]
    u = weighted.T @ fit.values
    zwd = (fit.values[:, cols] * fit.weights[:, None]).T @ fit.values
    uigu = u[:, cols].T @ fit.inv_gram @ u
    zwz = zwd[:, cols] - uigu[:, cols]
    zwy = zwd[:, : 1 + n_t] - uigu[:, : 1 + n_t]
    gamma = np.linalg.pinv(zwz) @ zwy
    s_y = np.concatenate(([1.0], -gamma[:, 0]))
    if n_t == 0:
        return s_y
    s_t = np.concatenate(([1.0], -gamma[:, 1]))
    tau_y = math.factorial(nu) * s_y @ np.concatenate(([beta[nu, 0]], beta[nu, cols]))
    tau_t = math.factorial(nu) * s_t @ np.concatenate(([beta[nu, 1]], beta[nu, cols]))
    return np.concatenate(([1 / tau_t, -tau_y / tau_t**2], -gamma[:, 0] / tau_t + tau_y / tau_t**2 * gamma[:, 1]))


class _SideSelector:
    """The variance, bias and regularisation pieces of one side (rdrobust's ``rdrobust_bw``)."""

    def __init__(self, side: Side, *, pilot: float, kernel: str, vce: str, matches: int) -> None:
        self.side, self.pilot, self.kernel, self.vce, self.matches = side, pilot, kernel, vce, matches
        self._cache: dict[tuple[int, int], tuple[float, float, np.ndarray]] = {}

    def _variance_fit(self, order: int, nu: int) -> tuple[float, float, np.ndarray]:
        key = (order, nu)
        if key not in self._cache:
            fit = _fit(self.side, order, self.pilot, self.kernel)
            if fit is None:
                self._cache[key] = (math.nan, math.nan, np.ones(1))
            else:
                s = _combination(fit, self.side, nu)
                v = _variance(fit, s, self.vce, self.matches)[nu, nu]
                moment = (fit.design * fit.weights[:, None]).T @ (fit.x / self.pilot) ** (order + 1)
                constant = (self.pilot ** np.arange(order + 1) * (fit.inv_gram @ moment))[nu]
                self._cache[key] = (float(v), float(constant), s)
        return self._cache[key]

    def pieces(self, order: int, nu: int, bias_order: int, bias_bandwidth: float,
               regularise: float) -> tuple[float, float, float, float]:
        """(V, B, R, rate) for a derivative ``nu`` estimated with a polynomial of ``order``."""
        nan = (math.nan, math.nan, math.nan, 1 / (2 * order + 3))
        v_fit, constant, s = self._variance_fit(order, nu)
        if not math.isfinite(v_fit) or not (math.isfinite(bias_bandwidth) and bias_bandwidth > 0):
            return nan
        fit = _fit(self.side, bias_order, bias_bandwidth, self.kernel)
        if fit is None:
            return nan
        regularisation = 0.0
        if regularise > 0:
            v_bias = _variance(fit, s, self.vce, self.matches)[-1, -1]
            regularisation = 3 * constant**2 * v_bias
        bias = math.sqrt(2 * (order + 1 - nu)) * constant * float(np.atleast_1d(s) @ fit.beta[-1, :])
        variance = (2 * nu + 1) * self.pilot ** (2 * nu + 1) * v_fit
        return variance, bias, regularise * 2 * (order + 1 - nu) * regularisation, 1 / (2 * order + 3)


def select(left: Side, right: Side, *, p: int, q: int, deriv: int, kernel: str, selector: str, vce: str,
           matches: int, scale_x: float, pilot_spread: float, n_distinct: int | None, min_distinct: int | None,
           regularise: float = 1.0, restrict: bool = True, n_clusters: int | None = None) -> Bandwidths:
    """Bandwidths by ``selector`` from standardised sides (running variable divided by ``scale_x``).

    ``pilot_spread`` is min(1, IQR/(1.349 sd)); ``n_distinct`` replaces the sample size in the pilot
    when mass points are adjusted for; ``min_distinct`` floors every bandwidth at the distance that
    keeps that many distinct values on each side (rdrobust's ``bwcheck``).
    """
    n = left.x.size + right.x.size
    pilot = _PILOT_CONSTANT[kernel] * pilot_spread * (n if n_distinct is None else n_distinct) ** (-1 / 5)
    max_left, max_right = abs(left.x.min()), abs(right.x.max())
    max_both = max(max_left, max_right)
    if restrict:
        pilot = min(pilot, max_both)
    floor_left = floor_right = 0.0
    if min_distinct is not None:
        uniq_left = np.sort(np.unique(np.abs(left.x)))
        uniq_right = np.sort(np.unique(np.abs(right.x)))
        floor_left = uniq_left[min(min_distinct, uniq_left.size) - 1] * (1 + _EPS)
        floor_right = uniq_right[min(min_distinct, uniq_right.size) - 1] * (1 + _EPS)
        pilot = max(pilot, floor_left, floor_right)
    floor_both = max(floor_left, floor_right)

    sel_l = _SideSelector(left, pilot=pilot, kernel=kernel, vce=vce, matches=matches)
    sel_r = _SideSelector(right, pilot=pilot, kernel=kernel, vce=vce, matches=matches)
    d_l = sel_l.pieces(q + 1, q + 1, q + 2, max_left * (1 + _EPS), 0)
    d_r = sel_r.pieces(q + 1, q + 1, q + 2, max_right * (1 + _EPS), 0)

    def cap(value: float, upper: float) -> float:
        return min(value, upper) if restrict else value

    def combine(cl, cr, sign: float) -> float:
        # sign -1: the difference of the two sides (RD effect); +1: their sum
        return ((cl[0] + cr[0]) / ((cr[1] + sign * cl[1]) ** 2 + regularise * (cr[2] + cl[2]))) ** cl[3]

    def one_side(c) -> float:
        return (c[0] / (c[1] ** 2 + regularise * c[2])) ** c[3]

    family = selector[3:]
    out: dict[str, tuple[float, float, float, float]] = {}
    if family in ("two", "comb2"):
        dl = max(cap((d_l[0] / d_l[1] ** 2) ** d_l[3], max_left), floor_left)
        dr = max(cap((d_r[0] / d_r[1] ** 2) ** d_r[3], max_right), floor_right)
        bl = cap(one_side(sel_l.pieces(q, p + 1, q + 1, dl, regularise)), max_left)
        br = cap(one_side(sel_r.pieces(q, p + 1, q + 1, dr, regularise)), max_right)
        hl = cap(one_side(sel_l.pieces(p, deriv, q, bl, regularise)), max_left)
        hr = cap(one_side(sel_r.pieces(p, deriv, q, br, regularise)), max_right)
        out["two"] = (hl, hr, bl, br)
    for name, sign in (("sum", 1.0), ("rd", -1.0)):
        if family in (name, "comb1", "comb2"):
            d = ((d_l[0] + d_r[0]) / (d_r[1] + sign * d_l[1]) ** 2) ** d_l[3]
            d = max(cap(d, max_both), floor_both) if min_distinct is not None else cap(d, max_both)
            b = cap(combine(sel_l.pieces(q, p + 1, q + 1, d, regularise),
                            sel_r.pieces(q, p + 1, q + 1, d, regularise), sign), max_both)
            h = cap(combine(sel_l.pieces(p, deriv, q, b, regularise),
                            sel_r.pieces(p, deriv, q, b, regularise), sign), max_both)
            out[name] = (h, h, b, b)
    if family == "comb1":
        h = float(np.min([out["rd"][0], out["sum"][0]]))
        b = float(np.min([out["rd"][2], out["sum"][2]]))
        out["comb1"] = (h, h, b, b)
    if family == "comb2":
        out["comb2"] = tuple(float(np.median([out["rd"][i], out["sum"][i], out["two"][i]])) for i in range(4))
    hl, hr, bl, br = (scale_x * v for v in out[family])
    if selector.startswith("cer"):
        count = n if n_clusters is None else n_clusters
        shrink = count ** (-(p / ((3 + p) * (3 + 2 * p))))
        hl, hr = hl * shrink, hr * shrink
    return Bandwidths(hl, hr, bl, br, selector)
