"""``impact monitor import FILE...`` and ``impact monitor report --by region|programme|national``."""

from __future__ import annotations

from pathlib import Path

import click

from impact.errors import DataError

_REGISTRY_HELP = "Results registry: SQLite file or SQLAlchemy URL (default: $IMPACT_REGISTRY, else reports/registry.sqlite)."
_INDICATORS_HELP = "A region or programme indicator library the records use (repeatable), e.g. analyses/indicators/se-tvv.csv."


@click.group("monitor")
def monitor_group() -> None:
    """Follow-up records: import them into the registry, roll them up and write the follow-up pages."""


@monitor_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--registry", "registry_url", envvar="IMPACT_REGISTRY", default=None, help=_REGISTRY_HELP)
@click.option("--indicators", "libraries", multiple=True, type=click.Path(path_type=str), help=_INDICATORS_HELP)
def import_command(files: tuple[str, ...], registry_url: str | None, libraries: tuple[str, ...]) -> None:
    """Validate follow-up records (CSV, Parquet or IATI 2.03 XML) and store them in the registry.

    Importing the same file again changes nothing; a corrected file updates the records it holds.
    """
    from impact.monitoring.records import read
    from impact.monitoring.store import import_records
    from impact.registry.store import Registry

    for name in files:
        m = read(name, indicators=libraries)
        with Registry(registry_url) as registry:
            summary = import_records(registry, m, source=Path(name).name)
        click.echo(f"{name}: {len(m):,} records: {summary}")


@monitor_group.command("report")
@click.option("--by", "by", type=click.Choice(["region", "programme", "national"]), default="region", show_default=True,
              help="The level of the CSV rollup (the pages cover the nation and every region).")
@click.option("--registry", "registry_url", envvar="IMPACT_REGISTRY", default=None, help=_REGISTRY_HELP)
@click.option("--from", "files", multiple=True, type=click.Path(path_type=str),
              help="Read records from these files instead of the registry (repeatable).")
@click.option("--indicators", "libraries", multiple=True, type=click.Path(path_type=str), help=_INDICATORS_HELP)
@click.option("--out", default="reports", show_default=True, type=click.Path(path_type=str), help="Output folder.")
@click.option("--cumulative", is_flag=True, help="Running totals since the start instead of yearly values in the CSV.")
@click.option("--force", is_flag=True, help="Overwrite national.html or regions/<code>.html in --out even if impact did "
              "not write them.")
def report_command(by: str, registry_url: str | None, files: tuple[str, ...], libraries: tuple[str, ...], out: str,
                   cumulative: bool, force: bool) -> None:
    """Roll follow-up records up and write national.html, regions/<code>.html and a CSV."""
    from impact.monitoring.pages import write_pages
    from impact.monitoring.records import read

    if files:
        m = read(list(files), indicators=libraries)
    else:
        from impact.monitoring.store import load_records
        from impact.registry.store import Registry

        with Registry(registry_url) as registry:
            records = load_records(registry)
        if records.empty:
            raise DataError("the registry holds no follow-up records; import some with `impact monitor import FILE`.")
        m = read(records, indicators=libraries)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    links = write_pages(m, folder, force=force)
    levels = {"region": ["region"], "programme": ["programme"], "national": []}[by]
    table = m.rollup(by=levels, cumulative=cumulative)
    csv = folder / f"follow_up_{by}{'_cumulative' if cumulative else ''}.csv"
    table.to_csv(csv, index=False, lineterminator="\n", float_format="%.6g")
    click.echo(f"{len(m):,} records -> {folder / 'national.html'}, {len(links) - 1} regional page(s), {csv}")
