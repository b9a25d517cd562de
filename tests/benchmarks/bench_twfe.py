"""Benchmark: TWFE with unit and year effects and CR1 by unit, 100,000 units x 10 years (1M rows).

Side by side in one run (each library in its own subprocess, so peak memory is its own):
  impact        im.did.twfe(df, outcome="y", treatment="treat", unit="unit", time="year")
                (default vcov="cluster": Stata's CR1; vcov="CR1-fixest" gives pyfixest's SE exactly)
  pyfixest 0.60 feols("y ~ treat | unit + year", data=df, vcov={"CRV1": "unit"})
  linearmodels  PanelOLS(y, treat, entity_effects=True, time_effects=True).fit(cov_type="clustered",
                cluster_entity=True)
  numpy floor   bincount demeaning + slope + CR1 score sums on integer keys, no validation (the
                issue-16 target: impact within 2x of it at 10M rows)
Reports the warm time (best of 3 after one cold run), the peak resident memory added by the fit
(VmHWM minus VmRSS before fitting, from /proc), the estimate and SE.

Run: python tests/benchmarks/bench_twfe.py [--units 100000] [--years 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RUNNERS = {
    "impact": """
import impact as im, warnings
warnings.simplefilter("ignore")
def fit(df):
    r = im.did.twfe(df, outcome="y", treatment="treat", unit="unit", time="year")
    return r.estimate, r.std_error
""",
    "impact (CR1-fixest)": """
import impact as im, warnings
warnings.simplefilter("ignore")
def fit(df):
    r = im.did.twfe(df, outcome="y", treatment="treat", unit="unit", time="year", vcov="CR1-fixest")
    return r.estimate, r.std_error
""",
    "numpy floor": """
import numpy as np
def fit(df):
    # the least a TWFE + CR1 fit must do, with the keys already integer codes 0..N-1 / 0..T-1 and no
    # validation: unit and period means by bincount (one sweep is exact in a balanced panel), the slope,
    # the residuals and the clustered score sums
    u = df["unit"].to_numpy()
    t = df["year"].to_numpy() - df["year"].to_numpy().min()
    y, d = df["y"].to_numpy(float), df["treat"].to_numpy(float)
    nu, nt = int(u.max()) + 1, int(t.max()) + 1
    cu, ct = np.bincount(u, minlength=nu), np.bincount(t, minlength=nt)
    def demean(v):
        v = v - (np.bincount(u, v, nu) / cu)[u]
        return v - (np.bincount(t, v, nt) / ct)[t]
    yt, dt = demean(y), demean(d)
    dd = dt @ dt
    beta = dt @ yt / dd
    score = np.bincount(u, dt * (yt - beta * dt), nu)
    n = len(y)
    V = score @ score / dd**2 * nu / (nu - 1) * (n - 1) / (n - 1 - nu - nt + 1)
    return float(beta), float(np.sqrt(V))
""",
    "pyfixest": """
import pyfixest as pf
def fit(df):
    m = pf.feols("y ~ treat | unit + year", data=df, vcov={"CRV1": "unit"})
    return float(m.coef()["treat"]), float(m.se()["treat"])
""",
    "linearmodels": """
from linearmodels.panel import PanelOLS
def fit(df):
    p = df.set_index(["unit", "year"])
    r = PanelOLS(p["y"], p[["treat"]], entity_effects=True, time_effects=True).fit(cov_type="clustered", cluster_entity=True)
    return float(r.params["treat"]), float(r.std_errors["treat"])
""",
}

CHILD = """
import json, sys, time
import pandas as pd
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
{runner}
df = pd.read_parquet(sys.argv[1])
before = status("VmRSS")
t0 = time.perf_counter(); est = fit(df); cold = time.perf_counter() - t0
warm = []
for _ in range(3):
    t0 = time.perf_counter(); est = fit(df); warm.append(time.perf_counter() - t0)
print(json.dumps({{"cold": cold, "warm": min(warm), "peak_mb": status("VmHWM") - before,
                  "estimate": est[0], "se": est[1]}}))
"""


def simulate(n_units: int, n_years: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_years)
    year = np.tile(np.arange(2010, 2010 + n_years), n_units)
    start = rng.choice([2013, 2015, 2017, 0], size=n_units)
    treat = ((start[unit] > 0) & (year >= start[unit])).astype(np.int8)
    y = rng.normal(size=n_units)[unit] + 0.1 * (year - 2010) + 0.5 * treat + rng.normal(size=unit.size)
    return pd.DataFrame({"unit": unit, "year": year, "treat": treat, "y": y})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=list(RUNNERS))
    args = parser.parse_args()
    df = simulate(args.units, args.years)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "panel.parquet"
        df.to_parquet(path)
        rows = []
        for name in args.only:
            out = subprocess.run([sys.executable, "-c", CHILD.format(runner=RUNNERS[name]), str(path)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                rows.append({"library": name, "error": out.stderr.strip().splitlines()[-1]})
                continue
            rows.append({"library": name, **json.loads(out.stdout.strip().splitlines()[-1])})
    table = pd.DataFrame(rows).set_index("library")
    import os

    print(f"TWFE, {args.units:,} units x {args.years} years ({len(df):,} rows), CR1 by unit; 2 cores; "
          f"load average {os.getloadavg()[0]:.1f}")
    if "numpy floor" in table.index and "impact" in table.index:
        print(f"impact / numpy floor (warm): {table.loc['impact', 'warm'] / table.loc['numpy floor', 'warm']:.2f}")
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
