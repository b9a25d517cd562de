"""Command line of the results registry: ``impact registry list|show|export`` and ``impact pool``.

The main CLI adds them with ``main.add_command(registry_group)`` and ``main.add_command(pool_command)``.
Errors from impact (:class:`~impact.errors.ImpactError`) become one-line messages with exit status 1.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pandas as pd

from impact.errors import ImpactError
from impact.registry.store import ENV_VAR, Registry, record_results

__all__ = ["pool_command", "registry_group"]

_REGISTRY_HELP = f"Registry: SQLite file path or SQLAlchemy URL (default: ${ENV_VAR}, else reports/registry.sqlite)."


def _one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ImpactError as exc:
            raise click.ClickException(" ".join(str(exc).split())) from None

    return wrapper


def _open(url: str | None) -> Registry:
    return Registry(url)


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)"
    # blank rather than None/NaN; columns with nothing in them are left out
    frame = frame.loc[:, [c for c in frame.columns if frame[c].notna().any()]]
    shown = frame.astype(object).where(frame.notna(), "")
    formatted = shown.apply(lambda col: col.map(lambda v: f"{v:.4g}" if isinstance(v, float) else v))
    return formatted.to_string(index=False)


@click.group("registry")
@click.option("--registry", "url", envvar=ENV_VAR, default=None, help=_REGISTRY_HELP)
@click.pass_context
def registry_group(ctx: click.Context, url: str | None) -> None:
    """Browse and export the results registry (every programme run's stored results)."""
    ctx.obj = {"url": url}


@registry_group.command("list")
@click.option("--programme", default=None, help="Only this programme id.")
@click.option("--latest", is_flag=True, help="Only the latest run of each programme.")
@click.pass_context
@_one_line_errors
def list_runs(ctx: click.Context, programme: str | None, latest: bool) -> None:
    """List stored runs with their provenance and evaluation counts."""
    with _open(ctx.obj["url"]) as registry:
        runs = registry.runs(programme=programme)
    if latest:
        runs = runs.loc[runs["is_latest"]]
    runs = runs.assign(spec_hash=runs["spec_hash"].str[:12], data_hash=runs["data_hash"].str[:12])
    columns = ["run_id", "programme_id", "programme_name", "run_time", "spec_hash", "data_hash", "package_version",
               "n_evaluations", "n_failed", "is_latest"]
    click.echo(_table(runs.loc[:, columns]))


def _run_id(registry: Registry, run: str) -> int:
    """A run id given as a number, or the latest run of the programme with this id."""
    if run.strip().isdigit():
        return int(run)
    runs = registry.runs(programme=run)
    if runs.empty:
        known = sorted(registry.runs()["programme_id"].unique())
        close = difflib.get_close_matches(run, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise click.ClickException(
            f"no run or programme {run!r} in the registry.{hint} Programmes: {', '.join(known) or 'none yet'} "
            "(`impact registry list` shows the runs)."
        )
    return int(runs.loc[runs["is_latest"], "run_id"].iloc[0])


@registry_group.command("show")
@click.argument("run_or_programme", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON (everything stored).")
@click.pass_context
@_one_line_errors
def show_run(ctx: click.Context, run_or_programme: str, as_json: bool) -> None:
    """Show one run (RUN: a run id, or a programme id for its latest run): provenance, effect chain and
    each evaluation's headline estimate."""
    with _open(ctx.obj["url"]) as registry:
        run_id = _run_id(registry, run_or_programme)
        run = registry.show(run_id)
        evaluations = registry.evaluations(run_id)
    if as_json:
        click.echo(json.dumps(run, indent=2, sort_keys=True))
        return
    click.echo(f"Run {run['run_id']}: {run['programme_id']} ({run.get('programme_name') or ''})")
    for key in ("run_time", "spec_hash", "data_hash", "package_version", "first_recorded_at", "last_recorded_at"):
        click.echo(f"  {key}: {run[key]}")
    if run["effect_chain"]:
        click.echo("\nEffect chain:")
        click.echo(_table(pd.DataFrame(run["effect_chain"]).loc[:, ["level", "text", "indicator_code", "measured"]]))
    click.echo("\nEvaluations (headline estimates):")
    click.echo(_table(evaluations.drop(columns=["evaluation_id", "error"])))
    failed = evaluations.loc[evaluations["status"] == "failed"]
    if len(failed):
        click.echo("\nFailed evaluations:")
        for name, error in zip(failed["name"], failed["error"], strict=True):
            click.echo(f"  {name}: {error}")


@registry_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default=None,
              help="Default: from the file extension (.json -> json, otherwise csv).")
@click.option("--no-times", is_flag=True, help="Leave out run and record times (identical files for identical content).")
@click.pass_context
@_one_line_errors
def export_registry(ctx: click.Context, path: Path, fmt: str | None, no_times: bool) -> None:
    """Export every stored run (history included) to CSV (one row per estimate) or JSON (everything)."""
    fmt = fmt or ("json" if path.suffix.lower() == ".json" else "csv")
    with _open(ctx.obj["url"]) as registry:
        written = registry.export(path, format=fmt, times=not no_times)
    click.echo(f"wrote {written}")


@registry_group.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
@_one_line_errors
def add_results(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Record programme runs from results.json files (e.g. reports/*/results.json) written earlier."""
    for path in files:
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"{path}: not valid JSON ({exc})") from None
        record = record_results(content, url=ctx.obj["url"])
        state = "new run" if record.created else "updated run"
        click.echo(f"{path}: {state} {record.run_id} of {record.programme_id} ({record.n_evaluations} evaluations, {record.n_failed} failed)")


@registry_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
@_one_line_errors
def import_registry(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Import the runs of JSON exports (`impact registry export FILE.json` from another registry) into this
    registry; runs already here (same programme, spec and data) are updated, never duplicated."""
    with _open(ctx.obj["url"]) as registry:
        for path in files:
            records = registry.import_runs(path)
            new = sum(r.created for r in records)
            click.echo(f"{path}: {len(records)} run(s), {new} new, {len(records) - new} already in the registry (updated)")


#: Python argument spellings in Registry.pool's messages -> the `impact pool` flags that set them.
_POOL_FLAGS = (
    (re.compile(r"\bcomparable_only=False \(--all\)|\bcomparable_only=False"), "--all"),
    (re.compile(r"\bdesign=\.\.\.|\bdesign=(None|'[^']*')"), "--design DESIGN"),
    (re.compile(r"\bby='(\w+)'"), r"--by \1"),
    (re.compile(r"\bby=\.\.\."), "--by programme|region"),
    (re.compile(r"\bknha=(True|False)"), "--knha"),
    (re.compile(r"\bmethod='(\w+)'"), r"--method \1"),
    (re.compile(r"\blevel=([\d.]+)"), r"--level \1"),
    (re.compile(r"\bindicator=('[^']*')"), r"--indicator \1"),
)


def _as_flags(message: str) -> str:
    for pattern, flag in _POOL_FLAGS:
        message = pattern.sub(flag, message)
    return message


@click.command("pool")
@click.option("--indicator", required=True, help="Indicator code whose stored estimates are pooled, e.g. RCR01.")
@click.option("--method", type=click.Choice(["REML", "DL", "PM", "FE"]), default="REML", show_default=True,
              help="Equal effect (FE) or random effects with tau^2 by REML, DerSimonian-Laird or Paule-Mandel.")
@click.option("--by", type=click.Choice(["programme", "region", "intervention"]), default="programme", show_default=True,
              help="Pool one estimate per programme or per region, or per programme grouped by intervention type.")
@click.option("--all", "include_all", is_flag=True,
              help="Also pool estimates that are not comparable (other estimand or scale); they are listed either way.")
@click.option("--knha/--no-knha", default=False, show_default=True, help="Knapp-Hartung t inference (advised with few units).")
@click.option("--level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95, show_default=True)
@click.option("--design", default=None, help="Only evaluations with this design (when several designs estimate the indicator).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the forest plot to this PNG file.")
@click.option("--registry", "url", envvar=ENV_VAR, default=None, help=_REGISTRY_HELP)
@_one_line_errors
def pool_command(indicator: str, method: str, by: str, include_all: bool, knha: bool, level: float, design: str | None,
                 plot_path: Path | None, url: str | None) -> None:
    """Pool all stored estimates of one indicator across programmes or regions (latest run of each
    programme) and print the table with heterogeneity and the prediction interval."""
    with _open(url) as registry:
        try:
            result = registry.pool(indicator, by=by, method=method, knha=knha, level=level, design=design,
                                   comparable_only=not include_all)
        except ImpactError as exc:
            raise click.ClickException(_as_flags(" ".join(str(exc).split()))) from None
    click.echo(f"Pooled {indicator} across {by}s\n")
    click.echo(result.summary())
    d = result.diagnostics
    pi = d["prediction_interval"]
    click.echo(
        f"\nHeterogeneity: tau^2 = {d['tau2']:.4g}"
        + (f" (SE {d['se_tau2']:.4g})" if d["se_tau2"] is not None else "")
        + f", I^2 = {d['I2']:.1f}%, H^2 = {d['H2']:.3g}, Q = {d['Q']:.4g} on {d['Q_df']} df (p = {d['Q_p_value']:.3g})"
    )
    click.echo(f"Prediction interval ({pi['level']:.0%}): [{pi['low']:.4g}, {pi['high']:.4g}]")
    if pi.get("note"):
        click.echo(f"  {pi['note']}")
    between = d.get("between_groups")
    if between:
        click.echo("\nBy intervention type:")
        for sub in d["subgroups"]:
            click.echo(f"  {sub['group']}: {sub['estimate']:.4g} [{sub['conf_low']:.4g}, {sub['conf_high']:.4g}] (k = {sub['k']})")
        click.echo(f"  difference between types: Q = {between['Q']:.4g} on {between['df']} df (p = {between['p_value']:.3g})")
    left = result.settings.get("left_out") or []
    if left:
        click.echo("\nLeft out:" if not include_all else "\nNot comparable (pooled anyway with --all) or left out:")
        for entry in left:
            where = f" [{entry['region']}]" if entry.get("region") else ""
            click.echo(f"  {entry['programme']}: {entry['evaluation']}{where} ({entry['design']}): {entry['reason']}")
    if plot_path is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = result.forest()
        ax.figure.tight_layout()
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        ax.figure.savefig(plot_path, dpi=150, bbox_inches="tight", pad_inches=0.2)  # never cut the title or axis label
        plt.close(ax.figure)
        click.echo(f"wrote {plot_path}")
