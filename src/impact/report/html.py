"""HTML reports: one per programme, and a portfolio index over programmes.

The renderer only reads recorded outcomes (results, failures, sample flows, diagnostics, figures);
it never estimates. All user-supplied text (programme names, questions, chain items, error messages,
column names) goes through Jinja2's autoescaping; the effect-chain SVG escapes its own text.
"""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from impact.report.chain import LEVEL_TITLES, Measured, effect_chain_svg
from impact.report.evidence import profile
from impact.report.figures import Figure, render_figure
from impact.results import jsonable

if TYPE_CHECKING:
    from impact.programme.runner import Outcome, ProgrammeRun

__all__ = ["render_programme", "render_portfolio", "fmt_number", "fmt_p", "SECTIONS"]

#: Section ids of a programme report, in order (tests check every one is present).
SECTIONS = (
    "summary",
    "questions",
    "effect-chain",
    "design",
    "data",
    "estimates",
    "diagnostics",
    "robustness",
    "limitations",
    "warnings",
    "appendix",
)

_WARNING_WORDS = {
    "FewClustersWarning": "Few clusters",
    "FewTreatedClustersWarning": "Very few treated clusters",
    "SmallComparisonWarning": "Small comparison group",
    "SampleWarning": "Sample changed",
    "MissingDataWarning": "Missing data",
    "OverlapWarning": "Poor overlap",
    "ConvergenceWarning": "No convergence",
    "FragileInferenceWarning": "Fragile inference",
}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = fmt_number
    env.filters["pval"] = fmt_p
    env.filters["peq"] = lambda p: (lambda t: t if t.startswith("<") else f"= {t}")(fmt_p(p))
    return env


def fmt_number(value: Any, digits: int = 3) -> str:
    """A number as an evaluator reads it: thousands separators, about ``digits`` significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    ax = abs(x)
    if x.is_integer() and ax < 1e15:
        return f"{int(x):,}".replace("-", "−")
    if ax >= 1000:
        text = f"{x:,.0f}"
    elif ax >= 100:
        text = f"{x:.1f}"
    elif ax >= 1:
        text = f"{x:.{max(digits - 1, 1)}f}"
    elif ax == 0:
        text = "0"
    else:
        text = f"{x:.{digits}g}"
        if "e" in text:
            text = f"{x:.2e}"
    return text.replace("-", "−")


def fmt_p(value: Any) -> str:
    """A p-value: three decimals, or ``< 0.001``."""
    if value is None:
        return "–"
    try:
        p = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _warning_in_words(text: str) -> tuple[str, str]:
    category, _, message = text.partition(": ")
    if category in _WARNING_WORDS:
        return _WARNING_WORDS[category], message
    if category.endswith("Warning") and message:
        return category.removesuffix("Warning") or category, message
    return "Note", text


# ---------------------------------------------------------------------------------------------
# Diagnostics: scalars and dicts as key-value tables, lists of dicts as tables
# ---------------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return fmt_number(value, 4)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(jsonable(value), ensure_ascii=False)
    return "–" if value is None else str(value)


def _diagnostic_blocks(diagnostics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Render-ready blocks: {"kind": "kv"|"table", "title", "rows" / "columns"+"rows"}."""
    blocks: list[dict[str, Any]] = []
    scalars = []
    for key, value in diagnostics.items():
        title = str(key).replace("_", " ")
        if isinstance(value, Mapping):
            flat = {k: v for k, v in value.items() if not (isinstance(v, Mapping) and v)}
            if flat:
                rows = [(str(k).replace("_", " "), _cell(v)) for k, v in flat.items()]
                blocks.append({"kind": "kv", "title": title, "rows": rows})
            # A nested table (e.g. donor weights by unit) gets its own block instead of a JSON string.
            for k, v in value.items():
                if isinstance(v, Mapping) and v:
                    blocks.extend(
                        {**b, "title": f"{title}: {str(k).replace('_', ' ')}" + (f" – {b['title']}" if b["title"] else "")}
                        for b in _diagnostic_blocks({"": v})
                    )
        elif isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value):
            columns = list(dict.fromkeys(k for v in value for k in v))
            rows = [[_cell(v.get(c)) for c in columns] for v in value]
            blocks.append({"kind": "table", "title": title, "columns": columns, "rows": rows})
        elif hasattr(value, "to_dict") and hasattr(value, "columns"):
            records = value.to_dict(orient="records")
            columns = [str(c) for c in value.columns]
            blocks.append({"kind": "table", "title": title, "columns": columns, "rows": [[_cell(r.get(c)) for c in value.columns] for r in records]})
        else:
            scalars.append((title, _cell(value)))
    if scalars:
        blocks.insert(0, {"kind": "kv", "title": "", "rows": scalars})
    return blocks


# ---------------------------------------------------------------------------------------------
# Programme report
# ---------------------------------------------------------------------------------------------
def _flow_rows(flow: Sequence[Any]) -> list[dict[str, Any]]:
    rows = []
    previous = None
    for step in flow:
        dropped = previous - step.rows if previous is not None and step.rows <= previous else None
        rows.append({"step": step.step, "rows": step.rows, "units": step.units, "dropped": dropped, "note": step.note})
        previous = step.rows
    return rows


def _effects_rows(result: Any) -> tuple[list[str], list[list[str]]]:
    table = result.tidy()
    extra = [c for c in table.columns if c not in ("term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high")]
    columns = ["term", "estimate", "std. error", "statistic", "p-value", f"{result.level:.0%} CI", *extra]
    rows = []
    for rec in table.to_dict(orient="records"):
        rows.append(
            [
                str(rec["term"]),
                fmt_number(rec["estimate"], 4),
                fmt_number(rec["std_error"], 4),
                fmt_number(rec["statistic"], 3),
                fmt_p(rec["p_value"]),
                f"[{fmt_number(rec['conf_low'], 4)}, {fmt_number(rec['conf_high'], 4)}]",
                *[_cell(rec[c]) for c in extra],
            ]
        )
    return columns, rows


def _headline(outcome: Outcome, library: Any) -> dict[str, Any]:
    ind = library.get(outcome.indicator) if outcome.indicator else None
    prof = profile(outcome.design)
    row: dict[str, Any] = {
        "name": outcome.name,
        "indicator": outcome.indicator,
        "indicator_name": ind.name if ind else outcome.outcome,
        "unit": ind.unit if ind else "",
        "outcome": outcome.outcome,
        "design": outcome.design,
        "family": prof.family,
        "sms_level": prof.sms_level,
        "sms_reason": prof.sms_reason,
        "ok": outcome.ok,
        "error": outcome.error,
    }
    if outcome.result is not None:
        res = outcome.result
        low, high = res.conf_int()
        row.update(
            estimand=res.estimand,
            term=res.headline,
            estimate=res.estimate,
            std_error=res.std_error,
            conf_low=low,
            conf_high=high,
            p_value=res.p_value,
            level=res.level,
            n_obs=res.n_obs,
            sentence=_sentence(res, row),
        )
    return row


def _sentence(result: Any, row: Mapping[str, Any]) -> str:
    low, high = result.conf_int()
    unit_text = str(row["unit"] or "")
    if unit_text.startswith("%"):  # an effect on a share is a change in percentage points
        unit_text = "percentage points" + unit_text[1:]
    unit = f" {unit_text}" if unit_text else ""
    what = row["indicator_name"]
    direction = "raised" if result.estimate > 0 else "lowered"
    covers_zero = low <= 0 <= high
    verdict = (
        "the interval includes zero, so the data are also consistent with no effect"
        if covers_zero
        else "the interval excludes zero"
    )
    return (
        f"Estimated {result.estimand}: the programme {direction} {what} by {fmt_number(abs(result.estimate), 3)}{unit} "
        f"({result.level:.0%} CI {fmt_number(low, 3)} to {fmt_number(high, 3)}); {verdict}."
    )


def _locator(run: ProgrammeRun):
    evaluated: dict[str, list[str]] = {}
    for o in run.outcomes:
        if o.indicator:
            evaluated.setdefault(o.indicator, []).append(o.name)
    in_data: dict[str, list[str]] = {}
    for d in run.data:
        for col in d.source.columns:
            in_data.setdefault(col, []).append(d.source.relative_path.rsplit("/", 1)[-1])

    def locate(code: str) -> Measured:
        files = ", ".join(in_data.get(code, []))
        if code in evaluated:
            return Measured("evaluated", f"estimated: {'; '.join(evaluated[code])}")
        if files:
            return Measured("measured", f"in data: {files}")
        return Measured("none", "not in the data")

    return locate


def _figures(outcome: Outcome) -> list[Figure]:
    from impact.report.plots import trends_plot

    figures = []
    trends = outcome.trends
    if trends is not None and not trends.empty:
        time_label = str(outcome.options.get("time", ""))
        figures.append(
            render_figure(
                f"Raw data: mean {outcome.outcome} by {time_label} and treatment cohort (evaluation sample)",
                lambda ax: trends_plot(trends, ax=ax, outcome=outcome.outcome, time_label=time_label),
            )
        )
    try:
        drawers = outcome.result.figures()
    except Exception as exc:  # noqa: BLE001
        return [*figures, Figure("figures", error=f"{type(exc).__name__}: {exc}")]
    return figures + [render_figure(title, draw) for title, draw in drawers.items()]


def _robustness_figure(outcome: Outcome) -> Figure | None:
    from impact.report.plots import coefficient_plot

    rows = []
    for item in (outcome, *outcome.robustness):
        if item.result is not None:
            low, high = item.result.conf_int()
            label = item.name if item is not outcome else f"{item.name} (main)"
            rows.append({"term": "\n".join(textwrap.wrap(label, 34, max_lines=2, placeholder="…")), "estimate": item.result.estimate,
                         "conf_low": low, "conf_high": high})
    if len(rows) < 2:
        return None
    import pandas as pd

    table = pd.DataFrame(rows)
    def draw(ax):
        coefficient_plot(table, ax=ax)
        ax.tick_params(axis="y", labelsize=9)
        ax.tick_params(axis="x", labelsize=9)
        ax.xaxis.label.set_size(10)
        return ax

    return render_figure(f"Robustness: {outcome.name}", draw, size=(7.2, 0.6 * len(rows) + 1.3))


def _evaluation_context(outcome: Outcome, library: Any) -> dict[str, Any]:
    prof = profile(outcome.design)
    ctx: dict[str, Any] = {
        "name": outcome.name,
        "anchor": "ev-" + "".join(ch if ch.isalnum() else "-" for ch in outcome.name.lower()),
        "question": outcome.question,
        "design": outcome.design,
        "family": prof.family,
        "options": [(k, _cell(v)) for k, v in outcome.options.items()],
        "then": [f"{s.method}({', '.join(f'{k}={v!r}' for k, v in s.kwargs.items())})" for s in outcome.then],
        "outcome": outcome.outcome,
        "indicator": outcome.indicator,
        "indicator_label": library.get(outcome.indicator).label() if outcome.indicator and library.get(outcome.indicator) else "",
        "data": outcome.data,
        "query": outcome.query,
        "ok": outcome.ok,
        "error": outcome.error,
        "warnings": [_warning_in_words(w) for w in (outcome.result.warnings if outcome.result else ())]
        + [_warning_in_words(w) for w in outcome.captured_warnings],
    }
    variables = outcome.variables
    ctx["variables"] = [] if variables is None else [
        {k: (fmt_number(v, 4) if k in ("mean", "sd", "min", "max") else v) for k, v in row.items()}
        for row in variables.to_dict(orient="records")
    ]
    res = outcome.result
    if res is not None:
        settings = dict(res.settings)
        columns, rows = _effects_rows(res)
        ctx.update(
            assumption=str(settings.get("assumption") or prof.assumption),
            estimand=res.estimand,
            inference=res.inference,
            n_obs=res.n_obs,
            n_units=res.n_units,
            n_treated=res.n_treated,
            n_clusters=res.n_clusters,
            flow=_flow_rows(res.sample_flow),
            effect_columns=columns,
            effect_rows=rows,
            diagnostics=_diagnostic_blocks(res.diagnostics),
            figures=_figures(outcome),
            settings=[(k, _cell(v)) for k, v in settings.items() if k != "assumption"],
        )
    else:
        ctx.update(assumption=prof.assumption, flow=[], figures=[], diagnostics=[])
    checks = []
    if outcome.robustness:
        for item in (outcome, *outcome.robustness):
            row = {"name": item.name if item is not outcome else f"{item.name} (main)", "design": item.design, "ok": item.ok, "error": item.error}
            changed = {k: v for k, v in item.options.items() if outcome.options.get(k) != v} if item is not outcome else {}
            row["changes"] = ", ".join(f"{k} = {_cell(v)}" for k, v in changed.items()) or ("–" if item is outcome else "same options")
            if item.query != outcome.query:
                row["changes"] += f"; sample: {item.query or 'all rows'}"
            if item.result is not None:
                low, high = item.result.conf_int()
                row.update(estimate=item.result.estimate, std_error=item.result.std_error, conf_low=low, conf_high=high,
                           p_value=item.result.p_value, n_obs=item.result.n_obs, inference=item.result.inference)
            checks.append(row)
    ctx["checks"] = checks
    ctx["robustness_figure"] = _robustness_figure(outcome) if checks else None
    # Checks with another design bring their own diagnostics (event study, pre-trend test, balance, ...).
    ctx["check_diagnostics"] = [
        {
            "name": item.name,
            "design": item.design,
            "diagnostics": _diagnostic_blocks(item.result.diagnostics),
            "figures": _figures(dataclasses.replace(item, trends=None)),
        }
        for item in outcome.robustness
        if item.result is not None and item.design != outcome.design
    ]
    return ctx


def render_programme(run: ProgrammeRun, *, command: str | None = None, portfolio_link: str | None = None) -> str:
    """The self-contained HTML report of one programme run."""
    spec = run.spec
    library = spec.indicators
    outcomes = list(run.outcomes)
    evaluations = [_evaluation_context(o, library) for o in outcomes]
    families = {}
    for o in outcomes:
        prof = profile(o.design)
        families.setdefault(prof.family, prof)
    limitations = [(fam, list(p.limitations)) for fam, p in families.items() if p.limitations]
    chain_codes = spec.effect_chain.indicator_codes()
    indicator_rows = []
    locate = _locator(run)
    for code in dict.fromkeys([*chain_codes, *[o.indicator for o in outcomes if o.indicator]]):
        ind = library.get(code)
        if ind is None:
            continue
        indicator_rows.append({"code": code, "name": ind.name, "unit": ind.unit, "level": ind.level,
                               "definition": ind.definition, "source": ind.source, "where": locate(code).where})
    chain = effect_chain_svg(spec.effect_chain.levels(), locate, title=spec.programme.name)
    data_rows = []
    for d in run.data:
        data_rows.append({
            "name": d.source.name, "path": d.source.relative_path, "description": d.source.description,
            "rows_read": d.rows_read, "rows_used": None if d.frame is None else len(d.frame),
            "columns": len(d.source.columns), "query": d.source.query,
            "derive": [(x.name, x.expr) for x in d.source.derive], "sha256": d.sha256, "error": d.error,
            "flow": _flow_rows(d.flow),
        })
    n_failed = run.n_failed
    context = {
        "p": spec.programme,
        "spec_name": spec.path.name,
        "spec_sha256": spec.sha256,
        "seed": run.seed,
        "command": command or f"impact run {spec.path.name} --seed {run.seed}",
        "versions": sorted(run.versions.items()),
        "headlines": [_headline(o, library) for o in outcomes],
        "evaluations": evaluations,
        "chain_svg": Markup(chain),
        "levels": LEVEL_TITLES,
        "indicator_rows": indicator_rows,
        "data_rows": data_rows,
        "limitations": limitations,
        "n_failed": n_failed,
        "sections": SECTIONS,
        "css": Markup(_CSS),
        "portfolio_link": portfolio_link,
    }
    return _environment().get_template("programme.html.j2").render(**context)


# ---------------------------------------------------------------------------------------------
# Portfolio index
# ---------------------------------------------------------------------------------------------
def render_portfolio(
    programmes: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    *,
    indicators: Sequence[Mapping[str, Any]],
    adjustment: str,
    command: str | None = None,
    versions: Mapping[str, str] | None = None,
    pooled: Sequence[Mapping[str, Any]] = (),
    pooling: str = "",
    evidence_map: Mapping[str, Any] | None = None,
) -> str:
    """``reports/index.html``: the programmes, and every headline effect with adjusted p-values.

    Parameters
    ----------
    programmes : list of dict
        ``id``, ``name``, ``status`` ("ok", "failed evaluations", "failed"), ``message``, ``link``,
        ``regions``, ``period``, ``n_evaluations``, ``n_failed``.
    rows : list of dict
        One per evaluation: ``programme``, ``programme_name``, ``indicator``, ``indicator_name``,
        ``unit``, ``evaluation``, ``design``, ``sms_level``, ``estimate``, ``conf_low``,
        ``conf_high``, ``p_value``, ``p_adjusted``, ``error``, ``link``.
    indicators : list of dict
        The indicator columns of the programme x indicator matrix (``code``, ``name``, ``unit``).
    adjustment : str
        How p-values were adjusted, in words.
    pooled : list of dict
        Indicators pooled across programmes: ``code``, ``name``, ``unit``, ``k``, ``result`` (a pooled
        Result with ``figures()``) or ``error``.
    pooling : str
        How estimates were pooled, in words.
    evidence_map : dict, optional
        :func:`impact.report.evidence_map.evidence_map_context` of the registry's evidence map.
    """
    pooled_context = []
    for entry in pooled:
        res = entry.get("result")
        item: dict[str, Any] = {"code": entry["code"], "name": entry["name"], "unit": entry["unit"], "k": entry["k"],
                                "error": entry.get("error"), "figures": [], "by": entry.get("by", "programme"),
                                "left_out": entry.get("left_out") or [], "pi_note": entry.get("pi_note")}
        if res is not None:
            low, high = res.conf_int()
            diag = res.diagnostics
            interval = diag.get("prediction_interval") or {}
            item.update(estimate=res.estimate, conf_low=low, conf_high=high, p_value=res.p_value,
                        i2=diag.get("I2"), tau2=diag.get("tau2"), pi_low=interval.get("low"), pi_high=interval.get("high"),
                        figures=[render_figure(f"{entry['code']}: {title}", draw, size=(10.0, 0.5 * entry["k"] + 2.4))
                                 for title, draw in res.figures().items()])
        pooled_context.append(item)
    matrix = []
    with_indicators = {r["programme"] for r in rows if r["indicator"]}
    for prog in programmes:
        if prog["id"] not in with_indicators:
            continue
        cells = []
        for ind in indicators:
            hits = [r for r in rows if r["programme"] == prog["id"] and r["indicator"] == ind["code"]]
            cells.append(hits)
        matrix.append({"programme": prog, "cells": cells})
    context = {
        "programmes": programmes,
        "rows": rows,
        "has_rw": any(r.get("p_romano_wolf") is not None for r in rows),
        "pooled": pooled_context,
        "pooling": pooling,
        "evidence_map": evidence_map,
        "indicators": indicators,
        "matrix": matrix,
        "adjustment": adjustment,
        "command": command,
        "versions": sorted((versions or {}).items()),
        "css": Markup(_CSS),
    }
    return _environment().get_template("portfolio.html.j2").render(**context)


_CSS = (Path(__file__).parent / "templates" / "report.css").read_text(encoding="utf-8")
