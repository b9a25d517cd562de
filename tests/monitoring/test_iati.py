"""IATI 2.03 activity XML -> monitoring records, on a small file written from the standard's documentation
(tests/monitoring/data/iati_jonkoping.xml; the expected records below are read off the file by hand)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import impact as im
from impact.errors import DataError, SampleWarning

DATA = Path(__file__).parent / "data"
FILE = DATA / "iati_jonkoping.xml"


def test_records_from_iati():
    with pytest.warns(SampleWarning, match="1 value\\(s\\) broken down by <dimension> were not read"):
        m = im.monitoring.read(FILE)
    got = m.records.sort_values(["project", "indicator", "region", "period", "kind"]).reset_index(drop=True)
    expected = pd.DataFrame(
        [
            ("SE-RJL-BSP", "SE-RJL-BSP-001", "06", "RCO01", 2019, "baseline", 0.0),
            ("SE-RJL-BSP", "SE-RJL-BSP-001", "06", "RCO01", 2020, "actual", 35.0),
            ("SE-RJL-BSP", "SE-RJL-BSP-001", "06", "RCO01", 2020, "target", 40.0),
            ("SE-RJL-BSP", "SE-RJL-BSP-001", "06", "RCO01", 2021, "actual", 44.0),
            ("SE-RJL-BSP", "SE-RJL-BSP-001", "06", "RCO01", 2021, "target", 40.0),
            ("SE-RJL-BSP", "SE-RJL-BSP-001", "06", "RCR01", 2021, "actual", 24.5),
            ("SE-RJL-BSP", "SE-RJL-BSP-001", "06", "RCR01", 2021, "target", 30.0),
            ("SE-RJL-BSP", "SE-RJL-BSP-002", "06", "RCO04", 2021, "actual", 22.0),
            ("SE-RJL-BSP", "SE-RJL-BSP-002", "06", "RCO04", 2021, "target", 25.0),
            ("SE-RJL-BSP", "SE-RJL-BSP-002", "08", "RCO04", 2021, "actual", 18.0),
            ("SE-RJL-BSP", "SE-RJL-BSP-002", "08", "RCO04", 2021, "target", 15.0),
        ],
        columns=["programme", "project", "region", "indicator", "period", "kind", "value"],
    )
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
    assert "Delayed call for applications" in set(got["note"])
    # the advice project's two regions add up to the programme's RCO04 (one record each per region)
    by_region = m.rollup(by=["region"])
    assert by_region.query("indicator == 'RCO04' and region == '08'")["achievement"].item() == pytest.approx(18 / 15)


def _variant(tmp_path, old: str, new: str) -> Path:
    path = tmp_path / "variant.xml"
    path.write_text(FILE.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('code="RCR01"', 'code="JOBS"', r"activity SE-RJL-BSP-001, result 2, indicator 1 \('Jobs created in supported enterprises \(FTE\)'\): no <reference code> is an indicator"),
        ('<actual value="44"/>', '<actual value="many"/>', r"activity SE-RJL-BSP-001, result 1, indicator 1, period 2 \(2021\) actual 1: value 'many' is not a finite number"),
        ('<actual value="44"/>', "<actual/>", r"period 2 \(2021\) actual 1: <actual> has no value attribute"),
        ('<target value="25"><location ref="SE-F"/></target>', '<target value="25"/>', r"the value has no location and the activity has 2 locations"),
        ('<location ref="SE-H"/></target>', '<location ref="SE-X9"/></target>', r"region 'SE-X9' is not in the region hierarchy"),
        ('<indicator measure="1" ascending="1">', '<indicator measure="2" ascending="1">', r"measure=\"2\" \(percentage\) but RCO01 is measured in 'enterprises'"),
        ('<iati-activities version="2.03"', '<iati-activities version="1.05"', "only the 2.0x activity standard"),
    ],
)
@pytest.mark.filterwarnings("ignore::impact.errors.SampleWarning")
def test_bad_iati_is_refused_with_its_place(tmp_path, old, new, message):
    with pytest.raises(DataError, match=message):
        im.monitoring.read(_variant(tmp_path, old, new))


def test_not_iati(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text("<root/>", encoding="utf-8")
    with pytest.raises(DataError, match="not <iati-activities>"):
        im.monitoring.read(path)
