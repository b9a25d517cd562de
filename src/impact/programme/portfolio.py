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
from impact.registry.store import Registry
from impact.report.evidence import profile

__all__ = ["ProgrammeFailure", "benjamini_hochberg", "portfolio_evidence", "portfolio_rows", "pooled_indicators", "write_portfolio"]

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
    "Read from the results registry: every programme recorded there (the latest run of each), not only "
    "this run. Where programmes recorded one estimate per treated region (by_region in the spec), the "
    "region-level estimates are pooled; otherwise one estimate per programme. Only comparable estimates "
    "are pooled (same indicator on its own scale, a standard error, the same kind of estimand); what was "
    "left out is listed with the reason. Random-effects model (REML tau², Knapp-Hartung t intervals, which "
    "are honest, and therefore wide, with few studies). The region estimates of one evaluation share its "
    "comparison regions, so they are not independent: where an evaluation contributes several regions, the "
    "pooled interval is cluster-robust by evaluation (CR2, Satterthwaite t; Tipton 2015), and a pool whose "
    "regions all come from one evaluation is not formed. Each study's interval is the one its report shows "
    "(its own degrees of freedom). The pooled effect is the mean of the true effects; the prediction "
    "interval is where the effect in a new, similar region or programme would be expected."
)


def pooled_indicators(registry: Registry, libraries: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """For each indicator with estimates from two or more programmes or regions in the registry, the
    honest pool of :meth:`Registry.pool` (by region where region-level estimates exist), or why it could
    not be pooled, with what was left out."""
    from impact.errors import ImpactError

    table = registry.estimates(headline_only=True, role="all")
    table = table.loc[(table["role"] != "robustness") & table["indicator"].notna()]
    out = []
    for code in sorted(table["indicator"].unique()):
        rows = table.loc[table["indicator"] == code]
        by = "region" if (rows["role"] == "region").sum() >= 2 else "programme"
        if by == "programme" and rows.loc[rows["role"] == "main", "programme_id"].nunique() < 2:
            continue
        ind = next((lib.get(code) for lib in libraries if lib.get(code) is not None), None)
        unit = ind.unit if ind else (rows["unit"].dropna().iloc[0] if rows["unit"].notna().any() else "")
        entry: dict[str, Any] = {"code": code, "name": ind.name if ind else "", "unit": unit, "by": by,
                                 "k": 0, "result": None, "error": None, "left_out": [], "pi_note": None}
        try:
            result = registry.pool(code, by=by, method="REML", knha=True)
        except ImpactError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        else:
            entry.update(result=result, k=result.n_obs, left_out=list(result.settings.get("left_out") or []),
                         pi_note=result.diagnostics["prediction_interval"].get("note"))
        out.append(entry)
    return out


def _record(registry: Registry, run: ProgrammeRun, command: str | None) -> None:
    content = run.to_dict(command)
    registry.record_run({**content["programme"], "data": content["data"], "versions": content["versions"],
                         "effect_chain": content["effect_chain"], "indicators": content["indicators"]},
                        content["evaluations"])


def portfolio_evidence(
    runs: Sequence[ProgrammeRun], *, registry_url: str | None = None, command: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Pooled indicators and the evidence map, read from the registry at ``registry_url`` (where the runs
    were recorded), or from an in-memory registry of these runs when there is none (``--no-registry``)."""
    from impact.programme.interventions import intervention_types
    from impact.report.evidence_map import evidence_map, evidence_map_context

    registry = Registry(registry_url if registry_url is not None else "sqlite://")
    with registry:
        if registry_url is None:
            for run in runs:
                _record(registry, run, command)
        libraries = [run.spec.indicators for run in runs]
        pooled = pooled_indicators(registry, libraries)
        main = registry.estimates(headline_only=True)
        names = {code: next((lib.get(code).name for lib in libraries if lib.get(code) is not None), "")
                 for code in main["indicator"].dropna().unique()}
        kinds = {code: t.name for code, t in intervention_types().items()}
        emap = evidence_map_context(evidence_map(main, intervention_names=kinds, indicator_names=names))
    return pooled, emap


def write_portfolio(
    runs: Sequence[ProgrammeRun],
    failures: Sequence[ProgrammeFailure],
    out: Path,
    *,
    command: str | None = None,
    registry_url: str | None = None,
    follow_up: Sequence[Mapping[str, str]] = (),
) -> Path:
    """Write ``out/index.html`` for a run over several programmes; pooling and the evidence map read the
    registry at ``registry_url`` (every programme recorded there), else only these runs. ``follow_up``:
    links to the follow-up pages (``national.html``, ``regions/<code>.html``)."""
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
    pooled, emap = portfolio_evidence(runs, registry_url=registry_url, command=command)
    html = render_portfolio(programmes, rows, indicators=indicators, adjustment=ADJUSTMENT_TEXT, command=command,
                            versions=versions, pooled=pooled, pooling=POOLING_TEXT, evidence_map=emap, follow_up=follow_up)
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
