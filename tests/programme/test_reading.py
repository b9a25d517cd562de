"""Parquet data sources: column projection and a spec's filter pushed into Arrow's scan give the same
rows as reading everything and filtering in pandas, and the sample flow still says what was removed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from impact.programme.reading import arrow_filter
from impact.programme.runner import evaluate
from impact.programme.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]

QUERIES = [
    "year >= 2015",
    "year >= 2015 and region != 'B'",
    "(year < 2012) | (region in ['A', 'C'])",
    "not (x > 0.5)",
    "~(region == 'A') & (x <= 0)",
    "region not in ['A'] or year == 2010",
    "2012 < year <= 2016",
    "x > -0.25",
    "x != 0.1 and not (region != 'C')",
    "x < y",
    "y * 2 > 1",          # arithmetic: not pushed, pandas filters
    "abs(x) < 0.3",       # function: not pushed
]


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    n = 5_000
    df = pd.DataFrame({
        "region": rng.choice(["A", "B", "C"], n),
        "year": rng.integers(2010, 2020, n),
        "x": rng.normal(size=n),
        "y": rng.normal(size=n),
    })
    df.loc[rng.choice(n, 50, replace=False), "x"] = np.nan  # nulls must be dropped alike
    return df


@pytest.mark.parametrize("query", QUERIES)
def test_pushed_filter_keeps_the_rows_pandas_keeps(frame, query, tmp_path):
    import pyarrow as pa
    import pyarrow.dataset as ds

    expression = arrow_filter(query, set(frame.columns))
    expected = frame.query(query, engine="python").reset_index(drop=True)
    if expression is None:
        assert query in ("y * 2 > 1", "abs(x) < 0.3")
        return
    got = ds.dataset(pa.Table.from_pandas(frame, preserve_index=False)).to_table(filter=expression).to_pandas()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)


def test_filter_on_unknown_or_derived_names_is_not_pushed():
    assert arrow_filter("treated == 1", {"year"}) is None


def _spec(tmp_path: Path, source: str) -> Path:
    text = (ROOT / "analyses" / "organ_donations.toml").read_text(encoding="utf-8")
    text = text.replace('path = "../data/organ_donations.csv"', source)
    path = tmp_path / "spec" / "organ.toml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    return path


def test_parquet_source_with_select_and_pushed_filter_reproduces_the_csv_estimate(tmp_path):
    organ = pd.read_csv(ROOT / "data" / "organ_donations.csv")
    organ["Unused"] = 1.0
    # an extra state outside the filter: the pushed filter must remove exactly its rows
    extra = organ.loc[organ["State"] == "Alaska"].assign(State="Nowhere", Rate=99.0)
    pd.concat([organ, extra]).to_parquet(tmp_path / "organ.parquet", index=False)
    spec = _spec(tmp_path, 'path = "../organ.parquet"\nselect = ["State", "Quarter_Num", "Rate"]\n'
                           'query = "State != \'Nowhere\'"')
    run = evaluate(load_spec(spec, data_roots=(tmp_path,)))
    loaded = run.data[0]
    assert loaded.error is None, loaded.error
    assert set(loaded.frame.columns) == {"State", "Quarter_Num", "Rate", "Treated"}  # projected, then derived
    steps = [s.step for s in loaded.flow]
    assert steps[0].startswith("read ../organ.parquet") and loaded.flow[0].rows == len(organ) + len(extra)
    pushed = loaded.flow[1]
    assert "State != 'Nowhere'" in pushed.step and pushed.rows == len(organ)
    assert f"{len(extra):,} rows" in pushed.note and "Parquet reader" in pushed.note
    csv_run = evaluate(load_spec(ROOT / "analyses" / "organ_donations.toml"))
    assert run.outcomes[0].result.estimate == pytest.approx(csv_run.outcomes[0].result.estimate, rel=1e-12)
    assert run.outcomes[0].result.std_error == pytest.approx(csv_run.outcomes[0].result.std_error, rel=1e-12)


def test_select_names_columns_of_the_file(tmp_path):
    from impact.errors import SpecError

    spec = _spec(tmp_path, f'path = "{ROOT / "data" / "organ_donations.csv"}"\nselect = ["State", "Quater_Num"]')
    with pytest.raises(SpecError, match="Quater_Num"):
        load_spec(spec, data_roots=(ROOT / "data",))


# -- a data source named by a DuckDB SQL query (issue 16): read-only, over the one confined file ---------------

duckdb = pytest.importorskip("duckdb")


def _organ_parquet(tmp_path: Path) -> pd.DataFrame:
    organ = pd.read_csv(ROOT / "data" / "organ_donations.csv")
    extra = organ.loc[organ["State"] == "Alaska"].assign(State="Nowhere", Rate=99.0)
    pd.concat([organ, extra]).assign(Unused=1.0).to_parquet(tmp_path / "organ.parquet", index=False)
    return organ


def test_sql_source_reproduces_the_csv_estimate(tmp_path):
    organ = _organ_parquet(tmp_path)
    spec = _spec(tmp_path, 'path = "../organ.parquet"\n'
                           'sql = "SELECT State, Quarter_Num, Rate FROM data WHERE State <> \'Nowhere\'"')
    loaded_spec = load_spec(spec, data_roots=(tmp_path,))
    assert loaded_spec.data[0].columns[:3] == ("State", "Quarter_Num", "Rate")  # learnt by binding the query
    run = evaluate(loaded_spec)
    loaded = run.data[0]
    assert loaded.error is None, loaded.error
    assert set(loaded.frame.columns) == {"State", "Quarter_Num", "Rate", "Treated"}
    pushed = loaded.flow[1]
    assert "SELECT State" in pushed.step and pushed.rows == len(organ) and "(in DuckDB)" in pushed.note
    csv_run = evaluate(load_spec(ROOT / "analyses" / "organ_donations.toml"))
    assert run.outcomes[0].result.estimate == pytest.approx(csv_run.outcomes[0].result.estimate, rel=1e-12)
    assert run.outcomes[0].result.std_error == pytest.approx(csv_run.outcomes[0].result.std_error, rel=1e-12)


HOSTILE_SQL = [
    ("SELECT * FROM read_csv('/etc/passwd')", "does not run"),  # file system access is switched off
    ("SELECT * FROM glob('/*')", "does not run"),
    ("SELECT * FROM read_parquet('../organ.parquet')", "does not run"),  # even the permitted file, by path
    ("SELECT * FROM '../organ.parquet'", "does not run"),
    ("SELECT * FROM df", "does not run"),  # no scans of Python variables by name
    ("COPY (SELECT * FROM data) TO 'pwned.csv'", "exactly one SELECT"),
    ("ATTACH 'pwned.db'", "exactly one SELECT"),
    ("INSTALL httpfs", "exactly one SELECT"),
    ("SET enable_external_access = true", "exactly one SELECT"),
    ("PRAGMA version", "exactly one SELECT"),
    ("SELECT * FROM data; DROP TABLE data", "exactly one SELECT"),
    ("SELECT * FROM data WHERE", "does not parse"),
    ("", "non-empty string"),
]


@pytest.mark.parametrize("sql,message", HOSTILE_SQL)
def test_hostile_sql_is_refused_and_writes_nothing(tmp_path, sql, message):
    from impact.errors import SpecError

    _organ_parquet(tmp_path)
    spec = _spec(tmp_path, f'path = "../organ.parquet"\nsql = """{sql}"""')
    df = pd.DataFrame({"x": [1]})  # noqa: F841 - a local a replacement scan could find
    with pytest.raises(SpecError, match=message) as err:
        load_spec(spec, data_roots=(tmp_path,))
    assert "root:" not in str(err.value)  # never quotes a file
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["organ.parquet", "organ.toml", "spec"]


def test_sql_errors_do_not_quote_the_data(tmp_path):
    import dataclasses

    from impact.programme.runner import load_source

    _organ_parquet(tmp_path)
    spec = load_spec(_spec(tmp_path, 'path = "../organ.parquet"\nsql = "SELECT * FROM data"'), data_roots=(tmp_path,))
    # a cast that fails only when run (DuckDB's message would quote the value 'Alabama')
    failing = dataclasses.replace(spec.data[0], sql="SELECT CAST(State AS INTEGER) AS State, Quarter_Num, Rate FROM data")
    loaded = load_source(failing)
    assert loaded.frame is None and "ConversionException" in loaded.error and "Alabama" not in loaded.error


def test_an_endless_query_is_stopped_at_the_time_limit(tmp_path, monkeypatch):
    """A hostile or careless spec (an endless WITH RECURSIVE) must not occupy a shared machine: the
    query is interrupted at MAX_SQL_SECONDS (0.5 s here) and the source fails with a SpecError."""
    import dataclasses

    from impact.programme import safety
    from impact.programme.runner import load_source

    _organ_parquet(tmp_path)
    spec = load_spec(_spec(tmp_path, 'path = "../organ.parquet"\nsql = "SELECT * FROM data"'), data_roots=(tmp_path,))
    endless = dataclasses.replace(spec.data[0], sql=(
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) "
        "SELECT d.* FROM data d, (SELECT count(*) AS c FROM t) WHERE c > 0"))
    monkeypatch.setattr(safety, "MAX_SQL_SECONDS", 0.5)
    loaded = load_source(endless)
    assert loaded.frame is None and "SpecError" in loaded.error and "more than 0.5 s" in loaded.error


def test_sql_excludes_select_and_query(tmp_path):
    from impact.errors import SpecError

    _organ_parquet(tmp_path)
    spec = _spec(tmp_path, 'path = "../organ.parquet"\nselect = ["State"]\nsql = "SELECT * FROM data"')
    with pytest.raises(SpecError, match="sql replaces select"):
        load_spec(spec, data_roots=(tmp_path,))
