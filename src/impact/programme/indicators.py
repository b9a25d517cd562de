"""The indicator library: what a programme's effect chain and evaluations may refer to by code.

The package ships two libraries as data (``data/indicators/eu_common.csv``: a selection of the
EU 2021-2027 common output and result indicators; ``national_base.csv``: a national base set).
A region adds its own indicators in its own CSV file, listed in the programme spec, without editing
the shipped files. A region's file declares the prefix every one of its codes starts with (in the
spec, or on a first line ``# prefix: SE-AB_``); it may not use the reserved prefixes of the shipped
files nor redefine a shipped code.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from impact.datasets import data_dir
from impact.errors import SpecError

__all__ = [
    "LEVELS",
    "COLUMNS",
    "SEMANTIC_COLUMNS",
    "AGGREGATIONS",
    "DIRECTIONS",
    "RESERVED_PREFIXES",
    "Indicator",
    "IndicatorLibrary",
    "RegionLibrary",
    "load_library",
    "shipped_files",
]

LEVELS = ("resources", "activities", "outputs", "outcomes", "impacts")
COLUMNS = ("code", "name", "unit", "level", "definition", "source", "parent")
# Optional columns after COLUMNS (any of them, in this order) that say how follow-up values roll up
# across projects, regions and years (impact.monitoring); data/indicators/README.md gives the defaults.
SEMANTIC_COLUMNS = ("aggregation", "direction", "numerator", "denominator", "weight")
AGGREGATIONS = ("sum", "mean", "weighted_mean", "last", "none")
DIRECTIONS = ("increase", "decrease")
RESERVED_PREFIXES = ("RCO", "RCR", "NB_")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_PREFIX_LINE = re.compile(r"^\s*#\s*prefix\s*[:=]\s*(\S+)\s*$")


@dataclass(frozen=True)
class Indicator:
    """One indicator: a code, what it measures, its unit and its level in the effect chain."""

    code: str
    name: str
    unit: str
    level: str
    definition: str
    source: str
    parent: str | None
    library: str
    aggregation: str = "none"
    direction: str = "increase"
    numerator: str | None = None
    denominator: str | None = None
    weight: str | None = None

    def label(self) -> str:
        """``CODE name (unit)``, as reports print it."""
        return f"{self.code} {self.name} ({self.unit})"


@dataclass(frozen=True)
class RegionLibrary:
    """A region's own indicator file and the prefix all its codes must start with."""

    path: Path
    prefix: str | None = None


@dataclass(frozen=True)
class IndicatorLibrary:
    """Indicators by code, from the shipped files and any region files (read-only)."""

    indicators: Mapping[str, Indicator]
    files: tuple[str, ...]

    def __contains__(self, code: object) -> bool:
        return code in self.indicators

    def __iter__(self) -> Iterator[Indicator]:
        return iter(self.indicators.values())

    def __len__(self) -> int:
        return len(self.indicators)

    def get(self, code: str) -> Indicator | None:
        """The indicator with ``code``, or None."""
        return self.indicators.get(code)

    def __getitem__(self, code: str) -> Indicator:
        try:
            return self.indicators[code]
        except KeyError:
            raise SpecError(self.unknown_message(code)) from None

    def unknown_message(self, code: str) -> str:
        """Why ``code`` is not an indicator, with the closest known codes."""
        import difflib

        close = difflib.get_close_matches(code, list(self.indicators), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return (
            f"unknown indicator {code!r}.{hint} Run `impact indicators` to list the {len(self)} known codes, "
            "or add a region library (indicator_libraries in the spec) that defines it."
        )

    def to_frame(self) -> pd.DataFrame:
        """All indicators as a table: the columns of COLUMNS and SEMANTIC_COLUMNS, then library."""
        columns = [*COLUMNS, *SEMANTIC_COLUMNS]
        rows = [{**{c: getattr(ind, c) for c in columns}, "library": ind.library} for ind in self.indicators.values()]
        return pd.DataFrame(rows, columns=[*columns, "library"])

    def search(self, text: str | None = None, *, level: str | None = None) -> pd.DataFrame:
        """Indicators whose code, name or definition contains ``text`` (case-insensitive), at ``level``."""
        table = self.to_frame()
        if level is not None:
            if level not in LEVELS:
                raise SpecError(f"level={level!r} is not a level of the effect chain; choose one of {', '.join(LEVELS)}.")
            table = table.loc[table["level"] == level]
        if text:
            hay = (table["code"] + " " + table["name"] + " " + table["definition"]).str.casefold()
            table = table.loc[_matches(hay, text)]
        return table.reset_index(drop=True)


#: Everyday words and the terms indicator names and definitions use for them, so that a search for
#: "jobs" finds the employment rate. Add a row to widen the search; stems match longer words.
SEARCH_SYNONYMS: dict[str, tuple[str, ...]] = {
    "job": ("employ", "full-time equivalent"),
    "worker": ("employ", "job"),
    "employ": ("job",),
    "firm": ("enterprise", "business", "compan"),
    "business": ("enterprise", "firm", "compan"),
    "company": ("enterprise", "firm", "business"),
    "startup": ("start-up", "new firm", "new enterprise"),
    "income": ("grp", "gdp", "wage", "earning"),
    "wage": ("income", "earning", "salar"),
    "money": ("budget", "fund", "expenditure"),
    "people": ("person", "population", "participant", "inhabitant"),
    "school": ("education", "training", "skill"),
    "research": ("r&d", "innovation"),
}


def _stem(word: str) -> str:
    word = word.casefold()
    for suffix in ("ies", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _matches(hay: pd.Series, text: str) -> pd.Series:
    """Rows whose text contains the whole phrase, or every word of it (or a synonym of that word)."""
    phrase = hay.str.contains(text.casefold(), regex=False)
    every = pd.Series(True, index=hay.index)
    for word in text.split():
        stem = _stem(word)
        terms = {stem, word.casefold(), *SEARCH_SYNONYMS.get(stem, ())}
        for key, synonyms in SEARCH_SYNONYMS.items():
            if stem.startswith(key):
                terms.update(synonyms)
        hit = pd.Series(False, index=hay.index)
        for term in terms:
            hit |= hay.str.contains(term, regex=False)
        every &= hit
    return phrase | every


def shipped_files() -> list[Path]:
    """The indicator files shipped with the package, in load order."""
    folder = data_dir() / "indicators"
    files = [folder / "eu_common.csv", folder / "national_base.csv"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SpecError(f"the shipped indicator library is missing ({', '.join(missing)}); reinstall impact.")
    return files


def _read_rows(path: Path) -> tuple[str | None, list[tuple[int, dict[str, str]]]]:
    """Declared prefix (from a ``# prefix:`` first line) and the rows with their line numbers."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError(f"{path}: indicator library file not found; check the path (relative to the spec file).") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: indicator library is not UTF-8 text ({exc.reason}); save it as UTF-8 CSV.") from None
    lines = text.splitlines()
    prefix = None
    first = 0
    while first < len(lines) and (lines[first].lstrip().startswith("#") or not lines[first].strip()):
        match = _PREFIX_LINE.match(lines[first])
        if match:
            prefix = match.group(1)
        first += 1
    reader = csv.DictReader(io.StringIO("\n".join(lines[first:])))
    header = tuple(reader.fieldnames or ())
    extra = header[len(COLUMNS):]
    if header[: len(COLUMNS)] != COLUMNS or list(extra) != [c for c in SEMANTIC_COLUMNS if c in extra]:
        raise SpecError(
            f"{path}, line {first + 1}: the header must be exactly {','.join(COLUMNS)}, optionally followed by any of "
            f"{','.join(SEMANTIC_COLUMNS)} in that order; got {','.join(header) or '(empty)'}."
        )
    rows = [(first + 2 + i, {k: (v or "").strip() for k, v in row.items() if k is not None}) for i, row in enumerate(reader)]
    return prefix, rows


def _add_file(
    path: Path,
    found: dict[str, Indicator],
    shipped: set[str],
    *,
    prefix: str | None,
    region: bool,
) -> None:
    declared, rows = _read_rows(path)
    if region:
        if prefix and declared and prefix != declared:
            raise SpecError(f"{path}: the spec declares prefix {prefix!r} but the file declares {declared!r}; use one.")
        prefix = prefix or declared
        if not prefix:
            raise SpecError(
                f"{path}: a region's indicator file must declare its own prefix, e.g. a first line "
                "'# prefix: SE-AB_' or {path = ..., prefix = \"SE-AB_\"} in indicator_libraries."
            )
        if any(prefix.upper().startswith(r) or r.startswith(prefix.upper()) for r in RESERVED_PREFIXES):
            raise SpecError(
                f"{path}: prefix {prefix!r} clashes with the reserved prefixes {', '.join(RESERVED_PREFIXES)} "
                "of the shipped libraries; choose the region's own prefix (e.g. 'SE-AB_')."
            )
    name = path.name
    for line, row in rows:
        where = f"{path}, line {line}"
        code = row["code"]
        if not _CODE.match(code):
            raise SpecError(f"{where}: code {code!r} may hold only letters, digits, '_' and '-'.")
        if code in found:
            owner = "a shipped indicator" if code in shipped else f"already defined in {found[code].library}"
            raise SpecError(
                f"{where}: code {code!r} is {owner}; a region library cannot redefine it. "
                "Give your variant a new code with your own prefix."
            )
        if region and prefix and not code.startswith(prefix):
            raise SpecError(f"{where}: code {code!r} does not start with the library's prefix {prefix!r}.")
        if row["level"] not in LEVELS:
            raise SpecError(f"{where}: level {row['level']!r} of {code} must be one of {', '.join(LEVELS)}.")
        for col in ("name", "unit"):
            if not row[col]:
                raise SpecError(f"{where}: indicator {code} has an empty {col!r}.")
        aggregation = row.get("aggregation") or default_aggregation(row["level"], row["unit"])
        if aggregation not in AGGREGATIONS:
            raise SpecError(f"{where}: aggregation {aggregation!r} of {code} must be one of {', '.join(AGGREGATIONS)}.")
        direction = row.get("direction") or "increase"
        if direction not in DIRECTIONS:
            raise SpecError(f"{where}: direction {direction!r} of {code} must be one of {', '.join(DIRECTIONS)}.")
        numerator, denominator = row.get("numerator") or None, row.get("denominator") or None
        if numerator is not None and denominator is None:
            raise SpecError(f"{where}: {code} names a numerator but no denominator; a rate needs its denominator code.")
        weight = row.get("weight") or None
        if aggregation == "weighted_mean" and weight is None:
            weight = denominator
        if aggregation == "weighted_mean" and weight is None:
            raise SpecError(
                f"{where}: {code} has aggregation 'weighted_mean' but names no weight indicator; fill the 'weight' "
                "column (e.g. the population the rate is measured on) or a denominator."
            )
        found[code] = Indicator(
            code=code,
            name=row["name"],
            unit=row["unit"],
            level=row["level"],
            definition=row["definition"],
            source=row["source"],
            parent=row["parent"] or None,
            library=name,
            aggregation=aggregation,
            direction=direction,
            numerator=numerator,
            denominator=denominator,
            weight=weight,
        )
    for line, row in rows:
        parent = row["parent"]
        if parent and parent not in found:
            raise SpecError(f"{path}, line {line}: parent {parent!r} of {row['code']} is not a known indicator.")
        ind = found[row["code"]]
        for role in ("numerator", "denominator", "weight"):
            other = getattr(ind, role)
            if other is not None and other not in found:
                raise SpecError(f"{path}, line {line}: {role} {other!r} of {ind.code} is not a known indicator.")


def default_aggregation(level: str, unit: str) -> str:
    """The rule a row without an ``aggregation`` value gets (so files written before the column still load).

    Resources and activities (money spent, hours delivered) are flows the programme counts itself, so they
    add up; everything else (distinct entities, rates, regional statistics) is not added up until the
    library says how.
    """
    return "sum" if level in ("resources", "activities") and "%" not in unit and " per " not in f" {unit} " else "none"


def load_library(regions: Iterable[RegionLibrary | Path | str] = ()) -> IndicatorLibrary:
    """Load the shipped indicators plus region libraries.

    Parameters
    ----------
    regions : iterable of RegionLibrary, Path or str
        Extra CSV files with the same columns as the shipped ones (see ``data/indicators/README.md``).
        Each declares its prefix (``RegionLibrary.prefix`` or a ``# prefix: XX_`` first line).

    Raises
    ------
    SpecError
        A file is missing or malformed, a code is redefined, or a region code lacks its prefix.
    """
    found: dict[str, Indicator] = {}
    files = shipped_files()
    for path in files:
        _add_file(path, found, set(), prefix=None, region=False)
    shipped = set(found)
    names = [p.name for p in files]
    for item in regions:
        lib = item if isinstance(item, RegionLibrary) else RegionLibrary(Path(item))
        _add_file(Path(lib.path), found, shipped, prefix=lib.prefix, region=True)
        names.append(Path(lib.path).name)
    return IndicatorLibrary(MappingProxyType(found), tuple(names))


def codes_in(library: IndicatorLibrary, codes: Sequence[str]) -> list[str]:
    """The codes among ``codes`` that the library does not know."""
    return [c for c in codes if c not in library]
