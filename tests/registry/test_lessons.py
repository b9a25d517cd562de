"""Pooling from the registry across programmes, regions and intervention types (issue 14 items 3 and 5):
comparable estimates only by default, what was left out and why, each study's own df and interval, and
moving runs between registries (SQLite and PostgreSQL) without duplicates.

Independent check: the pooled numbers equal impact.meta.pool called directly on the same estimates
(itself checked against metafor 3.8.1 in tests/meta).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

from impact.cli import main
from impact.errors import DataError
from impact.meta import pool
from impact.registry import Registry
from impact.results import Result, effects_table


def result(estimate: float, se: float, *, df: float = math.inf, estimand: str = "ATT", outcome: str = "RCR01") -> dict:
    table = effects_table(["ATT"], [estimate], [se], df=[df])
    return Result(design="twfe", estimand=estimand, effects=table, headline="ATT", inference="CR2", n_obs=100,
                  outcome=outcome).to_dict()


def programme(reg: Registry, pid: str, intervention: str, evaluations: list[dict], regions=("SE110",)) -> None:
    reg.record_run({"id": pid, "name": pid, "regions": list(regions), "intervention": intervention,
                    "spec_hash": f"s-{pid}", "data_hash": "d"}, evaluations)


def fill(reg: Registry) -> None:
    programme(reg, "bsp-a", "business_support", [{"name": "jobs", "indicator": "RCR01", "design": "did.twfe",
                                                  "result_dict": result(0.30, 0.10, df=4.5)}])
    programme(reg, "bsp-b", "business_support", [{"name": "jobs", "indicator": "RCR01", "design": "did.twfe",
                                                  "result_dict": result(0.40, 0.12)}])
    programme(reg, "skills-a", "skills", [{"name": "jobs", "indicator": "RCR01", "design": "did.twfe",
                                           "result_dict": result(0.10, 0.08)}])
    programme(reg, "skills-b", "skills", [{"name": "jobs", "indicator": "RCR01", "design": "synth.sdid",
                                           "result_dict": result(0.05, 0.09)}])
    # not comparable: a complier effect (LATE) and an estimate on the log scale
    programme(reg, "late", "business_advice", [{"name": "jobs", "indicator": "RCR01", "design": "rct.late",
                                                "result_dict": result(0.9, 0.3, estimand="LATE (complier average causal effect)")}])
    programme(reg, "logged", "skills", [{"name": "jobs", "indicator": "RCR01", "design": "did.twfe",
                                         "result_dict": result(0.02, 0.01, outcome="log_RCR01")}])


def test_pools_only_comparable_estimates_and_lists_the_rest(registry_url):
    with Registry(registry_url) as reg:
        fill(reg)
        res = reg.pool("RCR01")
        assert sorted(res.studies()["term"]) == ["bsp-a", "bsp-b", "skills-a", "skills-b"]
        left = {e["programme"]: e["reason"] for e in res.settings["left_out"]}
        assert "estimand LATE" in left["late"] and "differs from the ATT" in left["late"]
        assert "measured as 'log_RCR01'" in left["logged"]
        direct = pool([0.30, 0.40, 0.10, 0.05], [0.10, 0.12, 0.08, 0.09])
        assert res.estimate == pytest.approx(direct.estimate, abs=1e-12)
        assert res.tau2 == pytest.approx(direct.tau2, abs=1e-12)
        # the user can override, and the listing stays
        everything = reg.pool("RCR01", comparable_only=False)
        assert everything.n_obs == 6 and all("pooled anyway" in e["reason"] for e in everything.settings["left_out"])


def test_study_rows_keep_the_df_and_interval_of_their_report(registry_url):
    with Registry(registry_url) as reg:
        fill(reg)
        row = reg.pool("RCR01").studies().set_index("term").loc["bsp-a"]
        stored = reg.estimates(indicator="RCR01", programme="bsp-a", headline_only=True).iloc[0]
        assert row["df"] == pytest.approx(4.5)
        assert (row["conf_low"], row["conf_high"]) == pytest.approx((stored["conf_low"], stored["conf_high"]))
        assert row["p_value"] == pytest.approx(stored["p_value"])  # t(4.5), not the normal p-value


def test_pool_by_intervention_tests_the_difference_between_types(registry_url):
    with Registry(registry_url) as reg:
        fill(reg)
        res = reg.pool("RCR01", by="intervention")
        between = res.diagnostics["between_groups"]
        groups = {s["group"]: s for s in res.diagnostics["subgroups"]}
        assert set(groups) == {"business_support", "skills"}
        bsp = pool([0.30, 0.40], [0.10, 0.12])
        skills = pool([0.10, 0.05], [0.08, 0.09])
        assert groups["business_support"]["estimate"] == pytest.approx(bsp.estimate, abs=1e-12)
        w = 1 / np.array([bsp.std_error, skills.std_error]) ** 2
        est = np.array([bsp.estimate, skills.estimate])
        q = float(w @ (est - (w @ est) / w.sum()) ** 2)
        assert between["Q"] == pytest.approx(q, abs=1e-10) and between["df"] == 1


def test_too_few_comparable_estimates_say_what_was_left_out(registry_url):
    with Registry(registry_url) as reg:
        fill(reg)
        with pytest.raises(DataError, match="fewer than two comparable estimates.*late:jobs: estimand LATE"):
            reg.pool("RCR01", programmes=["bsp-a", "late"])


def test_export_import_moves_runs_without_duplicates(registry_url, tmp_path):
    source = Registry(f"sqlite:///{tmp_path / 'agency_a.sqlite'}")
    fill(source)
    exported = source.export(tmp_path / "a.json", format="json")
    with Registry(registry_url) as shared:
        programme(shared, "own", "skills", [{"name": "jobs", "indicator": "RCR01", "design": "did.twfe",
                                            "result_dict": result(0.2, 0.1)}])
        first = shared.import_runs(exported)
        assert len(first) == 6 and all(r.created for r in first)
        again = shared.import_runs(exported)
        assert not any(r.created for r in again)
        assert len(shared.runs()) == 7
        theirs = source.estimates(headline_only=True).set_index("programme_id")
        ours = shared.estimates(headline_only=True).set_index("programme_id")
        for column in ("estimate", "std_error", "conf_low", "conf_high", "df", "p_value", "intervention", "estimand"):
            assert ours.loc[theirs.index, column].tolist() == theirs[column].tolist(), column
        # pooling reads every run in the shared registry
        assert reg_terms(shared) == ["bsp-a", "bsp-b", "own", "skills-a", "skills-b"]
    source.close()


def reg_terms(reg: Registry) -> list[str]:
    return sorted(reg.pool("RCR01").studies()["term"])


def test_cli_import_and_pool_by_intervention(tmp_path):
    source = f"sqlite:///{tmp_path / 'a.sqlite'}"
    with Registry(source) as reg:
        fill(reg)
    runner = CliRunner()
    out = runner.invoke(main, ["registry", "--registry", source, "export", str(tmp_path / "a.json")])
    assert out.exit_code == 0, out.output
    target = str(tmp_path / "b.sqlite")
    for expected in ("6 new, 0 already", "0 new, 6 already"):
        out = runner.invoke(main, ["registry", "--registry", target, "import", str(tmp_path / "a.json")])
        assert out.exit_code == 0 and expected in out.output, out.output
    out = runner.invoke(main, ["pool", "--indicator", "RCR01", "--by", "intervention", "--registry", target])
    assert out.exit_code == 0, out.output
    assert "difference between types" in out.output and "Left out:" in out.output and "estimand LATE" in out.output
    out = runner.invoke(main, ["registry", "--registry", target, "import", str(tmp_path / "nothing.json")])
    assert out.exit_code != 0


def test_portfolio_pooling_and_evidence_map_read_the_shared_registry(registry_url):
    # several agencies record into one registry (PostgreSQL in CI): the portfolio covers all of them
    from impact.programme.portfolio import portfolio_evidence

    with Registry(registry_url) as reg:
        fill(reg)
    pooled, emap = portfolio_evidence([], registry_url=registry_url)
    (rcr01,) = [p for p in pooled if p["code"] == "RCR01"]
    assert rcr01["k"] == 4 and {e["programme"] for e in rcr01["left_out"]} == {"late", "logged"}
    assert {i["code"] for i in emap["interventions"]} == {"business_support", "skills", "business_advice"}
    (row,) = emap["rows"]
    by_type = dict(zip([i["code"] for i in emap["interventions"]], row["cells"], strict=True))
    assert by_type["skills"]["n"] == 3 and by_type["business_support"]["n"] == 2
