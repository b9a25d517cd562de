"""Benchmark: 1:1 nearest-neighbour propensity-score matching with a caliper on 100,000 units and
10 covariates (score estimation included), impact against DoWhy and an sklearn baseline.

Run from the repository root:  PYTHONPATH=src python tests/benchmarks/bench_matching.py [--n 100000]

Each contender runs in its own subprocess on the same simulated data (seeded): one warm-up call on
1,000 rows (imports, JIT caches), then the best of three timed calls. Memory: the peak of
Python-visible allocations during the call (tracemalloc; numpy arrays are tracked) and the peak
resident set size of the process (getrusage, includes the interpreter and imported libraries).

What each contender does:
  impact   im.matching.match(caliper=0.2): logit score by Newton's method, greedy matching
           without replacement, largest score first, caliper 0.2 SD of the score (MatchIt rules).
           "ATE, AI 2016 SE": matching in both directions with replacement, no caliper, and the
           default SE (Abadie-Imbens 2006 variance + the 2016 correction for the estimated score).
  dowhy    CausalModel(...).estimate_effect(method_name="backdoor.propensity_score_matching",
           target_units="att"): sklearn LogisticRegression + NearestNeighbors, with replacement,
           no caliper (DoWhy has none), ATT.
  sklearn  LogisticRegression(lbfgs) + NearestNeighbors(1) on the score, with replacement, caliper
           applied afterwards: the lower bound of any matcher built on sklearn.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DATA = """
import numpy as np, pandas as pd
def make(n, k=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k))
    beta = np.linspace(0.5, -0.5, k)
    d = (rng.random(n) < 1 / (1 + np.exp(-(-0.8 + X @ beta)))).astype(int)
    y = X @ np.linspace(1, 0.1, k) + 1.0 * d + rng.normal(size=n)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(k)])
    df["d"] = d
    df["y"] = y
    return df
"""

CONTENDERS = {
    "impact": """
import impact as im
def run(df):
    m = im.matching.match(df, treatment="d", covariates=[c for c in df.columns if c.startswith("x")], caliper=0.2)
    return m.effect(outcome="y").estimate
""",
    "impact (with replacement)": """
import impact as im
def run(df):
    m = im.matching.match(df, treatment="d", covariates=[c for c in df.columns if c.startswith("x")], replace=True,
                          caliper=0.2)
    return m.effect(outcome="y").estimate
""",
    "impact (ATE, AI 2016 SE)": """
import impact as im
def run(df):
    # both directions with replacement, Abadie-Imbens variance with the 2016 correction (the default)
    m = im.matching.match(df, treatment="d", covariates=[c for c in df.columns if c.startswith("x")], replace=True,
                          estimand="ATE")
    return m.effect(outcome="y").estimate
""",
    "impact (mahalanobis, no score)": """
import impact as im
def run(df):
    m = im.matching.match(df, treatment="d", covariates=[c for c in df.columns if c.startswith("x")], method="mahalanobis")
    return m.effect(outcome="y").estimate
""",
    "dowhy": """
import logging, warnings
logging.disable(logging.WARNING)
warnings.simplefilter("ignore")
from dowhy import CausalModel
def run(df):
    covs = [c for c in df.columns if c.startswith("x")]
    data = df.assign(d=df["d"].astype(bool))
    model = CausalModel(data=data, treatment="d", outcome="y", common_causes=covs)
    est = model.identify_effect(proceed_when_unidentifiable=True)
    return model.estimate_effect(est, method_name="backdoor.propensity_score_matching", target_units="att").value
""",
    "sklearn baseline": """
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
def run(df):
    X = df[[c for c in df.columns if c.startswith("x")]].to_numpy()
    d = df["d"].to_numpy() == 1
    y = df["y"].to_numpy()
    ps = LogisticRegression(max_iter=1000).fit(X, d).predict_proba(X)[:, 1]
    nn = NearestNeighbors(n_neighbors=1).fit(ps[~d, None])
    dist, idx = nn.kneighbors(ps[d, None])
    ok = dist[:, 0] <= 0.2 * ps.std(ddof=1)
    return float(np.mean(y[d][ok] - y[~d][idx[ok, 0]]))
""",
}

RUNNER = """
import json, resource, sys, time, tracemalloc
{data}
{contender}
n = int(sys.argv[1])
run(make(1000, seed=1))  # warm-up: imports, caches
df = make(n)
best = float("inf")
for _ in range(3):
    t0 = time.perf_counter(); est = run(df); best = min(best, time.perf_counter() - t0)
tracemalloc.start()
run(df)
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": best, "peak_mb": peak / 2**20, "rss_mb": rss, "estimate": float(est)}}))
"""


def run_one(name: str, n: int) -> dict:
    code = RUNNER.format(data=DATA, contender=textwrap.dedent(CONTENDERS[name]))
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--scaling", action="store_true", help="also time impact at n/4, n/2, n, 2n")
    parser.add_argument("--mahalanobis", action="store_true", help="also time greedy Mahalanobis matching (slow in 10-D)")
    args = parser.parse_args()
    print(f"1:1 nearest-neighbour PS matching with caliper, n = {args.n:,}, 10 covariates (true effect 1.0)")
    print(f"{'contender':32s} {'seconds':>9s} {'peak MB':>9s} {'RSS MB':>9s} {'estimate':>9s}")
    for name in CONTENDERS:
        if "mahalanobis" in name and not args.mahalanobis:
            continue
        r = run_one(name, args.n)
        if "error" in r:
            print(f"{name:32s} error: {r['error']}")
            continue
        print(f"{name:32s} {r['seconds']:9.3f} {r['peak_mb']:9.1f} {r['rss_mb']:9.0f} {r['estimate']:9.3f}")
    if args.scaling:
        print("\nimpact scaling (time and peak allocations should grow linearly):")
        for n in (args.n // 4, args.n // 2, args.n, 2 * args.n):
            r = run_one("impact", n)
            print(f"  n = {n:>9,}: {r['seconds']:.3f} s, peak {r['peak_mb']:.1f} MB")


if __name__ == "__main__":
    main()
