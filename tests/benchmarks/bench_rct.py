"""Benchmark: randomisation inference, impact vs scipy.stats.permutation_test vs a plain numpy loop.

Run from the repository root:  PYTHONPATH=src /work/venv/bin/python tests/benchmarks/bench_rct.py
Each (case, method) runs in a fresh subprocess; wall time is the best of ``--repeat`` runs and peak
memory is the growth of the process's peak resident set (ru_maxrss) during the test, over the
baseline after imports and data creation (tracemalloc is not used: its hooks slow numpy down).

Cases: difference in means, n = 10,000 units (half treated), 10,000 permutations; and the same
with 100 blocks of 100 units (complete randomisation within blocks). scipy's permutation_test has
no strata, so the blocked case compares impact with the numpy loop only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import resource

N, B, BLOCKS = 10_000, 10_000, 100


def data(blocked: bool):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    block = np.repeat(np.arange(BLOCKS), N // BLOCKS) if blocked else np.zeros(N, int)
    t = np.concatenate([rng.permutation(np.repeat([0, 1], N // BLOCKS // 2)) for _ in range(BLOCKS)])
    y = 0.03 * t + 0.2 * block / BLOCKS + rng.normal(size=N)
    return pd.DataFrame({"y": y, "t": t, "b": block})


def run(method: str, case: str) -> dict:
    import numpy as np

    df = data(case == "blocked")
    y, t, b = df.y.to_numpy(), df.t.to_numpy(), df.b.to_numpy()
    if method == "impact":
        import impact  # noqa: F401  (imports outside the timed region for every method)
    else:
        import scipy.stats  # noqa: F401
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if method == "impact":
        import impact as im

        r = im.rct.randomization_test(df, outcome="y", treatment="t", blocks="b" if case == "blocked" else None,
                                      n_permutations=B, seed=1)
        p = r.p_value
    elif method == "scipy":
        from scipy import stats

        res = stats.permutation_test((y[t == 1], y[t == 0]), lambda a, c, axis: a.mean(axis=axis) - c.mean(axis=axis),
                                     vectorized=True, n_resamples=B, permutation_type="independent",
                                     alternative="two-sided", random_state=1)
        p = res.pvalue
    else:  # numpy loop: one permutation per iteration (within blocks via sorted random keys)
        rng = np.random.default_rng(1)
        n1 = t.sum()

        def dim(tt):
            return y @ tt / n1 - y @ (1 - tt) / (N - n1)

        obs = dim(t)
        count = 0
        order = np.argsort(b, kind="stable")
        for _ in range(B):
            if case == "blocked":
                perm = order[np.argsort(b[order] + rng.random(N), kind="stable")]
                tt = np.empty_like(t)
                tt[order] = t[perm]
            else:
                tt = rng.permutation(t)
            count += abs(dim(tt)) >= abs(obs)
        p = (1 + count) / (1 + B)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline  # kilobytes on Linux
    return {"seconds": elapsed, "peak_mb": peak / 1024, "p_value": float(p)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "CASE"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", choices=("unblocked", "blocked", "both"), default="both")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run(*args.one)))
        return
    rows = []
    for case, methods in (("unblocked", ("impact", "scipy", "numpy_loop")), ("blocked", ("impact", "numpy_loop"))):
        if args.case not in ("both", case):
            continue
        for method in methods:
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run([sys.executable, __file__, "--one", method, case], capture_output=True, text=True, check=True)
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            best = min(runs, key=lambda r: r["seconds"])
            rows.append((case, method, best["seconds"], max(r["peak_mb"] for r in runs), best["p_value"]))
    print(f"randomisation inference, difference in means, n = {N:,}, {B:,} permutations (best of {args.repeat})")
    print(f"{'case':<10} {'method':<11} {'seconds':>8} {'peak MB':>9} {'p-value':>8}")
    for case, method, secs, mb, p in rows:
        print(f"{case:<10} {method:<11} {secs:8.2f} {mb:9.1f} {p:8.4f}")


if __name__ == "__main__":
    main()
