"""Sharp and fuzzy regression discontinuity by local polynomials with robust bias correction.

The estimator follows Calonico, Cattaneo and Titiunik (2014) and Calonico, Cattaneo and Farrell
(2020) and reproduces ``rdrobust`` 2.1.1 (PyPI; the authors' implementation) to 1e-6 on its
Senate data and on simulated data (tests/rd/). It is organised as the reader would look for it:
prepare the sample (:func:`_prepare`) -> choose bandwidths (:mod:`impact.rd.bandwidth`) -> fit
each side (:func:`_fit_side`) -> combine outcome, treatment and covariates into the effect and its
variance (:func:`_estimate`) -> result.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from impact.data import as_list, check_integer, check_level, check_number, check_option, prepare, show
from impact.errors import DataError, FragileInferenceWarning, ImpactWarning, SpecError, recording_warnings, warn
from impact.rd import bandwidth as bw
from impact.rd.plot import RDPlot, rdplot
from impact.rd._local import (
    KERNELS,
    VCES,
    Kernel,
    Vce,
    fit_residuals,
    inv_spd,
    kernel_weights,
    leverage,
    meat,
    nn_residuals,
    side_clusters,
    vander,
)
from impact.results import Result, effects_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["RDResult", "rdd"]

_KERNEL_ALIASES = {"tri": "triangular", "epa": "epanechnikov", "uni": "uniform"}
#: fewest observations on each side before bandwidths are attempted (rdrobust needs 20 in all)
MIN_PER_SIDE = 10
_MASS_SHARE = 0.2  # rdrobust: a side is "mass-pointed" when repeated values make up 20% of it
_MASS_MIN_DISTINCT = 10


@dataclass(frozen=True, kw_only=True)
class RDResult(Result):
    """Result of :func:`rdd`.

    ``tidy()`` has the rows ``"conventional"`` (local polynomial estimate, its standard error),
    ``"bias-corrected"`` (estimate minus the estimated leading bias, conventional standard error)
    and ``"robust"`` (bias-corrected estimate with the standard error that accounts for the bias
    estimate; Calonico, Cattaneo and Titiunik 2014). The headline is what those authors report:
    the conventional point estimate with the robust p-value and confidence interval, so
    ``estimate`` is the conventional estimate and ``std_error``, ``p_value`` and ``conf_int()``
    are those of the robust row.

    Attributes
    ----------
    bandwidths : dict
        ``h_left, h_right`` (estimation), ``b_left, b_right`` (bias), ``selector``.
    first_stage : DataFrame or None
        Fuzzy designs: the jump in treatment take-up, with the same three rows.
    """

    bandwidths: dict[str, Any] = field(default_factory=dict)
    first_stage: pd.DataFrame | None = field(default=None, repr=False)
    rdplot: RDPlot | None = field(default=None, repr=False)

    def _headline_row(self) -> pd.Series:
        conventional = self.effects.loc[self.effects["term"] == "conventional"].iloc[0]
        robust = self.effects.loc[self.effects["term"] == "robust"].iloc[0].copy()
        robust["term"] = "conventional"
        robust["estimate"] = conventional["estimate"]
        return robust

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        figs = dict(super().figures())
        if self.rdplot is not None:
            figs[f"RD plot: {self.outcome} in bins of {self.settings['running']} ({self.rdplot.method} bins) "
                 "with global polynomial fits"] = self.rdplot.plot
        return figs


@dataclass(frozen=True)
class _SideFit:
    """A side's local fits at h (order p) and b (order q), restricted to max(h, b)."""

    side: bw.Side
    h: float
    b: float
    x: np.ndarray
    values: np.ndarray
    w_h: np.ndarray
    w_b: np.ndarray
    design_q: np.ndarray
    inv_gram_p: np.ndarray
    inv_gram_q: np.ndarray
    bias_scores: np.ndarray  # Q_q: the bias-corrected estimator's weights
    beta_p: np.ndarray
    beta_q: np.ndarray
    beta_bc: np.ndarray
    n_h: int
    n_b: int
    clusters: np.ndarray | None
    n_clusters: int

    @property
    def design_p(self) -> np.ndarray:
        return self.design_q[:, : self.inv_gram_p.shape[0]]


def _fit_side(side: bw.Side, *, h: float, b: float, p: int, q: int, kernel: str) -> _SideFit:
    w_h_all = kernel_weights(side.x, h, kernel)
    w_b_all = kernel_weights(side.x, b, kernel)
    keep = w_h_all > 0 if h > b else w_b_all > 0
    x, values = side.x[keep], side.values[keep]
    clusters, n_clusters = side_clusters(None if side.clusters is None else side.clusters[keep])
    w_h, w_b = w_h_all[keep], w_b_all[keep]
    design_q = vander(x, q)
    design_p = design_q[:, : p + 1]
    weighted_p = design_p * w_h[:, None]
    weighted_q = design_q * w_b[:, None]
    inv_gram_p = inv_spd(design_p.T @ weighted_p)
    inv_gram_q = inv_spd(design_q.T @ weighted_q)
    moment = weighted_p.T @ (x / h) ** (p + 1)
    bias_row = (design_q @ inv_gram_q[p + 1, :]) * w_b
    bias_scores = weighted_p - h ** (p + 1) * np.outer(bias_row, moment)
    return _SideFit(
        side=side, h=h, b=b, x=x, values=values, w_h=w_h, w_b=w_b, design_q=design_q,
        inv_gram_p=inv_gram_p, inv_gram_q=inv_gram_q, bias_scores=bias_scores,
        beta_p=inv_gram_p @ (weighted_p.T @ values),
        beta_q=inv_gram_q @ (weighted_q.T @ values),
        beta_bc=inv_gram_p @ (bias_scores.T @ values),
        n_h=int(np.count_nonzero(w_h_all > 0)), n_b=int(np.count_nonzero(w_b_all > 0)),
        clusters=clusters, n_clusters=n_clusters,
    )


def _residuals(fit: _SideFit, order: str, vce: str, matches: int) -> np.ndarray:
    if vce == "nn":
        return nn_residuals(fit.x, fit.values, matches)
    clustered = fit.clusters is not None
    if order == "p":
        design, inv_gram, weights, beta = fit.design_p, fit.inv_gram_p, fit.w_h, fit.beta_p
    else:
        design, inv_gram, weights, beta = fit.design_q, fit.inv_gram_q, fit.w_b, fit.beta_q
    hat = leverage(design, inv_gram, design * weights[:, None]) if vce in ("hc2", "hc3") else None
    return fit_residuals(fit.values, design @ beta, vce, n_params=design.shape[1], hat=hat, clustered=clustered)


@dataclass(frozen=True)
class _Estimates:
    conventional: float
    bias_corrected: float
    se_conventional: float
    se_robust: float
    first_stage: tuple[float, float, float, float] | None  # conventional, bias-corrected, se cl, se rb
    gamma: np.ndarray | None


def _estimate(left: _SideFit, right: _SideFit, *, p: int, q: int, deriv: int, vce: str, matches: int) -> _Estimates:
    side = left.side
    n_t, n_z = side.n_treatment, side.n_covariates
    fact = math.factorial(deriv)
    beta_p = right.beta_p - left.beta_p
    beta_bc = right.beta_bc - left.beta_bc
    gamma = None
    first = None
    if n_z == 0:
        s_y = np.ones(1)
        tau_cl, tau_bc = fact * beta_p[deriv, 0], fact * beta_bc[deriv, 0]
        if n_t:
            t_cl, t_bc = fact * beta_p[deriv, 1], fact * beta_bc[deriv, 1]
            y_cl, y_bc = tau_cl, tau_bc
            tau_cl = y_cl / t_cl
            s_y = np.array([1 / t_cl, -y_cl / t_cl**2])
            tau_bc = tau_cl - s_y @ np.array([y_cl - y_bc, t_cl - t_bc])
            s_t = np.array([0.0, 1.0])
    else:
        cols = side.covariate_columns
        zwz = np.zeros((n_z, n_z))
        zwy = np.zeros((n_z, 1 + n_t))
        for fit in (left, right):
            weighted = fit.design_p * fit.w_h[:, None]
            u = weighted.T @ fit.values
            zwd = (fit.values[:, cols] * fit.w_h[:, None]).T @ fit.values
            uigu = u[:, cols].T @ fit.inv_gram_p @ u
            zwz += zwd[:, cols] - uigu[:, cols]
            zwy += zwd[:, : 1 + n_t] - uigu[:, : 1 + n_t]
        gamma = np.linalg.pinv(zwz) @ zwy
        s_y = np.concatenate(([1.0], -gamma[:, 0]))
        if not n_t:
            tau_cl = fact * float(s_y @ beta_p[deriv, np.r_[0, cols]])
            tau_bc = fact * float(s_y @ beta_bc[deriv, np.r_[0, cols]])
        else:
            s_tz = np.concatenate(([1.0], -gamma[:, 1]))
            y_cl = fact * float(s_y @ beta_p[deriv, np.r_[0, cols]])
            y_bc = fact * float(s_y @ beta_bc[deriv, np.r_[0, cols]])
            t_cl = fact * float(s_tz @ beta_p[deriv, np.r_[1, cols]])
            t_bc = fact * float(s_tz @ beta_bc[deriv, np.r_[1, cols]])
            tau_cl = y_cl / t_cl
            delta = np.array([1 / t_cl, -y_cl / t_cl**2])
            tau_bc = tau_cl - delta @ np.array([y_cl - y_bc, t_cl - t_bc])
            s_y = np.concatenate((delta, -gamma[:, 0] / t_cl + y_cl / t_cl**2 * gamma[:, 1]))
            s_t = np.concatenate(([0.0, 1.0], -gamma[:, 1]))

    same_bandwidths = left.h == left.b and right.h == right.b

    def variances(s: np.ndarray) -> tuple[float, float]:
        v_cl = v_rb = 0.0
        for fit in (left, right):
            clusters, n_clusters = fit.clusters, fit.n_clusters
            res_h = _residuals(fit, "p", vce, matches)
            res_b = res_h if vce == "nn" else _residuals(fit, "q", vce, matches)
            m_cl = meat(fit.design_p * fit.w_h[:, None], res_h, s, clusters, n_clusters, p + 1)
            v_cl += (fit.inv_gram_p @ m_cl @ fit.inv_gram_p)[deriv, deriv]
            if same_bandwidths and clusters is not None:
                m_rb = meat(fit.design_q * fit.w_h[:, None], res_b, s, clusters, n_clusters, q + 1)
                v_rb += (fit.inv_gram_q @ m_rb @ fit.inv_gram_q)[deriv, deriv]
            else:
                m_rb = meat(fit.bias_scores, res_b, s, clusters, n_clusters, q + 1)
                v_rb += (fit.inv_gram_p @ m_rb @ fit.inv_gram_p)[deriv, deriv]
        return fact**2 * v_cl, fact**2 * v_rb

    v_cl, v_rb = variances(s_y)
    if n_t:
        vt_cl, vt_rb = variances(s_t)
        first = (float(t_cl), float(t_bc), math.sqrt(vt_cl), math.sqrt(vt_rb))
    return _Estimates(float(tau_cl), float(tau_bc), math.sqrt(v_cl), math.sqrt(v_rb), first, gamma)


def _quantile_type2(x: np.ndarray, prob: float) -> float:
    """R's quantile(type = 2): the average at discontinuities of the empirical distribution."""
    x = np.sort(x)
    h = x.size * prob
    j = int(math.floor(h))
    return float(0.5 * (x[j - 1] + x[j])) if h == j else float(x[j])


def _finite(frame: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    """+-inf is bad input like NaN: name the column and rows."""
    for col in columns:
        values = frame[col].to_numpy(dtype=float)
        bad = np.isinf(values)
        if bad.any():
            rows = ", ".join(str(i) for i in frame.index[bad][:5])
            raise DataError(f"{where}: column {col!r} holds infinite values in rows {rows}. Remove or recode them "
                            "(infinite values cannot be placed relative to the cutoff or averaged).")


def _bandwidth_option(value: Any, name: str) -> tuple[float, float] | None:
    if value is None:
        return None
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) not in (1, 2) or not all(math.isfinite(v) and v > 0 for v in numbers):
        raise SpecError(f"rdd: {name}={value!r} must be one positive number or a (left, right) pair of them.")
    return (numbers[0], numbers[-1])


@dataclass(frozen=True)
class _Sample:
    left: bw.Side
    right: bw.Side
    running: np.ndarray
    outcome: np.ndarray
    treatment: np.ndarray | None
    covariates: np.ndarray | None
    cluster_codes: np.ndarray | None
    n_clusters: int | None


def _split(running: np.ndarray, values: np.ndarray, clusters: np.ndarray | None, cutoff: float, *,
           n_treatment: int, n_covariates: int, scale: float = 1.0) -> tuple[bw.Side, bw.Side]:
    order = np.argsort(running, kind="stable")
    x = (running[order] - cutoff) / scale
    vals = values[order]
    cl = None if clusters is None else clusters[order]
    below = x < 0
    sides = []
    for mask in (below, ~below):
        sides.append(bw.Side(x[mask], vals[mask], None if cl is None else cl[mask], n_treatment, n_covariates))
    return sides[0], sides[1]


def rdd(
    df: pd.DataFrame,
    *,
    outcome: str,
    running: str,
    cutoff: float = 0.0,
    treatment: str | None = None,
    covariates: Sequence[str] | None = None,
    cluster: str | None = None,
    kernel: Kernel = "triangular",
    bandwidth: bw.Bandwidth | float | tuple[float, float] = "mserd",
    bias_bandwidth: float | tuple[float, float] | None = None,
    rho: float | None = None,
    p: int | None = None,
    q: int | None = None,
    deriv: int = 0,
    vce: Vce = "nn",
    nnmatch: int = 3,
    masspoints: str = "adjust",
    min_distinct: int | None = None,
    sharp_bandwidth: bool = False,
    regularisation: float = 1.0,
    level: float = 0.95,
    balance: Sequence[str] | None = None,
    placebos: Sequence[float] | bool = False,
    density: bool = False,
) -> RDResult:
    """Regression discontinuity effect at a cutoff: local polynomial, robust bias-corrected inference.

    Parameters
    ----------
    df : DataFrame
        One row per unit; never modified.
    outcome, running : str
        Outcome and running variable (score) columns.
    cutoff : float
        Units with ``running >= cutoff`` are assigned to treatment.
    treatment : str, optional
        Treatment received (fuzzy design): the effect is the jump in the outcome divided by the jump
        in take-up (a local Wald estimate). Without it the design is sharp.
    covariates : list of str, optional
        Pre-determined covariates entered linearly and in common on both sides (Calonico, Cattaneo,
        Farrell and Titiunik 2019); they sharpen the estimate without changing the estimand.
    cluster : str, optional
        Cluster-robust (CR1) variance by this column, as rdrobust's ``cluster=``.
    kernel : {"triangular", "epanechnikov", "uniform"}
    bandwidth : str, float or (float, float)
        A selector ("mserd" default; "msetwo", "msesum", "msecomb1", "msecomb2", "cerrd", "certwo",
        "cersum", "cercomb1", "cercomb2") or a manual bandwidth (one, or left and right).
    bias_bandwidth : float or (float, float), optional
        Manual bandwidth for the bias estimate; with a manual ``bandwidth`` it defaults to it.
    rho : float, optional
        Sets the bias bandwidth to ``h / rho``.
    p, q, deriv : int
        Order of the local polynomial (default 1, local linear; ``deriv + 1`` when a derivative is
        asked for), of the bias-correction polynomial (p + 1) and of the derivative estimated
        (0: the jump; 1: a kink).
    vce : {"nn", "hc0", "hc1", "hc2", "hc3"}
        Variance: nearest-neighbour residuals (``nnmatch`` neighbours; rdrobust's default) or
        heteroskedasticity-robust. With ``cluster``, CR1.
    masspoints : {"adjust", "check", "off"}
        How repeated values of the running variable are handled, as rdrobust: "adjust" counts
        distinct values in the pilot bandwidth and, when repeated values are 20% or more of a side,
        widens every bandwidth to hold at least 10 distinct values (``min_distinct``).
    sharp_bandwidth : bool
        Fuzzy designs: choose the bandwidth for the outcome jump alone.
    regularisation : float
        Scale of the regularisation term of the bandwidth selectors (0 removes it).
    level : float
        Confidence level.
    balance : list of str, optional
        Predetermined covariates whose jump at the cutoff is estimated (:func:`impact.rd.balance`;
        ``diagnostics["balance"]``).
    placebos : bool or list of float
        Placebo cutoffs (True: terciles on each side; :func:`impact.rd.placebo_cutoffs`;
        ``diagnostics["placebo_cutoffs"]``).
    density : bool
        Test for manipulation of the running variable (:func:`impact.rd.density_test`;
        ``diagnostics["density_test"]``).

    Returns
    -------
    RDResult
        ``tidy()`` rows "conventional", "bias-corrected", "robust"; the headline is the conventional
        estimate with the robust interval. ``diagnostics`` holds sample sizes on each side and within
        the bandwidths, and for fuzzy designs the first stage.

    Notes
    -----
    On each side a weighted polynomial of order p in :math:`X - c` is fitted with kernel weights
    :math:`K((X - c)/h)/h`; the sharp estimate is :math:`\\hat\\tau = \\hat\\mu_+ - \\hat\\mu_-`, the
    limits of :math:`E[Y|X=x]` from above and below. The bias-corrected estimate subtracts the
    leading bias estimated with a polynomial of order q on bandwidth b; the robust standard error
    accounts for the variability of that bias estimate (CCT 2014, Theorem 1). Fuzzy designs divide
    by the jump in :math:`E[D|X=x]`, with delta-method variances. Bandwidths: see
    :mod:`impact.rd.bandwidth`.

    References
    ----------
    Calonico, S., Cattaneo, M. D. and Titiunik, R. (2014). Robust nonparametric confidence intervals for
    regression-discontinuity designs. *Econometrica* 82(6), 2295-2326. doi:10.3982/ECTA11757.
    Calonico, S., Cattaneo, M. D. and Farrell, M. H. (2020). Optimal bandwidth choice for robust
    bias-corrected inference in regression discontinuity designs. *Econometrics Journal* 23(2),
    192-210. doi:10.1093/ectj/utz022.
    Calonico, S., Cattaneo, M. D., Farrell, M. H. and Titiunik, R. (2019). Regression discontinuity
    designs using covariates. *Review of Economics and Statistics* 101(3), 442-451.
    doi:10.1162/rest_a_00760.

    Examples
    --------
    >>> import impact as im
    >>> senate = im.datasets.load("rdsenate")
    >>> res = im.rd.rdd(senate, outcome="vote", running="margin")
    >>> round(res.estimate, 3), [round(v, 3) for v in res.conf_int()]
    (7.414, [4.094, 10.919])
    """
    where = "rdd"
    kernel = check_option("kernel", _KERNEL_ALIASES.get(kernel, kernel), KERNELS)
    vce = check_option("vce", vce, VCES)
    if cluster is not None:
        if vce not in ("nn", "hc1"):
            raise SpecError(f"{where}: vce={vce!r} is not available with cluster=; clustered standard errors are "
                            "CR1 (rdrobust's vce='cr1'): leave vce at its default or pass vce='hc1'.")
        vce = "hc1"  # rdrobust: clustering replaces nearest-neighbour residuals by CR1 on regression residuals
    if p is None:
        p = 1 if deriv == 0 else check_integer("deriv", deriv, where, minimum=0) + 1
    masspoints = check_option("masspoints", masspoints, ("adjust", "check", "off"))
    manual = None if isinstance(bandwidth, str) else _bandwidth_option(bandwidth, "bandwidth")
    if manual is None:
        check_option("bandwidth", bandwidth, bw.BANDWIDTHS)
    manual_b = _bandwidth_option(bias_bandwidth, "bias_bandwidth")
    level = check_level(level, where)
    deriv = check_integer("deriv", deriv, where, minimum=0)
    p = check_integer("p", p, where, minimum=0)
    nnmatch = check_integer("nnmatch", nnmatch, where, minimum=1)
    q = p + 1 if q is None else q
    if not isinstance(q, int | np.integer) or isinstance(q, bool) or q <= p:
        raise SpecError(f"{where}: q={q!r} (order of the bias-correction polynomial) must be an integer above p={p}.")
    if deriv > p:
        raise SpecError(f"{where}: deriv={deriv} cannot exceed the polynomial order p={p}.")
    rho = check_number("rho", rho, where, low=0, low_open=True, allow_none=True)
    cutoff = check_number("cutoff", cutoff, where)
    min_distinct = check_integer("min_distinct", min_distinct, where, minimum=1, allow_none=True)
    regularisation = check_number("regularisation", regularisation, where, low=0)
    covs = as_list(covariates)

    with recording_warnings() as log:
        numeric = [outcome, running, *([treatment] if treatment else []), *covs]
        prepared = prepare(df, where=where, roles={"outcome": outcome, "running": running, "treatment": treatment,
                                                   "covariates": covs, "cluster": cluster}, numeric=numeric)
        frame = prepared.frame
        _finite(frame, numeric, where)
        x = frame[running].to_numpy(dtype=float)
        if not x.min() < cutoff < x.max():
            raise DataError(f"{where}: the cutoff {show(cutoff)} must lie strictly inside the range of {running!r} "
                            f"({show(x.min())} to {show(x.max())}). Check the cutoff and the running variable's units.")
        y = frame[outcome].to_numpy(dtype=float)
        t = frame[treatment].to_numpy(dtype=float) if treatment else None
        z = frame[covs].to_numpy(dtype=float) if covs else None
        codes = n_clusters = None
        if cluster:
            codes, uniques = pd.factorize(frame[cluster], sort=True)
            n_clusters = len(uniques)
        below = x < cutoff
        for name, mask in (("below", below), ("at or above", ~below)):
            n_side, distinct = int(mask.sum()), np.unique(x[mask]).size
            if n_side < MIN_PER_SIDE or distinct < q + 1:
                raise DataError(
                    f"{where}: only {n_side} observation(s) ({distinct} distinct value(s) of {running!r}) lie {name} "
                    f"the cutoff {show(cutoff)}; at least {MIN_PER_SIDE} observations and {q + 1} distinct values "
                    f"are needed on each side to fit polynomials of order p={p} and q={q}. Check the cutoff, or "
                    "collect more observations near it.")
        if t is not None:
            jump_free = np.var(t[below]) == 0 and np.var(t[~below]) == 0
            if jump_free and abs(t[below].mean() - t[~below].mean()) < np.sqrt(np.finfo(float).eps):
                raise DataError(f"{where}: treatment {treatment!r} is {show(t[0])} on both sides of the cutoff, so "
                                "take-up does not jump and the fuzzy design is not identified. Check the column, "
                                "or drop treatment= for a sharp design.")
        if cluster and n_clusters is not None and n_clusters < 2:
            raise DataError(f"{where}: cluster-robust inference needs at least 2 clusters in {cluster!r}; there is "
                            f"{n_clusters}. Cluster at a level with several groups, or drop cluster=.")

        n_t = 1 if t is not None else 0
        n_z = z.shape[1] if z is not None else 0
        values = np.column_stack([y] + ([t] if t is not None else []) + ([z] if z is not None else []))

        distinct_left, distinct_right = np.unique(x[below]).size, np.unique(x[~below]).size
        mass = masspoints != "off" and (1 - distinct_left / below.sum() >= _MASS_SHARE
                                        or 1 - distinct_right / (~below).sum() >= _MASS_SHARE)
        if mass:
            warn(FragileInferenceWarning,
                 f"{where}: the running variable {running!r} has mass points (repeated values make up 20% or more "
                 "of a side); local polynomial extrapolation to the cutoff relies on few distinct values"
                 + ("; bandwidths are widened to hold at least 10 distinct values on each side." if
                    masspoints == "adjust" else "; consider masspoints='adjust'."))
            if masspoints == "adjust" and min_distinct is None:
                min_distinct = _MASS_MIN_DISTINCT

        if manual is not None:
            h_l, h_r = manual
            if rho is not None:
                b_l, b_r = h_l / rho, h_r / rho
            else:
                b_l, b_r = manual_b if manual_b is not None else (h_l, h_r)
            bands = bw.Bandwidths(h_l, h_r, b_l, b_r, "manual")
        else:
            bands = _select_bandwidths(x, y, t, z, codes, cutoff, below, p=p, q=q, deriv=deriv, kernel=kernel,
                                       selector=str(bandwidth), vce=vce, nnmatch=nnmatch,
                                       masspoints=masspoints, min_distinct=min_distinct,
                                       sharp_bandwidth=sharp_bandwidth, regularisation=regularisation,
                                       distinct=(distinct_left, distinct_right), where=where)
            if rho is not None:
                bands = bw.Bandwidths(bands.h_left, bands.h_right, bands.h_left / rho, bands.h_right / rho,
                                      bands.selector)

        left, right = _split(x, values, codes, cutoff, n_treatment=n_t, n_covariates=n_z)
        fits = []
        for side, h, b, name in ((left, bands.h_left, bands.b_left, "below"), (right, bands.h_right, bands.b_right, "above")):
            fit = _fit_side(side, h=h, b=b, p=p, q=q, kernel=kernel)
            w_h = kernel_weights(side.x, h, kernel) > 0
            w_b = kernel_weights(side.x, b, kernel) > 0
            if np.unique(side.x[w_h]).size < p + 1 or np.unique(side.x[w_b]).size < q + 1:
                raise DataError(
                    f"{where}: too few distinct values of {running!r} {name} the cutoff within the bandwidth "
                    f"(h={h:.4g}, b={b:.4g}) to fit polynomials of order p={p} and q={q}. Widen the bandwidth "
                    "or lower p.")
            fits.append(fit)
        est = _estimate(fits[0], fits[1], p=p, q=q, deriv=deriv, vce=vce, matches=nnmatch)
        for fit, name in zip(fits, ("below", "above")):
            if fit.n_h < 20:
                warn(FragileInferenceWarning,
                     f"{where}: only {fit.n_h} observations {name} the cutoff lie within the bandwidth "
                     f"(h={(fit.h):.4g}); the local polynomial fit and its standard error rest on few points.")
            if fit.clusters is not None and fit.n_clusters < 10:
                warn(FragileInferenceWarning,
                     f"{where}: only {fit.n_clusters} clusters {name} the cutoff within the bandwidth; "
                     "cluster-robust standard errors are unreliable with fewer than 10 clusters on a side.")

        result = _result(est, bands, fits, frame=frame, prepared=prepared, outcome=outcome, running=running,
                         cutoff=cutoff, treatment=treatment, covs=covs, cluster=cluster, n_clusters=n_clusters,
                         kernel=kernel, p=p, q=q, deriv=deriv, vce=vce, nnmatch=nnmatch, masspoints=masspoints,
                         level=level, log=log, below=below)
    checks = _checks(df, frame, outcome=outcome, running=running, cutoff=cutoff, balance=balance,
                     placebos=placebos, density=density,
                     options={"kernel": kernel, "p": p, "vce": vce if not cluster else "nn", "cluster": cluster,
                              "level": level, "masspoints": masspoints,
                              **({"bandwidth": bandwidth} if manual is None else {})})
    return result.replace(diagnostics={**result.diagnostics, **checks["diagnostics"]}, rdplot=checks["rdplot"],
                          warnings=tuple(log))


def _checks(df: pd.DataFrame, frame: pd.DataFrame, *, outcome: str, running: str, cutoff: float, balance,
            placebos, density: bool, options: dict[str, Any]) -> dict[str, Any]:
    """The RD plot and the falsification checks the caller asked for (each re-estimates on its own)."""
    plot = rdplot(frame, outcome=outcome, running=running, cutoff=cutoff)
    diagnostics: dict[str, Any] = {
        "rdplot_bins": {"below": plot.n_bins[0], "above": plot.n_bins[1], "method": plot.method}}
    with warnings.catch_warnings():
        # each check is its own estimation: its warnings (the same mass points, ...) would only repeat
        warnings.simplefilter("ignore", ImpactWarning)
        _run_checks(diagnostics, df, outcome=outcome, running=running, cutoff=cutoff, balance=balance,
                    placebos=placebos, density=density, options=options)
    return {"diagnostics": diagnostics, "rdplot": plot}


def _run_checks(diagnostics, df, *, outcome, running, cutoff, balance, placebos, density, options) -> None:
    from impact.rd.checks import balance as balance_check
    from impact.rd.checks import placebo_cutoffs

    if balance:
        diagnostics["balance"] = balance_check(df, running=running, covariates=balance, cutoff=cutoff, **options)
    if placebos is not False and placebos is not None:
        chosen = None if placebos is True else list(placebos)
        diagnostics["placebo_cutoffs"] = placebo_cutoffs(df, outcome=outcome, running=running, cutoff=cutoff,
                                                         placebos=chosen, **options)
    if density:
        from impact.rd.density import density_test

        diagnostics["density_test"] = density_test(df, running=running, cutoff=cutoff).summary_dict()


def _select_bandwidths(x, y, t, z, codes, cutoff, below, *, p, q, deriv, kernel, selector, vce, nnmatch,
                       masspoints, min_distinct, sharp_bandwidth, regularisation, distinct, where) -> bw.Bandwidths:
    # rdrobust standardises x and y before selecting (stdvars=TRUE) and scales the result back.
    x_sd, y_sd = float(np.std(x, ddof=1)), float(np.std(y, ddof=1))
    iqr = _quantile_type2(x, 0.75) - _quantile_type2(x, 0.25)
    spread = min(1.0, (iqr / x_sd) / 1.349)
    use_t = t is not None and not sharp_bandwidth and np.var(t[below]) > 0 and np.var(t[~below]) > 0
    columns = [y / y_sd] + ([t] if use_t else []) + ([z] if z is not None else [])
    left, right = _split(x, np.column_stack(columns), codes, cutoff, n_treatment=int(use_t),
                         n_covariates=0 if z is None else z.shape[1], scale=x_sd)
    n_clusters = None
    if codes is not None:
        n_clusters = np.unique(codes[below]).size + np.unique(codes[~below]).size
    bands = bw.select(left, right, p=p, q=q, deriv=deriv, kernel=kernel, selector=selector, vce=vce,
                      matches=nnmatch, scale_x=x_sd, pilot_spread=spread,
                      n_distinct=sum(distinct) if masspoints != "off" else None, min_distinct=min_distinct,
                      regularise=regularisation, n_clusters=n_clusters)
    values = np.array([bands.h_left, bands.h_right, bands.b_left, bands.b_right])
    if not (np.all(np.isfinite(values)) and np.all(values > 0)):
        raise DataError(f"{where}: the {selector} bandwidth cannot be computed: the running variable has too little "
                        "variation near the cutoff (too few distinct values, or a perfect polynomial fit). Check for "
                        "mass points, pass a manual bandwidth, or collect more observations near the cutoff.")
    return bands


def _result(est: _Estimates, bands: bw.Bandwidths, fits: list[_SideFit], *, frame, prepared, outcome, running,
            cutoff, treatment, covs, cluster, n_clusters, kernel, p, q, deriv, vce, nnmatch, masspoints, level,
            log, below) -> RDResult:
    terms = ["conventional", "bias-corrected", "robust"]
    variance = f"nearest-neighbour variance ({nnmatch} neighbours)" if vce == "nn" else vce.upper()
    if cluster:
        variance = f"cluster-robust CR1 by {cluster}"
    methods = [f"conventional local polynomial, {variance}",
               f"bias-corrected, conventional {variance}",
               f"robust bias-corrected (Calonico, Cattaneo & Titiunik 2014), {variance}"]
    table = effects_table(terms, [est.conventional, est.bias_corrected, est.bias_corrected],
                          [est.se_conventional, est.se_conventional, est.se_robust], level=level, inference=methods)
    first_stage = None
    if est.first_stage is not None:
        t_cl, t_bc, s_cl, s_rb = est.first_stage
        first_stage = effects_table(terms, [t_cl, t_bc, t_bc], [s_cl, s_cl, s_rb], level=level)
    at = f"{running} = {cutoff:g}"
    kind = "" if deriv == 0 else (", kink: change in slope" if deriv == 1 else f", change in derivative {deriv}")
    estimand = (f"effect on compliers at the cutoff ({at}; fuzzy RD, local Wald{kind})" if treatment
                else f"effect at the cutoff ({at}; sharp RD{kind})")
    left, right = fits
    bandwidths = {"h_left": bands.h_left, "h_right": bands.h_right, "b_left": bands.b_left,
                  "b_right": bands.b_right, "selector": bands.selector}
    diagnostics: dict[str, Any] = {
        "bandwidths": bandwidths,
        "n_left": int(below.sum()), "n_right": int((~below).sum()),
        "n_h_left": left.n_h, "n_h_right": right.n_h, "n_b_left": left.n_b, "n_b_right": right.n_b,
        "distinct_left": int(np.unique(left.side.x).size), "distinct_right": int(np.unique(right.side.x).size),
    }
    if first_stage is not None:
        diagnostics["first_stage"] = first_stage
    if est.gamma is not None:
        diagnostics["covariate_coefficients"] = dict(zip(covs, est.gamma[:, 0].tolist()))
    settings = {"running": running, "cutoff": cutoff, "treatment": treatment, "covariates": covs,
                "cluster": cluster, "kernel": kernel, "bandwidth": bands.selector, "p": p, "q": q,
                "deriv": deriv, "vce": vce, "nnmatch": nnmatch, "masspoints": masspoints, "level": level}
    return RDResult(
        design="rdd", estimand=estimand, effects=table, headline="conventional",
        inference=f"conventional estimate with the robust bias-corrected interval and p-value ({variance})",
        n_obs=len(frame), outcome=outcome, level=level, n_treated=int((~below).sum()), n_clusters=n_clusters,
        settings=settings, warnings=tuple(log), sample_flow=prepared.flow, diagnostics=diagnostics,
        bandwidths=bandwidths, first_stage=first_stage,
    )
