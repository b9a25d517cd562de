"""Reference values from rddensity 3.0 (PyPI; Cattaneo, Jansson & Ma) for tests/rd/test_density.py.

Run from the repository root with rddensity installed (not a dependency of impact):
    pip install rddensity==3.0 && python tests/rd/reference/make_rddensity.py
Writes rddensity_3.0.json: per case the rddensity call, the left/right densities, the jackknife
standard error of the difference, its p-value and the bandwidths.
"""

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
from rddensity import rddensity

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def main() -> None:
    data = {
        "senate": (pd.read_csv(ROOT / "data" / "rdsenate.csv"), "margin", 0.0),
        "sim": (pd.read_csv(HERE / "rd_simulated.csv"), "x", 0.0),
        "sim_c03": (pd.read_csv(HERE / "rd_simulated.csv"), "x", 0.3),
        "sim_mass": (pd.read_csv(HERE / "rd_simulated.csv"), "score", 0.0),
        "grants": (pd.read_csv(ROOT / "data" / "innovation_grants.csv"), "score", 70.0),
    }
    variants = {"default": {}, "p1": {"p": 1}, "uniform": {"kernel": "uniform"},
                "epanechnikov": {"kernel": "epanechnikov"}, "each": {"bwselect": "each"},
                "diff": {"bwselect": "diff"}, "sum": {"bwselect": "sum"}, "manual": {"h": "manual"}}
    cases = {}
    for name, (df, column, cutoff) in data.items():
        x = df[column].dropna().to_numpy()
        for label, kw in variants.items():
            if kw.get("h") == "manual":
                kw = {"h": [10.0, 12.0] if column in ("margin", "score") and cutoff != 0 or column == "margin" else [0.5, 0.6]}
            with contextlib.redirect_stdout(io.StringIO()):
                r = rddensity(x, c=cutoff, **kw)
            cases[f"{name}/{label}"] = {
                "call": f"rddensity(X={column}, c={cutoff}, {', '.join(f'{k}={v!r}' for k, v in kw.items())})",
                "data": name, "running": column, "cutoff": cutoff, "args": kw,
                "density_left": float(r.hat["left"]), "density_right": float(r.hat["right"]),
                "std_error": float(r.sd_jk["diff"]), "p_value": float(r.test["p_jk"]),
                "bandwidths": [float(r.h["left"]), float(r.h["right"])],
                "n_effective": [int(r.n["eff_left"]), int(r.n["eff_right"])],
            }
    (HERE / "rddensity_3.0.json").write_text(json.dumps({"source": "rddensity 3.0 (PyPI)", "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
