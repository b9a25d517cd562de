"""HTML reports: one per programme, and a portfolio index over programmes.

The renderer only reads recorded outcomes (results, failures, sample flows, diagnostics, figures);
it never estimates. All user-supplied text (programme names, questions, chain items, error messages,
column names) goes through Jinja2's autoescaping; the effect-chain SVG escapes its own text.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from impact.errors import warning_title
from impact.report.chain import LEVEL_TITLES, Measured, effect_chain_svg
from impact.report.claims import estimand_short, estimand_words, headline_claim, placebo_summary
from impact.report.evidence import assess, profile
from impact.report.figures import Figure, content_key, render_figure
from impact.report.format import decimals_for, fmt_estimate, fmt_number, fmt_p, fmt_value

if TYPE_CHECKING:
    from impact.programme.runner import Outcome, ProgrammeRun

__all__ = ["render_programme", "render_portfolio", "fmt_number", "fmt_p", "SECTIONS", "LONG_TABLE_ROWS"]

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

#: Tables longer than this are folded behind <details> (printed open in the PDF).
LONG_TABLE_ROWS = 10
_ROUNDED_BY_SE = ("estimate", "conf_low", "conf_high", "std_error")


@functools.cache
def _environment() -> jinja2.Environment:
    """The one template environment of the process: its template cache keeps every template compiled
    once (a fresh environment per page recompiled them for each of the 40-odd pages of a run)."""
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
    env.filters["plain"] = lambda v: fmt_value(v, "id")
    return env


def _warning_in_words(text: str) -> tuple[str, str]:
    category, _, message = text.partition(": ")
    title = warning_title(category)
    if title is not None and message:
        return title, message
    if category.endswith("Warning") and message:
        return category.removesuffix("Warning") or category, message
    return "Note", text


# ---------------------------------------------------------------------------------------------
# Diagnostics: scalars and dicts as key-value tables, lists of dicts and frames as tables
# ---------------------------------------------------------------------------------------------
def _cell(value: Any, key: Any = "") -> str:
    return fmt_value(value, key)


def _title(key: Any) -> str:
    return str(key).replace("_", " ").strip()


def _table_block(title: str, records: list[Mapping[str, Any]], columns: list[str],
                 names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A table with numbers rounded to what their uncertainty supports, labels printed plainly and
    unit codes replaced by unit names."""
    names = names or {}
    se_column = "std_error" if "std_error" in columns else None
    # the column that holds unit codes (named unit/donor/region or after the unit column itself)
    coded = {c for c in columns if names and records and all(str(r.get(c)) in names for r in records)}
    rows = []
    for rec in records:
        places = decimals_for(rec.get(se_column)) if se_column else None
        row = []
        for c in columns:
            v = rec.get(c)
            if places is not None and c in _ROUNDED_BY_SE and isinstance(v, int | float) and not isinstance(v, bool):
                text = fmt_estimate(v, rec.get(se_column)) if c != "std_error" else fmt_number(v, 2)
            elif c in ("p_value", "p") and isinstance(v, int | float):
                text = fmt_p(v)
            else:
                text = _cell(v, c)
            if c in coded:
                text = f"{names[str(v)]} ({text})"
            row.append(text)
        rows.append(row)
    return {"kind": "table", "title": title, "columns": [_title(c) for c in columns], "rows": rows,
            "long": len(rows) > LONG_TABLE_ROWS}


def _diagnostic_blocks(diagnostics: Mapping[str, Any], names: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Render-ready blocks: {"kind": "kv"|"table", "title", "rows" / "columns"+"rows", "long"}."""
    import numpy as np
    import pandas as pd

    blocks: list[dict[str, Any]] = []
    scalars = []
    for key, value in diagnostics.items():
        title = _title(key)
        if isinstance(value, pd.Series):
            index_name = value.index.name or "unit"
            frame = value.rename_axis(index_name).reset_index(name=value.name or "value")
            value = frame
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, Mapping):
            flat = {k: v for k, v in value.items() if not isinstance(v, Mapping | pd.DataFrame | pd.Series)
                    and not (isinstance(v, list) and v and isinstance(v[0], Mapping))}
            if flat:
                rows = [(_title(k), _cell(v, k)) for k, v in flat.items()]
                blocks.append({"kind": "kv", "title": title, "rows": rows, "long": False})
            nested = {k: v for k, v in value.items() if k not in flat}
            for b in _diagnostic_blocks(nested, names):
                blocks.append({**b, "title": f"{title}: {b['title']}" if b["title"] else title})
        elif isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value):
            columns = list(dict.fromkeys(str(k) for v in value for k in v))
            blocks.append(_table_block(title, [{str(k): x for k, x in v.items()} for v in value], columns, names))
        elif isinstance(value, pd.DataFrame):
            frame = value.reset_index() if value.index.name else value
            records = [{str(k): v for k, v in r.items()} for r in frame.to_dict(orient="records")]
            blocks.append(_table_block(title, records, [str(c) for c in frame.columns], names))
        else:
            scalars.append((title, _cell(value, key)))
    if scalars:
        blocks.insert(0, {"kind": "kv", "title": "", "rows": scalars, "long": False})
    return blocks


def _block_key(block: Mapping[str, Any]) -> str:
    return json.dumps([block["kind"], block.get("columns"), block["rows"]], ensure_ascii=False, default=str)


class _Shown:
    """Remembers the diagnostics and figures already shown, so that shared ones appear once."""

    def __init__(self) -> None:
        self.where: dict[str, str] = {}

    def once(self, blocks: list[dict[str, Any]], owner: str) -> list[dict[str, Any]]:
        out = []
        for b in blocks:
            if b["kind"] == "table" or len(b["rows"]) > 2:
                key = _block_key(b)
                if key in self.where:
                    out.append({"kind": "same", "title": b["title"], "rows": [], "long": False, "where": self.where[key]})
                    continue
                self.where[key] = owner
            out.append(b)
        return out

    def figure_once(self, figure: Figure, owner: str) -> Figure | str:
        key = "figure:" + figure.png_base64 if figure.png_base64 else ""
        if key and key in self.where:
            return self.where[key]
        if key:
            self.where[key] = owner
        return figure


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


def _effects_rows(result: Any) -> tuple[list[str], list[list[str]], str | None]:
    """Columns and rows of the effects table; the inference method once if every row shares it."""
    from impact.inference.randomization import UNBOUNDED_NOTE

    table = result.tidy()
    texts = table["inference"].astype(str) if "inference" in table else None
    # a randomisation interval may be unbounded (e.g. one treated region behind a row): the method is
    # shared by every row, the note on why is said once below the table
    methods = texts.str.split(UNBOUNDED_NOTE, regex=False).str[0].unique() if texts is not None else []
    shared = methods[0] if len(methods) == 1 else None
    drop = {"term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"}
    if shared is not None:
        drop.add("inference")
    # a permutation p-value is not read off a t or normal reference, so its df (stored as inf, which pooling
    # and the registry rely on) means nothing there: shown as "–", and the column left out when no row has one
    permuted = (texts.str.contains("randomis|permutation", case=False, regex=True).tolist()
                if texts is not None else [False] * len(table))
    if "df" in table and all(permuted):
        drop.add("df")
    extra = [c for c in table.columns if c not in drop and not table[c].isna().all()]
    columns = ["term", "estimate", "std. error", "statistic", "p-value", f"{result.level:.0%} CI", *[_title(c) for c in extra]]
    rows = []
    for rec, no_df in zip(table.to_dict(orient="records"), permuted, strict=True):
        se = rec["std_error"]
        if decimals_for(se) is None:  # no SE (permutation, placebo): round to the interval's precision
            width = rec["conf_high"] - rec["conf_low"]
            se = width / 3.92 if math.isfinite(width) and width > 0 else None
        has_ci = math.isfinite(rec["conf_low"]) and math.isfinite(rec["conf_high"])
        unbounded = math.isinf(rec["conf_low"]) or math.isinf(rec["conf_high"])
        if unbounded:
            ci = (f"{'(−∞' if math.isinf(rec['conf_low']) else '[' + fmt_estimate(rec['conf_low'], se)}, "
                  f"{'∞)' if math.isinf(rec['conf_high']) else fmt_estimate(rec['conf_high'], se) + ']'} unbounded")
        rows.append(
            [
                str(rec["term"]),
                fmt_estimate(rec["estimate"], se),
                fmt_number(rec["std_error"], 2, trailing_zeros=True),
                fmt_number(rec["statistic"], 3),
                fmt_p(rec["p_value"]),
                f"[{fmt_estimate(rec['conf_low'], se)}, {fmt_estimate(rec['conf_high'], se)}]" if has_ci
                else ci if unbounded else "none (see p-value)",
                *["–" if c == "df" and no_df else _cell(rec[c], c) for c in extra],
            ]
        )
    if shared is not None and texts.str.contains(UNBOUNDED_NOTE, regex=False).any():
        shared += (". Intervals marked unbounded: with so few treated regions behind that row (often a cohort of "
                   f"one), the randomisation test cannot reject an effect of any size in that direction at the "
                   f"{1 - result.level:.0%} level; its p-value is still valid")
    return columns, rows, shared


def _indicator_name(outcome: Outcome, library: Any, spec: Any) -> tuple[str, str]:
    """The outcome's name and unit: the indicator's, else an effect-chain item naming the column, else
    the evaluation's outcome column described as such."""
    ind = library.get(outcome.indicator) if outcome.indicator else None
    if ind is not None:
        return ind.name, ind.unit
    for _, items in spec.effect_chain.levels():
        for item in items:
            text = str(item.text)
            if text.endswith(f"({outcome.outcome})"):
                return text[: -len(outcome.outcome) - 2].strip().rstrip(",") or outcome.outcome, ""
    # a chain that names one outcome without indicators describes the evaluated column
    for wanted in ("outcomes", "impacts"):
        plain = [item for level, items in spec.effect_chain.levels() if level == wanted for item in items
                 if not item.indicators]
        if len(plain) == 1 and ";" not in str(plain[0].text):
            return str(plain[0].text), ""
    return f"the outcome ({outcome.outcome})", ""


def _binary_outcome(outcome: Outcome) -> bool:
    """Whether the evaluated outcome column holds only 0 and 1 in the analysed sample."""
    table = outcome.variables
    if table is None or table.empty:
        return False
    row = table[(table["variable"] == outcome.outcome) & (table["role"] == "outcome")]
    if row.empty:
        return False
    first = row.iloc[0]
    return first["distinct"] == 2 and first["min"] == 0 and first["max"] == 1


def _sample_line(res: Any) -> str:
    """Sample sizes in words; a trial with non-compliance says assigned vs received."""
    parts = [f"observations {fmt_number(res.n_obs)}"]
    consort = res.diagnostics.get("consort") if hasattr(res, "diagnostics") else None
    short = estimand_short(res.estimand)
    if isinstance(consort, list) and consort and short == "ITT":
        treated = consort[-1]
        parts.append(f"assigned to treatment {fmt_number(treated.get('assigned'))}")
        if treated.get("received") is not None:
            parts.append(f"of whom used it {fmt_number(treated.get('received'))}")
        parts.append(f"analysed in the treatment arm {fmt_number(treated.get('analysed', res.n_treated))}")
    else:
        if res.n_units is not None:
            parts.append(f"units {fmt_number(res.n_units)}")
        if res.n_treated is not None:
            parts.append(f"treated {fmt_number(res.n_treated)}")
    if res.n_clusters is not None:
        parts.append(f"clusters {fmt_number(res.n_clusters)}")
    return " · ".join(parts)


def _headline(outcome: Outcome, library: Any, spec: Any) -> dict[str, Any]:
    ind = library.get(outcome.indicator) if outcome.indicator else None
    what, unit = _indicator_name(outcome, library, spec)
    assessment = assess(outcome)
    row: dict[str, Any] = {
        "name": outcome.name,
        "indicator": outcome.indicator,
        "indicator_name": ind.name if ind else what,
        "unit": unit,
        "outcome": outcome.outcome,
        "design": outcome.design,
        "family": assessment.profile.family,
        "sms_level": assessment.level,
        "sms_design_level": assessment.design_level,
        "sms_lowered": assessment.lowered,
        "sms_reason": assessment.reason,
        "ok": outcome.ok,
        "error": outcome.error,
    }
    if outcome.result is not None:
        res = outcome.result
        low, high = res.conf_int()
        if _binary_outcome(outcome):
            # a 0/1 outcome per unit: the effect is a change in a share, whatever the indicator counts
            # ("enterprises" is the unit of the aggregate, not of a firm's 0/1 record)
            scale, unit = 100.0, "percentage points"
            what = f"the share of {what[:1].lower() + what[1:] if what[1:2].islower() else what}"
            row["unit"] = "share, 0 to 1"
        else:
            scale = 1.0
        claim = headline_claim(estimand=res.estimand, estimate=res.estimate * scale, std_error=res.std_error * scale,
                               conf_low=low * scale, conf_high=high * scale, level=res.level, what=what, unit=unit,
                               diagnostics=res.diagnostics)
        se = res.std_error if decimals_for(res.std_error) is not None else (
            (high - low) / 3.92 if math.isfinite(high - low) and high > low else None)
        placebo = placebo_summary(res.diagnostics)
        rank = f" · rank {placebo.rank} of {placebo.units + 1}" if placebo and placebo.rank and placebo.units else ""
        if math.isfinite(low) and math.isfinite(high):
            interval = f"{res.level:.0%} CI [{fmt_estimate(low, se)}, {fmt_estimate(high, se)}] · p {_peq(res.p_value)}"
            if placebo is not None and not math.isclose(placebo.p_value, res.p_value):
                interval += f" · placebo p {_peq(placebo.p_value)}"
            interval += rank
        elif placebo is not None:
            interval = f"no confidence interval · placebo p {_peq(placebo.p_value)}{rank}"
        else:
            interval = "no confidence interval"
        row.update(
            estimand=res.estimand,
            estimand_short=estimand_short(res.estimand),
            estimand_words=estimand_words(res.estimand),
            term=res.headline,
            estimate_text=fmt_estimate(res.estimate, se),
            interval=interval,
            sample=_sample_line(res),
            finding=claim.finding,
            sentence=claim.sentence,
        )
    return row


def _peq(p: Any) -> str:
    text = fmt_p(p)
    return text if text.startswith("<") or text == "–" else f"= {text}"


def _locator(run: ProgrammeRun):
    evaluated: dict[str, list[str]] = {}
    for o in run.outcomes:
        if o.indicator:
            evaluated.setdefault(o.indicator, []).append(o.name)
    in_data: dict[str, list[str]] = {}
    for d in run.data:
        for col in d.source.columns:
            in_data.setdefault(col, []).append(d.source.relative_path.rsplit("/", 1)[-1])

    from impact.report.followup import chain_note

    def locate(code: str) -> Measured:
        files = ", ".join(in_data.get(code, []))
        monitored = chain_note(getattr(run, "follow_up", None), code)
        if code in evaluated:
            return Measured("evaluated", f"estimated: {'; '.join(evaluated[code])}" + (f"; {monitored}" if monitored else ""))
        if monitored:
            return Measured("measured", monitored)
        if files:
            return Measured("measured", f"in data: {files}")
        return Measured("none", "not in the data")

    return locate


def unit_names(frame: Any, unit: Any) -> dict[str, str]:
    """Unit code -> name when the data hold a name column (``region_name``, ``*_name``, ``name``)
    with exactly one name per unit; empty otherwise."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame) or not isinstance(unit, str) or unit not in frame.columns:
        return {}
    candidates = [c for c in frame.columns if c != unit and (str(c).endswith("_name") or str(c) == "name")]
    for column in candidates:
        pairs = frame[[unit, column]].dropna().drop_duplicates()
        if len(pairs) and pairs[unit].is_unique and pairs[column].astype(str).str.len().max() <= 40:
            return {str(k): str(v) for k, v in zip(pairs[unit], pairs[column], strict=True)}
    return {}


def _figures(outcome: Outcome, names: Mapping[str, str], label: str = "") -> list[Figure]:
    """The evaluation's figures; ``label`` is the outcome's name, shown instead of its column code."""
    from impact.report import plots

    figures = []
    trends = outcome.trends
    if trends is not None and not trends.empty:
        time_label = str(outcome.options.get("time", ""))
        what = f"{label} ({outcome.outcome})" if label else outcome.outcome
        figures.append(
            render_figure(
                f"Raw data: mean {what} by {time_label} and treatment cohort (evaluation sample)",
                lambda ax: plots.trends_plot(trends, ax=ax, outcome=label or outcome.outcome, time_label=time_label),
                key=content_key(trends, label or outcome.outcome, time_label),  # one outcome's trends behind several evaluations
            )
        )
    res = outcome.result
    try:
        drawers = res.figures()
    except Exception as exc:  # noqa: BLE001
        return [*figures, Figure("figures", error=f"{type(exc).__name__}: {exc}")]
    for title, draw in drawers.items():
        size = None
        if "RMSPE" in title:
            ratios = res.diagnostics.get("placebo_ratios")
            if ratios is not None and len(ratios):
                figures.append(render_figure(
                    "Post/pre RMSPE ratios, ranked (log scale)",
                    lambda ax, r=ratios: plots.rank_plot(r, ax=ax, names=names), size=(7.2, max(3.2, 0.16 * len(ratios) + 1.2))))
                continue
        if "weights" in title.lower() and "time" not in title.lower():
            weights = _unit_weights(res)
            if weights is not None:
                figures.append(render_figure(title, lambda ax, w=weights: plots.weights_plot(w, ax=ax, names=names),
                                             size=(7.2, min(0.28 * min(len(weights), 15) + 1.2, 5.5))))
                continue
        if title == "Estimates with confidence intervals":
            table = res.tidy()
            if "event_time" not in table.columns or table["event_time"].isna().all():
                if len(table) == 1:
                    continue  # one coefficient: its table row says everything a plot would
                size = (7.2, 0.42 * len(table) + 1.2)
        draw = _legend_with_names(draw, names, (outcome.outcome, label) if label else None)
        figures.append(render_figure(title, draw, size=size) if size else render_figure(title, draw))
    return figures


def _legend_with_names(draw: Any, names: Mapping[str, str], outcome: tuple[str, str] | None = None) -> Any:
    """Wrap a design's drawing function so that legend entries naming a unit by its code
    ("24", "synthetic 24", "24: 3.10") show the unit's name instead, and titles and axis labels naming
    the outcome by its column code (``outcome = (code, name)``: "Mean NB_EMPRATE") show its name."""
    if not names and not outcome:
        return draw

    def rename(label: str) -> str:
        if label in names:
            return names[label]
        for prefix in ("synthetic ",):
            if label.startswith(prefix) and label[len(prefix):] in names:
                return prefix + names[label[len(prefix):]]
        code, sep, rest = label.partition(": ")
        return f"{names[code]}: {rest}" if sep and code in names else label

    def drawn(ax: Any) -> Any:
        out = draw(ax)
        figure = out.figure if out is not None and hasattr(out, "figure") else ax.figure
        for axes in figure.get_axes():
            legend = axes.get_legend()
            for text in legend.get_texts() if legend is not None else ():
                text.set_text(rename(text.get_text()))
            if outcome:
                code, name = outcome
                for text in (axes.title, axes.xaxis.label, axes.yaxis.label):
                    if re.search(rf"\b{re.escape(code)}\b", text.get_text()):
                        text.set_text(re.sub(rf"\b{re.escape(code)}\b", name, text.get_text()))
        return out

    return drawn


def _unit_weights(res: Any) -> Any:
    import pandas as pd

    weights = getattr(res, "weights", None)
    if isinstance(weights, pd.Series):
        return weights
    table = getattr(res, "unit_weights", None)
    if isinstance(table, pd.DataFrame) and {"unit", "weight"} <= set(table.columns):
        return table.groupby("unit")["weight"].mean()
    return None


def _sensitivity(item: Outcome) -> dict[str, Any] | None:
    """A Rambachan-Roth (honest) result: breakdown value, the robust interval for each bound, the plot."""
    res = item.result
    if res is None or "breakdown" not in res.diagnostics:
        return None
    name = str(res.settings.get("bound_name", "M"))
    symbol = {"Mbar": "M̄", "M": "M"}.get(name, name)
    breakdown = res.diagnostics["breakdown"]
    table = res.tidy()
    original = table.loc[table["term"] == res.headline]
    rows = []
    for rec in table.loc[table["term"] != res.headline].to_dict(orient="records"):
        low, high = rec["conf_low"], rec["conf_high"]
        se = (high - low) / 3.92 if math.isfinite(high - low) and high > low else None
        rows.append([f"{float(rec.get('bound')):.3g}", f"[{fmt_estimate(low, se)}, {fmt_estimate(high, se)}]",
                     "no" if low <= 0 <= high else "yes"])
    if isinstance(breakdown, int | float) and math.isfinite(breakdown):
        breakdown_text = f"{symbol} = {fmt_number(breakdown, 2)}"
    else:
        breakdown_text = str(breakdown)
    o = original.iloc[0] if len(original) else None
    return {
        "name": item.name,
        "symbol": symbol,
        "method": str(res.settings.get("method", "")).replace("_", " "),
        "assumption": str(res.settings.get("assumption", "")),
        "breakdown": breakdown_text,
        "breakdown_zero": isinstance(breakdown, int | float) and breakdown == 0,
        "original": None if o is None else f"{fmt_estimate(o['estimate'], o['std_error'])} "
        f"[{fmt_estimate(o['conf_low'], o['std_error'])}, {fmt_estimate(o['conf_high'], o['std_error'])}]",
        "rows": rows,
        "inference": res.inference,
        "figures": [render_figure(f"{item.name}: robust intervals by {symbol}", draw) for _, draw in res.figures().items()],
    }


def _robustness_figure(outcome: Outcome) -> Figure | None:
    from impact.report.plots import forest_plot

    rows = []
    for item in (outcome, *outcome.robustness):
        if item.result is not None and "breakdown" not in item.result.diagnostics:
            low, high = item.result.conf_int()
            if not (math.isfinite(low) and math.isfinite(high)):
                continue
            label = item.name if item is not outcome else f"{item.name} (main)"
            rows.append({"term": "\n".join(textwrap.wrap(label, 34, max_lines=2, placeholder="…")), "estimate": item.result.estimate,
                         "conf_low": low, "conf_high": high, "main": item is outcome})
    if len(rows) < 2:
        return None
    import pandas as pd

    table = pd.DataFrame(rows)
    return render_figure(f"Robustness: {outcome.name}", lambda ax: forest_plot(table, ax=ax), size=(7.2, 0.5 * len(rows) + 1.3))


def _all_warnings(outcome: Outcome) -> list[dict[str, str]]:
    """Every warning of an evaluation and of its robustness checks, each once, with where it arose."""
    seen: dict[tuple[str, str], list[str]] = {}
    for item in (outcome, *outcome.robustness):
        texts = list(item.result.warnings if item.result else ()) + list(item.captured_warnings)
        for text in texts:
            title, message = _warning_in_words(text)
            # "twfe: only 13 clusters ..." and "event_study: only 13 clusters ..." say the same thing
            head, sep, rest = message.partition(": ")
            if sep and head.replace("_", "").isalnum() and head == head.lower():
                message = rest[:1].upper() + rest[1:]
            where = "main estimate" if item is outcome else f"check: {item.name}"
            places = seen.setdefault((title, message), [])
            if where not in places:
                places.append(where)
    return [{"title": t, "message": m, "where": "; ".join(w)} for (t, m), w in seen.items()]


def _evaluation_context(outcome: Outcome, library: Any, names: Mapping[str, str], shown: _Shown) -> dict[str, Any]:
    prof = profile(outcome.design)
    ctx: dict[str, Any] = {
        "name": outcome.name,
        "anchor": "ev-" + "".join(ch if ch.isalnum() else "-" for ch in outcome.name.lower()),
        "question": outcome.question,
        "design": outcome.design,
        "family": prof.family,
        "options": [(k, _cell(v, k)) for k, v in outcome.options.items()],
        "then": [f"{s.method}({', '.join(f'{k}={v!r}' for k, v in s.kwargs.items())})" for s in outcome.then],
        "outcome": outcome.outcome,
        "indicator": outcome.indicator,
        "indicator_label": library.get(outcome.indicator).label() if outcome.indicator and library.get(outcome.indicator) else "",
        "data": outcome.data,
        "query": outcome.query,
        "ok": outcome.ok,
        "error": outcome.error,
        "warnings": _all_warnings(outcome),
    }
    variables = outcome.variables
    ctx["variables"] = [] if variables is None else [
        {k: (_cell(v, row.get("role") if row.get("role") in ("time", "cohort") else k) if k in ("mean", "sd", "min", "max") else v)
         for k, v in row.items()}
        for row in variables.to_dict(orient="records")
    ]
    indicator = library.get(outcome.indicator) if outcome.indicator else None
    label = indicator.name if indicator is not None else ""  # figures name the outcome, not its column
    res = outcome.result
    if res is not None:
        settings = dict(res.settings)
        columns, rows, shared = _effects_rows(res)
        figures = [f for f in _figures(outcome, names, label) if isinstance(shown.figure_once(f, outcome.name), Figure)]
        ctx.update(
            assumption=str(settings.get("assumption") or prof.assumption),
            estimand=res.estimand,
            estimand_words=estimand_words(res.estimand),
            inference=res.inference,
            sample=_sample_line(res),
            flow=_flow_rows(res.sample_flow),
            effect_columns=columns,
            effect_rows=rows,
            effect_inference=shared,
            effects_long=len(rows) > LONG_TABLE_ROWS,
            # a long table is folded away; its headline row stays in view above it
            effect_headline_rows=[r for r in rows if r[0] == str(res.headline)],
            diagnostics=shown.once(_diagnostic_blocks(res.diagnostics, names), outcome.name),
            figures=figures,
            settings=[(k, _cell(v, k)) for k, v in settings.items() if k != "assumption"],
        )
    else:
        ctx.update(assumption=prof.assumption, flow=[], figures=[], diagnostics=[])
    checks = []
    sensitivity = []
    if outcome.robustness:
        for item in (outcome, *outcome.robustness):
            row = {"name": item.name if item is not outcome else f"{item.name} (main)", "design": item.design, "ok": item.ok,
                   "error": item.error, "sensitivity": None}
            changed = {k: v for k, v in item.options.items() if outcome.options.get(k) != v} if item is not outcome else {}
            row["changes"] = ", ".join(f"{k} = {_cell(v, k)}" for k, v in changed.items()) or ("–" if item is outcome else "same options")
            if item.query != outcome.query:
                row["changes"] += f"; sample: {item.query or 'all rows'}"
            if item.then and item.then != outcome.then:
                row["changes"] += "; then " + ", ".join(s.method for s in item.then)
            sens = _sensitivity(item) if item is not outcome else None
            if sens is not None:
                row["sensitivity"] = sens
                sensitivity.append(sens)
            elif item.result is not None:
                r = item.result
                low, high = r.conf_int()
                se = r.std_error if decimals_for(r.std_error) is not None else (
                    (high - low) / 3.92 if math.isfinite(high - low) and high > low else None)
                row.update(estimate=fmt_estimate(r.estimate, se), std_error=fmt_number(r.std_error, 2),
                           interval=(f"[{fmt_estimate(low, se)}, {fmt_estimate(high, se)}]"
                                     if math.isfinite(low) and math.isfinite(high) else "none"),
                           p_value=r.p_value, n_obs=r.n_obs, inference=r.inference)
                # a matching check can switch the default SE (e.g. replace=False: clustered on pairs)
                main_res = outcome.result
                if (item is not outcome and item.design.removeprefix("impact.").startswith("matching.")
                        and main_res is not None and r.inference != main_res.inference):
                    row["changes"] += f"; SE: {r.inference}"
            checks.append(row)
    ctx["checks"] = checks
    ctx["sensitivity"] = sensitivity
    ctx["robustness_figure"] = _robustness_figure(outcome) if checks else None
    # Checks with another design bring their own diagnostics (event study, pre-trend test, balance, ...).
    check_diagnostics = []
    for item in outcome.robustness:
        if item.result is None or item.design == outcome.design or "breakdown" in item.result.diagnostics:
            continue
        figures = []
        for f in _figures(dataclasses.replace(item, trends=None), names, label):
            seen = shown.figure_once(f, item.name)
            if isinstance(seen, Figure):
                figures.append(f)
        check_diagnostics.append({
            "name": item.name,
            "design": item.design,
            "diagnostics": shown.once(_diagnostic_blocks(item.result.diagnostics, names), item.name),
            "figures": figures,
        })
    ctx["check_diagnostics"] = check_diagnostics
    return ctx


def _names_for(run: ProgrammeRun, outcome: Outcome) -> dict[str, str]:
    for d in run.data:
        if d.source.name == outcome.data:
            return unit_names(d.frame, outcome.options.get("unit"))
    return {}


def render_programme(run: ProgrammeRun, *, command: str | None = None, portfolio_link: str | None = None) -> str:
    """The self-contained HTML report of one programme run."""
    spec = run.spec
    library = spec.indicators
    outcomes = list(run.outcomes)
    shown = _Shown()
    evaluations = [_evaluation_context(o, library, _names_for(run, o), shown) for o in outcomes]
    described: dict[str, str] = {}  # the variables table is shown once when evaluations share it
    for e in evaluations:
        key = json.dumps(e["variables"], default=str, ensure_ascii=False)
        e["variables_same_as"] = described.get(key) if e["variables"] else None
        described.setdefault(key, e["name"])
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
        "headlines": [_headline(o, library, spec) for o in outcomes],
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
        "follow_up": _follow_up(run),
    }
    return _environment().get_template("programme.html.j2").render(**context)


def _follow_up(run: ProgrammeRun) -> Markup:
    from impact.monitoring.hierarchy import sweden
    from impact.report.followup import follow_up_section

    fu = getattr(run, "follow_up", None)
    return follow_up_section(fu, library=run.spec.indicators, region_names=sweden().names) if fu is not None else Markup("")


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
    follow_up: Sequence[Mapping[str, str]] = (),
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
                        clustered=res.settings.get("cluster"), pooled_inference=res.inference,
                        pooled_warnings=[w.split(": ", 1)[-1] for w in res.warnings],
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
        "follow_up": list(follow_up),  # links to national.html and regions/<code>.html (impact.monitoring.pages)
    }
    return _environment().get_template("portfolio.html.j2").render(**context)


_CSS = (Path(__file__).parent / "templates" / "report.css").read_text(encoding="utf-8")
