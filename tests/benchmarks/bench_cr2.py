"""Benchmark: CR2 (Bell-McCaffrey, Satterthwaite df) with large clusters (issue 17 item 5).

Two timings, best of 3 after one warm-up:
  1. ``impact.inference.linear_vcov(X, e, kind="CR2", clusters=...)`` on 100,000 rows, 5 regressors
     (intercept included) and 10 clusters of 10,000 rows; also with analytic weights.
  2. ``im.did.twfe(df, ..., cluster="region", vcov="CR2")`` on a panel of 10 regions x 1,000 firms x
     10 years (100,000 rows, firm effects absorbed within regions, 9 year dummies as columns).
  3. The dense formula (an n_g x n_g eigen-decomposition per cluster, as before) on clusters of
     2,000 rows (20,000 rows), against the low-rank one on the same data, with their largest
     relative difference: the two are the same formula (agreement to ~1e-15).

clubSandwich 0.5.8 (R) forms the n_g x n_g matrices too (25 min on the 7,533-row Cai et al. cluster,
issue 17); it is not timed here.

Run: python tests/benchmarks/bench_cr2.py [--rows 100000] [--cluster-size 10000]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import impact as im
from impact.inference import vcov as V


def best_of(fn, repeat: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def dense_adjustment(Xg, wg, M, MSM):
    XMX = Xg @ M @ Xg.T
    B = np.eye(len(wg)) - XMX * wg[None, :] - wg[:, None] * XMX + Xg @ MSM @ Xg.T
    return V._inv_sqrt_psd(B).__matmul__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cluster-size", type=int, default=10_000)
    args = parser.parse_args()
    rng = np.random.default_rng(17)
    n, k = args.rows, 5
    X = np.column_stack([np.ones(n), rng.normal(size=(n, k - 1))])
    clusters = np.arange(n) // args.cluster_size
    e = rng.normal(size=n) + rng.normal(size=clusters.max() + 1)[clusters]
    w = rng.uniform(0.5, 2.0, n)
    t = best_of(lambda: V.linear_vcov(X, e, kind="CR2", clusters=clusters))
    print(f"linear_vcov CR2, {n:,} rows, {clusters.max() + 1} clusters of {args.cluster_size:,}: {t:.3f} s")
    t = best_of(lambda: V.linear_vcov(X, e, kind="CR2", clusters=clusters, weights=w))
    print(f"  with analytic weights: {t:.3f} s")

    regions, firms, years = 10, n // 100, 10
    firm = np.repeat(np.arange(regions * firms), years)
    region = firm // firms
    year = np.tile(np.arange(years), regions * firms)
    treat = ((region < 3) & (year >= 6)).astype(int)
    y = 0.1 * treat + rng.normal(size=regions * firms)[firm] + 0.1 * year + rng.normal(size=len(firm))
    df = pd.DataFrame({"firm": firm, "region": region, "year": year, "treat": treat, "y": y})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lambda: im.did.twfe(df, outcome="y", treatment="treat", unit="firm", time="year", cluster="region", vcov="CR2")  # noqa: E731
        t = best_of(fit)
        res = fit()
    print(f"twfe CR2, {len(df):,} rows, clusters of {firms * years:,} rows: {t:.3f} s "
          f"(SE {res.std_error:.5f}, df {res.tidy()['df'].iloc[0]:.2f})")

    m = 20_000
    cl_small = np.arange(m) // 2_000
    low = best_of(lambda: V.linear_vcov(X[:m], e[:m], kind="CR2", clusters=cl_small), repeat=1)
    fast = V.linear_vcov(X[:m], e[:m], kind="CR2", clusters=cl_small)
    original = V._low_rank_adjustment
    V._low_rank_adjustment = dense_adjustment
    try:
        dense_t = best_of(lambda: V.linear_vcov(X[:m], e[:m], kind="CR2", clusters=cl_small), repeat=1)
        dense = V.linear_vcov(X[:m], e[:m], kind="CR2", clusters=cl_small)
    finally:
        V._low_rank_adjustment = original
    diff = np.max(np.abs(fast.matrix - dense.matrix)) / np.max(np.abs(dense.matrix))
    print(f"20,000 rows in clusters of 2,000: low-rank {low:.3f} s, dense {dense_t:.3f} s, max relative difference {diff:.1e}")


if __name__ == "__main__":
    main()
