"""read(): every kind of bad record is refused with a typed error naming the row; the result is immutable."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import DataError

from .conftest import record_frame


def good() -> pd.DataFrame:
    return record_frame(
        [
            ("P", "A", "06", "RCR01", 2021, "target", 10),
            ("P", "A", "06", "RCR01", 2021, "actual", 8),
            ("P", "B", "Kalmar", "RCR01", 2021, "actual", 5),
        ]
    )


def test_reads_and_normalises_regions():
    m = im.monitoring.read(good())
    assert len(m) == 3
    assert sorted(m.records["region"].unique()) == ["06", "08"]
    assert m.programmes == ["P"] and m.indicators == ["RCR01"]


def test_input_is_not_modified():
    frame = good()
    copy = frame.copy()
    im.monitoring.read(frame)
    pd.testing.assert_frame_equal(frame, copy)


def test_monitoring_is_immutable():
    m = im.monitoring.read(good())
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.library = None  # type: ignore[misc]
    copy = m.records
    copy.loc[0, "value"] = -1
    assert m.records.loc[0, "value"] == 10


def test_integer_region_codes_keep_their_leading_zero():
    frame = good()
    frame["region"] = [6, 6, 8]
    assert sorted(im.monitoring.read(frame).records["region"].unique()) == ["06", "08"]


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("kind", "forecast", r"row 1: kind 'forecast' is not one of baseline, target, actual"),
        ("indicator", "RCR99", r"row 1: unknown indicator 'RCR99'"),
        ("value", "12,5", r"row 1: value '12,5' is not a finite number"),
        ("value", np.inf, r"row 1: value inf is not a finite number"),
        ("value", np.nan, r"row 1: value nan is not a finite number"),
        ("region", "Atlantis", r"row 1: region 'Atlantis' is not in the region hierarchy"),
        ("period", "2021-Q1", r"row 1: period '2021-Q1' is not a year"),
        ("value", -3, r"row 1: RCR01 counts annual FTEs and cannot be negative"),
        ("programme", None, r"row 1: column 'programme' is empty"),
    ],
)
def test_bad_records_name_the_row(column, value, message):
    frame = good().astype({column: object})
    frame.loc[1, column] = value
    with pytest.raises(DataError, match=message):
        im.monitoring.read(frame)


def test_duplicates_name_both_rows():
    frame = pd.concat([good(), good().iloc[[1]]], ignore_index=True)
    with pytest.raises(DataError, match=r"rows 1, 3: duplicate records: more than one actual of RCR01"):
        im.monitoring.read(frame)


def test_unit_must_agree_with_the_library():
    frame = good()
    frame["unit"] = ["annual FTEs", "", "jobs"]
    with pytest.raises(DataError, match=r"row 2: unit 'jobs' of RCR01 disagrees with the library, which measures it in 'annual FTEs'"):
        im.monitoring.read(frame)


def test_missing_columns():
    with pytest.raises(DataError, match=r"lack the column\(s\) kind"):
        im.monitoring.read(good().drop(columns="kind"))


def test_csv_errors_name_the_line(tmp_path):
    frame = good()
    frame.loc[2, "kind"] = "plan"
    path = tmp_path / "m.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"m.csv, line 4: kind 'plan'"):
        im.monitoring.read(path)


def test_csv_keeps_region_codes_as_text(tmp_path):
    path = tmp_path / "m.csv"
    good().to_csv(path, index=False)
    assert sorted(im.monitoring.read(path).records["region"].unique()) == ["06", "08"]


def test_duplicates_across_files(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    good().to_csv(a, index=False)
    good().iloc[[0]].to_csv(b, index=False)
    with pytest.raises(DataError, match=r"a.csv line 2, b.csv line 2: duplicate records"):
        im.monitoring.read([a, b])


def test_unknown_suffix(tmp_path):
    path = tmp_path / "m.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match="cannot tell the format"):
        im.monitoring.read(path)


def test_indicator_semantics_of_the_shipped_library():
    from impact.programme.indicators import load_library

    lib = load_library()
    assert lib["RCO01"].aggregation == "none"  # distinct enterprises
    assert lib["RCR01"].aggregation == "sum"
    assert lib["NB_GRPPC"].aggregation == "weighted_mean" and lib["NB_GRPPC"].weight == "NB_POP"
    assert all(ind.direction in ("increase", "decrease") for ind in lib)


def test_old_region_files_still_load(tmp_path):
    from impact.programme.indicators import load_library

    path = tmp_path / "old.csv"
    path.write_text(
        "# prefix: SE-AB_\ncode,name,unit,level,definition,source,parent\n"
        "SE-AB_HOURS,Hours,hours,activities,Hours.,x,\nSE-AB_SHARE,Share,%,outcomes,Share.,x,\n",
        encoding="utf-8",
    )
    lib = load_library([path])
    assert lib["SE-AB_HOURS"].aggregation == "sum" and lib["SE-AB_SHARE"].aggregation == "none"
    assert lib["SE-AB_SHARE"].direction == "increase"


@pytest.mark.parametrize(
    "extra, message",
    [
        ("mean,sideways,,,", "direction 'sideways'"),
        ("median,increase,,,", "aggregation 'median'"),
        ("weighted_mean,increase,,,", "names no weight indicator"),
        ("mean,increase,SE-AB_X,,", "names a numerator but no denominator"),
        ("weighted_mean,increase,,,SE-AB_NOPE", "weight 'SE-AB_NOPE' of SE-AB_R is not a known indicator"),
    ],
)
def test_bad_semantics(tmp_path, extra, message):
    from impact.errors import SpecError
    from impact.programme.indicators import load_library

    path = tmp_path / "bad.csv"
    path.write_text(
        "# prefix: SE-AB_\ncode,name,unit,level,definition,source,parent,aggregation,direction,numerator,denominator,weight\n"
        f"SE-AB_R,Rate,%,outcomes,Rate.,x,,{extra}\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError, match=message):
        load_library([path])


def test_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "m.parquet"
    good().to_parquet(path, index=False)
    pd.testing.assert_frame_equal(im.monitoring.read(path).rollup([]), im.monitoring.read(good()).rollup([]))
