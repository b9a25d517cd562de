"""Rollups of monitoring records: each indicator aggregated by its library rule.

Rules (the ``aggregation`` column of the indicator library):

* ``sum``: the records of a group are added (flows: money spent, hours, jobs created).
* ``mean``: the unweighted mean of the records (the average region; not a national rate).
* ``weighted_mean``: sum(w * value) / sum(w), with w the value of the indicator's ``weight`` indicator
  (its actual, else its target) for the same programme, project, region and period. For a rate whose
  weight is its denominator this is exactly the rate of the totals: sum(numerator) / sum(denominator).
* ``last``: a running total or level reported to date. Across projects and regions the reports are
  added; with ``cumulative=True`` each series contributes its latest report at or before the period.
* ``none``: never added (distinct entities that overlapping projects, programmes or years may share,
  and stocks). A group with exactly one record passes it through; otherwise the value is missing and
  ``note`` says why.

Baselines belong to a series (programme, project, region, indicator): its latest baseline record is
used in every period in which the series has a target or an actual, and aggregated by the same rule.
``achievement`` is (actual - baseline) / (target - baseline) where a baseline exists, else
actual / target for ``direction = increase`` and target / actual for ``decrease``; both read 1.0 when
the target is met exactly and above 1.0 when it is beaten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from impact.errors import SpecError

if TYPE_CHECKING:
    from impact.monitoring.records import Monitoring

__all__ = ["BY_LEVELS", "ROLLUP_COLUMNS", "rollup"]

BY_LEVELS = ("programme", "project", "region", "municipality", "county", "nuts2")
ROLLUP_COLUMNS = ("indicator", "period", "baseline", "target", "actual", "achievement", "aggregation", "note")
_SERIES = ["programme", "project", "region", "indicator"]
_KINDS = ("baseline", "target", "actual")


def _check_by(by: Sequence[str]) -> list[str]:
    if isinstance(by, str):
        by = [by]
    by = list(by)
    bad = [b for b in by if b not in BY_LEVELS]
    if bad:
        raise SpecError(f"by={bad[0]!r} is not a rollup level; choose any of {', '.join(BY_LEVELS)} ([] for the national total).")
    if len(set(by)) != len(by):
        raise SpecError(f"by={by!r} names a level twice; name each level once.")
    return by


def _ids(arrays: Sequence[np.ndarray], sizes: Sequence[int]) -> np.ndarray:
    """One int64 id per row for the combination of non-negative integer ``arrays`` (same ids for same rows)."""
    if float(np.prod([max(n, 1) for n in sizes], dtype=float)) < 2.0**62:
        return np.ravel_multi_index(list(arrays), [max(n, 1) for n in sizes]).astype(np.int64)
    return pd.DataFrame(dict(enumerate(arrays))).groupby(list(range(len(arrays))), sort=True).ngroup().to_numpy(np.int64)


def _lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """values[keys == wanted] for each wanted key (keys sorted and unique), NaN where absent."""
    out = np.full(len(wanted), np.nan)
    if len(keys) == 0:
        return out
    pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    hit = keys[pos] == wanted
    out[hit] = values[pos[hit]]
    return out


def _expand_last(rows: pd.DataFrame, groups: list[str]) -> pd.DataFrame:
    """Rows of ``last`` indicators carried forward: each series' latest report at every later period of its group."""
    series = [*_SERIES, "kind"]
    periods = rows[[*groups, "indicator", "period"]].drop_duplicates()
    members = rows[[*dict.fromkeys([*series, *groups])]].drop_duplicates()
    grid = members.merge(periods, on=[*groups, "indicator"], how="inner").sort_values("period", kind="stable")
    reports = rows[[*series, "period", "value", "w"]].sort_values("period", kind="stable")
    filled = pd.merge_asof(grid, reports, on="period", by=series, direction="backward")
    return filled.loc[filled["value"].notna()]


def rollup(m: Monitoring, *, by: Sequence[str] = (), cumulative: bool = False) -> pd.DataFrame:
    """Aggregate ``m``'s records by ``by`` (see the module docstring for the rules). Returns a new DataFrame."""
    by = _check_by(by)
    if not isinstance(cumulative, bool):
        raise SpecError(f"cumulative must be True or False, not {cumulative!r}.")
    rec = m._records
    library = m.library
    codes = [str(c) for c in rec["indicator"].cat.categories]
    rule = {c: library[c].aggregation for c in codes}
    weight_of = {c: library[c].weight for c in codes if rule[c] == "weighted_mean" and library[c].weight}

    # integer codes of every record (the records are categoricals): all grouping below is on integers
    code = {c: rec[c].cat.codes.to_numpy(np.int64) for c in ("programme", "project", "region", "indicator")}
    kind_names = [str(k) for k in rec["kind"].cat.categories]
    kind = np.asarray([_KINDS.index(k) for k in kind_names], dtype=np.int64)[rec["kind"].cat.codes.to_numpy(np.int64)]
    period = rec["period"].to_numpy(np.int64)
    value = rec["value"].to_numpy(float)
    t0 = int(period.min())
    sizes = [len(rec[c].cat.categories) for c in ("programme", "project", "region", "indicator")]
    n_periods = int(period.max()) - t0 + 1
    series = _ids([code[c] for c in ("programme", "project", "region", "indicator")], sizes)

    # target and actual records as they are; each series' latest baseline copied to every period in which
    # the series has a target or an actual (or kept at its own period when it has neither)
    take = [np.flatnonzero(kind != 0)]
    base_values = [value[take[0]]]
    base_idx = np.flatnonzero(kind == 0)
    if len(base_idx):
        base_idx = base_idx[np.lexsort((period[base_idx], series[base_idx]))]
        latest = np.r_[series[base_idx][1:] != series[base_idx][:-1], True]
        base_idx = base_idx[latest]
        base_series = series[base_idx]
        active = take[0]
        _, first = np.unique(series[active] * n_periods + (period[active] - t0), return_index=True)
        cells = active[first]
        base_of_cell = _lookup(base_series, value[base_idx], series[cells])
        spread = ~np.isnan(base_of_cell)
        alone = base_idx[~np.isin(base_series, series[active])]
        take += [cells[spread], alone]
        base_values += [base_of_cell[spread], value[alone]]
    index = np.concatenate(take)
    rows = pd.DataFrame({c: code[c][index] for c in ("programme", "project", "region", "indicator")})
    rows["period"] = period[index]
    rows["kind"] = np.concatenate([kind[take[0]], *[np.zeros(len(t), np.int64) for t in take[1:]]])
    rows["value"] = np.concatenate(base_values)

    # weights: the weight indicator's actual (else target) in the same programme, project, region and period
    w = np.full(len(rows), np.nan)
    weight_code = np.full(len(codes), -1, dtype=np.int64)
    for i, c in enumerate(codes):
        if c in weight_of and weight_of[c] in codes:
            weight_code[i] = codes.index(weight_of[c])
    need = weight_code[rows["indicator"].to_numpy()] >= 0
    if need.any():
        cell_sizes = [*sizes[:3], n_periods, sizes[3]]
        source = np.flatnonzero((kind != 0) & np.isin(code["indicator"], weight_code[weight_code >= 0]))
        source_key = _ids([code["programme"][source], code["project"][source], code["region"][source],
                           period[source] - t0, code["indicator"][source]], cell_sizes)
        order = np.lexsort((kind[source], source_key))  # actual (2) after target (1): keep the last
        source_key, source = source_key[order], source[order]
        keep = np.r_[source_key[1:] != source_key[:-1], True]
        r = rows.loc[need]
        wanted = _ids([r["programme"].to_numpy(), r["project"].to_numpy(), r["region"].to_numpy(),
                       r["period"].to_numpy() - t0, weight_code[r["indicator"].to_numpy()]], cell_sizes)
        w[need] = _lookup(source_key[keep], value[source[keep]], wanted)
    rows["w"] = w

    labels: dict[str, np.ndarray] = {
        c: np.asarray(rec[c].cat.categories, dtype=object) for c in ("programme", "project", "region", "indicator")
    }
    region_names = pd.Series(labels["region"], dtype=object)
    for level in ("municipality", "county", "nuts2"):
        if level in by:
            mapped = m.hierarchy.up(region_names, level)
            level_codes, level_labels = pd.factorize(mapped, use_na_sentinel=True)
            labels[level] = np.append(np.asarray(level_labels, dtype=object), pd.NA)  # code -1 -> NA
            rows[level] = level_codes[rows["region"].to_numpy()]
    keys = [*by, "indicator"]
    last_codes = [c for c in codes if rule[c] == "last"]
    if cumulative and last_codes:
        is_last = np.isin(rows["indicator"].to_numpy(), [codes.index(c) for c in last_codes])
        rows = pd.concat([rows.loc[~is_last], _expand_last(rows.loc[is_last], by)], ignore_index=True)

    # one pass of bincounts over group ids (by-columns, indicator, period, kind)
    parts = [rows[c].to_numpy(np.int64) + 1 for c in keys]  # +1: an unmapped level (-1) is a group of its own
    part_sizes = [len(labels[c]) + 1 for c in keys]
    t_min = int(rows["period"].min())
    group = _ids([*parts, rows["period"].to_numpy(np.int64) - t_min, rows["kind"].to_numpy(np.int64)],
                 [*part_sizes, int(rows["period"].max()) - t_min + 1, len(_KINDS)])
    _, first, inverse = np.unique(group, return_index=True, return_inverse=True)
    v = rows["value"].to_numpy(float)
    wt_ = rows["w"].to_numpy(float)
    has_w = np.isfinite(wt_)
    grouped = rows.iloc[first][[*keys, "period", "kind"]].reset_index(drop=True)
    grouped["n"] = np.bincount(inverse).astype(float)
    grouped["s"] = np.bincount(inverse, weights=v)
    grouped["ws"] = np.bincount(inverse, weights=np.where(has_w, v * np.nan_to_num(wt_), 0.0))
    grouped["wt"] = np.bincount(inverse, weights=np.where(has_w, wt_, 0.0))
    grouped["nw"] = np.bincount(inverse, weights=has_w.astype(float))
    grouped = grouped.set_index([*keys, "period", "kind"])
    stats = grouped.unstack("kind")
    stats = stats.reindex(columns=pd.MultiIndex.from_product([["n", "s", "ws", "wt", "nw"], range(len(_KINDS))]))
    stats.columns = pd.MultiIndex.from_product([["n", "s", "ws", "wt", "nw"], list(_KINDS)])
    decoded = stats.index.to_frame(index=False)
    for column in keys:
        decoded[column] = labels[column][decoded[column].to_numpy()]
    stats.index = pd.MultiIndex.from_frame(decoded)
    stats = stats.sort_index()
    if cumulative:
        filled = stats.fillna(0.0)
        cum = filled.groupby(level=list(range(len(keys))), dropna=False, sort=False).cumsum()
        # `last` rows were carried forward already: their per-period sums are the cumulative values
        is_last = stats.index.get_level_values("indicator").isin(last_codes)
        stats = cum.where(~np.broadcast_to(is_last[:, None], cum.shape), filled)

    index = stats.index.to_frame(index=False)
    indicator = index["indicator"].astype(object).to_numpy()
    rules = np.array([rule[c] for c in indicator], dtype=object)
    out = index.copy()
    notes: list[list[str]] = [[] for _ in range(len(out))]
    withheld = [0] * len(out)  # records of a `none` indicator that were not added up
    for kind in _KINDS:
        n = stats[("n", kind)].to_numpy(dtype=float)
        s = stats[("s", kind)].to_numpy(dtype=float)
        ws = stats[("ws", kind)].to_numpy(dtype=float)
        wt = stats[("wt", kind)].to_numpy(dtype=float)
        nw = stats[("nw", kind)].to_numpy(dtype=float)
        has = np.nan_to_num(n) > 0
        value = np.full(len(out), np.nan)
        additive = np.isin(rules, ("sum", "last")) & has
        value[additive] = s[additive]
        mean = (rules == "mean") & has
        value[mean] = s[mean] / n[mean]
        weighted = (rules == "weighted_mean") & has
        complete = weighted & (nw == n) & (wt > 0)
        value[complete] = ws[complete] / wt[complete]
        single = (rules == "none") & has & (n == 1)
        value[single] = s[single]
        for i in np.flatnonzero(weighted & ~complete):
            code = indicator[i]
            notes[i].append(
                f"{kind}: {int(n[i] - nw[i])} of {int(n[i])} records lack a value of the weight {weight_of.get(code)} "
                "for the same project, region and period, so the weighted mean is not computed"
            )
        for i in np.flatnonzero((rules == "none") & has & (n > 1)):
            withheld[i] = max(withheld[i], int(n[i]))
        out[kind] = value
    for i in np.flatnonzero(withheld):
        ind = library[indicator[i]]
        notes[i].append(
            f"no total: {ind.code} counts distinct {ind.unit} (aggregation 'none'), and adding its {withheld[i]} records "
            "would count one supported more than once (by several projects, programmes or years); use one programme's own count"
        )
    n_target = np.nan_to_num(stats[("n", "target")].to_numpy(dtype=float))
    n_actual = np.nan_to_num(stats[("n", "actual")].to_numpy(dtype=float))
    for i in np.flatnonzero((n_target > 0) & (n_actual > 0) & (n_target != n_actual)):
        notes[i].append(
            f"targets come from {int(n_target[i])} record(s) and actual values from {int(n_actual[i])}: "
            "the achievement compares totals over different projects or regions"
        )
    baseline, target, actual = (out[k].to_numpy(dtype=float) for k in _KINDS)
    decrease = np.array([library[c].direction == "decrease" for c in indicator], dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        with_base = (actual - baseline) / (target - baseline)
        ratio = np.where(decrease, target / actual, actual / target)
    has_base = np.isfinite(baseline)
    achievement = np.where(has_base, with_base, ratio)
    achievement[~np.isfinite(achievement)] = np.nan
    for i in np.flatnonzero(np.isnan(achievement)):
        if withheld[i]:
            continue
        if np.isnan(target[i]):
            reason = "no target for this period"
        elif np.isnan(actual[i]):
            reason = "no actual value yet"
        elif has_base[i] and target[i] == baseline[i]:
            reason = "the target equals the baseline"
        else:
            reason = "the target is zero" if not decrease[i] else "the actual value is zero"
        notes[i].append(f"achievement not computed: {reason}")
    wrong_side = has_base & np.isfinite(target) & np.where(decrease, target > baseline, target < baseline)
    for i in np.flatnonzero(wrong_side):
        notes[i].append(f"the target lies on the wrong side of the baseline for an indicator meant to {'decrease' if decrease[i] else 'increase'}")
    out["achievement"] = achievement
    out["aggregation"] = rules
    out["note"] = ["; ".join(n_) for n_ in notes]
    out["unit"] = [library[c].unit for c in indicator]
    for column in [*by, "indicator"]:
        out[column] = out[column].astype(object)
    out["period"] = out["period"].astype(np.int64)
    return out[[*by, *ROLLUP_COLUMNS, "unit"]].reset_index(drop=True)
