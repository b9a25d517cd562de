"""Benchmark: drdid for repeated cross-sections (panel=False), impact vs moderndid 0.2.0, 100,000 rows.

Run from the repository root (moderndid is a benchmark peer, not a dependency):
    .venv/bin/pip install moderndid==0.2.0 && .venv/bin/python tests/benchmarks/bench_drdid_rcs.py
Each (method, program) runs in a fresh subprocess; wall time is the best of ``--repeat`` runs. Data: 100,000
observations, half sampled after, selection into treatment on three covariates, true ATT 1. The script
checks that both programs give the same ATT before printing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

N = 100_000
METHODS = {"imp": "drdid_imp_rc", "trad": "drdid_rc", "reg": "reg_did_rc", "std_ipw": "std_ipw_did_rc"}


def data():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 3))
    d = (rng.random(N) < 1 / (1 + np.exp(-(x @ [0.4, -0.3, 0.2])))).astype(int)
    post = rng.integers(0, 2, N)
    y = 1 + x @ [1.0, 0.5, -0.5] + d + post * (0.5 + 0.3 * x[:, 0]) + d * post + rng.normal(size=N)
    return pd.DataFrame({"y": y, "d": d, "t": post, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2]})


def run(program: str, method: str) -> dict:
    import numpy as np

    df = data()
    if program == "impact":
        import impact as im
    else:
        import importlib

        module = importlib.import_module(f"moderndid.drdid.estimators.{METHODS[method]}")
        estimator = getattr(module, METHODS[method])
    start = time.perf_counter()
    if program == "impact":
        att = im.did.drdid(df, outcome="y", time="t", treatment="d", covariates=["x1", "x2", "x3"],
                           method=method, panel=False).estimate
    else:
        X = np.column_stack([np.ones(N), df[["x1", "x2", "x3"]].to_numpy()])
        att = estimator(df.y.to_numpy(), df.t.to_numpy(float), df.d.to_numpy(float), X).att
    return {"seconds": time.perf_counter() - start, "att": float(att)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(*args.child)))
        return
    for method in METHODS:
        best = {}
        for program in ("impact", "moderndid"):
            runs = [json.loads(subprocess.run([sys.executable, __file__, "--child", program, method], check=True,
                                              capture_output=True, text=True).stdout) for _ in range(args.repeat)]
            best[program] = min(runs, key=lambda r: r["seconds"])
        diff = abs(best["impact"]["att"] - best["moderndid"]["att"])
        print(f"{method:8s} n={N:,}: impact {best['impact']['seconds']:.2f} s, moderndid 0.2.0 "
              f"{best['moderndid']['seconds']:.2f} s; |ATT difference| {diff:.1e}")


if __name__ == "__main__":
    main()
