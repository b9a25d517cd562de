"""Binned RD plot with data-driven bins (Calonico, Cattaneo and Titiunik 2015), as ``rdplot``.

The plot shows outcome means in bins of the running variable on each side of the cutoff and a
global polynomial fit (order 4 by default) on each side. The number of bins "mimics the variance"
of the data (CCT 2015, section 4.2): evenly spaced ("esmv") or quantile spaced ("qsmv") bins, as
many as make the binned means as variable as the raw scatter. With mass points the variance is
taken from a polynomial regression of y and y^2 ("esmvpr"/"qsmvpr"), as rdplot's
``masspoints="adjust"``. Values equal ``rdplot`` 2.1.1 (tests/rd/test_plot.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from scipy import linalg, stats

from impact.data import check_integer, check_level, check_number, check_option, prepare, show
from impact.errors import DataError, SpecError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["RDPlot", "rdplot", "BinMethod"]

BinMethod = Literal["esmv", "qsmv", "esmvpr", "qsmvpr"]
_METHODS = ("esmv", "qsmv", "esmvpr", "qsmvpr")


@dataclass(frozen=True)
class RDPlot:
    """Binned means and polynomial fits of an RD plot.

    Attributes
    ----------
    bins : DataFrame
        One row per non-empty bin: ``side`` ("below"/"above"), ``bin`` (negative below the cutoff),
        ``x_mid`` (bin midpoint), ``x_mean``, ``y_mean``, ``n``, ``conf_low``, ``conf_high``
        (t interval of the bin mean).
    fit : DataFrame
        ``side``, ``x``, ``fitted``: the global polynomial on each side on a grid of 500 points.
    n_bins : tuple of int
        Bins below and above the cutoff.
    method : str
        How the number of bins was chosen.
    """

    bins: pd.DataFrame
    fit: pd.DataFrame
    n_bins: tuple[int, int]
    method: str
    cutoff: float
    outcome: str
    running: str

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw the binned means and fits (matplotlib Axes)."""
        from impact.report.plots import rd_plot

        return rd_plot(self.bins, self.fit, cutoff=self.cutoff, ax=ax, outcome=self.outcome, running=self.running)


def _polyfit(x: np.ndarray, y: np.ndarray, order: int) -> np.ndarray:
    design = np.vander(x, order + 1, increasing=True)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef


def _variance_proxy(x: np.ndarray, y: np.ndarray, spacing: str, polynomial: bool, span: float) -> float:
    """Variance of the data in CCT (2015)'s spacings (or polynomial-regression) estimator."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    dx, dy = np.diff(xs), np.diff(ys)
    if not polynomial:
        return 0.5 / span * float(np.sum(dx * dy**2)) if spacing == "es" else float(np.sum(dy**2)) / (2 * x.size)
    # rdplot: y and y^2 on a global quartic in x (raw, not centred), dropping to a cubic or a
    # quadratic when the Cholesky factorisation of its ill-conditioned Gram fails
    for k in (4, 3, 2):
        design = np.vander(x, k + 1, increasing=True)
        try:
            factor = linalg.cho_factor(design.T @ design, lower=True)
            break
        except linalg.LinAlgError:
            continue
    inv_gram = linalg.cho_solve(factor, np.eye(k + 1))
    g1 = inv_gram @ (design.T @ y)
    g2 = inv_gram @ (design.T @ y**2)
    var_y = float(np.var(y, ddof=1))
    if spacing == "es":
        mid = np.vander((xs[1:] + xs[:-1]) / 2, k + 1, increasing=True)
        sigma2 = mid @ g2 - (mid @ g1) ** 2
        sigma2 = np.where(sigma2 < 0, var_y, sigma2)
        return float(np.sum(dx * sigma2)) / span
    sigma2 = design @ g2 - (design @ g1) ** 2
    sigma2 = np.where(sigma2 < 0, var_y, sigma2)
    return float(np.mean(sigma2))


def rdplot(
    df: pd.DataFrame,
    *,
    outcome: str,
    running: str,
    cutoff: float = 0.0,
    p: int = 4,
    bins: BinMethod = "esmv",
    n_bins: int | tuple[int, int] | None = None,
    masspoints: Literal["adjust", "off"] = "adjust",
    level: float = 0.95,
) -> RDPlot:
    """Binned means of ``outcome`` by ``running`` on each side of ``cutoff``, with polynomial fits.

    Parameters
    ----------
    bins : {"esmv", "qsmv", "esmvpr", "qsmvpr"}
        Evenly spaced or quantile spaced bins, their number mimicking the variance of the data
        (spacings estimator; "pr": polynomial regression estimator).
    n_bins : int or (int, int), optional
        A fixed number of evenly spaced bins (below, above) instead.
    p : int
        Order of the global polynomial fitted on each side.
    masspoints : {"adjust", "off"}
        With 20% or more repeated values on a side, switch to the "pr" variance estimator.

    References
    ----------
    Calonico, S., Cattaneo, M. D. and Titiunik, R. (2015). Optimal data-driven regression discontinuity
    plots. *Journal of the American Statistical Association* 110(512), 1753-1769.
    doi:10.1080/01621459.2015.1017578.
    """
    where = "rdplot"
    check_option("bins", bins, _METHODS)
    check_option("masspoints", masspoints, ("adjust", "off"))
    p = check_integer("p", p, where, minimum=0)
    level = check_level(level, where)
    cutoff = check_number("cutoff", cutoff, where)
    prepared = prepare(df, where=where, roles={"outcome": outcome, "running": running}, numeric=[outcome, running])
    frame = prepared.frame
    x = frame[running].to_numpy(dtype=float)
    y = frame[outcome].to_numpy(dtype=float)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise DataError(f"{where}: {running!r} or {outcome!r} holds infinite values; remove or recode them.")
    x_min, x_max = float(x.min()), float(x.max())
    if not x_min < cutoff < x_max:
        raise DataError(f"{where}: the cutoff {show(cutoff)} must lie strictly inside the range of {running!r} "
                        f"({show(x_min)} to {show(x_max)}).")
    n = x.size
    if n < 20:
        raise DataError(f"{where}: {n} observations; at least 20 are needed to choose bins.")
    below = x < cutoff
    sides = {"below": (x[below], y[below], cutoff - x_min), "above": (x[~below], y[~below], x_max - cutoff)}
    method = bins
    if masspoints == "adjust" and not bins.endswith("pr"):
        mass = any(1 - np.unique(sx).size / sx.size >= 0.2 for sx, _, _ in sides.values())
        method = bins + "pr" if mass else bins
    spacing = method[:2]
    counts = []
    for side, (sx, sy, span) in sides.items():
        if sx.size < 2:
            raise DataError(f"{where}: fewer than 2 observations {side} the cutoff.")
        var_y = float(np.var(sy, ddof=1))
        if n_bins is not None:
            counts.append(int(n_bins if np.isscalar(n_bins) else n_bins[0 if side == "below" else 1]))
        elif var_y == 0:
            counts.append(1)
        else:
            v = _variance_proxy(sx, sy, spacing, method.endswith("pr"), span)
            counts.append(int(math.ceil(var_y / v * n / math.log(n) ** 2)))
    if n_bins is not None:
        spacing = "es"
        method = "fixed, evenly spaced"
    rows = []
    fits = []
    for (side, (sx, sy, _span)), j in zip(sides.items(), counts):
        if spacing == "es":
            edges = np.linspace(x_min, cutoff, j + 1) if side == "below" else np.linspace(cutoff, x_max, j + 1)
        else:
            edges = np.quantile(sx, np.linspace(0, 1, j + 1))
        # R findInterval conventions as rdplot: left-closed bins, the last one closed on the right
        idx = np.clip(np.searchsorted(edges, sx, side="right"), 1, j) - 1
        n_in = np.bincount(idx, minlength=j)
        sum_y = np.bincount(idx, weights=sy, minlength=j)
        sum_x = np.bincount(idx, weights=sx, minlength=j)
        sum_y2 = np.bincount(idx, weights=sy**2, minlength=j)
        filled = n_in > 0
        mean_y = sum_y[filled] / n_in[filled]
        nf = n_in[filled]
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt(np.maximum(sum_y2[filled] - nf * mean_y**2, 0) / (nf - 1))
        sd = np.nan_to_num(sd)
        se = sd / np.sqrt(nf)
        crit = stats.t.ppf(0.5 + level / 2, np.maximum(nf - 1, 1))
        number = np.arange(1, j + 1)[filled]
        rows.append(pd.DataFrame({
            "side": side, "bin": -(j + 1 - number) if side == "below" else number,
            "x_mid": ((edges[:-1] + edges[1:]) / 2)[filled], "x_mean": sum_x[filled] / nf, "y_mean": mean_y,
            "n": nf, "conf_low": mean_y - crit * se, "conf_high": mean_y + crit * se,
        }))
        coef = _polyfit(sx - cutoff, sy, p)
        grid = np.linspace(x_min, cutoff, 500) if side == "below" else np.linspace(cutoff, x_max, 500)
        fits.append(pd.DataFrame({"side": side, "x": grid,
                                  "fitted": np.vander(grid - cutoff, p + 1, increasing=True) @ coef}))
    return RDPlot(bins=pd.concat(rows, ignore_index=True), fit=pd.concat(fits, ignore_index=True),
                  n_bins=(counts[0], counts[1]), method=method, cutoff=float(cutoff), outcome=outcome, running=running)
