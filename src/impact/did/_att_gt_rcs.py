"""Group-time ATTs from repeated cross-sections, and from unbalanced panels kept whole.

``att_gt(panel=False)`` (R ``did``'s ``att_gt(..., panel = FALSE)``) treats every row as its own
observation: each ATT(g, t) is a two-period repeated-cross-section DiD of the rows of cohort g and of
the comparison cohorts sampled in period t and in the base period, estimated by the cross-section
estimators of :mod:`impact.did._rcs` (``reg_did_rc``, ``std_ipw_did_rc``, ``drdid_rc``). The
influence function of a cell is rescaled to the whole sample (``n / n_cell``), so that aggregation
and the multiplier bootstrap work on rows exactly as the panel path works on units.

``att_gt(unbalanced="keep")`` (R ``did``'s ``allow_unbalanced_panel = TRUE``) runs the same estimators
on the rows of an unbalanced panel and then sums each unit's rows of the influence function, so that
units (not rows) are the sampling level; the rescaling uses the number of units.

Steps: :func:`_prepare_rows` (validate, code cohorts, drop what cannot be used) -> :func:`_cells`
(which comparison each ATT(g, t) is, and whether its four groups are sampled) -> estimate the cells
(:func:`_cells_unconditional`, all at once from block sums, or :func:`_cells_with_covariates`, one
cross-section fit per cell) -> :func:`_assemble` (standard errors, overall ATT, pre-trend test).

With few treated clusters, repeated cross-sections without covariates and with one cohort per cluster
get randomisation inference over the assignment of cohorts to clusters (:func:`_cluster_randomization`,
:class:`impact.did._randomization.CrossSectionSums`; the engine of :mod:`impact.inference.randomization`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from impact.data import check_constant_within, cluster_codes, prepare
from impact.did._rcs import cross_section_att
from impact.did._staggered import group_time_layout, group_time_table
from impact.errors import DataError, SampleWarning, SmallComparisonWarning, SmallTreatedGroupWarning, warn
from impact.results import FlowStep

__all__ = ["att_gt_repeated"]

_BACKEND_RC = {"reg": "reg", "ipw": "std_ipw", "dr": "trad"}
_METHOD_TEXT_RC = {
    "reg": "outcome regression for repeated cross-sections (R DRDID reg_did_rc)",
    "ipw": "normalised inverse probability weighting for repeated cross-sections (R DRDID std_ipw_did_rc)",
    "dr": "doubly robust for repeated cross-sections (Sant'Anna & Zhao 2020, locally efficient; R DRDID "
          "drdid_rc, the estimator R did uses)",
}
SMALL_CELL = 10

@dataclass
class _Rows:
    """The estimation sample, sorted so that each (cohort, period) block of rows is contiguous."""

    y: np.ndarray
    X: np.ndarray | None
    w: np.ndarray  # sampling weights (ones without weights)
    cohort_index: np.ndarray  # 0..K-1 treated cohorts, K never treated / comparison
    period_index: np.ndarray
    unit: np.ndarray | None  # unit codes 0..N-1 (keep-all mode) else None
    cluster_values: np.ndarray | None
    cohorts: np.ndarray
    periods: np.ndarray
    bounds: np.ndarray  # start of block (k, t) at bounds[k * T + t]
    flow: list
    n_rows_supplied: int


def _prepare_rows(df, *, outcome, unit, time, cohort, covs, weights, cluster, keep_units, control_group,
                  anticipation, missing, where) -> _Rows | None:
    """Validate and code the rows; None in keep-all mode when the panel turns out to be balanced."""
    roles = {"outcome": outcome, "time": time, "cohort": cohort, "covariates": covs, "weights": weights,
             "cluster": cluster, **({"unit": unit} if keep_units else {})}
    used = [c for c in dict.fromkeys([outcome, time, cohort, *covs, weights, cluster, unit if keep_units else None])
            if c is not None]
    if isinstance(df, pd.DataFrame) and all(c in df.columns for c in used) and df[cohort].isna().any():
        df = df.loc[:, used]
        df[cohort] = df[cohort].fillna(0)  # never-treated observations may have a missing cohort
    prepared = prepare(df, where=where, roles=roles, numeric=[outcome, time, cohort, *covs] + ([weights] if weights else []),
                       missing=missing, unit=unit if keep_units else None,
                       unique=[unit, time] if keep_units else None)
    frame = prepared.frame
    flow = list(prepared.flow)
    t = frame[time].to_numpy(dtype=float)
    g = frame[cohort].to_numpy(dtype=float)
    periods = np.unique(t)
    if len(periods) < 2:
        raise DataError(f"{where}: needs at least two periods in {time!r}; found {len(periods)}.")
    if (g < 0).any():
        raise DataError(f"{where}: cohort {cohort!r} must be the first treated period (or 0 for never treated); "
                        f"rows {', '.join(map(str, frame.index[g < 0][:5]))} are negative.")
    off_grid = (g > 0) & (g <= periods[-1]) & ~np.isin(g, periods)
    if off_grid.any():
        values = ", ".join(f"{v:g}" for v in np.unique(g[off_grid])[:5])
        raise DataError(f"{where}: cohort {cohort!r} holds {values} (rows {', '.join(map(str, frame.index[off_grid][:5]))}), "
                        f"which are not periods of {time!r} ({periods[0]:g}..{periods[-1]:g}). The cohort is the "
                        "first treated period: use one of the observed periods (0 for never treated).")
    w = np.ones(len(frame))
    if weights:
        w = frame[weights].to_numpy(dtype=float)
        if (w <= 0).any():
            bad = frame.index[w <= 0]
            raise DataError(f"{where}: weights in {weights!r} must be positive; rows {', '.join(map(str, bad[:5]))} "
                            "are not. Drop those rows or give them a positive weight.")
    unit_codes = None
    if keep_units:
        unit_codes, labels = pd.factorize(frame[unit], sort=True)
        if len(frame) == len(labels) * len(periods):  # (unit, time) pairs are unique: balanced after all
            return None
        for column in (cohort, weights, cluster):
            if column:
                check_constant_within(frame, unit=unit, column=column, where=where)

    def units_of(mask):
        return int(np.unique(unit_codes[mask]).size) if keep_units else None

    keep = np.ones(len(frame), dtype=bool)
    late = g > periods[-1]
    if late.any():
        g = np.where(late, 0.0, g)
        flow.append(FlowStep("cohorts after the sample", len(frame), units_of(keep),
                             f"{int(late.sum())} row(s) first treated after the last period ({periods[-1]:g}) count as "
                             "never treated"))
    first = (g != 0) & (g - anticipation <= periods[0])
    if first.any():
        keep &= ~first
        what = f"{units_of(first)} unit(s)" if keep_units else f"{int(first.sum())} row(s)"
        note = (f"dropped {what} of cohorts already treated in the first period {periods[0]:g}"
                + (f" (given anticipation={anticipation})" if anticipation else "") + ": they have no pre-treatment period")
        warn(SampleWarning, f"{where}: {note}.")
        flow.append(FlowStep("treated in first period", int(keep.sum()), units_of(keep), note))
    period_keep = np.ones(len(periods), dtype=bool)
    if not ((g == 0) & keep).any():
        if control_group == "never":
            raise DataError(f"{where}: there are no never-treated observations (cohort 0 or missing) to compare with. "
                            "Use control_group='notyet' to compare each cohort with those not yet treated.")
        last = float(g[keep].max())
        period_keep = periods < last - anticipation
        if period_keep.sum() < 2:
            raise DataError(f"{where}: fewer than two periods remain before the last cohort ({last:g}) starts, which "
                            "serves as the comparison group because no observation is never treated.")
        g = np.where(g == last, 0.0, g)
        keep &= t < last - anticipation
        note = (f"no never-treated observations: the last cohort ({last:g}) is the comparison group and periods from "
                f"{last - anticipation:g} on are dropped (as R did)")
        warn(SampleWarning, f"{where}: {note}.")
        flow.append(FlowStep("no never-treated units", int(keep.sum()), units_of(keep), note))
        periods = periods[period_keep]
    cohorts = np.unique(g[keep & (g > 0)])
    if not len(cohorts):
        raise DataError(f"{where}: no treated cohorts remain (all observations are never treated or were dropped).")
    K, T = len(cohorts), len(periods)
    cohort_index = np.where(g == 0, K, np.searchsorted(cohorts, g))[keep]
    period_index = np.searchsorted(periods, t[keep])
    order = np.lexsort((period_index, cohort_index))
    cohort_index, period_index = cohort_index[order], period_index[order]
    block = cohort_index * T + period_index
    bounds = np.searchsorted(block, np.arange((K + 1) * T + 1))
    rows = np.flatnonzero(keep)[order]
    X = frame[covs].to_numpy(dtype=float)[rows] if covs else None
    return _Rows(y=frame[outcome].to_numpy(dtype=float)[rows], X=X, w=w[rows], cohort_index=cohort_index,
                 period_index=period_index, unit=None if unit_codes is None else pd.factorize(unit_codes[rows], sort=True)[0],
                 cluster_values=frame[cluster].to_numpy()[rows] if cluster else None, cohorts=cohorts,
                 periods=periods, bounds=bounds, flow=flow, n_rows_supplied=len(frame))


def _cells(data: _Rows, *, anticipation: int, base_period: str, control_group: str, where: str) -> list[dict[str, Any]]:
    """The ATT(g, t) cells (as the panel path: base period, comparison cohorts) with the row counts of
    their four groups; raises when a group that a cell needs is not sampled."""
    cohorts, periods = data.cohorts, data.periods
    K, T = len(cohorts), len(periods)
    counts = np.diff(data.bounds).reshape(K + 1, T)  # rows per cohort (never treated last) and period
    one_group = [ti for ti in range(T) if np.count_nonzero(counts[:, ti]) == 1]
    if one_group:
        ti = one_group[0]
        who = "never treated" if counts[K, ti] else f"cohort {cohorts[np.flatnonzero(counts[:, ti])[0]]:g}"
        raise DataError(f"{where}: period {periods[ti]:g} holds observations of one group only ({who}), so no "
                        "comparison can be made in it. Drop that period or add the other groups' observations.")
    cells: list[dict[str, Any]] = []
    missing: dict[str, list[str]] = {}
    for k, g, ti, t, base, reference, comparison in group_time_layout(
            cohorts, periods, anticipation=anticipation, base_period=base_period, control_group=control_group):
        label = f"g={g:g},t={t:g}"
        n = {"treated_post": int(counts[k, ti]), "treated_base": int(counts[k, base]),
             "comparison_post": int(counts[comparison, ti].sum()), "comparison_base": int(counts[comparison, base].sum())}
        if not reference:
            for key, who, when in (("treated_post", f"cohort {g:g}", t), ("treated_base", f"cohort {g:g}", periods[base]),
                                   ("comparison_post", "its comparison group", t),
                                   ("comparison_base", "its comparison group", periods[base])):
                if n[key] == 0:
                    missing.setdefault(f"{who} in {when:g}", []).append(label)
        cells.append({"group": g, "time": t, "base_period": periods[base], "post": bool(g <= t),
                      "reference": reference, "n_treated": n["treated_post"] + n["treated_base"],
                      "n_comparison": 0 if reference else n["comparison_post"] + n["comparison_base"],
                      "n_smallest": min(n.values()), "k": k, "ti": ti, "base": base, "comparison": comparison})
    if missing:
        listed = "; ".join(f"no observations of {what} (needed by {', '.join(c[:3])}{' ...' if len(c) > 3 else ''})"
                           for what, c in list(missing.items())[:4])
        raise DataError(f"{where}: with repeated cross-sections each ATT(g, t) needs its cohort and its comparison "
                        f"group observed in period t and in the base period: {listed}"
                        f"{' ...' if len(missing) > 4 else ''}. Drop those cohorts or periods, or use "
                        "control_group='notyet' if the comparison group is what is missing.")
    return cells


def _cells_unconditional(cells, data: _Rows, n_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """All ATT(g, t) without covariates at once. Without covariates R DRDID's reg, std_ipw and dr
    estimators for repeated cross-sections all reduce to the difference of four weighted means, with
    influence function +-n w_i (y_i - mean) / (sum of w in the group) on each group's rows."""
    K1, T = len(data.cohorts) + 1, len(data.periods)
    starts = data.bounds[:-1]
    nonempty = np.diff(data.bounds) > 0
    sum_w = np.zeros(K1 * T)
    sum_wy = np.zeros(K1 * T)
    sum_w[nonempty] = np.add.reduceat(data.w, starts[nonempty]) if len(data.w) else 0.0
    sum_wy[nonempty] = np.add.reduceat(data.w * data.y, starts[nonempty]) if len(data.w) else 0.0
    sum_w, sum_wy = sum_w.reshape(K1, T), sum_wy.reshape(K1, T)
    IF = np.zeros((len(cells), len(data.y)))
    att = np.zeros(len(cells))
    for j, c in enumerate(cells):  # a loop over cells and their blocks of rows; the work inside is vectorised
        if c["reference"]:
            continue
        comp = c["comparison"]
        parts = []
        for ti, sign in ((c["ti"], 1.0), (c["base"], -1.0)):
            treated_mean = sum_wy[c["k"], ti] / sum_w[c["k"], ti]
            comparison_mean = sum_wy[comp, ti].sum() / sum_w[comp, ti].sum()
            att[j] += sign * (treated_mean - comparison_mean)
            parts.append((c["k"], ti, treated_mean, sign * n_scale / sum_w[c["k"], ti]))
            parts += [(k, ti, comparison_mean, -sign * n_scale / sum_w[comp, ti].sum()) for k in np.flatnonzero(comp)]
        for k, ti, mean, scale in parts:
            rows = slice(data.bounds[k * T + ti], data.bounds[k * T + ti + 1])
            IF[j, rows] = scale * data.w[rows] * (data.y[rows] - mean)
    return IF, att


def _cells_with_covariates(cells, data: _Rows, n_scale: float, backend: str, names: tuple, where: str
                           ) -> tuple[np.ndarray, np.ndarray]:
    """ATT(g, t) with covariates: one repeated-cross-section fit (:func:`cross_section_att`) per cell on
    the rows of its cohort and comparison cohorts in period t and the base period."""
    T = len(data.periods)
    IF = np.zeros((len(cells), len(data.y)))
    att = np.zeros(len(cells))
    for j, c in enumerate(cells):
        if c["reference"]:
            continue
        blocks = [c["k"], *np.flatnonzero(c["comparison"])]
        rows = np.concatenate([np.arange(data.bounds[k * T + ti], data.bounds[k * T + ti + 1])
                               for k in blocks for ti in (c["base"], c["ti"])])
        treated = data.cohort_index[rows] == c["k"]
        post = data.period_index[rows] == c["ti"]
        estimate, psi, _ = cross_section_att(data.y[rows], post, treated, data.X[rows], data.w[rows], backend,
                                             names=names, where=f"{where} (g={c['group']:g}, t={c['time']:g})")
        att[j] = estimate
        IF[j, rows] = psi * (n_scale / len(rows))
    return IF, att


def att_gt_repeated(df, *, outcome, unit, time, cohort, covs, control_group, method, anticipation, base_period,
                    weights, cluster, keep_units, bootstrap, bootstrap_weights, seed, level, missing, inference,
                    where, log, n_permutations=9_999):
    """``att_gt`` for repeated cross-sections (``keep_units=False``) or an unbalanced panel kept whole
    (None when a panel given with ``unbalanced="keep"`` is balanced: the caller runs the panel path)."""
    from impact.did.aggregate import aggregate_influence, simple_weights
    from impact.did.att_gt import ASSUMPTION, ATTGTResult, _covariance, _standard_errors
    from impact.inference.randomization import choose_randomization
    from impact.inference.vcov import wald_test

    data = _prepare_rows(df, outcome=outcome, unit=unit, time=time, cohort=cohort, covs=covs, weights=weights,
                         cluster=cluster, keep_units=keep_units, control_group=control_group,
                         anticipation=anticipation, missing=missing, where=where)
    if data is None:
        return None  # keep-all on a balanced panel: the panel estimators apply (as R did)
    cells = _cells(data, anticipation=anticipation, base_period=base_period, control_group=control_group, where=where)
    K = len(data.cohorts)
    smallest = min(c["n_smallest"] for c in cells if not c["reference"])
    if smallest < SMALL_CELL:
        warn(SmallComparisonWarning, f"{where}: some group-time cells have only {smallest} observations of a cohort or "
             "comparison group in one of their two periods; their ATT(g, t) and standard errors are fragile.")
    n_rows = len(data.y)
    if keep_units:
        N = int(data.unit.max()) + 1
        collapse = sparse.csr_matrix((np.ones(n_rows), (data.unit, np.arange(n_rows))), shape=(N, n_rows))
        first_row = np.full(N, n_rows)
        np.minimum.at(first_row, data.unit, np.arange(n_rows))
    else:
        N, collapse, first_row = n_rows, None, np.arange(n_rows)
    treated_obs = data.cohort_index < K
    small = [f"{g:g} ({n})" for g, n in zip(data.cohorts, np.bincount(data.cohort_index[first_row], minlength=K + 1)[:K])
             if n < 5]
    if small:
        warn(SmallTreatedGroupWarning, f"{where}: treated cohort(s) with fewer than 5 {'units' if keep_units else 'observations'}: "
             f"{', '.join(small)}; the effects of each such cohort rest on very few of them.")

    if covs:
        IF, att = _cells_with_covariates(cells, data, float(N), _BACKEND_RC[method], tuple(covs), where)
    else:
        IF, att = _cells_unconditional(cells, data, float(N))
    IF = IF.T if collapse is None else np.asarray(collapse @ IF.T)  # N x p: a unit's rows summed (keep-all)
    G = np.where(data.cohort_index[first_row] == K, 0.0, data.cohorts[np.minimum(data.cohort_index[first_row], K - 1)])
    unit_weights = data.w[first_row] / data.w[first_row].mean()
    if cluster:
        clusters, n_clusters = cluster_codes(data.cluster_values[first_row], where=where, treated=G > 0, name=cluster)
    else:
        clusters, n_clusters = None, None
        cluster_codes(np.arange(N), where=where, treated=G > 0, name=unit if keep_units else "observation",
                      codes=np.arange(N))
    what = "an unbalanced panel kept whole" if keep_units else "repeated cross-sections"
    if clusters is not None:  # treated/untreated clusters (those with / without treated members)
        n_treated_levels = int(np.count_nonzero(np.bincount(clusters[G > 0], minlength=n_clusters)))
        n_levels = n_clusters
    else:
        n_treated_levels, n_levels = int(np.count_nonzero(G > 0)), N
    randomization = None
    if bootstrap is None:
        reason = _ri_reason(data, covs, clusters, n_clusters, keep_units, what)
        if choose_randomization(inference, n_treated_units=n_treated_levels,
                                n_untreated_units=n_levels - n_treated_levels,
                                n_units=n_levels if reason is None else N, supported=reason, where=where):
            randomization = _cluster_randomization(data, cells, clusters, n_clusters, cluster, n_permutations, seed, where)

    reference = np.array([c["reference"] for c in cells])
    groups_cell = np.array([c["group"] for c in cells])
    times_cell = np.array([c["time"] for c in cells])
    keepers = np.flatnonzero((groups_cell <= times_cell) & ~reference)
    overall_att, overall_if = aggregate_influence(att, IF, keepers, simple_weights(groups_cell, keepers, G, unit_weights),
                                                  G=G, unit_weights=unit_weights, groups_cell=groups_cell, with_wif=True)
    estimates = np.concatenate([[overall_att], att])
    ri = omega = None
    if randomization is not None:
        omega = np.vstack([np.zeros((1, len(cells))), np.eye(len(cells))])
        omega[0, keepers] = simple_weights(groups_cell, keepers, G, unit_weights)
        ri = randomization.run_cells(omega, level)
        se, text, band, crit = ri.std_error.copy(), ri.description(), None, None
    elif bootstrap is None:
        se_cells, text, band, crit = _standard_errors(IF, att, clusters, n_clusters, None, seed, level, None, None)
        se = np.concatenate([_standard_errors(overall_if[:, None], estimates[:1], clusters, n_clusters, None, seed, level,
                                              None, None)[0], se_cells])
    else:
        se, text, band, crit = _standard_errors(np.column_stack([overall_if, IF]), estimates, clusters, n_clusters,
                                                bootstrap, seed, level, bootstrap_weights,
                                                band_columns=1 + np.flatnonzero(~reference))
    sampling = f"{N} units, each unit's rows of the influence functions summed" if keep_units else \
        f"each of the {N} observations is a sampling unit"
    note = f" [{what}: {sampling}]"
    text = text.replace("(units as the sampling level)", "(units as the sampling level)" if keep_units else "(observations)")
    if randomization is None and bootstrap is None and inference == "auto":
        note += "; randomisation inference needs repeated cross-sections without covariates and a cluster with one " \
                "cohort per cluster sampled in every period, so inference='auto' is analytic"
    if randomization is None:  # randomisation inference permutes clusters: the sampling note does not apply
        text += note
    se[1:][reference] = np.nan
    n_treated_obs = int(treated_obs.sum())
    extra = {
        "group": [np.nan] + list(groups_cell), "time": [np.nan] + list(times_cell),
        "event_time": [np.nan] + list(times_cell - groups_cell),
        "base_period": [np.nan] + [c["base_period"] for c in cells],
        "post": [True] + [c["post"] for c in cells],
        "n_treated": [n_treated_obs] + [c["n_treated"] for c in cells],
        "n_comparison": [n_rows - n_treated_obs] + [c["n_comparison"] for c in cells],
    }
    if band is not None:
        extra["band_low"], extra["band_high"] = band
    terms = ["ATT"] + [f"g={c['group']:g},t={c['time']:g}" for c in cells]
    table = group_time_table(terms, estimates, se, level=level, extra=extra, reference=reference,
                             randomization=randomization, ri=ri, omega=omega)
    pre = np.flatnonzero((times_cell < groups_cell - anticipation) & ~reference)
    diagnostics: dict[str, Any] = {
        "n_cells": len(cells),
        "cohorts": {f"{g:g}": int(n) for g, n in zip(data.cohorts, np.bincount(data.cohort_index[first_row], minlength=K + 1))},
        "n_never_treated": int(np.count_nonzero(G == 0)),
        "periods": ", ".join(f"{x:g}" for x in data.periods),
        "data_structure": what,
        "n_rows": n_rows,
    }
    if len(pre) and randomization is not None:
        test = randomization.joint_test_cells(np.eye(len(cells))[pre], att)
        diagnostics["pretrend_wald"] = {**test, "n_pre_cells": len(pre),
                                        "null": "all pre-treatment ATT(g, t) = 0 (parallel pre-trends)"}
    elif len(pre):
        test = wald_test(att[pre], _covariance(IF[:, pre], clusters, n_clusters))
        diagnostics["pretrend_wald"] = {**test, "n_pre_cells": len(pre), "method": "Wald test, analytic covariance",
                                        "null": "all pre-treatment ATT(g, t) = 0 (parallel pre-trends)"}
    else:
        diagnostics["pretrend_wald"] = "not computed: there are no pre-treatment ATT(g, t) (no cohort has two pre-treatment periods)"
    if crit is not None:
        diagnostics["band_critical_value"] = crit
    flow = data.flow
    if len(flow) == 1 or flow[-1].rows != n_rows:
        flow.append(FlowStep("estimation sample", n_rows, N if keep_units else None, what))
    assumption = ASSUMPTION + (" The composition of each cohort does not change over the sampled periods "
                               "(no compositional change across the cross-sections).")
    settings = {
        "control_group": control_group, "method": method, "method_description": _METHOD_TEXT_RC[method],
        "anticipation": anticipation, "base_period": base_period, "covariates": covs, "weights": weights,
        "cluster": cluster, "bootstrap": bootstrap, "seed": seed, "multiplier": bootstrap_weights if bootstrap else None,
        "unbalanced": "keep" if keep_units else None, "panel": keep_units, "assumption": assumption,
        "inference": "randomization" if randomization is not None else ("bootstrap" if bootstrap else "analytic"),
        "inference_note": "" if randomization is not None else note, "n_permutations": n_permutations,
    }
    return ATTGTResult(
        design="att_gt", estimand="ATT(g,t)", effects=table, headline="ATT", inference=text, n_obs=n_rows,
        outcome=outcome, level=level, n_units=N, n_treated=int(np.count_nonzero(G > 0)), n_clusters=n_clusters,
        settings=settings, warnings=tuple(log), sample_flow=tuple(flow), diagnostics=diagnostics, influence=IF,
        unit_cohort=G, unit_weights=unit_weights, unit_clusters=clusters, periods=tuple(float(x) for x in data.periods),
        randomization=randomization)


def _ri_reason(data: _Rows, covs, clusters, n_clusters, keep_units: bool, what: str) -> str | None:
    """None when start years can be permuted across clusters of repeated cross-sections, else why not."""
    if keep_units:
        return ("randomisation inference for an unbalanced panel kept whole is not implemented (the panel's units "
                "would be permuted, but the sample differs between periods)")
    if covs:
        return "with covariates each assignment needs its own comparison fits (not implemented); drop covariates"
    if clusters is None:
        return ("with repeated cross-sections start years are permuted across the clusters to which treatment was "
                "assigned: pass cluster= (e.g. the region) with one cohort per cluster")
    first = np.full(n_clusters, -1)
    first[clusters] = data.cohort_index
    if np.any(first[clusters] != data.cohort_index):
        return ("start years differ within some clusters, so adoption was not assigned by cluster and cannot be "
                "permuted across clusters; cluster at the level at which start years were decided")
    sampled = np.zeros((n_clusters, len(data.periods)), dtype=bool)
    sampled[clusters, data.period_index] = True
    if not sampled.all():
        b, t = np.argwhere(~sampled)[0]
        return (f"some clusters are not sampled in every period (e.g. cluster {data.cluster_values[clusters == b][0]!r} "
                f"in {data.periods[t]:g}), so re-assigned cohorts could lack observations in a cell (not implemented)")
    return None


def _cluster_randomization(data: _Rows, cells, clusters, n_clusters, cluster_name, n_permutations, seed, where):
    """The randomisation context that permutes cohorts across clusters (:class:`CrossSectionSums`)."""
    from impact.did._randomization import CrossSectionSums, cell_onset
    from impact.inference.randomization import adoption_scheme

    K, T = len(data.cohorts), len(data.periods)
    labels = np.full(n_clusters, K)
    labels[clusters] = data.cohort_index
    index = clusters * T + data.period_index
    S0 = np.bincount(index, weights=data.w, minlength=n_clusters * T).reshape(n_clusters, T)
    S1 = np.bincount(index, weights=data.w * data.y, minlength=n_clusters * T).reshape(n_clusters, T)
    word = f"{n_clusters} clusters ({cluster_name})"
    adoption_scheme(labels, never_code=K, where=where, unit_word=word)
    return CrossSectionSums(
        Yb=S1, labels=labels.astype(np.int64), K=K, block_units=np.ones(n_clusters), unit_word=word,
        n_permutations=int(n_permutations), seed=seed, C=np.zeros((len(cells), K + 1, T)),
        cell_cohort=np.array([c["k"] for c in cells]), cell_time=np.array([c["ti"] for c in cells]),
        cell_post=np.array([c["post"] for c in cells]), cell_reference=np.array([c["reference"] for c in cells]),
        S0=S0, cell_base=np.array([c["base"] for c in cells]),
        cell_comparison=np.array([np.asarray(c["comparison"], dtype=bool) for c in cells]),
        onset=cell_onset(cells, K, T))  # the exact pre-trend window

