"""The ``impact`` command line.

``impact run SPEC|DIR``, ``impact validate SPEC``, ``impact indicators``. Exit status is 0 on
success and non-zero with a one-line message on any error: 1 when an analysis fails (an invalid spec,
unreadable data, a failed evaluation), 2 for a wrong command line (Click's usage errors). With
``impact --debug ...`` unexpected errors show their traceback.

Progress is shown with ``click.progressbar`` (Click is already the CLI dependency, so no extra
package; it draws only on a terminal and stays silent in logs and tests).

Other command groups live in their own modules and are registered at the bottom of this file with
one ``main.add_command(...)`` line each; the error handling of :class:`ImpactGroup` covers them too.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from impact import __version__
from impact.errors import ImpactError

__all__ = ["main", "ImpactGroup"]


class ImpactGroup(click.Group):
    """A Click group that turns every error into one line and an exit status.

    ImpactError -> its message (exit 1); any other exception -> one line naming it plus a hint to
    use --debug (exit 1); with --debug the traceback is printed as well.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except ImpactError as exc:
            if ctx.find_root().params.get("debug"):
                traceback.print_exc()
            problems = getattr(exc, "problems", ())
            if len(problems) > 1:  # a spec with several errors: one line each, then the summary line
                for problem in problems:
                    click.echo(f"  - {_one_line(problem)}", err=True)
                click.echo(f"error: {_one_line(str(exc).splitlines()[0])} (listed above)", err=True)
            else:
                click.echo(f"error: {_one_line(str(exc))}", err=True)
            ctx.exit(1)
        except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
            if ctx.find_root().params.get("debug"):
                traceback.print_exc()
            click.echo(
                f"error: unexpected {type(exc).__name__}: {_one_line(str(exc))} "
                "(run `impact --debug ...` to see the traceback)",
                err=True,
            )
            ctx.exit(1)


def _one_line(text: str) -> str:
    return " ".join(text.split())


@click.group(cls=ImpactGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.version_option(version=__version__, message="impact %(version)s")
def main(debug: bool) -> None:
    """Counterfactual impact evaluation of public programmes: from a programme spec to a report."""


def _specs_in(target: Path) -> list[Path]:
    if target.is_dir():
        specs = sorted(p for p in target.glob("*.toml") if p.is_file())
        if not specs:
            raise ImpactError(f"{target}: no programme specs (*.toml) in this folder.")
        return specs
    if not target.exists():
        raise ImpactError(f"{target}: no such spec file or folder.")
    return [target]


def _jobs(value: str | int) -> int | str:
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a number of worker processes nor 'auto'.") from None


def _idle_cores(n_programmes: int) -> int:
    """Workers for ``--jobs auto``: one per core not already busy (the one-minute load average), at most
    one per programme; 1 (in this process) when fewer than two cores are idle, where worker processes
    only add their start-up. Outputs do not depend on it: the parallel run writes what the serial one does."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:  # pragma: no cover - platforms without a load average
        busy = 0.0
    return max(1, min(cores, n_programmes, int(cores - busy + 0.5)))


def _command(target: str, out: str, seed: int) -> str:
    return f"impact run {shlex.quote(target)} --out {shlex.quote(out)} --seed {seed}"


def _data_root_option(func: Any) -> Any:
    return click.option(
        "--data-root", "data_roots", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=str),
        help="A folder data files may be read from besides the spec's own folder (repeatable). Paths leaving "
             "these folders, also through symbolic links, are refused.",
    )(func)


@main.command()
@click.argument("target", type=click.Path(path_type=str))
@click.option("--out", "out", default="reports", show_default=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder for the reports (one sub-folder per programme).")
@click.option("--seed", default=None, type=int, help="Seed for every resampling design (default: impact's fixed seed).")
@click.option("--pdf", is_flag=True, help="Also print each report to PDF (needs headless Chromium on the PATH).")
@click.option("--registry", "registry_url", envvar="IMPACT_REGISTRY", default=None,
              help="Results registry to record the runs in: SQLite file or SQLAlchemy URL "
                   "(default: $IMPACT_REGISTRY, else OUT/registry.sqlite).")
@click.option("--no-registry", is_flag=True, help="Do not record the runs in the results registry.")
@click.option("--jobs", "jobs", default="1", show_default=True, metavar="N|auto", callback=lambda ctx, param, value: _jobs(value),
              help="Programmes evaluated at once in worker processes (-1: one per core; auto: one per idle core, "
                   "serial on a busy or one-core machine). Outputs are identical to a serial run.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run the programmes on a Dask distributed cluster (e.g. tcp://host:8786); reports and registry "
                   "records are written here. Needs the 'distributed' package.")
@click.option("--force", is_flag=True, help="Overwrite report.html, results.json or index.html in --out even if "
              "impact did not write them (by default such files are left alone and the programme fails).")
@_data_root_option
def run(target: str, out: str, seed: int | None, pdf: bool, registry_url: str | None, no_registry: bool,
        jobs: int | str, scheduler: str | None, force: bool, data_roots: tuple[str, ...]) -> None:
    """Evaluate a programme spec (or every spec in a folder) and write its report.

    With a folder, every programme is run even if one fails, reports/index.html summarises the
    portfolio, and the exit status is non-zero if anything failed. Every run is recorded in the
    results registry (a re-run of the same spec and data updates its record, never duplicates it).
    """
    from impact.programme.portfolio import ProgrammeFailure
    from impact.programme.parallel import run_programmes
    from impact.programme.runner import DEFAULT_SEED, OUTPUT_FILES, check_overwrite, count_tasks, write_files
    from impact.programme.spec import load_spec

    seed = DEFAULT_SEED if seed is None else seed
    path = Path(target)
    specs = _specs_in(path)
    command = _command(target, out, seed)
    out_dir = Path(out)
    many = path.is_dir()

    loaded = []
    failures: list[ProgrammeFailure] = []
    for spec_path in specs:
        try:
            loaded.append(load_spec(spec_path, data_roots=data_roots))
        except ImpactError as exc:
            if not many:
                raise
            failures.append(ProgrammeFailure(spec_path.name, _one_line(str(exc))))
    ids = [s.programme.id for s in loaded]
    clashes = sorted({i for i in ids if ids.count(i) > 1})
    if clashes:
        raise ImpactError(f"programme id(s) {', '.join(clashes)} are used by more than one spec; reports would overwrite each other.")
    if many:
        check_overwrite([out_dir / "index.html", out_dir / "national.html", *sorted((out_dir / "regions").glob("*.html"))],
                        force=force)
    writable = []
    for spec in loaded:  # a user's own report.html is never overwritten without --force: checked before estimating
        try:
            check_overwrite([out_dir / spec.programme.id / name for name in OUTPUT_FILES], force=force)
            writable.append(spec)
        except ImpactError as exc:
            if not many:
                raise
            failures.append(ProgrammeFailure(spec.path.name, _one_line(str(exc))))
    loaded = writable

    runs, records = [], []
    jobs = _idle_cores(len(loaded)) if jobs == "auto" else jobs
    total = sum(count_tasks(s) for s in loaded)
    serial = jobs == 1 and scheduler is None
    if serial and sys.stderr.isatty():
        bar_context = click.progressbar(length=total, label="Evaluating", file=sys.stderr, show_pos=True,
                                        item_show_func=lambda item: item)
    else:  # logs, pipes and worker processes print one line per finished evaluation instead of a bar
        bar_context = contextlib.nullcontext(None)
        click.echo(f"evaluating {len(loaded)} programme(s), {total} estimation(s)"
                   + ("" if serial else f" on {scheduler or f'{jobs} worker process(es)'}"), err=True)
    with bar_context as bar:

        def tick(label: str) -> None:
            if bar is not None:
                bar.update(1, label)
            else:
                click.echo(f"  done: {label}", err=True)

        for programme_run, files in run_programmes(loaded, seed=seed, command=command, portfolio=many, jobs=jobs,
                                                   scheduler=scheduler, progress=tick):
            write_files(out_dir / programme_run.spec.programme.id, files, force=force)
            runs.append(programme_run)
            # the registry records what results.json says: parsed back, not built a second time
            records.append(json.loads(files["results.json"]))

    registry_failures = [] if no_registry or not runs else _record_in_registry(runs, registry_url, out_dir, command,
                                                                                records)
    index = None
    if many:  # after the registry (the page pools what it holds), but never lost to a registry failure
        from impact.monitoring.pages import combine_runs, write_pages

        follow_up_links: list[dict[str, str]] = []
        combined = combine_runs(runs)
        if combined is not None:
            follow_up_links = write_pages(combined, out_dir, runs=runs, force=force)
            click.echo(f"follow-up -> {out_dir / 'national.html'} and {len(follow_up_links) - 1} regional page(s) in {out_dir / 'regions'}")
        index = _write_portfolio(runs, failures, out_dir, command, None if no_registry or registry_failures
                                 else (registry_url or str(out_dir / "registry.sqlite")), registry_failures,
                                 follow_up_links)

    for programme_run in runs:
        report = out_dir / programme_run.spec.programme.id / "report.html"
        n = len(programme_run.outcomes)
        failed = programme_run.n_failed
        status = "ok" if not failed else f"{failed} FAILED"
        click.echo(f"{programme_run.spec.programme.id}: {n} evaluation(s), {status} -> {report}")
        for o in programme_run.outcomes:
            for item in (o, *o.robustness, *o.region_estimates):
                if not item.ok:
                    click.echo(f"  failed: {item.name}: {_one_line(item.error or '')}", err=True)
    for f in failures:
        click.echo(f"{f.spec}: FAILED: {f.message}", err=True)
    for message in registry_failures:
        click.echo(message, err=True)
    if index is not None:
        click.echo(f"portfolio -> {index}")
    if pdf:
        from impact.report.pdf import html_to_pdf

        for programme_run in runs:
            printed = html_to_pdf(out_dir / programme_run.spec.programme.id / "report.html")
            click.echo(f"pdf -> {printed}")
    n_failed = sum(r.n_failed for r in runs) + len(failures) + len(registry_failures)
    if n_failed:
        click.echo(
            f"error: {n_failed} failure(s) in {len(specs)} programme(s); the reports say what failed and why.", err=True
        )
        sys.exit(1)


def _write_portfolio(runs: list[Any], failures: list[Any], out_dir: Path, command: str, registry_url: str | None,
                     registry_failures: list[str], follow_up: list[dict[str, str]]) -> Path:
    """The portfolio page, from the registry when it could be written; without the registry (this run's
    programmes only) when it could not, so that a registry failure never costs the page."""
    from impact.programme.portfolio import write_portfolio

    try:
        return write_portfolio(runs, failures, out_dir, command=command, registry_url=registry_url, follow_up=follow_up)
    except ImpactError as exc:
        if registry_url is None:
            raise
        registry_failures.append(f"portfolio: the registry could not be read, so the page shows this run's "
                                 f"programmes only: {_one_line(str(exc))}")
        return write_portfolio(runs, failures, out_dir, command=command, registry_url=None, follow_up=follow_up)


def _record_in_registry(runs: list[Any], registry_url: str | None, out_dir: Path, command: str,
                        records: list[dict] | None = None) -> list[str]:
    """Record each run; return one message per run that could not be recorded (the reports are already
    written, so a registry failure costs only the record, and the exit status says so). ``records``: each
    run's ``to_dict(command)`` when already at hand (the parsed results.json)."""
    from impact.registry.store import Registry

    url = registry_url or str(out_dir / "registry.sqlite")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        registry = Registry(url)
    except ImpactError as exc:
        return [f"registry: not recorded ({len(runs)} programme(s)); the reports are written: {_one_line(str(exc))}"]
    failures = []
    with registry:
        for i, programme_run in enumerate(runs):
            content = programme_run.to_dict(command) if records is None else records[i]
            try:
                registry.record_run(
                    {**content["programme"], "data": content["data"], "versions": content["versions"],
                     "effect_chain": content["effect_chain"], "indicators": content["indicators"]},
                    content["evaluations"],
                )
                follow_up = getattr(programme_run, "follow_up", None)
                if follow_up is not None and follow_up.monitoring is not None:
                    from impact.monitoring.store import import_records

                    import_records(registry, follow_up.monitoring, source=", ".join(follow_up.sources))
            except ImpactError as exc:
                failures.append(f"{programme_run.spec.programme.id}: not recorded in the registry (its report is "
                                f"written): {_one_line(str(exc))}")
    return failures


@main.command()
@click.argument("spec", type=click.Path(path_type=str))
@_data_root_option
def validate(spec: str, data_roots: tuple[str, ...]) -> None:
    """Check a programme spec and its data without estimating; every error in the spec is reported."""
    from impact.programme.runner import load_source
    from impact.programme.spec import load_spec

    paths = _specs_in(Path(spec))
    for path in paths:
        loaded = load_spec(path, data_roots=data_roots)
        rows = []
        for source in loaded.data:  # read, derive and filter: catches what only the data can reveal
            data = load_source(source)
            if data.error:
                raise ImpactError(f"{path}: data source {source.name!r}: {data.error}")
            rows.append(f"{source.name} {len(data.frame):,} rows")
        n_checks = sum(len(e.robustness) for e in loaded.evaluations)
        click.echo(
            f"{path}: ok ({loaded.programme.id}: data {', '.join(rows)}, "
            f"{len(loaded.evaluations)} evaluation(s), {n_checks} robustness check(s), "
            f"{len(loaded.effect_chain.indicator_codes())} indicator(s) in the effect chain)"
        )


@main.command()
@click.option("--search", "text", default=None, help="Text to look for in code, name or definition.")
@click.option("--level", type=click.Choice(["resources", "activities", "outputs", "outcomes", "impacts"]), default=None,
              help="Only indicators at this level of the effect chain.")
@click.option("--library", "libraries", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="A region's indicator CSV to include (repeatable).")
@click.option("--spec", "spec", default=None, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Include the region libraries a programme spec lists.")
@click.option("--definitions", is_flag=True, help="Show each indicator's definition too.")
def indicators(text: str | None, level: str | None, libraries: tuple[str, ...], spec: str | None, definitions: bool) -> None:
    """List or search the indicator library."""
    from impact.programme.indicators import load_library
    from impact.programme.spec import load_spec

    extra: list[Any] = list(libraries)
    if spec:
        extra = [*load_spec(spec).indicator_libraries, *extra]
    table = load_library(extra).search(text, level=level)
    if table.empty:
        click.echo("no indicators match.")
        return
    width = max(len(c) for c in table["code"])
    for row in table.itertuples(index=False):
        click.echo(f"{row.code:<{width}}  {row.level:<10}  {row.name} ({row.unit})")
        if definitions:
            click.echo(f"{'':<{width}}  {'':<10}  {row.definition} [{row.source}]")


# Command groups defined in other modules: one line each.
from impact.registry.commands import pool_command, registry_group  # noqa: E402

main.add_command(registry_group)
main.add_command(pool_command)
from impact.monitoring.commands import monitor_group  # noqa: E402

main.add_command(monitor_group)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="impact")
