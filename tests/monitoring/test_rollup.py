"""Rollups against totals computed by hand (each number below is worked out in the comment beside it),
and the property that a rollup does not depend on row order or on how records are split across files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import impact as im
from impact.errors import SpecError


def row(table: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for key, value in where.items():
        mask &= (table[key] == value).to_numpy()
    assert mask.sum() == 1, f"expected one row for {where}, got {mask.sum()}"
    return table.loc[mask].iloc[0]


@pytest.fixture
def m(records, library_file):
    return im.monitoring.read(records, indicators=[library_file])


def test_columns_follow_the_api(m):
    table = m.rollup(by=["region"])
    assert list(table.columns[:9]) == ["region", *im.monitoring.ROLLUP_COLUMNS]
    assert list(m.rollup([]).columns[:8]) == list(im.monitoring.ROLLUP_COLUMNS)


def test_sum(m):
    national = m.rollup(by=[])
    r = row(national, indicator="SE-T_SPEND", period=2021)
    assert r["actual"] == 8 + 4 + 25  # 37
    assert r["target"] == 10 + 5 + 20  # 35
    assert r["achievement"] == pytest.approx(37 / 35)
    assert r["aggregation"] == "sum"
    by_programme = m.rollup(by=["programme"])
    assert row(by_programme, programme="P1", indicator="SE-T_SPEND", period=2021)["actual"] == 12
    assert row(by_programme, programme="P1", indicator="SE-T_SPEND", period=2022)["actual"] == 12
    # cumulative: 2021 37, 2022 37 + 12
    cum = m.rollup(by=[], cumulative=True)
    assert row(cum, indicator="SE-T_SPEND", period=2022)["actual"] == 49
    assert row(cum, indicator="SE-T_SPEND", period=2022)["target"] == 45


def test_mean_with_baselines(m):
    r = row(m.rollup(by=["programme"]), programme="P1", indicator="SE-T_SHARE", period=2021)
    assert r["baseline"] == pytest.approx((20 + 40) / 2)  # 30
    assert r["target"] == pytest.approx((30 + 50) / 2)  # 40
    assert r["actual"] == pytest.approx((26 + 46) / 2)  # 36
    assert r["achievement"] == pytest.approx((36 - 30) / (40 - 30))  # 0.6


def test_weighted_mean_is_the_rate_of_the_totals(m):
    r = row(m.rollup(by=[]), indicator="SE-T_RATE", period=2021)
    assert r["actual"] == pytest.approx((78 * 300 + 74 * 100) / 400)  # 77.0
    assert r["target"] == pytest.approx((80 * 300 + 70 * 100) / 400)  # 77.5
    assert r["achievement"] == pytest.approx(77.0 / 77.5)


def test_weighted_mean_without_weight_says_why(records, library_file):
    records = records.loc[~((records["indicator"] == "SE-T_POP") & (records["project"] == "B"))]
    r = row(im.monitoring.read(records, indicators=[library_file]).rollup([]), indicator="SE-T_RATE", period=2021)
    assert np.isnan(r["actual"])
    assert "1 of 2 records lack a value of the weight SE-T_POP" in r["note"]


def test_last_carries_the_latest_running_total(m):
    plain = m.rollup(by=[])
    assert row(plain, indicator="SE-T_TODATE", period=2021)["actual"] == 5 + 3
    assert row(plain, indicator="SE-T_TODATE", period=2022)["actual"] == 9  # only A reported in 2022
    cum = m.rollup(by=[], cumulative=True)
    assert row(cum, indicator="SE-T_TODATE", period=2021)["actual"] == 8
    assert row(cum, indicator="SE-T_TODATE", period=2022)["actual"] == 9 + 3  # B's latest (2021) still counts
    assert row(cum, indicator="SE-T_TODATE", period=2022)["target"] == 10


def test_none_gives_no_total_and_says_why(m):
    r = row(m.rollup(by=[]), indicator="SE-T_FIRMS", period=2021)
    assert np.isnan(r["actual"])
    assert "no total: SE-T_FIRMS counts distinct enterprises (aggregation 'none')" in r["note"]
    assert r["target"] == 10  # one target record: passed through
    one = row(m.rollup(by=["project"]), project="A", indicator="SE-T_FIRMS", period=2021)
    assert one["actual"] == 7 and one["achievement"] == pytest.approx(0.7)


def test_decrease_with_baseline(m):
    r = row(m.rollup(by=[]), indicator="SE-T_CO2", period=2021)
    assert (r["baseline"], r["target"], r["actual"]) == (150, 125, 130)
    assert r["achievement"] == pytest.approx((130 - 150) / (125 - 150))  # 0.8 of the planned cut


def test_decrease_without_baseline_is_target_over_actual(records, library_file):
    records = records.loc[records["kind"] != "baseline"]
    r = row(im.monitoring.read(records, indicators=[library_file]).rollup([]), indicator="SE-T_CO2", period=2021)
    assert r["achievement"] == pytest.approx(125 / 130)


def test_higher_levels_of_the_hierarchy(m):
    # 06 Jönköping and 08 Kalmar are both in SE21 Småland med öarna; 01 is SE11 Stockholm
    nuts2 = m.rollup(by=["nuts2"])
    assert row(nuts2, nuts2="SE21", indicator="SE-T_SPEND", period=2021)["actual"] == 12
    assert row(nuts2, nuts2="SE11", indicator="SE-T_SPEND", period=2021)["actual"] == 25
    county = m.rollup(by=["county", "programme"])
    assert row(county, county="08", programme="P1", indicator="SE-T_SPEND", period=2021)["actual"] == 4


def test_municipal_level(records, library_file):
    records = records.copy()
    records.loc[records["project"] == "A", "region"] = "0680"  # Jönköping municipality
    m = im.monitoring.read(records, indicators=[library_file], municipalities={"0680": "Jönköping", "0682": "06"})
    r = row(m.rollup(by=["county"]), county="06", indicator="SE-T_SPEND", period=2021)
    assert r["actual"] == 8
    assert row(m.rollup(by=["municipality"]), municipality="0680", indicator="SE-T_SPEND", period=2021)["actual"] == 8


def test_achievement_notes(m):
    r = row(m.rollup(by=[]), indicator="SE-T_TODATE", period=2021)
    assert "no target for this period" in r["note"]


def test_bad_by(m):
    with pytest.raises(SpecError, match="not a rollup level; choose any of programme"):
        m.rollup(by=["lan"])


def test_rollup_does_not_change_the_records(m):
    before = m.records
    m.rollup(by=["region"], cumulative=True)
    pd.testing.assert_frame_equal(before, m.records)


def _canon(table: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in table.columns if c in im.monitoring.BY_LEVELS] + ["indicator", "period"]
    return table.sort_values(keys).reset_index(drop=True)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), cut=st.integers(1, 30), by=st.sampled_from([[], ["programme"], ["region"], ["nuts2", "programme"]]),
       cumulative=st.booleans())
def test_rollup_invariant_to_order_and_to_splitting_files(records, library_file, tmp_path, seed, cut, by, cumulative):
    whole = im.monitoring.read(records, indicators=[library_file]).rollup(by=by, cumulative=cumulative)
    shuffled = records.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    # split one project's records (and the rest) across two CSV files at a random row
    first, second = tmp_path / f"a{seed}.csv", tmp_path / f"b{seed}.csv"
    shuffled.iloc[:cut].to_csv(first, index=False)
    shuffled.iloc[cut:].to_csv(second, index=False)
    split = im.monitoring.read([first, second], indicators=[library_file]).rollup(by=by, cumulative=cumulative)
    pd.testing.assert_frame_equal(_canon(whole), _canon(split), check_dtype=False)
