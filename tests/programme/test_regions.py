"""Region and intervention type on evaluations, and region-level estimates (issue 14 item 1).

Simulation with known effects: three treated regions with true effects 1, 2 and 3 and eight never-treated
regions; the per-region estimates (SDID, and TWFE on one treated region at a time) must recover each
region's own effect, not the average.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from impact.errors import DataError, FewClustersWarning, SpecError
from impact.programme.interventions import check_intervention, intervention_types
from impact.programme.runner import evaluate
from impact.programme.spec import load_spec
from impact.registry import Registry

SPEC = '''\
[programme]
id = "regional"
name = "Regional demo"
regions = ["North", "South", "East"]
intervention = "skills"

[effect_chain]
impacts = [{ text = "Employment", indicators = ["NB_EMPRATE"] }]

[[data]]
name = "panel"
path = "panel.csv"

[[evaluations]]
name = "Employment"
outcome = "NB_EMPRATE"
design = "did.twfe"
options = { treatment = "treated", unit = "unit", time = "year", vcov = "CR2" }
by_region = BY_REGION
'''

ANALYSES = Path(__file__).resolve().parents[2] / "analyses"
TRUE_EFFECTS = {"North": 1.0, "South": 2.0, "East": 3.0}


def regional_panel(seed: int = 7) -> pd.DataFrame:
    """11 units x 12 years; units 0-2 treated from year 7 in North/South/East with effects 1/2/3."""
    rng = np.random.default_rng(seed)
    names = ["North", "South", "East"] + [f"Control {i}" for i in range(8)]
    rows = []
    for u, name in enumerate(names):
        level = rng.normal(70, 2)
        for t in range(1, 13):
            treated = int(u < 3 and t >= 7)
            effect = TRUE_EFFECTS.get(name, 0.0) * treated
            rows.append({"unit": u, "region_name": name, "year": t, "treated": treated,
                         "NB_EMPRATE": level + 0.2 * t + effect + rng.normal(0, 0.1)})
    return pd.DataFrame(rows)


def write(tmp_path, by_region: str) -> str:
    regional_panel().to_csv(tmp_path / "panel.csv", index=False)
    path = tmp_path / "regional.toml"
    path.write_text(SPEC.replace("BY_REGION", by_region), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "by_region",
    ['"region_name"',
     '{ column = "region_name", design = "synth.sdid", options = { unit = "unit", time = "year", treatment = "treated" } }'],
)
def test_region_level_estimates_recover_each_regions_effect(tmp_path, by_region):
    run = evaluate(load_spec(write(tmp_path, by_region)))
    (main,) = run.outcomes
    assert main.intervention == "skills" and main.region is None  # three regions: no single region
    assert main.result.estimate == pytest.approx(2.0, abs=0.15)  # the average of 1, 2, 3
    estimates = {r.region: r for r in main.region_estimates}
    assert set(estimates) == set(TRUE_EFFECTS)
    for region, effect in TRUE_EFFECTS.items():
        res = estimates[region].result
        assert res is not None, estimates[region].error
        # noise sd 0.1 over 6 post years: each region's estimate within 0.25 of its own effect
        assert res.estimate == pytest.approx(effect, abs=0.25), region
        flow = [step.step for step in res.sample_flow]
        assert f"region {region}" in flow  # the sample restriction is recorded, not silent
        assert res.n_units == 9  # one treated unit and the eight never treated
    record = main.to_dict()
    assert [r["region"] for r in record["region_estimates"]] == sorted(TRUE_EFFECTS)
    json.dumps(record, default=str)


def test_region_estimates_are_recorded_and_pooled_by_region(tmp_path):
    run = evaluate(load_spec(write(tmp_path, '"region_name"')))
    content = run.to_dict()
    with Registry(f"sqlite:///{tmp_path / 'r.sqlite'}") as reg:
        reg.record_run({**content["programme"], "data": content["data"], "indicators": content["indicators"]},
                       content["evaluations"])
        stored = reg.estimates(indicator="NB_EMPRATE", headline_only=True, role="region")
        assert sorted(stored["region"]) == sorted(TRUE_EFFECTS)
        assert set(stored["intervention"]) == {"skills"}
        # the regions of one evaluation share its comparison regions: nothing independent to pool
        with pytest.raises(DataError, match="all 3 estimates are in one cluster.*report that source's own estimate"):
            reg.pool("NB_EMPRATE", by="region")
        # a second programme's evaluation (here a copy under another id) makes two independent clusters
        reg.record_run({**content["programme"], "id": "regional-2", "data": content["data"],
                        "indicators": content["indicators"]}, content["evaluations"])
        with pytest.warns(FewClustersWarning, match="2 clusters"):
            pooled = reg.pool("NB_EMPRATE", by="region")
        assert sorted(pooled.studies()["term"]) == sorted(f"{r} ({p})" for r in TRUE_EFFECTS for p in ("regional", "regional-2"))
        assert pooled.settings["cluster"] == "2 clusters" and "CR2 cluster-robust" in pooled.inference
        # each study row shows the interval of its own evaluation (CR2, Satterthwaite df)
        rows = pooled.studies().set_index("term")
        for region in TRUE_EFFECTS:
            own = stored.set_index("region").loc[region]
            assert rows.loc[f"{region} (regional)", "conf_low"] == pytest.approx(own["conf_low"])
            assert rows.loc[f"{region} (regional)", "df"] == pytest.approx(own["df"])


def test_intervention_types_and_eu_fields():
    types = intervention_types()
    assert {"business_support", "skills", "innovation", "infrastructure"} <= set(types)
    assert types["business_support"].eu_field == "021"
    assert check_intervention("skills").name == "Skills and training"
    with pytest.raises(SpecError, match="unknown intervention type 'skill'. Did you mean 'skills'"):
        check_intervention("skill")


def test_spec_rejects_unknown_intervention_and_by_region_column(tmp_path):
    path = write(tmp_path, '"region_name"')
    text = open(path, encoding="utf-8").read()
    open(path, "w", encoding="utf-8").write(text.replace('intervention = "skills"', 'intervention = "skils"'))
    with pytest.raises(SpecError, match=r"programme.intervention.*Did you mean 'skills'"):
        load_spec(path)
    path = write(tmp_path, '"county"')
    with pytest.raises(SpecError, match="by_region column 'county' is not a column"):
        load_spec(path)
    path = write(tmp_path, '{ column = "region_name", desing = "synth.sdid" }')
    with pytest.raises(SpecError, match="desing"):
        load_spec(path)


def test_bundled_programmes_carry_intervention_types():
    for name, kind in [("se_business_support", "business_support"), ("se_skills", "skills"),
                       ("se_innovation", "innovation"), ("se_vouchers", "business_advice")]:
        spec = load_spec(ANALYSES / f"{name}.toml")
        assert spec.programme.intervention == kind
    assert all(e.by_region is not None for e in load_spec(ANALYSES / "se_skills.toml").evaluations)


def test_a_failed_region_estimate_counts_as_a_failure(tmp_path):
    # by_region needs the treated units: a design without unit/treatment options cannot be split
    path = write(tmp_path, '{ column = "region_name", design = "synth.sdid", options = { unit = "unit", time = "year", treatment = "NB_EMPRATE" } }')
    run = evaluate(load_spec(path))
    (main,) = run.outcomes
    assert main.ok and main.region_estimates
    failed = [r for r in main.region_estimates if not r.ok]
    assert failed and run.n_failed == len(failed)
    assert all(r.error for r in failed)
