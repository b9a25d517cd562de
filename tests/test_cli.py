"""The command line: exit status 0 on success, non-zero with a one-line message on any error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from impact.cli import main

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"

SPEC = '''
[programme]
id = "{id}"
name = "CLI test"

[[data]]
name = "d"
path = "d.csv"

[[evaluations]]
name = "Effect"
outcome = "y"
design = "did.twfe"
options = {{ treatment = "{treatment}", unit = "u", time = "t", vcov = "HC1" }}
'''


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    u = np.repeat(np.arange(8), 4)
    t = np.tile(np.arange(4), 8)
    d = ((u < 4) & (t >= 2)).astype(int)
    pd.DataFrame({"u": u, "t": t, "d": d, "y": u + t + d + rng.normal(0, 0.1, u.size)}).to_csv(tmp_path / "d.csv", index=False)
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_validate_ok():
    result = invoke("validate", str(ANALYSES / "injury.toml"))
    assert result.exit_code == 0, result.output
    assert "injury.toml: ok" in result.output


def test_validate_bad_spec_exits_1_with_one_line(folder):
    (folder / "bad.toml").write_text(SPEC.format(id="bad", treatment="d").replace("design", "desing"), encoding="utf-8")
    result = invoke("validate", str(folder / "bad.toml"))
    assert result.exit_code == 1
    assert "Did you mean 'design'?" in one_line_error(result)
    assert "Traceback" not in result.output


def test_validate_reports_a_bad_column_option_with_line(folder):
    (folder / "bad.toml").write_text(SPEC.format(id="bad", treatment="nope"), encoding="utf-8")
    result = invoke("validate", str(folder / "bad.toml"))
    assert result.exit_code == 1
    assert "options.treatment: treatment = 'nope' is not a column of data source 'd'" in one_line_error(result)


def test_validate_runs_the_data_preparation(folder):
    text = SPEC.format(id="q", treatment="d").replace('path = "d.csv"', 'path = "d.csv"\nquery = "u > 100"')
    (folder / "q.toml").write_text(text, encoding="utf-8")
    result = invoke("validate", str(folder / "q.toml"))
    assert result.exit_code == 1
    assert "keeps no rows of 32" in one_line_error(result)


def test_run_missing_target():
    result = invoke("run", "no/such/spec.toml")
    assert result.exit_code == 1
    assert "no such spec file or folder" in one_line_error(result)


def test_usage_error_exits_2():
    assert invoke("run").exit_code == 2
    assert invoke("no-such-command").exit_code == 2


def test_run_one_spec_writes_report(folder):
    (folder / "ok.toml").write_text(SPEC.format(id="ok", treatment="d"), encoding="utf-8")
    result = invoke("run", str(folder / "ok.toml"), "--out", str(folder / "reports"), "--seed", "7")
    assert result.exit_code == 0, result.output
    assert (folder / "reports" / "ok" / "report.html").is_file()
    assert (folder / "reports" / "ok" / "results.json").is_file()
    assert not (folder / "reports" / "index.html").exists()


def test_run_folder_continues_after_failures_and_exits_1(folder):
    (folder / "a_ok.toml").write_text(SPEC.format(id="a_ok", treatment="d"), encoding="utf-8")
    # y is not a 0/1 treatment: valid spec, but the estimator refuses it at run time
    (folder / "b_fails.toml").write_text(SPEC.format(id="b_fails", treatment="y"), encoding="utf-8")
    (folder / "c_invalid.toml").write_text("[programme]\nid = 'c'\n", encoding="utf-8")
    result = invoke("run", str(folder), "--out", str(folder / "reports"))
    assert result.exit_code == 1
    out = result.output
    assert "a_ok: 1 evaluation(s), ok" in out
    assert "b_fails: 1 evaluation(s), 1 FAILED" in out and "must be coded 0/1" in out
    assert "c_invalid.toml: FAILED:" in out
    assert "error: 2 failure(s) in 3 programme(s)" in out
    for name in ("a_ok", "b_fails"):
        assert (folder / "reports" / name / "report.html").is_file()
    index = (folder / "reports" / "index.html").read_text(encoding="utf-8")
    assert "c_invalid.toml" in index and "a_ok/report.html" in index


def test_unexpected_error_is_one_line_with_debug_hint(monkeypatch, folder):
    import impact.programme.spec as spec_module

    def boom(path, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(spec_module, "load_spec", boom)
    (folder / "ok.toml").write_text(SPEC.format(id="ok", treatment="d"), encoding="utf-8")
    result = invoke("validate", str(folder / "ok.toml"))
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "unexpected RuntimeError: disk on fire second line" in line and "--debug" in line
    debug = invoke("--debug", "validate", str(folder / "ok.toml"))
    assert debug.exit_code == 1 and "Traceback" in debug.output


def test_indicators_search_and_level():
    result = invoke("indicators", "--search", "jobs", "--level", "outcomes")
    assert result.exit_code == 0
    assert result.output.startswith("RCR01") and len(result.output.splitlines()) == 1
    everything = invoke("indicators")
    assert "RCO01" in everything.output and "NB_EMPRATE" in everything.output
    assert invoke("indicators", "--search", "zzzz").output.strip() == "no indicators match."


def test_indicators_with_region_library(tmp_path):
    lib = tmp_path / "se-m.csv"
    lib.write_text(
        "# prefix: SE-M_\ncode,name,unit,level,definition,source,parent\nSE-M_FOOD,Food start-ups,enterprises,outcomes,New food firms.,Region Skåne,\n",
        encoding="utf-8",
    )
    result = invoke("indicators", "--library", str(lib), "--search", "food")
    assert result.exit_code == 0 and "SE-M_FOOD" in result.output


def test_pdf_output_when_chromium_is_available(folder):
    import shutil

    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("headless Chromium is not installed: PDF output cannot be checked here")
    (folder / "ok.toml").write_text(SPEC.format(id="ok", treatment="d"), encoding="utf-8")
    result = invoke("run", str(folder / "ok.toml"), "--out", str(folder / "reports"), "--pdf")
    assert result.exit_code == 0, result.output
    pdf = folder / "reports" / "ok" / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000


def test_version_and_help():
    from impact import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"impact {__version__}"
    assert invoke("--help").exit_code == 0


def test_registry_commands_are_plugged_in(folder):
    (folder / "ok.toml").write_text(SPEC.format(id="ok", treatment="d"), encoding="utf-8")
    assert invoke("run", str(folder / "ok.toml"), "--out", str(folder / "reports")).exit_code == 0
    listed = invoke("registry", "--registry", str(folder / "reports" / "registry.sqlite"), "list")
    assert listed.exit_code == 0 and "ok" in listed.output
    assert invoke("run", str(folder / "ok.toml"), "--out", str(folder / "r2"), "--no-registry").exit_code == 0
    assert not (folder / "r2" / "registry.sqlite").exists()


# -- issue 12 item 13: validate reports every error, option values are checked -------------------
def test_validate_reports_every_error_with_its_line(folder):
    text = (
        SPEC.format(id="bad", treatment="d")
        .replace('vcov = "HC1"', 'vcov = "clustr"')
        .replace('outcome = "y"', 'outcome = "yy"\nquery = "tt > 1"')
        .replace('path = "d.csv"', 'path = "d.csv"\nderive = [{ name = "z", expr = "10 ** 10 ** 10" }]')
    )
    (folder / "bad.toml").write_text(text, encoding="utf-8")
    result = invoke("validate", str(folder / "bad.toml"))
    assert result.exit_code == 1
    assert "error: " in one_line_error(result) and "4 errors in the spec" in one_line_error(result)
    problems = [line for line in result.output.splitlines() if line.startswith("  - ")]
    assert len(problems) == 4, result.output
    joined = "\n".join(problems)
    for fragment in ("derive[0].expr", "evaluations[0].outcome: outcome 'yy'", "evaluations[0].query",
                     "options.vcov: did.twfe: vcov = 'clustr' is not allowed; choose one of", "Did you mean 'cluster'?"):
        assert fragment in joined, fragment
    assert all(", line " in p for p in problems)


def test_option_values_come_from_the_estimators_annotations():
    """Allowed values are read from the Literal annotations (or the shared vcov table), not copied."""
    import typing

    import impact
    from impact.did.att_gt import ControlGroup
    from impact.inference.vcov import VCOV_KINDS
    from impact.programme.spec import option_value_problem

    assert "one of 'never', 'notyet'" in option_value_problem(impact.did.att_gt, "control_group", "nottyet")
    assert list(typing.get_args(ControlGroup)) == ["never", "notyet"]
    message = option_value_problem(impact.did.twfe, "vcov", "clustr")
    assert all(repr(kind) in message for kind in VCOV_KINDS)
    assert option_value_problem(impact.did.twfe, "vcov", "CR2") is None
    assert "wrong type" in option_value_problem(impact.did.twfe, "level", "0.95")
    assert "wrong type" in option_value_problem(impact.rct.assign, "n", 2.5)
    assert option_value_problem(impact.did.att_gt, "bootstrap", 999) is None


# -- issue 11 item 13: reports are never lost to the registry, and never overwrite a user's file ---
def test_registry_failure_keeps_reports_and_portfolio_and_exits_1(folder):
    import sqlite3

    (folder / "specs").mkdir()
    (folder / "specs" / "a.toml").write_text(SPEC.format(id="a", treatment="d").replace('"d.csv"', '"../d.csv"'), encoding="utf-8")
    foreign = folder / "mine.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE contacts (name TEXT)")
    before = foreign.read_bytes()
    result = invoke("run", str(folder / "specs"), "--out", str(folder / "reports"), "--registry", str(foreign),
                    "--data-root", str(folder))
    assert result.exit_code == 1
    assert "not recorded" in result.output and "not an impact results registry" in result.output
    assert (folder / "reports" / "a" / "report.html").is_file() and (folder / "reports" / "index.html").is_file()
    assert foreign.read_bytes() == before


def test_a_users_own_report_is_not_overwritten_without_force(folder):
    (folder / "ok.toml").write_text(SPEC.format(id="ok", treatment="d"), encoding="utf-8")
    own = folder / "reports" / "ok" / "report.html"
    own.parent.mkdir(parents=True)
    own.write_text("<html>my hand-written board report</html>", encoding="utf-8")
    result = invoke("run", str(folder / "ok.toml"), "--out", str(folder / "reports"), "--no-registry")
    assert result.exit_code == 1 and "--force" in one_line_error(result) and "not written by impact" in result.output
    assert own.read_text(encoding="utf-8") == "<html>my hand-written board report</html>"
    assert not (folder / "reports" / "ok" / "results.json").exists()
    again = invoke("run", str(folder / "ok.toml"), "--out", str(folder / "reports"), "--no-registry", "--force")
    assert again.exit_code == 0, again.output
    assert '<meta name="generator" content="impact' in own.read_text(encoding="utf-8")
    # our own report is recognised: a plain re-run overwrites it
    assert invoke("run", str(folder / "ok.toml"), "--out", str(folder / "reports"), "--no-registry").exit_code == 0


def test_a_users_own_index_html_is_not_overwritten(folder):
    (folder / "specs").mkdir()
    (folder / "specs" / "a.toml").write_text(SPEC.format(id="a", treatment="d").replace('"d.csv"', '"../d.csv"'), encoding="utf-8")
    index = folder / "reports" / "index.html"
    index.parent.mkdir()
    index.write_text("<html>our intranet page</html>", encoding="utf-8")
    result = invoke("run", str(folder / "specs"), "--out", str(folder / "reports"), "--no-registry",
                    "--data-root", str(folder))
    assert result.exit_code == 1 and "index.html exists and was not written by impact" in result.output
    assert index.read_text(encoding="utf-8") == "<html>our intranet page</html>"


# -- issue 12 item 14 ----------------------------------------------------------------------------------
def test_indicator_search_finds_names_and_definitions_through_everyday_words():
    result = invoke("indicators", "--search", "jobs")
    codes = [line.split()[0] for line in result.output.splitlines()]
    assert "NB_EMPRATE" in codes and "RCR01" in codes
    assert "NB_EMPRATE" not in invoke("indicators", "--search", "jobs", "--level", "outcomes").output


def test_a_portfolio_page_from_an_earlier_impact_is_recognised_as_ours(folder):
    """The README's first command must keep working over a reports/ folder written by an older impact."""
    from impact.programme.runner import is_generated

    old = folder / "index.html"
    old.write_text('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                   "<title>Programme portfolio – impact evaluation</title>\n", encoding="utf-8")
    assert is_generated(old)
    old.write_text("<html><title>Programme portfolio</title></html>", encoding="utf-8")
    assert not is_generated(old)


def test_jobs_auto_uses_the_idle_cores_and_bad_values_are_refused(monkeypatch):
    import os

    from impact.cli import _idle_cores, _jobs

    assert _jobs("auto") == "auto" and _jobs(" AUTO ") == "auto" and _jobs("2") == 2 and _jobs(-1) == -1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    for load, programmes, expected in ((0.1, 15, 2), (0.4, 15, 2), (0.8, 15, 1), (6.0, 15, 1), (0.0, 1, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert _idle_cores(programmes) == expected, (load, programmes)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 2.0, 2.0))
    assert _idle_cores(15) == 5 and _idle_cores(3) == 3
    result = CliRunner().invoke(main, ["run", "analyses/kielmc.toml", "--jobs", "many"])
    assert result.exit_code == 2 and "neither a number of worker processes nor 'auto'" in result.output
