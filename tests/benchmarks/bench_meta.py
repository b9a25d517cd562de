"""Benchmark: im.meta.pool against statsmodels' combine_effects and R metafor::rma (same data, same run).

Run from the repository root:  PYTHONPATH=src python tests/benchmarks/bench_meta.py
Each Python case runs in a fresh subprocess and reports wall time (median of repeats) and peak memory
(tracemalloc peak of the call); R is timed inside Rscript (median of repeats, memory not measured).
Not collected by pytest.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

SIZES = (13, 1_000, 100_000)
REPEATS = 5

CASE = textwrap.dedent(
    """
    import json, sys, time, tracemalloc
    import numpy as np
    k, tool, method, repeats = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    rng = np.random.default_rng(1)
    vi = rng.uniform(0.01, 0.2, k)
    yi = 0.3 + rng.normal(0, 0.3, k) + rng.normal(0, np.sqrt(vi))
    if tool == "impact":
        from impact.meta import pool
        run = lambda: pool(yi, np.sqrt(vi), method=method).estimate
    else:
        from statsmodels.stats.meta_analysis import combine_effects
        sm_method = {"DL": "chi2", "PM": "iterated"}[method]
        run = lambda: combine_effects(yi, vi, method_re=sm_method).mean_effect_re
    run()  # warm-up (imports, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); est = run(); times.append(time.perf_counter() - start)
    tracemalloc.start(); run(); peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
    print(json.dumps({"seconds": sorted(times)[len(times) // 2], "peak_mb": peak / 2**20, "estimate": float(est)}))
    """
)

R_CASE = textwrap.dedent(
    """
    suppressPackageStartupMessages(library(metafor))
    args <- commandArgs(trailingOnly = TRUE); k <- as.integer(args[1]); method <- args[2]; repeats <- as.integer(args[3])
    set.seed(1); vi <- runif(k, 0.01, 0.2); yi <- 0.3 + rnorm(k, 0, 0.3) + rnorm(k, 0, sqrt(vi))
    fit <- rma(yi, vi, method = method)
    times <- replicate(repeats, system.time(fit <- rma(yi, vi, method = method))[["elapsed"]])
    cat(sprintf('{"seconds": %.6f, "estimate": %.10f}\\n', median(times), as.numeric(fit$b)))
    """
)


def python_case(k: int, tool: str, method: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CASE, str(k), tool, method, str(REPEATS)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def r_case(k: int, method: str) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    # metafor's REML forms k x k matrices: skip the largest size for it (memory k^2 * 8 bytes * several)
    if k > 20_000 and method == "REML":
        return None
    out = subprocess.run(["Rscript", "-e", R_CASE, str(k), method, str(REPEATS)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = []
    for k in SIZES:
        for method in ("DL", "PM", "REML"):
            rows.append(("impact", k, method, python_case(k, "impact", method)))
            if method != "REML":  # statsmodels' combine_effects has no REML
                rows.append(("statsmodels", k, method, python_case(k, "statsmodels", method)))
            r = r_case(k, method)
            if r is not None:
                rows.append(("metafor (R)", k, method, r))
    print(f"{'tool':<13}{'k':>8}  {'method':<6}{'wall ms':>10}{'peak MB':>10}  estimate")
    for tool, k, method, res in rows:
        peak = f"{res['peak_mb']:10.2f}" if "peak_mb" in res else f"{'-':>10}"
        print(f"{tool:<13}{k:>8}  {method:<6}{res['seconds'] * 1e3:10.2f}{peak}  {res['estimate']:.6f}")


if __name__ == "__main__":
    main()
