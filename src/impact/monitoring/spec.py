"""The ``[[monitoring]]`` tables of a programme spec: where its follow-up records are, and where a
monitored gross outcome meets an evaluated net effect.

```toml
[[monitoring]]
path = "../data/sweden_monitoring.csv"   # CSV, Parquet or IATI 2.03 XML, relative to the spec
programme = "se_vouchers"                # the programme's name in the records (default: [programme].id)
net_to_gross = [
  # gross: a monitored indicator; evaluation: the evaluation whose headline estimate is the net effect
  # in the same unit; per: the effect is per unit of this indicator (e.g. per firm offered), so the
  # net total is effect x its total; resources: the indicator whose total is spent (cost per net outcome)
  { gross = "SE-TVV_JOBS", evaluation = "Employees (offer, ITT)", per = "SE-TVV_OFFERS", resources = "NB_BUDGET" },
]
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from impact.errors import SpecError
from impact.programme.indicators import IndicatorLibrary

__all__ = ["MonitoringSource", "NetToGross", "parse_monitoring"]

_KEYS = {"path", "programme", "net_to_gross"}
_PAIR_KEYS = {"gross", "evaluation", "per", "resources"}


@dataclass(frozen=True)
class NetToGross:
    """A monitored gross outcome and the evaluation that estimates its net counterpart in the same unit."""

    gross: str
    evaluation: str
    per: str | None = None
    resources: str | None = None


@dataclass(frozen=True)
class MonitoringSource:
    """One file of follow-up records and what the report compares them with."""

    path: Path
    relative_path: str
    programme: str | None = None
    net_to_gross: tuple[NetToGross, ...] = ()


def parse_monitoring(
    raw: Any,
    *,
    error: Callable[[Sequence[str | int], str], SpecError],
    base: Path,
    library: IndicatorLibrary,
    evaluations: Mapping[str, str | None],
    confine: Callable[[str], Path] | None = None,
) -> tuple[MonitoringSource, ...]:
    """Validate the ``monitoring`` array of tables. ``evaluations`` maps evaluation name -> indicator code."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise error(["monitoring"], "expected [[monitoring]] tables (an array of tables), each with a path.")
    sources = []
    for i, table in enumerate(raw):
        kp: list[str | int] = ["monitoring", i]
        if not isinstance(table, Mapping):
            raise error(kp, f"expected a table, got {type(table).__name__}.")
        unknown = [k for k in table if k not in _KEYS]
        if unknown:
            raise error([*kp, unknown[0]], f"unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(_KEYS))}.")
        rel = table.get("path")
        if not isinstance(rel, str) or not rel:
            raise error(kp, "missing required key 'path' (the follow-up records: CSV, Parquet or IATI XML, relative to the spec).")
        try:
            # the spec's own rule for where data may be read from (its folder and the data roots)
            path = confine(rel) if confine is not None else (base / rel).resolve()
        except SpecError as exc:
            raise error([*kp, "path"], str(exc)) from None
        if not path.is_file():
            raise error([*kp, "path"], f"monitoring file {rel!r} not found (looked for {path}); paths are relative to the spec.")
        if path.suffix.casefold() not in (".csv", ".txt", ".parquet", ".pq", ".xml"):
            raise error([*kp, "path"], f"monitoring file {rel!r}: use .csv, .parquet or IATI .xml.")
        programme = table.get("programme")
        if programme is not None and (not isinstance(programme, str) or not programme.strip()):
            raise error([*kp, "programme"], "expected the programme's name in the records, as text.")
        pairs = []
        items = table.get("net_to_gross", [])
        if not isinstance(items, list):
            raise error([*kp, "net_to_gross"], "expected a list of {gross = ..., evaluation = ...} tables.")
        for j, item in enumerate(items):
            kpj: list[str | int] = [*kp, "net_to_gross", j]
            if not isinstance(item, Mapping):
                raise error(kpj, "expected a table {gross = ..., evaluation = ...}.")
            bad = [k for k in item if k not in _PAIR_KEYS]
            if bad:
                raise error([*kpj, bad[0]], f"unknown key {bad[0]!r}; allowed keys: {', '.join(sorted(_PAIR_KEYS))}.")
            for key in ("gross", "evaluation"):
                if not isinstance(item.get(key), str):
                    raise error(kpj, f"missing required key {key!r}.")
            for key in ("gross", "per", "resources"):
                code = item.get(key)
                if code is not None and code not in library:
                    raise error([*kpj, key], library.unknown_message(str(code)))
            name = item["evaluation"]
            if name not in evaluations:
                raise error([*kpj, "evaluation"], f"no evaluation named {name!r}; choose one of {', '.join(map(repr, evaluations))}.")
            gross_unit = library[item["gross"]].unit
            net_code = evaluations[name]
            if net_code is None or net_code not in library:
                raise error([*kpj, "evaluation"], f"evaluation {name!r} names no library indicator, so its unit is unknown; set its indicator.")
            if library[net_code].unit != gross_unit:
                raise error(
                    [*kpj, "evaluation"],
                    f"the gross outcome {item['gross']} is measured in {gross_unit!r} but evaluation {name!r} estimates "
                    f"{net_code} in {library[net_code].unit!r}; a net-to-gross ratio needs the same unit.",
                )
            pairs.append(NetToGross(item["gross"], name, item.get("per"), item.get("resources")))
        sources.append(MonitoringSource(path, rel, programme.strip() if programme else None, tuple(pairs)))
    return tuple(sources)
