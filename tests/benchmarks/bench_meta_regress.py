"""Benchmark: im.meta.regress and its permutation test against R metafor::rma(mods = ) and permutest
(same data, same run). The permutation test refits every permuted data set in one vectorised batch.

Run from the repository root:  PYTHONPATH=src python tests/benchmarks/bench_meta_regress.py
Prints wall time (median of repeats) per case. Not collected by pytest.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

CASES = ((13, 1_000), (40, 1_000), (40, 5_000))  # (studies, permutations)
REPEATS = 3

CASE = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np, pandas as pd
    from impact.meta import regress
    k, iters, repeats = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(1)
    vi = rng.uniform(0.01, 0.2, k); x = rng.uniform(0, 1, k); g = np.where(np.arange(k) % 3 == 0, "a", "b")
    yi = 0.3 + 0.5 * x + rng.normal(0, 0.3, k) + rng.normal(0, np.sqrt(vi))
    mods = pd.DataFrame({"x": x, "g": g})
    fit = lambda: regress(yi, np.sqrt(vi), moderators=mods, method="REML")
    res = fit()
    perm = lambda: res.permutation_test(iters, exact=False, seed=1)
    perm()
    def median(f):
        t = []
        for _ in range(repeats):
            s = time.perf_counter(); f(); t.append(time.perf_counter() - s)
        return sorted(t)[len(t) // 2]
    print(json.dumps({"fit": median(fit), "permutest": median(perm), "QMp": perm().q_moderators_p}))
    """
)

R_CASE = textwrap.dedent(
    """
    suppressPackageStartupMessages(library(metafor))
    args <- commandArgs(trailingOnly = TRUE); k <- as.integer(args[1]); iters <- as.integer(args[2])
    set.seed(1); vi <- runif(k, 0.01, 0.2); x <- runif(k); g <- ifelse((seq_len(k) - 1) %% 3 == 0, "a", "b")
    yi <- 0.3 + 0.5 * x + rnorm(k, 0, 0.3) + rnorm(k, 0, sqrt(vi))
    fit_time <- system.time(for (i in 1:20) fit <- rma(yi, vi, mods = ~ x + g, method = "REML"))[["elapsed"]] / 20
    perm_time <- system.time(pt <- permutest(fit, iter = iters, progbar = FALSE))[["elapsed"]]
    cat(sprintf('{"fit": %.6f, "permutest": %.6f, "QMp": %.4f}\\n', fit_time, perm_time, pt$QMp))
    """
)


def main() -> None:
    print(f"{'k':>4} {'perms':>6}  {'impact fit':>11} {'impact permutest':>17}  {'metafor fit':>12} {'metafor permutest':>18}")
    for k, iters in CASES:
        ours = json.loads(subprocess.run([sys.executable, "-c", CASE, str(k), str(iters), str(REPEATS)],
                                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        theirs = {"fit": float("nan"), "permutest": float("nan")}
        if shutil.which("Rscript"):
            out = subprocess.run(["Rscript", "-e", R_CASE, str(k), str(iters)], capture_output=True, text=True)
            if out.returncode == 0:
                theirs = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{k:>4} {iters:>6}  {ours['fit']:>10.4f}s {ours['permutest']:>16.3f}s  {theirs['fit']:>11.4f}s {theirs['permutest']:>17.2f}s")


if __name__ == "__main__":
    main()
