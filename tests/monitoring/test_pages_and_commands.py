"""The follow-up in specs, the registry (idempotent import), the command line and the pages."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner

import impact as im
from impact.cli import main
from impact.errors import SpecError
from impact.monitoring.followup import build_follow_up
from impact.monitoring.store import import_records, load_records
from impact.programme.spec import load_spec
from impact.registry.store import Registry

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "data" / "sweden_monitoring.csv"
TVV = ROOT / "analyses" / "indicators" / "se-tvv.csv"


def test_demo_records_match_the_simulated_panel():
    m = im.monitoring.read(RECORDS, indicators=[TVV])
    panel = pd.read_csv(ROOT / "data" / "sweden_regions.csv", dtype={"region_code": str})
    actual = m.records.query("kind == 'actual' and indicator == 'RCR01'")
    # the follow-up's gross jobs are the panel's RCR01 in every programme region-year
    merged = actual.merge(panel, left_on=["region", "period"], right_on=["region_code", "year"])
    assert len(merged) == len(actual) and (merged["value"] == merged["RCR01"]).all()
    assert set(m.programmes) == {"se_business_support", "se_innovation", "se_skills", "se_vouchers"}


def test_registry_import_is_idempotent(tmp_path):
    m = im.monitoring.read(RECORDS, indicators=[TVV])
    with Registry(tmp_path / "r.sqlite") as registry:
        first = import_records(registry, m, source="a.csv")
        again = import_records(registry, m, source="a.csv")
        assert (first.inserted, first.updated, first.unchanged) == (len(m), 0, 0)
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(m))
        changed = m.records
        changed.loc[0, "value"] = changed.loc[0, "value"] + 1
        third = import_records(registry, im.monitoring.read(changed, indicators=[TVV]))
        assert (third.inserted, third.updated) == (0, 1)
        stored = load_records(registry)
    assert len(stored) == len(m)
    back = im.monitoring.read(stored, indicators=[TVV])
    pd.testing.assert_frame_equal(back.rollup(by=["programme"]), im.monitoring.read(changed, indicators=[TVV]).rollup(by=["programme"]))


def test_monitor_commands(tmp_path):
    runner = CliRunner()
    registry = str(tmp_path / "r.sqlite")
    out = runner.invoke(main, ["monitor", "import", str(RECORDS), "--registry", registry, "--indicators", str(TVV)])
    assert out.exit_code == 0, out.output
    assert "1,904 new" in out.output
    out = runner.invoke(main, ["monitor", "import", str(RECORDS), "--registry", registry, "--indicators", str(TVV)])
    assert "0 new, 0 updated, 1,904 unchanged" in out.output
    folder = tmp_path / "pages"
    out = runner.invoke(main, ["monitor", "report", "--by", "programme", "--registry", registry, "--indicators", str(TVV),
                               "--out", str(folder)])
    assert out.exit_code == 0, out.output
    table = pd.read_csv(folder / "follow_up_programme.csv")
    assert list(table.columns[:9]) == ["programme", *im.monitoring.ROLLUP_COLUMNS]
    assert (folder / "national.html").is_file() and len(list((folder / "regions").glob("*.html"))) == 21
    page = (folder / "regions" / "24.html").read_text(encoding="utf-8")
    assert "Västerbotten" in page and "se_innovation" in page and "<svg" in page


def test_monitor_report_never_overwrites_a_page_it_did_not_write(tmp_path):
    runner = CliRunner()
    folder = tmp_path / "pages"
    (folder / "regions").mkdir(parents=True)
    mine = folder / "regions" / "24.html"
    mine.write_text("<html>my own notes on Västerbotten</html>", encoding="utf-8")
    args = ["monitor", "report", "--from", str(RECORDS), "--indicators", str(TVV), "--out", str(folder)]
    out = runner.invoke(main, args)
    assert out.exit_code != 0 and "24.html exists and was not written by impact" in out.output
    assert mine.read_text(encoding="utf-8") == "<html>my own notes on Västerbotten</html>"
    assert not (folder / "national.html").exists()  # nothing is written when one page is refused
    out = runner.invoke(main, [*args, "--force"])
    assert out.exit_code == 0, out.output
    assert "<svg" in mine.read_text(encoding="utf-8")
    again = runner.invoke(main, args)  # pages impact wrote are refreshed without --force
    assert again.exit_code == 0, again.output


def test_monitor_import_refuses_bad_records(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("programme,project,region,indicator,period,kind,value\np,a,06,RCR01,2021,actual,-4\n", encoding="utf-8")
    out = CliRunner().invoke(main, ["monitor", "import", str(bad), "--registry", str(tmp_path / "r.sqlite")])
    assert out.exit_code != 0 and "line 2: RCR01 counts annual FTEs and cannot be negative" in out.output


def _spec(tmp_path: Path, monitoring: str) -> Path:
    text = (ROOT / "analyses" / "se_vouchers.toml").read_text(encoding="utf-8")
    text = text[: text.index("[[monitoring]]")] + monitoring
    text = text.replace('"indicators/se-tvv.csv"', f'"{TVV.as_posix()}"').replace('"../data/sweden_firms.csv"', f'"{(ROOT / "data" / "sweden_firms.csv").as_posix()}"')
    path = ROOT / "analyses" / f"_test_{tmp_path.name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "monitoring, message",
    [
        ('[[monitoring]]\npath = "../data/nope.csv"\n', "monitoring file '../data/nope.csv' not found"),
        ('[[monitoring]]\npath = "../data/sweden_monitoring.csv"\nsource = "x"\n', "unknown key 'source'"),
        ('[[monitoring]]\npath = "../data/sweden_monitoring.csv"\nnet_to_gross = [{ gross = "RCR01", evaluation = "Employees (offer, ITT)" }]\n',
         "measured in 'annual FTEs' but evaluation 'Employees \\(offer, ITT\\)' estimates SE-TVV_EMPLOYEES in 'employees'"),
        ('[[monitoring]]\npath = "../data/sweden_monitoring.csv"\nnet_to_gross = [{ gross = "SE-TVV_JOBS", evaluation = "Jobs" }]\n',
         "no evaluation named 'Jobs'"),
    ],
)
def test_bad_monitoring_tables(tmp_path, monitoring, message):
    path = _spec(tmp_path, monitoring)
    try:
        with pytest.raises(SpecError, match=message):
            load_spec(path)
    finally:
        path.unlink()


def test_net_to_gross_from_the_spec():
    spec = load_spec(ROOT / "analyses" / "se_vouchers.toml")
    table = pd.DataFrame({"term": ["ATE"], "estimate": [0.5], "std_error": [0.1], "df": [2744.0]})
    result = SimpleNamespace(estimate=0.5, std_error=0.1, headline="ATE", tidy=lambda: table)
    outcomes = [SimpleNamespace(name=e.name, result=result) for e in spec.evaluations]
    fu = build_follow_up(spec, outcomes)
    assert fu is not None and fu.error is None and not fu.problems
    (pair,) = fu.net_to_gross
    records = pd.read_csv(RECORDS, dtype={"region": str}).query("programme == 'se_vouchers' and kind == 'actual'")
    offers = records.query("indicator == 'SE-TVV_OFFERS'")["value"].sum()
    gross = records.query("indicator == 'SE-TVV_JOBS'")["value"].sum()
    budget = records.query("indicator == 'NB_BUDGET'")["value"].sum()
    assert pair.gross == gross and pair.net == pytest.approx(0.5 * offers)
    assert pair.net_to_gross.estimate == pytest.approx(0.5 * offers / gross)
    assert pair.cost_per_net.estimate == pytest.approx(budget / (0.5 * offers))
    assert fu.latest["SE-TVV_VOUCHERS"].period == 2022


def test_report_section_and_chain(tmp_path):
    from impact.report.followup import chain_note, follow_up_section

    spec = load_spec(ROOT / "analyses" / "se_business_support.toml")
    fu = build_follow_up(spec, [])
    assert re.match(r"monitored 2024: [\d,.]+ of target [\d,.]+ \(\d+%\)", chain_note(fu, "RCR01"))
    assert chain_note(fu, "RCO01") == "monitored per region (no total: distinct entities)"
    html = follow_up_section(fu, library=spec.indicators, region_names=im.monitoring.sweden().names)
    assert 'id="follow-up"' in html and html.count("<img") >= 6
