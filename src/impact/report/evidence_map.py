"""The evidence map of the portfolio page: intervention types x indicators, grouped by level of the
effect chain, built from the results registry (every programme recorded there, not only the last run).

Each cell counts the evaluations of that indicator for that type of intervention (main evaluations of
the latest run of each programme that produced an estimate), how many found a significant increase,
a significant decrease or no significant effect (two-sided p < ``alpha`` of each evaluation's own
inference), and the highest Maryland Scientific Methods Scale level reached (:mod:`impact.report.evidence`).
Empty cells are the gaps: what has not been evaluated yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from impact.report.evidence import profile

__all__ = ["EvidenceCell", "EvidenceMap", "evidence_map", "NOT_CLASSIFIED"]

NOT_CLASSIFIED = "not classified"
_LEVELS = ("resources", "activities", "outputs", "outcomes", "impacts")


@dataclass(frozen=True)
class EvidenceCell:
    """What the registry holds for one intervention type and one indicator."""

    n_evaluations: int = 0
    n_increase: int = 0
    n_decrease: int = 0
    n_not_significant: int = 0
    highest_sms: str = ""
    programmes: tuple[str, ...] = ()

    @property
    def direction(self) -> str:
        """``"increase"``, ``"decrease"``, ``"mixed"``, ``"no significant effect"`` or ``""`` (a gap)."""
        if not self.n_evaluations:
            return ""
        if self.n_increase and self.n_decrease:
            return "mixed"
        if self.n_increase:
            return "increase"
        if self.n_decrease:
            return "decrease"
        return "no significant effect"


@dataclass(frozen=True)
class EvidenceMap:
    """Rows: indicators grouped by effect-chain level; columns: intervention types."""

    interventions: tuple[tuple[str, str], ...]  # (code, name)
    levels: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (level, ((indicator code, name), ...))
    cells: Mapping[tuple[str, str], EvidenceCell] = field(default_factory=dict)  # (indicator, intervention)
    alpha: float = 0.05

    def cell(self, indicator: str, intervention: str) -> EvidenceCell:
        return self.cells.get((indicator, intervention), EvidenceCell())

    def to_frame(self) -> pd.DataFrame:
        """One row per non-empty cell."""
        rows = [{"indicator": i, "intervention": t, "n_evaluations": c.n_evaluations, "n_increase": c.n_increase,
                 "n_decrease": c.n_decrease, "n_not_significant": c.n_not_significant, "direction": c.direction,
                 "highest_sms": c.highest_sms, "programmes": ", ".join(c.programmes)}
                for (i, t), c in sorted(self.cells.items())]
        return pd.DataFrame(rows)


def _sms_rank(level: str) -> float:
    try:
        return float(str(level).split()[0].rstrip("*"))
    except (ValueError, IndexError):
        return -1.0


def evidence_map(
    estimates: pd.DataFrame,
    *,
    intervention_names: Mapping[str, str] | None = None,
    indicator_names: Mapping[str, str] | None = None,
    alpha: float = 0.05,
) -> EvidenceMap:
    """Build the map from the registry's headline estimates of main evaluations
    (``Registry.estimates(headline_only=True)``: programme_id, indicator, indicator_level, intervention,
    design, estimate, p_value)."""
    names = dict(intervention_names or {})
    table = estimates.loc[estimates["indicator"].notna()].copy()
    table["intervention"] = table["intervention"].fillna(NOT_CLASSIFIED).astype(str)
    table["level"] = table["indicator_level"].fillna("outcomes").astype(str)
    cells: dict[tuple[str, str], EvidenceCell] = {}
    for (indicator, intervention), group in table.groupby(["indicator", "intervention"], sort=True):
        p = pd.to_numeric(group["p_value"], errors="coerce")
        significant = p < alpha
        sms = [profile(str(d or "")).sms_level for d in group["design"]]
        best = max(sms, key=_sms_rank) if sms else ""
        cells[(str(indicator), str(intervention))] = EvidenceCell(
            n_evaluations=len(group),
            n_increase=int((significant & (group["estimate"] > 0)).sum()),
            n_decrease=int((significant & (group["estimate"] < 0)).sum()),
            n_not_significant=int((~significant).sum()),
            highest_sms=best,
            programmes=tuple(sorted(set(group["programme_id"].astype(str)))),
        )
    kinds = sorted(set(table["intervention"]), key=lambda k: (k == NOT_CLASSIFIED, k))
    interventions = tuple((k, names.get(k, k)) for k in kinds)
    levels = []
    order = [lv for lv in _LEVELS if lv in set(table["level"])] + sorted(set(table["level"]) - set(_LEVELS))
    for level in order:
        codes = sorted(set(table.loc[table["level"] == level, "indicator"].astype(str)))
        levels.append((level, tuple((c, (indicator_names or {}).get(c, "")) for c in codes)))
    return EvidenceMap(interventions=interventions, levels=tuple(levels), cells=cells, alpha=alpha)


def evidence_map_context(emap: EvidenceMap) -> dict[str, Any]:
    """What the portfolio template shows: a header row and, per level, rows of cells."""
    rows = []
    for level, indicators in emap.levels:
        for i, (code, name) in enumerate(indicators):
            cells = []
            for kind, _ in emap.interventions:
                c = emap.cell(code, kind)
                cells.append({"n": c.n_evaluations, "up": c.n_increase, "down": c.n_decrease, "ns": c.n_not_significant,
                              "sms": c.highest_sms, "direction": c.direction, "programmes": ", ".join(c.programmes)})
            rows.append({"level": level, "first": i == 0, "span": len(indicators), "code": code, "name": name,
                         "cells": cells})
    return {"interventions": [{"code": k, "name": n} for k, n in emap.interventions], "rows": rows,
            "alpha": emap.alpha}
