"""The evidence map of the portfolio page (issue 14 item 4) and the portfolio's pooling read from the
registry (items 3 and 5): programmes recorded earlier, not only the current run, are covered."""

from __future__ import annotations

import math

import pytest

from impact.registry import Registry
from impact.report.evidence_map import NOT_CLASSIFIED, evidence_map, evidence_map_context
from impact.results import Result, effects_table


def result(estimate: float, se: float) -> dict:
    table = effects_table(["ATT"], [estimate], [se], df=[math.inf])
    return Result(design="twfe", estimand="ATT", effects=table, headline="ATT", inference="CR2", n_obs=100).to_dict()


def record(reg: Registry, pid: str, intervention: str | None, evaluations: list[tuple[str, str, float, float]]) -> None:
    meta = {"id": pid, "name": pid, "regions": ["SE110"], "spec_hash": pid, "data_hash": "d",
            "indicators": [{"code": "NB_EMPRATE", "level": "impacts"}, {"code": "RCR01", "level": "outcomes"}]}
    if intervention:
        meta["intervention"] = intervention
    reg.record_run(meta, [{"name": f"{code} {design}", "indicator": code, "design": design, "result_dict": result(e, s)}
                          for code, design, e, s in evaluations])


@pytest.fixture
def registry(tmp_path):
    with Registry(f"sqlite:///{tmp_path / 'r.sqlite'}") as reg:
        record(reg, "bsp", "business_support", [("NB_EMPRATE", "did.att_gt", 0.7, 0.1), ("RCR01", "did.twfe", 0.05, 0.1)])
        record(reg, "bsp2", "business_support", [("NB_EMPRATE", "synth.sdid", -0.5, 0.1)])
        record(reg, "vouchers", "business_advice", [("RCR01", "rct.difference_in_means", 3.0, 1.0)])
        record(reg, "old", None, [("RCR01", "did.twfe", 1.0, 10.0)])
        yield reg


def test_cells_count_direction_significance_and_highest_sms(registry):
    emap = evidence_map(registry.estimates(headline_only=True))
    assert [k for k, _ in emap.interventions] == ["business_advice", "business_support", NOT_CLASSIFIED]
    assert [level for level, _ in emap.levels] == ["outcomes", "impacts"]  # effect-chain order
    cell = emap.cell("NB_EMPRATE", "business_support")
    # +0.7 (z = 7) and -0.5 (z = -5): one significant increase, one significant decrease
    assert (cell.n_evaluations, cell.n_increase, cell.n_decrease, cell.n_not_significant) == (2, 1, 1, 0)
    assert cell.direction == "mixed" and cell.highest_sms == "3" and cell.programmes == ("bsp", "bsp2")
    trial = emap.cell("RCR01", "business_advice")
    assert trial.direction == "increase" and trial.highest_sms == "5"  # a randomised trial
    assert emap.cell("RCR01", "business_support").direction == "no significant effect"
    assert emap.cell("NB_EMPRATE", "business_advice").n_evaluations == 0  # a gap
    assert emap.cell("NB_EMPRATE", "business_advice").direction == ""
    context = evidence_map_context(emap)
    assert [r["code"] for r in context["rows"]] == ["RCR01", "NB_EMPRATE"]
    assert context["rows"][0]["first"] and context["rows"][0]["span"] == 1
    frame = emap.to_frame()
    assert len(frame) == 4 and set(frame["direction"]) >= {"mixed", "increase"}


def test_portfolio_reads_every_programme_in_the_registry(registry, tmp_path):
    from impact.programme.portfolio import portfolio_evidence

    # no run in this call: pooling and the map come from what the registry holds
    pooled, emap = portfolio_evidence([], registry_url=str(registry.url))
    by_code = {p["code"]: p for p in pooled}
    assert set(by_code) == {"NB_EMPRATE", "RCR01"}
    assert by_code["NB_EMPRATE"]["k"] == 2 and by_code["NB_EMPRATE"]["by"] == "programme"
    assert by_code["NB_EMPRATE"]["pi_note"] and "not informative" in by_code["NB_EMPRATE"]["pi_note"]
    assert by_code["RCR01"]["k"] == 3
    assert {i["code"] for i in emap["interventions"]} == {"business_advice", "business_support", NOT_CLASSIFIED}
