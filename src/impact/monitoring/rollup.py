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


def _weights(rec: pd.DataFrame, rows: pd.DataFrame, weight_of: dict[str, str]) -> np.ndarray:
    """Each row's weight: the actual (else target) of its indicator's weight indicator, same cell."""
    w = np.full(len(rows), np.nan)
    if not weight_of:
        return w
    key = ["programme", "project", "region", "period"]
    source = rec.loc[rec["indicator"].isin(set(weight_of.values())) & (rec["kind"] != "baseline"), [*key, "indicator", "kind", "value"]]
    source = source.astype({c: object for c in ("programme", "project", "region", "indicator", "kind")})
    # prefer the actual: sort so that it comes last and keep the last per cell
    source = source.sort_values("kind", key=lambda k: k.map({"target": 0, "actual": 1})).drop_duplicates([*key, "indicator"], keep="last")
    lookup = source.rename(columns={"indicator": "weight_code", "value": "weight"})[[*key, "weight_code", "weight"]]
    wanted = rows["indicator"].astype(object).map(weight_of)
    mask = wanted.notna().to_numpy()
    if not mask.any():
        return w
    left = rows.loc[mask, key].astype({c: object for c in ("programme", "project", "region")})
    left["weight_code"] = wanted[mask].to_numpy()
    merged = left.merge(lookup, on=[*key, "weight_code"], how="left")
    w[mask] = merged["weight"].to_numpy(dtype=float)
    return w


def _expand_last(rows: pd.DataFrame, groups: list[str]) -> pd.DataFrame:
    """Rows of ``last`` indicators carried forward: each series' latest report at every later period of its group."""
    series = [*_SERIES, "kind"]
    rows = rows.astype({c: object for c in set(series) | set(groups) if c in rows.columns and c != "period"})
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

    # target and actual records as they are; baselines broadcast to every period their series is active in
    is_base = (rec["kind"] == "baseline").to_numpy()
    rows = rec.loc[~is_base, [*_SERIES, "period", "kind", "value"]]
    if is_base.any():
        base = rec.loc[is_base, [*_SERIES, "period", "value"]].sort_values("period", kind="stable")
        base = base.drop_duplicates(_SERIES, keep="last")
        active = rows[[*_SERIES, "period"]].drop_duplicates()
        spread = active.merge(base.drop(columns="period"), on=_SERIES, how="inner")
        alone = base.merge(active[_SERIES].drop_duplicates(), on=_SERIES, how="left", indicator=True)
        alone = alone.loc[alone["_merge"] == "left_only", [*_SERIES, "period", "value"]]
        extra = pd.concat([spread, alone], ignore_index=True)
        extra["kind"] = "baseline"
        rows = pd.concat([rows.astype({c: object for c in [*_SERIES, "kind"]}), extra.astype({c: object for c in _SERIES})], ignore_index=True)
    rows = rows.reset_index(drop=True)
    rows["w"] = _weights(rec, rows, weight_of)

    region = rows["region"].astype(object)
    for level in ("municipality", "county", "nuts2"):
        if level in by:
            rows[level] = m.hierarchy.up(region, level).to_numpy()
    keys = [*by, "indicator"]
    last_codes = [c for c in codes if rule[c] == "last"]
    if cumulative and last_codes:
        is_last = rows["indicator"].isin(last_codes).to_numpy()
        rows = pd.concat([rows.loc[~is_last], _expand_last(rows.loc[is_last], by)], ignore_index=True)

    rows["wv"] = rows["value"] * rows["w"]
    rows["has_w"] = np.isfinite(rows["w"]).astype(np.int64)
    rows["w0"] = rows["w"].fillna(0.0)
    rows["wv"] = rows["wv"].fillna(0.0)
    grouped = rows.groupby([*keys, "period", "kind"], observed=True, dropna=False, sort=True).agg(
        n=("value", "size"), s=("value", "sum"), ws=("wv", "sum"), wt=("w0", "sum"), nw=("has_w", "sum")
    )
    stats = grouped.unstack("kind")
    stats = stats.reindex(columns=pd.MultiIndex.from_product([["n", "s", "ws", "wt", "nw"], list(_KINDS)]))
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
            code = indicator[i]
            ind = library[code]
            notes[i].append(
                f"{kind}: {code} ({ind.unit}) is not added up (aggregation 'none'): its {int(n[i])} records may count "
                f"the same {ind.unit} more than once (supported by several projects, programmes or years); "
                "use the programme's own de-duplicated count"
            )
        out[kind] = value
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
