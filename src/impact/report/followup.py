"""Follow-up in reports: the programme report's Follow-up section, and the regional and national pages.

Presentation only: the rollups and net-to-gross ratios are computed in ``impact.monitoring``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from impact.report.figures import Figure, content_key, render_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from impact.monitoring.followup import FollowUp

__all__ = ["follow_up_plot", "follow_up_section", "chain_note", "render_region_page", "render_national_page"]

_RULE_WORDS = {
    "sum": "added up",
    "mean": "mean of regions",
    "weighted_mean": "weighted mean",
    "last": "latest running total",
    "none": "not added up",
}
_COLOURS = {"actual": "#1f4e79", "target": "#b45309", "region": "#9aa3ad"}


def follow_up_plot(national: pd.DataFrame, indicator: str, *, regional: pd.DataFrame | None = None,
                   region_names: Mapping[str, str] | None = None, ax: Axes | None = None, title: str = "") -> Axes:
    """Actual (solid) against target (dashed) over time: the total line in colour, each region in grey."""
    from impact.report.plots import new_axes

    ax = new_axes(ax)
    rows = national.loc[national["indicator"] == indicator].sort_values("period")
    reg = regional.loc[regional["indicator"] == indicator] if regional is not None else None
    unit = str(rows["unit"].iloc[0]) if len(rows) else ""
    if rows["period"].nunique() == 1 and reg is not None and len(reg):
        # one year only: each region's actual as a bar, its target as a tick
        reg = reg.sort_values("actual")
        labels = [(region_names or {}).get(str(c), str(c)) for c in reg["region"]]
        y = np.arange(len(reg))
        ax.barh(y, reg["actual"], color=_COLOURS["actual"], alpha=0.85, label="actual")
        if reg["target"].notna().any():
            ax.scatter(reg["target"], y, marker="|", s=160, color=_COLOURS["target"], lw=2.2, label="target", zorder=3)
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_xlabel(unit)
        ax.set_title(f"{title or indicator} ({int(rows['period'].iloc[0])})", fontsize=11)
        ax.legend(fontsize=8, loc="lower right", frameon=False)
        return ax
    if reg is not None:
        n_regions = reg["region"].nunique()
        for i, (code, part) in enumerate(reg.groupby("region", sort=True)):
            part = part.sort_values("period")
            label = "regions (actual)" if i == 0 else None
            ax.plot(part["period"], part["actual"], color=_COLOURS["region"], lw=1, alpha=0.8, label=label)
            if n_regions <= 8 and len(part) and np.isfinite(part["actual"].iloc[-1]):
                name = (region_names or {}).get(str(code), str(code))
                ax.annotate(name, (part["period"].iloc[-1], part["actual"].iloc[-1]), fontsize=7, color="#6b7280",
                            xytext=(3, 0), textcoords="offset points", va="center")
    if rows["actual"].notna().any():
        ax.plot(rows["period"], rows["actual"], color=_COLOURS["actual"], lw=2.4, marker="o", ms=4, label="actual (total)")
    if rows["target"].notna().any():
        ax.plot(rows["period"], rows["target"], color=_COLOURS["target"], lw=2, ls="--", marker="s", ms=3.5, label="target (total)")
    if rows["baseline"].notna().any():
        ax.axhline(float(rows["baseline"].dropna().iloc[-1]), color="#6b7280", lw=1, ls=":", label="baseline")
    if len(rows):
        ax.set_xlim(rows["period"].min() - 0.5, rows["period"].max() + 1.2)
    ax.set_xlabel("year")
    ax.set_ylabel(unit)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(title or indicator, fontsize=11)
    ax.legend(fontsize=8, loc="best", frameon=False)
    return ax


def sparkline_svg(table: pd.DataFrame, indicator: str, *, width: int = 200, height: int = 44) -> Markup:
    """A small inline SVG of actual (solid) and target (dashed) over the years; no image encoding, so cheap."""
    rows = table.loc[table["indicator"] == indicator].sort_values("period")
    values = np.concatenate([rows["actual"].to_numpy(float), rows["target"].to_numpy(float)])
    values = values[np.isfinite(values)]
    if len(rows) < 2 or not len(values):
        return Markup("")
    periods = rows["period"].to_numpy(float)
    low, high = float(values.min()), float(values.max())
    span = high - low or max(abs(high), 1.0)
    low -= 0.08 * span
    span *= 1.16

    def path(column: str) -> str:
        points = [(4 + (p - periods[0]) / max(periods[-1] - periods[0], 1) * (width - 8), height - 4 - (v - low) / span * (height - 8))
                  for p, v in zip(periods, rows[column].to_numpy(float)) if np.isfinite(v)]
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{indicator}: actual and target, {int(periods[0])}-{int(periods[-1])}">']
    target = path("target")
    if target:
        parts.append(f'<polyline points="{target}" fill="none" stroke="{_COLOURS["target"]}" stroke-width="1.6" stroke-dasharray="4 3"/>')
    actual = path("actual")
    if actual:
        parts.append(f'<polyline points="{actual}" fill="none" stroke="{_COLOURS["actual"]}" stroke-width="2"/>')
    parts.append(f'<text x="2" y="{height - 1}" font-size="8" fill="#6b7280">{int(periods[0])}</text>')
    parts.append(f'<text x="{width - 2}" y="{height - 1}" font-size="8" fill="#6b7280" text-anchor="end">{int(periods[-1])}</text></svg>')
    return Markup("".join(parts))


def chain_note(follow_up: FollowUp | None, code: str) -> str | None:
    """``monitored: 2024: 417 of target 460 (91%)`` for the effect-chain diagram, or None."""
    if follow_up is None or follow_up.national is None:
        return None
    latest = follow_up.latest.get(code)
    if latest is not None:
        text = f"monitored {latest.period}: {_num(latest.actual)}"
        if math.isfinite(latest.target):
            text += f" of target {_num(latest.target)}" + (f" ({latest.achievement:.0%})" if math.isfinite(latest.achievement) else "")
        return text
    rows = follow_up.national.loc[follow_up.national["indicator"] == code]
    if len(rows) and (rows["aggregation"] == "none").all():
        return "monitored per region (no total: distinct entities)"
    return None


def _num(x: Any) -> str:
    """A follow-up value: whole numbers as such, else one decimal (two below 10); never a dot that reads as a thousands separator."""
    from impact.report.html import fmt_number

    if x is None or not math.isfinite(float(x)):
        return "–"
    x = float(x)
    if x.is_integer():
        return fmt_number(int(x))
    if abs(x) >= 1000:
        return fmt_number(round(x))
    text = f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"
    return text.replace("-", "−")


def _pct(x: Any) -> str:
    return "–" if x is None or not math.isfinite(float(x)) else f"{float(x):.0%}"


def _figure(national: pd.DataFrame, regional: pd.DataFrame | None, code: str, name: str, names: Mapping[str, str]) -> Figure:
    rows = national.loc[national["indicator"] == code]
    reg = None if regional is None else regional.loc[regional["indicator"] == code]
    # the same indicator with the same rows (one programme's follow-up on the national page) is drawn once
    key = content_key(rows, reg, sorted((str(k), str(v)) for k, v in names.items()))
    return render_figure(f"{code} {name}", lambda ax: follow_up_plot(rows, code, regional=reg, region_names=names,
                                                                      ax=ax, title=f"{code} {name}"), size=(6.4, 3.6), key=key)


def _weights_only(table: pd.DataFrame, library: Any) -> set[str]:
    """Indicators in ``table`` that serve as another's weight and are not added up themselves (e.g. population)."""
    codes = {str(c) for c in table["indicator"].unique()}
    weights = {library[c].weight for c in codes if c in library and library[c].weight}
    return {c for c in codes & weights if c in library and library[c].aggregation == "none"}


def _latest_rows(table: pd.DataFrame, library: Any) -> list[dict[str, Any]]:
    """Per indicator, its latest period with an actual value (weights that are not added up are left out)."""
    rows = []
    hidden = _weights_only(table, library)
    for code, part in table.groupby("indicator", sort=True):
        if str(code) in hidden:
            continue
        part = part.sort_values("period")
        have = part.loc[part["actual"].notna()]
        last = have.iloc[-1] if len(have) else part.iloc[-1]
        ind = library.get(str(code))
        rows.append({
            "code": str(code), "name": ind.name if ind else "", "unit": str(last["unit"]), "period": int(last["period"]),
            "baseline": _num(last["baseline"]), "target": _num(last["target"]),
            "actual": _num(last["actual"]), "achievement": _pct(last["achievement"]),
            "rule": _RULE_WORDS.get(str(last["aggregation"]), str(last["aggregation"])), "note": str(last["note"]),
            "level": ind.level if ind else "",
        })
    order = {"resources": 0, "activities": 1, "outputs": 2, "outcomes": 3, "impacts": 4}
    return sorted(rows, key=lambda r: (order.get(r["level"], 9), r["code"]))


def _environment():
    from impact.report.html import _environment as base

    return base()


def follow_up_section(follow_up: FollowUp | None, *, library: Any, region_names: Mapping[str, str]) -> Markup:
    """The programme report's Follow-up section (HTML), or an empty string without monitoring records."""
    if follow_up is None:
        return Markup("")
    context: dict[str, Any] = {"fu": follow_up, "rows": [], "figures": [], "pairs": [], "regions": []}
    if follow_up.error is None and follow_up.national is not None:
        national, regional = follow_up.national, follow_up.regional
        context["rows"] = _latest_rows(follow_up.cumulative if follow_up.cumulative is not None else national, library)
        context["rows_year"] = _latest_rows(national, library)
        codes = [r["code"] for r in context["rows_year"]]
        context["figures"] = [_figure(national, regional, c, library[c].name if c in library else "", region_names) for c in codes]
        context["regions"] = sorted({str(r) for r in regional["region"]}) if regional is not None else []
        context["pairs"] = [_pair_row(a) for a in follow_up.net_to_gross]
    context["region_names"] = region_names
    return Markup(_environment().get_template("followup_section.html.j2").render(**context))


def _pair_row(a: Any) -> dict[str, Any]:
    from impact.report.html import fmt_number

    r = a.net_to_gross
    c = a.cost_per_net
    return {
        "gross_indicator": a.gross_indicator, "evaluation": a.net_evaluation, "unit": a.unit,
        "gross": _num(a.gross), "net": _num(a.net), "net_se": fmt_number(a.net_std_error, 3),
        "ratio": fmt_number(r.estimate, 3), "ratio_ci": r.describe(3), "ratio_delta": f"{fmt_number(r.delta_low, 3)} to {fmt_number(r.delta_high, 3)}",
        "cost": None if c is None else fmt_number(c.estimate, 3), "cost_ci": None if c is None else c.describe(3),
        "cost_delta": None if c is None else f"{fmt_number(c.delta_low, 3)} to {fmt_number(c.delta_high, 3)}",
        "resources": None if a.resources is None else _num(a.resources), "resources_unit": a.resources_unit,
    }


# ---------------------------------------------------------------------------------------------
# Pages across programmes: reports/regions/<code>.html and reports/national.html
# ---------------------------------------------------------------------------------------------
def _css() -> Markup:
    return Markup((Path(__file__).parent / "templates" / "report.css").read_text(encoding="utf-8"))


def render_region_page(code: str, name: str, nuts2: str, programmes: Sequence[Mapping[str, Any]], *, library: Any,
                       link_base: str = "../") -> str:
    """One region's page: every programme running there, its outputs against targets, its evaluated effects.

    Each entry of ``programmes`` has ``id``, ``name``, ``rollup`` (this region's rollup rows of the
    programme), ``effects`` (list of dicts: name, indicator, estimate, ci, p, design) and ``report``
    (link to the programme report, relative to the reports folder, or None).
    """
    blocks = []
    for prog in programmes:
        table = prog["rollup"]
        rows = _latest_rows(table, library) if len(table) else []
        for r in rows:
            r["spark"] = sparkline_svg(table, r["code"])
        blocks.append({**prog, "rows": rows, "figures": []})
    return _environment().get_template("followup_region.html.j2").render(
        code=code, name=name, nuts2=nuts2, programmes=blocks, css=_css(), link_base=link_base
    )


def render_national_page(national: pd.DataFrame, regional: pd.DataFrame, *, library: Any,
                         region_names: Mapping[str, str], programmes: Sequence[Mapping[str, Any]],
                         regions: Sequence[Mapping[str, Any]], link_base: str = "") -> str:
    """The national page: every additive indicator rolled up over all programmes and regions."""
    rows = _latest_rows(national, library)
    additive = [r for r in rows if r["rule"] != _RULE_WORDS["none"]]
    withheld = [r for r in rows if r["rule"] == _RULE_WORDS["none"]]
    figures = [_figure(national, regional, r["code"], r["name"], region_names) for r in additive]
    return _environment().get_template("followup_national.html.j2").render(
        additive=additive, withheld=withheld, figures=figures, programmes=programmes, regions=regions,
        css=_css(), link_base=link_base,
    )
