"""The portfolio page: every programme of a run and their headline effects, with p-values adjusted
for testing several indicators within a programme, and indicators pooled across programmes.

Adjustment: Benjamini-Hochberg (false discovery rate, :mod:`impact.inference.multiple`) over the
headline p-values of a programme's evaluations (its family of hypotheses). Romano-Wolf needs the
joint resampling distribution of the evaluations' statistics, which only a design that estimates
several outcomes together has (e.g. ``rct.multiple_outcomes``); its ``p_romano_wolf`` column is shown
where present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from impact.programme.runner import ProgrammeRun, package_versions
from impact.report.evidence import profile

__all__ = ["ProgrammeFailure", "benjamini_hochberg", "portfolio_rows", "write_portfolio"]

ADJUSTMENT_TEXT = (
    "p adjusted: Benjamini-Hochberg step-up over the headline p-values of the evaluations within each "
    "programme (controls the false discovery rate across its indicators). Romano-Wolf p-values need the "
    "joint resampling distribution of the outcomes; they are shown where a design computed them "
    "(e.g. several outcomes of one trial) and are otherwise left blank."
)


@dataclass(frozen=True)
class ProgrammeFailure:
    """A programme that could not be run at all (invalid spec): its file and the message."""

    spec: str
    message: str


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values over the finite entries (NaN, e.g. a failed evaluation,
    stays NaN and does not count as a hypothesis).

    The adjustment itself is :func:`impact.inference.multiple.benjamini_hochberg`; this wrapper only
    leaves out evaluations without a p-value.
    """
    from impact.inference.multiple import benjamini_hochberg as adjust

    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = ~np.isnan(p)
    if finite.any():
        out[finite] = adjust(p[finite])
    return out


def portfolio_rows(runs: Sequence[ProgrammeRun], *, link_base: str = "") -> list[dict[str, Any]]:
    """One row per evaluation of every run, with BH-adjusted p-values within each programme."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        spec = run.spec
        start = len(rows)
        for outcome in run.outcomes:
            ind = spec.indicators.get(outcome.indicator) if outcome.indicator else None
            row: dict[str, Any] = {
                "programme": spec.programme.id,
                "programme_name": spec.programme.name,
                "indicator": outcome.indicator,
                "indicator_name": ind.name if ind else "",
                "unit": ind.unit if ind else "",
                "outcome": outcome.outcome,
                "evaluation": outcome.name,
                "design": outcome.design,
                "sms_level": profile(outcome.design).sms_level,
                "ok": outcome.ok,
                "error": outcome.error,
                "link": f"{link_base}{spec.programme.id}/report.html",
                "estimate": None, "conf_low": None, "conf_high": None, "p_value": None, "p_adjusted": None,
                "p_romano_wolf": None,
            }
            if outcome.result is not None:
                res = outcome.result
                low, high = res.conf_int()
                row.update(estimate=res.estimate, conf_low=low, conf_high=high, p_value=res.p_value)
                headline = res.effects.loc[res.effects["term"] == res.headline]
                if "p_romano_wolf" in headline.columns and headline["p_romano_wolf"].notna().any():
                    row["p_romano_wolf"] = float(headline["p_romano_wolf"].iloc[0])
            rows.append(row)
        family = rows[start:]
        adjusted = benjamini_hochberg([np.nan if r["p_value"] is None else r["p_value"] for r in family])
        for r, a in zip(family, adjusted, strict=True):
            r["p_adjusted"] = None if np.isnan(a) else float(a)
    return rows


POOLING_TEXT = (
    "Where two or more programmes estimate the same indicator, their headline estimates (the first "
    "evaluation of the indicator in each programme) are pooled with a random-effects model (REML "
    "tau², Knapp-Hartung t intervals, which are honest, and therefore wide, with few programmes). The "
    "pooled effect is the mean of the programmes' true effects; the prediction interval is where the "
    "effect of a new, similar programme would be expected. Programmes may use different designs."
)


def pooled_indicators(runs: Sequence[ProgrammeRun]) -> list[dict[str, Any]]:
    """For each indicator estimated by two or more programmes, ``impact.meta.pool`` of their headline
    estimates (one per programme), or the reason it could not be pooled."""
    from impact.errors import ImpactError
    from impact.meta import pool

    found: dict[str, list[tuple[str, float, float]]] = {}
    names: dict[str, Any] = {}
    for run in runs:
        seen: set[str] = set()
        for o in run.outcomes:
            if o.result is None or not o.indicator or o.indicator in seen:
                continue
            se = o.result.std_error
            if not np.isfinite(se) or se <= 0:
                continue
            seen.add(o.indicator)
            names.setdefault(o.indicator, run.spec.indicators.get(o.indicator))
            found.setdefault(o.indicator, []).append((run.spec.programme.name, o.result.estimate, se))
    out = []
    for code, items in found.items():
        if len(items) < 2:
            continue
        ind = names[code]
        entry: dict[str, Any] = {"code": code, "name": ind.name if ind else "", "unit": ind.unit if ind else "",
                                 "k": len(items), "result": None, "error": None}
        try:
            entry["result"] = pool([e for _, e, _ in items], [s for _, _, s in items], method="REML", knha=True,
                                   labels=[label for label, _, _ in items])
        except ImpactError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        out.append(entry)
    return out


def write_portfolio(
    runs: Sequence[ProgrammeRun],
    failures: Sequence[ProgrammeFailure],
    out: Path,
    *,
    command: str | None = None,
    follow_up: Sequence[Mapping[str, str]] = (),
) -> Path:
    """Write ``out/index.html`` for a run over several programmes (``follow_up``: links to the follow-up pages)."""
    from impact.report.html import render_portfolio

    rows = portfolio_rows(runs)
    programmes: list[Mapping[str, Any]] = []
    for run in runs:
        p = run.spec.programme
        failed = run.n_failed
        programmes.append({
            "id": p.id, "name": p.name, "regions": ", ".join(p.regions), "period": p.period,
            "n_evaluations": len(run.outcomes), "n_failed": failed,
            "status": "ok" if not failed else "failed evaluations", "message": "", "link": f"{p.id}/report.html",
        })
    for f in failures:
        programmes.append({
            "id": Path(f.spec).stem, "name": Path(f.spec).name, "regions": "", "period": "", "n_evaluations": 0,
            "n_failed": 0, "status": "failed", "message": f.message, "link": "",
        })
    codes: dict[str, dict[str, str]] = {}
    for run in runs:
        for o in run.outcomes:
            if o.indicator and o.indicator not in codes:
                ind = run.spec.indicators.get(o.indicator)
                codes[o.indicator] = {"code": o.indicator, "name": ind.name if ind else "", "unit": ind.unit if ind else ""}
    level_order = {"resources": 0, "activities": 1, "outputs": 2, "outcomes": 3, "impacts": 4}

    def key(code: str) -> tuple[int, str]:
        for run in runs:
            ind = run.spec.indicators.get(code)
            if ind:
                return level_order.get(ind.level, 9), code
        return 9, code

    indicators = [codes[c] for c in sorted(codes, key=key)]
    versions = runs[0].versions if runs else package_versions()
    html = render_portfolio(programmes, rows, indicators=indicators, adjustment=ADJUSTMENT_TEXT, command=command,
                            versions=versions, pooled=pooled_indicators(runs), pooling=POOLING_TEXT, follow_up=follow_up)
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
