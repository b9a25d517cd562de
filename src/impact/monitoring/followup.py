"""A programme's follow-up: its records rolled up nationally and by region, the latest actual against
target per indicator, and net-to-gross ratios where an evaluation meets a monitored gross outcome.

Built once by the runner (data flows spec -> records -> rollups -> report); reports only draw it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from impact.errors import ImpactError
from impact.monitoring.additionality import Additionality, additionality
from impact.monitoring.records import Monitoring, read

__all__ = ["FollowUp", "Latest", "build_follow_up", "latest_values"]


@dataclass(frozen=True)
class Latest:
    """An indicator's most recent actual value and the target for the same period."""

    indicator: str
    period: int
    actual: float
    target: float
    achievement: float
    unit: str


@dataclass(frozen=True)
class FollowUp:
    """What the report shows about follow-up for one programme (``error`` says why it is missing)."""

    programme: str
    sources: tuple[str, ...]
    monitoring: Monitoring | None = None
    national: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    cumulative: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    regional: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    latest: dict[str, Latest] = field(default_factory=dict)
    net_to_gross: tuple[Additionality, ...] = ()
    problems: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary for results.json."""
        return {
            "programme": self.programme,
            "sources": list(self.sources),
            "error": self.error,
            "records": 0 if self.monitoring is None else len(self.monitoring),
            "latest": {c: {"period": v.period, "actual": v.actual, "target": _finite(v.target),
                           "achievement": _finite(v.achievement), "unit": v.unit} for c, v in self.latest.items()},
            "net_to_gross": [a.to_dict() for a in self.net_to_gross],
            "problems": list(self.problems),
        }


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def latest_values(table: pd.DataFrame) -> dict[str, Latest]:
    """Per indicator, the latest period with an actual value in a rollup table (one group)."""
    out: dict[str, Latest] = {}
    have = table.loc[table["actual"].notna()].sort_values(["indicator", "period"])
    for code, rows in have.groupby("indicator", sort=True):
        last = rows.iloc[-1]
        out[str(code)] = Latest(str(code), int(last["period"]), float(last["actual"]), float(last["target"]),
                                float(last["achievement"]), str(last["unit"]))
    return out


def _headline(result: Any) -> tuple[float, float, float | None]:
    table = result.tidy()
    row = table.loc[table["term"] == result.headline] if "term" in table and getattr(result, "headline", None) else table.iloc[:0]
    row = row.iloc[0] if len(row) else table.iloc[0]
    df = row.get("df") if hasattr(row, "get") else None
    df = float(df) if df is not None and pd.notna(df) and np.isfinite(df) else None
    return float(result.estimate), float(result.std_error), df


def build_follow_up(spec: Any, outcomes: Sequence[Any]) -> FollowUp | None:
    """Read the spec's ``[[monitoring]]`` records and roll them up; None when the spec has none."""
    sources = tuple(getattr(spec, "monitoring", ()) or ())
    if not sources:
        return None
    programme = spec.programme.id
    names = tuple(s.relative_path for s in sources)
    wanted = {s.programme or programme for s in sources}
    try:
        own = read([s.path for s in sources], indicators=spec.indicator_libraries, programmes=wanted)
    except ImpactError as exc:
        hint = " (set programme = ... in [[monitoring]] to the name the records use)" if "hold no programme" in str(exc) else ""
        return FollowUp(programme, names, error=f"{exc}{hint}")
    m = own
    national = own.rollup(by=[])
    cumulative = own.rollup(by=[], cumulative=True)
    regional = own.rollup(by=["region"])
    problems: list[str] = []
    pairs: list[Additionality] = []
    by_name = {o.name: o for o in outcomes}
    totals = cumulative.sort_values("period").groupby("indicator").tail(1).set_index("indicator")
    for source in sources:
        for pair in source.net_to_gross:
            outcome = by_name.get(pair.evaluation)
            if outcome is None or outcome.result is None:
                problems.append(f"net-to-gross for {pair.gross}: the evaluation {pair.evaluation!r} has no result.")
                continue
            if pair.gross not in totals.index or not np.isfinite(totals.loc[pair.gross, "actual"]):
                problems.append(f"net-to-gross for {pair.gross}: no monitored total of {pair.gross}.")
                continue
            estimate, se, df = _headline(outcome.result)
            scale = 1.0
            if pair.per is not None:
                if pair.per not in totals.index or not np.isfinite(totals.loc[pair.per, "actual"]):
                    problems.append(f"net-to-gross for {pair.gross}: no monitored total of {pair.per} to scale the effect by.")
                    continue
                scale = float(totals.loc[pair.per, "actual"])
            resources = None
            if pair.resources is not None and pair.resources in totals.index and np.isfinite(totals.loc[pair.resources, "actual"]):
                resources = float(totals.loc[pair.resources, "actual"])
            try:
                pairs.append(
                    additionality(
                        gross=float(totals.loc[pair.gross, "actual"]), net=estimate * scale, net_std_error=se * scale,
                        gross_indicator=pair.gross, net_evaluation=pair.evaluation, unit=m.library[pair.gross].unit,
                        resources=resources, resources_unit=m.library[pair.resources].unit if resources is not None else None,
                        df=df,
                    )
                )
            except ImpactError as exc:
                problems.append(f"net-to-gross for {pair.gross}: {exc}")
    return FollowUp(programme, names, own, national, cumulative, regional, latest_values(national), tuple(pairs), tuple(problems))
