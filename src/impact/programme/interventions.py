"""The shipped taxonomy of intervention types (``data/interventions/taxonomy.csv``).

A programme spec names its intervention type (``[programme] intervention = "skills"``; an evaluation
may override it), so that the registry can pool estimates and the portfolio page can map evidence by
type of intervention across programmes and regions. Each type is mapped to the closest intervention
field of the EU 2021-2027 Common Provisions Regulation (Regulation (EU) 2021/1060, Annex I) where one
fits.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from functools import cache

from impact.datasets import data_dir
from impact.errors import SpecError

__all__ = ["Intervention", "intervention_types", "check_intervention"]


@dataclass(frozen=True)
class Intervention:
    """One intervention type: code, name, description and the EU 2021-2027 intervention field."""

    code: str
    name: str
    description: str
    eu_field: str = ""
    eu_field_name: str = ""


@cache
def intervention_types() -> dict[str, Intervention]:
    """The taxonomy by code, in file order."""
    path = data_dir() / "interventions" / "taxonomy.csv"
    with path.open(encoding="utf-8") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return {r["code"]: Intervention(r["code"], r["name"], r["description"], r["eu_field"] or "", r["eu_field_name"] or "")
                for r in rows}


def check_intervention(code: str) -> Intervention:
    """The intervention type ``code``, or a SpecError listing the known codes (with the closest)."""
    types = intervention_types()
    if code in types:
        return types[code]
    close = difflib.get_close_matches(code, list(types), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise SpecError(f"unknown intervention type {code!r}.{hint} Known types: {', '.join(types)} (data/interventions/taxonomy.csv).")
