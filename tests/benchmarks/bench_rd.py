"""Benchmark: regression discontinuity, impact.rd.rdd vs rdrobust 2.1.1 (PyPI), 100,000 observations.

Run from the repository root (rdrobust is a benchmark peer, not a dependency):
    .venv/bin/pip install rdrobust==2.1.1 && .venv/bin/python tests/benchmarks/bench_rd.py
Each (case, method) runs in a fresh subprocess; wall time is the best of ``--repeat`` runs and peak
memory the growth of the peak resident set over the baseline after imports and data creation.
Cases: sharp RD with the MSE-optimal bandwidth (nearest-neighbour variance), the same with 200
clusters (CR1), and a fuzzy design. Both programs compute the same numbers (tests/rd: 1e-6), which
the script checks before printing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import subprocess
import sys
import time

N = 100_000


def data():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, N)
    d = (rng.random(N) < np.where(x >= 0, 0.8, 0.2)).astype(float)
    y = 0.5 + x - 0.5 * x**2 + 0.4 * (x >= 0) + 0.3 * d + rng.normal(0, 0.5, N)
    return pd.DataFrame({"x": x, "y": y, "d": d, "g": rng.integers(0, 200, N)})


def run(method: str, case: str) -> dict:
    df = data()
    if method == "impact":
        import impact as im
    else:
        from rdrobust import rdrobust
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if method == "impact":
        kw = {"cluster": "g"} if case == "cluster" else {"treatment": "d"} if case == "fuzzy" else {}
        r = im.rd.rdd(df, outcome="y", running="x", **kw)
        est = r.tidy()["estimate"].tolist() + r.tidy()["std_error"].tolist()
    else:
        kw = {"cluster": df.g} if case == "cluster" else {"fuzzy": df.d} if case == "fuzzy" else {}
        with contextlib.redirect_stdout(io.StringIO()):
            r = rdrobust(df.y, df.x, **kw)
        est = r.coef.iloc[:, 0].tolist() + r.se.iloc[:, 0].tolist()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline
    return {"seconds": seconds, "peak_mb": peak / 1024, "values": est}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(*args.child)))
        return
    for case in ("sharp", "cluster", "fuzzy"):
        results = {}
        for method in ("impact", "rdrobust"):
            runs = [json.loads(subprocess.run([sys.executable, __file__, "--child", method, case], check=True,
                                              capture_output=True, text=True).stdout) for _ in range(args.repeat)]
            results[method] = min(runs, key=lambda r: r["seconds"])
        diff = max(abs(a - b) for a, b in zip(results["impact"]["values"], results["rdrobust"]["values"]))
        line = ", ".join(f"{m} {r['seconds']:.2f} s, {r['peak_mb']:.0f} MB" for m, r in results.items())
        print(f"{case:8s} n={N:,}: {line}; max |difference| {diff:.1e}")


if __name__ == "__main__":
    main()
