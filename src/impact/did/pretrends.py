"""Pre-trend diagnostics shared by every event-study style result.

One joint Wald test and one plot, used by :func:`impact.did.event_study`, :func:`impact.did.sun_abraham`,
:func:`impact.did.imputation` and the dynamic aggregation of :func:`impact.did.att_gt`.

Contract with the results they read: ``result.effects`` has an ``event_time`` column (NaN on rows that
are not event-time effects, such as an overall ATT), and ``result.vcov`` is the covariance matrix of
the rows of ``result.effects`` in the same order. Reference periods (normalised to zero, with a zero
or missing standard error) are left out of the test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from impact.errors import EstimationError, SpecError
from impact.inference.vcov import wald_test

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from impact.results import Result

__all__ = ["event_time_estimates", "pretrend_plot", "pretrend_test", "pretrend_wald"]


def event_time_estimates(result: Result, *, where: str = "pretrend_test") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Event times, estimates, covariance and df of the estimated (non-reference) event-time rows.

    Returns ``(event_time, estimates, vcov, df)`` sorted by event time.
    """
    effects = result.effects
    if "event_time" not in effects.columns:
        raise SpecError(
            f"{where}: the result of {result.design!r} has no event_time column; pass an event-study result "
            "(event_study, sun_abraham, imputation, or att_gt(...).aggregate(kind='dynamic'))."
        )
    if result.vcov is None or np.shape(result.vcov) != (len(effects), len(effects)):
        raise EstimationError(
            f"{where}: the result of {result.design!r} does not carry the covariance matrix of its effects "
            f"(vcov shape {None if result.vcov is None else np.shape(result.vcov)}, {len(effects)} effects), "
            "so a joint test cannot be computed."
        )
    e = effects["event_time"].to_numpy(dtype=float)
    se = effects["std_error"].to_numpy(dtype=float)
    keep = np.isfinite(e) & np.isfinite(se) & (se > 0)
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(e[idx], kind="stable")]
    V = np.asarray(result.vcov, dtype=float)[np.ix_(idx, idx)]
    dof = effects["df"].to_numpy(dtype=float)[idx] if "df" in effects.columns else np.full(len(idx), math.inf)
    return e[idx], effects["estimate"].to_numpy(dtype=float)[idx], V, dof


def pretrend_wald(
    event_time: Sequence[float] | np.ndarray,
    estimates: Sequence[float] | np.ndarray,
    vcov: np.ndarray,
    *,
    df_denom: float = math.inf,
) -> dict[str, Any]:
    """Joint Wald test that every pre-period (event time < 0) coefficient is zero.

    Parameters
    ----------
    event_time, estimates : array-like
        Event times and coefficients; only those with negative event time are tested.
    vcov : ndarray
        Covariance of ``estimates``.
    df_denom : float
        Denominator degrees of freedom of the F statistic (e.g. G - 1 with G clusters); ``inf`` for the
        chi-squared version.

    Returns
    -------
    dict
        ``statistic`` (F = W / q), ``chi2`` (W), ``df_num`` (q), ``df_denom``, ``p_value`` and
        ``event_times`` tested.
    """
    e = np.asarray(event_time, dtype=float)
    est = np.asarray(estimates, dtype=float)
    pre = np.flatnonzero(e < 0)
    if len(pre) == 0:
        raise EstimationError(
            "pretrend_test: there are no estimated pre-treatment (negative event time) coefficients to test; "
            "widen the window of leads (the reference period itself is not tested)."
        )
    V = np.asarray(vcov, dtype=float)[np.ix_(pre, pre)]
    out = wald_test(est[pre], V, df_denom=df_denom)
    out["chi2"] = None if out["statistic"] is None else out["statistic"] * out["df_num"]
    out["event_times"] = [int(v) if float(v).is_integer() else float(v) for v in e[pre]]
    return out


def describe_wald(test: dict[str, Any]) -> str:
    """One line for a plot title: 'joint Wald F(3, 14) = 3.02, p = 0.065', or why there is no test."""
    if test.get("statistic") is None:
        return f"joint Wald test {test.get('note', 'not computable')}"[:110]
    if test.get("df_denom") is None:  # a randomisation test: no reference distribution to name
        n = test.get("n_assignments")
        how = f" over {int(n):,} assignments" if test.get("exact") and n else ""
        return f"joint randomisation test{how}, p = {test['p_value']:.3f}"
    if test.get("test") == "HTZ":
        return f"joint CR2 Wald (HTZ) F({test['df_num']:.0f}, {test['df_denom']:.1f}) = {test['statistic']:.2f}, p = {test['p_value']:.3f}"
    ref = "F" if math.isfinite(test["df_denom"]) else "chi2/q"
    dfs = f"{test['df_num']:.0f}, {test['df_denom']:.0f}" if math.isfinite(test["df_denom"]) else f"{test['df_num']:.0f}"
    return f"joint Wald {ref}({dfs}) = {test['statistic']:.2f}, p = {test['p_value']:.3f}"


def pretrend_test(result: Result) -> dict[str, Any]:
    """Joint Wald test of no pre-trends (all lead coefficients zero) for an event-study result.

    The F statistic uses the smallest degrees of freedom among the tested coefficients (G - 1 for
    cluster-robust covariances; the normal/chi-squared reference when they are infinite). Results
    fitted with ``vcov="CR2"`` (``event_study``, ``sun_abraham``) use the HTZ test of Pustejovsky &
    Tipton (2018) instead (:func:`impact.inference.htz.cr2_wald_test`), which keeps its size with few
    clusters; the ``method`` entry says which test was run.

    Notes
    -----
    With leads :math:`\\hat\\beta_{pre}` and covariance :math:`\\hat V`,
    :math:`W = \\hat\\beta_{pre}' \\hat V^{-1} \\hat\\beta_{pre}` is referred to
    :math:`q F(q, G-1)` (or :math:`\\chi^2_q`). A non-rejection is weak evidence: pre-tests have low
    power and conditioning on passing them distorts inference (Roth 2022); report
    :func:`impact.did.honest` sensitivity alongside.

    References
    ----------
    Roth, J. (2022). Pretest with caution: event-study estimates after testing for parallel trends.
    *American Economic Review: Insights* 4(3), 305-322. https://doi.org/10.1257/aeri.20210236
    """
    precomputed = result.diagnostics.get("pretrend_test") if isinstance(result.diagnostics, dict) else None
    if isinstance(precomputed, dict) and precomputed.get("p_value") is not None:
        # the design computed a valid test with its own inference (e.g. randomisation inference)
        return dict(precomputed)
    htz = _htz_pretrend(result)
    if htz is not None:
        return htz
    e, est, V, dof = event_time_estimates(result, where="pretrend_test")
    pre = e < 0
    df_denom = float(np.min(dof[pre])) if pre.any() else math.inf
    if not math.isfinite(df_denom) or df_denom <= 0:
        df_denom = math.inf
    out = pretrend_wald(e, est, V, df_denom=df_denom)
    out["method"] = (f"joint Wald test ({'F' if math.isfinite(df_denom) else 'chi-squared'}) with the result's "
                     f"covariance ({result.inference})")
    return out


def _htz_pretrend(result: Result) -> dict[str, Any] | None:
    """The HTZ test of the leads for a result fitted with ``vcov="CR2"`` that keeps its linear model."""
    from impact.inference.htz import LinearFit, htz_test

    if not isinstance(getattr(result, "linear_fit", None), LinearFit) or "event_time" not in result.effects.columns:
        return None
    effects = result.effects
    e = effects["event_time"].to_numpy(dtype=float)
    se = effects["std_error"].to_numpy(dtype=float)
    pre = np.flatnonzero(np.isfinite(e) & (e < 0) & np.isfinite(se) & (se > 0))
    if len(pre) == 0:
        return None  # pretrend_wald says why
    pre = pre[np.argsort(e[pre], kind="stable")]
    out: dict[str, Any] = {"event_times": [int(v) if float(v).is_integer() else float(v) for v in e[pre]]}
    try:
        test = htz_test(result, effects["term"].iloc[pre].tolist())
    except EstimationError as exc:
        out.update(statistic=None, chi2=None, df_num=float(len(pre)), df_denom=None, p_value=None,
                   note=f"not computable: {exc}", method="CR2 Wald test (HTZ)")
        return out
    out.update(htz_entries(test))
    return out


def htz_entries(test: dict[str, Any]) -> dict[str, Any]:
    """The pre-trend test entries (statistic, chi2, df, p_value, delta, test, method, note) of a
    :func:`impact.inference.htz.cr2_wald_test` result, as every HTZ pre-trend test reports them."""
    out = {"statistic": test["statistic"] if test["p_value"] is not None else None, "chi2": test["Q"],
           "df_num": test["df_num"], "df_denom": test["df_denom"], "p_value": test["p_value"], "delta": test["delta"],
           "test": "HTZ", "method": f"{test['method']} (equal to R clubSandwich::Wald_test(test = 'HTZ'))"}
    if test.get("note"):
        out["note"] = test["note"]
    return out


def pretrend_plot(result: Result, ax: Axes | None = None) -> Axes:
    """Pre-period coefficients with confidence intervals and the joint pre-trend test in the title."""
    from impact.report.plots import PALETTE, new_axes

    ax = new_axes(ax)
    table = result.tidy()
    rows = table.loc[table["event_time"].notna() & (table["event_time"] < 0)].sort_values("event_time")
    e = rows["event_time"].to_numpy(dtype=float)
    ax.vlines(e, rows["conf_low"], rows["conf_high"], colors=PALETTE["pre"], linewidth=2)
    ax.scatter(e, rows["estimate"], color=PALETTE["pre"], zorder=3)
    ax.axhline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Periods relative to treatment start")
    ax.set_ylabel("Pre-period coefficient")
    try:
        ax.set_title(f"Pre-trends: {describe_wald(pretrend_test(result))}")
    except (EstimationError, SpecError) as exc:
        ax.set_title(f"Pre-trends (no joint test: {exc})"[:120])
    return ax


class EventTimeMethods:
    """Methods shared by results with event-time rows and a ``vcov`` of their effects (event studies,
    imputation, Callaway-Sant'Anna dynamic aggregations), so that programme specs can chain them:
    ``then = [{method = "honest_smoothness"}]``. A mixin without fields, placed before ``Result``."""

    def honest(
        self,
        *,
        method: str = "relative_magnitude",
        Mbar: Sequence[float] = (0.0, 0.5, 1.0, 1.5, 2.0),
        M: Sequence[float] | None = None,
        target: str | int = "average post",
        level: float | None = None,
        test: str = "hybrid",
    ) -> Result:
        """Sensitivity to violations of parallel trends: ``impact.did.honest(self, ...)``."""
        from impact.did.honest import honest

        return honest(self, method=method, Mbar=Mbar, M=M, target=target, level=level, test=test)  # type: ignore[arg-type]

    def honest_relative_magnitude(
        self, *, Mbar: Sequence[float] = (0.0, 0.5, 1.0, 1.5, 2.0), target: str | int = "average post",
        level: float | None = None, test: str = "hybrid",
    ) -> Result:
        """``honest(self, method="relative_magnitude", ...)``: for chains whose ``method`` key names the
        method to call (``then = [{method = "honest_relative_magnitude", Mbar = [0, 0.5, 1]}]``)."""
        return self.honest(method="relative_magnitude", Mbar=Mbar, target=target, level=level, test=test)

    def honest_smoothness(
        self, *, M: Sequence[float] | None = None, target: str | int = "average post", level: float | None = None,
    ) -> Result:
        """``honest(self, method="smoothness", ...)`` (see :meth:`honest_relative_magnitude`)."""
        return self.honest(method="smoothness", M=M, target=target, level=level)

    def pretrend_test(self) -> dict[str, Any]:
        """Joint Wald test that every pre-treatment event-time effect is zero (:func:`pretrend_test`)."""
        return pretrend_test(self)  # type: ignore[arg-type]
