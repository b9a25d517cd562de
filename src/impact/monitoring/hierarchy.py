"""Sweden's regional hierarchy for follow-up: municipalities (user-supplied) -> 21 län -> 8 riksområden.

The län (counties) and riksområden (NUTS 2 regions, Eurostat NUTS 2021) ship as data in
``data/regions/sweden_lan.csv``: the two-digit län code SCB uses, the ISO 3166-2 code, the name, the
NUTS 3 code and the NUTS 2 code and name. A record's region may be given by any of the län code
(``"06"``), ISO code (``"SE-F"``), NUTS 3 code (``"SE211"``) or name (``"Jönköping"``); it is stored
as the län code. A user may add a municipal level (kommuner, or any finer unit) as a table mapping
each municipality code to its län; records may then name municipalities.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import pandas as pd

from impact.datasets import data_dir
from impact.errors import DataError

__all__ = ["LEVELS", "RegionHierarchy", "sweden"]

# Levels from the finest to the coarsest; "region" in a rollup means each record's own region.
LEVELS = ("municipality", "county", "nuts2")


@dataclass(frozen=True)
class RegionHierarchy:
    """Regions by code at each level, and the parent of every region one level up (read-only).

    ``parents[level]`` maps a region code at ``level`` to its parent code at the next level up;
    ``names`` maps every code (any level) to its name; ``aliases`` maps every accepted spelling of a
    municipality or county (code, ISO code, NUTS 3 code, name, casefolded) to its code.
    """

    parents: Mapping[str, Mapping[str, str]]
    names: Mapping[str, str]
    aliases: Mapping[str, str]
    level_of: Mapping[str, str]

    def counties(self) -> pd.DataFrame:
        """The 21 län: code, name, nuts2, nuts2_name."""
        codes = sorted(c for c, lvl in self.level_of.items() if lvl == "county")
        nuts2 = [self.parents["county"][c] for c in codes]
        return pd.DataFrame(
            {"code": codes, "name": [self.names[c] for c in codes], "nuts2": nuts2, "nuts2_name": [self.names[n] for n in nuts2]}
        )

    def name(self, code: str) -> str:
        """The region's name, or the code itself when it has none."""
        return self.names.get(code, code)

    def up(self, codes: pd.Series, level: str) -> pd.Series:
        """Each region code in ``codes`` mapped up to ``level`` (``county`` or ``nuts2``); NA where impossible."""
        if level not in LEVELS:
            raise DataError(f"level={level!r} is not a level of the region hierarchy; choose one of {', '.join(LEVELS)}.")
        out = codes.astype(object)
        for lvl in LEVELS[: LEVELS.index(level)]:
            here = out.map(self.level_of) == lvl
            out = out.where(~here, out.map(self.parents.get(lvl, {})))
        return out.where(out.map(self.level_of) == level, pd.NA)

    def with_municipalities(self, table: pd.DataFrame | Mapping[str, str]) -> RegionHierarchy:
        """A new hierarchy with a municipal level: ``table`` maps municipality code -> län (any spelling).

        A DataFrame needs the columns ``code`` and ``county`` and may have ``name``.
        """
        if isinstance(table, Mapping):
            table = pd.DataFrame({"code": list(table), "county": list(table.values())})
        missing = [c for c in ("code", "county") if c not in table.columns]
        if missing:
            raise DataError(
                f"the municipality table lacks the column(s) {', '.join(missing)}; it needs 'code' (the municipality) "
                "and 'county' (its län, as code, ISO code or name), and may have 'name'."
            )
        parents = {k: dict(v) for k, v in self.parents.items()}
        names, aliases, level_of = dict(self.names), dict(self.aliases), dict(self.level_of)
        parents["municipality"] = {}
        for i, row in enumerate(table.itertuples(index=False)):
            code = str(row.code).strip()
            county = self.aliases.get(str(row.county).strip().casefold())
            if county is None or self.level_of.get(county) != "county":
                raise DataError(
                    f"municipality table, row {i}: county {row.county!r} of municipality {code!r} is not one of the 21 län; "
                    "give the län code ('06'), ISO code ('SE-F') or name ('Jönköping')."
                )
            if code.casefold() in aliases and aliases[code.casefold()] != code:
                raise DataError(f"municipality table, row {i}: code {code!r} is already a län code or name; use the municipality code.")
            parents["municipality"][code] = county
            level_of[code] = "municipality"
            aliases[code.casefold()] = code
            name = getattr(row, "name", None)
            if isinstance(name, str) and name.strip():
                names[code] = name.strip()
                aliases.setdefault(name.strip().casefold(), code)
        return RegionHierarchy(
            MappingProxyType({k: MappingProxyType(v) for k, v in parents.items()}),
            MappingProxyType(names),
            MappingProxyType(aliases),
            MappingProxyType(level_of),
        )


def sweden() -> RegionHierarchy:
    """The shipped hierarchy: 21 län and 8 riksområden (NUTS 2)."""
    path = data_dir() / "regions" / "sweden_lan.csv"
    if not path.is_file():
        raise DataError(f"the shipped region table {path} is missing; reinstall impact.")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    names: dict[str, str] = {}
    aliases: dict[str, str] = {}
    level_of: dict[str, str] = {}
    county_parent: dict[str, str] = {}
    for row in table.itertuples(index=False):
        names[row.code] = row.name
        names[row.nuts2] = row.nuts2_name
        level_of[row.code] = "county"
        level_of[row.nuts2] = "nuts2"
        county_parent[row.code] = row.nuts2
        for alias in (row.code, row.iso, row.iso.removeprefix("SE-"), row.nuts3, row.name):
            aliases[alias.casefold()] = row.code
    for row in table.drop_duplicates("nuts2").itertuples(index=False):
        aliases[row.nuts2.casefold()] = row.nuts2
        aliases[row.nuts2_name.casefold()] = row.nuts2
    return RegionHierarchy(
        MappingProxyType({"county": MappingProxyType(county_parent)}),
        MappingProxyType(names),
        MappingProxyType(aliases),
        MappingProxyType(level_of),
    )
