"""Benchmark: synthetic control with every in-space placebo, and synthetic DiD with placebo SEs.

Run from the repository root:  PYTHONPATH=src python tests/benchmarks/bench_synth.py [--peers]

Data: prop99 (39 states x 31 years, California treated from 1989). Each task runs in its own
subprocess; the table reports wall time (inside the process, after imports and data loading) and the
peak resident memory of that process, plus the CPU time (the machine is shared, so wall time
varies with the load; CPU time includes pysyncon's worker processes). With ``--peers`` the peers run too (pysyncon 1.7 and
diff-diff 3.13; slow: minutes). The synthetic control uses the same predictor set everywhere: the
outcome in every second pre-period year 1970-1988, V chosen by the nested MSPE problem.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "prop99.csv"
# The outcome in every second pre-period year (10 predictors). California is not inside the donors'
# hull in this space, so W(V) is unique and the nested V problem is well posed; with fewer, coarser
# predictors (1975, 1980, 1988, mean 1980-88) the donors match them exactly and V is not identified.
SPECIAL = [("PacksPerCapita", [year]) for year in range(1970, 1989, 2)]
PRE = list(range(1970, 1989))


def _load():
    import pandas as pd

    return pd.read_csv(DATA)


def task_impact_sc(df):
    import impact as im

    res = im.synth.synthetic_control(
        df, outcome="PacksPerCapita", unit="State", time="Year", treated_unit="California", treatment_time=1989,
        special_predictors=SPECIAL, v_method="nested",
    )
    pl = res.placebo()
    w = res.weights[res.weights > 1e-4].round(3).to_dict()
    return {"att": res.estimate, "pre_rmspe": res.diagnostics["pre_rmspe"], "p_value": pl.p_value, "weights": w}


def task_impact_sc_outcome_only(df):
    import impact as im

    res = im.synth.synthetic_control(df, outcome="PacksPerCapita", unit="State", time="Year", treated_unit="California", treatment_time=1989)
    pl = res.placebo()
    return {"att": res.estimate, "pre_rmspe": res.diagnostics["pre_rmspe"], "p_value": pl.p_value}


def task_pysyncon_sc(df):
    import numpy as np
    from pysyncon import Dataprep, Synth
    from pysyncon.utils import PlaceboTest

    states = sorted(df["State"].unique())
    controls = [s for s in states if s != "California"]
    dp = Dataprep(
        foo=df, predictors=[], predictors_op="mean", dependent="PacksPerCapita", unit_variable="State",
        time_variable="Year", treatment_identifier="California", controls_identifier=controls,
        time_predictors_prior=PRE, time_optimize_ssr=PRE,
        special_predictors=[(c, p, "mean") for c, p in SPECIAL],
    )
    synth = Synth()
    synth.fit(dataprep=dp, optim_method="BFGS", optim_initial="equal")
    placebo = PlaceboTest()
    placebo.fit(dataprep=dp, scm=Synth(), scm_options={"optim_method": "BFGS", "optim_initial": "equal"}, verbose=False)
    gaps = synth._gaps(Z0=dp.make_outcome_mats(time_period=range(1970, 2001))[0], Z1=dp.make_outcome_mats(time_period=range(1970, 2001))[1]) if hasattr(synth, "_gaps") else None
    Z0, Z1 = dp.make_outcome_mats(time_period=range(1970, 2001))
    gap = Z1 - Z0 @ synth.W
    pre = np.asarray(gap.index < 1989)
    w = {k: round(float(v), 3) for k, v in synth.weights().items() if v > 1e-4}
    return {"att": float(gap[~pre].mean()), "pre_rmspe": float(np.sqrt(np.mean(gap[pre] ** 2))), "weights": w}


def task_diffdiff_sc(df):
    import diff_diff

    model = diff_diff.SyntheticControl(v_method="nested")
    res = model.fit(
        df, outcome="PacksPerCapita", treatment="treated", unit="State", time="Year", post_periods=list(range(1989, 2001)),
        treated_unit="California", special_predictors=[(c, p, "mean") for c, p in SPECIAL],
    )
    res.in_space_placebo()
    out = {"att": float(res.att), "p_value": float(res.placebo_p_value)}
    try:
        w = res.get_weights_df()
        out["weights"] = {str(r.iloc[0]): round(float(r.iloc[1]), 3) for _, r in w.iterrows() if float(r.iloc[1]) > 1e-4}
    except Exception as exc:  # report what is available, not fail the benchmark
        out["weights"] = f"n/a ({exc})"
    return out


def task_impact_sdid(df):
    import impact as im

    res = im.synth.sdid(df, outcome="PacksPerCapita", unit="State", time="Year", treatment="treated", se_method="placebo", n_replications=200, seed=1)
    return {"att": res.estimate, "se": res.std_error}


def task_diffdiff_sdid(df):
    import diff_diff

    data = df.assign(ever=(df["State"] == "California").astype(int))
    model = diff_diff.SyntheticDiD(variance_method="placebo", n_bootstrap=200, seed=1)
    res = model.fit(data, outcome="PacksPerCapita", treatment="ever", unit="State", time="Year", post_periods=list(range(1989, 2001)))
    return {"att": float(res.att), "se": float(res.se)}


TASKS = {
    "impact synthetic_control nested + 38 placebos": ("task_impact_sc", False),
    "impact synthetic_control outcome-only + 38 placebos": ("task_impact_sc_outcome_only", False),
    "pysyncon 1.7 Synth (BFGS) + PlaceboTest": ("task_pysyncon_sc", True),
    "diff-diff 3.13 SyntheticControl nested + in_space_placebo": ("task_diffdiff_sc", True),
    "impact sdid + placebo SE (200)": ("task_impact_sdid", False),
    "diff-diff 3.13 SyntheticDiD + placebo SE (200)": ("task_diffdiff_sdid", True),
}


def _child(name: str) -> None:
    import warnings

    warnings.simplefilter("ignore")
    df = _load()
    # Import the package before the clock starts: the table compares estimation, not imports.
    import importlib

    package = "impact" if "impact" in name else ("pysyncon" if "pysyncon" in name else "diff_diff")
    importlib.import_module(package)
    if package == "impact":
        import impact.synth  # noqa: F401
    start, cpu_start = time.perf_counter(), _cpu()
    out = globals()[name](df)
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu_start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": peak_mb, "result": out}, default=str))


def _cpu() -> float:
    """CPU seconds of this process and its finished children (pysyncon's placebo pool)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    peers = "--peers" in sys.argv
    rows = []
    for label, (func, is_peer) in TASKS.items():
        if is_peer and not peers:
            continue
        proc = subprocess.run([sys.executable, __file__, "--child", func], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            rows.append((label, float("nan"), float("nan"), float("nan"), proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"))
            continue
        record = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append((label, record["seconds"], record["cpu"], record["peak_mb"], json.dumps(record["result"], default=str)))
    # Wall time depends on what else runs on the machine; CPU time is the fairer comparison there.
    print(f"{'task':62s} {'wall s':>8s} {'CPU s':>8s} {'peak MB':>8s}  result")
    for label, sec, cpu, mb, res in rows:
        print(f"{label:62s} {sec:8.2f} {cpu:8.2f} {mb:8.0f}  {res}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(sys.argv[2])
    else:
        main()
