"""Staggered DiD on panels larger than memory: aggregate in DuckDB, then estimate exactly.

Without covariates or weights, on a balanced panel, every group-time ATT of Callaway & Sant'Anna
(2021) is a difference of cohort means of ``Y_t - Y_b``, and every unit's influence function is an
affine map of its outcome path ``Y_i`` (T values) whose coefficients depend only on its cohort. The
analytic covariance of any aggregation, ``n^-2 sum_i psi_i psi_i'``, is therefore a sum over cohorts
of quadratic forms in three moments of each cohort: its number of units, its mean path and the
centred cross-products of its paths (T x T). DuckDB computes those in one scan that groups the rows
by unit (spilling to disk when the panel exceeds its memory limit); pandas never sees the panel. The
results equal :func:`impact.did.att_gt` with ``inference="analytic"`` (tests: to 1e-10).

The same moments give two-way fixed effects with absorbing treatment and CR1 standard errors
clustered by unit (:func:`twfe_from_duckdb`): the unit's score is linear in its path too.

Randomisation inference is not offered here: it is the default of the in-memory estimators only with
fewer than 50 treated or 50 untreated units, and such panels fit in memory. This path refuses them
(SpecError) and says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from impact.data import check_column_arguments, check_level, check_option
from impact.did._staggered import group_time_layout, group_time_table
from impact.errors import (
    DataError,
    SampleWarning,
    SmallComparisonWarning,
    SmallTreatedGroupWarning,
    SpecError,
    recording_warnings,
    warn,
)
from impact.inference.randomization import RI_MAX_UNITS, RI_TREATED_THRESHOLD
from impact.inference.vcov import wald_test
from impact.results import FlowStep, Result, effects_table

__all__ = ["CohortMoments", "att_gt_from_duckdb", "cohort_moments", "twfe_from_duckdb"]

INFERENCE_TEXT = ("analytic influence function, computed from DuckDB aggregates (units as the sampling level); "
                  "normal critical values")
_MAX_BITMASK_PERIODS = 63  # a unit's periods are checked with a 64-bit mask; more periods count distinct values


@dataclass(frozen=True)
class CohortMoments:
    """Per-cohort moments of a balanced panel's outcome paths (cohort 0: never treated).

    ``counts[k]`` units, mean path ``means[k]`` (T,), centred cross-products ``cross[k]`` (T x T) =
    sum over the cohort's units of (Y_i - mean)(Y_i - mean)'."""

    cohorts: np.ndarray
    counts: np.ndarray
    means: np.ndarray
    cross: np.ndarray
    periods: np.ndarray
    n_rows: int

    def select(self, keep: np.ndarray) -> CohortMoments:
        return CohortMoments(self.cohorts[keep], self.counts[keep], self.means[keep], self.cross[keep], self.periods,
                             int(self.counts[keep].sum()) * len(self.periods))

    def merge(self, groups: np.ndarray, into: float) -> CohortMoments:
        """Pool the cohorts flagged by ``groups`` into cohort ``into`` (parallel-axis theorem), placed last."""
        members = groups | (self.cohorts == into)
        rest = ~members
        n = self.counts[members]
        mean = n @ self.means[members] / n.sum()
        dev = self.means[members] - mean
        cross = self.cross[members].sum(axis=0) + np.einsum("k,ks,kt->st", n, dev, dev)
        return CohortMoments(np.append(self.cohorts[rest], into), np.append(self.counts[rest], n.sum()),
                             np.vstack([self.means[rest], mean]), np.concatenate([self.cross[rest], cross[None]]),
                             self.periods, self.n_rows)

    def restrict_periods(self, keep: np.ndarray) -> CohortMoments:
        return CohortMoments(self.cohorts, self.counts, self.means[:, keep], self.cross[:, keep][:, :, keep],
                             self.periods[keep], int(self.counts.sum()) * int(keep.sum()))


@dataclass(frozen=True)
class _CohortInfluence:
    """Influence functions of the ATT(g, t) as per-cohort affine maps of the centred outcome path:
    unit i of group k has ``psi_i = A[k] (Y_i - mean_k) + b[k]`` (groups: treated cohorts, then never)."""

    moments: CohortMoments
    A: np.ndarray  # groups x cells x T
    b: np.ndarray  # groups x cells

    @property
    def n_units(self) -> int:
        return int(self.moments.counts.sum())

    def cohort_share(self, groups: np.ndarray) -> np.ndarray:
        """P(G = g) for each entry of ``groups`` (the aggregation weights of :mod:`impact.did.aggregate`)."""
        lookup = dict(zip(self.moments.cohorts.tolist(), self.moments.counts.tolist()))
        return np.array([lookup.get(float(g), 0.0) for g in groups]) / self.n_units

    def covariance(self, omega: np.ndarray, H: np.ndarray, cohorts: np.ndarray) -> np.ndarray:
        """Covariance of the rows ``omega`` (weights on cells) plus weight-influence terms ``H`` (per cohort
        in ``cohorts``): ``n^-2 sum_k [B_k C_k B_k' + n_k u_k u_k']`` with B_k = omega A_k, u_k = omega b_k + h_k."""
        m = self.moments
        B = np.einsum("qp,kpt->kqt", omega, self.A)
        h = np.zeros((len(m.cohorts), omega.shape[0]))
        pos = np.clip(np.searchsorted(cohorts, m.cohorts), 0, len(cohorts) - 1)
        own = cohorts[pos] == m.cohorts
        h[own] = H.T[pos[own]]
        u = self.b @ omega.T + h
        total = np.einsum("kqt,kts,krs->qr", B, m.cross, B) + np.einsum("k,kq,kr->qr", m.counts, u, u)
        return total / float(self.n_units) ** 2


# -- reading the source -----------------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _double(value: float) -> str:
    # a string literal cast by DuckDB's float parser round-trips exactly (a bare 0.1 would be DECIMAL)
    return f"'{float(value)!r}'::DOUBLE"


def _relation(source: Any, where: str, memory_limit: str | None, temp_directory: str | None) -> Any:
    """A DuckDB relation over ``source``: a relation as given, or Parquet files opened read-only."""
    try:
        import duckdb
    except ImportError:  # pragma: no cover - the extra is part of the test install
        raise SpecError(f"{where}: needs the DuckDB package; install it with pip install \"impact[duckdb]\".") from None
    if isinstance(source, duckdb.DuckDBPyRelation):
        return source
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if os.path.isdir(path):
            path = os.path.join(path, "**", "*.parquet")
        elif not any(ch in path for ch in "*?[") and not os.path.exists(path):
            raise DataError(f"{where}: no Parquet file or folder at {path!r}.")
        config = {"memory_limit": memory_limit} if memory_limit else {}
        if temp_directory:
            config["temp_directory"] = temp_directory
        con = duckdb.connect(config=config)
        # external access stays on for this scan only: no other file can be named in the queries below
        return con.read_parquet(path)
    raise SpecError(f"{where}: source must be a DuckDB relation (e.g. con.sql('SELECT ...'), con.table('panel'), "
                    f"duckdb.read_parquet(...)) or the path of Parquet files; got {type(source).__name__}.")


_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "BOOLEAN")


def _check_columns(rel: Any, roles: dict[str, str], numeric: list[str], where: str) -> None:
    from impact.data import _require_columns

    columns = list(rel.columns)
    _require_columns(pd.DataFrame(columns=columns), roles, where)  # the in-memory message, with suggestions
    types = dict(zip(columns, (str(t) for t in rel.types)))
    for col in numeric:
        if not types[col].upper().startswith(_NUMERIC_TYPES):
            raise DataError(f"{where}: column {col!r} must be numeric but has type {types[col]} in the data source. "
                            f"Cast it in the query (e.g. CAST({col} AS DOUBLE)) or recode it as numbers.")


def _examples(rel: Any, condition: str, unit: str, time: str | None = None, grouped: bool = False) -> str:
    cols = f"{_quote(unit)}" + (f", {_quote(time)}" if time else "")
    if grouped:
        sql = f"SELECT {_quote(unit)} FROM panel GROUP BY {_quote(unit)} HAVING {condition} ORDER BY 1 LIMIT 5"
    else:
        sql = f"SELECT {cols} FROM panel WHERE {condition} ORDER BY {cols} LIMIT 5"
    rows = rel.query("panel", sql).fetchall()
    if time and not grouped:
        return ", ".join(f"{unit}={r[0]!r} at {time}={r[1]!r}" for r in rows)
    return ", ".join(repr(r[0]) for r in rows)


def cohort_moments(
    source: Any,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str | None = None,
    treatment: str | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    where: str = "cohort_moments",
) -> CohortMoments:
    """Per-cohort counts, mean outcome paths and centred cross-products of a balanced panel, in DuckDB.

    Two scans of ``source``: outcome means per period with the checks for missing, infinite and
    invalid values, then one pass grouped by unit that checks each unit's periods (balanced, no
    duplicates), that its cohort is constant (with ``treatment``: that treatment never switches off)
    and accumulates the moments by cohort. Cohort values are returned as found (0 = never treated;
    missing cohorts count as 0); what to do with late or first-period cohorts is the estimator's.
    Bad input raises the DataError of the in-memory estimators, naming up to five units or rows.
    """
    if (cohort is None) == (treatment is None):
        raise SpecError(f"{where}: give exactly one of cohort= (first treated period, 0 for never treated) "
                        "or treatment= (a 0/1 treatment-status column).")
    timing = cohort if cohort is not None else treatment
    check_column_arguments(where, outcome=outcome, unit=unit, time=time, **({"cohort": cohort} if cohort else {"treatment": treatment}))
    rel = _relation(source, where, memory_limit, temp_directory)
    roles = {"outcome": outcome, "unit": unit, "time": time, ("cohort" if cohort else "treatment"): timing}
    _check_columns(rel, roles, [outcome, time, timing], where)
    y, t, z = (f"CAST({_quote(c)} AS DOUBLE)" for c in (outcome, time, timing))
    u = _quote(unit)
    g = f"(CASE WHEN {z} IS NULL OR isnan({z}) THEN 0 ELSE {z} END)"  # a missing cohort means never treated
    bad_timing = f"{z} IS NOT NULL AND isinf({z})" if cohort else f"{z} IS NULL OR NOT isfinite({z})"
    invalid_timing = f"{g} < 0" if cohort else f"{z} NOT IN (0, 1)"
    summary = rel.query("panel", f"""
        SELECT {t} AS t, count(*) AS n, avg({y}) FILTER (WHERE isfinite({y})) AS m,
               count(*) FILTER (WHERE {y} IS NULL) AS y_missing,
               count(*) FILTER (WHERE {y} IS NOT NULL AND NOT isfinite({y})) AS y_infinite,
               count(*) FILTER (WHERE {bad_timing}) AS timing_bad,
               count(*) FILTER (WHERE {u} IS NULL) AS unit_missing,
               count(*) FILTER (WHERE {invalid_timing}) AS timing_invalid
        FROM panel GROUP BY 1 ORDER BY 1""").fetchnumpy()
    n_rows = int(summary["n"].sum()) if len(summary["n"]) else 0
    if n_rows == 0:
        raise DataError(f"{where}: the data source has no rows; pass the data to estimate from.")
    times = np.ma.filled(np.ma.asarray(summary["t"], dtype=float), np.nan)
    bad_time = int(summary["n"][~np.isfinite(times)].sum())
    counts = {f"{outcome}: missing": int(summary["y_missing"].sum()), f"{outcome}: infinite": int(summary["y_infinite"].sum()),
              f"{time}: missing or infinite": bad_time, f"{timing}: {'infinite' if cohort else 'missing or infinite'}":
              int(summary["timing_bad"].sum()), f"{unit}: missing": int(summary["unit_missing"].sum())}
    if any(counts.values()):
        detail = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        condition = (f"{y} IS NULL OR NOT isfinite({y}) OR {t} IS NULL OR NOT isfinite({t}) OR ({bad_timing}) "
                     f"OR {u} IS NULL")
        raise DataError(
            f"{where}: {sum(counts.values())} value(s) are missing or infinite in the columns used ({detail}); first "
            f"rows: {_examples(rel, condition, unit, time)}. This path needs a balanced panel without missing values "
            "(in memory, dropping those rows would leave the panel unbalanced): impute them, or drop whole units in "
            "the query.")
    if int(summary["timing_invalid"].sum()):
        if cohort:
            raise DataError(f"{where}: column {cohort!r} must hold the first treated period (0 or missing for never "
                            f"treated) but is negative for {_examples(rel, invalid_timing, unit, time)}.")
        raise DataError(f"{where}: column {treatment!r} must be coded 0/1 (or True/False) but holds other values "
                        f"for {_examples(rel, invalid_timing, unit, time)}. Recode the treatment indicator as "
                        "0 = untreated, 1 = treated.")
    periods = times
    T = len(periods)
    if T < 2:
        raise DataError(f"{where}: needs at least two periods in {time!r}; found {T}.")
    means = np.ma.filled(np.ma.asarray(summary["m"], dtype=float), np.nan)

    # one pass grouped by unit: the unit's path (centred on the period means), its period mask and cohort
    pieces = []
    for j, (p, m) in enumerate(zip(periods, means)):
        pieces.append(f"sum({y}) FILTER (WHERE {t} = {_double(p)}) - {_double(m)} AS r{j}")
    if T <= _MAX_BITMASK_PERIODS:
        index = "CASE " + " ".join(f"WHEN {t} = {_double(p)} THEN {j}" for j, p in enumerate(periods)) + " END"
        complete = f"bit_or(1::UBIGINT << ({index})::UBIGINT) = {(1 << T) - 1}::UBIGINT"
    else:
        complete = f"count(DISTINCT {t}) = {T}"
    if cohort:
        timing_cols = f"min({g}) AS g, max({g}) AS g_max"
        varying = "g <> g_max"
        cohort_key = "g"
    else:
        timing_cols = f"min({t}) FILTER (WHERE {z} = 1) AS g_on, max({t}) FILTER (WHERE {z} = 0) AS last_off"
        varying = "last_off > g_on"
        cohort_key = "coalesce(g_on, 0)"
    sums = ", ".join(f"fsum(r{j}) AS s{j}" for j in range(T))
    products = ", ".join(f"fsum(r{i} * r{j}) AS c{i}_{j}" for i in range(T) for j in range(i, T))
    per_cohort = rel.query("panel", f"""
        WITH per_unit AS (
            SELECT {u} AS unit_key, {timing_cols}, count(*) AS n_rows, {complete} AS complete, {', '.join(pieces)}
            FROM panel GROUP BY {u})
        SELECT {cohort_key} AS cohort, count(*) AS units,
               count(*) FILTER (WHERE NOT complete OR n_rows <> {T}) AS incomplete,
               count(*) FILTER (WHERE {varying}) AS varying,
               {sums}, {products}
        FROM per_unit GROUP BY 1 ORDER BY 1""").fetchnumpy()
    units = per_cohort["units"].astype(np.int64)
    n_units = int(units.sum())
    if int(per_cohort["varying"].sum()):
        k = int(per_cohort["varying"].sum())
        if cohort:
            bad = _examples(rel, f"min({g}) <> max({g})", unit, grouped=True)
            raise DataError(f"{where}: column {cohort!r} must be constant within each {unit} but varies for {k} "
                            f"unit(s): {bad}. Use one value per unit (e.g. the first treated period).")
        bad = _examples(rel, f"max({t}) FILTER (WHERE {z} = 0) > min({t}) FILTER (WHERE {z} = 1)", unit, grouped=True)
        raise DataError(f"{where}: treatment must be absorbing (once 1, it stays 1) but it switches off for {k} "
                        f"unit(s): {bad}. Code treatment as 'has ever started', or use a design for treatment "
                        "that switches on and off.")
    if int(per_cohort["incomplete"].sum()) or n_rows != n_units * T:
        k = int(per_cohort["incomplete"].sum())
        if n_rows > n_units * T or k == 0:
            bad = _examples(rel, f"count(*) <> count(DISTINCT {t})", unit, grouped=True)
            raise DataError(f"{where}: some rows share the same {unit} x {time} (units {bad}). Each {unit} x {time} "
                            "must appear once: aggregate the duplicates or fix the unit/time identifiers.")
        bad = _examples(rel, f"count(DISTINCT {t}) < {T}", unit, grouped=True)
        if not bad:
            bad = _examples(rel, f"count(*) <> count(DISTINCT {t})", unit, grouped=True)
            raise DataError(f"{where}: some rows share the same {unit} x {time} (units {bad}). Each {unit} x {time} "
                            "must appear once: aggregate the duplicates or fix the unit/time identifiers.")
        raise DataError(
            f"{where}: the panel is unbalanced: {k} of {n_units} unit(s) are not observed in all {T} periods (first: "
            f"{bad}). This path needs a balanced panel: fix those rows, or drop those units in the query.")
    sums_arr = np.column_stack([per_cohort[f"s{j}"] for j in range(T)]).astype(float)
    raw = np.zeros((len(units), T, T))
    for i in range(T):
        for j in range(i, T):
            raw[:, i, j] = raw[:, j, i] = per_cohort[f"c{i}_{j}"]
    n = units.astype(float)
    offset = sums_arr / n[:, None]  # cohort mean minus period mean
    cross = raw - np.einsum("k,ks,kt->kst", n, offset, offset)
    cohorts = per_cohort["cohort"].astype(float)
    return CohortMoments(cohorts=cohorts, counts=n, means=means[None, :] + offset, cross=cross, periods=periods,
                         n_rows=n_rows)


# -- att_gt -----------------------------------------------------------------------------------------------


def _refuse_few_units(n_treated: int, n_untreated: int, where: str, estimator: str) -> None:
    if n_treated < RI_TREATED_THRESHOLD or n_untreated < RI_TREATED_THRESHOLD:
        raise SpecError(
            f"{where}: {n_treated} treated and {n_untreated} untreated units. With fewer than "
            f"{RI_TREATED_THRESHOLD} of either, {estimator}'s default is randomisation inference, which needs the units "
            f"in memory; a panel that small fits in memory: read it (e.g. relation.df()) and call im.did.{estimator}.")


def att_gt_from_duckdb(
    source: Any,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str | None = None,
    treatment: str | None = None,
    control_group: Literal["never", "notyet"] = "never",
    anticipation: int = 0,
    base_period: Literal["varying", "universal"] = "varying",
    level: float = 0.95,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> Any:
    """Group-time ATTs (Callaway & Sant'Anna 2021) of a panel that need not fit in memory.

    The no-covariate, unweighted :func:`impact.did.att_gt` with analytic influence-function standard
    errors, computed from per-cohort moments that DuckDB aggregates (:func:`cohort_moments`); the
    result is the same :class:`~impact.did.att_gt.ATTGTResult` (``tidy()``, ``aggregate(kind)`` with
    every kind and option, the pre-trend Wald tests), equal to
    ``att_gt(df, ..., inference="analytic")`` to rounding.

    Parameters
    ----------
    source : duckdb.DuckDBPyRelation or str or path
        A DuckDB relation (``con.table("panel")``, ``con.sql("SELECT ... FROM read_parquet(...)")``,
        ``duckdb.read_parquet(...)``), or the path of a Parquet file, folder or glob (read with
        ``memory_limit`` and ``temp_directory``, where DuckDB spills).
    outcome, unit, time, cohort, treatment, control_group, anticipation, base_period, level
        As :func:`impact.did.att_gt` (give ``cohort`` or a 0/1 absorbing ``treatment``).
    memory_limit, temp_directory : str, optional
        DuckDB settings when ``source`` is a path (e.g. ``"2GB"``); a relation keeps its connection's.

    Returns
    -------
    ATTGTResult
        ``inference`` says "analytic influence function, computed from DuckDB aggregates".

    Notes
    -----
    For a unit of cohort k with outcome path Y_i, the influence function of ATT(g, t) is
    :math:`\\psi_i = a_k' (Y_i - \\bar Y_k) + b_k`: :math:`a_k = \\pm n/n_{role}\\,(e_t - e_b)` when cohort k
    is the cell's treated or comparison group (else 0) and :math:`b_k` the gap between the cohort's
    mean change and its role's mean. Any aggregation's influence function is a fixed combination
    :math:`\\Omega\\psi_i + h_k` (h: the estimated cohort shares), so its covariance is
    :math:`n^{-2}\\sum_k [\\Omega A_k C_k A_k'\\Omega' + n_k u_k u_k']` with :math:`C_k` the cohort's centred
    cross-products and :math:`u_k = \\Omega b_k + h_k`. Needs a balanced panel without missing values;
    no covariates, weights or clusters (their influence functions are not linear in the cohort moments).

    References
    ----------
    Callaway, B., & Sant'Anna, P. H. C. (2021). Difference-in-differences with multiple time periods.
    *Journal of Econometrics* 225(2), 200-230. doi:10.1016/j.jeconom.2020.12.001

    Examples
    --------
    >>> import duckdb, impact as im
    >>> mpdta = im.datasets.load("mpdta")
    >>> rel = duckdb.from_df(mpdta)
    >>> res = im.did.att_gt_from_duckdb(rel, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    >>> round(res.aggregate("dynamic").estimate, 4)
    -0.0772
    """
    from impact.did.aggregate import wif_coefficients
    from impact.did.att_gt import ASSUMPTION, ATTGTResult

    where = "att_gt_from_duckdb"
    level = check_level(level, where)
    check_option("control_group", control_group, ("never", "notyet"))
    check_option("base_period", base_period, ("varying", "universal"))
    if isinstance(anticipation, bool) or not isinstance(anticipation, int | np.integer) or anticipation < 0:
        raise SpecError(f"anticipation must be a non-negative integer number of periods; got {anticipation!r}.")
    with recording_warnings() as log:
        moments = cohort_moments(source, outcome=outcome, unit=unit, time=time, cohort=cohort, treatment=treatment,
                                 memory_limit=memory_limit, temp_directory=temp_directory, where=where)
        periods = moments.periods
        flow = [FlowStep("rows in the data source (aggregated in DuckDB)", moments.n_rows, int(moments.counts.sum()), "")]
        g_all = moments.cohorts
        off_grid = (g_all > 0) & (g_all <= periods[-1]) & ~np.isin(g_all, periods)
        if off_grid.any():
            values = ", ".join(f"{v:g}" for v in g_all[off_grid][:5])
            timing = cohort or treatment
            raise DataError(
                f"{where}: cohort {timing!r} holds {values}, which are not periods of {time!r} ({periods[0]:g}.."
                f"{periods[-1]:g}). The cohort is the first treated period: use one of the observed periods (0 for "
                "never treated).")
        late = g_all > periods[-1]
        if late.any():
            note = (f"{int(moments.counts[late].sum())} unit(s) first treated after the last period ({periods[-1]:g}) "
                    "count as never treated")
            moments = moments.merge(late, 0.0)
            flow.append(FlowStep("cohorts after the sample", moments.n_rows, int(moments.counts.sum()), note))
        first = (moments.cohorts != 0) & (moments.cohorts - anticipation <= periods[0])
        if first.any():
            k = int(moments.counts[first].sum())
            note = (f"dropped {k} unit(s) already treated in the first period {periods[0]:g}"
                    + (f" (given anticipation={anticipation})" if anticipation else "")
                    + ": they have no pre-treatment period")
            warn(SampleWarning, f"{where}: {note}.")
            moments = moments.select(~first)
            flow.append(FlowStep("treated in first period", moments.n_rows, int(moments.counts.sum()), note))
        if not (moments.cohorts == 0).any():
            if control_group == "never":
                raise DataError(
                    f"{where}: there are no never-treated units (cohort 0 or missing) to compare with. Use "
                    "control_group='notyet' to compare each cohort with units not yet treated.")
            last = float(moments.cohorts.max())
            keep_periods = periods < last - anticipation
            note = (f"no never-treated units: the last cohort ({last:g}) is the comparison group and periods "
                    f"from {last - anticipation:g} on are dropped (as R did)")
            warn(SampleWarning, f"{where}: {note}.")
            if keep_periods.sum() < 2:
                raise DataError(f"{where}: fewer than two periods remain before the last cohort starts.")
            moments = moments.merge(moments.cohorts == last, 0.0).restrict_periods(keep_periods)
            periods = moments.periods
            flow.append(FlowStep("no never-treated units", moments.n_rows, int(moments.counts.sum()), note))
        # groups in the order of the in-memory estimator: treated cohorts ascending, never treated last
        order = np.argsort(np.where(moments.cohorts == 0, np.inf, moments.cohorts), kind="stable")
        moments = CohortMoments(moments.cohorts[order], moments.counts[order], moments.means[order],
                                moments.cross[order], periods, moments.n_rows)
        cohorts = moments.cohorts[:-1]
        if len(cohorts) == 0:
            raise DataError(f"{where}: no treated cohorts remain (all units are never treated or were dropped).")
        sizes = moments.counts
        N, K = int(sizes.sum()), len(cohorts)
        _refuse_few_units(int(sizes[:K].sum()), int(sizes[K]), where, "att_gt")
        cells, A, b, att = _group_time_cells(moments, cohorts, anticipation, base_period, control_group, where)
        influence = _CohortInfluence(moments, A, b)

        groups_cell = np.array([c["group"] for c in cells])
        times_cell = np.array([c["time"] for c in cells])
        reference = np.array([c["reference"] for c in cells])
        keepers = np.flatnonzero((groups_cell <= times_cell) & ~reference)
        pg = influence.cohort_share(groups_cell[keepers])
        omega = np.vstack([np.zeros((1, len(cells))), np.eye(len(cells))])
        omega[0, keepers] = pg / pg.sum()
        H = np.zeros((len(cells) + 1, K))
        H[0] = wif_coefficients(att, keepers, groups_cell, pg, cohorts)
        covariance = influence.covariance(omega, H, cohorts)
        estimates = np.concatenate([[float(omega[0, keepers] @ att[keepers])], att])
        se = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        se[1:][reference] = np.nan
        extra = {
            "group": [np.nan, *groups_cell], "time": [np.nan, *times_cell],
            "event_time": [np.nan] + [c["time"] - c["group"] for c in cells],
            "base_period": [np.nan] + [c["base_period"] for c in cells],
            "post": [True] + [c["post"] for c in cells],
            "n_treated": [int(sizes[:K].sum())] + [c["n_treated"] for c in cells],
            "n_comparison": [int(sizes[K])] + [c["n_comparison"] for c in cells],
        }
        terms = ["ATT"] + [f"g={c['group']:g},t={c['time']:g}" for c in cells]
        table = group_time_table(terms, estimates, se, level=level, extra=extra, reference=reference)
        pre = np.flatnonzero((times_cell < groups_cell - anticipation) & ~reference)
        diagnostics: dict[str, Any] = {"n_cells": len(cells), "cohorts": {f"{g:g}": int(n) for g, n in zip(cohorts, sizes)},
                                       "n_never_treated": int(sizes[K]), "periods": ", ".join(f"{x:g}" for x in periods)}
        if len(pre):
            test = wald_test(att[pre], covariance[np.ix_(1 + pre, 1 + pre)])
            diagnostics["pretrend_wald"] = {**test, "n_pre_cells": len(pre), "method": "Wald test, analytic covariance",
                                            "null": "all pre-treatment ATT(g, t) = 0 (parallel pre-trends)"}
        else:
            diagnostics["pretrend_wald"] = "not computed: there are no pre-treatment ATT(g, t) (no cohort has two pre-treatment periods)"
    settings = {
        "control_group": control_group, "method": "reg", "method_description": "difference of cohort means (no covariates)",
        "anticipation": anticipation, "base_period": base_period, "covariates": [], "weights": None, "cluster": None,
        "bootstrap": None, "seed": None, "multiplier": None, "unbalanced": "error", "assumption": ASSUMPTION,
        "inference": "analytic", "source": "duckdb",
    }
    return ATTGTResult(
        design="att_gt", estimand="ATT(g,t)", effects=table, headline="ATT", inference=INFERENCE_TEXT,
        n_obs=N * len(periods), outcome=outcome, level=level, n_units=N, n_treated=int(sizes[:K].sum()),
        n_clusters=None, settings=settings, warnings=tuple(log), sample_flow=tuple(flow), diagnostics=diagnostics,
        influence=None, unit_cohort=None, unit_weights=None, unit_clusters=None,
        periods=tuple(float(x) for x in periods), moments=influence,
    )


def _group_time_cells(moments: CohortMoments, cohorts: np.ndarray, anticipation: int, base_period: str,
                      control_group: str, where: str):
    """The cells of :func:`impact.did._staggered.group_time_layout`, their ATTs from cohort means, and the
    per-group affine maps of their influence functions (A: groups x cells x T, b: groups x cells)."""
    sizes, periods = moments.counts, moments.periods
    N, T, K = float(sizes.sum()), len(periods), len(cohorts)
    layout = list(group_time_layout(cohorts, periods, anticipation=anticipation, base_period=base_period,
                                    control_group=control_group))
    A = np.zeros((K + 1, len(layout), T))
    b = np.zeros((K + 1, len(layout)))
    att = np.zeros(len(layout))
    cells, empty = [], []
    for j, (k, g, ti, t, base, reference, comparison) in enumerate(layout):
        n_comparison = int(sizes[comparison].sum())
        cells.append({"group": g, "time": t, "base_period": periods[base], "post": bool(g <= t), "reference": reference,
                      "n_treated": int(sizes[k]), "n_comparison": 0 if reference else n_comparison})
        if reference:
            continue
        if n_comparison == 0:
            empty.append(f"g={g:g},t={t:g}")
            continue
        d = np.zeros(T)
        d[ti] += 1.0
        d[base] -= 1.0
        change = moments.means @ d  # each group's mean of Y_t - Y_base
        treated_mean = change[k]
        comparison_mean = sizes[comparison] @ change[comparison] / n_comparison
        att[j] = treated_mean - comparison_mean
        A[k, j] = N / sizes[k] * d
        A[comparison, j] = -N / n_comparison * d
        b[comparison, j] = -N / n_comparison * (change[comparison] - comparison_mean)
    if empty:
        raise DataError(
            f"{where}: no comparison units for {len(empty)} group-time cell(s) ({', '.join(empty[:6])}"
            f"{' ...' if len(empty) > 6 else ''}) with control_group={control_group!r}. Use "
            "control_group='notyet' or drop the periods/cohorts concerned.")
    smallest = min(c["n_comparison"] for c in cells if not c["reference"])
    if smallest < 10:
        warn(SmallComparisonWarning, f"{where}: some group-time cells have only {smallest} comparison units; "
             "their ATT(g, t) and standard errors are fragile.")
    small = [f"{g:g} ({int(n)})" for g, n in zip(cohorts, sizes) if n < 5]
    if small:
        warn(SmallTreatedGroupWarning, f"{where}: treated cohort(s) with fewer than 5 units: {', '.join(small)}; "
             "the effects of each such cohort rest on very few units.")
    return cells, A, b, att


# -- twfe -------------------------------------------------------------------------------------------------


def twfe_from_duckdb(
    source: Any,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str | None = None,
    cohort: str | None = None,
    level: float = 0.95,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> Result:
    """Two-way fixed effects DiD with CR1 standard errors clustered by unit, for a panel that need not fit in memory.

    :func:`impact.did.twfe` with ``vcov="cluster"`` (Stata's CR1, the unit as cluster) on a balanced
    panel with absorbing treatment, computed from the per-cohort moments of :func:`cohort_moments`.

    Parameters
    ----------
    source : duckdb.DuckDBPyRelation or str or path
        As :func:`att_gt_from_duckdb`.
    outcome, unit, time : str
        Column names.
    treatment, cohort : str
        A 0/1 absorbing treatment column, or the first treated period (0 or missing: never treated);
        give one.
    level : float
        Confidence level.
    memory_limit, temp_directory : str, optional
        DuckDB settings when ``source`` is a path.

    Returns
    -------
    Result
        Term "ATT"; ``inference`` says "computed from DuckDB aggregates".

    Notes
    -----
    With absorbing treatment every unit of cohort k has the same two-way demeaned treatment path
    :math:`\\tilde D_k` (T values summing to zero), so
    :math:`\\hat\\beta = \\sum_k \\tilde D_k' S_k / \\sum_k n_k \\|\\tilde D_k\\|^2` (S_k: the cohort's summed paths)
    and unit i's score :math:`\\tilde D_k'(Y_i - \\bar Y_{\\cdot t}) - \\hat\\beta \\|\\tilde D_k\\|^2` is affine in
    its path: the sum of squared scores is :math:`\\sum_k [\\tilde D_k' C_k \\tilde D_k + n_k c_k^2]`. CR1
    multiplies by :math:`G/(G-1)\\,(n-1)/(n-K)` with G = N units and K = N + T parameters, as in memory.

    Examples
    --------
    >>> import duckdb, impact as im
    >>> organ = im.datasets.load("mpdta")
    >>> rel = duckdb.sql('SELECT *, CAST("first.treat" > 0 AND "year" >= "first.treat" AS INT) AS treat FROM organ')
    >>> round(im.did.twfe_from_duckdb(rel, outcome="lemp", unit="countyreal", time="year", treatment="treat").estimate, 4)
    -0.0365
    """
    where = "twfe_from_duckdb"
    level = check_level(level, where)
    with recording_warnings() as log:
        moments = cohort_moments(source, outcome=outcome, unit=unit, time=time, cohort=cohort, treatment=treatment,
                                 memory_limit=memory_limit, temp_directory=temp_directory, where=where)
        periods, n = moments.periods, moments.counts
        N, T = int(n.sum()), len(periods)
        D = ((moments.cohorts[:, None] > 0) & (periods[None, :] >= moments.cohorts[:, None])).astype(float)
        ever = D.any(axis=1)
        _refuse_few_units(int(n[ever].sum()), int(n[~ever].sum()), where, "twfe")
        if not ever.any() or D.all():
            raise DataError(f"{where}: treatment is {'0' if not ever.any() else '1'} in every row; a comparison "
                            "of treated and untreated observations is needed.")
        period_mean_D = n @ D / N
        Dt = D - D.mean(axis=1, keepdims=True) - period_mean_D + period_mean_D.mean()  # two-way demeaned, per cohort
        norms = (Dt**2).sum(axis=1)
        denominator = float(n @ norms)
        if denominator <= 1e-12 * N * T:
            raise DataError(f"{where}: treatment has no variation left after unit and period effects (every cohort "
                            "starts in the same period or never); the effect is not identified.")
        period_means = n @ moments.means / N
        beta = float(np.einsum("k,kt,kt->", n, Dt, moments.means) / denominator)
        a = Dt
        c = np.einsum("kt,kt->k", Dt, moments.means - period_means) - beta * norms
        score_ss = float(np.einsum("ks,kst,kt->", a, moments.cross, a) + n @ c**2)
        K = N + T
        n_obs = N * T
        variance = score_ss / denominator**2 * N / (N - 1) * (n_obs - 1) / (n_obs - K)
        se = float(np.sqrt(max(variance, 0.0)))
        table = effects_table(["ATT"], [beta], [se], df=float(N - 1), level=level)
    inference = (f"cluster-robust CR1 (Stata small-sample factor), {N} clusters ({unit}), t with {N - 1} df, "
                 "computed from DuckDB aggregates")
    settings = {"outcome": outcome, "treatment": treatment or cohort, "unit": unit, "time": time, "covariates": [],
                "cluster": unit, "weights": None, "vcov": "cluster", "panel": True, "absorbing": True,
                "inference": "analytic", "level": level, "source": "duckdb",
                "assumption": "Parallel trends: without the programme, treated and comparison units would have "
                              "followed the same trend; effects are assumed homogeneous across units and time."}
    diagnostics = {"fixed_effects": {"unit levels": N, "time levels": T, "absorbed parameters": N + T - 1},
                   "treated_observations": int(n @ D.sum(axis=1))}
    return Result(design="twfe", estimand="ATT", outcome=outcome, effects=table, headline="ATT", inference=inference,
                  level=level, n_obs=n_obs, n_units=N, n_treated=int(n[ever].sum()), n_clusters=N, settings=settings,
                  warnings=tuple(log), sample_flow=(FlowStep("rows in the data source (aggregated in DuckDB)", n_obs, N, ""),),
                  diagnostics=diagnostics, vcov=np.array([[se**2]]))
