"""A small test library with one indicator per aggregation rule, and records whose rollups are computed by hand."""

from __future__ import annotations

import pandas as pd
import pytest

LIBRARY = """# prefix: SE-T_
code,name,unit,level,definition,source,parent,aggregation,direction,numerator,denominator,weight
SE-T_SPEND,Money spent,MSEK,resources,Funds paid out in the year.,test,,sum,increase,,,
SE-T_SHARE,Share of firms exporting,%,outcomes,Share of supported firms that export.,test,,mean,increase,,,
SE-T_RATE,Employment rate,%,impacts,Employed per 100 inhabitants.,test,,weighted_mean,increase,,SE-T_POP,SE-T_POP
SE-T_POP,Population,inhabitants,impacts,Inhabitants.,test,,none,increase,,,
SE-T_TODATE,Firms advised to date,enterprises,outputs,Running total of firms advised since the start.,test,,last,increase,,,
SE-T_FIRMS,Distinct firms supported,enterprises,outputs,Distinct firms supported.,test,,none,increase,,,
SE-T_CO2,CO2 emitted,tonnes CO2e,impacts,Emissions of supported firms.,test,,sum,decrease,,,
"""


@pytest.fixture
def library_file(tmp_path):
    path = tmp_path / "se-t.csv"
    path.write_text(LIBRARY, encoding="utf-8")
    return path


def record_frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["programme", "project", "region", "indicator", "period", "kind", "value"])


@pytest.fixture
def records() -> pd.DataFrame:
    """Programme P1 runs project A in Jönköping (06) and B in Kalmar (08); P2 runs C in Stockholm (01)."""
    r = [
        # sum: spend
        ("P1", "A", "06", "SE-T_SPEND", 2021, "target", 10.0),
        ("P1", "A", "06", "SE-T_SPEND", 2021, "actual", 8.0),
        ("P1", "A", "06", "SE-T_SPEND", 2022, "target", 10.0),
        ("P1", "A", "06", "SE-T_SPEND", 2022, "actual", 12.0),
        ("P1", "B", "08", "SE-T_SPEND", 2021, "target", 5.0),
        ("P1", "B", "08", "SE-T_SPEND", 2021, "actual", 4.0),
        ("P2", "C", "01", "SE-T_SPEND", 2021, "target", 20.0),
        ("P2", "C", "01", "SE-T_SPEND", 2021, "actual", 25.0),
        # mean: export share, with baselines
        ("P1", "A", "06", "SE-T_SHARE", 2020, "baseline", 20.0),
        ("P1", "A", "06", "SE-T_SHARE", 2021, "target", 30.0),
        ("P1", "A", "06", "SE-T_SHARE", 2021, "actual", 26.0),
        ("P1", "B", "08", "SE-T_SHARE", 2020, "baseline", 40.0),
        ("P1", "B", "08", "SE-T_SHARE", 2021, "target", 50.0),
        ("P1", "B", "08", "SE-T_SHARE", 2021, "actual", 46.0),
        # weighted mean: employment rate weighted by population
        ("P1", "A", "06", "SE-T_RATE", 2021, "target", 80.0),
        ("P1", "A", "06", "SE-T_RATE", 2021, "actual", 78.0),
        ("P1", "A", "06", "SE-T_POP", 2021, "actual", 300.0),
        ("P1", "B", "08", "SE-T_RATE", 2021, "target", 70.0),
        ("P1", "B", "08", "SE-T_RATE", 2021, "actual", 74.0),
        ("P1", "B", "08", "SE-T_POP", 2021, "actual", 100.0),
        # last: running totals (B does not report in 2022)
        ("P1", "A", "06", "SE-T_TODATE", 2021, "actual", 5.0),
        ("P1", "A", "06", "SE-T_TODATE", 2022, "actual", 9.0),
        ("P1", "B", "08", "SE-T_TODATE", 2021, "actual", 3.0),
        ("P1", "A", "06", "SE-T_TODATE", 2022, "target", 10.0),
        # none: distinct firms
        ("P1", "A", "06", "SE-T_FIRMS", 2021, "actual", 7.0),
        ("P1", "B", "08", "SE-T_FIRMS", 2021, "actual", 2.0),
        ("P1", "A", "06", "SE-T_FIRMS", 2021, "target", 10.0),
        # sum, direction decrease: emissions, baseline 100 + 50, target 80 + 45, actual 90 + 40
        ("P1", "A", "06", "SE-T_CO2", 2019, "baseline", 100.0),
        ("P1", "A", "06", "SE-T_CO2", 2021, "target", 80.0),
        ("P1", "A", "06", "SE-T_CO2", 2021, "actual", 90.0),
        ("P1", "B", "08", "SE-T_CO2", 2019, "baseline", 50.0),
        ("P1", "B", "08", "SE-T_CO2", 2021, "target", 45.0),
        ("P1", "B", "08", "SE-T_CO2", 2021, "actual", 40.0),
    ]
    return record_frame(r)
