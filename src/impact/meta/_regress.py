"""Meta-regression: why do effects differ across regions and programmes?

:func:`regress` fits the mixed-effects meta-regression model of metafor's ``rma(yi, vi, mods = ...)``
and returns a :class:`MetaRegressionResult` (a row per coefficient, intercept first), with the test of
the moderators, residual heterogeneity, the share of heterogeneity explained, a permutation test of the
moderators (metafor ``permutest``) and a bubble plot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from impact.errors import DataError, EstimationError, SpecError, recording_warnings
from impact.meta import _solve
from impact.meta._pool import _METHOD_NAMES, Method, _check_pm_solver, _check_units, _tau2, _validate
from impact.results import Result, effects_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["MetaRegressionResult", "PermutationTest", "regress"]

INTERCEPT = "intercept"


@dataclass(frozen=True)
class PermutationTest:
    """Permutation test of a meta-regression (metafor ``permutest``): the rows of the moderators are
    permuted against the (estimate, standard error) pairs and the model refitted each time.

    ``p_values`` per coefficient (two-sided, from |statistic|), ``q_moderators_p`` for the omnibus test;
    ``exact`` when every distinct permutation was used. As in metafor, permutations whose REML fit does
    not converge are left out; ``n_failed`` counts them."""

    terms: tuple[str, ...]
    p_values: tuple[float, ...]
    q_moderators_p: float
    n_permutations: int
    exact: bool
    seed: int | None
    n_failed: int = 0

    def tidy(self) -> pd.DataFrame:
        """A row per coefficient: term, p_value (permutation)."""
        return pd.DataFrame({"term": list(self.terms), "p_value": list(self.p_values)})


@dataclass(frozen=True, kw_only=True)
class MetaRegressionResult(Result):
    """Result of :func:`regress`: a row per coefficient (intercept first).

    Attributes (besides :class:`~impact.results.Result`)
    ----------------------------------------------------
    method, knha : the tau^2 estimator and whether Knapp-Hartung inference was used.
    tau2 : float
        Residual between-study variance (not explained by the moderators).
    q_moderators, q_moderators_df, q_moderators_p : float, tuple, float
        Omnibus test that every moderator coefficient is zero: Wald chi-square on m df, or under
        Knapp-Hartung an F statistic on (m, k - p) df (metafor's QM).
    q_residual, q_residual_df, q_residual_p : float, int, float
        Test of residual heterogeneity (metafor's QE).
    r2 : float
        Percent of the between-study variance explained, 100 (tau2_0 - tau2) / tau2_0 floored at 0,
        with tau2_0 from the model without moderators (metafor's R2); for ``"FE"`` metafor's adjusted
        R^2 of the weighted least-squares fit.
    """

    method: str
    knha: bool
    tau2: float
    q_moderators: float
    q_moderators_df: tuple[int, ...]
    q_moderators_p: float
    q_residual: float
    q_residual_df: int
    q_residual_p: float
    r2: float
    data: Mapping[str, Any]

    def permutation_test(
        self, n_permutations: int = 1000, *, exact: bool | None = None, seed: int | None = None
    ) -> PermutationTest:
        """Permutation test of the moderators (metafor ``permutest``).

        Parameters
        ----------
        n_permutations : int
            Random permutations (the observed order counts as the first, as in metafor).
        exact : bool, optional
            Use every distinct permutation of the moderator rows. Default: when there are at most
            ``n_permutations`` of them (metafor's rule).
        seed : int, optional
            Seed of the random permutations.
        """
        return _permutation_test(self, n_permutations=n_permutations, exact=exact, seed=seed)

    def bubble(self, moderator: str | None = None, *, ax: Axes | None = None) -> Axes:
        """Bubble plot: estimates against a numeric moderator (bubble area by weight) with the fitted
        line and its confidence band, other moderators held at their means. Returns the Axes."""
        return bubble_plot(self, moderator=moderator, ax=ax)

    def plot(self, ax: Axes | None = None) -> Axes:
        """The bubble plot of the first numeric moderator, else the coefficient plot."""
        if self.data["numeric"]:
            return self.bubble(ax=ax)
        return super().plot(ax=ax)

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        """Figures for reports: a bubble plot per numeric moderator."""
        return {f"Bubble plot: {m}": (lambda ax, m=m: self.bubble(m, ax=ax)) for m in self.data["numeric"]}


def _design(moderators: Any, names: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Model matrix (intercept first, categorical moderators in R's treatment coding), the coefficient
    names and the numeric moderator names."""
    if isinstance(moderators, pd.Series):
        moderators = moderators.to_frame()
    if isinstance(moderators, Mapping):
        moderators = pd.DataFrame(dict(moderators))
    if not isinstance(moderators, pd.DataFrame):
        raise DataError(
            f"moderators must be a DataFrame with one row per estimate and one column per moderator; got {type(moderators).__name__}."
        )
    k = len(names)
    if len(moderators) != k:
        raise DataError(f"moderators must have one row per estimate; got {len(moderators)} rows for {k} estimates.")
    if moderators.shape[1] == 0:
        raise DataError("moderators has no columns; for a model without moderators use impact.meta.pool.")
    columns: list[np.ndarray] = [np.ones(k)]
    terms = [INTERCEPT]
    numeric: list[str] = []
    for name in moderators.columns:
        col = moderators[name]
        missing = col.isna().to_numpy()
        if missing.any():
            raise DataError(
                f"moderator {name!r} is missing for: {', '.join(names[i] for i in np.flatnonzero(missing)[:10])}. "
                "Fill it in or leave those studies out (they are not dropped silently)."
            )
        if pd.api.types.is_bool_dtype(col) or (pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype)):
            values = col.to_numpy(dtype=float)
            bad = ~np.isfinite(values)
            if bad.any():
                raise DataError(
                    f"moderator {name!r} is infinite for: {', '.join(names[i] for i in np.flatnonzero(bad)[:10])}."
                )
            if np.ptp(values) == 0:
                raise DataError(
                    f"moderator {name!r} is the same ({values[0]:g}) for every study, so its effect cannot be "
                    "estimated; drop it."
                )
            columns.append(values)
            terms.append(str(name))
            numeric.append(str(name))
            continue
        if isinstance(col.dtype, pd.CategoricalDtype):
            levels = [str(c) for c in col.cat.categories if (col == c).any()]
        else:
            levels = sorted({str(v) for v in col})  # R's factor(): sorted levels, the first is the reference
        text = col.astype(str).to_numpy()
        if len(levels) < 2:
            raise DataError(
                f"moderator {name!r} takes one value ({levels[0]!r}) for every study, so its effect cannot be "
                "estimated; drop it."
            )
        for level in levels[1:]:
            columns.append((text == level).astype(float))
            terms.append(f"{name}={level}")
    X = np.column_stack(columns)
    p = X.shape[1]
    if k <= p:
        raise DataError(
            f"the meta-regression has {p} coefficients ({', '.join(terms)}) but only {k} estimates; it needs "
            "more estimates than coefficients. Use fewer moderators (or fewer categories), or add studies."
        )
    rank = np.linalg.matrix_rank(X)
    if rank < p:
        raise DataError(
            f"the moderators are collinear (model matrix rank {rank} < {p} coefficients: {', '.join(terms)}); "
            "drop a moderator that another determines."
        )
    return X, terms, numeric


def _fit_regression(
    y: np.ndarray, v: np.ndarray, X: np.ndarray, method: str, knha: bool, pm_solver: str, settings: dict[str, Any]
) -> dict[str, Any]:
    k, p = X.shape
    tau2 = _tau2(method, y, v, X, pm_solver, settings)
    w = 1.0 / (v + tau2)
    xtwx_inv = np.linalg.inv(X.T @ (w[:, None] * X))
    beta = xtwx_inv @ (X.T @ (w * y))
    vb = xtwx_inv
    s2w = 1.0
    if knha:
        rss = float(w @ (y - X @ beta) ** 2)
        s2w = 0.0 if rss <= np.finfo(float).eps else rss / (k - p)
        vb = s2w * vb
    return {"tau2": tau2, "beta": beta, "vb": vb, "s2w": s2w, "w": w}


def _r2_weighted_lm(y: np.ndarray, w: np.ndarray, X: np.ndarray) -> float:
    """metafor's R^2 for the fixed-effects meta-regression: the adjusted R^2 of the weighted least-squares
    fit (weights 1/v), in percent and floored at 0 (``summary(lm(yi ~ X, weights = 1/vi))$adj.r.squared``)."""
    k, p = X.shape
    if np.ptp(y) == 0:
        return 0.0
    beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
    rss = float(w @ (y - X @ beta) ** 2)
    tss = float(w @ (y - (w @ y) / w.sum()) ** 2)
    return max(0.0, 100 * (1 - (rss / tss) * (k - 1) / (k - p)))


def _q_moderators(beta: np.ndarray, vb: np.ndarray, knha: bool, k: int) -> tuple[float, tuple[int, ...], float]:
    b = beta[1:]
    m = b.size
    qm = float(b @ np.linalg.solve(vb[1:, 1:], b))
    if knha:
        return qm / m, (m, k - beta.size), float(stats.f.sf(qm / m, m, k - beta.size))
    return qm, (m,), float(stats.chi2.sf(qm, m))


def regress(
    estimates: Sequence[float] | np.ndarray | pd.Series,
    std_errors: Sequence[float] | np.ndarray | pd.Series,
    *,
    moderators: pd.DataFrame,
    method: Method = "REML",
    knha: bool = False,
    level: float = 0.95,
    labels: Sequence[Any] | None = None,
    pm_solver: _solve.PaulMandelSolver = "exact",
    units: Sequence[Any] | None = None,
) -> MetaRegressionResult:
    r"""Mixed-effects meta-regression: how the effect varies with study (region, programme)
    characteristics, as metafor's ``rma(yi, vi, mods = ~ ...)``.

    Parameters
    ----------
    estimates, std_errors : array-like of float
        One estimate and its (positive, finite) standard error per study.
    moderators : DataFrame
        One row per study (in the order of ``estimates``; the index is not used) and one column per
        moderator. Numeric and boolean columns enter as they are; text and categorical columns in R's
        treatment coding: one indicator per level except the first (sorted text, or the categories'
        order), which is the reference absorbed by the intercept. Missing or infinite values and
        moderators constant across studies are errors.
    method : {"REML", "DL", "PM", "FE"}
        Estimator of the residual between-study variance tau^2 (``"FE"``: none, fixed-effects
        meta-regression).
    knha : bool
        Knapp-Hartung inference: standard errors rescaled by the weighted residual variance, t tests with
        k - p df and an F test of the moderators (metafor ``test = "knha"``).
    level : float
        Confidence level of the coefficient intervals.
    labels : sequence, optional
        Names of the studies (used in error messages and the bubble plot).
    pm_solver : {"exact", "metafor"}
        Paule-Mandel only: solve to machine precision, or stop where metafor 3.8.1 does.
    units : sequence of str, optional
        Each estimate's unit of measurement; a mix of units is an error naming the studies.

    Returns
    -------
    MetaRegressionResult
        ``tidy()`` has a row per coefficient, intercept first (``"intercept"``, then numeric moderators
        by name and categorical ones as ``"name=level"``); the headline is the first moderator
        coefficient. Attributes ``tau2``, ``q_moderators``, ``q_moderators_p``, ``q_residual``,
        ``q_residual_p``, ``r2``; ``diagnostics`` also hold ``se_tau2``, ``I2``, ``H2`` and the
        Knapp-Hartung factor.

    Notes
    -----
    The model is :math:`y_i = x_i'\beta + u_i + e_i`, :math:`u_i \sim N(0, \tau^2)`,
    :math:`e_i \sim N(0, v_i)`. With :math:`W = \mathrm{diag}(1/(v_i + \hat\tau^2))`,
    :math:`\hat\beta = (X'WX)^{-1}X'Wy` and :math:`\mathrm{Var}(\hat\beta) = (X'WX)^{-1}` (times
    :math:`s^2_w = \sum w_i (y_i - x_i'\hat\beta)^2/(k-p)` under Knapp-Hartung). tau^2: DerSimonian-
    Laird :math:`(Q_E - (k-p))/\mathrm{tr}(P)` with :math:`P = W_0 - W_0X(X'W_0X)^{-1}X'W_0`,
    :math:`W_0 = \mathrm{diag}(1/v_i)`; REML by Fisher scoring from the Hedges estimate (metafor's
    stopping rule, change < 1e-5); Paule-Mandel the root of :math:`y'P(\tau^2)y = k - p`.
    :math:`Q_M = \hat\beta_{-1}'\mathrm{Var}(\hat\beta_{-1})^{-1}\hat\beta_{-1}` (:math:`\chi^2_m`, or
    :math:`Q_M/m \sim F_{m,k-p}` under Knapp-Hartung); :math:`Q_E = y'Py \sim \chi^2_{k-p}`.
    :math:`R^2 = \max(0, 100(\hat\tau^2_0 - \hat\tau^2)/\hat\tau^2_0)`, :math:`I^2 = 100\hat\tau^2/
    (\hat\tau^2 + (k-p)/\mathrm{tr}(P))`, as metafor 3.8.1.

    References
    ----------
    Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package. Journal of
    Statistical Software, 36(3), 1-48. https://doi.org/10.18637/jss.v036.i03
    Knapp, G. & Hartung, J. (2003). Improved tests for a random effects meta-regression with a single
    covariate. Statistics in Medicine, 22(17), 2693-2710. https://doi.org/10.1002/sim.1482
    Higgins, J. P. T. & Thompson, S. G. (2004). Controlling the risk of spurious findings from
    meta-regression. Statistics in Medicine, 23(11), 1663-1682. https://doi.org/10.1002/sim.1752
    Raudenbush, S. W. (2009). Analyzing effect sizes: random-effects models. In The Handbook of
    Research Synthesis and Meta-Analysis (2nd ed.), 295-315.

    Examples
    --------
    >>> import numpy as np, impact as im
    >>> bcg = im.datasets.load("bcg")
    >>> n_t, n_c = bcg.tpos + bcg.tneg, bcg.cpos + bcg.cneg
    >>> yi = np.log((bcg.tpos / n_t) / (bcg.cpos / n_c))
    >>> se = np.sqrt(1 / bcg.tpos - 1 / n_t + 1 / bcg.cpos - 1 / n_c)
    >>> res = im.meta.regress(yi, se, moderators=bcg[["ablat"]], method="REML")
    >>> round(res.estimate, 4), round(res.r2, 2)
    (-0.0291, 75.62)
    """
    if not isinstance(knha, bool | np.bool_):
        raise SpecError(f"knha must be True or False; got {knha!r}.")
    _check_pm_solver(pm_solver)
    if labels is None and isinstance(estimates, pd.Series) and not isinstance(estimates.index, pd.RangeIndex):
        labels = [str(v) for v in estimates.index]
    y, se, names = _validate(estimates, std_errors, labels, method, level)
    _check_units(units, names)
    X, terms, numeric = _design(moderators, names)
    k, p = X.shape
    v = se**2
    settings: dict[str, Any] = {"method": method, "knha": bool(knha), "moderators": [str(c) for c in moderators.columns]}
    if method == "PM":
        settings["pm_solver"] = pm_solver
    with recording_warnings() as log:
        fit = _fit_regression(y, v, X, method, bool(knha), pm_solver, settings)
        se_beta = np.sqrt(np.diag(fit["vb"]))
        if not np.all(se_beta > 0):
            raise EstimationError(
                "the Knapp-Hartung standard errors are zero because the moderators fit the estimates exactly; "
                "use knha=False."
            )
        qm, qm_df, qm_p = _q_moderators(fit["beta"], fit["vb"], bool(knha), k)
        P0 = _solve.projection(1.0 / v[None, :], X)[0]
        qe = max(0.0, float(y @ P0 @ y))
        tau2 = float(fit["tau2"])
        vt = (k - p) / float(np.trace(P0))
        if method == "FE":
            i2 = max(0.0, 100 * (qe - (k - p)) / qe) if qe > 0 else 0.0
            h2 = qe / (k - p)
            r2 = _r2_weighted_lm(y, 1.0 / v, X)
        else:
            i2 = 100 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1
            tau2_null = _tau2(method, y, v, np.ones((k, 1)), pm_solver, {})
            r2 = 0.0 if tau2_null == 0 else max(0.0, 100 * (tau2_null - tau2) / tau2_null)
    dof = float(k - p) if knha else math.inf
    table = effects_table(terms, fit["beta"], se_beta, df=dof, level=level)
    diagnostics = {
        "k": k, "p": p, "method": method, "tau2": tau2, "se_tau2": _solve.se_tau2(method, tau2, v, X),
        "I2": i2, "H2": h2, "R2": r2, "QM": qm, "QM_df": list(qm_df), "QM_p_value": qm_p,
        "QE": qe, "QE_df": k - p, "QE_p_value": float(stats.chi2.sf(qe, k - p)), "knapp_hartung_factor": fit["s2w"],
    }
    test = f"Knapp-Hartung t with {k - p} df, F test of the moderators" if knha else "normal (z), chi-square test of the moderators"
    return MetaRegressionResult(
        design="meta_regress",
        estimand="change in the mean true effect per unit of each moderator (or against the reference category)",
        effects=table,
        headline=terms[1],
        inference=f"{_METHOD_NAMES[method]} (residual); {test}",
        n_obs=k,
        n_units=k,
        level=float(level),
        settings=settings,
        warnings=tuple(log),
        diagnostics=diagnostics,
        vcov=fit["vb"],
        method=method,
        knha=bool(knha),
        tau2=tau2,
        q_moderators=qm,
        q_moderators_df=qm_df,
        q_moderators_p=qm_p,
        q_residual=qe,
        q_residual_df=k - p,
        q_residual_p=float(stats.chi2.sf(qe, k - p)),
        r2=r2,
        data={"y": y.tolist(), "se": se.tolist(), "labels": names, "X": X.tolist(), "terms": terms,
              "numeric": numeric, "pm_solver": pm_solver},
    )


# ---------------------------------------------------------------------------------------------
# Permutation test (vectorised over permutations)
# ---------------------------------------------------------------------------------------------
def _distinct_permutations(rows: np.ndarray) -> np.ndarray:
    """Every distinct ordering of the model-matrix rows, as row indices (rows that are equal are
    interchangeable, so each distinct ordering appears once, as metafor's exact test enumerates them)."""
    _, pattern = np.unique(rows, axis=0, return_inverse=True)
    pattern = pattern.ravel()
    remaining = np.bincount(pattern).tolist()
    where = [list(np.flatnonzero(pattern == g)) for g in range(len(remaining))]
    out: list[list[int]] = []
    sequence: list[int] = []

    def extend() -> None:  # depth-first over the multiset; generates indices, estimates nothing
        if len(sequence) == pattern.size:
            used = [0] * len(remaining)
            order = []
            for g in sequence:
                order.append(where[g][used[g]])
                used[g] += 1
            out.append(order)
            return
        for g, left in enumerate(remaining):
            if left:
                remaining[g] -= 1
                sequence.append(g)
                extend()
                sequence.pop()
                remaining[g] += 1

    extend()
    return np.array(out, dtype=int)


def _count_distinct(rows: np.ndarray) -> float:
    _, counts = np.unique(rows, axis=0, return_counts=True)
    return math.factorial(rows.shape[0]) / math.prod(math.factorial(int(c)) for c in counts)


def _batched_fit(y: np.ndarray, v: np.ndarray, X: np.ndarray, method: str, knha: bool) -> tuple[np.ndarray, np.ndarray]:
    """Coefficient statistics (B, p) and QM (B,) for a batch of data sets sharing the model matrix."""
    k, p = X.shape
    failed = np.zeros(y.shape[0], dtype=bool)
    if method == "FE":
        tau2 = np.zeros(y.shape[0])
    elif method == "DL":
        tau2 = _solve.tau2_dl(y, v, X)
    elif method == "PM":
        tau2 = _solve.tau2_pm(y, v, X)
    else:
        tau2, _, converged = _solve.tau2_reml(y, v, X)
        failed = ~converged
    w = 1.0 / (v + tau2[:, None])
    xtwx_inv = np.linalg.inv(np.einsum("ki,bk,kj->bij", X, w, X))
    beta = np.einsum("bij,kj,bk,bk->bi", xtwx_inv, X, w, y)
    vb = xtwx_inv
    if knha:
        resid = y - beta @ X.T
        rss = (w * resid**2).sum(axis=1)
        s2w = np.where(rss <= np.finfo(float).eps, 0.0, rss / (k - p))
        vb = s2w[:, None, None] * vb
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = beta / np.sqrt(np.einsum("bii->bi", vb))
        b = beta[:, 1:]
        qm = np.einsum("bi,bi->b", b, np.linalg.solve(vb[:, 1:, 1:], b[:, :, None])[:, :, 0])
    if knha:
        qm = qm / (p - 1)
    qm[failed] = np.nan  # as metafor, refits whose Fisher scoring does not converge are left out
    return stat, qm


def _permutation_test(result: MetaRegressionResult, *, n_permutations: int, exact: bool | None, seed: int | None) -> PermutationTest:
    if not isinstance(n_permutations, int | np.integer) or n_permutations < 2:
        raise SpecError(f"n_permutations must be an integer of at least 2; got {n_permutations!r}.")
    data = result.data
    y, se, X = np.asarray(data["y"]), np.asarray(data["se"]), np.asarray(data["X"])
    k = y.size
    n_distinct = _count_distinct(X)
    use_exact = n_distinct <= n_permutations if exact is None else bool(exact)
    if use_exact and n_distinct > 200_000:
        raise SpecError(
            f"an exact permutation test needs {n_distinct:,.0f} refits; use exact=False with n_permutations draws."
        )
    if use_exact:
        perms = _distinct_permutations(X)
    else:
        rng = np.random.default_rng(seed)
        perms = np.argsort(rng.random((n_permutations, k)), axis=1)
        perms[0] = np.arange(k)  # the observed order counts as one permutation, as in metafor
    # permuting the moderator rows against (y, v) is the same as permuting (y, v) against the rows
    inverse = np.argsort(perms, axis=1)
    yb, vb = y[inverse], (se**2)[inverse]
    stat, qm = _batched_fit(yb, vb, X, result.method, result.knha)
    observed = result.effects["statistic"].to_numpy()
    tol = np.finfo(float).eps ** 0.5  # metafor's comptol
    ok = np.isfinite(qm)
    p_values = (np.abs(stat[ok]) >= np.abs(observed) - tol).mean(axis=0)
    qm_p = float((qm[ok] >= result.q_moderators - tol).mean())
    return PermutationTest(
        terms=tuple(result.effects["term"]),
        p_values=tuple(float(min(1.0, pv)) for pv in p_values),
        q_moderators_p=qm_p,
        n_permutations=int(ok.sum()),
        exact=use_exact,
        seed=None if use_exact else seed,
        n_failed=int((~ok).sum()),
    )


# ---------------------------------------------------------------------------------------------
# Bubble plot
# ---------------------------------------------------------------------------------------------
def bubble_plot(result: MetaRegressionResult, *, moderator: str | None = None, ax: Axes | None = None) -> Axes:
    """Estimates against a numeric moderator, bubble area proportional to the weight 1/(v + tau^2), with
    the fitted line and its confidence band (other moderators at their means, as metafor ``regplot``)."""
    from impact.report.plots import PALETTE, new_axes

    data = result.data
    numeric = data["numeric"]
    if not numeric:
        raise SpecError("a bubble plot needs a numeric moderator; this model has only categorical ones.")
    moderator = moderator or numeric[0]
    if moderator not in numeric:
        raise SpecError(f"moderator must be one of the numeric moderators {numeric}; got {moderator!r}.")
    terms = data["terms"]
    j = terms.index(moderator)
    y, se, X = np.asarray(data["y"]), np.asarray(data["se"]), np.asarray(data["X"])
    w = 1.0 / (se**2 + result.tau2)
    ax = new_axes(ax, size=(7.0, 4.5))
    ax.scatter(X[:, j], y, s=30 + 400 * w / w.max(), color=PALETTE["estimate"], alpha=0.6, edgecolor="white", zorder=3)
    grid = np.linspace(X[:, j].min(), X[:, j].max(), 100)
    at = np.tile(X.mean(axis=0), (grid.size, 1))
    at[:, j] = grid
    beta = result.effects["estimate"].to_numpy()
    cov = np.asarray(result.vcov)
    fitted = at @ beta
    half = float(stats.norm.ppf(0.5 + result.level / 2) if not result.knha else stats.t.ppf(0.5 + result.level / 2, result.q_residual_df))
    band = half * np.sqrt(np.einsum("ij,jk,ik->i", at, cov, at))
    ax.plot(grid, fitted, color="#2b2b2b")
    ax.fill_between(grid, fitted - band, fitted + band, color="#2b2b2b", alpha=0.15, linewidth=0)
    ax.axhline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
    ax.set_xlabel(moderator)
    ax.set_ylabel("Estimate")
    ax.set_title(
        f"Meta-regression on {moderator}: slope {beta[j]:.3g} (p = {result.effects['p_value'].iloc[j]:.2g}); "
        f"R\u00b2 = {result.r2:.0f}%",
        fontsize="medium",
    )
    return ax
