"""Benchmark: ``att_gt`` on a panel that does not fit in memory, through DuckDB aggregates.

Writes a Parquet panel in chunks (default 5M units x 10 years = 50M rows; never held in memory by
this script), then runs, each in its own subprocess so that peak memory is its own:
  duckdb      im.did.att_gt_from_duckdb(path, memory_limit=...) on the large panel: DuckDB scans the
              files twice and keeps per-cohort moments; pandas never sees the panel
  duckdb      the same on a smaller panel that fits in memory (default 1M units x 10 years)
  in memory   pandas.read_parquet + im.did.att_gt(..., inference="analytic") on that smaller panel
and prints wall time, peak resident memory (VmHWM of the child: interpreter, libraries, DuckDB's
buffers and any data included) and the headline ATT (the two paths agree on the smaller panel).
The in-memory size of the large panel is stated as pandas would hold it (int64 unit, int64 year,
float64 cohort, float64 y: 32 bytes a row) and as this benchmark's compact dtypes would.

Run: python tests/benchmarks/bench_out_of_core.py [--units 5000000] [--years 10] [--memory-limit 1GB]
     [--small-units 1000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = """
import json, sys, time, warnings
import impact as im
warnings.simplefilter("ignore")
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
path, mode, memory_limit, threads, spill = sys.argv[1:6]
base = status("VmRSS")
t0 = time.perf_counter()
kw = dict(outcome="y", unit="unit", time="year", cohort="cohort")
if mode == "duckdb":
    import duckdb
    con = duckdb.connect(config={"memory_limit": memory_limit, "threads": int(threads), "temp_directory": spill})
    res = im.did.att_gt_from_duckdb(con.read_parquet(path + "/*.parquet"), **kw)
else:
    import pandas as pd
    df = pd.read_parquet(path)
    res = im.did.att_gt(df, **kw, inference="analytic")
dyn = res.aggregate("dynamic")
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_mb": status("VmHWM"), "baseline_mb": base,
                  "att": float(res.estimate), "se": float(res.std_error), "dynamic": float(dyn.estimate)}))
"""


def write_panel(path: Path, n_units: int, n_years: int, chunk_units: int = 250_000, seed: int = 1) -> int:
    """Simulated staggered panel (true effect 0.5 from the start year), written chunk by chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = 0
    for part, first in enumerate(range(0, n_units, chunk_units)):
        n = min(chunk_units, n_units - first)
        unit = np.repeat(np.arange(first, first + n, dtype=np.int32), n_years)
        year = np.tile(np.arange(2010, 2010 + n_years, dtype=np.int16), n)
        start = rng.choice(np.array([2013, 2015, 2017, 0], dtype=np.int16), size=n)
        cohort = np.repeat(start, n_years)
        treat = (cohort > 0) & (year >= cohort)
        y = np.repeat(rng.normal(size=n), n_years) + 0.1 * (year - 2010) + 0.5 * treat + rng.normal(size=unit.size)
        table = pa.table({"unit": unit, "year": year, "cohort": cohort, "y": y})
        pq.write_table(table, path / f"part-{part:04d}.parquet", row_group_size=1_000_000)
        rows += unit.size
    return rows


def run(path: Path, mode: str, memory_limit: str, threads: int, spill: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, memory_limit, str(threads), spill],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=5_000_000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--small-units", type=int, default=1_000_000)
    parser.add_argument("--memory-limit", default="1GB")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        spill = str(Path(tmp) / "spill")
        big, small = Path(tmp) / "big", Path(tmp) / "small"
        n_big = write_panel(big, args.units, args.years)
        n_small = write_panel(small, args.small_units, args.years)
        size_mb = sum(f.stat().st_size for f in big.iterdir()) / 2**20
        print(f"large panel: {args.units:,} units x {args.years} years = {n_big:,} rows; Parquet {size_mb:,.0f} MB; "
              f"in pandas {n_big * 32 / 2**20:,.0f} MB as int64/float64 columns ({n_big * 16 / 2**20:,.0f} MB "
              "with int32/int16 keys), before anything an estimator allocates")
        rows = [
            {"run": f"duckdb, {n_big:,} rows", **run(big, "duckdb", args.memory_limit, args.threads, spill)},
            {"run": f"duckdb, {n_small:,} rows", **run(small, "duckdb", args.memory_limit, args.threads, spill)},
            {"run": f"in memory, {n_small:,} rows", **run(small, "memory", args.memory_limit, args.threads, spill)},
        ]
    print(f"DuckDB memory_limit {args.memory_limit}, {args.threads} threads; load average after: {os.getloadavg()[0]:.1f}")
    print(pd.DataFrame(rows).set_index("run").to_string(float_format=lambda v: f"{v:.6g}"))


if __name__ == "__main__":
    main()
