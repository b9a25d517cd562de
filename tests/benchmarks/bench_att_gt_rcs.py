"""Benchmark: att_gt for repeated cross-sections (panel=False) and unbalanced panels kept whole
(unbalanced="keep"), impact vs moderndid 0.2.0, 100,000 observations.

Run from the repository root (moderndid is a benchmark peer, not a dependency):
    .venv/bin/pip install moderndid==0.2.0 && .venv/bin/python tests/benchmarks/bench_att_gt_rcs.py
Each (case, program) runs in a fresh subprocess; wall time (att_gt plus the dynamic aggregation) is the
best of ``--repeat`` runs. Data: 100,000 observations over 6 periods, cohorts 3, 4, 5 and never
treated, selection on two covariates; the keep-all case is a panel of 20,000 units with 100,000 of its
120,000 rows. The script checks that both programs give the same dynamic ATT before printing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

N = 100_000
CASES = {
    "rc": "repeated cross-sections, no covariates",
    "rc_dr": "repeated cross-sections, DR with 2 covariates",
    "keep": "unbalanced panel kept whole, no covariates",
}


def data(case: str):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    if case == "keep":
        units, periods = 20_000, 6
        g_unit = rng.choice([0, 3, 4, 5], size=units)
        unit = np.repeat(np.arange(units), periods)
        t = np.tile(np.arange(1, periods + 1), units)
        g = g_unit[unit]
        keep = rng.permutation(units * periods)[:N]
        unit, t, g = unit[keep], t[keep], g[keep]
        x = rng.normal(size=(N, 2))
    else:
        t = rng.integers(1, 7, N)
        x = rng.normal(size=(N, 2))
        score = x @ [0.4, -0.3] + rng.logistic(size=N)  # selection on the covariates, with overlap
        g = np.select([score > 1.0, score > 0.3, score > -0.3], [3, 4, 5], 0)
        unit = np.arange(N)
    effect = np.where((g > 0) & (t >= g), 1.0 + 0.5 * (t - g), 0.0)
    y = 1 + x @ [1.0, 0.5] + 0.2 * t + 0.3 * x[:, 0] * t + effect + rng.normal(size=N)
    return pd.DataFrame({"id": unit, "t": t, "g": g, "y": y, "x1": x[:, 0], "x2": x[:, 1]})


def run(program: str, case: str) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    df = data(case)
    covs = ["x1", "x2"] if case == "rc_dr" else None
    if program == "impact":
        import impact as im

        start = time.perf_counter()
        options = {"unit": "id", "unbalanced": "keep"} if case == "keep" else {"panel": False}
        res = im.did.att_gt(df, outcome="y", time="t", cohort="g", covariates=covs, method="dr",
                            inference="analytic", **options)
        att = res.aggregate("dynamic").estimate
    else:
        from moderndid import aggte, att_gt

        start = time.perf_counter()
        options = {"idname": "id", "allow_unbalanced_panel": True} if case == "keep" else {"idname": None}
        res = att_gt(df, yname="y", tname="t", gname="g", panel=False, est_method="dr",
                     xformla="~x1+x2" if covs else "~1", **options)
        att = aggte(res, type="dynamic").overall_att
    return {"seconds": time.perf_counter() - start, "att": float(att)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(*args.child)))
        return
    for case, label in CASES.items():
        best = {}
        for program in ("impact", "moderndid"):
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run([sys.executable, __file__, "--child", program, case], capture_output=True,
                                     text=True, check=True)
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            best[program] = min(runs, key=lambda r: r["seconds"])
        assert abs(best["impact"]["att"] - best["moderndid"]["att"]) < 1e-6, best
        print(f"{label:50s} impact {best['impact']['seconds']:.2f} s   moderndid 0.2.0 "
              f"{best['moderndid']['seconds']:.2f} s   (dynamic ATT {best['impact']['att']:.5f})")


if __name__ == "__main__":
    main()
