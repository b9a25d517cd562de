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

from impact.errors import DataError, EstimationError, FewClustersWarning, SpecError, recording_warnings, warn
from impact.meta import _solve
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
        return table.loc[table["row"] == "study"].reset_index(drop=True)

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


def _check_units(units: Sequence[Any] | None, names: list[str]) -> str | None:
    """The one unit of measurement of all studies, or a DataError naming the studies in another unit."""
    if units is None:
        return None
    values = [None if u is None or (isinstance(u, float) and math.isnan(u)) else str(u) for u in units]
    if len(values) != len(names):
        raise DataError(f"units must have one entry per estimate; got {len(values)} for {len(names)} estimates.")
    known = Counter(v for v in values if v is not None)
    if not known:
        return None
    if len(known) > 1:
        common = known.most_common(1)[0][0]
        other = ", ".join(f"{n} ({v})" for n, v in zip(names, values, strict=True) if v is not None and v != common)
        raise DataError(
            f"the estimates are in a mix of units: most in {common!r}, but {other}. Estimates in different units "
            "cannot be pooled; convert them to one unit (or a standardised effect) or pool each unit separately."
        )
    return next(iter(known))


def _fixed(y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Inverse-variance weighted mean and its variance for weights ``w``."""
    total = w.sum()
    return float(w @ y / total), float(1.0 / total)


def _q_statistic(y: np.ndarray, w: np.ndarray) -> float:
    mu, _ = _fixed(y, w)
    return float(w @ (y - mu) ** 2)


def _tau2(method: str, y: np.ndarray, v: np.ndarray, X: np.ndarray, pm_solver: str, settings: dict[str, Any]) -> float:
    """tau^2 of one data set by ``method`` (see :mod:`impact.meta._solve`); REML falls back to a bounded
    search of the restricted likelihood where Fisher scoring oscillates (metafor stops with an error)."""
    yb, vb = y[None, :], v[None, :]
    if method == "FE":
        return 0.0
    if method == "DL":
        return float(_solve.tau2_dl(yb, vb, X)[0])
    if method == "PM":
        return float(_solve.tau2_pm(yb, vb, X, solver=pm_solver)[0])
    tau2, iterations, converged = _solve.tau2_reml(yb, vb, X)
    settings["reml_iterations"] = int(iterations[0])
    upper = max(100.0, 10 * float(np.var(y, ddof=1)), 100 * float(v.max()))
    found = optimize.minimize_scalar(
        lambda t: -_solve.reml_loglik(t, y, v, X), bounds=(0.0, upper), method="bounded", options={"xatol": 1e-12}
    )
    best = float(found.x)
    best = 0.0 if _solve.reml_loglik(0.0, y, v, X) >= _solve.reml_loglik(best, y, v, X) else best
    if converged[0]:
        # metafor's absolute stopping rule (tau^2 changes by < 1e-5) can stop at the starting value when
        # the sampling variances are small (standard errors near 0.02: one step, tau^2 = 7.2e-6 where the
        # restricted likelihood peaks at 0.0131, as it does for the same data in larger units). Keep
        # metafor's value unless the likelihood is clearly higher elsewhere (differences in the
        # log-likelihood are unit-free; where Fisher scoring has converged the gain is below 1e-8).
        gain = _solve.reml_loglik(best, y, v, X) - _solve.reml_loglik(float(tau2[0]), y, v, X)
        if gain <= REML_GAIN_TOLERANCE:
            return float(tau2[0])
        settings["reml_algorithm"] = (
            f"Fisher scoring stopped after {int(iterations[0])} iteration(s) at tau^2 = {float(tau2[0]):.3g} by metafor's "
            f"absolute rule, short of the restricted-likelihood maximum (log-likelihood {gain:.2g} higher); "
            "maximised by a bounded search instead"
        )
        return best
    settings["reml_algorithm"] = (
        f"Fisher scoring did not converge in {int(iterations[0])} iterations; restricted likelihood "
        "maximised by a bounded search instead"
    )
    return best


REML_GAIN_TOLERANCE = 1e-6  # restricted log-likelihood gain above which metafor's stopping point is not kept


def _check_pm_solver(pm_solver: Any) -> None:
    if pm_solver not in get_args(_solve.PaulMandelSolver):
        raise SpecError(f"pm_solver must be one of 'exact', 'metafor'; got {pm_solver!r}.")


def pool(
    estimates: Sequence[float] | np.ndarray | pd.Series,
    std_errors: Sequence[float] | np.ndarray | pd.Series,
    *,
    method: Method = "REML",
    knha: bool = False,
    level: float = 0.95,
    labels: Sequence[Any] | None = None,
    by: Sequence[Any] | pd.Series | None = None,
    study_df: Sequence[float] | np.ndarray | None = None,
    study_conf_int: tuple[Sequence[float], Sequence[float]] | None = None,
    pm_solver: _solve.PaulMandelSolver = "exact",
    units: Sequence[Any] | None = None,
    cluster: Sequence[Any] | None = None,
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
    by : sequence, optional
        Subgroup analysis: one group label per study (e.g. the intervention type or the region). Each
        subgroup is pooled on its own (its own tau^2, as metafor's ``rma(..., subset = group == g)``),
        giving a ``"subgroup: NAME"`` row each, and the test of differences between subgroups is
        Cochran's Q over the subgroup estimates with inverse-variance weights (chi-square with
        G - 1 df; metafor ``rma(estimates, sei = ses, method = "FE")$QE``) in
        ``diagnostics["between_groups"]``. The ``"pooled"`` headline still pools every study.
        A random-effects meta-regression with the group as a categorical moderator and one common
        tau^2 is :func:`impact.meta.regress`.
    study_df, study_conf_int : optional
        Each study's degrees of freedom (``inf`` for a normal reference) and its own confidence
        interval ``(lows, highs)`` as its report shows it (e.g. CR2 with Satterthwaite df, a bootstrap
        or permutation interval), so that the study rows and the forest plot agree with the reports.
        They change neither the weights nor the pooled estimate (which use the standard errors).
    pm_solver : {"exact", "metafor"}
        Paule-Mandel only: ``"exact"`` (default) solves for tau^2 to machine precision; ``"metafor"``
        stops where metafor 3.8.1 does (R's uniroot with tolerance eps^(1/4)), for exact reproduction.
    units : sequence of str, optional
        Each estimate's unit of measurement (e.g. the indicator's unit); a mix of units is an error
        naming the studies, since such estimates cannot be pooled.
    cluster : sequence, optional
        One label per study for estimates that are not independent: e.g. the region estimates of one
        programme evaluation, which share its comparison regions and years. The weights and the pooled
        estimate stay those of the model; its standard error becomes the cluster-robust CR2 variance
        (working model: the random-effects variances) with a Satterthwaite t reference (Tipton 2015),
        as ``clubSandwich::coef_test(rma_fit, vcov = "CR2", cluster = ...)``. This replaces the
        Knapp-Hartung or normal inference of the pooled row. Needs at least two clusters; with
        Satterthwaite df below 4 the test is unreliable (Tipton 2015) and a
        ``FewClustersWarning`` says so.

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

    Numerically, REML tau^2 is found as metafor does by default: Fisher scoring from the Hedges
    estimate until tau^2 changes by less than 1e-5 (if it oscillates, where metafor stops with an error,
    the restricted likelihood is maximised by a bounded search instead). The Paule-Mandel tau^2 is the
    exact root of the generalised Q equation (to machine precision), or with ``pm_solver="metafor"``
    metafor's approximation.

    With two studies the prediction interval says nothing useful (tau^2 rests on one degree of
    freedom); ``diagnostics["prediction_interval"]["informative"]`` is then False, with a note.

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
    _check_pm_solver(pm_solver)
    if labels is None and isinstance(estimates, pd.Series) and not isinstance(estimates.index, pd.RangeIndex):
        labels = [str(v) for v in estimates.index]
    y, se, names = _validate(estimates, std_errors, labels, method, level)
    unit = _check_units(units, names)
    k = y.size
    dof_studies, intervals = _study_inference(y, se, study_df, study_conf_int, names, level)
    groups = _groups(by, names)
    clusters = _cluster_codes(cluster, names)
    with recording_warnings() as log:
        fit = _fit(y, se, method=method, knha=bool(knha), level=level, pm_solver=pm_solver)
        if clusters is not None:
            _cluster_robust(fit, y, clusters, level)
        subgroups = [] if groups is None else _subgroups(y, se, groups, method, bool(knha), level, pm_solver, dof_studies, intervals)
    settings: dict[str, Any] = {"method": method, "knha": bool(knha), **fit["settings"]}
    if method == "PM":
        settings["pm_solver"] = pm_solver
    if unit is not None:
        settings["unit"] = unit
    terms = [*names]
    estimates_col, ses, dfs = list(y), list(se), list(dof_studies)
    lows, highs = list(intervals[0]), list(intervals[1])
    weights = (100 * fit["w"] / fit["w"].sum()).tolist()
    kinds = ["study"] * k
    group_col: list[Any] = [None] * k if groups is None else list(groups)
    for sub in subgroups:
        terms.append(f"subgroup: {sub['group']}")
        estimates_col.append(sub["estimate"])
        ses.append(sub["std_error"])
        dfs.append(sub["df"])
        lows.append(sub["conf_low"])
        highs.append(sub["conf_high"])
        weights.append(100.0 * sub["k"] / k)
        kinds.append("subgroup")
        group_col.append(sub["group"])
    crit = fit["crit"]
    terms.append(POOLED_TERM)
    estimates_col.append(fit["mu"])
    ses.append(fit["se_mu"])
    dfs.append(fit["dof"])
    lows.append(fit["mu"] - crit * fit["se_mu"])
    highs.append(fit["mu"] + crit * fit["se_mu"])
    weights.append(100.0)
    kinds.append("pooled")
    group_col.append(None)
    extra: dict[str, Any] = {"weight": weights, "row": kinds}
    if groups is not None:
        extra["subgroup"] = group_col
    table = effects_table(terms, estimates_col, ses, df=dfs, level=level, conf_low=lows, conf_high=highs, **extra)
    diagnostics = dict(fit["diagnostics"])
    if groups is not None:
        diagnostics["subgroups"] = subgroups
        diagnostics["between_groups"] = _between_groups(subgroups)
    test = f"Knapp-Hartung t with {k - 1} df" if knha else "normal (z)"
    if clusters is not None:
        n_clusters = int(clusters.max()) + 1
        test = (f"CR2 cluster-robust (over {n_clusters} clusters of dependent estimates) Satterthwaite t with "
                f"{fit['dof']:.2f} df (Tipton 2015), in place of {test},")
        settings["cluster"] = f"{n_clusters} clusters"
    settings["assumption"] = (
        "Studies estimate one common effect (equal-effect model)."
        if method == "FE"
        else "True effects vary across studies around a mean, normally with variance tau^2, independently of the sampling errors."
    )
    if groups is not None:
        settings["by"] = "subgroups pooled separately (own tau^2); Q test of differences between subgroups"
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
        tau2=float(fit["tau2"]),
        prediction_interval=fit["prediction"],
    )


PREDICTION_NOTE_TWO = (
    "A prediction interval from two studies is not informative: tau^2 rests on a single degree of freedom."
)


def _fit(y: np.ndarray, se: np.ndarray, *, method: str, knha: bool, level: float, pm_solver: str) -> dict[str, Any]:
    """The intercept-only random-effects (or equal-effect) model of one set of studies."""
    k = y.size
    v = se**2
    X = np.ones((k, 1))
    settings: dict[str, Any] = {}
    q = _q_statistic(y, 1.0 / v)
    q_df = k - 1
    tau2 = _tau2(method, y, v, X, pm_solver, settings)
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
            "the Knapp-Hartung standard error is zero because all estimates are identical; use knha=False."
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
    if k < 5 and method != "FE" and not knha:
        settings["note"] = "fewer than 5 studies: consider knha=True"
    interval: dict[str, Any] = {"low": prediction[0], "high": prediction[1], "level": level, "informative": k > 2}
    if k == 2 and method != "FE":
        interval["note"] = PREDICTION_NOTE_TWO
    diagnostics = {
        "k": k,
        "method": method,
        "tau2": tau2,
        "se_tau2": _solve.se_tau2(method, tau2, v, X),
        "tau": math.sqrt(tau2),
        "I2": i2,
        "H2": h2,
        "Q": q,
        "Q_df": q_df,
        "Q_p_value": float(stats.chi2.sf(q, q_df)),
        "prediction_interval": interval,
        "knapp_hartung_factor": scale,
    }
    return {
        "mu": mu, "se_mu": se_mu, "dof": dof, "crit": crit, "tau2": float(tau2), "w": w, "settings": settings,
        "diagnostics": diagnostics, "prediction": (float(prediction[0]), float(prediction[1])),
    }


def _cluster_codes(cluster: Sequence[Any] | None, names: list[str]) -> np.ndarray | None:
    """Integer codes 0..G-1 of the studies' clusters (in order of first appearance), checked."""
    if cluster is None:
        return None
    labels = list(cluster)
    if len(labels) != len(names):
        raise DataError(f"cluster must have one label per estimate; got {len(labels)} labels for {len(names)} estimates.")
    missing = [n for n, c in zip(names, labels, strict=True) if c is None or (isinstance(c, float) and math.isnan(c))]
    if missing:
        raise DataError(f"cluster labels are missing for: {', '.join(missing[:10])}. Give every estimate a cluster "
                        "(an estimate that shares nothing with the others is a cluster of its own).")
    codes = pd.factorize(pd.Series([str(c) for c in labels]), sort=False)[0]
    if codes.max() < 1:
        raise DataError(f"all {len(names)} estimates are in one cluster ({labels[0]!r}): a cluster-robust pooled "
                        "interval needs at least two independent clusters. These estimates come from one source; "
                        "report that source's own estimate instead of pooling its parts.")
    return codes


def _cluster_robust(fit: dict[str, Any], y: np.ndarray, clusters: np.ndarray, level: float) -> None:
    """Replace the pooled row's SE, df and critical value in ``fit`` by CR2 with Satterthwaite df.

    Working model Theta = diag(v_i + tau^2) = W^{-1} (inverse-variance weights); with C_j = Theta_j^{1/2},
    A_j = C_j (C_j (I - H)_jj Theta_j C_j)^{-1/2} C_j, V = M^2 sum_j (w_j' A_j e_j)^2, M = 1/sum(w), and
    df = (sum_j p_jj)^2 / sum_jk p_jk^2 with p_jk = g_j' Theta g_k, g_j = M (I - H)_j' A_j w_j
    (Pustejovsky & Tipton 2018, eqs. 5 and 9; clubSandwich's CR2 with inverse_var = TRUE)."""
    w = np.asarray(fit["w"], dtype=float)
    k, total = w.size, float(w.sum())
    e = y - fit["mu"]
    n_clusters = int(clusters.max()) + 1
    g = np.zeros((n_clusters, k))
    meat = 0.0
    for j in range(n_clusters):  # one small block per cluster (programme), not per study
        idx = np.flatnonzero(clusters == j)
        wj = w[idx]
        root = np.diag(wj**-0.5)
        ih = np.eye(idx.size) - np.outer(np.ones(idx.size), wj) / total  # (I - H)_jj, H = 1 M 1' W
        values, vectors = np.linalg.eigh(root @ ih @ np.diag(1.0 / wj) @ root)
        adjust = root @ (vectors * np.clip(values, 1e-300, None) ** -0.5) @ vectors.T @ root
        aw = adjust @ wj  # A_j' w_j (A_j is symmetric)
        meat += float(aw @ e[idx]) ** 2
        rows = -np.outer(np.ones(idx.size), w) / total  # (I - H)_j, all columns
        rows[np.arange(idx.size), idx] += 1.0
        g[j] = aw @ rows / total
    p = (g / w) @ g.T
    dof = float(np.trace(p) ** 2 / (p**2).sum())
    fit["se_mu"] = math.sqrt(meat) / total
    fit["dof"] = dof
    fit["crit"] = float(stats.t.ppf(0.5 + level / 2, dof))
    # the prediction interval for a new study takes the same reference and the cluster-robust SE
    half = fit["crit"] * math.sqrt(fit["tau2"] + fit["se_mu"] ** 2)
    fit["prediction"] = (fit["mu"] - half, fit["mu"] + half)
    fit["diagnostics"]["prediction_interval"].update(low=fit["prediction"][0], high=fit["prediction"][1])
    if dof < 4:
        warn(
            FewClustersWarning,
            f"the cluster-robust pooled interval rests on {n_clusters} clusters with {dof:.1f} Satterthwaite df; below "
            "4 df its p-value and interval are unreliable (Tipton 2015). Read the pooled effect as descriptive and "
            "the evidence as coming from that many independent sources.",
        )


def _study_inference(
    y: np.ndarray, se: np.ndarray, study_df: Any, study_conf_int: Any, names: list[str], level: float
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Each study's df and interval: as given (what its report shows), else normal theory (filled in by
    effects_table when ``None``)."""
    k = y.size
    if study_df is None:
        dof = np.full(k, math.inf)
    else:
        dof = _as_vector(study_df, "study_df")
        if dof.size != k:
            raise DataError(f"study_df must have one entry per estimate; got {dof.size} for {k} estimates.")
        bad = np.isnan(dof) | (dof <= 0)
        if bad.any():
            raise DataError(
                "study_df must be positive (inf for a normal reference); invalid for: "
                + ", ".join(names[i] for i in np.flatnonzero(bad)[:10]) + "."
            )
    if study_conf_int is None:
        q = 0.5 + level / 2
        crit = np.where(np.isinf(dof), stats.norm.ppf(q), stats.t.ppf(q, np.where(np.isinf(dof), 1, dof)))
        return dof, (y - crit * se, y + crit * se)
    if not (isinstance(study_conf_int, Sequence) and len(study_conf_int) == 2):
        raise DataError("study_conf_int must be a pair (lows, highs) with one entry per estimate each.")
    low = _as_vector(study_conf_int[0], "study_conf_int lows")
    high = _as_vector(study_conf_int[1], "study_conf_int highs")
    if low.size != k or high.size != k:
        raise DataError(f"study_conf_int must hold one low and one high per estimate; got {low.size} and {high.size} for {k}.")
    # an unbounded interval (-inf or inf, e.g. a placebo-inverted interval with too few placebos) is what
    # that report shows; it is kept as it is
    bad = np.isnan(low) | np.isnan(high) | (low > y) | (high < y)
    if bad.any():
        raise DataError(
            "each study's interval must contain its estimate; not so for: "
            + ", ".join(names[i] for i in np.flatnonzero(bad)[:10]) + ". Pass the interval its report shows."
        )
    return dof, (low, high)


def _groups(by: Any, names: list[str]) -> list[str] | None:
    if by is None:
        return None
    values = list(by)
    if len(values) != len(names):
        raise DataError(f"by must have one group label per estimate; got {len(values)} labels for {len(names)} estimates.")
    missing = [names[i] for i, g in enumerate(values) if g is None or (isinstance(g, float) and math.isnan(g)) or g is pd.NA]
    if missing:
        raise DataError(f"by has no group for: {', '.join(missing[:10])}. Give every study a group, or leave them out.")
    groups = [str(g) for g in values]
    if len(set(groups)) < 2:
        raise DataError(f"a subgroup analysis needs at least two groups; every study is in {groups[0]!r}.")
    return groups


def _subgroups(
    y: np.ndarray, se: np.ndarray, groups: list[str], method: str, knha: bool, level: float, pm_solver: str,
    dof: np.ndarray, intervals: tuple[np.ndarray, np.ndarray],
) -> list[dict[str, Any]]:
    """Each subgroup pooled on its own; a subgroup of one study is that study (its own df and interval)."""
    out = []
    labels = np.asarray(groups, dtype=object)
    for group in sorted(set(groups)):
        mask = labels == group
        k_g = int(mask.sum())
        if k_g == 1:
            i = int(np.flatnonzero(mask)[0])
            out.append({"group": group, "k": 1, "estimate": float(y[i]), "std_error": float(se[i]), "df": float(dof[i]),
                        "conf_low": float(intervals[0][i]), "conf_high": float(intervals[1][i]), "tau2": None, "I2": None,
                        "note": "one study: its own estimate"})
            continue
        fit = _fit(y[mask], se[mask], method=method, knha=knha, level=level, pm_solver=pm_solver)
        out.append({"group": group, "k": k_g, "estimate": fit["mu"], "std_error": fit["se_mu"], "df": fit["dof"],
                    "conf_low": fit["mu"] - fit["crit"] * fit["se_mu"], "conf_high": fit["mu"] + fit["crit"] * fit["se_mu"],
                    "tau2": fit["tau2"], "I2": fit["diagnostics"]["I2"]})
    return out


def _between_groups(subgroups: list[dict[str, Any]]) -> dict[str, Any]:
    est = np.array([s["estimate"] for s in subgroups])
    w = 1.0 / np.array([s["std_error"] for s in subgroups]) ** 2
    q = _q_statistic(est, w)
    df = len(subgroups) - 1
    return {"Q": q, "df": df, "p_value": float(stats.chi2.sf(q, df)),
            "test": "Cochran's Q over the subgroup estimates (inverse-variance weights), chi-square with G - 1 df"}


def forest_plot(result: MetaResult, *, ax: Axes | None = None, title: str = "") -> Axes:
    """Forest plot of a :class:`MetaResult`: studies (marker size by weight) with their intervals,
    the pooled effect as a diamond over its confidence interval and a bar for the prediction interval.
    Returns the Axes."""
    from impact.report.plots import PALETTE, new_axes

    studies = result.studies()
    k = len(studies)
    ax = new_axes(ax, size=(8.0, max(3.6, 0.35 * (k + 5))))
    y = np.arange(k, 0, -1) + 1.0
    low_end, high_end = studies["conf_low"].to_numpy(dtype=float), studies["conf_high"].to_numpy(dtype=float)
    finite = np.concatenate([studies["estimate"].to_numpy(dtype=float), low_end[np.isfinite(low_end)],
                             high_end[np.isfinite(high_end)], list(result.conf_int())])
    span = float(np.ptp(finite)) or 1.0
    edge = (float(finite.min()) - 0.1 * span, float(finite.max()) + 0.1 * span)
    unbounded = ~np.isfinite(low_end) | ~np.isfinite(high_end)
    # an unbounded interval (as its report shows it) runs to the edge of the plot, with an arrow
    low_end = np.where(np.isfinite(low_end), low_end, edge[0])
    high_end = np.where(np.isfinite(high_end), high_end, edge[1])
    ax.hlines(y, low_end, high_end, color=PALETTE["estimate"], linewidth=1.5)
    for yi, lo, hi, lo_inf, hi_inf in zip(y, low_end, high_end, ~np.isfinite(studies["conf_low"].to_numpy(dtype=float)),
                                          ~np.isfinite(studies["conf_high"].to_numpy(dtype=float)), strict=True):
        if lo_inf:
            ax.plot([lo], [yi], marker="<", color=PALETTE["estimate"])
        if hi_inf:
            ax.plot([hi], [yi], marker=">", color=PALETTE["estimate"])
    sizes = 20 + 160 * studies["weight"].to_numpy() / max(studies["weight"].max(), 1e-12)
    ax.scatter(studies["estimate"], y, s=sizes, marker="s", color=PALETTE["estimate"], zorder=3)
    low, high = result.conf_int()
    mid = result.estimate
    ax.fill([low, mid, high, mid], [0, 0.3, 0, -0.3], color="#2b2b2b", zorder=3)
    ax.axvline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
    ax.axvline(mid, color="#2b2b2b", linestyle=":", linewidth=1)
    labels = [f"{t}  ({wt:.1f}%){' *' if u else ''}" for t, wt, u in zip(studies["term"], studies["weight"], unbounded, strict=True)]
    ticks = [*y, 0.0]
    reference = (f", CR2 by {result.settings['cluster']}" if result.settings.get("cluster")
                 else ", Knapp-Hartung" if result.knha else "")
    labels.append(f"Pooled ({result.method}{reference})")
    if result.method != "FE":
        p_low, p_high = result.prediction_interval
        ax.hlines(-1.0, p_low, p_high, color="#7f7f7f", linewidth=4)
        ticks.append(-1.0)
        labels.append(f"{result.level:.0%} prediction interval")
    ax.set_yticks(ticks, labels)
    ax.set_ylim(-1.7, k + 1.8)
    ax.set_xlabel(f"Estimate with {result.level:.0%} confidence interval (weights in brackets)"
                  + ("\n* interval unbounded in its report (weighted by its standard error)" if unbounded.any() else ""))
    d = result.diagnostics
    ax.set_title(
        title
        or f"Pooled {mid:.3g} [{low:.3g}, {high:.3g}]\ntau\u00b2 = {d['tau2']:.3g}, I\u00b2 = {d['I2']:.0f}%, "
        f"Q = {d['Q']:.3g} (p = {d['Q_p_value']:.2g})",
        fontsize="medium",
    )
    ax.grid(axis="y", visible=False)
    return ax
