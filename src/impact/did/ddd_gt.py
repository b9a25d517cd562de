"""Staggered triple differences: group-time DDD effects (Ortiz-Villavicencio & Sant'Anna 2025).

A programme is *enabled* in a group (e.g. a region) from period ``S = g`` on and reaches only the
*eligible* units of that group (``Q = 1``, e.g. small firms). ``ddd_gt`` estimates, for every
enabling cohort g and period t,

    ATT(g, t) = E[Y_t(g) - Y_t(inf) | S = g, Q = 1],

from three 2x2 comparisons of the eligible units of cohort g (treated cell) with the ineligible
units of cohort g, the eligible units of a comparison cohort g_c and its ineligible units,

    DDD_{g_c}(g, t) = DiD(g1 vs g0) + DiD(g1 vs g_c1) - DiD(g1 vs g_c0),

each on the one doubly robust 2x2 backend of :mod:`impact.did.drdid` (its own propensity score and
outcome regression per comparison cell). With not-yet-treated comparisons several cohorts g_c are
valid; their DDDs are combined with the GMM-optimal weights ``Omega^-1 1 / (1' Omega^-1 1)``
(paper eq. 4.11-4.12), Omega the covariance of their influence functions. The result is an
:class:`~impact.did.att_gt.ATTGTResult`: aggregation (simple, dynamic, group, calendar), the multiplier
bootstrap and the pre-trend tests are att_gt's, weighting cohorts by their eligible units
``P(S = g, Q = 1)`` (paper eq. 4.13).

Steps: :func:`_prepare` (validation -> units x periods arrays), :func:`_cells` (which cohort, period,
base period and comparison cohorts), :func:`_estimate_cells` (DDD and influence function per
cell), :func:`_randomization` (the few-treated-groups inference), then the result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from impact.data import (
    as_list,
    check_column_arguments,
    check_constant_within,
    check_level,
    check_option,
    check_seed,
    cluster_codes,
    prepare,
)
from impact.did.att_gt import ATTGTResult, _covariance, _standard_errors
from impact.did.drdid import PanelComparison
from impact.errors import (
    DataError,
    ImpactWarning,
    SampleWarning,
    SmallComparisonWarning,
    SmallTreatedGroupWarning,
    SpecError,
    recording_warnings,
    warn,
)
from impact.inference.vcov import wald_test
from impact.results import FlowStep, effects_table

__all__ = ["DDDGTResult", "ddd_gt"]

ControlGroup = Literal["never", "notyet"]
DDDMethod = Literal["dr", "reg", "ipw"]
_BACKEND = {"reg": "reg", "ipw": "std_ipw", "dr": "trad"}
_METHOD_TEXT = {
    "reg": "outcome regression",
    "ipw": "inverse probability weighting (normalised weights)",
    "dr": "doubly robust (Sant'Anna & Zhao 2020, traditional, per comparison cell)",
}
SMALL_CELL = 5
ASSUMPTION = (
    "DDD parallel trends: without the programme, the gap between the outcome trends of eligible and "
    "ineligible units would have been the same in each enabling cohort as in its comparison cohorts "
    "(conditionally on the covariates), with no effect before the programme starts."
)


@dataclass(frozen=True, kw_only=True)
class DDDGTResult(ATTGTResult):
    """Group-time DDD effects; ``aggregate()`` as :meth:`ATTGTResult.aggregate` (design ``ddd_gt/<kind>``)."""

    def aggregate(self, kind: Literal["simple", "dynamic", "group", "calendar"] = "simple", *,
                  min_e: float | None = None, max_e: float | None = None, balance_e: int | None = None):
        agg = super().aggregate(kind, min_e=min_e, max_e=max_e, balance_e=balance_e)
        return dataclasses.replace(agg, design=f"ddd_gt/{agg.kind}")


@dataclass(frozen=True)
class _Panel:
    Y: np.ndarray  # (N, T)
    S: np.ndarray  # (N,) enabling cohort, 0 = never enabled
    Q: np.ndarray  # (N,) bool, eligible
    X: np.ndarray | None  # (N, k) first-period covariates
    clusters: np.ndarray | None  # (N,) raw cluster values
    periods: np.ndarray
    flow: tuple
    dropped_first: int


def _prepare(df, *, where, outcome, unit, time, cohort, partition, covs, cluster, anticipation) -> _Panel:
    """Validate the long panel and return units x periods arrays (units in sorted order)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame in long format, got {type(df).__name__}.")
    data = df
    if cohort in df.columns and df[cohort].isna().any():
        data = df.assign(**{cohort: df[cohort].fillna(0)})  # missing cohort = never enabled (R did's 0)
    roles = {"outcome": outcome, "unit": unit, "time": time, "cohort": cohort, "partition": partition,
             "covariates": covs or None, "cluster": cluster}
    prepared = prepare(data, where=where, roles=roles, numeric=[outcome, time, cohort, partition, *covs],
                       unique=[unit, time], unit=unit)
    frame = prepared.frame
    flow = list(prepared.flow)
    for column in (cohort, partition) + ((cluster,) if cluster else ()):
        check_constant_within(frame, unit=unit, column=column, where=where)
    q_values = frame[partition].to_numpy(dtype=float)
    bad = ~np.isin(q_values, (0.0, 1.0))
    if bad.any():
        raise DataError(f"{where}: partition {partition!r} must be 0 (ineligible) or 1 (eligible); rows "
                        f"{', '.join(map(str, frame.index[bad][:5]))} hold {', '.join(f'{v:g}' for v in np.unique(q_values[bad])[:3])}.")
    unit_codes, unit_labels = pd.factorize(frame[unit], sort=True)
    time_codes, periods = pd.factorize(frame[time], sort=True)
    periods = np.asarray(periods, dtype=float)
    N, T = len(unit_labels), len(periods)
    if T < 2:
        raise DataError(f"{where}: needs at least two periods in {time!r}; found {T}.")
    if len(frame) != N * T:
        counts = np.bincount(unit_codes, minlength=N)
        short = unit_labels[counts < T]
        raise DataError(f"{where}: the panel is unbalanced: {len(short)} of {N} unit(s) are not observed in all {T} "
                        f"periods (first: {', '.join(map(str, short[:5]))}). Balance the panel (every unit in every period).")
    Y = np.empty((N, T))
    Y[unit_codes, time_codes] = frame[outcome].to_numpy(dtype=float)
    first_row = np.zeros(N, dtype=np.int64)
    first_row[unit_codes[::-1]] = np.arange(len(frame))[::-1]  # any row of the unit (constant columns)
    order_first = np.full(N, -1, dtype=np.int64)
    order_first[unit_codes[time_codes == 0]] = np.flatnonzero(time_codes == 0)
    S = frame[cohort].to_numpy(dtype=float)[first_row]
    Q = frame[partition].to_numpy(dtype=float)[first_row] == 1
    X = frame[covs].to_numpy(dtype=float)[order_first] if covs else None
    if covs:
        values = frame[covs].to_numpy(dtype=float)
        spread = np.zeros((N, len(covs)), dtype=bool)
        np.logical_or.at(spread, unit_codes, values != X[unit_codes])
        varying = [c for c, v in zip(covs, spread.any(axis=0)) if v]
        if varying:
            units = unit_labels[spread.any(axis=1)]
            warn(ImpactWarning, f"{where}: covariate(s) {', '.join(map(repr, varying))} vary within {len(units)} unit(s) "
                 f"(first: {', '.join(map(str, units[:5]))}); each unit's first-period value is used, as the "
                 "estimator conditions on pre-treatment characteristics. Pass time-invariant (baseline) covariates "
                 "to silence this.")
    clusters = frame[cluster].to_numpy()[first_row] if cluster else None
    if (S < 0).any():
        raise DataError(f"{where}: cohort {cohort!r} must hold the first period in which the programme is enabled "
                        f"(0 or missing if never); negative for unit(s) {', '.join(map(str, unit_labels[S < 0][:5]))}.")
    off_grid = (S > 0) & (S <= periods[-1]) & ~np.isin(S, periods)
    if off_grid.any():
        raise DataError(f"{where}: cohort {cohort!r} holds {', '.join(f'{v:g}' for v in np.unique(S[off_grid])[:5])} for "
                        f"unit(s) {', '.join(map(str, unit_labels[off_grid][:5]))}, which are not periods of {time!r}; "
                        "use the first enabled period (0 for never).")
    late = S > periods[-1]
    if late.any():
        S = np.where(late, 0.0, S)
        flow.append(FlowStep("cohorts after the sample", N * T, N,
                             f"{int(late.sum())} unit(s) enabled after the last period count as never enabled"))
    first = (S > 0) & (S - anticipation <= periods[0])
    if first.any():
        note = f"dropped {int(first.sum())} unit(s) enabled in the first period: they have no pre-treatment period"
        warn(SampleWarning, f"{where}: {note}.")
        keep = ~first
        Y, S, Q = Y[keep], S[keep], Q[keep]
        X = None if X is None else X[keep]
        clusters = None if clusters is None else clusters[keep]
        flow.append(FlowStep("enabled in first period", int(keep.sum()) * T, int(keep.sum()), note))
    if not Q.any() or Q.all():
        raise DataError(f"{where}: partition {partition!r} is {'1' if Q.all() else '0'} for every unit; a triple "
                        "difference needs eligible (1) and ineligible (0) units.")
    if not (S > 0).any():
        raise DataError(f"{where}: no unit is ever enabled ({cohort!r} is 0, missing or after the last period for "
                        "every unit); the cohort column must hold the first enabled period.")
    return _Panel(Y, S, Q, X, clusters, periods, tuple(flow), int(first.sum()))


def _cells(panel: _Panel, *, control_group, base_period, anticipation, where) -> list[dict[str, Any]]:
    """The group-time cells: cohort, period, base period and the valid comparison cohorts."""
    S, Q, periods = panel.S, panel.Q, panel.periods
    cohorts = np.unique(S[S > 0])
    never = (S == 0).any()
    if control_group == "never" and not never:
        raise DataError(f"{where}: there is no never-enabled cohort (cohort 0 or missing); use "
                        "control_group='notyet' to compare with cohorts not yet enabled.")
    no_eligible = [g for g in cohorts if not (Q & (S == g)).any()]
    if no_eligible:
        raise DataError(f"{where}: enabling cohort(s) {', '.join(f'{g:g}' for g in no_eligible)} have no eligible unit "
                        "(partition = 1), so their effect is not identified; drop those cohorts or check the partition.")
    cells = []
    T = len(periods)
    for g in cohorts:
        base_post = int(np.flatnonzero(periods + anticipation < g)[-1])
        for ti in range(0 if base_period == "universal" else 1, T):
            t = periods[ti]
            base = base_post if (t >= g - anticipation or base_period == "universal") else ti - 1
            reference = base_period == "universal" and ti == base
            threshold = periods[max(ti, base)] + anticipation
            comparisons = ([0.0] if never else []) + (
                [c for c in cohorts if c > threshold and c != g] if control_group == "notyet" else [])
            if not comparisons and not reference:
                raise DataError(f"{where}: no comparison cohort for g={g:g}, t={t:g} with control_group={control_group!r}; "
                                "drop the periods after the last cohort is enabled or add never-enabled units.")
            cells.append({"group": g, "time": t, "ti": ti, "base": base, "base_period": periods[base],
                          "post": bool(g <= t), "reference": reference, "comparisons": comparisons})
    needed = {(c["group"], gc) for c in cells if not c["reference"] for gc in c["comparisons"]}
    empty = []
    for g, gc in sorted(needed):
        for s, q in ((g, False), (gc, True), (gc, False)):
            if not ((S == s) & (Q == q)).any():
                empty.append(f"cohort {s:g} with partition={int(q)}")
    if empty:
        raise DataError(f"{where}: comparison cell(s) with no units: {', '.join(sorted(set(empty))[:6])}. Each DDD needs "
                        "eligible and ineligible units in the enabling cohort and in every comparison cohort; merge or "
                        "drop the cohort, or use control_group='never'.")
    return cells


class _Comparisons:
    """The three 2x2 comparisons of each (cohort, comparison cohort) pair, fitted once and reused
    over periods (covariates are fixed per unit, so propensity scores and breads do not change)."""

    def __init__(self, panel: _Panel, backend: str, names: tuple[str, ...], where: str):
        self.panel, self.backend, self.names, self.where = panel, backend, names, where
        self.N = len(panel.S)
        self._fits: dict[tuple, tuple[PanelComparison, np.ndarray]] = {}

    def _comparison(self, g: float, s: float, q: bool) -> tuple[PanelComparison, np.ndarray]:
        key = (g, s, q)
        if key not in self._fits:
            P = self.panel
            treated = (P.S == g) & P.Q
            rows = np.flatnonzero(treated | ((P.S == s) & (P.Q == q)))
            X = None if P.X is None else P.X[rows]
            comp = PanelComparison(treated[rows], X, None, names=self.names,
                                   where=f"{self.where} (g={g:g}, comparison cohort {s:g}, partition={int(q)})")
            self._fits[key] = (comp, rows)
        return self._fits[key]

    def ddd(self, g: float, gc: float, dy: np.ndarray) -> tuple[float, np.ndarray]:
        """DDD of cohort g against comparison cohort gc and its influence function on all N units."""
        psi = np.zeros(self.N)
        att = 0.0
        for s, q, sign in ((g, False, 1.0), (gc, True, 1.0), (gc, False, -1.0)):
            comp, rows = self._comparison(g, s, q)
            est = comp.estimate(dy[rows], self.backend)
            att += sign * est.att
            psi[rows] += sign * est.influence * (self.N / comp.n)
        return att, psi


def _gmm(atts: np.ndarray, IFs: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """GMM-optimal combination of DDDs over comparison cohorts (paper eq. 4.11-4.12)."""
    if len(atts) == 1:
        return float(atts[0]), IFs[0], np.ones(1)
    rows = np.flatnonzero(np.any(IFs != 0, axis=0))
    omega = np.cov(IFs[:, rows])  # scale-free: only the weights are used
    ones = np.ones(len(atts))
    solved = np.linalg.lstsq(omega, ones, rcond=None)[0]
    w = solved / (ones @ solved)
    return float(w @ atts), w @ IFs, w


def _estimate_cells(panel: _Panel, cells, backend, names, where) -> tuple[np.ndarray, np.ndarray]:
    comparisons = _Comparisons(panel, backend, names, where)
    Y = panel.Y
    IF = np.zeros((len(panel.S), len(cells)))
    att = np.zeros(len(cells))
    for j, c in enumerate(cells):
        if c["reference"]:
            continue
        dy = Y[:, c["ti"]] - Y[:, c["base"]]
        parts = [comparisons.ddd(c["group"], gc, dy) for gc in c["comparisons"]]
        att[j], IF[:, j], c["gmm_weights"] = _gmm(np.array([p[0] for p in parts]), np.array([p[1] for p in parts]))
    return att, IF


def _randomization(panel: _Panel, cells, *, inference, control_group, covs, clusters, n_clusters, level_name,
                   n_permutations, seed, where):
    """Randomisation inference over the assignment of enabling dates, or None for analytic inference.

    Without covariates and with never-enabled comparisons every DDD(g, t) is
    ``m(g,1) - m(g,0) - m(inf,1) + m(inf,0)`` (m: mean change of a cohort x partition cell), a fixed
    linear map of the cohort x partition x period outcome sums as long as the number of units in each
    cell does not change with the assignment. Enabling dates are permuted across the randomisation
    units (clusters with ``cluster``, else units) *within strata of equal composition* (the same
    numbers of eligible and ineligible units), which keeps every cell's size fixed. The outcome sums
    are stacked as (eligible periods, ineligible periods) so that att_gt's engine
    (:class:`impact.did._randomization.CohortSums`) permutes them unchanged.
    """
    from impact.did._randomization import CohortSums, cell_onset
    from impact.inference.permutation import AssignmentScheme
    from impact.inference.randomization import RI_TREATED_THRESHOLD, choose_randomization

    if inference == "analytic":
        return None
    S, Q, Y = panel.S, panel.Q, panel.Y
    N, T = Y.shape
    cohorts = np.unique(S[S > 0])
    K = len(cohorts)
    code = np.where(S == 0, K, np.searchsorted(cohorts, S))
    reason = None
    if covs:
        reason = "with covariates each assignment needs its own propensity and regression fits (not implemented)"
    elif control_group != "never":
        reason = "with not-yet-enabled comparisons the GMM weights depend on the data (not a fixed linear map)"
    blocks, B = (np.arange(N), N) if clusters is None else (clusters, n_clusters)
    labels = np.full(B, -1)
    labels[blocks] = code
    if reason is None and np.any(labels[blocks] != code):
        reason = ("enabling dates differ within some clusters, so they were not assigned by cluster; cluster at the "
                  "level at which the programme was enabled")
    n_treated = int(np.count_nonzero(labels != K))
    if inference == "auto" and min(n_treated, B - n_treated) >= RI_TREATED_THRESHOLD:
        return None  # many treated groups: the analytic path (choose_randomization's rule, decided cheaply)
    eligible = np.bincount(blocks, weights=Q.astype(float), minlength=B)
    ineligible = np.bincount(blocks, weights=(~Q).astype(float), minlength=B)
    _, strata = np.unique(np.column_stack([eligible, ineligible]), axis=0, return_inverse=True)
    strata = strata.ravel()
    word = f"{B} {'clusters' if clusters is not None else 'units'} ({level_name})"
    total = AssignmentScheme(labels.astype(np.int64), strata=strata, method="complete", n_arms=K + 1).n_assignments() \
        if reason is None else 0
    if reason is None and total < 40:
        reason = (f"the {word} differ in their numbers of eligible and ineligible units, so permuting enabling dates "
                  "would change the cell sizes and the DDD would not be a fixed linear map of cell sums; only "
                  f"{int(total)} assignment(s) keep every cell's size (not implemented beyond that)")
    if not choose_randomization(inference, n_treated_units=n_treated, n_untreated_units=B - n_treated,
                                n_units=B, supported=reason, where=where):
        return None
    Yb = np.zeros((B, 2 * T))  # eligible sums in the first T columns, ineligible sums in the last T
    np.add.at(Yb, blocks[Q], np.column_stack([Y[Q], np.zeros((int(Q.sum()), T))]))
    np.add.at(Yb, blocks[~Q], np.column_stack([np.zeros((int((~Q).sum()), T)), Y[~Q]]))
    block_units = np.column_stack([np.repeat(eligible[:, None], T, axis=1), np.repeat(ineligible[:, None], T, axis=1)])
    n_cell = np.zeros((K + 1, 2))
    np.add.at(n_cell, (code, (~Q).astype(int)), 1.0)
    C = np.zeros((len(cells), K + 1, 2 * T))
    for j, c in enumerate(cells):
        if c["reference"]:
            continue
        k = int(np.searchsorted(cohorts, c["group"]))
        for kk, half, sign in ((k, 0, 1.0), (k, 1, -1.0), (K, 0, -1.0), (K, 1, 1.0)):
            C[j, kk, half * T + c["ti"]] += sign / n_cell[kk, half]
            C[j, kk, half * T + c["base"]] -= sign / n_cell[kk, half]
    cell_cohort = np.array([int(np.searchsorted(cohorts, c["group"])) for c in cells])
    onset = cell_onset([{**c, "k": k} for c, k in zip(cells, cell_cohort)], K, T)  # the exact pre-trend window
    return CohortSums(Yb=Yb, labels=labels.astype(np.int64), K=K, C=C, cell_cohort=cell_cohort, onset=onset,
                      column_period=np.tile(np.arange(T), 2), column_part=np.repeat([0, 1], T),
                      cell_time=np.array([c["ti"] for c in cells]), cell_post=np.array([c["post"] for c in cells]),
                      cell_reference=np.array([c["reference"] for c in cells]), block_units=block_units,
                      unit_word=word, n_permutations=int(n_permutations), seed=seed, strata=strata)


def ddd_gt(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    partition: str,
    covariates: str | Sequence[str] | None = None,
    control_group: ControlGroup = "never",
    method: DDDMethod = "dr",
    base_period: Literal["varying", "universal"] = "varying",
    anticipation: int = 0,
    cluster: str | None = None,
    bootstrap: int | None = None,
    bootstrap_weights: Literal["rademacher", "mammen", "webb"] = "rademacher",
    seed: int | None = None,
    level: float = 0.95,
    inference: Literal["auto", "randomization", "analytic"] = "auto",
    n_permutations: int = 9_999,
) -> DDDGTResult:
    """Group-time triple-difference effects with staggered adoption (Ortiz-Villavicencio & Sant'Anna 2025).

    Parameters
    ----------
    df : DataFrame
        Balanced long panel: one row per unit and period.
    outcome, unit, time : str
        Column names; ``time`` numeric (e.g. years).
    cohort : str
        The first period in which the programme is enabled in the unit's group (e.g. its region);
        0 or missing if never. Constant within unit.
    partition : str
        1 for units eligible for the programme (e.g. small firms), 0 otherwise. Constant within unit.
        Treated = enabled and eligible.
    covariates : str or list of str, optional
        Pre-treatment covariates; each unit's first-period values are used (time-invariant
        covariates are the intended use).
    control_group : {"never", "notyet"}
        Comparison cohorts: never enabled, or never enabled plus those not yet enabled by period
        ``max(t, base) + anticipation`` (then the DDDs against each comparison cohort are combined with
        GMM-optimal weights).
    method : {"dr", "reg", "ipw"}
        2x2 estimator for each of the three comparisons (doubly robust, outcome regression,
        normalised IPW). Without covariates all three coincide.
    base_period : {"varying", "universal"}
        Pre-treatment cells compare t with t - 1 ("varying") or with the cohort's base period g - 1.
    anticipation : int
        Periods before ``cohort`` in which units may already react.
    cluster : str, optional
        Cluster variable (e.g. the region at which the programme is enabled), constant within unit.
    bootstrap : int, optional
        Multiplier-bootstrap draws (standard errors and uniform bands); None for analytic.
    bootstrap_weights : {"rademacher", "mammen", "webb"}
    seed : int, optional
    level : float
    inference : {"auto", "randomization", "analytic"}
        "auto" (default) uses randomisation inference over enabling dates when fewer than 50 treated
        (or untreated) randomisation units exist and the estimator is a fixed linear map of cell sums
        (no covariates, never-enabled comparisons); otherwise analytic, with a
        FragileInferenceWarning when the treated groups are few. Dates are permuted across clusters
        (``cluster``) or units within strata of equal eligible/ineligible composition.
    n_permutations : int
        Assignments drawn when there are more (all are enumerated otherwise).

    Returns
    -------
    DDDGTResult
        An :class:`~impact.did.att_gt.ATTGTResult`: rows ``"ATT"`` (simple aggregate) and
        ``"g=..,t=.."``; ``aggregate(kind)`` as for ``att_gt``; ``diagnostics["pretrend_wald"]``.

    Notes
    -----
    For cohort g, period t, base period b and comparison cohort c,

    .. math:: DDD_c(g,t) = DiD_{g1,g0} + DiD_{g1,c1} - DiD_{g1,c0},

    each DiD the chosen 2x2 estimator of :math:`Y_t - Y_b` on its two cells. The influence function
    of the DDD on all n units is :math:`\\sum_j s_j (n / n_j) \\psi_j` (n_j the units of comparison j).
    With several comparison cohorts, :math:`\\widehat{ATT}(g,t) = w'\\widehat{DDD}`,
    :math:`w = \\Omega^{-1}1 / 1'\\Omega^{-1}1`, and its influence function is :math:`w'\\psi`. Aggregates
    weight cohorts by :math:`P(S = g, Q = 1)`.

    References
    ----------
    Ortiz-Villavicencio, M. and Sant'Anna, P. H. C. (2025). Better understanding triple differences
    estimators. arXiv:2505.09942.

    Examples
    --------
    >>> import impact as im  # doctest: +SKIP
    >>> res = im.did.ddd_gt(df, outcome="y", unit="id", time="year", cohort="enabled", partition="small")  # doctest: +SKIP
    >>> res.aggregate("dynamic").tidy()  # doctest: +SKIP
    """
    where = "ddd_gt"
    level = check_level(level, where)
    seed = check_seed(seed, where)
    check_option("control_group", control_group, ("never", "notyet"))
    check_option("method", method, ("dr", "reg", "ipw"))
    check_option("base_period", base_period, ("varying", "universal"))
    check_option("bootstrap_weights", bootstrap_weights, ("rademacher", "mammen", "webb"))
    check_option("inference", inference, ("auto", "randomization", "analytic"))
    if isinstance(anticipation, bool) or not isinstance(anticipation, int | np.integer) or anticipation < 0:
        raise SpecError(f"{where}: anticipation must be a non-negative integer number of periods; got {anticipation!r}.")
    if bootstrap is not None and (isinstance(bootstrap, bool) or not isinstance(bootstrap, int | np.integer) or bootstrap < 2):
        raise SpecError(f"{where}: bootstrap must be None or a number of draws such as 999; got {bootstrap!r}.")
    if inference == "randomization" and bootstrap is not None:
        raise SpecError(f"{where}: inference='randomization' and bootstrap={bootstrap} ask for two different methods; drop one.")
    covs = as_list(covariates)
    check_column_arguments(where, outcome=outcome, unit=unit, time=time, cohort=cohort, partition=partition, cluster=cluster)
    with recording_warnings() as log:
        panel = _prepare(df, where=where, outcome=outcome, unit=unit, time=time, cohort=cohort, partition=partition,
                         covs=covs, cluster=cluster, anticipation=anticipation)
        cells = _cells(panel, control_group=control_group, base_period=base_period, anticipation=anticipation, where=where)
        S, Q = panel.S, panel.Q
        sizes = {f"{s:g},{int(q)}": int(((S == s) & (Q == q)).sum()) for s in np.unique(S) for q in (True, False)}
        small = [k for k, v in sizes.items() if v < SMALL_CELL]
        if small:
            warn(SmallComparisonWarning, f"{where}: cohort x partition cell(s) with fewer than {SMALL_CELL} units "
                 f"({', '.join(small[:6])}); their DDDs rest on very few units.")
        treated_unit = (S > 0) & Q
        clusters, n_clusters = None, None
        if cluster:
            clusters, n_clusters = cluster_codes(panel.clusters, where=where, treated=S > 0, name=cluster)
        att, IF = _estimate_cells(panel, cells, _BACKEND[method], tuple(covs), where)
        G_agg = np.where(Q, S, 0.0)  # aggregation weights P(S = g, Q = 1) (paper eq. 4.13)
        weights_unit = np.ones(len(S))
        from impact.did.aggregate import aggregate_influence, simple_weights

        groups_cell = np.array([c["group"] for c in cells])
        times_cell = np.array([c["time"] for c in cells])
        reference = np.array([c["reference"] for c in cells])
        keepers = np.flatnonzero((groups_cell <= times_cell) & ~reference)
        overall, overall_if = aggregate_influence(att, IF, keepers, simple_weights(groups_cell, keepers, G_agg, weights_unit),
                                                  G=G_agg, unit_weights=weights_unit, groups_cell=groups_cell, with_wif=True)
        estimates = np.concatenate([[overall], att])
        randomization = None
        if bootstrap is None:
            randomization = _randomization(panel, cells, inference=inference, control_group=control_group, covs=covs,
                                           clusters=clusters, n_clusters=n_clusters, level_name=cluster or unit,
                                           n_permutations=n_permutations, seed=seed, where=where)
        ri = None
        if randomization is not None:
            omega = np.vstack([np.zeros((1, len(cells))), np.eye(len(cells))])
            omega[0, keepers] = simple_weights(groups_cell, keepers, G_agg, weights_unit)
            ri = randomization.run_cells(omega, level)
            se, inference_text, band, crit = ri.std_error.copy(), ri.description(), None, None
        else:
            full_if = np.column_stack([overall_if, IF])
            se, inference_text, band, crit = _standard_errors(
                full_if, estimates, clusters, n_clusters, bootstrap, seed, level, bootstrap_weights,
                band_columns=1 + np.flatnonzero(~reference) if bootstrap is not None else None)
        se[1:][reference] = np.nan
        extra = {
            "group": [np.nan] + list(groups_cell), "time": [np.nan] + list(times_cell),
            "event_time": [np.nan] + list(times_cell - groups_cell),
            "base_period": [np.nan] + [c["base_period"] for c in cells], "post": [True] + [c["post"] for c in cells],
            "n_treated": [int(treated_unit.sum())] + [int(((S == c["group"]) & Q).sum()) for c in cells],
            "comparison_cohorts": [""] + [", ".join("never" if x == 0 else f"{x:g}" for x in c["comparisons"]) for c in cells],
        }
        if band is not None:
            extra["band_low"], extra["band_high"] = band
        if ri is not None:
            p, low, high = ri.p_value.copy(), ri.conf_low.copy(), ri.conf_high.copy()
            for arr in (p, low, high):
                arr[1:][reference] = np.nan
            table = effects_table(["ATT"] + [f"g={c['group']:g},t={c['time']:g}" for c in cells], estimates, se,
                                  level=level, p_values=p, conf_low=low, conf_high=high, **extra)
        else:
            table = effects_table(["ATT"] + [f"g={c['group']:g},t={c['time']:g}" for c in cells], estimates, se,
                                  level=level, **extra)
        pre = np.flatnonzero((times_cell < groups_cell - anticipation) & ~reference)
        diagnostics: dict[str, Any] = {"n_cells": len(cells), "cells": sizes, "periods": ", ".join(f"{x:g}" for x in panel.periods)}
        if len(pre) and randomization is not None:
            test = randomization.joint_test_cells(np.eye(len(cells))[pre], att)
            diagnostics["pretrend_wald"] = {**test, "n_pre_cells": len(pre), "null": "all pre-treatment DDD(g, t) = 0"}
        elif len(pre):
            diagnostics["pretrend_wald"] = {**wald_test(att[pre], _covariance(IF[:, pre], clusters, n_clusters)),
                                            "n_pre_cells": len(pre), "method": "Wald test, analytic covariance",
                                            "null": "all pre-treatment DDD(g, t) = 0"}
        else:
            diagnostics["pretrend_wald"] = "not computed: no cohort has two pre-treatment periods"
        if crit is not None:
            diagnostics["band_critical_value"] = crit
        gmm = {f"g={c['group']:g},t={c['time']:g}": [round(float(x), 6) for x in c["gmm_weights"]]
               for c in cells if len(c.get("gmm_weights", ())) > 1}
        if gmm:
            diagnostics["gmm_weights"] = gmm
    settings = {
        "control_group": control_group, "method": method, "method_description": _METHOD_TEXT[method],
        "anticipation": anticipation, "base_period": base_period, "covariates": covs, "weights": None,
        "cluster": cluster, "bootstrap": bootstrap, "seed": seed, "multiplier": bootstrap_weights if bootstrap else None,
        "partition": partition, "assumption": ASSUMPTION, "n_permutations": n_permutations,
        "inference": "randomization" if randomization is not None else ("bootstrap" if bootstrap else "analytic"),
    }
    return DDDGTResult(
        design="ddd_gt", estimand="ATT(g,t)", effects=table, headline="ATT", inference=inference_text,
        n_obs=int(panel.Y.size), outcome=outcome, level=level, n_units=len(S), n_treated=int(treated_unit.sum()),
        n_clusters=n_clusters, settings=settings, warnings=tuple(log), sample_flow=panel.flow, diagnostics=diagnostics,
        influence=IF, unit_cohort=G_agg, unit_weights=weights_unit, unit_clusters=clusters,
        periods=tuple(float(x) for x in panel.periods), randomization=randomization,
    )
