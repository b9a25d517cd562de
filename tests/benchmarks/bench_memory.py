"""Benchmark: peak memory of ``twfe`` and ``att_gt`` on a large panel (default 1M units x 10 years = 10M rows).

Each fit runs in its own subprocess that reads the panel from Parquet, so the numbers are its own:
  data_mb    resident memory after reading the panel (the interpreter, the libraries and the data)
  peak_mb    the process's peak resident memory over the fit (VmHWM, /proc), data included
  added_mb   peak_mb - data_mb: what the fit itself adds
  seconds    wall time of the fit (one run; the machine may be shared)
The target of issue 16 is a peak under 4 GB for both at 10M rows. The panel's own columns (unit,
year, cohort as int32/int16, treat as int8, y as float64) take 190 MB at 10M rows.

Run: python tests/benchmarks/bench_memory.py [--units 1000000] [--years 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

FITS = {
    "twfe (CR1 by unit)": 'im.did.twfe(df, outcome="y", treatment="treat", unit="unit", time="year", vcov="cluster")',
    "att_gt (never treated, analytic)": ('im.did.att_gt(df, outcome="y", unit="unit", time="year", cohort="cohort", '
                                         'inference="analytic")'),
}

CHILD = """
import json, sys, time, warnings
import pandas as pd
import impact as im
warnings.simplefilter("ignore")
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
df = pd.read_parquet(sys.argv[1])
data = status("VmRSS")
t0 = time.perf_counter()
res = {fit}
seconds = time.perf_counter() - t0
peak = status("VmHWM")
print(json.dumps({{"data_mb": data, "peak_mb": peak, "added_mb": peak - data, "seconds": seconds,
                  "estimate": float(res.estimate), "se": float(res.std_error)}}))
"""


def simulate(n_units: int, n_years: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units, dtype=np.int32), n_years)
    year = np.tile(np.arange(2010, 2010 + n_years, dtype=np.int16), n_units)
    start = rng.choice(np.array([2013, 2015, 2017, 0], dtype=np.int16), size=n_units)
    cohort = start[unit]
    treat = ((cohort > 0) & (year >= cohort)).astype(np.int8)
    y = rng.normal(size=n_units)[unit] + 0.1 * (year - 2010) + 0.5 * treat + rng.normal(size=unit.size)
    return pd.DataFrame({"unit": unit, "year": year, "cohort": cohort, "treat": treat, "y": y})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--years", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "panel.parquet"
        df = simulate(args.units, args.years)
        n_rows = len(df)
        df.to_parquet(path)
        del df
        rows = []
        for name, fit in FITS.items():
            out = subprocess.run([sys.executable, "-c", CHILD.format(fit=fit), str(path)], capture_output=True, text=True)
            if out.returncode != 0:
                rows.append({"fit": name, "error": out.stderr.strip().splitlines()[-1]})
                continue
            rows.append({"fit": name, **json.loads(out.stdout.strip().splitlines()[-1])})
    print(f"Peak memory, {args.units:,} units x {args.years} years ({n_rows:,} rows); target: peak under 4,096 MB")
    print(pd.DataFrame(rows).set_index("fit").to_string(float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
