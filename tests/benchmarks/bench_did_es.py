"""Benchmark of impact's event-study estimators against pyfixest (not collected by pytest).

    PYTHONPATH=src python tests/benchmarks/bench_did_es.py [--units 5000] [--periods 20]
    ... --units 1000000 --periods 10 --repeat 1 --only "event_study (impact)" --only "feols" --max-memory-gb 12

Each task runs in a fresh subprocess; the table reports wall time (best of ``--repeat``) and the
subprocess's peak resident memory (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``, which includes
the interpreter and imported libraries, so compare differences between rows of the same size).
Peers: pyfixest (feols with ``i(rel, ref=-1)``, ``SaturatedEventStudy``, ``did2s``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

SETUP = """
import time, warnings, numpy as np, pandas as pd
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
N, T = {units}, {periods}
cohorts = np.array([0, 6, 9, 12, 15])
g = cohorts[rng.integers(0, len(cohorts), N)]
unit = np.repeat(np.arange(N), T); t = np.tile(np.arange(1, T + 1), N); gi = np.repeat(g, T)
D = (gi > 0) & (t >= gi)
y = rng.normal(0, 1, N)[unit] + 0.1 * t + D * (0.1 * (t - gi + 1)) + rng.normal(0, 1, N * T)
df = pd.DataFrame({{"unit": unit, "time": t, "cohort": gi, "y": y, "D": D}})
df["rel"] = np.where(gi > 0, t - gi, -1000).astype(float)
"""

TASKS = {
    "event_study (impact)": "import impact as im; f = lambda: im.did.event_study(df, outcome='y', unit='unit', time='time', cohort='cohort')",
    "event study (pyfixest feols i(rel))": "import pyfixest as pf; f = lambda: pf.feols('y ~ i(rel, ref=-1.0) | unit + time', df, vcov={'CRV1': 'unit'}).tidy()",
    "sun_abraham (impact)": "import impact as im; f = lambda: im.did.sun_abraham(df, outcome='y', unit='unit', time='time', cohort='cohort')",
    "SaturatedEventStudy (pyfixest)": "import pyfixest as pf\ndef f():\n    m = pf.SaturatedEventStudy(df, yname='y', idname='unit', tname='time', gname='cohort', cluster='unit'); m.estimate(); return m.tidy()",
    "imputation (impact, BJS SE)": "import impact as im; f = lambda: im.did.imputation(df, outcome='y', unit='unit', time='time', cohort='cohort')",
    "did2s (impact)": "import impact as im; f = lambda: im.did.did2s(df, outcome='y', unit='unit', time='time', cohort='cohort')",
    "did2s (pyfixest)": "import pyfixest as pf; f = lambda: pf.did2s(df, yname='y', first_stage='~0|unit+time', second_stage='~i(rel, ref=-1000.0)', treatment='D', cluster='unit').tidy()",
    "bacon (impact)": "import impact as im; f = lambda: im.did.bacon(df.assign(D=df['D'].astype(int)), outcome='y', unit='unit', time='time', treatment='D')",
    "honest smoothness (impact)": "import impact as im; r = im.did.event_study(df, outcome='y', unit='unit', time='time', cohort='cohort', leads=4, lags=4); f = lambda: im.did.honest(r, method='smoothness')",
}

RUN = """
f()  # warm-up (imports, JIT in pyfixest)
best = float("inf")
for _ in range({repeat}):
    start = time.perf_counter(); f(); best = min(best, time.perf_counter() - start)
import resource, json
print(json.dumps({{"seconds": best}}))
"""


def run_task(code: str, units: int, periods: int, repeat: int, timeout: float) -> dict:
    script = SETUP.format(units=units, periods=periods) + textwrap.dedent(code) + RUN.format(repeat=repeat)
    wrapper = (
        "import resource, subprocess, sys, json\n"
        "try:\n"
        f"    p = subprocess.run([sys.executable, '-c', {script!r}], capture_output=True, text=True, timeout={timeout})\n"
        "    out = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {'error': p.stderr[-300:]}\n"
        "except subprocess.TimeoutExpired:\n"
        f"    out = {{'error': 'timed out after {timeout:g} s'}}\n"
        "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "out['peak_mb'] = usage.ru_maxrss / 1024\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, env=os.environ.copy(), check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=5000)
    parser.add_argument("--periods", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per task before it is stopped")
    parser.add_argument("--only", action="append", default=[], help="run only tasks whose name contains this (repeatable)")
    parser.add_argument("--max-memory-gb", type=float, default=None,
                        help="address-space cap per task (e.g. 12 at 1M units: a peer that needs more fails with "
                             "'out of memory' instead of swapping the machine)")
    args = parser.parse_args()
    tasks = {n: c for n, c in TASKS.items() if not args.only or any(o in n for o in args.only)}
    if args.max_memory_gb:
        cap = int(args.max_memory_gb * 2**30)
        tasks = {n: f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))\n{c}" for n, c in tasks.items()}
    print(f"panel: {args.units:,} units x {args.periods} periods = {args.units * args.periods:,} rows")
    print(f"{'task':42s} {'seconds':>9s} {'peak MB':>9s}")
    for name, code in tasks.items():
        out = run_task(code, args.units, args.periods, args.repeat, args.timeout)
        if "error" in out:
            print(f"{name:42s} {'error':>9s} {out['peak_mb']:9.0f}   {out['error'].splitlines()[-1] if out['error'] else ''}")
        else:
            print(f"{name:42s} {out['seconds']:9.3f} {out['peak_mb']:9.0f}", flush=True)


if __name__ == "__main__":
    main()
