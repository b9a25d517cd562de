"""Benchmark: importing 1,000,000 monitoring records and the national rollup (target: under 2 s on 2 cores).

Run from the repository root:  PYTHONPATH=src python tests/benchmarks/bench_monitoring.py
Records: 40 programmes x 500 projects x 21 län x 12 indicators (sum, weighted_mean and none rules) x
years, targets and actuals, written to a CSV once. Timed: read + validate the CSV (im.monitoring.read),
then rollup(by=[]); then validation alone from a DataFrame, and rollup by region and programme.
pandas' own read_csv of the same file is printed as the floor any CSV import stands on.
Not collected by pytest.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import pandas as pd

import impact as im

N = 1_000_000
INDICATORS = ["RCO01", "RCO02", "RCO04", "RCR01", "RCR02", "NB_BUDGET", "NB_ADVICEHRS", "NB_NEWFIRMS", "NB_POP",
              "NB_GRPPC", "NB_EMPRATE", "RCO10"]
REGIONS = ["01", "03", "04", "05", "06", "07", "08", "09", "10", "12", "13", "14", "17", "18", "19", "20", "21", "22", "23", "24", "25"]


def records() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    cells = N // 2  # a target and an actual per cell
    k = np.arange(cells)
    # unique cells: (project, indicator, period) -> project determines programme and region
    n_ind, n_year = len(INDICATORS), 10
    project = k // (n_ind * n_year)
    indicator = (k // n_year) % n_ind
    period = 2015 + k % n_year
    frame = pd.DataFrame(
        {
            "programme": np.char.add("P", (project % 40).astype(str)),
            "project": np.char.add("X", project.astype(str)),
            "region": np.asarray(REGIONS)[project % 21],
            "indicator": np.asarray(INDICATORS)[indicator],
            "period": period,
        }
    )
    value = np.round(rng.gamma(2.0, 50.0, cells), 1)
    target = frame.assign(kind="target", value=np.round(value * 1.1, 1))
    actual = frame.assign(kind="actual", value=value)
    return pd.concat([target, actual], ignore_index=True)


def timed(label: str, func):
    start = time.perf_counter()
    out = func()
    print(f"{label:<58} {time.perf_counter() - start:6.2f} s")
    return out


def main() -> None:
    frame = records()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "records.csv")
        frame.to_csv(path, index=False)
        print(f"{len(frame):,} records, {os.path.getsize(path) / 1e6:.0f} MB CSV")
        timed("pandas.read_csv (all columns as text)", lambda: pd.read_csv(path, dtype=str))
        start = time.perf_counter()
        m = timed("im.monitoring.read(CSV)", lambda: im.monitoring.read(path))
        national = timed("rollup(by=[])", lambda: m.rollup(by=[]))
        print(f"{'import + national rollup':<58} {time.perf_counter() - start:6.2f} s   ({len(national)} rows)")
        m2 = timed("im.monitoring.read(DataFrame)", lambda: im.monitoring.read(frame))
        timed("rollup(by=['region'])", lambda: m2.rollup(by=["region"]))
        timed("rollup(by=['programme'], cumulative=True)", lambda: m2.rollup(by=["programme"], cumulative=True))


if __name__ == "__main__":
    main()
