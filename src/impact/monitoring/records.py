"""Monitoring records: read, validate once at the boundary, hold immutably.

One long format: ``programme, project, region, indicator, period, kind, value`` with ``kind`` one of
``baseline | target | actual``, and optional ``unit`` and ``note``. ``period`` is the year the value
refers to (an integer). A record counts what one project of one programme achieved (or aimed at) in
one region in one year, for one indicator of the library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from impact.errors import DataError
from impact.monitoring.hierarchy import RegionHierarchy, sweden
from impact.programme.indicators import IndicatorLibrary, RegionLibrary, load_library

__all__ = ["KINDS", "RECORD_COLUMNS", "OPTIONAL_COLUMNS", "Monitoring", "read", "validate_records"]

KINDS = ("baseline", "target", "actual")
RECORD_COLUMNS = ("programme", "project", "region", "indicator", "period", "kind", "value")
OPTIONAL_COLUMNS = ("unit", "note")
_KEY = ("programme", "project", "region", "indicator", "period", "kind")
_SHOW = 5  # offending rows listed in an error message


def _rows(labels: Sequence[object], source: str) -> str:
    shown = ", ".join(str(x) for x in labels[:_SHOW])
    more = f" and {len(labels) - _SHOW} more" if len(labels) > _SHOW else ""
    if isinstance(labels[0], str):
        return f"{source}, {shown}{more}"
    return f"{source}, row{'s' if len(labels) > 1 else ''} {shown}{more}"


def _is_count(unit: str) -> bool:
    """Counts of things (enterprises, FTEs, hours, inhabitants) cannot be negative; money and rates may."""
    text = f" {unit.casefold()} "
    return not any(word in text for word in ("%", " per ", "sek", "eur", "growth", "change", "rate"))


def _text_column(frame: pd.DataFrame, column: str, labels: np.ndarray, source: str) -> pd.Series:
    raw = frame[column]
    values = raw.astype("string").str.strip()
    bad = values.isna() | (values == "")
    if bad.any():
        raise DataError(
            f"{_rows(labels[bad.to_numpy()], source)}: column {column!r} is empty; every record needs a {column} "
            "(fill it in or remove the record)."
        )
    return values.astype(object)


def validate_records(
    data: pd.DataFrame,
    *,
    library: IndicatorLibrary,
    hierarchy: RegionHierarchy,
    source: str = "records",
    row_labels: np.ndarray | None = None,
) -> pd.DataFrame:
    """A validated copy of ``data`` in the record format (the input is not modified).

    ``row_labels`` name each row in error messages (line numbers for a file; the index otherwise).

    Raises
    ------
    DataError
        Missing columns, empty keys, unknown kinds, indicators or regions, non-numeric, missing or
        infinite values, non-integer periods, negative counts, a unit that disagrees with the
        library, or duplicate records; each names the rows and the fix.
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"monitoring records must be a pandas DataFrame or a file path, not {type(data).__name__}.")
    missing = [c for c in RECORD_COLUMNS if c not in data.columns]
    if missing:
        raise DataError(
            f"{source}: the monitoring records lack the column(s) {', '.join(missing)}; the format is "
            f"{', '.join(RECORD_COLUMNS)} (+ optional unit, note); see analyses/README.md."
        )
    if data.empty:
        raise DataError(f"{source}: there are no monitoring records.")
    labels = np.asarray(data.index if row_labels is None else row_labels, dtype=object)
    out = pd.DataFrame(index=pd.RangeIndex(len(data)))
    for column in ("programme", "project", "indicator"):
        out[column] = _text_column(data, column, labels, source).to_numpy()

    kind = _text_column(data, "kind", labels, source).str.lower()
    bad = ~kind.isin(KINDS).to_numpy()
    if bad.any():
        raise DataError(
            f"{_rows(labels[bad], source)}: kind {kind[bad].iloc[0]!r} is not one of {', '.join(KINDS)}; "
            "say whether each value is the baseline, the target or the actual value."
        )
    out["kind"] = kind.to_numpy()

    codes = pd.Categorical(out["indicator"])
    unknown = [c for c in codes.categories if c not in library]
    if unknown:
        bad = np.isin(out["indicator"].to_numpy(), unknown)
        raise DataError(f"{_rows(labels[bad], source)}: {library.unknown_message(unknown[0])}")

    region_raw = data["region"]
    if pd.api.types.is_integer_dtype(region_raw.dtype):
        # län codes read as numbers lose their leading zero ("6" for "06")
        region_raw = region_raw.astype("string").str.zfill(2)
    region_text = _text_column(pd.DataFrame({"region": region_raw.to_numpy()}), "region", labels, source)
    region_cat = pd.Categorical(region_text)
    lookup = {r: hierarchy.aliases.get(str(r).casefold()) for r in region_cat.categories}
    lookup.update({r: hierarchy.aliases.get(str(r).zfill(2)) for r, v in lookup.items() if v is None and str(r).isdigit()})
    unknown = [r for r, v in lookup.items() if v is None]
    if unknown:
        bad = np.isin(region_text.to_numpy(), unknown)
        raise DataError(
            f"{_rows(labels[bad], source)}: region {unknown[0]!r} is not in the region hierarchy; give a län by code "
            "('06'), ISO code ('SE-F') or name ('Jönköping'), a riksområde by NUTS 2 code ('SE21'), or pass "
            "municipalities= to read() to add a municipal level."
        )
    mapped = np.asarray([lookup[r] for r in region_cat.categories], dtype=object)
    out["region"] = mapped[region_cat.codes]

    period = pd.to_numeric(data["period"].astype("string").str.strip(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(period) | (period != np.round(period))
    if bad.any():
        raise DataError(
            f"{_rows(labels[bad], source)}: period {data['period'].iloc[np.flatnonzero(bad)[0]]!r} is not a year; "
            "give the year the value refers to as an integer (e.g. 2021)."
        )
    out["period"] = period.astype(np.int64)

    raw_value = data["value"]
    if pd.api.types.is_numeric_dtype(raw_value.dtype) and not pd.api.types.is_bool_dtype(raw_value.dtype):
        value = raw_value.to_numpy(dtype=float, na_value=np.nan)
    else:
        value = pd.to_numeric(raw_value.astype("string").str.strip(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(value)
    if bad.any():
        first = raw_value.iloc[np.flatnonzero(bad)[0]]
        raise DataError(
            f"{_rows(labels[bad], source)}: value {first!r} is not a finite number; give a number "
            "(no thousands separators, NaN or infinity), or remove the record if there is no value yet."
        )
    out["value"] = value

    meta = {c: library[c] for c in codes.categories}
    count_codes = [c for c, ind in meta.items() if _is_count(ind.unit)]
    bad = (value < 0) & np.isin(out["indicator"].to_numpy(), count_codes)
    if bad.any():
        code = out["indicator"].to_numpy()[bad][0]
        raise DataError(
            f"{_rows(labels[bad], source)}: {code} counts {meta[code].unit} and cannot be negative (value "
            f"{value[bad][0]:g}); correct the record."
        )

    if "unit" in data.columns:
        unit = data["unit"].astype("string").str.strip()
        given = unit.notna() & (unit != "")
        expected = out["indicator"].map({c: ind.unit for c, ind in meta.items()})
        bad = (given & (unit.str.casefold().to_numpy() != expected.str.casefold().to_numpy())).to_numpy(dtype=bool)
        if bad.any():
            i = np.flatnonzero(bad)[0]
            raise DataError(
                f"{_rows(labels[bad], source)}: unit {unit.iloc[i]!r} of {out['indicator'].iloc[i]} disagrees with the "
                f"library, which measures it in {expected.iloc[i]!r}; convert the value or use an indicator in that unit."
            )
    if "note" in data.columns:
        out["note"] = data["note"].astype("string").fillna("").astype(object).to_numpy()
    else:
        out["note"] = ""

    dup = out.duplicated(list(_KEY), keep=False).to_numpy()
    if dup.any():
        i = np.flatnonzero(dup)[0]
        first = out.iloc[i]
        raise DataError(
            f"{_rows(labels[dup], source)}: duplicate records: more than one {first['kind']} of {first['indicator']} for "
            f"programme {first['programme']!r}, project {first['project']!r}, region {first['region']!r}, "
            f"period {first['period']}; keep one record per programme, project, region, indicator, period and kind."
        )
    for column in ("programme", "project", "region", "indicator", "kind"):
        out[column] = out[column].astype("category")
    return out


@dataclass(frozen=True)
class Monitoring:
    """Validated monitoring records with the indicator library and region hierarchy they were checked against.

    Immutable: ``records`` returns a copy; rollups return new DataFrames.
    """

    _records: pd.DataFrame
    library: IndicatorLibrary
    hierarchy: RegionHierarchy
    sources: tuple[str, ...] = ()

    @property
    def records(self) -> pd.DataFrame:
        """The records (a copy): programme, project, region (län code), indicator, period, kind, value, note."""
        frame = self._records.copy()
        for column in ("programme", "project", "region", "indicator", "kind"):
            frame[column] = frame[column].astype(object)
        return frame

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        r = self._records
        return (
            f"Monitoring({len(r):,} records, {r['programme'].nunique()} programme(s), {r['project'].nunique()} project(s), "
            f"{r['region'].nunique()} region(s), {r['indicator'].nunique()} indicator(s), "
            f"periods {r['period'].min()}-{r['period'].max()})"
        )

    @property
    def programmes(self) -> list[str]:
        return sorted(map(str, self._records["programme"].unique()))

    @property
    def indicators(self) -> list[str]:
        return sorted(map(str, self._records["indicator"].unique()))

    def rollup(self, by: Sequence[str] = (), *, cumulative: bool = False) -> pd.DataFrame:
        """Baseline, target and actual per group, indicator and period, each indicator aggregated by its rule.

        Parameters
        ----------
        by : sequence of str
            Any of ``programme``, ``project``, ``region`` (each record's own region), ``county`` (län),
            ``nuts2`` (riksområde), ``municipality``; ``[]`` for the national total.
        cumulative : bool
            Accumulate over periods up to each period (running totals of flows; the latest value of
            running totals; means over all records so far).

        Returns
        -------
        DataFrame
            The ``by`` columns, then ``indicator, period, baseline, target, actual, achievement,
            aggregation, note``. See :func:`impact.monitoring.rollup.rollup` for the rules.
        """
        from impact.monitoring.rollup import rollup

        return rollup(self, by=by, cumulative=cumulative)

    def combine(self, other: Monitoring) -> Monitoring:
        """Records of both (checked again for duplicates), e.g. one file per region."""
        return from_frame(
            pd.concat([self.records, other.records], ignore_index=True),
            library=self.library,
            hierarchy=self.hierarchy,
            source=" + ".join([*self.sources, *other.sources]) or "records",
        )


def from_frame(
    frame: pd.DataFrame, *, library: IndicatorLibrary, hierarchy: RegionHierarchy, source: str, row_labels: np.ndarray | None = None
) -> Monitoring:
    records = validate_records(frame, library=library, hierarchy=hierarchy, source=source, row_labels=row_labels)
    return Monitoring(records, library, hierarchy, (source,))


Reader = Literal["csv", "parquet", "iati"]


def _format(path: Path) -> Reader:
    suffix = path.suffix.casefold()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".xml":
        return "iati"
    raise DataError(f"{path}: cannot tell the format from the suffix {path.suffix!r}; use .csv, .parquet or IATI .xml.")


def _read_file(path: Path, *, library: IndicatorLibrary) -> tuple[pd.DataFrame, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: monitoring file not found; check the path.")
    fmt = _format(path)
    if fmt == "iati":
        from impact.monitoring.iati import read_iati

        frame = read_iati(path, library=library)
        return frame, np.asarray([f"activity {a}, {w}" for a, w in zip(frame["project"], frame.pop("where"))], dtype=object)
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path)
        except ImportError as exc:
            raise DataError(f"{path}: reading Parquet needs pyarrow ({exc}); `pip install pyarrow` or save the records as CSV.") from None
        return frame, np.arange(len(frame)) + 1
    # every column as text: region codes keep their leading zeros, values are checked as numbers later
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    return frame, np.asarray([f"line {i}" for i in range(2, len(frame) + 2)], dtype=object)


def read(
    data: pd.DataFrame | str | Path | Iterable[pd.DataFrame | str | Path],
    *,
    indicators: Iterable[RegionLibrary | str | Path] = (),
    municipalities: pd.DataFrame | Mapping[str, str] | None = None,
) -> Monitoring:
    """Read and validate monitoring records.

    Parameters
    ----------
    data : DataFrame, path, or a list of them
        Long records ``programme, project, region, indicator, period, kind, value`` (+ ``unit``,
        ``note``) as a DataFrame, a CSV or Parquet file, or an IATI 2.03 activity file (``.xml``:
        results, indicators, baselines and periods with targets and actuals, mapped to library codes
        by the indicator's ``reference/@code``). Several sources are combined and checked together.
    indicators : iterable of path or RegionLibrary
        Region or programme indicator libraries beyond the shipped ones.
    municipalities : DataFrame or mapping, optional
        A municipal level: municipality code -> län (columns ``code``, ``county``, optional ``name``).

    Returns
    -------
    Monitoring
        Immutable; ``.rollup(by=[...], cumulative=False)`` aggregates it.

    Raises
    ------
    DataError
        Bad records (see :func:`validate_records`), naming the file and row.
    SpecError
        A bad indicator library.

    Examples
    --------
    >>> import impact as im
    >>> m = im.monitoring.read("data/sweden_monitoring.csv", indicators=["analyses/indicators/se-tvv.csv"])
    >>> m.rollup(by=[]).query("indicator == 'RCR01'").tail(1)  # doctest: +SKIP
    """
    library = load_library(indicators)
    hierarchy = sweden()
    if municipalities is not None:
        hierarchy = hierarchy.with_municipalities(municipalities)
    items = [data] if isinstance(data, (pd.DataFrame, str, Path)) else list(data)
    if not items:
        raise DataError("read() got no monitoring data; pass a DataFrame, a file path or a list of them.")
    frames, labels, names = [], [], []
    for k, item in enumerate(items):
        if isinstance(item, pd.DataFrame):
            name = "records" if len(items) == 1 else f"records[{k}]"
            frames.append(item)
            labels.append(np.asarray([f"{name} row {i}" for i in item.index], dtype=object) if len(items) > 1 else np.asarray(item.index, dtype=object))
        elif isinstance(item, (str, Path)):
            path = Path(item)
            frame, lab = _read_file(path, library=library)
            name = str(path)
            frames.append(frame)
            labels.append(np.asarray([f"{path.name} {x}" if len(items) > 1 else x for x in lab], dtype=object))
        else:
            raise DataError(f"read() cannot use a {type(item).__name__}; pass a DataFrame or a path to CSV, Parquet or IATI XML.")
        names.append(name)
    if len(frames) == 1:
        frame, row_labels, source = frames[0], labels[0], names[0]
        if not isinstance(data, pd.DataFrame):
            row_labels = np.asarray([str(x) for x in row_labels], dtype=object)
    else:
        columns = [c for c in (*RECORD_COLUMNS, *OPTIONAL_COLUMNS) if any(c in f.columns for f in frames)]
        frame = pd.concat([f.reindex(columns=columns) for f in frames], ignore_index=True)
        row_labels, source = np.concatenate(labels), "monitoring records"
    records = validate_records(frame, library=library, hierarchy=hierarchy, source=source, row_labels=row_labels)
    return Monitoring(records, library, hierarchy, tuple(names))
