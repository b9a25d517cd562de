"""Tests of the results registry (impact.registry) on SQLite and PostgreSQL.

Independent checks: stored estimates are compared value for value with the Result objects that were
recorded; pooled results from the registry with impact.meta.pool called directly on the same numbers
(itself checked against R metafor in tests/meta).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import impact as im
from impact.errors import DataError, SpecError, RegistryError
from impact.registry import Registry, combined_hash, record_run, resolve_url
from impact.registry.migrations import MIGRATIONS, schema_migrations
from impact.registry.schema import metadata, tables
from impact.results import FlowStep, Result, effects_table

TABLES = ["programmes", "indicators", "runs", "effect_chain", "evaluations", "estimates", "warnings"]


def make_result(shift: float = 0.0, *, n: int = 500) -> Result:
    """A Result with an event-study-like table: extra column, finite and infinite df, NaN statistic."""
    table = effects_table(
        ["ATT", "e=-1", "e=0", "e=1"],
        [0.25 + shift, 0.01, 0.2 + shift, 0.3 + shift],
        [0.05, 0.04, 0.06, 0.0],
        df=[12.0, math.inf, math.inf, math.inf],
        event_time=[None, -1, 0, 1],
    )
    return Result(
        design="att_gt",
        estimand="ATT",
        effects=table,
        headline="ATT",
        inference="cluster-robust (CR1), 13 clusters",
        n_obs=n,
        outcome="employment",
        n_units=100,
        n_treated=40,
        n_clusters=13,
        settings={"control_group": "notyet"},
        warnings=("FewClustersWarning: only 13 clusters", "a message without category"),
        sample_flow=(FlowStep("input", 520, 104), FlowStep("complete cases", 500, 100, "20 rows dropped")),
        diagnostics={"pretrend_p": 0.41, "groups": [{"g": 2004, "n": 10}], "nested": {"a": [1, 2]}},
    )


def spec(programme="growth", spec_hash="spec-1", data_hash="data-1", **extra):
    return {
        "id": programme,
        "name": f"Programme {programme}",
        "regions": ["SE110"],
        "effect_chain": {
            "resources": [{"text": "grants", "indicators": ["NB_BUDGET"], "measured": "ledger"}],
            "outputs": ["RCO01"],
            "outcomes": [{"text": "jobs and sales", "indicators": ["RCR01", "RCR02"], "measured": "firm register"}],
        },
        "indicators": [{"code": "RCR01", "name": "Jobs created", "unit": "FTE", "level": "outcomes"}],
        "spec_hash": spec_hash,
        "data_hash": data_hash,
        "time": "2026-11-26T12:00:00Z",
        **extra,
    }


def evaluations(shift: float = 0.0):
    return [
        {"name": "jobs", "indicator": "RCR01", "design": "did.att_gt", "result_dict": make_result(shift).to_dict(),
         "question": "Did the grants create jobs?"},
        {"name": "sales", "indicator": "RCR02", "design": "did.twfe", "error": "EstimationError: singular design"},
    ]


def row_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(resolve_url(url))
    with engine.connect() as conn:
        counts = {name: conn.execute(sa.select(sa.func.count()).select_from(tables[name])).scalar_one() for name in TABLES}
    engine.dispose()
    return counts


# -- migrations ------------------------------------------------------------------------------------
def test_migrations_create_the_schema_from_an_empty_database(registry_url):
    with Registry(registry_url) as reg:
        assert reg.applied_migrations == [m[0] for m in MIGRATIONS]
        assert reg.schema_version == MIGRATIONS[-1][0]
        engine = reg.engine
        inspector = sa.inspect(engine)
        for name, table in metadata.tables.items():
            assert {c["name"] for c in inspector.get_columns(name)} == {c.name for c in table.columns}, name
        with engine.connect() as conn:
            rows = conn.execute(sa.select(schema_migrations)).all()
        assert [r.version for r in rows] == [m[0] for m in MIGRATIONS]
    with Registry(registry_url) as again:  # re-opening applies nothing
        assert again.applied_migrations == []
    assert row_counts(registry_url) == dict.fromkeys(TABLES, 0)


def test_a_database_from_a_newer_impact_is_refused(registry_url):
    Registry(registry_url).close()
    engine = sa.create_engine(resolve_url(registry_url))
    with engine.begin() as conn:
        conn.execute(schema_migrations.insert().values(version=99, description="future", applied_at="2030-01-01T00:00:00Z"))
    engine.dispose()
    with pytest.raises(RegistryError, match="schema version 99"):
        Registry(registry_url)


# -- round trip ------------------------------------------------------------------------------------
def test_round_trip_of_estimates_diagnostics_warnings(registry_url):
    result = make_result()
    with Registry(registry_url) as reg:
        record = reg.record_run(spec(), evaluations())
        assert record.created and record.n_evaluations == 2 and record.n_failed == 1
        stored = reg.estimates(indicator="RCR01")
        tidy = result.tidy()
        assert list(stored["term"]) == list(tidy["term"])
        for column in ("estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high", "df"):
            np.testing.assert_array_equal(stored[column].to_numpy(dtype=float), tidy[column].to_numpy(dtype=float), err_msg=column)
        assert list(stored["is_headline"]) == [True, False, False, False]
        assert [e.get("event_time") for e in stored["extra"]] == [None, -1, 0, 1]
        assert set(stored["programme_id"]) == {"growth"} and set(stored["design"]) == {"did.att_gt"}
        run = reg.show(record.run_id)
    jobs, sales = run["evaluations"]
    assert jobs["diagnostics"] == result.to_dict()["diagnostics"]
    assert jobs["settings"] == {"control_group": "notyet"}
    assert jobs["sample_flow"] == result.to_dict()["sample_flow"]
    assert [(w["category"], w["message"]) for w in jobs["warnings"]] == [
        ("FewClustersWarning", "only 13 clusters"),
        (None, "a message without category"),
    ]
    assert (jobs["n_obs"], jobs["n_units"], jobs["n_treated"], jobs["n_clusters"]) == (500, 100, 40, 13)
    assert jobs["details"] == {"question": "Did the grants create jobs?"}
    assert sales["status"] == "failed" and sales["error"] == "EstimationError: singular design"
    assert sales["estimates"] == []
    assert run["spec_hash"] == "spec-1" and run["data_hash"] == "data-1" and run["run_time"] == "2026-11-26T12:00:00Z"
    assert run["package_version"] == im.__version__
    chain = [(c["level"], c["indicator_code"]) for c in run["effect_chain"]]
    assert chain == [("resources", "NB_BUDGET"), ("outputs", "RCO01"), ("outcomes", "RCR01"), ("outcomes", "RCR02")]


# -- idempotence and history -----------------------------------------------------------------------
def test_rerun_of_same_spec_and_data_updates_never_duplicates(registry_url):
    with Registry(registry_url) as reg:
        first = reg.record_run(spec(), evaluations())
    counts = row_counts(registry_url)
    with Registry(registry_url) as reg:
        second = reg.record_run(spec(time="2026-11-27T08:00:00Z"), evaluations(shift=0.1))
        assert second.run_id == first.run_id and not second.created
        assert row_counts(registry_url) == counts
        runs = reg.runs()
        assert len(runs) == 1 and runs.loc[0, "run_time"] == "2026-11-27T08:00:00Z"
        # updated in place: the re-run's values replaced the first ones
        assert reg.estimates(indicator="RCR01", headline_only=True)["estimate"].tolist() == [pytest.approx(0.35)]
        reg.record_run(spec(time="2026-11-27T08:00:00Z"), evaluations(shift=0.1))
    assert row_counts(registry_url) == counts
    assert counts == {"programmes": 1, "indicators": 4, "runs": 1, "effect_chain": 4, "evaluations": 2, "estimates": 4, "warnings": 2}


def test_changed_spec_or_data_creates_a_new_run_and_keeps_the_old(registry_url):
    with Registry(registry_url) as reg:
        old = reg.record_run(spec(), evaluations())
        new_spec = reg.record_run(spec(spec_hash="spec-2"), evaluations(shift=0.5))
        new_data = reg.record_run(spec(spec_hash="spec-2", data_hash="data-2"), evaluations(shift=1.0))
        assert len({old.run_id, new_spec.run_id, new_data.run_id}) == 3 and new_data.created
        runs = reg.runs()
        assert runs["run_id"].tolist() == [old.run_id, new_spec.run_id, new_data.run_id]
        assert runs["is_latest"].tolist() == [False, False, True]
        history = reg.estimates(indicator="RCR01", headline_only=True, history=True)
        assert history["estimate"].tolist() == pytest.approx([0.25, 0.75, 1.25])
        latest = reg.estimates(indicator="RCR01", headline_only=True)
        assert latest["run_id"].tolist() == [new_data.run_id]
        # the old run is intact
        old_rows = reg.estimates(run_id=old.run_id, indicator="RCR01")
        assert old_rows["estimate"].tolist() == pytest.approx(make_result().tidy()["estimate"].tolist())
        # recording the first spec again makes it the latest again, still without a new row
        again = reg.record_run(spec(), evaluations())
        assert again.run_id == old.run_id and len(reg.runs()) == 3
    assert row_counts(registry_url)["runs"] == 3


def test_robustness_checks_from_the_runner_format(registry_url):
    # the programme runner's Outcome.to_dict(): "result" (not result_dict), "status", nested "robustness"
    record = {
        "name": "jobs", "indicator": "RCR01", "design": "did.att_gt", "status": "ok", "error": None,
        "result": make_result().to_dict(), "options": {"control_group": "notyet"},
        "robustness": [
            {"name": "twfe", "design": "did.twfe", "status": "ok", "error": None, "result": make_result(0.05).to_dict()},
            {"name": "sdid", "design": "synth.sdid", "status": "failed", "error": "DataError: unbalanced", "result": None},
        ],
    }
    meta = {"id": "growth", "name": "Growth", "regions": ["A", "B"], "spec_sha256": "abc",
            "data": [{"name": "firms", "sha256": "f1"}, {"name": "regions", "sha256": "r1"}],
            "versions": {"impact": "9.9.9", "python": "3.12"}}
    with Registry(registry_url) as reg:
        rec = reg.record_run(meta, [record])
        assert (rec.n_evaluations, rec.n_failed) == (3, 1)
        evals = reg.evaluations(rec.run_id)
        assert evals["name"].tolist() == ["jobs", "jobs / twfe", "jobs / sdid"]
        assert evals["role"].tolist() == ["main", "robustness", "robustness"]
        assert evals["indicator"].tolist() == ["RCR01"] * 3
        main_only = reg.estimates(indicator="RCR01", headline_only=True)
        assert main_only["evaluation"].tolist() == ["jobs"]
        everything = reg.estimates(indicator="RCR01", headline_only=True, role="all")
        assert everything["evaluation"].tolist() == ["jobs", "jobs / twfe"]
        run = reg.runs().iloc[0]
    assert run["package_version"] == "9.9.9"
    assert run["data_hash"] == combined_hash({"regions": "r1", "firms": "f1"})


# -- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("meta", "evals", "match"),
    [
        ({"spec_hash": "s", "data_hash": "d"}, [], "programme 'id'"),
        ({"id": "p", "data_hash": "d"}, [], "spec_hash"),
        ({"id": "p", "spec_hash": "s"}, [], "data_hash"),
        ({"id": "p", "spec_hash": "s", "data_hash": "d"}, [{"indicator": "X"}], "no 'name'"),
        ({"id": "p", "spec_hash": "s", "data_hash": "d"}, [{"name": "a"}], "neither a result"),
        ({"id": "p", "spec_hash": "s", "data_hash": "d"}, [{"name": "a", "error": "x"}, {"name": "a", "error": "y"}], "unique"),
        ({"id": "p", "spec_hash": "s", "data_hash": "d"}, [{"name": "a", "result_dict": {"x": 1}}], "to_dict"),
        ({"id": "p", "spec_hash": "s", "data_hash": "d", "effect_chain": 3}, [], "effect_chain"),
        ({"id": "p", "spec_hash": "s", "data_hash": "d"}, {"name": "a"}, "list of mappings"),
    ],
)
def test_invalid_records_raise_spec_errors_and_store_nothing(tmp_path, meta, evals, match):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    with Registry(url) as reg, pytest.raises(SpecError, match=match):
        reg.record_run(meta, evals)
    assert row_counts(url) == dict.fromkeys(TABLES, 0)


def test_a_failure_midway_rolls_back_the_whole_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    bad = [*evaluations(), {"name": "broken", "result_dict": {"effects": [{"estimate": 1.0}], "headline": {}}}]
    with Registry(url) as reg, pytest.raises(KeyError):
        reg.record_run(spec(), bad)  # the third evaluation's effects lack 'term'
    assert row_counts(url) == dict.fromkeys(TABLES, 0)


def test_resolve_url(tmp_path, monkeypatch):
    assert resolve_url(tmp_path / "x" / "r.sqlite") == f"sqlite:///{tmp_path / 'x' / 'r.sqlite'}"
    assert (tmp_path / "x").is_dir()
    assert resolve_url("postgresql://u:p@127.0.0.1/db") == "postgresql+psycopg://u:p@127.0.0.1/db"
    assert resolve_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    monkeypatch.setenv("IMPACT_REGISTRY", str(tmp_path / "env.sqlite"))
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'env.sqlite'}"
    monkeypatch.delenv("IMPACT_REGISTRY")
    monkeypatch.chdir(tmp_path)
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'reports' / 'registry.sqlite'}"


def test_record_run_function_uses_the_default_location(tmp_path, monkeypatch):
    monkeypatch.delenv("IMPACT_REGISTRY", raising=False)
    monkeypatch.chdir(tmp_path)
    record_run(spec(), evaluations())
    assert (tmp_path / "reports" / "registry.sqlite").is_file()
    with Registry() as reg:
        assert len(reg.runs()) == 1


def test_unreachable_database_is_a_registry_error():
    with pytest.raises(RegistryError, match="cannot open the registry"):
        Registry("postgresql://nobody:wrong@127.0.0.1:1/none?connect_timeout=2")


# -- export ----------------------------------------------------------------------------------------
def test_export_csv_and_json_are_complete_and_deterministic(registry_url, tmp_path):
    with Registry(registry_url) as reg:
        reg.record_run(spec(), evaluations())
        reg.record_run(spec(spec_hash="spec-2"), evaluations(shift=0.5))
        csv_path = reg.export(tmp_path / "out" / "registry.csv")
        json_path = reg.export(tmp_path / "out" / "registry.json", format="json")
        csv_text, json_text = csv_path.read_text(), json_path.read_text()
        assert reg.export(tmp_path / "again.csv").read_text() == csv_text
        assert reg.export(tmp_path / "again.json", format="json").read_text() == json_text
        with pytest.raises(SpecError, match="'csv', 'json'"):
            reg.export(tmp_path / "x.xlsx", format="xlsx")
    table = pd.read_csv(csv_path)
    assert len(table) == 2 * 4 + 2  # 4 estimates per run plus one row per failed evaluation
    assert table.loc[table["status"] == "failed", "error"].unique().tolist() == ["EstimationError: singular design"]
    dump = json.loads(json_text)
    assert dump["schema_version"] == MIGRATIONS[-1][0]
    assert [r["spec_hash"] for r in dump["runs"]] == ["spec-1", "spec-2"]
    assert {i["code"] for i in dump["indicators"]} == {"NB_BUDGET", "RCO01", "RCR01", "RCR02"}
    jobs = dump["runs"][1]["evaluations"][0]
    assert "last_recorded_at" in dump["runs"][0]
    assert jobs["estimates"][0]["estimate"] == pytest.approx(0.75) and jobs["estimates"][1]["df"] == "inf"


# -- pooling ---------------------------------------------------------------------------------------
def portfolio(reg: Registry, effects: dict[str, tuple[float, float]], *, indicator="RCR01", spec_hash="s"):
    """One programme per region, each with one evaluation of ``indicator``."""
    for region, (estimate, se) in effects.items():
        table = effects_table(["ATT"], [estimate], [se])
        result = Result(design="twfe", estimand="ATT", effects=table, headline="ATT", inference="iid", n_obs=100)
        reg.record_run(
            {"id": f"prog-{region}", "name": f"Vouchers {region}", "regions": [region], "spec_hash": spec_hash, "data_hash": "d"},
            [{"name": "jobs", "indicator": indicator, "design": "did.twfe", "result_dict": result.to_dict()}],
        )


EFFECTS = {"SE110": (0.31, 0.10), "SE121": (0.12, 0.08), "SE122": (0.45, 0.15), "SE123": (0.05, 0.12), "SE124": (0.28, 0.09)}


@pytest.mark.parametrize(("method", "knha"), [("REML", True), ("DL", False), ("FE", False)])
def test_pooling_stored_estimates_equals_pooling_the_numbers(registry_url, method, knha):
    with Registry(registry_url) as reg:
        portfolio(reg, EFFECTS)
        pooled = reg.pool("RCR01", by="programme", method=method, knha=knha)
        by_region = reg.pool("RCR01", by="region", method=method, knha=knha)
    est, se = zip(*EFFECTS.values(), strict=True)
    direct = im.meta.pool(list(est), list(se), method=method, knha=knha)
    assert pooled.estimate == pytest.approx(direct.estimate, abs=1e-12)
    assert pooled.std_error == pytest.approx(direct.std_error, abs=1e-12)
    assert pooled.diagnostics["tau2"] == pytest.approx(direct.diagnostics["tau2"], abs=1e-12)
    assert pooled.studies()["term"].tolist() == [f"Vouchers {r}" for r in EFFECTS]
    assert by_region.studies()["term"].tolist() == [f"{r} (prog-{r})" for r in EFFECTS]
    assert pooled.settings["indicator"] == "RCR01" and len(pooled.settings["evaluations"]) == 5


def test_pooling_uses_only_the_latest_run_and_reports_ambiguity(registry_url):
    with Registry(registry_url) as reg:
        portfolio(reg, EFFECTS)
        portfolio(reg, {"SE110": (0.9, 0.1)}, spec_hash="s2")  # a newer run of one programme
        pooled = reg.pool("RCR01")
        assert pooled.studies().set_index("term").loc["Vouchers SE110", "estimate"] == pytest.approx(0.9)
        assert pooled.n_obs == 5
        with pytest.raises(DataError, match="no stored estimates of indicator 'RCR99'.*RCR01"):
            reg.pool("RCR99")
        # a second design for the same indicator in one programme is ambiguous until one is chosen
        two = [
            {"name": "jobs", "indicator": "RCR01", "design": "did.twfe", "result_dict": make_result().to_dict()},
            {"name": "jobs-cs", "indicator": "RCR01", "design": "did.att_gt", "result_dict": make_result(0.1).to_dict()},
        ]
        reg.record_run({"id": "prog-SE121", "name": "Vouchers SE121", "regions": ["SE121"], "spec_hash": "s3", "data_hash": "d"}, two)
        with pytest.raises(DataError, match="several estimates.*jobs \\(did.twfe\\), jobs-cs \\(did.att_gt\\)"):
            reg.pool("RCR01")
        assert reg.pool("RCR01", design="did.twfe").n_obs == 5
        # a programme across several regions without a region per evaluation is left out of pooling by
        # region, and the result says so (issue 14: show what was left out and why)
        reg.record_run({"id": "national", "regions": ["SE110", "SE121"], "spec_hash": "s", "data_hash": "d"},
                       [{"name": "jobs", "indicator": "RCR01", "design": "did.twfe", "result_dict": make_result().to_dict()}])
        by_region = reg.pool("RCR01", by="region", design="did.twfe")
        assert "national" not in {e["programme"] for e in by_region.settings["evaluations"]}
        (left,) = [e for e in by_region.settings["left_out"] if e["programme"] == "national"]
        assert "covers several regions" in left["reason"] and left["evaluation"] == "jobs"
        with pytest.raises(SpecError, match="'programme', 'region'"):
            reg.pool("RCR01", by="country")


def test_rerunning_everything_exports_identical_files_without_times(registry_url, tmp_path):
    # "running the main job twice gives the same registry content": times differ, everything else must not
    outputs = []
    for attempt in range(2):
        with Registry(registry_url) as reg:
            reg.record_run(spec(time=f"2026-11-2{attempt + 6}T00:00:00Z"), evaluations())
            reg.record_run(spec(programme="skills"), evaluations(shift=0.2))
            outputs.append(
                (reg.export(tmp_path / f"{attempt}.csv", times=False).read_text(),
                 reg.export(tmp_path / f"{attempt}.json", format="json", times=False).read_text())
            )
    assert outputs[0] == outputs[1]
    assert "recorded_at" not in outputs[0][0] and "run_time" not in outputs[0][1]


def test_concurrent_recording_of_the_same_run_does_not_duplicate(registry_url):
    # two processes of a portfolio job recording the same programme at the same moment: the unique
    # keys refuse the second insert and record_run retries as an update
    import threading

    Registry(registry_url).close()  # schema in place before the race
    barrier = threading.Barrier(4)
    errors = []

    def work():
        try:
            with Registry(registry_url) as reg:
                barrier.wait()
                reg.record_run(spec(), evaluations())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert row_counts(registry_url) == {
        "programmes": 1, "indicators": 4, "runs": 1, "effect_chain": 4, "evaluations": 2, "estimates": 4, "warnings": 2
    }
