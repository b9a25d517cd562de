"""The portfolio page: every programme of a run and their headline effects, with p-values adjusted
for testing several indicators within a programme.

Adjustment: Benjamini-Hochberg (false discovery rate) over the headline p-values of a programme's
evaluations (its family of hypotheses). Romano-Wolf needs the resampled statistics of every
evaluation jointly, which the designs do not expose yet; until ``impact.inference.multiple`` lands
(written by the RCT developer) the Benjamini-Hochberg step-up is computed here.
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
    """Benjamini-Hochberg adjusted p-values (NaN entries are left out and stay NaN).

    Notes
    -----
    With the m finite p-values sorted, :math:`p_{(1)} \\le \\dots \\le p_{(m)}`, the adjusted value is
    :math:`\\tilde p_{(i)} = \\min_{j \\ge i} \\min(1, m p_{(j)} / j)`; rejecting where
    :math:`\\tilde p \\le q` controls the false discovery rate at q for independent or positively
    dependent tests.

    References
    ----------
    Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
    powerful approach to multiple testing. JRSS B 57(1), 289-300. doi:10.1111/j.2517-6161.1995.tb02031.x
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="mergesort")]
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out[order] = np.minimum(adjusted, 1.0)
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


def write_portfolio(
    runs: Sequence[ProgrammeRun],
    failures: Sequence[ProgrammeFailure],
    out: Path,
    *,
    command: str | None = None,
) -> Path:
    """Write ``out/index.html`` for a run over several programmes."""
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
    html = render_portfolio(programmes, rows, indicators=indicators, adjustment=ADJUSTMENT_TEXT, command=command, versions=versions)
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
