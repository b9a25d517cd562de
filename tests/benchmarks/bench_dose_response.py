"""Benchmark: dose_response (continuous-treatment DiD) at 100,000 observations, impact vs diff-diff 3.13.

Run from the repository root (diff-diff is a benchmark peer, not a dependency):
    .venv/bin/pip install diff-diff==3.13.0 && .venv/bin/python tests/benchmarks/bench_dose_response.py
Data: diff-diff's generator, generate_continuous_did_data(n_units=20_000, n_periods=5,
cohort_periods=[2, 3, 4], att_function="quadratic", seed=0) = 100,000 unit-periods. Both programs
fit the cubic B-spline with analytic influence-function standard errors (diff-diff n_bootstrap=0;
impact inference="analytic", n_bootstrap=None), and impact once more with its default uniform bands
(999 multiplier draws). Each program runs in a fresh subprocess, timed in the same run; wall time is the
best of ``--repeat`` runs. The script checks that both give the same ATT^o, ACRT^o and SEs first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def data():
    import diff_diff

    return diff_diff.generate_continuous_did_data(n_units=20_000, n_periods=5, cohort_periods=[2, 3, 4],
                                                  att_function="quadratic", seed=0)


def run(program: str) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    df = data()
    start = time.perf_counter()
    if program.startswith("impact"):
        import impact as im

        options = {"inference": "analytic", "n_bootstrap": None} if program == "impact" else {"inference": "analytic"}
        res = im.did.dose_response(df, outcome="outcome", unit="unit", time="period", dose="dose",
                                   cohort="first_treat", **options)
        tidy = res.tidy().set_index("term")
        out = [tidy.loc["ATT", "estimate"], tidy.loc["ATT", "std_error"], tidy.loc["ACRT", "estimate"],
               tidy.loc["ACRT", "std_error"]]
    else:
        import diff_diff

        res = diff_diff.ContinuousDiD().fit(df, outcome="outcome", unit="unit", time="period",
                                            first_treat="first_treat", dose="dose")
        out = [res.overall_att, res.overall_att_se, res.overall_acrt, res.overall_acrt_se]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "values": [float(v) for v in out], "n_obs": len(df)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.child)))
        return
    best, values = {}, {}
    for program in ("impact", "impact_bands", "diff-diff"):
        times = []
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, __file__, "--child", program], capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            times.append(result["seconds"])
            values[program] = result["values"]
        best[program] = min(times)
    diff = max(abs(a - b) for a, b in zip(values["impact"], values["diff-diff"], strict=True))
    assert diff < 1e-8, (values, diff)
    print(f"dose_response, {result['n_obs']:,} observations (20,000 units x 5 periods, 3 cohorts); "
          f"ATT^o, SE, ACRT^o, SE = {', '.join(f'{v:.6f}' for v in values['impact'])} (max |diff| {diff:.1e})")
    print("| program | seconds (best of %d) |" % args.repeat)
    print("|---|---|")
    print(f"| impact, analytic SEs | {best['impact']:.2f} |")
    print(f"| impact, analytic SEs + uniform bands (999 multiplier draws) | {best['impact_bands']:.2f} |")
    print(f"| diff-diff 3.13.0 ContinuousDiD (n_bootstrap=0) | {best['diff-diff']:.2f} |")


if __name__ == "__main__":
    main()
