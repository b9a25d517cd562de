"""Matched difference-in-differences for regions (or firms) observed over time."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from impact.data import canonical_order, check_integer, check_level, check_seed  # shared option validation
from impact.data import as_list, check_absorbing, check_binary, check_constant_within, check_option, prepare
from impact.errors import BalanceWarning, DataError, SpecError, recording_warnings, warn
from impact.matching._results import BalanceResult
from impact.matching.match import match
from impact.results import FlowStep, Result

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["matched_did", "MatchedDiDResult"]

_TREATED = "__treated__"
_WEIGHT = "__match_weight__"
_EXPOSED = "__exposed__"


@dataclass(frozen=True, kw_only=True)
class MatchedDiDResult(BalanceResult):
    """Matched DiD result: the TWFE effect on the matched panel, unit-level balance on the
    matching variables, and the outcome paths of treated and matched comparison units."""

    paths: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    matched_units: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        figs = dict(super().figures())
        if len(self.paths):
            figs["Outcome paths: treated and matched comparison"] = lambda ax=None: self.plot_paths(ax=ax)
        return figs

    def plot_paths(self, ax: Axes | None = None) -> Axes:
        """Mean outcome by period: treated units, matched comparison (weighted) and all comparison units."""
        from impact.report.plots import new_axes

        ax = new_axes(ax)
        p = self.paths
        ax.plot(p["time"], p["treated"], marker="o", color="#1f4e79", label="treated")
        ax.plot(p["time"], p["matched_comparison"], marker="o", color="#b22222", label="matched comparison")
        ax.plot(p["time"], p["all_comparison"], linestyle=":", color="#7f7f7f", label="all comparison units")
        start = self.settings.get("first_treated_period")
        if start is not None:
            ax.axvline(start, color="black", linestyle="--", linewidth=1)
        ax.set_xlabel("Period")
        ax.set_ylabel(self.outcome or "outcome")
        ax.legend()
        return ax


def matched_did(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str | None = None,
    cohort: str | None = None,
    covariates: str | list[str] | None = None,
    match_on_pre_outcomes: bool = True,
    pre_periods: int | None = None,
    method: Literal["mahalanobis", "nearest"] = "mahalanobis",
    ratio: int = 1,
    replace: bool = False,
    caliper: float | None = None,
    exclude_units: list | None = None,
    vcov: str = "cluster",
    level: float = 0.95,
    seed: int | None = None,
) -> MatchedDiDResult:
    """Match treated units to comparison units on their pre-period outcome path and
    characteristics, then estimate a two-way fixed effects DiD on the matched panel.

    Parameters
    ----------
    df : DataFrame
        Long panel: one row per unit and period.
    outcome, unit, time : str
    treatment : str, optional
        0/1 column, 1 in the periods a unit is exposed (absorbing). Give this or ``cohort``.
    cohort : str, optional
        First treated period of each unit (0 or missing = never treated).
    covariates : list of str, optional
        Unit characteristics to match on; time-varying ones are averaged over the pre-periods.
    match_on_pre_outcomes : bool
        Match on the outcome in each pre-period (before the earliest treatment start).
    pre_periods : int, optional
        Use only the last ``pre_periods`` pre-treatment periods for matching (default: all).
    method : {"mahalanobis", "nearest"}
        Unit-level matching: Mahalanobis distance, or a logit propensity score.
    ratio, replace, caliper
        As in :func:`impact.matching.match`.
    exclude_units : list, optional
        Units that may not serve as comparisons (e.g. regions running another programme).
    vcov : str
        Passed to :func:`impact.did.twfe` (default: clustered by unit).

    Returns
    -------
    MatchedDiDResult
        The TWFE effect on the matched panel (weights = matching weights), the balance of the
        matching variables, the matched units and the outcome paths.

    Notes
    -----
    The estimand is the ATT of the matched treated units,
    tau = E[Y_t(1) - Y_t(0) | D = 1, post], identified if, conditional on the matching variables
    (pre-period outcomes and characteristics), treated and comparison units would have followed
    parallel paths. Matching on pre-period outcomes guards against selection on pre-trends; it can
    also induce regression-to-the-mean bias when units were selected on transitory shocks (Daw and
    Hatfield 2018). With staggered adoption the pre-period window ends before the earliest start
    and the TWFE coefficient is a weighted average of cohort effects that can be misleading when
    effects change over time; prefer a group-time estimator on the matched sample then.

    References
    ----------
    Heckman, J. J., Ichimura, H. and Todd, P. (1997). Matching as an econometric evaluation
    estimator. Review of Economic Studies 64(4), 605-654. doi:10.2307/2971733
    Daw, J. R. and Hatfield, L. A. (2018). Matching and regression to the mean in
    difference-in-differences analysis. Health Services Research 53(6), 4138-4156.
    doi:10.1111/1475-6773.12993

    Examples
    --------
    >>> import pandas as pd, impact as im
    >>> regions = pd.read_csv(im.datasets.data_dir() / "sweden_regions.csv", dtype={"region_code": str})
    >>> res = im.matching.matched_did(regions, outcome="NB_NEWFIRMS", unit="region_code", time="year",
    ...     cohort="bsp_start", covariates=["manuf_2010", "tertiary_2010"],
    ...     exclude_units=["09", "12", "17", "20", "25"])  # doctest: +SKIP
    """
    from impact.did import twfe

    where = "matched_did"
    level = check_level(level, where)
    seed = check_seed(seed, where)
    ratio = check_integer("ratio", ratio, where, minimum=1)
    pre_periods = check_integer("pre_periods", pre_periods, where, minimum=1, allow_none=True)
    check_option("method", method, ("mahalanobis", "nearest"))
    if (treatment is None) == (cohort is None):
        raise SpecError(f"{where}: give exactly one of treatment= (0/1 exposure per period) or cohort= (first treated period).")
    covs = as_list(covariates)
    if not match_on_pre_outcomes and not covs:
        raise SpecError(f"{where}: nothing to match on: pass covariates= or keep match_on_pre_outcomes=True.")
    with recording_warnings() as log:
        if treatment is not None:
            prepared = prepare(
                df, where=where,
                roles={"outcome": outcome, "unit": unit, "time": time, "treatment": treatment, "covariates": covs},
                numeric=[outcome, time, treatment, *covs], unique=[unit, time], unit=unit, missing="drop",
            )
        else:
            prepared = _prepare_cohort(df, where, outcome, unit, time, cohort, covs)
        frame = prepared.frame
        times = np.sort(frame[time].unique())
        if treatment is not None:
            d = check_binary(frame, treatment, where).astype(float)
            check_absorbing(frame, unit=unit, time=time, treatment=treatment, where=where)
            first = frame.loc[d == 1].groupby(unit)[time].min()
            start = frame[unit].map(first)
        else:
            start = frame[cohort].where(frame[cohort] > 0)
            check_constant_within(frame, unit=unit, column=cohort, where=where)
        start = start.astype(float)
        units_start = start.groupby(frame[unit]).first()
        treated_units = units_start.index[units_start.notna()]
        if len(treated_units) == 0:
            raise DataError(f"{where}: no unit is ever treated.")
        excluded = set(exclude_units or [])
        first_start = float(units_start.dropna().min())
        pre = times[times < first_start]
        if pre.size == 0:
            raise DataError(f"{where}: there is no period before the first treatment start ({first_start:g}); matching needs pre-treatment data.")
        if pre_periods is not None:
            if pre_periods < 1:
                raise SpecError(f"{where}: pre_periods must be at least 1.")
            pre = pre[-pre_periods:]
        flow = list(prepared.flow)
        if excluded:
            drop = frame[unit].isin(excluded) & frame[unit].map(units_start).isna()
            n_removed = int(frame.loc[drop, unit].nunique())
            frame = frame.loc[~drop]
            flow.append(FlowStep("excluded comparison units", len(frame), int(frame[unit].nunique()),
                                 f"removed {n_removed} untreated unit(s) named in exclude_units"))

        # unit-level matching frame
        pre_rows = frame.loc[frame[time].isin(pre)]
        units = pd.DataFrame(index=pd.Index(frame[unit].unique(), name=unit))
        units[_TREATED] = units.index.isin(treated_units).astype(int)
        match_vars: list[str] = []
        if match_on_pre_outcomes:
            wide = pre_rows.pivot(index=unit, columns=time, values=outcome)
            wide.columns = [f"{outcome}[{t:g}]" if isinstance(t, (int, float, np.number)) else f"{outcome}[{t}]" for t in wide.columns]
            units = units.join(wide)
            match_vars += list(wide.columns)
        if covs:
            means = pre_rows.groupby(unit)[covs].mean() if len(pre_rows) else frame.groupby(unit)[covs].mean()
            units = units.join(means)
            match_vars += covs
        # greedy matching takes units in turn: an order fixed by their data makes the result independent
        # of row order and unit labels (ties between identical units are broken by label)
        units = units.iloc[canonical_order(units.to_numpy(dtype=float), units.index)]
        units = units.reset_index()
        m = match(units, treatment=_TREATED, covariates=match_vars, method="nearest" if method == "nearest" else "mahalanobis",
                  ratio=ratio, replace=replace, caliper=caliper, seed=seed)
        weights = m.weights.to_numpy()
        unit_weights = pd.Series(weights, index=units.loc[m.weights.index, unit].to_numpy())
        matched = unit_weights[unit_weights > 0]
        panel = frame.loc[frame[unit].isin(matched.index)].copy()
        panel[_WEIGHT] = panel[unit].map(matched).to_numpy()
        panel_start = panel[unit].map(units_start)
        panel[_EXPOSED] = (panel_start.notna() & (panel[time] >= panel_start)).astype(int)
        flow.append(FlowStep("matched units", len(panel), int(panel[unit].nunique()),
                             f"{m.n_matched['treated']} treated and {m.n_matched['control']} comparison unit(s) matched on "
                             f"{len(match_vars)} variable(s)"))
        res = twfe(panel, outcome=outcome, treatment=_EXPOSED, unit=unit, time=time, weights=_WEIGHT, vcov=vcov, level=level)
        # outcome paths for the figure
        t_mask = panel_start.notna()
        paths = pd.DataFrame({
            "time": times,
            "treated": panel.loc[t_mask].groupby(time)[outcome].mean().reindex(times).to_numpy(),
            "matched_comparison": panel.loc[~t_mask].groupby(time).apply(
                lambda g: np.average(g[outcome], weights=g[_WEIGHT]), include_groups=False).reindex(times).to_numpy(),
            "all_comparison": frame.loc[frame[unit].map(units_start).isna()].groupby(time)[outcome].mean().reindex(times).to_numpy(),
        })
        bal = m.balance()
        worst_before = float(np.nanmax(np.abs(bal["smd_before"])))
        worst_after = float(np.nanmax(np.abs(bal["smd_after"])))
        if worst_after > worst_before:
            warn(BalanceWarning, f"{where}: matching made balance worse: the largest absolute standardised mean "
                 f"difference rose from {worst_before:.2f} to {worst_after:.2f} "
                 f"({bal.loc[np.abs(bal['smd_after']).idxmax(), 'covariate']}). The matched comparison is no "
                 "closer to the treated units than all comparison units; match on fewer or other variables, "
                 "use a caliper, or rely on the unmatched design.")
    matched_units = pd.DataFrame({unit: matched.index, "treated": matched.index.isin(treated_units).astype(int), "weight": matched.to_numpy()})
    base = {f.name: getattr(res, f.name) for f in dataclasses.fields(Result)}
    base.update(
        design="matched_did",
        settings={**res.settings, "matching_method": method, "ratio": ratio, "replace": replace, "caliper": caliper,
                  "match_variables": match_vars, "pre_periods_used": [float(p) for p in pre],
                  "first_treated_period": first_start, "excluded_units": sorted(map(str, excluded)),
                  "assumption": "parallel trends between treated units and comparison units matched on their "
                  "pre-period outcomes and characteristics"},
        warnings=tuple(log) + tuple(w for w in res.warnings if w not in log),
        sample_flow=tuple(flow) + tuple(res.sample_flow[1:]),
        diagnostics={**res.diagnostics, "balance": bal, "n_matched_treated": m.n_matched["treated"],
                     "n_matched_control": m.n_matched["control"],
                     "max_abs_smd_before": float(np.nanmax(np.abs(bal["smd_before"]))),
                     "max_abs_smd_after": float(np.nanmax(np.abs(bal["smd_after"])))},
    )
    return MatchedDiDResult(**base, scores=None, paths=paths, matched_units=matched_units)


def _prepare_cohort(df, where, outcome, unit, time, cohort, covs):
    """Validation with a cohort column whose missing values mean never treated."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}.")
    if cohort in df.columns:
        df = df.assign(**{cohort: pd.to_numeric(df[cohort], errors="coerce").fillna(0)}) if df[cohort].isna().any() else df
    return prepare(df, where=where, roles={"outcome": outcome, "unit": unit, "time": time, "cohort": cohort, "covariates": covs},
                   numeric=[outcome, time, cohort, *covs], unique=[unit, time], unit=unit, missing="drop")
