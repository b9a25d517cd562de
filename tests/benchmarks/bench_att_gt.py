"""Benchmark: impact.did.att_gt against diff-diff, csdid and differences, side by side in one run.

Run from the worktree:  PYTHONPATH=src /work/venv/bin/python tests/benchmarks/bench_att_gt.py [--quick]

Cases (simulated balanced panel, 10 periods, cohorts 3/5/7/9 and never treated, all in equal shares):
  (a) no covariates, outcome regression, never-treated comparison: 20,000 and 200,000 units
  (b) method="dr" with 2 time-invariant covariates: 20,000 units
  (c) case (a) plus a 999-draw multiplier bootstrap: 20,000 and 200,000 units
Each (tool, case) runs in a fresh subprocess: after one untimed warm-up fit (imports, caches), wall
time is the best of ``REPEATS`` fits (data already in memory) and peak memory the largest growth of the
resident set during a fit (Linux VmHWM, reset through /proc/self/clear_refs before each fit; this
counts memory allocated outside Python too, e.g. by diff-diff's Rust backend). Every tool's 36 ATT(g,t) are compared with impact's (max absolute difference).
Peer versions: diff-diff 3.13.0, csdid 0.4.3, differences 0.3.0 (pip install diff-diff csdid differences).
What is timed: the estimation of all ATT(g,t) with analytic standard errors (impact also returns the
overall ATT; diff-diff computes it in fit as well); for (c) the bootstrap inside the same call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

REPEATS = 3
TIMEOUT = 900
PERIODS = 10
COHORTS = (0, 3, 5, 7, 9)


def simulate(n_units: int, seed: int = 20260101) -> pd.DataFrame:
    """Staggered panel with heterogeneous dynamic effects and covariate-dependent trends."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n_units)
    x2 = rng.binomial(1, 0.5, size=n_units).astype(float)
    # treatment timing depends mildly on the covariates (so DR matters) with good overlap
    score = 0.3 * x1 - 0.3 * x2
    cut = np.quantile(score + rng.logistic(size=n_units), [0.2, 0.4, 0.6, 0.8])
    g = np.array(COHORTS)[np.searchsorted(cut, score + rng.logistic(size=n_units))]
    unit = np.repeat(np.arange(n_units), PERIODS)
    t = np.tile(np.arange(1, PERIODS + 1), n_units)
    G = g[unit]
    effect = np.where((G > 0) & (t >= G), 1.0 + 0.1 * (t - G) + 0.05 * G, 0.0)
    y = (rng.normal(size=n_units)[unit] + 0.1 * t + 0.1 * t * x1[unit] - 0.05 * t * x2[unit] + effect
         + rng.normal(size=n_units * PERIODS))
    return pd.DataFrame({"id": unit, "t": t, "g": G, "y": y, "x1": x1[unit], "x2": x2[unit]})


WORKER = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
tool, case, path, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
df = pd.read_parquet(path)
covs = case == "b"
boot = case == "c"

def run():
    if tool == "impact":
        import impact as im
        r = im.did.att_gt(df, outcome="y", unit="id", time="t", cohort="g",
                          covariates=["x1", "x2"] if covs else None, method="dr" if covs else "reg",
                          bootstrap=999 if boot else None, seed=1)
        gt = r.group_time()
        return {f"{int(a)},{int(b)}": float(e) for a, b, e in zip(gt["group"], gt["time"], gt["estimate"])}
    if tool == "diff-diff":
        import diff_diff as dd
        est = dd.CallawaySantAnna(control_group="never_treated", estimation_method="dr" if covs else "reg",
                                  n_bootstrap=999 if boot else 0, seed=1, pscore_trim=1e-6)
        r = est.fit(df, outcome="y", unit="id", time="t", first_treat="g", covariates=["x1", "x2"] if covs else None)
        return {f"{int(a)},{int(b)}": float(v["effect"]) for (a, b), v in r.group_time_effects.items()}
    if tool == "csdid":
        from csdid.att_gt import ATTgt
        a = ATTgt(yname="y", tname="t", idname="id", gname="g", data=df, xformla="y~x1+x2" if covs else None,
                  biters=999)
        a.fit(est_method="dr" if covs else "reg", bstrap=boot)
        res = a.results
        return {f"{int(g)},{int(t)}": float(e) for g, t, e in zip(res["group"], res["year"], res["att"])}
    if tool == "differences":
        from differences import ATTgt
        d = df.assign(g=df["g"].replace(0, np.nan)).set_index(["id", "t"])
        r = ATTgt(data=d, cohort_column="g").fit("y ~ x1 + x2" if covs else "y", est_method="dr" if covs else "reg",
                                                 boot_iterations=999 if boot else 0, random_state=1,
                                                 progress_bar=False)
        out = r.to_pandas()
        col = [c for c in out.columns if "ATT" in str(c)][0]
        return {f"{int(i[0])},{int(i[-1])}": float(v) for i, v in zip(out.index, out[col])}
    raise SystemExit("unknown tool")

def status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) / 1024  # kB -> MB

import importlib
importlib.import_module({"impact": "impact", "diff-diff": "diff_diff", "csdid": "csdid.att_gt",
                         "differences": "differences"}[tool])  # imports are not timed
times = []
if repeats > 1:
    est = run()  # warm-up of the fast tools (first-call costs); the slow peers are timed once
peaks = []
for _ in range(repeats):
    import gc
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:  # reset the peak resident set (VmHWM) to the current one
        fh.write("5")
    before = status("VmRSS")
    t0 = time.perf_counter()
    est = run()
    times.append(time.perf_counter() - t0)
    peaks.append(status("VmHWM") - before)
print("RESULT" + json.dumps({"time": min(times), "peak_mb": max(peaks), "est": est}))
'''


def main() -> None:
    quick = "--quick" in sys.argv
    tools = ["impact", "diff-diff", "csdid", "differences"]
    cases = [("a", 20_000), ("a", 200_000), ("b", 20_000), ("c", 20_000), ("c", 200_000)]
    if quick:
        cases = [("a", 20_000), ("b", 20_000), ("c", 20_000)]
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src")
    env["PYTHONPATH"] = os.path.abspath(src) + os.pathsep + env.get("PYTHONPATH", "")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        worker = os.path.join(tmp, "worker.py")
        with open(worker, "w") as fh:
            fh.write(WORKER)
        data_paths = {}
        for _, n in cases:
            if n not in data_paths:
                data_paths[n] = os.path.join(tmp, f"panel_{n}.parquet")
                simulate(n).to_parquet(data_paths[n])
        for case, n in cases:
            reference = None
            for tool in tools:
                repeats = REPEATS if tool in ("impact", "diff-diff") else 1  # the slow peers: one timed fit
                t0 = time.perf_counter()
                try:
                    proc = subprocess.run([sys.executable, worker, tool, case, data_paths[n], str(repeats)],
                                          capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False)
                    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
                    if not line:
                        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                        rows.append({"case": case, "units": n, "tool": tool, "seconds": np.nan, "peak_MB": np.nan,
                                     "max_abs_diff_vs_impact": np.nan, "note": f"failed: {err[:80]}"})
                        continue
                    out = json.loads(line[0][len("RESULT"):])
                except subprocess.TimeoutExpired:
                    rows.append({"case": case, "units": n, "tool": tool, "seconds": np.nan, "peak_MB": np.nan,
                                 "max_abs_diff_vs_impact": np.nan, "note": f"timed out after {TIMEOUT}s"})
                    continue
                est = out["est"]
                if tool == "impact":
                    reference = est
                    diff = 0.0
                elif reference is not None:
                    common = [k for k in reference if k in est]
                    diff = max(abs(reference[k] - est[k]) for k in common) if common else np.nan
                    if len(common) < len(reference):
                        diff_note = f" ({len(common)}/{len(reference)} cells matched)"
                    else:
                        diff_note = ""
                else:
                    diff = np.nan
                rows.append({"case": case, "units": n, "tool": tool, "seconds": out["time"], "peak_MB": out["peak_mb"],
                             "max_abs_diff_vs_impact": diff,
                             "note": (diff_note if tool != "impact" and reference is not None else "")
                             + f" [wall incl. start {time.perf_counter() - t0:.1f}s]"})
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
