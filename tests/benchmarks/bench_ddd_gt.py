"""Benchmark: staggered triple differences, impact's ddd_gt vs diff-diff 3.13 and moderndid 0.2.0, 100,000 rows.

Run from the repository root (the peers are benchmark references, not dependencies):
    .venv/bin/pip install diff-diff==3.13.0 moderndid==0.2.0 && .venv/bin/python tests/benchmarks/bench_ddd_gt.py
Data: 20,000 units x 5 periods (100,000 rows), enabling cohorts 3 and 4 and never enabled, half of the
units eligible, two covariates. Each (case, program) runs in a fresh subprocess; wall time (estimation
only, data built before the clock starts) is the best of ``--repeat`` runs. The script checks that the
programs give the same overall ATT (diff-diff) or ATT(g, t) (moderndid) before printing.
Cases: doubly robust, never-enabled comparisons, without and with covariates; not-yet-enabled with
covariates (GMM over comparison cohorts).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

N_UNITS, PERIODS = 20_000, 5
CASES = {"never": ("never", False), "never+x": ("never", True), "notyet+x": ("notyet", True)}


def data():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_UNITS, 2))
    S = rng.choice([0, 3, 4], size=N_UNITS)
    Q = (rng.random(N_UNITS) < 1 / (1 + np.exp(-0.5 * x[:, 0]))).astype(int)
    t = np.arange(1, PERIODS + 1)
    y = (x @ [1.0, 0.5])[:, None] + (0.3 + 0.2 * Q + 0.3 * x[:, 1] * Q)[:, None] * t + rng.normal(size=(N_UNITS, PERIODS))
    y += np.where((S > 0)[:, None] & (Q == 1)[:, None] & (t >= S[:, None]), 1.0, 0.0)
    return pd.DataFrame({"id": np.repeat(np.arange(N_UNITS), PERIODS), "time": np.tile(t, N_UNITS), "y": y.ravel(),
                         "group": np.repeat(S, PERIODS), "partition": np.repeat(Q, PERIODS),
                         "x1": np.repeat(x[:, 0], PERIODS), "x2": np.repeat(x[:, 1], PERIODS)})


def run(program: str, case: str) -> dict:
    import warnings

    import numpy as np

    warnings.simplefilter("ignore")
    control, with_x = CASES[case]
    df = data()
    covs = ["x1", "x2"] if with_x else None
    if program == "moderndid":
        import moderndid
        import polars as pl

        df = pl.from_pandas(df)
    elif program == "diff_diff":
        import diff_diff
    else:
        import impact as im
    start = time.perf_counter()  # imports and data outside the clock
    if program == "impact":
        res = im.did.ddd_gt(df, outcome="y", unit="id", time="time", cohort="group", partition="partition",
                            covariates=covs, control_group=control, inference="analytic", base_period="universal")
        gt = res.group_time()
        out = {"overall": res.estimate, "att_gt": gt.loc[gt["std_error"].notna(), "estimate"].tolist()}
    elif program == "diff_diff":
        est = diff_diff.StaggeredTripleDifference(estimation_method="dr", base_period="universal",
                                                  control_group="nevertreated" if control == "never" else "notyettreated")
        res = est.fit(df, outcome="y", unit="id", time="time", first_treat="group", eligibility="partition", covariates=covs)
        out = {"overall": float(res.overall_att)}
    else:
        res = moderndid.ddd(df, yname="y", tname="time", idname="id", gname="group", pname="partition",
                            xformla=None if covs is None else "~x1+x2", base_period="universal", est_method="dr",
                            control_group="nevertreated" if control == "never" else "notyettreated")
        att = np.asarray(res.att, float)
        out = {"att_gt": [float(a) for a, s in zip(att, res.se) if np.isfinite(s)]}
    out["seconds"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2)
    parser.add_argument("--programs", default="impact,diff_diff,moderndid", help="comma-separated subset")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(*args.child)))
        return
    print(f"ddd_gt benchmark: {N_UNITS * PERIODS:,} rows; best of {args.repeat} runs, seconds")
    print(f"{'case':<10} {'impact':>8} {'diff-diff':>10} {'moderndid':>10}  agreement")
    for case in CASES:
        best = {}
        results = {}
        for program in args.programs.split(","):
            times = []
            for _ in range(args.repeat):
                out = subprocess.run([sys.executable, __file__, "--child", program, case], capture_output=True,
                                     text=True, check=True)
                results[program] = json.loads(out.stdout.strip().splitlines()[-1])
                times.append(results[program]["seconds"])
            best[program] = min(times)
        gap_dd = abs(results["impact"]["overall"] - results["diff_diff"]["overall"]) if "diff_diff" in results else 0.0
        gap_md = max(abs(a - b) for a, b in zip(results["impact"]["att_gt"], results["moderndid"]["att_gt"])) \
            if "moderndid" in results else 0.0
        assert gap_dd < 1e-3 and gap_md < 1e-6, (case, gap_dd, gap_md)
        show = {p: f"{best[p]:.2f}" if p in best else "-" for p in ("impact", "diff_diff", "moderndid")}
        print(f"{case:<10} {show['impact']:>8} {show['diff_diff']:>10} {show['moderndid']:>10}  "
              f"overall vs diff-diff {gap_dd:.1e}, ATT(g,t) vs moderndid {gap_md:.1e}")


if __name__ == "__main__":
    main()
