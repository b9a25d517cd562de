"""Monitoring records from IATI 2.03 activity XML (the results part of the IATI activity standard).

What is read, per ``iati-activity``:

* ``project`` = ``iati-identifier``; ``programme`` = the ``ref`` of ``related-activity type="1"``
  (the parent activity) or, without a parent, the activity's own identifier.
* every ``result/indicator`` whose ``reference/@code`` is a library code (any vocabulary; publishers
  use vocabulary 99 for their own codes) -> ``indicator``;
* its ``baseline`` (``@value``; period from ``@iso-date`` or ``@year``) -> a ``baseline`` record;
* each ``period`` -> its ``target`` and ``actual`` values, dated by the year of ``period-end/@iso-date``;
* the region of a value: its ``location/@ref``, which the standard ties to an activity ``location``
  with the same ``ref`` (the standard's own example uses ISO 3166-2 style refs such as ``AF-KAN``; a
  Swedish län is ``SE-F``, ``SE-AB``, ...). A value without a location takes the activity's only
  ``location`` (its ``ref``, else its ``administrative/@code``). Regions are checked against the
  hierarchy like any record's.

Values broken down by ``dimension`` (sex, age, ...) are parts of a total and are not read: adding them to
the total would count twice. They are counted in an :class:`~impact.errors.SampleWarning`.
``measure="2"`` (percentage) must meet a library unit in percent, and ``ascending="0"`` an indicator
whose direction is ``decrease``.

Reference: IATI Activity Standard 2.03, ``iati-activities/iati-activity/result`` and its children
(https://iatistandard.org/en/iati-standard/203/activity-standard/iati-activities/iati-activity/result/).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from impact.errors import DataError, SampleWarning, warn
from impact.programme.indicators import IndicatorLibrary

__all__ = ["read_iati"]


def _text(element: ET.Element | None) -> str:
    if element is None:
        return ""
    narrative = element.find("narrative")
    return " ".join(((narrative if narrative is not None else element).text or "").split())


def _year(iso: str | None, where: str) -> int:
    if not iso or len(iso) < 4 or not iso[:4].isdigit():
        raise DataError(f"{where}: iso-date {iso!r} is not an ISO 8601 date (YYYY-MM-DD).")
    return int(iso[:4])


def _region(value: ET.Element, locations: dict[str, str], where: str) -> str:
    refs = [loc.get("ref", "").strip() for loc in value.findall("location")]
    if len(refs) > 1:
        raise DataError(
            f"{where}: the value names {len(refs)} locations ({', '.join(refs)}); a record needs one region. "
            "Publish one target/actual per location."
        )
    if refs:
        return locations.get(refs[0], refs[0])
    if len(locations) == 1:
        return next(iter(locations.values()))
    raise DataError(
        f"{where}: the value has no location and the activity has {len(locations)} locations; add "
        "<location ref=\"...\"/> to the value, naming one of the activity's locations."
    )


def read_iati(path: str | Path, *, library: IndicatorLibrary) -> pd.DataFrame:
    """Records (``programme, project, region, indicator, period, kind, value, unit, note, where``) from IATI XML.

    Raises
    ------
    DataError
        Not IATI activity XML, an indicator with no library code, a value that is missing or not a
        number, a period without an end date, a value whose region cannot be told, a percentage
        indicator mapped to a code not measured in percent, or a descending indicator mapped to one
        meant to increase.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataError(f"{path}: not well-formed XML ({exc}).") from None
    if root.tag != "iati-activities":
        raise DataError(f"{path}: the root element is <{root.tag}>, not <iati-activities>; is this an IATI activity file?")
    version = root.get("version", "")
    if version and not version.startswith("2."):
        raise DataError(f"{path}: IATI version {version}; only the 2.0x activity standard (2.03) is read.")
    rows: list[dict[str, object]] = []
    skipped = 0
    for a, activity in enumerate(root.findall("iati-activity"), start=1):
        ident = (activity.findtext("iati-identifier") or "").strip()
        if not ident:
            raise DataError(f"{path}: activity {a} has no <iati-identifier>.")
        parent = next((r.get("ref", "").strip() for r in activity.findall("related-activity") if r.get("type") == "1"), "")
        programme = parent or ident
        locations: dict[str, str] = {}
        for loc in activity.findall("location"):
            admin = loc.find("administrative")
            ref = loc.get("ref", "").strip()
            code = admin.get("code", "").strip() if admin is not None else ""
            if ref or code:
                locations[ref or code] = ref or code
        for r, result in enumerate(activity.findall("result"), start=1):
            for i, indicator in enumerate(result.findall("indicator"), start=1):
                where = f"{path}, activity {ident}, result {r}, indicator {i}"
                title = _text(indicator.find("title"))
                codes = [ref.get("code", "").strip() for ref in indicator.findall("reference")]
                known = [c for c in codes if c in library]
                if not known:
                    raise DataError(
                        f"{where} ({title!r}): no <reference code> is an indicator of the library (found "
                        f"{', '.join(codes) or 'none'}); add <reference vocabulary=\"99\" code=\"RCO01\"/> "
                        "with the library code, or a region library that defines it."
                    )
                code = known[0]
                ind = library[code]
                if indicator.get("measure") == "2" and "%" not in ind.unit:
                    raise DataError(
                        f"{where}: measure=\"2\" (percentage) but {code} is measured in {ind.unit!r}; map it to an indicator in percent."
                    )
                if indicator.get("ascending") == "0" and ind.direction != "decrease":
                    raise DataError(
                        f"{where}: ascending=\"0\" (lower is better) but {code} is meant to {ind.direction}; check the mapping."
                    )

                def add(kind: str, element: ET.Element, period: int, label: str) -> None:
                    nonlocal skipped
                    spot = f"{where}, {label}"
                    if element.findall("dimension"):
                        skipped += 1
                        return
                    raw = element.get("value")
                    if raw is None or not raw.strip():
                        raise DataError(f"{spot}: <{element.tag}> has no value attribute; give value=\"...\" as a number.")
                    rows.append(
                        {
                            "programme": programme,
                            "project": ident,
                            "region": _region(element, locations, spot),
                            "indicator": code,
                            "period": period,
                            "kind": kind,
                            "value": raw.strip(),
                            "unit": "",
                            "note": _text(element.find("comment")),
                            "where": f"result {r}, indicator {i}, {label}",
                        }
                    )

                for b, baseline in enumerate(indicator.findall("baseline"), start=1):
                    spot = f"{where}, baseline {b}"
                    year = baseline.get("year")
                    period = _year(baseline.get("iso-date"), spot) if baseline.get("iso-date") else None
                    if period is None:
                        if not year or not year.strip().isdigit():
                            raise DataError(f"{spot}: the baseline has neither iso-date nor a year.")
                        period = int(year)
                    add("baseline", baseline, period, f"baseline {b}")
                for p, period_el in enumerate(indicator.findall("period"), start=1):
                    end = period_el.find("period-end")
                    spot = f"{where}, period {p}"
                    if end is None:
                        raise DataError(f"{spot}: the period has no <period-end iso-date=...>.")
                    year = _year(end.get("iso-date"), spot)
                    for kind in ("target", "actual"):
                        for k, element in enumerate(period_el.findall(kind), start=1):
                            add(kind, element, year, f"period {p} ({year}) {kind} {k}")
    if skipped:
        warn(
            SampleWarning,
            f"{path}: {skipped} value(s) broken down by <dimension> were not read: they are parts of a total and "
            "adding them would count twice.",
        )
    if not rows:
        raise DataError(f"{path}: no result indicator with a baseline, target or actual value was found.")
    return pd.DataFrame(rows)
