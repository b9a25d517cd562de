"""Group-time average treatment effects (Callaway & Sant'Anna 2021).

``att_gt`` estimates ATT(g, t) -- the average effect in period t on the units first treated in period
g -- for every cohort g and period t, each from one 2x2 comparison (cohort g against never-treated or
not-yet-treated units, period t against the cohort's base period) run on the one 2x2 backend of
:mod:`impact.did.drdid`. It keeps the influence function of every ATT(g, t) so that
:meth:`ATTGTResult.aggregate` can average them into event-time, cohort, calendar-time and overall
effects with standard errors that include the estimation of the aggregation weights.

Data are handled as a units x periods array (one row per unit), so each ATT(g, t) without covariates
is a difference of (weighted) group means of ``Y_t - Y_base`` and each influence function is a vector.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from impact.data import canonical_order, check_column_arguments, check_level, check_seed  # shared option validation
from impact.data import (
    as_list,
    check_absorbing,
    check_binary,
    check_constant_within,
    check_option,
    cluster_codes,
    prepare,
)
from impact.did._staggered import group_time_layout, group_time_table
from impact.did.drdid import PanelComparison
from impact.errors import (
    DataError,
    ImpactDeprecationWarning,
    SampleWarning,
    SmallComparisonWarning,
    SmallTreatedGroupWarning,
    SpecError,
    recording_warnings,
    warn,
)
from impact.inference.multiplier import multiplier_bootstrap
from impact.inference.vcov import group_sums, wald_test
from impact.results import FlowStep, Result

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["ATTGTResult", "att_gt"]

ControlGroup = Literal["never", "notyet"]
ATTGTMethod = Literal["reg", "ipw", "dr"]
BasePeriod = Literal["varying", "universal"]
_BACKEND = {"reg": "reg", "ipw": "std_ipw", "dr": "trad"}
_METHOD_TEXT = {
    "reg": "outcome regression",
    "ipw": "inverse probability weighting (normalised weights)",
    "dr": "doubly robust (Sant'Anna & Zhao 2020, traditional)",
}
SMALL_COMPARISON = 10
ASSUMPTION = (
    "Parallel trends: had they not been treated, each cohort's average outcome would have changed as "
    "the comparison units' did (conditionally on the covariates), with no effect before treatment "
    "starts (beyond the stated anticipation)."
)


@dataclass(frozen=True, kw_only=True)
class ATTGTResult(Result):
    """Group-time ATTs with their influence functions, ready for aggregation.

    ``tidy()`` has one row per ATT(g, t) (term ``"g=2004,t=2006"``; columns ``group``, ``time``,
    ``event_time``, ``base_period``, ``post``) after a first row ``"ATT"``: the simple average of the
    post-treatment ATT(g, t) weighted by cohort size (the headline; the same as
    ``aggregate("simple")``). With ``bootstrap=B`` the columns ``band_low``/``band_high`` hold uniform
    (simultaneous) bands over all ATT(g, t).
    """

    influence: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    unit_cohort: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    unit_weights: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    unit_clusters: np.ndarray | None = field(default=None, repr=False, compare=False)
    periods: tuple = ()
    randomization: Any = field(default=None, repr=False, compare=False)  # did._randomization.CohortSums
    # the randomisation context of the joint pre-trend tests when the effects are analytic ("auto" above the
    # threshold): with cohorts of tens of units, Wald tests of many pre-period cells still over-reject
    pretrend_randomization: Any = field(default=None, repr=False, compare=False)
    # out-of-core fits (did.out_of_core): cohort moments replace the unit-level influence functions
    moments: Any = field(default=None, repr=False, compare=False)

    def group_time(self) -> pd.DataFrame:
        """The ATT(g, t) rows of ``tidy()`` (without the overall row)."""
        table = self.tidy()
        return table.loc[table["group"].notna()].reset_index(drop=True)

    def aggregate(
        self,
        kind: Literal["simple", "dynamic", "group", "calendar"] = "simple",
        *,
        min_e: float | None = None,
        max_e: float | None = None,
        balance_e: int | None = None,
        inference: Literal["conley_taber"] | None = None,
    ) -> Result:
        """Aggregate the ATT(g, t) into overall, event-time, cohort or calendar-time effects.

        See :func:`impact.did.aggregate.aggregate_att_gt` (the same arguments).
        """
        from impact.did.aggregate import aggregate_att_gt

        return aggregate_att_gt(self, kind, min_e=min_e, max_e=max_e, balance_e=balance_e, inference=inference)

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        return {"Group-time average treatment effects": self.plot_group_time}

    def plot(self, ax: Axes | None = None) -> Axes:
        """The group-time plot (:meth:`plot_group_time`); event studies come from ``aggregate("dynamic")``."""
        return self.plot_group_time(ax)

    def plot_group_time(self, ax: Axes | None = None) -> Axes:
        """ATT(g, t) against calendar time, one colour per cohort; pre-treatment cells open."""
        from impact.report.plots import new_axes

        ax = new_axes(ax, size=(8.0, 4.5))
        table = self.group_time()
        groups = sorted(table["group"].unique())
        offsets = np.linspace(-0.2, 0.2, len(groups)) if len(groups) > 1 else [0.0]
        import matplotlib.pyplot as plt

        colours = plt.get_cmap("tab10")
        banded = "band_low" in table.columns
        for i, g in enumerate(groups):
            rows = table.loc[table["group"] == g]
            x = rows["time"].to_numpy(float) + offsets[i]
            post = rows["post"].to_numpy(bool)
            colour = colours(i % 10)
            if banded:
                ax.vlines(x, rows["band_low"], rows["band_high"], colors=[colour], linewidth=1, alpha=0.5)
            ax.vlines(x, rows["conf_low"], rows["conf_high"], colors=[colour], linewidth=2.5)
            ax.scatter(x[post], rows["estimate"].to_numpy()[post], color=colour, zorder=3, label=f"cohort {g:g}")
            ax.scatter(x[~post], rows["estimate"].to_numpy()[~post], facecolors="white", edgecolors=colour, zorder=3)
        ax.axhline(0, color="#b22222", linestyle="--", linewidth=1)
        ax.set_xticks(sorted(table["time"].unique()))
        ax.set_xlabel("Period (open markers: before treatment)")
        ax.set_ylabel("ATT(g, t)")
        ax.legend(frameon=False, fontsize="small")
        ax.set_title(f"Group-time ATTs: {self.outcome}" + (" (thin lines: uniform bands)" if banded else ""))
        return ax


def _canonical_units(frame, unit_codes, unit_labels, time_codes, n_periods, columns):
    """Renumber units in an order fixed by their data (bootstrap draws then ignore row order and labels)."""
    paths = []
    for col in columns:
        wide = np.full((len(unit_labels), n_periods), np.nan)
        wide[unit_codes, time_codes] = frame[col].to_numpy(dtype=float)
        paths.append(wide)
    order = canonical_order(np.hstack(paths), unit_labels)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[unit_codes], unit_labels[order]


def _fail_on_varying(frame: pd.DataFrame, codes: np.ndarray, n_units: int, column: str, unit: str, where: str) -> np.ndarray:
    """One value per unit of ``column``; raise (naming the units) if it varies within a unit."""
    values = frame[column].to_numpy()
    per_unit = np.empty(n_units, dtype=values.dtype)
    per_unit[codes] = values
    differs = per_unit[codes] != values
    if values.dtype.kind == "f":
        differs &= ~(np.isnan(values) & np.isnan(per_unit[codes]))
    if differs.any():
        bad_units = np.unique(codes[differs])
        check_constant_within(frame.loc[np.isin(codes, bad_units)], unit=unit, column=column, where=where)
    return per_unit


def _unbalanced_option(unbalanced: str | None, allow_unbalanced: bool | None, where: str) -> str:
    """The ``unbalanced`` choice, honouring the deprecated ``allow_unbalanced`` flag."""
    unbalanced = "error" if unbalanced is None else unbalanced
    check_option("unbalanced", unbalanced, ("error", "drop_units", "keep"))
    if allow_unbalanced is None:
        return unbalanced
    replacement = "drop_units" if allow_unbalanced else "error"
    warn(ImpactDeprecationWarning,
         f"{where}: allow_unbalanced={allow_unbalanced!r} is deprecated because it DROPS incomplete units; "
         f"write unbalanced={replacement!r} instead.")
    return replacement


def att_gt(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str | None = None,
    time: str,
    cohort: str | None = None,
    treatment: str | None = None,
    covariates: str | Sequence[str] | None = None,
    control_group: ControlGroup = "never",
    method: ATTGTMethod = "reg",
    anticipation: int = 0,
    base_period: BasePeriod = "varying",
    weights: str | None = None,
    cluster: str | None = None,
    panel: bool = True,
    allow_unbalanced: bool | None = None,
    unbalanced: Literal["error", "drop_units", "keep"] | None = None,
    bootstrap: int | None = None,
    bootstrap_weights: Literal["rademacher", "mammen", "webb"] = "rademacher",
    seed: int | None = None,
    level: float = 0.95,
    missing: Literal["drop", "error"] = "drop",
    inference: Literal["auto", "randomization", "analytic"] = "auto",
    n_permutations: int = 9_999,
) -> ATTGTResult:
    """Group-time average treatment effects with staggered adoption (Callaway & Sant'Anna 2021).

    Parameters
    ----------
    df : DataFrame
        Long panel: one row per unit and period (with ``panel=False``: one row per observation of
        repeated cross-sections).
    outcome, time : str
        Column names; ``time`` numeric (e.g. years).
    unit : str
        Unit id column; required for panels. With ``panel=False`` it may be omitted and is ignored (as
        R ``did``'s ``idname`` with ``panel = FALSE``).
    cohort : str
        The period in which the unit is first treated; 0 or missing for never-treated units. Must
        be constant within unit. Cohorts after the last period count as never treated. With
        ``panel=False``, each observation's cohort (the first treated period of the group it belongs to).
    treatment : str, optional
        Instead of ``cohort``: a 0/1 treatment-status column; the cohort of a unit is the first period
        with treatment 1 (never-treated: 0). Treatment must be absorbing (once 1, stays 1).
    covariates : str or list of str, optional
        Pre-treatment covariates. Values in each comparison's base period are used (as R ``did``);
        time-invariant covariates are the intended use.
    control_group : {"never", "notyet"}
        Comparison units: never treated, or never treated plus those not yet treated by period
        ``max(t, base) + anticipation``. With "notyet" and no never-treated units, the last cohort is
        the comparison and periods from its start (minus anticipation) on are dropped, as R ``did``.
    method : {"reg", "ipw", "dr"}
        2x2 estimator: outcome regression, normalised IPW, or doubly robust (the traditional
        Sant'Anna-Zhao estimator, as R ``did``). Without covariates all three coincide. With
        ``panel=False`` or ``unbalanced="keep"`` the repeated-cross-section versions: R DRDID's
        ``reg_did_rc``, ``std_ipw_did_rc`` and ``drdid_rc`` (the locally efficient DR estimator, which R
        ``did`` calls for ``est_method = "dr"``; the "improved" ``drdid_imp_rc`` is ``drdid(panel=False)``'s
        default but not R ``did``'s).
    anticipation : int
        Number of periods before ``cohort`` in which units may already react; the base period of
        ATT(g, t) for t >= g is the last period before ``g - anticipation``, and not-yet-treated
        comparison units must start after ``max(t, base) + anticipation``. Cells with
        g - anticipation <= t < g appear in the event study but not in the pre-trend test.
    base_period : {"varying", "universal"}
        Pre-treatment ATT(g, t) compare period t with t - 1 ("varying", R ``did``'s default) or with the
        cohort's base period ("universal"; that cell is reported as 0 without standard error).
    weights : str, optional
        Sampling weights, positive, constant within unit (per observation with ``panel=False``).
    cluster : str, optional
        Cluster variable for inference above the unit level (constant within unit). Units are always
        the sampling level; clustering sums influence functions within clusters. With ``panel=False``
        every observation is a sampling unit: cluster (e.g. by region) whenever treatment was assigned
        to groups of observations.
    panel : bool
        True: a panel of units. False: repeated cross-sections (R ``did``'s ``panel = FALSE``): every
        ATT(g, t) is a two-period repeated-cross-section DiD of the observations of cohort g and of the
        comparison cohorts sampled in period t and in the base period; covariates are each
        observation's own values. Assumes the composition of each cohort is stable over the periods.
        Each cohort and its comparison group must be observed in every period a cell needs (else a
        DataError names them).
    unbalanced : {"error", "drop_units", "keep"}, optional
        What to do with units not observed in every period (panels only; default "error"): raise a
        DataError ("error"), drop those units ("drop_units", counted in the sample flow with a
        SampleWarning; R ``did``'s ``allow_unbalanced_panel = FALSE`` after its own balancing), or keep
        every unit ("keep", R ``did``'s ``allow_unbalanced_panel = TRUE``): the repeated-cross-section
        estimators run on all rows and each unit's rows of the influence functions are summed, so
        units remain the sampling level. "keep" on a balanced panel is the panel estimator.
    allow_unbalanced : bool, optional
        Deprecated name of ``unbalanced="drop_units"`` (True) / ``"error"`` (False): the old name hid
        that units are dropped. Still accepted, with an ImpactDeprecationWarning.
    bootstrap : int, optional
        Number of multiplier-bootstrap draws for standard errors and uniform bands; None for analytic
        standard errors.
    bootstrap_weights : {"rademacher", "mammen", "webb"}
        Distribution of the multipliers (drawn per cluster when ``cluster`` is given). Webb's six-point
        weights are the wild-bootstrap choice with few clusters (e.g. ~20 regions): with G clusters
        Rademacher has only 2^G distinct draws.
    seed : int, optional
        Seed of the multiplier bootstrap (also used by ``aggregate``).
    level : float
        Confidence level.
    missing : {"drop", "error"}
        Rows with missing values in the columns used (other than ``cohort``).
    inference : {"auto", "randomization", "analytic"}
        How p-values and intervals are obtained (ignored when ``bootstrap`` is given). "randomization":
        randomisation inference over the assignment of start years across units (across clusters with
        ``cluster``), studentised, with intervals by test inversion
        (:mod:`impact.inference.randomization`); every aggregation and the pre-trend test use the same
        assignments. "analytic": influence-function standard errors and normal critical values (as R
        ``did``). "auto" (default) uses randomisation inference when fewer than 50 treated or 50
        untreated units (clusters) exist and at most 5,000 are permuted, analytic otherwise: with few
        treated units per cohort the analytic variance is far too small (issue 10's simulations).
        Above that threshold "auto" keeps the analytic effects but still tests pre-trends (the
        group-time and the dynamic pre-test) by randomisation when the data can be permuted and at
        most 5,000 units exist: the analytic Wald test of many pre-period cells rejects a true null
        31% of the time with 50 treated of 120 units (``analyses/simulations/few_treated.py``).
        Randomisation inference needs no covariates, no weights and clusters of equal size; otherwise
        "auto" falls back to analytic with a FragileInferenceWarning. With repeated cross-sections
        (``panel=False``) it permutes start years across the clusters of ``cluster`` (e.g. the regions
        in which individuals are surveyed), under the same rule, when there are no covariates, the
        cohort is constant within each cluster and every cluster is sampled in every period (weights
        may vary: they enter the cluster-by-period sums); each cell is recomputed from the re-assigned
        cohorts' sums and studentised by its clustered influence-function SE, aggregation weights are
        held at their observed values. With 4 of 20 regions treated its 5% test of the dynamic ATT
        rejects 7.5% (Monte Carlo se 1.3%; the test is exact by construction under random assignment) under the null, against 0.205 for the analytic SEs and 0.185 for the Webb
        bootstrap by region (400 replications, ``analyses/simulations/rcs_few_treated.py``). Otherwise
        (covariates, cohorts varying within a cluster, no ``cluster``, clusters missing in a period,
        ``unbalanced="keep"``) "auto" is analytic, warns (FragileInferenceWarning) when fewer than 50
        treated or untreated units/clusters exist, and the result's ``inference`` text says so;
        "randomization" raises a SpecError: read such intervals as optimistic.
    n_permutations : int
        Randomisation inference enumerates every assignment when there are at most this many, else
        draws this many (seeded by ``seed``).

    Returns
    -------
    ATTGTResult

    Notes
    -----
    For cohort g and period t, with base period b (``g - anticipation - 1`` for post-treatment cells),
    comparison units C and cohort indicator :math:`G_g`,

    .. math:: ATT(g,t) = E[Y_t - Y_b | G_g = 1] - E[ E[Y_t - Y_b | X, C = 1] | G_g = 1 ],

    estimated by the 2x2 method chosen (for repeated cross-sections, with means over the observations
    sampled in periods t and b). The influence function of each cell, rescaled to the full
    sample (observations for ``panel=False``, units for ``unbalanced="keep"``), gives the analytic covariance :math:`\\hat V = n^{-2} \\sum_i \\psi_i \\psi_i'` (cluster sums
    with ``cluster``). ``diagnostics["pretrend_wald"]`` jointly tests that all pre-treatment ATT(g, t)
    are zero.

    References
    ----------
    Callaway, B., & Sant'Anna, P. H. C. (2021). Difference-in-differences with multiple time periods.
    *Journal of Econometrics* 225(2), 200-230. doi:10.1016/j.jeconom.2020.12.001

    Sant'Anna, P. H. C., & Zhao, J. (2020). Doubly robust difference-in-differences estimators.
    *Journal of Econometrics* 219(1), 101-122. doi:10.1016/j.jeconom.2020.06.003

    Examples
    --------
    >>> import impact as im
    >>> mpdta = im.datasets.load("mpdta")
    >>> res = im.did.att_gt(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    >>> round(res.aggregate("dynamic").estimate, 4)
    -0.0772
    >>> rc = im.did.att_gt(mpdta, outcome="lemp", time="year", cohort="first.treat", panel=False,
    ...                    covariates="lpop", method="dr", inference="analytic")
    >>> round(rc.aggregate("dynamic").estimate, 4)
    -0.0804
    """
    where = "att_gt"
    level = check_level(level, where)
    seed = check_seed(seed, where)
    check_option("control_group", control_group, ("never", "notyet"))
    check_option("method", method, ("reg", "ipw", "dr"))
    check_option("base_period", base_period, ("varying", "universal"))
    check_option("missing", missing, ("drop", "error"))
    check_option("bootstrap_weights", bootstrap_weights, ("rademacher", "mammen", "webb"))
    check_option("inference", inference, ("auto", "randomization", "analytic"))
    if inference == "randomization" and bootstrap is not None:
        raise SpecError(f"{where}: inference='randomization' and bootstrap={bootstrap} ask for two different methods; "
                        "drop one of them.")
    if isinstance(anticipation, bool) or not isinstance(anticipation, int | np.integer) or anticipation < 0:
        raise SpecError(f"anticipation must be a non-negative integer number of periods; got {anticipation!r}.")
    if bootstrap is not None and (isinstance(bootstrap, bool) or not isinstance(bootstrap, int | np.integer) or bootstrap < 2):
        raise SpecError(f"bootstrap must be None (analytic standard errors) or a number of draws such as 999; got {bootstrap!r}.")
    if not isinstance(panel, bool | np.bool_):
        raise SpecError(f"{where}: panel must be True (a panel of units) or False (repeated cross-sections); got {panel!r}.")
    if not panel and (unbalanced is not None or allow_unbalanced is not None):
        raise SpecError(f"{where}: unbalanced=/allow_unbalanced= apply to panels; with panel=False every row is its own "
                        "observation already. Drop that option (or pass panel=True with a unit id).")
    if not panel and treatment is not None:
        raise SpecError(f"{where}: repeated cross-sections (panel=False) need cohort= (each observation's first treated "
                        "period): treatment= status cannot be turned into cohorts without following units over time.")
    if panel and unit is None:
        raise SpecError(f"{where}: panel data need unit= (the unit id column); for repeated cross-sections pass panel=False.")
    unbalanced = _unbalanced_option(unbalanced, allow_unbalanced, where)
    covs = as_list(covariates)
    check_column_arguments(where, outcome=outcome, time=time, cohort=cohort, treatment=treatment,
                           weights=weights, cluster=cluster, **({"unit": unit} if unit is not None else {}))
    if unbalanced == "keep" and treatment is not None:
        raise SpecError(f"{where}: unbalanced='keep' needs cohort= (the first treated period): with gaps in a unit's "
                        "rows its first treated period cannot be read from treatment= status.")
    if not panel or unbalanced == "keep":
        from impact.did._att_gt_rcs import att_gt_repeated

        with recording_warnings() as log:
            result = att_gt_repeated(
                df, outcome=outcome, unit=unit, time=time, cohort=cohort, covs=covs, control_group=control_group,
                method=method, anticipation=anticipation, base_period=base_period, weights=weights, cluster=cluster,
                keep_units=panel, bootstrap=bootstrap, bootstrap_weights=bootstrap_weights, seed=seed, level=level,
                missing=missing, inference=inference, where=where, log=log,
                n_permutations=n_permutations)
        if result is not None:
            return result

    with recording_warnings() as log:
        if (cohort is None) == (treatment is None):
            raise SpecError(f"{where}: give exactly one of cohort= (first treated period, 0 for never treated) "
                            "or treatment= (a 0/1 treatment-status column).")
        timing = cohort if cohort is not None else treatment
        roles = {"outcome": outcome, "unit": unit, "time": time, ("cohort" if cohort else "treatment"): timing,
                 "covariates": covs, "weights": weights, "cluster": cluster}
        used = [c for c in dict.fromkeys([outcome, unit, time, timing, *covs, weights, cluster]) if c is not None]
        missing_cols = [c for c in used if c not in getattr(df, "columns", [])]
        if cohort is not None and not missing_cols and isinstance(df, pd.DataFrame) and df[cohort].isna().any():
            # never-treated units may have a missing cohort: code them 0 before the missing-value check
            df = df.loc[:, used]
            df[cohort] = df[cohort].fillna(0)
        prepared = prepare(df, where=where, roles=roles,
                           numeric=[outcome, time, timing, *covs] + ([weights] if weights else []),
                           missing=missing, unit=None)
        frame = prepared.frame
        flow = list(prepared.flow)

        unit_codes, unit_labels = pd.factorize(frame[unit], sort=False)
        time_codes, periods = pd.factorize(frame[time], sort=True)
        periods = np.asarray(periods, dtype=float)
        n_units, n_periods = len(unit_labels), len(periods)
        unit_codes, unit_labels = _canonical_units(frame, unit_codes, unit_labels, time_codes, n_periods,
                                                   [timing, outcome])
        key = unit_codes.astype(np.int64) * n_periods + time_codes
        cell_count = np.bincount(key, minlength=n_units * n_periods)
        if (cell_count > 1).any():
            prepare(frame, where=where, roles={"unit": unit, "time": time}, unique=[unit, time])  # raises, naming rows
        if n_periods < 2:
            raise DataError(f"{where}: needs at least two periods in {time!r}; found {n_periods}.")
        # unit counts of the sample flow (prepare was not asked to count them: a second pass over units)
        if len(flow) == 1:
            flow[0] = dataclasses.replace(flow[0], units=n_units)
        else:
            flow[0] = dataclasses.replace(flow[0], units=int(df[unit].nunique()))
            flow[1:] = [dataclasses.replace(step, units=n_units) for step in flow[1:]]
        if treatment is not None:
            frame = frame.copy()
            check_binary(frame, treatment, where)
            check_absorbing(frame, unit=unit, time=time, treatment=treatment, where=where)
            status = frame[treatment].to_numpy(dtype=float)
            first = np.full(n_units, np.inf)
            np.minimum.at(first, unit_codes[status == 1], periods[time_codes[status == 1]])
            cohort = "__cohort__"
            frame[cohort] = np.where(np.isfinite(first), first, 0.0)[unit_codes]
        g_unit = _fail_on_varying(frame, unit_codes, n_units, cohort, unit, where).astype(float)
        w_unit = _fail_on_varying(frame, unit_codes, n_units, weights, unit, where).astype(float) if weights else None
        c_unit = _fail_on_varying(frame, unit_codes, n_units, cluster, unit, where) if cluster else None
        if w_unit is not None and ((w_unit < 0).any() or not np.isfinite(w_unit).all() or w_unit.sum() <= 0):
            raise DataError(f"{where}: weights {weights!r} must be finite, non-negative and not all zero.")
        if (g_unit < 0).any():
            raise DataError(f"{where}: cohort {cohort!r} must be the first treated period (or 0 for never "
                            "treated); negative values found.")
        off_grid = (g_unit > 0) & (g_unit <= periods[-1]) & ~np.isin(g_unit, periods)
        if off_grid.any():
            # e.g. 2004.5 would silently act as 2005
            values = ", ".join(f"{v:g}" for v in np.unique(g_unit[off_grid])[:5])
            raise DataError(
                f"{where}: cohort {cohort!r} holds {values} for unit(s) {', '.join(map(str, unit_labels[off_grid][:5]))}, "
                f"which are not periods of {time!r} ({periods[0]:g}..{periods[-1]:g}). The cohort is the first "
                "treated period: use one of the observed periods (0 for never treated)."
            )

        keep = np.ones(n_units, dtype=bool)
        balanced = len(frame) == n_units * n_periods  # no duplicates, so every unit has every period
        per_unit_rows = np.full(n_units, n_periods) if balanced else np.bincount(unit_codes, minlength=n_units)
        incomplete = per_unit_rows < n_periods
        if incomplete.any():
            k = int(incomplete.sum())
            examples = ", ".join(map(str, unit_labels[incomplete][:5]))
            if unbalanced == "error":
                # name the actual cause when the gaps come from rows dropped for missing/infinite values
                dropped = [s.note for s in prepared.flow if s.step == "complete cases"]
                cause = f" after the missing-value step {dropped[0]}" if dropped else ""
                raise DataError(
                    f"{where}: the panel is unbalanced{cause}: {k} of {n_units} unit(s) are not observed in all "
                    f"{n_periods} periods (first: {examples}). Balance it (fix or impute those values), or pass "
                    "unbalanced='drop_units' to drop those units (the count is reported in the sample flow).")
            keep &= ~incomplete
            note = f"dropped {k} unit(s) not observed in all {n_periods} periods (unbalanced='drop_units')"
            warn(SampleWarning, f"{where}: {note}.")
            flow.append(FlowStep("balanced panel", int(per_unit_rows[keep].sum()), int(keep.sum()), note))

        late = keep & (g_unit > periods[-1])
        if late.any():
            note = f"{int(late.sum())} unit(s) first treated after the last period ({periods[-1]:g}) count as never treated"
            g_unit = np.where(late, 0.0, g_unit)
            flow.append(FlowStep("cohorts after the sample", int(per_unit_rows[keep].sum()), int(keep.sum()), note))

        first_treated = keep & (g_unit != 0) & (g_unit - anticipation <= periods[0])
        if first_treated.any():
            k = int(first_treated.sum())
            note = (f"dropped {k} unit(s) already treated in the first period {periods[0]:g}"
                    + (f" (given anticipation={anticipation})" if anticipation else "")
                    + ": they have no pre-treatment period")
            warn(SampleWarning, f"{where}: {note}.")
            keep &= ~first_treated
            flow.append(FlowStep("treated in first period", int(per_unit_rows[keep].sum()), int(keep.sum()), note))

        never = g_unit == 0
        period_keep = np.ones(n_periods, dtype=bool)
        if not (never & keep).any():
            if control_group == "never":
                raise DataError(
                    f"{where}: there are no never-treated units (cohort 0 or missing) to compare with. Use "
                    "control_group='notyet' to compare each cohort with units not yet treated.")
            last = float(g_unit[keep].max())
            period_keep = periods < last - anticipation
            note = (f"no never-treated units: the last cohort ({last:g}) is the comparison group and periods "
                    f"from {last - anticipation:g} on are dropped (as R did)")
            warn(SampleWarning, f"{where}: {note}.")
            g_unit = np.where(g_unit == last, 0.0, g_unit)
            never = g_unit == 0
            flow.append(FlowStep("no never-treated units", int(keep.sum() * period_keep.sum()), int(keep.sum()), note))
            if period_keep.sum() < 2:
                raise DataError(f"{where}: fewer than two periods remain before the last cohort starts.")

        # units x periods arrays of the estimation sample
        if keep.all() and period_keep.all():
            row_keep = slice(None)
            u_rows, t_rows, flat = unit_codes, time_codes, key
        else:
            new_code = np.cumsum(keep) - 1
            row_keep = keep[unit_codes] & period_keep[time_codes]
            period_index = np.cumsum(period_keep) - 1
            u_rows, t_rows = new_code[unit_codes[row_keep]], period_index[time_codes[row_keep]]
            flat = u_rows.astype(np.int64) * int(period_keep.sum()) + t_rows
        periods = periods[period_keep]
        N, T = int(keep.sum()), len(periods)
        Y = np.empty(N * T)
        Y[flat] = frame[outcome].to_numpy(dtype=float)[row_keep]  # one flat scatter into units x periods
        Y = Y.reshape(N, T)
        G = g_unit[keep]
        never = G == 0
        W = None if w_unit is None else w_unit[keep] / w_unit[keep].mean()
        Xw = None
        time_invariant_x = True
        if covs:
            # time-invariant covariates (the intended use) are held once per unit (N x 1 x k); only
            # covariates that vary over time need the units x periods x covariates array
            values = [frame[c].to_numpy(dtype=float)[row_keep] for c in covs]
            per_unit = np.empty((N, len(covs)))
            for j, v in enumerate(values):
                per_unit[u_rows, j] = v
            time_invariant_x = all(np.array_equal(per_unit[u_rows, j], v) for j, v in enumerate(values))
            if time_invariant_x:
                Xw = per_unit[:, None, :]
            else:
                Xw = np.empty((N, T, len(covs)))
                for j, v in enumerate(values):
                    Xw[u_rows, t_rows, j] = v

        cohorts = np.sort(np.unique(G[~never]))
        if len(cohorts) == 0:
            raise DataError(f"{where}: no treated cohorts remain (all units are never treated or were dropped).")
        ever_treated = ~never
        clusters, n_clusters = None, None
        if cluster:
            clusters, n_clusters = cluster_codes(c_unit[keep], where=where, treated=ever_treated, name=cluster)
        else:
            # units are the sampling level: with few of them (e.g. 15 regions) the same warnings apply
            unit_ids = np.arange(len(ever_treated))
            cluster_codes(unit_ids, where=where, treated=ever_treated, name=unit, codes=unit_ids)
        cohort_size = {g: int(np.count_nonzero(G == g)) for g in cohorts}

        # -- the group-time cells: which cohort, period, base period and comparison cohorts ---------------
        K = len(cohorts)
        cohort_index = np.where(never, K, np.searchsorted(cohorts, G))  # K = never treated
        # units sorted by cohort: every cohort is a contiguous block of rows (kept in this order in
        # the result: influence functions, unit cohorts, weights and clusters all follow it)
        order = np.argsort(cohort_index, kind="stable")
        cohort_index, G, never, ever_treated = cohort_index[order], G[order], never[order], ever_treated[order]
        Y = Y[order]
        if Xw is not None:
            Xw = Xw[order]
        if W is not None:
            W = W[order]
        if clusters is not None:
            clusters = clusters[order]
        # units that count: those with a positive sampling weight
        group_sizes = np.bincount(cohort_index, weights=None if W is None else (W > 0).astype(float),
                                  minlength=K + 1).astype(int)
        if (group_sizes[:K] == 0).any():
            empty_cohorts = ", ".join(f"{g:g}" for g in cohorts[group_sizes[:K] == 0])
            raise DataError(f"{where}: cohort(s) {empty_cohorts} have no unit with a positive weight in {weights!r}.")
        cells: list[dict[str, Any]] = []
        empty: list[str] = []
        for k, g, ti, t, base, reference, comparison in group_time_layout(
                cohorts, periods, anticipation=anticipation, base_period=base_period, control_group=control_group):
            n_comparison = int(group_sizes[comparison].sum())
            if n_comparison == 0 and not reference:
                empty.append(f"g={g:g},t={t:g}")
            cells.append({"group": g, "time": t, "base_period": periods[base], "post": bool(g <= t),
                          "reference": reference, "n_treated": int(group_sizes[k]),
                          "n_comparison": 0 if reference else n_comparison,
                          "k": k, "ti": ti, "base": base, "comparison": comparison})
        if empty:
            raise DataError(
                f"{where}: no comparison units for {len(empty)} group-time cell(s) ({', '.join(empty[:6])}"
                f"{' ...' if len(empty) > 6 else ''}) with control_group={control_group!r}. Use "
                "control_group='notyet' or drop the periods/cohorts concerned.")
        smallest = min(c["n_comparison"] for c in cells if not c["reference"])
        if smallest < SMALL_COMPARISON:
            warn(SmallComparisonWarning, f"{where}: some group-time cells have only {smallest} comparison units; "
                 "their ATT(g, t) and standard errors are fragile.")
        small_cohorts = [f"{g:g} ({n})" for g, n in cohort_size.items() if n < 5]
        if small_cohorts:
            warn(SmallTreatedGroupWarning, f"{where}: treated cohort(s) with fewer than 5 units: {', '.join(small_cohorts)}; "
                 "the effects of each such cohort rest on very few units.")

        if covs:
            IF, estimates_cells = _cells_with_covariates(cells, Y, Xw, W, cohort_index, K, time_invariant_x,
                                                         _BACKEND[method], tuple(covs), where)
        else:
            IF, estimates_cells = _cells_unconditional(cells, Y, W, cohort_index, K)
        for c, e in zip(cells, estimates_cells):
            c["estimate"] = float(e)
        IF = IF.T  # N x p view of a p x N array: each cell's influence function is contiguous
        att = np.array([c["estimate"] for c in cells])
        reference = np.array([c["reference"] for c in cells])
        weights_unit = np.ones(N) if W is None else W

        # simple overall ATT (headline): post cells weighted by cohort share
        from impact.did.aggregate import aggregate_influence, simple_weights

        groups_cell = np.array([c["group"] for c in cells])
        times_cell = np.array([c["time"] for c in cells])
        keepers = np.flatnonzero((groups_cell <= times_cell) & ~reference)
        overall_att, overall_if = aggregate_influence(att, IF, keepers, simple_weights(groups_cell, keepers, G, weights_unit),
                                                      G=G, unit_weights=weights_unit, groups_cell=groups_cell, with_wif=True)
        estimates = np.concatenate([[overall_att], att])
        randomization = None
        if bootstrap is None:
            randomization = _randomization_context(
                inference, Y, cohort_index, K, cells, clusters, n_clusters, W, covs, cluster or unit,
                n_permutations, seed, where)
        pretrend_ri = randomization
        if randomization is None and bootstrap is None and inference == "auto":
            pretrend_ri = _pretrend_context(Y, cohort_index, K, cells, clusters, n_clusters, W, covs, cluster or unit,
                                            n_permutations, seed, where)
        ri = omega = None
        if randomization is not None:
            omega = np.vstack([np.zeros((1, len(cells))), np.eye(len(cells))])
            omega[0, keepers] = simple_weights(groups_cell, keepers, G, weights_unit)
            ri = randomization.run_cells(omega, level)
            se = ri.std_error.copy()
            inference_text = ri.description()
            band, crit = None, None
        elif bootstrap is None:
            se_cells, inference, band, crit = _standard_errors(IF, att, clusters, n_clusters, None, seed, level, None, None)
            se_overall = _standard_errors(overall_if[:, None], estimates[:1], clusters, n_clusters, None, seed, level, None, None)[0]
            se = np.concatenate([se_overall, se_cells])
            inference_text = inference
        else:
            full_if = np.column_stack([overall_if, IF])
            se, inference, band, crit = _standard_errors(full_if, estimates, clusters, n_clusters, bootstrap, seed, level, bootstrap_weights,
                                                         band_columns=1 + np.flatnonzero(~reference))
        if bootstrap is not None:
            inference_text = inference
        se[1:][reference] = np.nan
        terms = ["ATT"] + [f"g={c['group']:g},t={c['time']:g}" for c in cells]
        extra = {
            "group": [np.nan] + [c["group"] for c in cells],
            "time": [np.nan] + [c["time"] for c in cells],
            "event_time": [np.nan] + [c["time"] - c["group"] for c in cells],
            "base_period": [np.nan] + [c["base_period"] for c in cells],
            "post": [True] + [c["post"] for c in cells],
            "n_treated": [int(ever_treated.sum())] + [c["n_treated"] for c in cells],
            "n_comparison": [int(never.sum())] + [c["n_comparison"] for c in cells],
        }
        if band is not None:
            extra["band_low"], extra["band_high"] = band
        table = group_time_table(terms, estimates, se, level=level, extra=extra, reference=reference,
                                 randomization=randomization, ri=ri, omega=omega)
        # event_time for group-time rows would turn the default coefficient plot into an event study of
        # overlapping cohorts: keep the column for users, but plot with plot_group_time instead.

        # anticipation cells are not evidence on pre-trends: the Wald test uses t < g - anticipation
        pre = np.flatnonzero((times_cell < groups_cell - anticipation) & ~reference)
        diagnostics: dict[str, Any] = {
            "n_cells": len(cells),
            "cohorts": {f"{g:g}": n for g, n in cohort_size.items()},
            "n_never_treated": int(never.sum()),
            "periods": ", ".join(f"{x:g}" for x in periods),
        }
        if len(pre) and pretrend_ri is not None:
            test = pretrend_ri.joint_test_cells(np.eye(len(cells))[pre], att)
            diagnostics["pretrend_wald"] = {**test, "n_pre_cells": len(pre),
                                            "null": "all pre-treatment ATT(g, t) = 0 (parallel pre-trends)"}
        elif len(pre):
            Vpre = _covariance(IF[:, pre], clusters, n_clusters)
            test = wald_test(att[pre], Vpre)
            diagnostics["pretrend_wald"] = {**test, "n_pre_cells": len(pre), "method": "Wald test, analytic covariance",
                                            "null": "all pre-treatment ATT(g, t) = 0 (parallel pre-trends)"}
        else:
            diagnostics["pretrend_wald"] = "not computed: there are no pre-treatment ATT(g, t) (no cohort has two pre-treatment periods)"
        if crit is not None:
            diagnostics["band_critical_value"] = crit
        if covs and not time_invariant_x:
            diagnostics["covariates_note"] = "covariates vary over time; each cell uses their base-period values"

    settings = {
        "control_group": control_group, "method": method, "method_description": _METHOD_TEXT[method],
        "anticipation": anticipation, "base_period": base_period, "covariates": covs, "weights": weights,
        "cluster": cluster, "bootstrap": bootstrap, "seed": seed, "multiplier": bootstrap_weights if bootstrap else None,
        "unbalanced": unbalanced, "assumption": ASSUMPTION,
        "inference": "randomization" if randomization is not None else ("bootstrap" if bootstrap else "analytic"),
        "n_permutations": n_permutations,
    }
    return ATTGTResult(
        design="att_gt",
        estimand="ATT(g,t)",
        effects=table,
        headline="ATT",
        inference=inference_text,
        n_obs=N * T,
        outcome=outcome,
        level=level,
        n_units=N,
        n_treated=int(ever_treated.sum()),
        n_clusters=n_clusters,
        settings=settings,
        warnings=tuple(log),
        sample_flow=tuple(flow),
        diagnostics=diagnostics,
        influence=IF,
        unit_cohort=G,
        unit_weights=weights_unit,
        unit_clusters=clusters,
        periods=tuple(float(x) for x in periods),
        randomization=randomization,
        pretrend_randomization=pretrend_ri,
    )


def _pretrend_context(Y, cohort_index, K, cells, clusters, n_clusters, W, covs, level_name, n_permutations, seed, where):
    """Randomisation context for the joint pre-trend tests when ``inference="auto"`` keeps the effects
    analytic (at least 50 treated and untreated units): in ``analyses/simulations/few_treated.py`` the
    analytic Wald test of the pre-period ATT(g, t) rejected a true null 31% of the time with 50 treated
    of 120 (cohorts of about 17 units, 15 restrictions), the event-time pre-test 12%. Permuting start
    years is exact and cheap up to :data:`impact.inference.randomization.RI_MAX_UNITS` units; beyond,
    or when the data cannot be permuted (covariates, weights, unequal clusters), the Wald test stays."""
    import warnings

    from impact.errors import EstimationError, SpecError
    from impact.inference.randomization import RI_MAX_UNITS

    n_blocks = len(cohort_index) if clusters is None else n_clusters
    if n_blocks > RI_MAX_UNITS:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the effects' inference already warned about what it needed to
            return _randomization_context("randomization", Y, cohort_index, K, cells, clusters, n_clusters, W, covs,
                                          level_name, n_permutations, seed, where)
    except (SpecError, EstimationError):
        return None


def _randomization_context(inference, Y, cohort_index, K, cells, clusters, n_clusters, W, covs, level_name,
                           n_permutations, seed, where):
    """The data randomisation inference permutes, or None when analytic inference is chosen.

    Applies the rule of ``inference="auto"`` (:func:`impact.inference.randomization.choose_randomization`)."""
    from impact.did._randomization import CohortSums, cell_matrix, cell_onset
    from impact.inference.randomization import adoption_scheme, choose_randomization

    reason = None
    labels, Yb, units = cohort_index, Y, np.ones(len(cohort_index))
    if covs:
        reason = "with covariates each assignment needs its own comparison fits (not implemented); drop covariates"
    elif W is not None and not np.allclose(W, W[0]):
        reason = "sampling weights make cohort shares change with the assignment (not implemented)"
    elif clusters is not None:
        first = np.full(n_clusters, -1)
        first[clusters] = cohort_index
        if np.any(first[clusters] != cohort_index):
            reason = (f"start years differ within some clusters, so adoption was not assigned by cluster and "
                      f"cannot be permuted across clusters; cluster at the level at which start years were decided")
        else:
            size = np.bincount(clusters, minlength=n_clusters)
            if not np.all(size == size[0]):
                reason = ("clusters differ in size, so cohort sizes change with the assignment (not implemented); "
                          "aggregate the data to one row per cluster and period")
            else:
                labels = first
                Yb = np.zeros((n_clusters, Y.shape[1]))
                np.add.at(Yb, clusters, Y)
                units = size.astype(float)
    n_treated = int(np.count_nonzero(labels != K))
    if not choose_randomization(inference, n_treated_units=n_treated, n_untreated_units=len(labels) - n_treated,
                                n_units=len(labels), supported=reason, where=where):
        return None
    word = f"{len(labels)} {'clusters' if clusters is not None else 'units'} ({level_name})"
    adoption_scheme(labels, never_code=K, where=where, unit_word=word)
    cohort_units = np.bincount(cohort_index, minlength=K + 1).astype(float)
    onset = cell_onset(cells, K, Y.shape[1])
    return CohortSums(
        Yb=Yb, labels=labels.astype(np.int64), K=K, C=cell_matrix(cells, K, Y.shape[1], cohort_units), onset=onset,
        cell_cohort=np.array([c["k"] for c in cells]), cell_time=np.array([c["ti"] for c in cells]),
        cell_post=np.array([c["post"] for c in cells]), cell_reference=np.array([c["reference"] for c in cells]),
        block_units=units, unit_word=word, n_permutations=int(n_permutations), seed=seed)


def _cells_unconditional(cells, Y, W, cohort_index, K):
    """All ATT(g, t) without covariates at once: differences of (weighted) mean changes, from group
    sums of the units x periods array; influence functions built in blocks of cells (p x N)."""
    N, T = Y.shape
    p = len(cells)
    w = np.ones(N) if W is None else W
    starts = np.searchsorted(cohort_index, np.arange(K + 1))  # units are sorted by cohort; no block is empty
    sum_w = np.add.reduceat(w, starts)
    sum_wy = np.add.reduceat(Y if W is None else W[:, None] * Y, starts, axis=0)  # (K+1) x T block sums
    treated = np.zeros((p, K + 1))
    comparison = np.zeros((p, K + 1))
    t_idx = np.array([c["ti"] for c in cells])
    b_idx = np.array([c["base"] for c in cells])
    active = np.array([not c["reference"] for c in cells])
    for j, c in enumerate(cells):
        treated[j, c["k"]] = 1.0
        comparison[j] = c["comparison"]
    change = (sum_wy[:, t_idx] - sum_wy[:, b_idx]).T  # p x (K+1) weighted sums of Y_t - Y_base
    st = treated @ sum_w
    sc = comparison @ sum_w
    mt = (treated * change).sum(axis=1) / st
    mc = (comparison * change).sum(axis=1) / np.where(sc > 0, sc, 1.0)
    att = np.where(active, mt - mc, 0.0)
    # role of each cohort in each cell: +1/st (treated), -1/sc (comparison), 0; and the mean to remove
    # influence function of cell j: N w_i (dy_i - mt_j) / st_j on its cohort's block of rows,
    # -N w_i (dy_i - mc_j) / sc_j on the comparison cohorts' blocks, 0 elsewhere
    bounds = np.searchsorted(cohort_index, np.arange(K + 2))
    Yt = np.ascontiguousarray(Y.T)  # periods x units: each period's outcomes contiguous
    IF = np.zeros((p, N))
    for j, c in enumerate(cells):  # loop over cells and cohort blocks; the work inside is vectorised
        if c["reference"]:
            continue
        parts = [(c["k"], mt[j], N / st[j])] + [(k, mc[j], -N / sc[j]) for k in np.flatnonzero(c["comparison"])]
        for k, mean, scale in parts:
            rows = slice(bounds[k], bounds[k + 1])
            out = IF[j, rows]
            np.subtract(Yt[t_idx[j], rows], Yt[b_idx[j], rows], out=out)
            out -= mean
            out *= scale
            if W is not None:
                out *= W[rows]
    return IF, att


def _cells_with_covariates(cells, Y, Xw, W, cohort_index, K, time_invariant_x, backend, names, where):
    """ATT(g, t) with covariates: one 2x2 backend call per cell; comparisons (and their propensity and
    regression fits) shared by cells with the same units and covariate values."""
    N = Y.shape[0]
    Yt = np.ascontiguousarray(Y.T)
    bounds = np.searchsorted(cohort_index, np.arange(K + 2))
    IF = np.zeros((len(cells), N))
    att = np.zeros(len(cells))
    comparisons: dict[tuple, tuple[PanelComparison, np.ndarray]] = {}
    for j, c in enumerate(cells):
        if c["reference"]:
            continue
        key = (c["k"], c["comparison"].tobytes(), None if time_invariant_x else c["base"])
        if key not in comparisons:
            # units are sorted by cohort: the comparison's rows are the treated block and the
            # comparison cohorts' blocks
            blocks = [c["k"], *np.flatnonzero(c["comparison"])]
            rows = np.concatenate([np.arange(bounds[k], bounds[k + 1]) for k in blocks])
            treated = cohort_index[rows] == c["k"]
            comp = PanelComparison(treated, Xw[rows, 0 if time_invariant_x else c["base"], :],
                                   None if W is None else W[rows],
                                   names=names, where=f"{where} (g={c['group']:g}, t={c['time']:g})")
            comparisons[key] = (comp, rows)
        comp, rows = comparisons[key]
        dy = Yt[c["ti"], rows] - Yt[c["base"], rows]
        two = comp.estimate(dy, backend)
        att[j] = two.att
        IF[j, rows] = two.influence * (N / comp.n)
    return IF, att


def _covariance(IF: np.ndarray, clusters: np.ndarray | None, n_clusters: int | None) -> np.ndarray:
    n = IF.shape[0]
    if clusters is not None:
        S = group_sums(clusters, IF, n_clusters)
        return S.T @ S / n**2
    return IF.T @ IF / n**2


def _standard_errors(IF, estimates, clusters, n_clusters, bootstrap, seed, level, weights, band_columns):
    """Analytic or multiplier-bootstrap standard errors (and uniform bands) for the columns of IF."""
    n = IF.shape[0]
    if bootstrap is None:
        if clusters is not None:
            S = group_sums(clusters, IF, n_clusters)
            se = np.sqrt((S**2).sum(axis=0)) / n
            text = f"analytic, from influence functions summed within {n_clusters} clusters; normal critical values"
        else:
            se = np.sqrt(np.einsum("ij,ij->j", IF, IF)) / n  # column sums of squares, no n x p temporary
            text = "analytic, from influence functions (units as the sampling level); normal critical values"
        return se, text, None, None
    draws = multiplier_bootstrap(IF, n_draws=int(bootstrap), seed=seed, clusters=clusters, n_clusters=n_clusters,
                                 kind=weights, estimates=estimates, level=level, band=band_columns)
    se = draws.std_errors.copy()
    low, high = draws.bands(estimates)
    text = (f"multiplier bootstrap ({bootstrap} draws, {weights.capitalize()} weights"
            + (f", clustered by {n_clusters} clusters" if clusters is not None else "")
            + f", seed {seed}); standard errors from the interquartile range of the draws; conf_low/conf_high "
            f"pointwise, band_low/band_high uniform (critical value {draws.critical_value:.3f})")
    not_band = np.ones(len(estimates), dtype=bool)
    not_band[band_columns] = False
    low[not_band], high[not_band] = np.nan, np.nan
    return se, text, (low, high), draws.critical_value
