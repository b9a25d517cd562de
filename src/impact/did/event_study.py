"""Dynamic two-way fixed-effects event study with leads, lags and binned endpoints."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from impact.data import check_integer, check_level, check_seed  # shared option validation
from impact.data import MissingPolicy, check_option
from impact.did._staggered import (
    REGRESSION_VCOV,
    fe_regression,
    integer_event_time,
    staggered_panel,
)
from impact.did.pretrends import EventTimeMethods, describe_wald, pretrend_plot, pretrend_test
from impact.inference.vcov import SmallSampleCorrection
from impact.inference.wild import warn_wild_few_treated, wild_cluster_bootstrap
from impact.errors import (
    SampleWarning,
    SpecError,
    recording_warnings,
    warn,
)
from impact.results import Result, effects_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["EventStudyResult", "event_study"]

EventVcov = Literal["iid", "HC1", "cluster", "CR1", "CR1-fixest", "CR2", "wild"]
HEADLINE = "ATT (average e>=0)"


@dataclass(frozen=True, kw_only=True)
class EventStudyResult(EventTimeMethods, Result):
    """Result of an event-study estimator: event-time rows (``event_time`` column) and a headline.

    ``vcov`` is the covariance matrix of the rows of ``effects`` in order (reference rows are zero).
    """

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        figs = {"Event study": self.plot}
        if (self.effects["event_time"] < 0).any():
            figs["Pre-trends"] = lambda ax=None: pretrend_plot(self, ax=ax)
        elif "coefficients" in self.diagnostics.get("pretrend_test", {}):
            figs["Pre-trends"] = self._plot_pretrend_coefficients
        return figs

    def _plot_pretrend_coefficients(self, ax: Axes | None = None) -> Axes:
        """Lead coefficients of an auxiliary pre-trend regression (e.g. BJS Test 1) with the joint test."""
        from matplotlib.ticker import MaxNLocator

        from impact.report.plots import PALETTE, new_axes

        ax = new_axes(ax)
        test = self.diagnostics["pretrend_test"]
        table = pd.DataFrame(test["coefficients"])
        crit = 1.959963984540054
        ax.vlines(table["event_time"], table["estimate"] - crit * table["std_error"],
                  table["estimate"] + crit * table["std_error"], colors=PALETTE["pre"], linewidth=2)
        ax.scatter(table["event_time"], table["estimate"], color=PALETTE["pre"], zorder=3)
        ax.axhline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("Periods relative to treatment start")
        ax.set_ylabel("Lead coefficient (95% CI)")
        ax.set_title(f"Pre-trends: {describe_wald(test)}")
        return ax

    def plot(self, ax: Axes | None = None) -> Axes:
        """Event-study plot: coefficients against event time with confidence intervals."""
        from impact.report.plots import coefficient_plot

        table = self.tidy()
        table = table.loc[table["event_time"].notna()]
        return coefficient_plot(table, ax=ax, title=f"{self.design}: {self.outcome or ''}".strip(": "))


def event_study(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: str | Sequence[str] | None = None,
    leads: int | None = None,
    lags: int | None = None,
    reference: int | Sequence[int] = -1,
    bin_endpoints: bool = True,
    cluster: str | None = None,
    weights: str | None = None,
    vcov: EventVcov | None = None,
    ssc: SmallSampleCorrection | None = None,
    level: float = 0.95,
    missing: MissingPolicy = "drop",
    n_bootstrap: int = 9_999,
    bootstrap_weights: Literal["webb", "rademacher"] = "webb",
    seed: int | None = None,
    inference: Literal["auto", "randomization", "analytic"] = "auto",
    n_permutations: int = 9_999,
    bootstrap_subcluster: str | None = None,
) -> EventStudyResult:
    """Dynamic TWFE event study with relative-time indicators.

    Parameters
    ----------
    df : DataFrame
        Long panel, one row per unit and period.
    outcome, unit, time : str
        Column names. ``time`` must be consecutive integers (e.g. years).
    cohort : str
        First treated period of each unit (constant within unit); 0 or missing for never-treated
        units, which serve as controls throughout.
    covariates : str or list of str, optional
        Time-varying controls entered linearly.
    leads, lags : int, optional
        Window of reported event times: ``-leads, ..., -1`` before and ``0, ..., lags`` after
        treatment starts. Default: every event time observed.
    reference : int or sequence of int
        Omitted event time(s), normalised to zero (default -1, the last pre-period). With no
        never-treated units, a fully dynamic specification needs two references (e.g. ``(-1, -5)``)
        or binned endpoints.
    bin_endpoints : bool
        True (default): the endpoint indicators are "at or beyond" bins: ``e=-leads`` is one for every
        event time ``<= -leads`` and ``e=lags`` for every event time ``>= lags``, so effects outside the
        window are not absorbed into the reference period. False: treated observations outside the
        window are dropped (recorded in the sample flow).
    cluster : str, optional
        Cluster column (default: the unit).
    weights : str, optional
        Analytic weights.
    inference : {"auto", "randomization", "analytic"}
        With ``vcov=None`` (default): "randomization" re-assigns the start years across units (clusters)
        and reports studentised randomisation p-values, intervals by test inversion and the joint
        pre-trend test over the same assignments (:mod:`impact.inference.randomization`); "analytic"
        uses ``vcov="cluster"``; "auto" uses randomisation inference with fewer than 50 treated (or
        untreated) units or clusters, when the panel is balanced and has no covariates or weights.
    n_permutations : int
        Enumerate every assignment when there are at most this many, else draw this many.
    vcov : {None, "cluster", "CR1", "CR1-fixest", "CR2", "HC1", "iid", "wild"}
        None: chosen by ``inference`` (see above).
        Covariance of the coefficients; see :mod:`impact.inference.vcov`. ``"wild"``: restricted wild
        cluster bootstrap (:func:`impact.inference.wild.wild_cluster_bootstrap`) run separately for each
        coefficient and for the headline average (by reparametrising the design so that it is one
        coefficient): p-values and intervals come from the bootstrap, standard errors and the joint
        pre-trend test from CR1.
    ssc : SmallSampleCorrection, optional
        fixest's small-sample switches for ``vcov="CR1-fixest"`` (:func:`impact.inference.ssc`).
    n_bootstrap, bootstrap_weights, seed
        Draws, weight distribution (Webb's six-point or Rademacher) and seed of the wild bootstrap.
    bootstrap_subcluster : str, optional
        ``vcov="wild"`` only, as in :func:`impact.did.twfe`: draw the bootstrap weights by this finer
        level nested within the clusters (e.g. the unit within regions, or a unit x period id), the
        subcluster wild bootstrap of MacKinnon & Webb (2018); the t statistics keep the CR1 variance by
        ``cluster``. With 1-2 treated clusters the ordinary wild cluster bootstrap has almost no power
        (its p-values bunch near 1); by subcluster it can regain power, but it is valid only when errors
        are not strongly correlated within clusters beyond what the absorbed effects remove (subclusters
        by unit keep each unit's errors together). In analyses/simulations/few_treated.py (one unit per
        region, AR(1) heteroskedastic errors, subclusters = observations) its size was 0.000 / 0.020 /
        0.057 with 1 / 3 / 8 treated regions of 20 and its power against an effect of 1 sd 0.000 / 0.077 /
        0.287 (by region: 0.000 / 0.023 / 0.320; randomisation inference 0.080 / 0.160 / 0.287): with one
        treated region it does not help, and randomisation inference (the default) stays the valid choice.
    level : float
        Confidence level.
    missing : {"drop", "error"}
        What to do with rows that have missing values.

    Returns
    -------
    EventStudyResult
        ``tidy()`` rows ``"e=-3"``, ..., ``"e=3"`` with an ``event_time`` column (reference rows are
        zero with no standard error) and the headline ``"ATT (average e>=0)"``: the equally weighted
        average of the post-period coefficients ``e = 0, ..., lags``. ``diagnostics["pretrend_test"]``
        is the joint Wald test that all leads are zero.

    Notes
    -----
    Estimates, by OLS with unit and period effects absorbed,

    .. math:: Y_{it} = \\alpha_i + \\lambda_t + \\sum_{e \\ne r} \\beta_e 1\\{t - G_i = e\\} + X_{it}'\\gamma + u_{it},

    where :math:`G_i` is the cohort and never-treated units have every indicator zero. Under parallel
    trends, no anticipation and effects that are homogeneous across cohorts, :math:`\\beta_e` is the
    effect :math:`e` periods after adoption. With staggered adoption and heterogeneous effects the
    :math:`\\beta_e` are contaminated by effects at other event times (Sun & Abraham 2021); compare with
    :func:`impact.did.sun_abraham` or :func:`impact.did.imputation`.

    References
    ----------
    Sun, L. & Abraham, S. (2021). Estimating dynamic treatment effects in event studies with
    heterogeneous treatment effects. *Journal of Econometrics* 225(2), 175-199.
    https://doi.org/10.1016/j.jeconom.2020.09.006

    Examples
    --------
    >>> import impact as im
    >>> mpdta = im.datasets.load("mpdta")
    >>> res = im.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    >>> res.tidy()[["term", "estimate"]]  # doctest: +SKIP
    """
    where = "event_study"
    level = check_level(level, where)
    seed = check_seed(seed, where)
    n_bootstrap = check_integer("n_bootstrap", n_bootstrap, where, minimum=1)
    leads = check_integer("leads", leads, where, minimum=0, allow_none=True)
    lags = check_integer("lags", lags, where, minimum=0, allow_none=True)
    check_option("inference", inference, ("auto", "randomization", "analytic"))
    if vcov is not None and inference == "randomization":
        raise SpecError(f"{where}: vcov={vcov!r} and inference='randomization' ask for two methods; drop vcov.")
    if bootstrap_subcluster is not None and vcov != "wild":
        raise SpecError(f"{where}: bootstrap_subcluster= is used by vcov='wild' only; got vcov={vcov!r}.")
    wants_ri = vcov is None and inference != "analytic"
    vcov = "cluster" if vcov is None else vcov
    check_option("vcov", vcov, (*REGRESSION_VCOV, "wild"))
    check_option("bin_endpoints", bin_endpoints, (True, False))
    check_option("bootstrap_weights", bootstrap_weights, ("webb", "rademacher"))
    with recording_warnings() as log:
        panel = staggered_panel(
            df, where=where, outcome=outcome, unit=unit, time=time, cohort=cohort,
            covariates=covariates, cluster=cluster, weights=weights, missing=missing,
            extra_roles={"subcluster": bootstrap_subcluster} if bootstrap_subcluster else None,
        )
        e = integer_event_time(panel, where)
        finite = np.isfinite(e)
        e_min, e_max = int(np.nanmin(e)), int(np.nanmax(e))
        for name, value in (("leads", leads), ("lags", lags)):
            if value is not None and (not isinstance(value, int | np.integer) or value < (1 if name == "leads" else 0)):
                raise SpecError(f"{where}: {name} must be a {'positive' if name == 'leads' else 'non-negative'} integer, got {value!r}.")
        low = -int(leads) if leads is not None else min(e_min, -1)
        high = int(lags) if lags is not None else max(e_max, 0)
        refs = sorted({int(reference)} if isinstance(reference, int | np.integer) else {int(r) for r in reference})
        if not refs or any(r >= 0 or r < low for r in refs):
            raise SpecError(
                f"{where}: reference={reference!r} must be negative event time(s) within the window "
                f"[{low}, {high}] (default -1)."
            )
        if e_min > low or e_max < high:
            raise SpecError(
                f"{where}: the window e={low}..{high} asks for event times that are not observed (the data "
                f"cover e={e_min}..{e_max}); choose leads <= {max(-e_min, 1)} and lags <= {max(e_max, 0)}."
            )
        prepared = panel.prepared
        keep = np.ones(len(e), dtype=bool)
        if bin_endpoints:
            binned = np.where(finite, np.clip(np.nan_to_num(e), low, high), np.nan)
            n_binned = int((finite & ((e < low) | (e > high))).sum())
            binning = (
                f"endpoints binned: e={low} covers every e<={low} and e={high} every e>={high} "
                f"({n_binned} observations outside the window)"
            )
        else:
            keep = ~finite | ((e >= low) & (e <= high))
            binned = e
            binning = f"no binning: {int((~keep).sum())} treated observations outside e={low}..{high} dropped"
            if not keep.all():
                frame = prepared.frame.loc[keep]
                prepared = prepared.with_step(frame, "event window", binning, unit)
                warn(SampleWarning, f"{where}: {binning}.")
        if panel.treated_first_period:
            warn(
                SampleWarning,
                f"{where}: {len(panel.treated_first_period)} unit(s) are treated from the first observed period "
                f"(e.g. {panel.treated_first_period[0]!r}); they have no pre-period and identify only post-period "
                "coefficients through the comparison with other units.",
            )
        event_times = [k for k in range(low, high + 1) if k not in refs]
        be = binned[keep]
        D = (be[:, None] == np.asarray(event_times, dtype=float)[None, :]).astype(float)
        names = [f"e={k}" for k in event_times]
        Xcov = panel.covariates[keep]
        X = np.column_stack([D, Xcov])
        n_never = int(np.unique(panel.unit_codes[panel.never_treated]).size)
        hint = ""
        if n_never == 0:
            hint = (
                "There are no never-treated units: a fully dynamic specification is not identified. Add a "
                f"second reference period (e.g. reference=(-1, {low})) or bin the endpoints with a narrower window."
            )
        subclusters = None
        if bootstrap_subcluster is not None:
            subclusters = pd.factorize(panel.frame[bootstrap_subcluster].to_numpy()[keep], sort=True)[0].astype(np.int64)
        fit = fe_regression(
            panel.y[keep], X, names + list(panel.covariate_names),
            unit_codes=panel.unit_codes[keep], time_codes=panel.time_codes[keep], n_periods=len(panel.periods),
            weights=None if panel.weights is None else panel.weights[keep],
            cluster_values=panel.cluster_values[keep], cluster_name=cluster or unit, vcov=vcov,
            treated=(panel.cohort[keep] > 0), where=where, rank_hint=hint, ssc=ssc, resample_codes=subclusters,
        )
        effects, V = _assemble(
            where=where, event_times=event_times, refs=refs, coef=fit.coef[: len(event_times)],
            vcov=fit.vcov[: len(event_times), : len(event_times)], dof=fit.df[: len(event_times)], level=level,
        )
        inference_text = fit.description
        if vcov == "wild":
            effects, draws = _wild_effects(
                effects, fit, event_times, refs, weights=None if panel.weights is None else panel.weights[keep],
                n_bootstrap=n_bootstrap, weight_type=bootstrap_weights, seed=seed, level=level, subclusters=subclusters)
            warn_wild_few_treated(panel.cohort[keep] > 0, fit.clusters, fit.n_clusters, subclusters is not None, where)
            inference_text = (f"restricted wild cluster bootstrap ({bootstrap_weights} weights, {draws}, "
                              f"{fit.n_clusters} clusters) per coefficient for p-values and intervals; standard errors "
                              "and the joint pre-trend test use CR1")
        counts = pd.Series(be[np.isfinite(be)]).value_counts().sort_index()
        frame = prepared.frame
        treated_units = int(frame.loc[panel.cohort[keep] > 0, unit].nunique())
        diagnostics = {
            "event_time_counts": [{"event_time": int(k), "observations": int(v)} for k, v in counts.items()],
            "binning": binning,
            "never_treated_units": n_never,
            "treated_in_first_period": len(panel.treated_first_period),
        }
        res = EventStudyResult(
            design="event_study",
            estimand="ATT by event time (dynamic TWFE)",
            effects=effects,
            headline=HEADLINE,
            inference=(
                f"{inference_text}; headline = equally weighted average of the post-period coefficients "
                f"e=0..{high}, with its standard error from the same covariance"
            ),
            n_obs=int(keep.sum()),
            outcome=outcome,
            level=level,
            n_units=int(frame[unit].nunique()),
            n_treated=treated_units,
            n_clusters=fit.n_clusters,
            settings={
                "leads": -low, "lags": high, "reference": refs, "bin_endpoints": bin_endpoints, "vcov": vcov,
                **({"n_bootstrap": n_bootstrap, "bootstrap_weights": bootstrap_weights, "seed": seed,
                    "bootstrap_subcluster": bootstrap_subcluster} if vcov == "wild" else {}),
                "cluster": cluster or unit, "covariates": list(panel.covariate_names), "weights": weights,
                "assumption": "Parallel trends and no anticipation, with treatment effects homogeneous across "
                "adoption cohorts (otherwise coefficients mix effects of other event times).",
            },
            sample_flow=prepared.flow,
            diagnostics=diagnostics,
            vcov=V,
            linear_fit=_linear_fit(fit, vcov, effects, _rows_matrix(where, event_times, refs, len(fit.coef))[0],
                                   None if panel.weights is None else panel.weights[keep]),
        )
        ri = None
        if wants_ri:
            from impact.did._randomization import event_time_randomization

            L, _ = _rows_matrix(where, event_times, refs, len(fit.coef))

            def run(mode):
                return event_time_randomization(
                    effects, V, L=L, fit=fit, panel=panel, obs=np.flatnonzero(keep), obs_event_time=be,
                    inference=mode, reason=None, n_permutations=n_permutations, seed=seed, level=level,
                    where=where, cluster_name=cluster or unit, unit_name=unit)

            ri = run(inference)
        if ri is not None:
            effects, V, test, text = ri
            res = res.replace(effects=effects, vcov=V, settings={**res.settings, "inference": "randomization"}, inference=(
                f"{text}; headline = equally weighted average of the post-period coefficients e=0..{high}; vcov: "
                "analytic CR1 correlations scaled to the randomisation standard errors"))
            if test is not None:
                diagnostics["pretrend_test"] = test
        elif low < min(refs):
            from impact.did._randomization import pretrend_randomization

            test = pretrend_randomization(run, n_units=res.n_units) if wants_ri and inference == "auto" else None
            diagnostics["pretrend_test"] = test if test is not None else pretrend_test(res)
        res = res.replace(warnings=tuple(log), diagnostics=diagnostics)
    return res


def _wild_effects(effects: pd.DataFrame, fit, event_times, refs, *, weights, n_bootstrap, weight_type, seed, level,
                  subclusters=None) -> tuple[pd.DataFrame, str]:
    """Replace p-values and intervals of every estimated row by restricted wild cluster bootstrap ones;
    also return how the weights were drawn, in words (the same for every row).

    Row ``a'b`` is tested as one coefficient of the reparametrised design ``X R^-1`` where ``R`` is the
    identity with row ``j`` replaced by ``a`` (so the ``j``-th new coefficient is ``a'b``). ``subclusters``
    (codes per row) draws the weights by subcluster (MacKinnon & Webb 2018) in the shared engine.
    """
    p_full = fit.X.shape[1]
    et = list(event_times)
    post = [j for j, ev in enumerate(et) if ev >= 0]
    out = effects.copy()
    draws = ""
    for row in range(len(out)):
        if bool(out.loc[row, "reference"]):
            continue
        ev = out.loc[row, "event_time"]
        a = np.zeros(p_full)
        if np.isnan(ev):
            a[post] = 1.0 / len(post)
        else:
            a[et.index(int(ev))] = 1.0
        j = int(np.flatnonzero(a)[0])
        R = np.eye(p_full)
        R[j] = a
        X_new = fit.X @ np.linalg.inv(R)
        boot = wild_cluster_bootstrap(
            X_new, fit.y, fit.clusters, coef=j, weights=weights, n_clusters=fit.n_clusters,
            weight_type=weight_type, n_bootstrap=n_bootstrap, seed=seed, level=level, absorbed=fit.absorbed,
            subclusters=subclusters, where="event_study",
        )
        out.loc[row, ["p_value", "conf_low", "conf_high"]] = [boot.p_value, boot.conf_low, boot.conf_high]
        draws = boot.draws_text(int(fit.n_clusters))
    return out, draws


def _linear_fit(fit, vcov: str, effects: pd.DataFrame, L: np.ndarray, weights: np.ndarray | None):
    """The linear model kept on a CR2 result for joint HTZ tests (None for other covariances)."""
    if vcov != "CR2":
        return None
    from impact.inference.htz import LinearFit

    return LinearFit.from_regression(fit, weights, effect_terms=effects["term"].tolist(), effect_contrasts=L)


def _rows_matrix(where, event_times, refs, p, combination=None, headline_weights=None) -> tuple[np.ndarray, list]:
    """L (rows x p): the reported rows (every event time incl. references, then the headline) as
    combinations of the p coefficients; reference rows are zero."""
    et = np.asarray(event_times)
    C = np.eye(p)[: len(et)] if combination is None else np.asarray(combination, dtype=float)
    if headline_weights is None:
        post = et >= 0
        if not post.any():
            raise SpecError(f"{where}: the window has no post-treatment event time; set lags >= 0.")
        headline_weights = (post / post.sum()) @ C
    all_e = sorted(set(et.tolist()) | set(refs))
    k = len(all_e)
    L = np.zeros((k + 1, p))
    for row, ev in enumerate(all_e):
        if ev in refs:
            continue
        L[row] = C[int(np.flatnonzero(et == ev)[0])]
    L[k] = headline_weights
    return L, all_e


def _assemble(
    *,
    where: str,
    event_times: Sequence[int],
    refs: Sequence[int],
    coef: np.ndarray,
    vcov: np.ndarray,
    dof: np.ndarray,
    level: float,
    combination: np.ndarray | None = None,
    headline_weights: np.ndarray | None = None,
    headline: str = HEADLINE,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Effects table (event-time rows incl. references, then the headline) and its covariance.

    Each reported event time ``event_times[j]`` is ``combination[j] @ coef`` (default: the j-th
    coefficient); the headline is ``headline_weights @ coef`` (default: equal weights on the event
    times >= 0). Reference rows are zero with no standard error.
    """
    L, all_e = _rows_matrix(where, event_times, refs, len(coef), combination, headline_weights)
    k = len(all_e)
    est = L @ coef
    V = L @ vcov @ L.T
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    dof_rows = np.empty(k + 1)
    for row in range(k + 1):
        used = np.flatnonzero(L[row] != 0)
        dof_rows[row] = float(np.min(dof[used])) if len(used) else math.inf
    dof_rows = np.where(np.isfinite(dof_rows) & (dof_rows > 0), dof_rows, math.inf)
    is_ref = np.array([ev in refs for ev in all_e] + [False])
    se = np.where(is_ref, np.nan, se)
    terms = [f"e={ev}" for ev in all_e] + [headline]
    effects = effects_table(
        terms, est, se, df=dof_rows, level=level,
        event_time=[float(ev) for ev in all_e] + [math.nan],
        reference=is_ref.tolist(),
    )
    ref_rows = np.flatnonzero(is_ref)
    effects.loc[ref_rows, ["conf_low", "conf_high"]] = 0.0
    return effects, V
