"""Follow-up across programmes: ``regions/<code>.html`` for every region with programmes and
``national.html``, from monitoring records and (when there are any) the programme runs' evaluations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from impact.monitoring.records import Monitoring

__all__ = ["combine_runs", "effects_of", "write_pages", "write_rollup_csv"]


def combine_runs(runs: Sequence[Any]) -> Monitoring | None:
    """The follow-up records of every run that has them, as one Monitoring (None if none has)."""
    parts = [r.follow_up.monitoring for r in runs if getattr(r, "follow_up", None) is not None and r.follow_up.monitoring is not None]
    if not parts:
        return None
    combined = parts[0]
    for part in parts[1:]:
        combined = Monitoring(
            pd.concat([combined._records.astype({c: object for c in ("programme", "project", "region", "indicator", "kind")}),
                       part._records.astype({c: object for c in ("programme", "project", "region", "indicator", "kind")})],
                      ignore_index=True).astype({c: "category" for c in ("programme", "project", "region", "indicator", "kind")}),
            _merge_libraries(combined.library, part.library),
            combined.hierarchy,
            (*combined.sources, *part.sources),
        )
    return combined


def _merge_libraries(a: Any, b: Any) -> Any:
    from types import MappingProxyType

    from impact.programme.indicators import IndicatorLibrary

    merged = dict(a.indicators)
    for code, ind in b.indicators.items():
        merged.setdefault(code, ind)
    return IndicatorLibrary(MappingProxyType(merged), tuple(dict.fromkeys([*a.files, *b.files])))


def effects_of(run: Any) -> list[dict[str, Any]]:
    """A run's headline effects as rows for a regional page."""
    from impact.report.html import fmt_number, fmt_p

    rows = []
    for o in run.outcomes:
        if o.result is None:
            rows.append({"name": o.name, "indicator": o.indicator, "estimate": "failed", "ci": o.error or "", "p": "–", "design": o.design})
            continue
        low, high = o.result.conf_int()
        rows.append({"name": o.name, "indicator": o.indicator, "estimate": fmt_number(o.result.estimate, 3),
                     "ci": f"{fmt_number(low, 3)} to {fmt_number(high, 3)}", "p": fmt_p(getattr(o.result, "p_value", None)),
                     "design": o.design})
    return rows


def write_rollup_csv(m: Monitoring, path: Path, by: Sequence[str]) -> Path:
    """The rollup by ``by`` (and its cumulative columns) as CSV."""
    table = m.rollup(by=list(by))
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, lineterminator="\n", float_format="%.6g")
    return path


def write_pages(m: Monitoring, folder: Path, *, runs: Sequence[Any] = (), link_base: str = "",
                force: bool = False) -> list[dict[str, str]]:
    """Write ``folder/national.html`` and ``folder/regions/<code>.html``; return links (label, link) to them.

    Every page is rendered first; a file of the same name that impact did not write is not overwritten
    unless ``force`` (DataError naming it, before any page is written)."""
    from impact.programme.runner import check_overwrite
    from impact.report.followup import render_national_page, render_region_page

    by_id = {r.spec.programme.id: r for r in runs}
    hierarchy = m.hierarchy
    records = m.records
    national = m.rollup(by=[])
    regional = m.rollup(by=["region"])
    per_region = m.rollup(by=["region", "programme"])
    library = m.library
    programmes_meta: dict[str, dict[str, Any]] = {}
    for pid in m.programmes:
        run = by_id.get(pid)
        programmes_meta[pid] = {
            "id": pid,
            "name": run.spec.programme.name if run is not None else pid,
            "report": f"{pid}/report.html" if run is not None else None,
            "effects": effects_of(run) if run is not None else [],
            "n_regions": int(records.loc[records["programme"] == pid, "region"].nunique()),
        }
    region_rows = []
    regions_dir = folder / "regions"
    pages: dict[Path, str] = {}
    for code in sorted(records["region"].unique()):
        here = records.loc[records["region"] == code]
        blocks = []
        for pid in sorted(here["programme"].unique()):
            table = per_region.loc[(per_region["region"] == code) & (per_region["programme"] == pid)].drop(columns=["region", "programme"])
            projects = sorted(here.loc[here["programme"] == pid, "project"].unique())
            blocks.append({**programmes_meta[pid], "rollup": table.reset_index(drop=True), "projects": projects})
        nuts2 = hierarchy.up(pd.Series([code], dtype=object), "nuts2").iloc[0]
        nuts2_text = f"{nuts2} {hierarchy.name(nuts2)}" if isinstance(nuts2, str) else "–"
        html = render_region_page(code, hierarchy.name(code), nuts2_text, blocks, library=library, link_base="../" + link_base)
        pages[regions_dir / f"{code}.html"] = html
        region_rows.append({"code": code, "name": hierarchy.name(code), "nuts2": nuts2_text,
                            "programmes": [programmes_meta[p]["name"] for p in sorted(here["programme"].unique())]})
    html = render_national_page(national, regional, library=library, region_names=dict(hierarchy.names),
                                programmes=list(programmes_meta.values()), regions=region_rows, link_base=link_base)
    pages[folder / "national.html"] = html
    check_overwrite(list(pages), force=force)
    regions_dir.mkdir(parents=True, exist_ok=True)
    for path, text in pages.items():
        path.write_text(text, encoding="utf-8")
    links = [{"label": "National follow-up (all programmes and regions)", "link": "national.html"}]
    links += [{"label": f"{r['name']} ({r['code']})", "link": f"regions/{r['code']}.html"} for r in region_rows]
    return links


def region_names(m: Monitoring) -> Mapping[str, str]:
    return dict(m.hierarchy.names)
