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


def _rows(picked: tuple[list[object], int], source: str) -> str:
    labels, total = picked
    shown = ", ".join(str(x) for x in labels)
    more = f" and {total - len(labels)} more" if total > len(labels) else ""
    if isinstance(labels[0], str):
        return f"{source}, {shown}{more}"
    return f"{source}, row{'s' if total > 1 else ''} {shown}{more}"


def _is_count(unit: str) -> bool:
    """Counts of things (enterprises, FTEs, hours, inhabitants) cannot be negative; money and rates may."""
    text = f" {unit.casefold()} "
    return not any(word in text for word in ("%", " per ", "sek", "eur", "growth", "change", "rate"))


def _categorical(raw: pd.Series) -> pd.Categorical:
    """``raw`` as a categorical of stripped text, empty text as missing: work on the few distinct values only."""
    cat = pd.Categorical(raw).remove_unused_categories()
    text = [None if pd.isna(c) else str(c).strip() for c in cat.categories]
    text = [t if t else None for t in text]
    uniques = sorted({t for t in text if t is not None})
    position = {t: i for i, t in enumerate(uniques)}
    remap = np.asarray([position.get(t, -1) if t is not None else -1 for t in text] + [-1], dtype=np.int64)
    codes = remap[np.asarray(cat.codes, dtype=np.int64)]  # code -1 (missing) indexes the trailing -1
    return pd.Categorical.from_codes(codes, categories=pd.Index(uniques, dtype=object))


def _text_column(raw: pd.Series, column: str, labels: Labels, source: str) -> pd.Categorical:
    values = _categorical(raw)
    bad = np.asarray(values.codes) < 0
    if bad.any():
        raise DataError(
            f"{_rows(labels.pick(bad), source)}: column {column!r} is empty; every record needs a {column} "
            "(fill it in or remove the record)."
        )
    return values


def _replace_categories(values: pd.Categorical, mapping: Mapping[str, str]) -> pd.Categorical:
    """``values`` with every category replaced by ``mapping[category]`` (several may map to one)."""
    new = [mapping[c] for c in values.categories]
    uniques = sorted(set(new))
    position = {t: i for i, t in enumerate(uniques)}
    remap = np.asarray([position[t] for t in new], dtype=np.int64)
    return pd.Categorical.from_codes(remap[np.asarray(values.codes, dtype=np.int64)], categories=pd.Index(uniques, dtype=object))


@dataclass(frozen=True)
class Labels:
    """How rows are named in messages: ``word`` + number (``line 12``), or one text per row."""

    numbers: np.ndarray | None = None
    word: str = "row"
    texts: np.ndarray | None = None

    def pick(self, mask: np.ndarray) -> tuple[list[object], int]:
        """The labels of the first few rows in ``mask`` and how many rows it holds."""
        idx = np.flatnonzero(mask)[:_SHOW]
        if self.texts is not None:
            out: list[object] = [self.texts[i] for i in idx]
        else:
            out = [f"{self.word} {self.numbers[i]}" if self.word != "row" else self.numbers[i] for i in idx]  # type: ignore[index]
        return out, int(mask.sum())

    def text(self, prefix: str) -> np.ndarray:
        """One text label per row, each starting with ``prefix`` (for combining several sources)."""
        if self.texts is not None:
            return np.asarray([f"{prefix} {t}" for t in self.texts], dtype=object)
        return np.asarray([f"{prefix} {self.word} {n}" for n in self.numbers], dtype=object)  # type: ignore[union-attr]


def validate_records(
    data: pd.DataFrame,
    *,
    library: IndicatorLibrary,
    hierarchy: RegionHierarchy,
    source: str = "records",
    labels: Labels | None = None,
) -> pd.DataFrame:
    """A validated copy of ``data`` in the record format (the input is not modified).

    ``labels`` name each row in error messages (line numbers for a file; the index otherwise).

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
    if labels is None:
        labels = Labels(numbers=np.asarray(data.index, dtype=object))
    out: dict[str, object] = {}
    for column in ("programme", "project", "indicator"):
        out[column] = _text_column(data[column], column, labels, source)

    kind = _text_column(data["kind"], "kind", labels, source)
    kind = _replace_categories(kind, {c: c.lower() for c in kind.categories})
    wrong = [c for c in kind.categories if c not in KINDS]
    if wrong:
        bad = np.isin(np.asarray(kind.codes), [kind.categories.get_loc(c) for c in wrong])
        raise DataError(
            f"{_rows(labels.pick(bad), source)}: kind {wrong[0]!r} is not one of {', '.join(KINDS)}; "
            "say whether each value is the baseline, the target or the actual value."
        )
    out["kind"] = kind

    codes: pd.Categorical = out["indicator"]  # type: ignore[assignment]
    unknown = [c for c in codes.categories if c not in library]
    if unknown:
        bad = np.isin(np.asarray(codes.codes), [codes.categories.get_loc(c) for c in unknown])
        raise DataError(f"{_rows(labels.pick(bad), source)}: {library.unknown_message(unknown[0])}")

    region_raw = data["region"]
    if pd.api.types.is_integer_dtype(region_raw.dtype):
        # län codes read as numbers lose their leading zero ("6" for "06")
        region_raw = region_raw.astype("string").str.zfill(2)
    region = _text_column(region_raw, "region", labels, source)
    lookup = {r: hierarchy.aliases.get(str(r).casefold()) for r in region.categories}
    lookup.update({r: hierarchy.aliases.get(str(r).zfill(2)) for r, v in lookup.items() if v is None and str(r).isdigit()})
    unknown = [r for r, v in lookup.items() if v is None]
    if unknown:
        bad = np.isin(np.asarray(region.codes), [region.categories.get_loc(r) for r in unknown])
        raise DataError(
            f"{_rows(labels.pick(bad), source)}: region {unknown[0]!r} is not in the region hierarchy; give a län by code "
            "('06'), ISO code ('SE-F') or name ('Jönköping'), a riksområde by NUTS 2 code ('SE21'), or pass "
            "municipalities= to read() to add a municipal level."
        )
    out["region"] = _replace_categories(region, lookup)  # type: ignore[arg-type]

    period_raw = data["period"]
    if pd.api.types.is_integer_dtype(period_raw.dtype):
        period = period_raw.to_numpy(dtype=float, na_value=np.nan)
    else:
        period_cat = pd.Categorical(period_raw)
        parsed = pd.to_numeric(pd.Series(period_cat.categories.astype(str)).str.strip(), errors="coerce").to_numpy(dtype=float)
        codes_p = np.asarray(period_cat.codes, dtype=np.int64)
        period = np.append(parsed, np.nan)[codes_p]
    bad = ~np.isfinite(period) | (period != np.round(period))
    if bad.any():
        raise DataError(
            f"{_rows(labels.pick(bad), source)}: period {period_raw.iloc[np.flatnonzero(bad)[0]]!r} is not a year; "
            "give the year the value refers to as an integer (e.g. 2021)."
        )
    period_int = period.astype(np.int64)

    raw_value = data["value"]
    if pd.api.types.is_numeric_dtype(raw_value.dtype) and not pd.api.types.is_bool_dtype(raw_value.dtype):
        value = raw_value.to_numpy(dtype=float, na_value=np.nan)
    else:
        value = pd.to_numeric(raw_value.astype("string").str.strip(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(value)
    if bad.any():
        first = raw_value.iloc[np.flatnonzero(bad)[0]]
        raise DataError(
            f"{_rows(labels.pick(bad), source)}: value {first!r} is not a finite number; give a number "
            "(no thousands separators, NaN or infinity), or remove the record if there is no value yet."
        )

    meta = {c: library[c] for c in codes.categories}
    indicator_codes = np.asarray(codes.codes)
    count_positions = [i for i, c in enumerate(codes.categories) if _is_count(meta[c].unit)]
    bad = (value < 0) & np.isin(indicator_codes, count_positions)
    if bad.any():
        code = codes.categories[indicator_codes[bad][0]]
        raise DataError(
            f"{_rows(labels.pick(bad), source)}: {code} counts {meta[code].unit} and cannot be negative (value "
            f"{value[bad][0]:g}); correct the record."
        )

    if "unit" in data.columns:
        unit = _categorical(data["unit"])
        unit_codes = np.asarray(unit.codes)
        given_units = [str(u).casefold() for u in unit.categories]
        expected_units = [meta[c].unit.casefold() for c in codes.categories]
        # a (given unit, indicator) pair disagrees: check each distinct pair once
        pairs = pd.DataFrame({"u": unit_codes, "i": indicator_codes}).drop_duplicates()
        wrong_pairs = [(u, i) for u, i in zip(pairs["u"], pairs["i"]) if u >= 0 and given_units[u] != expected_units[i]]
        if wrong_pairs:
            u, i = wrong_pairs[0]
            bad = (unit_codes == u) & (indicator_codes == i)
            raise DataError(
                f"{_rows(labels.pick(bad), source)}: unit {unit.categories[u]!r} of {codes.categories[i]} disagrees with the "
                f"library, which measures it in {meta[codes.categories[i]].unit!r}; convert the value or use an indicator in that unit."
            )
    if "note" in data.columns:
        note = data["note"].astype(object).where(data["note"].notna(), "").to_numpy(dtype=object)
    else:
        note = np.full(len(data), "", dtype=object)

    from impact.monitoring.rollup import _ids

    names = ("programme", "project", "region", "indicator", "kind")
    keys = [np.asarray(out[c].codes, dtype=np.int64) for c in names]  # type: ignore[union-attr]
    sizes = [len(out[c].categories) for c in names]  # type: ignore[union-attr]
    ids = _ids([*keys, period_int - period_int.min()], [*sizes, int(period_int.max() - period_int.min()) + 1])
    order = np.argsort(ids, kind="stable")
    same = ids[order][1:] == ids[order][:-1]
    dup = np.zeros(len(ids), dtype=bool)
    dup[order[1:][same]] = True
    dup[order[:-1][same]] = True
    if dup.any():
        i = np.flatnonzero(dup)[0]
        cat = {c: out[c] for c in ("programme", "project", "region", "indicator", "kind")}
        raise DataError(
            f"{_rows(labels.pick(dup), source)}: duplicate records: more than one {cat['kind'][i]} of {cat['indicator'][i]} for "
            f"programme {cat['programme'][i]!r}, project {cat['project'][i]!r}, region {cat['region'][i]!r}, "
            f"period {period_int[i]}; keep one record per programme, project, region, indicator, period and kind."
        )
    return pd.DataFrame(
        {
            "programme": out["programme"],
            "project": out["project"],
            "region": out["region"],
            "indicator": out["indicator"],
            "period": period_int,
            "kind": out["kind"],
            "value": value,
            "note": note,
        }
    )


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


def from_frame(frame: pd.DataFrame, *, library: IndicatorLibrary, hierarchy: RegionHierarchy, source: str) -> Monitoring:
    records = validate_records(frame, library=library, hierarchy=hierarchy, source=source)
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


def _read_csv(path: Path) -> pd.DataFrame:
    # text columns stay text (region codes keep their leading zeros); values are read as numbers when
    # they all are, else as text so that validation can name the rows that are not
    options: dict[str, object] = {"keep_default_na": False, "na_values": [""], "encoding": "utf-8-sig", "low_memory": False}
    text = {c: "category" for c in ("programme", "project", "region", "indicator", "kind", "period", "unit", "note")}
    try:
        return pd.read_csv(path, dtype={**text, "value": float}, **options)
    except (ValueError, TypeError):
        return pd.read_csv(path, dtype=str, **options)


def _read_file(path: Path, *, library: IndicatorLibrary) -> tuple[pd.DataFrame, Labels]:
    if not path.is_file():
        raise DataError(f"{path}: monitoring file not found; check the path.")
    fmt = _format(path)
    if fmt == "iati":
        from impact.monitoring.iati import read_iati

        frame = read_iati(path, library=library)
        where = frame.pop("where")
        return frame, Labels(texts=np.asarray([f"activity {a}, {w}" for a, w in zip(frame["project"], where)], dtype=object))
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path)
        except ImportError as exc:
            raise DataError(f"{path}: reading Parquet needs pyarrow ({exc}); `pip install pyarrow` or save the records as CSV.") from None
        return frame, Labels(numbers=np.arange(1, len(frame) + 1))
    frame = _read_csv(path)
    # line numbers assume one line per record (no line breaks inside quoted fields)
    return frame, Labels(numbers=np.arange(2, len(frame) + 2), word="line")


def read(
    data: pd.DataFrame | str | Path | Iterable[pd.DataFrame | str | Path],
    *,
    indicators: Iterable[RegionLibrary | str | Path] = (),
    municipalities: pd.DataFrame | Mapping[str, str] | None = None,
    programmes: Iterable[str] | None = None,
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
    programmes : iterable of str, optional
        Read only the records of these programmes (a shared file may hold programmes whose region
        libraries this reader does not load); the others are neither validated nor kept.

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
    frames: list[pd.DataFrame] = []
    labels: list[Labels] = []
    names: list[str] = []
    for k, item in enumerate(items):
        if isinstance(item, pd.DataFrame):
            frames.append(item)
            labels.append(Labels(numbers=np.asarray(item.index, dtype=object)))
            names.append("records" if len(items) == 1 else f"records[{k}]")
        elif isinstance(item, (str, Path)):
            frame, lab = _read_file(Path(item), library=library)
            frames.append(frame)
            labels.append(lab)
            names.append(str(item))
        else:
            raise DataError(f"read() cannot use a {type(item).__name__}; pass a DataFrame or a path to CSV, Parquet or IATI XML.")
    if programmes is not None:
        wanted = {str(p) for p in programmes}
        for k, frame in enumerate(frames):
            if "programme" in frame.columns:
                keep = frame["programme"].astype("string").str.strip().isin(wanted).fillna(False).to_numpy(dtype=bool)
                frames[k] = frame.loc[keep]
                lab = labels[k]
                labels[k] = Labels(numbers=None if lab.numbers is None else np.asarray(lab.numbers)[keep], word=lab.word,
                                   texts=None if lab.texts is None else lab.texts[keep])
        if all(f.empty for f in frames):
            raise DataError(f"the monitoring records hold no programme named {', '.join(sorted(wanted))}.")
    if len(frames) == 1:
        frame, label, source = frames[0], labels[0], names[0]
    else:
        columns = [c for c in (*RECORD_COLUMNS, *OPTIONAL_COLUMNS) if any(c in f.columns for f in frames)]
        frame = pd.concat([f.reindex(columns=columns) for f in frames], ignore_index=True)
        prefixes = [Path(n).name if not n.startswith("records") else n for n in names]
        label = Labels(texts=np.concatenate([lab.text(p) for lab, p in zip(labels, prefixes)]))
        source = "monitoring records"
    records = validate_records(frame, library=library, hierarchy=hierarchy, source=source, labels=label)
    return Monitoring(records, library, hierarchy, tuple(names))
