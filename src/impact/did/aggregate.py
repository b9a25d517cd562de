"""Aggregations of group-time ATTs (Callaway & Sant'Anna 2021, section 3; R ``did::aggte``).

Every aggregate is a weighted average of ATT(g, t) with weights proportional to cohort shares
``P(G = g)`` (estimated), so its influence function is the same weighted average of the ATT(g, t)
influence functions plus the influence of the estimated weights ("wif", as R ``did``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from impact.data import check_option
from impact.did._randomization import rescaled_covariance
from impact.did.pretrends import EventTimeMethods
from impact.errors import EstimationError, SpecError
from impact.inference.vcov import wald_test
from impact.results import Result, effects_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from impact.did.att_gt import ATTGTResult

__all__ = ["ATTAggregateResult", "AggregateKind", "aggregate_att_gt"]

AggregateKind = Literal["simple", "dynamic", "group", "calendar"]
_LABEL = {"dynamic": ("e", "event_time"), "group": ("g", "group"), "calendar": ("t", "time")}
_DESCRIPTION = {
    "simple": "average of all post-treatment ATT(g, t), weighted by cohort size",
    "dynamic": "event-study: average ATT(g, g+e) across cohorts by event time e (weights: cohort size); "
               "ATT = mean of the effects for e >= 0",
    "group": "average effect per cohort over its post-treatment periods; ATT = average across cohorts "
             "weighted by cohort size",
    "calendar": "average effect per calendar period across treated cohorts; ATT = mean across periods",
}


@dataclass(frozen=True, kw_only=True)
class ATTAggregateResult(EventTimeMethods, Result):
    """An aggregation of group-time ATTs; ``kind`` says which. Dynamic results plot as an event study
    with uniform bands (when bootstrapped)."""

    kind: str = "simple"
    influence: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        if self.kind == "dynamic":
            return {"Event study (Callaway & Sant'Anna)": self.plot_event_study}
        return {"Estimates with confidence intervals": self.plot}

    def plot_event_study(self, ax: Axes | None = None) -> Axes:
        """Event-time effects with pointwise intervals and, if bootstrapped, uniform bands (shaded)."""
        from impact.report.plots import PALETTE, integer_ticks, new_axes

        ax = new_axes(ax)
        rows = self.tidy()
        rows = rows.loc[rows["event_time"].notna()].sort_values("event_time")
        e = rows["event_time"].to_numpy(float)
        colours = np.where(e < 0, PALETTE["pre"], PALETTE["post"])
        if "band_low" in rows.columns and rows["band_low"].notna().any():
            ax.fill_between(e, rows["band_low"], rows["band_high"], color=PALETTE["post"], alpha=0.15, step=None,
                            label=f"uniform {self.level:.0%} band")
        ax.vlines(e, rows["conf_low"], rows["conf_high"], colors=colours, linewidth=2, label=f"pointwise {self.level:.0%} CI")
        ax.scatter(e, rows["estimate"], c=colours, zorder=3)
        ax.axhline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
        ax.axvline(-0.5, color="black", linestyle=":", linewidth=1)
        ax.set_xlabel("Periods relative to treatment start (e)")
        integer_ticks(ax.xaxis)  # event times are whole periods: no tick at -7.5
        ax.set_ylabel("ATT(e)")
        ax.legend(frameon=False, fontsize="small")
        ax.set_title(f"Event study: {self.outcome}")
        return ax


def simple_weights(groups_cell: np.ndarray, keepers: np.ndarray, G: np.ndarray, unit_weights: np.ndarray) -> np.ndarray:
    """Cohort-share weights of the cells ``keepers``: P(G = g_k) / sum over keepers."""
    pg = _cohort_share(groups_cell[keepers], G, unit_weights)
    return pg / pg.sum()


def _cohort_share(groups: np.ndarray, G: np.ndarray, unit_weights: np.ndarray) -> np.ndarray:
    cohorts, inverse = np.unique(groups, return_inverse=True)
    share = np.array([np.mean(unit_weights * (G == g)) for g in cohorts])  # loop over cohorts, not units
    return share[inverse]


def wif_coefficients(att: np.ndarray, keepers: np.ndarray, groups_cell: np.ndarray, pg: np.ndarray,
                     cohorts: np.ndarray) -> np.ndarray:
    """Influence of estimating the cohort-share weights ``pg`` (R ``did``'s ``wif``), per cohort.

    With S = sum_k p_k and A = sum_k p_k att_k over the cells ``keepers``, unit i's term is
    ``(w_i a(i) - A) / S - (w_i c(i) - S) A / S^2 = w_i (a(i) - c(i) A / S) / S``, where a(i) sums and
    c(i) counts the kept cells of i's own cohort: the sampling weight times a coefficient of the
    unit's cohort. Returns those coefficients for ``cohorts`` (0 for cohorts without kept cells).
    """
    S = pg.sum()
    A = float(pg @ att[keepers])
    h = np.zeros(len(cohorts))
    for j, g in enumerate(cohorts):  # loop over cohorts, not units
        own = groups_cell[keepers] == g
        h[j] = (att[keepers][own].sum() - np.count_nonzero(own) * A / S) / S
    return h


def unit_wif(H: np.ndarray, cohorts: np.ndarray, G: np.ndarray, unit_weights: np.ndarray) -> np.ndarray:
    """Per-unit weight-influence terms (n x q) from per-cohort coefficients ``H`` (q x len(cohorts))."""
    pos = np.clip(np.searchsorted(cohorts, G), 0, len(cohorts) - 1)
    own = cohorts[pos] == G
    return np.where(own[:, None], H.T[pos], 0.0) * unit_weights[:, None]


def aggregate_influence(
    att: np.ndarray,
    IF: np.ndarray,
    keepers: np.ndarray,
    weights: np.ndarray,
    *,
    G: np.ndarray,
    unit_weights: np.ndarray,
    groups_cell: np.ndarray,
    with_wif: bool,
) -> tuple[float, np.ndarray]:
    """Weighted average of ATT(g, t) over ``keepers`` and its influence function (n,).

    With ``with_wif`` the weights are cohort shares P(G = g_k) / sum_k P(G = g_k) estimated from the
    sample, and their influence (:func:`wif_coefficients`) is added.
    """
    estimate = float(weights @ att[keepers])
    full = np.zeros(IF.shape[1])
    full[keepers] = weights
    influence = IF @ full  # a matrix-vector product on the stored layout, no copy of the kept columns
    if with_wif:
        cohorts = np.unique(groups_cell[keepers])
        h = wif_coefficients(att, keepers, groups_cell, _cohort_share(groups_cell[keepers], G, unit_weights), cohorts)
        influence = influence + unit_wif(h[None, :], cohorts, G, unit_weights)[:, 0]
    return estimate, influence


def aggregate_att_gt(
    result: ATTGTResult,
    kind: AggregateKind = "simple",
    *,
    min_e: float | None = None,
    max_e: float | None = None,
    balance_e: int | None = None,
    inference: Literal["conley_taber"] | None = None,
) -> ATTAggregateResult:
    """Aggregate group-time ATTs into summary effects (R ``did::aggte``).

    Parameters
    ----------
    result : ATTGTResult
        From :func:`impact.did.att_gt`.
    kind : {"simple", "dynamic", "group", "calendar"}
        "simple": one overall ATT, the average of post-treatment ATT(g, t) weighted by cohort size.
        "dynamic": effects by event time e = t - g (rows "e=-3", ..., "e=2"), overall = mean over e >= 0.
        "group": effect per cohort (rows "g=2004"), overall = cohort-size-weighted mean.
        "calendar": effect per period (rows "t=2005"), overall = mean over periods.
    min_e, max_e : float, optional
        Dynamic: event times kept. For the others, ``max_e`` limits post-treatment cells to t <= g + max_e.
    balance_e : int, optional
        Dynamic: keep only cohorts observed for at least ``balance_e`` periods after treatment, so that
        the composition of cohorts is the same for e = 0..balance_e.
    inference : {None, "conley_taber"}
        None: the fit's inference (randomisation inference by default with few treated units).
        "conley_taber" (``kind="simple"`` only): Conley & Taber (2011) residual-based inference, the
        ATT's estimation error approximated by two-way demeaned outcomes of the never-treated units
        (:mod:`impact.inference.few_treated`); needs the fit's randomisation data (balanced panel, no
        covariates) and never-treated units.

    Returns
    -------
    ATTAggregateResult
        Headline term "ATT". With the bootstrap, ``band_low``/``band_high`` are uniform bands over the
        e/g/t rows (critical value in ``diagnostics["band_critical_value"]``).

    Notes
    -----
    For weights :math:`w_{gt}` the aggregate is :math:`\\theta = \\sum_{g,t} w_{gt} ATT(g,t)` and its
    influence function :math:`\\sum w_{gt} \\psi_{gt} + \\sum ATT(g,t) \\psi^w_{gt}`, where the second term
    accounts for estimating the cohort shares (Callaway & Sant'Anna 2021, eq. 3.6 ff).

    References
    ----------
    Callaway, B., & Sant'Anna, P. H. C. (2021). Difference-in-differences with multiple time periods.
    *Journal of Econometrics* 225(2), 200-230. doi:10.1016/j.jeconom.2020.12.001
    """
    from impact.did.att_gt import _covariance, _standard_errors

    check_option("kind", kind, ("simple", "dynamic", "group", "calendar"))
    inference_choice = inference
    if inference is not None:
        check_option("inference", inference, ("conley_taber",))
    if balance_e is not None and kind != "dynamic":
        raise SpecError("balance_e applies to kind='dynamic' only.")
    cells = result.group_time()
    att = cells["estimate"].to_numpy(float)
    g = cells["group"].to_numpy(float)
    t = cells["time"].to_numpy(float)
    IF = result.influence
    G, wu = result.unit_cohort, result.unit_weights
    moments = getattr(result, "moments", None)  # out-of-core fits: cohort moments instead of unit rows
    share = moments.cohort_share if moments is not None else (lambda groups: _cohort_share(groups, G, wu))
    cohorts = np.unique(g)
    reference = np.isnan(cells["std_error"].to_numpy(float)) & (att == 0)
    max_e_ = np.inf if max_e is None else float(max_e)
    min_e_ = -np.inf if min_e is None else float(min_e)
    post = (g <= t) & (t <= g + max_e_)

    # every reported row is a weighted sum of the ATT(g, t) (a row of omega) and its influence function
    # the same sum of theirs plus, where the weights are estimated cohort shares, the sampling weight
    # times a per-cohort coefficient (a row of H): the unit-level influence functions or the cohort
    # moments of an out-of-core fit then give the covariance
    def agg(keepers: np.ndarray, with_wif: bool, values: np.ndarray = att, groups: np.ndarray = g
            ) -> tuple[float, np.ndarray, np.ndarray]:
        pg = share(groups[keepers])
        weights = pg / pg.sum()
        row = np.zeros(len(values))
        row[keepers] = weights
        h = wif_coefficients(values, keepers, groups, pg, cohorts) if with_wif else np.zeros(len(cohorts))
        return float(weights @ values[keepers]), row, h

    labels: list[float] = []
    parts: list[tuple[float, np.ndarray, np.ndarray]] = []

    def mean_of(chosen: list[tuple[float, np.ndarray, np.ndarray]]) -> tuple[float, np.ndarray, np.ndarray]:
        return (float(np.mean([p[0] for p in chosen])), np.mean([p[1] for p in chosen], axis=0),
                np.mean([p[2] for p in chosen], axis=0))

    if kind == "simple":
        keepers = np.flatnonzero(post & ~reference)
        if not len(keepers):
            raise SpecError("no post-treatment ATT(g, t) to aggregate (check max_e).")
        overall = agg(keepers, True)
    elif kind == "group":
        for c in cohorts:
            k = np.flatnonzero((g == c) & post)
            if len(k):
                labels.append(c)
                row = np.zeros(len(att))
                row[k] = 1.0 / len(k)
                parts.append((float(att[k].mean()), row, np.zeros(len(cohorts))))
        if not parts:
            raise SpecError("no post-treatment ATT(g, t) to aggregate (check max_e).")
        att_g = np.array([p[0] for p in parts])
        lab = np.array(labels)
        estimate, weights, h = agg(np.arange(len(lab)), True, att_g, lab)
        overall = (estimate, weights @ np.vstack([p[1] for p in parts]), h)
    elif kind == "dynamic":
        e_cell = t - g
        include = np.ones(len(att), dtype=bool)
        eseq = np.unique(e_cell)
        if balance_e is not None:
            t_max, t_min = max(result.periods), min(result.periods)
            include = (t_max - g) >= balance_e
            eseq = np.unique(e_cell[include])
            eseq = eseq[(eseq <= balance_e) & (eseq >= balance_e - t_max + t_min)]
        eseq = eseq[(eseq >= min_e_) & (eseq <= max_e_)]
        for e in eseq:
            k = np.flatnonzero((e_cell == e) & include)
            if len(k):
                labels.append(e)
                parts.append(agg(k, True))
        if not parts:
            raise SpecError("no event times left to aggregate (check min_e, max_e, balance_e).")
        lab = np.array(labels)
        positive = np.flatnonzero(lab >= 0)
        if not len(positive):
            raise SpecError("no event times e >= 0 to average into the overall effect.")
        overall = mean_of([parts[i] for i in positive])
    else:  # calendar
        times = np.unique(t[t >= g.min()])
        for s in times:
            k = np.flatnonzero((t == s) & post)
            if len(k):
                labels.append(s)
                parts.append(agg(k, True))
        if not parts:
            raise SpecError("no post-treatment ATT(g, t) to aggregate (check max_e).")
        overall = mean_of(parts)

    rows = [overall, *parts]
    estimates = np.array([r[0] for r in rows])
    omega = np.vstack([r[1] for r in rows])  # reported rows x cells
    H = np.vstack([r[2] for r in rows])  # reported rows x cohorts
    settings = result.settings
    if moments is not None:
        full_if = None
        covariance = moments.covariance(omega, H, cohorts)
        se = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        inference, band, crit = result.inference, None, None
    else:
        full_if = IF @ omega.T + unit_wif(H, cohorts, G, wu)
        covariance = None
        se, inference, band, crit = _standard_errors(
            full_if, estimates, result.unit_clusters, result.n_clusters, settings.get("bootstrap"), settings.get("seed"),
            result.level, settings.get("multiplier") or "rademacher", band_columns=np.arange(1, len(estimates)) if len(estimates) > 1 else np.array([0]))
    inference += settings.get("inference_note") or ""  # e.g. repeated cross-sections: what the rows are
    zero_se = se <= 1e-14 * max(1.0, float(np.nanmax(np.abs(se))))
    se = np.where(zero_se, np.nan, se)  # e.g. the reference period of a universal base period
    ri = None
    if inference_choice is not None:
        ri = _conley_taber(result, omega, estimates, kind, inference_choice)
        inference = ri.description("clusters" if "clusters" in result.randomization.unit_word else "units")
        se = np.where(zero_se, np.nan, ri.std_error)
    elif result.randomization is not None:
        ri = result.randomization.run_cells(omega, result.level)
        inference = ri.description()
        se = np.where(zero_se, np.nan, ri.std_error)
    extra: dict[str, Any] = {}
    if kind != "simple":
        prefix, column = _LABEL[kind]
        terms = ["ATT"] + [f"{prefix}={v:g}" for v in labels]
        extra[column] = [np.nan] + list(labels)
    else:
        terms = ["ATT"]
    if band is not None:
        low, high = band
        if kind == "simple":
            low, high = np.full(1, np.nan), np.full(1, np.nan)
        extra["band_low"], extra["band_high"] = low, high
    if ri is not None:
        nan_if = lambda v: np.where(zero_se, np.nan, v)  # noqa: E731
        table = effects_table(terms, estimates, se, level=result.level, p_values=nan_if(ri.p_value),
                              conf_low=nan_if(ri.conf_low), conf_high=nan_if(ri.conf_high), **extra)
        notes = (np.full(len(terms), None) if hasattr(ri, "residual") else
                 np.where(zero_se, None, result.randomization.row_notes(ri, omega)))
        if any(n is not None for n in notes):  # why an interval is unbounded, appended by tidy()
            table["inference"] = notes
    else:
        table = effects_table(terms, estimates, se, level=result.level, **extra)
    diagnostics: dict[str, Any] = {"aggregation": kind, "description": _DESCRIPTION[kind]}
    if crit is not None and kind != "simple":
        diagnostics["band_critical_value"] = crit
    if kind == "dynamic":
        lab = np.array(labels)
        pre = np.flatnonzero((lab < 0) & ~zero_se[1:])
        pretrend_ri = result.randomization if result.randomization is not None else getattr(result, "pretrend_randomization", None)
        if len(pre) and pretrend_ri is not None:  # randomisation pre-test (also above the "auto" threshold)
            diagnostics["pretrend_wald_event_time"] = {
                **pretrend_ri.joint_test_cells(omega[1 + pre], att),
                "null": "all pre-treatment event-time effects = 0",
                "event_times": [int(v) if float(v).is_integer() else float(v) for v in lab[pre]]}
            diagnostics["pretrend_test"] = diagnostics["pretrend_wald_event_time"]  # read by pretrend_test()
        elif len(pre):
            V = (covariance[np.ix_(1 + pre, 1 + pre)] if full_if is None
                 else _covariance(full_if[:, 1 + pre], result.unit_clusters, result.n_clusters))
            diagnostics["pretrend_wald_event_time"] = {
                **wald_test(estimates[1 + pre], V), "method": "Wald test, analytic covariance",
                "null": "all pre-treatment event-time effects = 0"}
    if "pretrend_wald" in result.diagnostics:
        diagnostics["pretrend_wald_group_time"] = result.diagnostics["pretrend_wald"]
    return ATTAggregateResult(
        design=f"att_gt/{kind}",
        estimand="ATT",
        effects=table,
        headline="ATT",
        inference=inference,
        n_obs=result.n_obs,
        outcome=result.outcome,
        level=result.level,
        n_units=result.n_units,
        n_treated=result.n_treated,
        n_clusters=result.n_clusters,
        settings={**settings, "aggregation": kind, "min_e": min_e, "max_e": max_e, "balance_e": balance_e,
                  **({"inference": inference_choice} if inference_choice else {})},
        warnings=result.warnings,
        sample_flow=result.sample_flow,
        diagnostics=diagnostics,
        kind=kind,
        influence=full_if,
        vcov=rescaled_covariance(covariance if full_if is None else _covariance(full_if, result.unit_clusters, result.n_clusters),
                                 se),  # table order
    )


def _conley_taber(result: ATTGTResult, omega: np.ndarray, estimates: np.ndarray, kind: str, method: str):
    """Conley-Taber inference on the simple ATT, from the fit's cohort-sum representation.

    The ATT is sum_b alpha[k_b] . Y_b over randomisation units b (cohort k_b), so unit b's weight on its
    own errors is alpha[k_b]; control residuals are the never-treated units' two-way demeaned outcomes.
    Returns an object with the fields of the randomisation result that ``aggregate_att_gt`` reads.
    """
    from types import SimpleNamespace

    from impact.inference.few_treated import residual_inference

    where = "aggregate"
    if kind != "simple":
        raise SpecError(f"{where}: inference={method!r} is available for kind='simple' only.")
    data = result.randomization
    if data is None:
        raise SpecError(
            f"{where}: inference={method!r} needs the fit's cohort-sum representation, kept when att_gt uses "
            "randomisation inference (balanced panel, no covariates, fewer than 50 treated units); refit att_gt "
            "with inference='randomization'.")
    control = data.labels == data.K
    if control.sum() < 2:
        raise EstimationError(f"{where}: inference={method!r} needs at least 2 never-treated units, found {int(control.sum())}.")
    alpha = np.einsum("c,ckt->kt", omega[0], data.C)
    A = alpha[data.labels]
    Yc = data.Yb[control]
    E = np.zeros_like(data.Yb, dtype=float)
    E[control] = Yc - Yc.mean(axis=1, keepdims=True) - Yc.mean(axis=0, keepdims=True) + Yc.mean()
    out = residual_inference(float(estimates[0]), E, A, ~control, method=method, level=result.level,
                             n_draws=data.n_permutations, seed=data.seed, where=where)
    return SimpleNamespace(p_value=np.array([out.p_value]), conf_low=np.array([out.conf_low]),
                           conf_high=np.array([out.conf_high]), std_error=np.array([out.std_error]),
                           description=out.description, residual=out)
