"""Pooling estimates across programmes and regions (meta-analysis).

One function, :func:`pool`, combines ``k`` independent estimates of the same quantity (one per region,
programme or study) given their standard errors into a pooled effect, with the equal-effect (``"FE"``)
model or the random-effects model with the between-study variance estimated by DerSimonian-Laird,
REML or Paule-Mandel, and optionally Knapp-Hartung inference. It returns a :class:`MetaResult` whose
effects table has one row per study plus the ``"pooled"`` headline, heterogeneity statistics and the
prediction interval in ``diagnostics``, and a forest plot among its figures.

Numbers follow R ``metafor::rma`` (Viechtbauer 2010) so that results can be checked against it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd
from scipy import optimize, stats

from impact.errors import DataError, EstimationError, SpecError, recording_warnings
from impact.results import Result, effects_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["MetaResult", "Method", "forest_plot", "pool"]

Method = Literal["REML", "DL", "PM", "FE"]
_METHODS: tuple[str, ...] = get_args(Method)
_METHOD_NAMES = {
    "FE": "equal (fixed) effect, inverse-variance weights",
    "DL": "random effects, DerSimonian-Laird tau^2",
    "REML": "random effects, restricted maximum likelihood tau^2",
    "PM": "random effects, Paule-Mandel tau^2",
}
POOLED_TERM = "pooled"


@dataclass(frozen=True, kw_only=True)
class MetaResult(Result):
    """Result of :func:`pool`: study rows plus the ``"pooled"`` headline.

    Attributes (besides :class:`~impact.results.Result`)
    ----------------------------------------------------
    method : str
        ``"FE"``, ``"DL"``, ``"REML"`` or ``"PM"``.
    knha : bool
        Whether Knapp-Hartung inference (t with k - 1 df, rescaled SE) was used.
    tau2 : float
        Between-study variance (0 for ``"FE"``).
    prediction_interval : tuple of float
        Interval expected to contain the true effect of a new study (region, programme) at ``level``.
    """

    method: str
    knha: bool
    tau2: float
    prediction_interval: tuple[float, float]

    def studies(self) -> pd.DataFrame:
        """The per-study rows of the effects table (without the pooled row)."""
        table = self.tidy()
        return table.loc[table["term"] != POOLED_TERM].reset_index(drop=True)

    def forest(self, ax: Axes | None = None) -> Axes:
        """Forest plot: each study with its interval and weight, the pooled effect and its prediction
        interval. Returns the Axes."""
        return forest_plot(self, ax=ax)

    def plot(self, ax: Axes | None = None) -> Axes:
        """The forest plot (the natural coefficient plot of a meta-analysis)."""
        return forest_plot(self, ax=ax)

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        """Figures for reports: the forest plot."""
        return {"Forest plot: estimates and pooled effect": self.forest}


def _as_vector(values: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be numbers; could not convert them ({exc}).") from None
    if array.ndim != 1:
        raise DataError(f"{name} must be one-dimensional (one value per study); got shape {array.shape}.")
    return array


def _validate(
    estimates: Any, std_errors: Any, labels: Sequence[Any] | None, method: str, level: float
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if method not in _METHODS:
        raise SpecError(f"method must be one of {', '.join(repr(m) for m in _METHODS)}; got {method!r}.")
    if not (isinstance(level, float | int) and 0 < level < 1):
        raise SpecError(f"level must be between 0 and 1 (e.g. 0.95); got {level!r}.")
    y = _as_vector(estimates, "estimates")
    se = _as_vector(std_errors, "std_errors")
    if y.shape != se.shape:
        raise DataError(
            f"estimates and std_errors must have the same length; got {y.size} estimates and {se.size} standard errors."
        )
    if labels is None:
        names = [f"study {i + 1}" for i in range(y.size)]
    else:
        names = [str(v) for v in labels]
        if len(names) != y.size:
            raise DataError(f"labels must have one entry per estimate; got {len(names)} labels for {y.size} estimates.")
        duplicated = sorted(n for n, count in Counter(names).items() if count > 1)
        if duplicated:
            raise DataError(f"labels must be unique; repeated: {duplicated}.")
        if POOLED_TERM in names:
            raise DataError(f"{POOLED_TERM!r} is reserved for the pooled row; rename that label.")

    def where(mask: np.ndarray) -> str:
        return ", ".join(names[i] for i in np.flatnonzero(mask)[:10])

    bad = ~np.isfinite(y)
    if bad.any():
        raise DataError(f"estimates must be finite; missing or infinite for: {where(bad)}. Drop those studies.")
    bad = ~np.isfinite(se)
    if bad.any():
        raise DataError(f"std_errors must be finite; missing or infinite for: {where(bad)}. Drop those studies.")
    bad = se <= 0
    if bad.any():
        raise DataError(
            f"std_errors must be positive; zero or negative for: {where(bad)}. "
            "A study without sampling uncertainty cannot be weighted by inverse variance."
        )
    if y.size < 2:
        raise DataError(f"pooling needs at least 2 estimates; got {y.size}.")
    return y, se, names


def _fixed(y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Inverse-variance weighted mean and its variance for weights ``w``."""
    total = w.sum()
    return float(w @ y / total), float(1.0 / total)


def _q_statistic(y: np.ndarray, w: np.ndarray) -> float:
    mu, _ = _fixed(y, w)
    return float(w @ (y - mu) ** 2)


def _trace_terms(w: np.ndarray) -> tuple[float, float]:
    """tr(P) and tr(P P) for P = W - w w' / sum(w) (intercept-only model), without forming P."""
    s1, s2, s3 = w.sum(), (w**2).sum(), (w**3).sum()
    return float(s1 - s2 / s1), float(s2 - 2 * s3 / s1 + s2**2 / s1**2)


def _tau2_dl(y: np.ndarray, v: np.ndarray) -> float:
    w = 1.0 / v
    q = _q_statistic(y, w)
    tr_p, _ = _trace_terms(w)
    return max(0.0, (q - (y.size - 1)) / tr_p)


# Numerical settings of metafor's rma.uni (its `control` defaults), used so that results agree with it:
# Fisher scoring for REML stops when tau^2 changes by less than 1e-5; the Paule-Mandel root is found by
# Brent's method with tolerance eps^(1/4) on [0, max(100, 10 mad(y)^2)].
_REML_THRESHOLD = 1e-5
_REML_MAX_ITER = 100
_PM_TOL = np.finfo(float).eps ** 0.25


def _tau2_he(y: np.ndarray, v: np.ndarray) -> float:
    """Hedges' (Hedges-Olkin) moment estimator, metafor's starting value for REML."""
    k = y.size
    rss = float(((y - y.mean()) ** 2).sum())
    return max(0.0, (rss - v.sum() * (k - 1) / k) / (k - 1))


def _tau2_reml(y: np.ndarray, v: np.ndarray) -> tuple[float, int, bool]:
    """Fisher scoring on the REML likelihood, started at the Hedges estimate and kept >= 0 by
    step-halving (metafor's algorithm). Returns tau^2, the number of iterations and convergence."""
    tau2 = _tau2_he(y, v)
    for iteration in range(1, _REML_MAX_ITER + 1):
        w = 1.0 / (v + tau2)
        mu, _ = _fixed(y, w)
        tr_p, tr_pp = _trace_terms(w)
        # For P = W - w w'/sum(w): P y = w * (y - mu), so y'PPy = sum(w^2 (y - mu)^2).
        step = (float((w**2) @ (y - mu) ** 2) - tr_p) / tr_pp
        while tau2 + step < 0:
            step /= 2
        new = tau2 + step
        if abs(new - tau2) <= _REML_THRESHOLD:
            return new, iteration, True
        tau2 = new
    return tau2, _REML_MAX_ITER, False


def _reml_loglik(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    """Restricted log-likelihood of the intercept-only random-effects model (up to a constant)."""
    w = 1.0 / (v + tau2)
    mu, _ = _fixed(y, w)
    return -0.5 * float(np.log(v + tau2).sum() + math.log(w.sum()) + w @ (y - mu) ** 2)


def _tau2_reml_search(y: np.ndarray, v: np.ndarray) -> float:
    """Maximise the restricted likelihood over [0, upper] by bounded Brent search (used when Fisher
    scoring oscillates, where metafor stops with an error)."""
    upper = max(100.0, 10 * float(np.var(y, ddof=1)))
    found = optimize.minimize_scalar(
        lambda t: -_reml_loglik(t, y, v), bounds=(0.0, upper), method="bounded", options={"xatol": 1e-12}
    )
    best = float(found.x)
    return 0.0 if _reml_loglik(0.0, y, v) >= _reml_loglik(best, y, v) else best


def _tau2_pm(y: np.ndarray, v: np.ndarray) -> float:
    """Paule-Mandel: the tau^2 at which the generalised Q equals its expectation k - 1."""
    k = y.size

    def excess(tau2: float) -> float:
        return _q_statistic(y, 1.0 / (v + tau2)) - (k - 1)

    if excess(0.0) < 0:
        return 0.0
    mad = 1.4826 * float(np.median(np.abs(y - np.median(y))))
    upper = max(100.0, 10 * mad**2)
    # metafor stops with an error when the root lies beyond its bracket; the excess falls to -(k - 1)
    # as tau^2 grows, so a root always exists: widen the bracket instead (same root where metafor has one).
    for _ in range(200):
        if excess(upper) <= 0:
            break
        upper *= 2
    else:
        raise EstimationError(
            f"the Paule-Mandel tau^2 exceeds {upper:.3g} (the estimates differ far more than their standard "
            "errors allow); check their scale, or use method='DL'."
        )
    # brentq's tolerance (xtol + rtol |x|) / 2 equals R zeroin's tol / 2 + 2 eps |x| with these arguments.
    return float(optimize.brentq(excess, 0.0, upper, xtol=_PM_TOL, rtol=4 * np.finfo(float).eps, maxiter=100))


def _se_tau2(method: str, tau2: float, v: np.ndarray, k: int) -> float | None:
    """Standard error of tau^2 as metafor reports it (none for the equal-effect model).

    DL: delta-method SE of the moment estimator, sqrt(Var(Q)) / tr(P) with P at the equal-effect
    weights. REML: sqrt(2 / tr(PP)), the inverse REML information at the estimate.
    PM: sqrt(2 k^2 / (k - 1)) / sum(w) with w = 1/(v + tau^2).
    """
    if method == "FE":
        return None
    if method == "DL":
        tr_p, tr_pp = _trace_terms(1.0 / v)
        var_q = 2 * (k - 1) + 4 * tau2 * tr_p + 2 * tau2**2 * tr_pp
        return math.sqrt(var_q) / tr_p
    if method == "REML":
        return math.sqrt(2.0 / _trace_terms(1.0 / (v + tau2))[1])
    return math.sqrt(2.0 * k**2 / (k - 1)) / float((1.0 / (v + tau2)).sum())


def pool(
    estimates: Sequence[float] | np.ndarray | pd.Series,
    std_errors: Sequence[float] | np.ndarray | pd.Series,
    *,
    method: Method = "REML",
    knha: bool = False,
    level: float = 0.95,
    labels: Sequence[Any] | None = None,
) -> MetaResult:
    r"""Pool independent estimates of one effect (across regions, programmes or studies).

    Parameters
    ----------
    estimates, std_errors : array-like of float
        One estimate and its standard error per study (region, programme). Standard errors must be
        positive and finite; at least two studies are needed.
    method : {"REML", "DL", "PM", "FE"}
        ``"FE"``: equal-effect (fixed-effect) model, inverse-variance weights. Otherwise random
        effects with tau^2 estimated by restricted maximum likelihood (``"REML"``, the default, as
        in metafor), DerSimonian-Laird (``"DL"``) or Paule-Mandel (``"PM"``).
    knha : bool
        Knapp-Hartung (Hartung-Knapp-Sidik-Jonkman) inference: the SE is rescaled by the weighted
        residual variance and tests and intervals use Student's t with k - 1 df. Recommended with few
        studies (Inthout et al. 2014). As in metafor the scaling factor is not truncated at 1.
    level : float
        Confidence level of the intervals and the prediction interval.
    labels : sequence, optional
        Unique names of the studies (``term`` of their rows); default the index of ``estimates`` when it
        is a pandas Series with a non-default index, else ``"study 1"``, ...

    Returns
    -------
    MetaResult
        ``tidy()`` has one row per study (its estimate and normal-theory interval, ``weight`` in
        percent) and the ``"pooled"`` headline row. ``diagnostics`` hold ``k``, ``tau2``,
        ``se_tau2`` (where defined), ``tau``, ``I2`` and ``H2`` (percent / ratio), ``Q``, ``Q_df``,
        ``Q_p_value``, the prediction interval and the Knapp-Hartung factor.

    Notes
    -----
    With :math:`y_i` the estimate and :math:`v_i = \mathrm{se}_i^2` of study :math:`i = 1..k`, the
    random-effects model is :math:`y_i = \mu + u_i + e_i`, :math:`u_i \sim N(0, \tau^2)`,
    :math:`e_i \sim N(0, v_i)`, and the estimand is :math:`\mu`, the mean of the true effects (the
    equal-effect model sets :math:`\tau^2 = 0`; its estimand is the common effect). With
    :math:`w_i = 1/(v_i + \hat\tau^2)`, :math:`\hat\mu = \sum w_i y_i / \sum w_i` and
    :math:`\mathrm{se}(\hat\mu) = (\sum w_i)^{-1/2}`.
    Cochran's :math:`Q = \sum (y_i - \hat\mu_{FE})^2 / v_i`, compared with :math:`\chi^2_{k-1}`.
    :math:`I^2 = 100\,\hat\tau^2 / (\hat\tau^2 + s^2)` and :math:`H^2 = (\hat\tau^2 + s^2)/s^2` with the
    typical within-study variance :math:`s^2 = (k-1)\sum v_i^{-1} / ((\sum v_i^{-1})^2 - \sum v_i^{-2})`;
    for ``"FE"`` they are computed from Q: :math:`I^2 = 100 (Q - (k-1))/Q` (floored at 0),
    :math:`H^2 = Q/(k-1)`, as in metafor.
    Knapp-Hartung: :math:`\mathrm{se}_{KH} = \mathrm{se}\,\sqrt{\sum w_i (y_i - \hat\mu)^2 / (k-1)}`,
    t with :math:`k-1` df. Prediction interval: :math:`\hat\mu \pm q \sqrt{\hat\tau^2 + \mathrm{se}^2}`
    with q the normal (or, with Knapp-Hartung, :math:`t_{k-1}`) quantile; for ``"FE"`` it equals the
    confidence interval.

    Numerically, tau^2 is found as metafor does by default (so that results agree with it to machine
    precision): REML by Fisher scoring from the Hedges estimate until tau^2 changes by less than 1e-5
    (if it oscillates, where metafor stops with an error, the restricted likelihood is maximised by a
    bounded search instead); Paule-Mandel by Brent's root finder with tolerance eps^(1/4).

    References
    ----------
    DerSimonian, R. & Laird, N. (1986). Meta-analysis in clinical trials. Controlled Clinical Trials,
    7(3), 177-188. https://doi.org/10.1016/0197-2456(86)90046-2
    Paule, R. C. & Mandel, J. (1982). Consensus values and weighting factors. Journal of Research of
    the National Bureau of Standards, 87(5), 377-385. https://doi.org/10.6028/jres.087.022
    Knapp, G. & Hartung, J. (2003). Improved tests for a random effects meta-regression with a single
    covariate. Statistics in Medicine, 22(17), 2693-2710. https://doi.org/10.1002/sim.1482
    Higgins, J. P. T. & Thompson, S. G. (2002). Quantifying heterogeneity in a meta-analysis.
    Statistics in Medicine, 21(11), 1539-1558. https://doi.org/10.1002/sim.1186
    Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package. Journal of
    Statistical Software, 36(3), 1-48. https://doi.org/10.18637/jss.v036.i03
    IntHout, J., Ioannidis, J. P. A. & Borm, G. F. (2014). The Hartung-Knapp-Sidik-Jonkman method for
    random effects meta-analysis is straightforward and considerably outperforms the standard
    DerSimonian-Laird method. BMC Medical Research Methodology, 14, 25.
    https://doi.org/10.1186/1471-2288-14-25

    Examples
    --------
    >>> import numpy as np, impact as im
    >>> bcg = im.datasets.load("bcg")
    >>> risk_t = bcg.tpos / (bcg.tpos + bcg.tneg); risk_c = bcg.cpos / (bcg.cpos + bcg.cneg)
    >>> yi = np.log(risk_t / risk_c)
    >>> se = np.sqrt(1 / bcg.tpos - 1 / (bcg.tpos + bcg.tneg) + 1 / bcg.cpos - 1 / (bcg.cpos + bcg.cneg))
    >>> res = im.meta.pool(yi, se, method="REML", knha=True, labels=bcg.author + " " + bcg.year.astype(str))
    >>> round(res.estimate, 4)
    -0.7145
    """
    if not isinstance(knha, bool | np.bool_):
        raise SpecError(f"knha must be True or False; got {knha!r}.")
    if labels is None and isinstance(estimates, pd.Series) and not isinstance(estimates.index, pd.RangeIndex):
        labels = [str(v) for v in estimates.index]
    y, se, names = _validate(estimates, std_errors, labels, method, level)
    k = y.size
    v = se**2
    with recording_warnings() as log:
        q = _q_statistic(y, 1.0 / v)
        q_df = k - 1
        settings: dict[str, Any] = {"method": method, "knha": bool(knha)}
        if method == "FE":
            tau2 = 0.0
        elif method == "DL":
            tau2 = _tau2_dl(y, v)
        elif method == "PM":
            tau2 = _tau2_pm(y, v)
        else:
            tau2, iterations, converged = _tau2_reml(y, v)
            settings["reml_iterations"] = iterations
            if not converged:
                tau2 = _tau2_reml_search(y, v)
                settings["reml_algorithm"] = (
                    f"Fisher scoring did not converge in {iterations} iterations; restricted likelihood "
                    "maximised by a bounded search instead"
                )
        w = 1.0 / (v + tau2)
        mu, var_mu = _fixed(y, w)
        se_mu = math.sqrt(var_mu)
        scale = float(w @ (y - mu) ** 2) / (k - 1)  # Knapp-Hartung factor s2w
        if knha:
            se_mu *= math.sqrt(scale)
            dof = float(k - 1)
            crit = float(stats.t.ppf(0.5 + level / 2, dof))
        else:
            dof = math.inf
            crit = float(stats.norm.ppf(0.5 + level / 2))
        if not se_mu > 0:
            raise EstimationError(
                "the Knapp-Hartung standard error is zero because all estimates are identical; "
                "use knha=False."
            )
        inv_v = 1.0 / v
        s2_typical = (k - 1) * inv_v.sum() / (inv_v.sum() ** 2 - (inv_v**2).sum())
        if method == "FE":
            i2 = max(0.0, 100.0 * (q - q_df) / q) if q > 0 else 0.0
            h2 = q / q_df
            prediction = (mu - crit * se_mu, mu + crit * se_mu)
        else:
            i2 = 100.0 * tau2 / (tau2 + s2_typical)
            h2 = (tau2 + s2_typical) / s2_typical
            half = crit * math.sqrt(tau2 + se_mu**2)
            prediction = (mu - half, mu + half)
        se_tau2 = _se_tau2(method, tau2, v, k)
        if k < 5 and method != "FE" and not knha:
            settings["note"] = "fewer than 5 studies: consider knha=True"

    weights = 100 * w / w.sum()
    table = effects_table(
        [*names, POOLED_TERM],
        np.append(y, mu),
        np.append(se, se_mu),
        df=np.append(np.full(k, math.inf), dof),
        level=level,
        weight=[*weights.tolist(), 100.0],
    )
    diagnostics = {
        "k": k,
        "method": method,
        "tau2": tau2,
        "se_tau2": se_tau2,
        "tau": math.sqrt(tau2),
        "I2": i2,
        "H2": h2,
        "Q": q,
        "Q_df": q_df,
        "Q_p_value": float(stats.chi2.sf(q, q_df)),
        "prediction_interval": {"low": prediction[0], "high": prediction[1], "level": level},
        "knapp_hartung_factor": scale,
    }
    test = f"Knapp-Hartung t with {k - 1} df" if knha else "normal (z)"
    settings["assumption"] = (
        "Studies estimate one common effect (equal-effect model)."
        if method == "FE"
        else "True effects vary across studies around a mean, normally with variance tau^2, independently of the sampling errors."
    )
    return MetaResult(
        design="meta_pool",
        estimand="common effect" if method == "FE" else "mean of the true effects",
        effects=table,
        headline=POOLED_TERM,
        inference=f"{_METHOD_NAMES[method]}; {test} tests and intervals",
        n_obs=k,
        n_units=k,
        level=float(level),
        settings=settings,
        warnings=tuple(log),
        diagnostics=diagnostics,
        method=method,
        knha=bool(knha),
        tau2=float(tau2),
        prediction_interval=(float(prediction[0]), float(prediction[1])),
    )


def forest_plot(result: MetaResult, *, ax: Axes | None = None, title: str = "") -> Axes:
    """Forest plot of a :class:`MetaResult`: studies (marker size by weight) with their intervals,
    the pooled effect as a diamond over its confidence interval and a bar for the prediction interval.
    Returns the Axes."""
    from impact.report.plots import PALETTE, new_axes

    studies = result.studies()
    k = len(studies)
    ax = new_axes(ax, size=(8.0, max(3.6, 0.35 * (k + 5))))
    y = np.arange(k, 0, -1) + 1.0
    ax.hlines(y, studies["conf_low"], studies["conf_high"], color=PALETTE["estimate"], linewidth=1.5)
    sizes = 20 + 160 * studies["weight"].to_numpy() / max(studies["weight"].max(), 1e-12)
    ax.scatter(studies["estimate"], y, s=sizes, marker="s", color=PALETTE["estimate"], zorder=3)
    low, high = result.conf_int()
    mid = result.estimate
    ax.fill([low, mid, high, mid], [0, 0.3, 0, -0.3], color="#2b2b2b", zorder=3)
    ax.axvline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
    ax.axvline(mid, color="#2b2b2b", linestyle=":", linewidth=1)
    labels = [f"{t}  ({wt:.1f}%)" for t, wt in zip(studies["term"], studies["weight"], strict=True)]
    ticks = [*y, 0.0]
    labels.append(f"Pooled ({result.method}{', Knapp-Hartung' if result.knha else ''})")
    if result.method != "FE":
        p_low, p_high = result.prediction_interval
        ax.hlines(-1.0, p_low, p_high, color="#7f7f7f", linewidth=4)
        ticks.append(-1.0)
        labels.append(f"{result.level:.0%} prediction interval")
    ax.set_yticks(ticks, labels)
    ax.set_ylim(-1.7, k + 1.8)
    ax.set_xlabel(f"Estimate with {result.level:.0%} confidence interval (weights in brackets)")
    d = result.diagnostics
    ax.set_title(
        title
        or f"Pooled {mid:.3g} [{low:.3g}, {high:.3g}]\ntau\u00b2 = {d['tau2']:.3g}, I\u00b2 = {d['I2']:.0f}%, "
        f"Q = {d['Q']:.3g} (p = {d['Q_p_value']:.2g})",
        fontsize="medium",
    )
    ax.grid(axis="y", visible=False)
    return ax
