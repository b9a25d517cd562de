"""Tests of `impact registry list|show|export` and `impact pool` (Click commands)."""

from __future__ import annotations

import json

import click
import pandas as pd
import pytest
from click.testing import CliRunner

import impact as im
from impact.registry import Registry
from impact.registry.commands import pool_command, registry_group
from impact.results import Result, effects_table

EFFECTS = {"SE110": (0.31, 0.10), "SE121": (0.12, 0.08), "SE122": (0.45, 0.15), "SE123": (0.05, 0.12)}


@pytest.fixture
def filled(registry_url):
    with Registry(registry_url) as reg:
        for region, (estimate, se) in EFFECTS.items():
            result = Result(design="twfe", estimand="ATT", effects=effects_table(["ATT"], [estimate], [se]),
                            headline="ATT", inference="iid", n_obs=50)
            reg.record_run(
                {"id": f"p-{region}", "name": f"Vouchers {region}", "regions": [region], "spec_hash": "s", "data_hash": "d",
                 "effect_chain": {"outcomes": [{"text": "jobs", "indicators": ["RCR01"], "measured": "register"}]}},
                [{"name": "jobs", "indicator": "RCR01", "design": "did.twfe", "result_dict": result.to_dict()},
                 {"name": "sales", "indicator": "RCR02", "design": "did.twfe", "error": "DataError: no sales column"}],
            )
    return registry_url


def cli():
    """The two entry points mounted as the main CLI does (one add_command line each)."""
    main = click.Group("impact")
    main.add_command(registry_group)
    main.add_command(pool_command)
    return main


def test_list_show_export(filled, tmp_path):
    runner = CliRunner()
    out = runner.invoke(cli(), ["registry", "--registry", filled, "list"])
    assert out.exit_code == 0, out.output
    assert all(f"p-{r}" in out.output for r in EFFECTS)
    out = runner.invoke(cli(), ["registry", "--registry", filled, "show", "1"])
    assert out.exit_code == 0, out.output
    assert "Vouchers SE110" in out.output and "DataError: no sales column" in out.output and "register" in out.output
    out = runner.invoke(cli(), ["registry", "--registry", filled, "show", "1", "--json"])
    assert json.loads(out.output)["evaluations"][0]["estimates"][0]["estimate"] == pytest.approx(0.31)
    out = runner.invoke(cli(), ["registry", "--registry", filled, "show", "99"])
    assert out.exit_code == 1 and "no run with id 99" in out.output
    out = runner.invoke(cli(), ["registry", "--registry", filled, "export", str(tmp_path / "all.json")])
    assert out.exit_code == 0 and len(json.loads((tmp_path / "all.json").read_text())["runs"]) == 4
    out = runner.invoke(cli(), ["registry", "--registry", filled, "export", str(tmp_path / "all.csv")])
    assert out.exit_code == 0 and len(pd.read_csv(tmp_path / "all.csv")) == 8


def test_registry_location_from_environment(filled):
    out = CliRunner().invoke(cli(), ["registry", "list", "--latest"], env={"IMPACT_REGISTRY": filled})
    assert out.exit_code == 0 and out.output.count("True") == 4


def test_pool_prints_table_and_writes_forest_plot(filled, tmp_path):
    png = tmp_path / "plots" / "forest.png"
    out = CliRunner().invoke(
        cli(), ["pool", "--indicator", "RCR01", "--method", "REML", "--knha", "--registry", filled, "--plot", str(png)]
    )
    assert out.exit_code == 0, out.output
    est, se = zip(*EFFECTS.values(), strict=True)
    direct = im.meta.pool(list(est), list(se), method="REML", knha=True)
    assert f"{direct.estimate:.4g}" in out.output
    assert "Vouchers SE123" in out.output and "Prediction interval (95%)" in out.output and "I^2" in out.output
    assert png.is_file() and png.stat().st_size > 10_000


def test_pool_errors_are_one_line(filled):
    out = CliRunner().invoke(cli(), ["pool", "--indicator", "NOPE", "--registry", filled])
    assert out.exit_code == 1
    assert "no stored estimates of indicator 'NOPE'" in out.output and "RCR01" in out.output
    out = CliRunner().invoke(cli(), ["pool", "--indicator", "RCR01", "--by", "country", "--registry", filled])
    assert out.exit_code == 2  # Click usage error lists the choices


def test_add_results_json_files(registry_url, tmp_path):
    # the shape the programme runner writes to reports/NAME/results.json
    result = Result(design="twfe", estimand="ATT", effects=effects_table(["ATT"], [0.2], [0.1]), headline="ATT",
                    inference="iid", n_obs=50)
    content = {
        "programme": {"id": "growth", "name": "Growth", "regions": ["SE110"], "spec": "growth.toml", "spec_sha256": "abc"},
        "seed": 1, "command": "impact run analyses/growth.toml", "versions": {"impact": "0.1.0"},
        "data": [{"name": "firms", "path": "data/firms.csv", "sha256": "f1", "rows_read": 10}],
        "evaluations": [{"name": "jobs", "indicator": "RCR01", "design": "did.twfe", "status": "ok", "error": None,
                         "result": result.to_dict(), "robustness": []}],
        "effect_chain": {"outcomes": [{"text": "jobs", "indicators": ["RCR01"], "measured": None}]},
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(content))
    runner = CliRunner()
    out = runner.invoke(cli(), ["registry", "--registry", registry_url, "add", str(path)])
    assert out.exit_code == 0, out.output
    assert "new run 1 of growth (1 evaluations, 0 failed)" in out.output
    out = runner.invoke(cli(), ["registry", "--registry", registry_url, "add", str(path)])
    assert "updated run 1 of growth" in out.output
    with Registry(registry_url) as reg:
        assert len(reg.runs()) == 1
        assert reg.show(1)["effect_chain"][0]["indicator_code"] == "RCR01"
    (tmp_path / "bad.json").write_text("{")
    out = runner.invoke(cli(), ["registry", "--registry", registry_url, "add", str(tmp_path / "bad.json")])
    assert out.exit_code == 1 and "not valid JSON" in out.output


def test_show_accepts_a_programme_id(filled):
    """Issue 12 item 14: `impact registry show` takes a programme id (its latest run) as well as a run id."""
    runner = CliRunner()
    by_id = runner.invoke(cli(), ["registry", "--registry", filled, "show", "p-SE121"])
    assert by_id.exit_code == 0, by_id.output
    assert by_id.output.startswith("Run 2: p-SE121")
    typo = runner.invoke(cli(), ["registry", "--registry", filled, "show", "p-SE12"])
    assert typo.exit_code == 1 and "no run or programme 'p-SE12'" in typo.output and "Did you mean" in typo.output


def test_pool_messages_name_command_line_flags(filled):
    """Issue 12 item 14: messages say `--design`, not the Python argument `design=`."""
    with Registry(filled) as reg:
        result = Result(design="sdid", estimand="ATT", effects=effects_table(["ATT"], [0.2], [0.1]), headline="ATT",
                        inference="placebo", n_obs=50)
        reg.record_run({"id": "p-SE110", "name": "Vouchers SE110", "regions": ["SE110"], "spec_hash": "s", "data_hash": "d"},
                       [{"name": "jobs", "indicator": "RCR01", "design": "did.twfe", "result_dict": result.to_dict()},
                        {"name": "jobs sdid", "indicator": "RCR01", "design": "synth.sdid", "result_dict": result.to_dict()}])
    out = CliRunner().invoke(cli(), ["pool", "--indicator", "RCR01", "--registry", filled])
    assert out.exit_code == 1
    assert "--design DESIGN" in out.output and "design=" not in out.output and "by=" not in out.output
    assert "--by region" in out.output
