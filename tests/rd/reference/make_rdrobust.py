"""Reference values from rdrobust 2.1.1 (PyPI, Calonico, Cattaneo, Farrell & Titiunik) for tests/rd.

Run from the repository root with rdrobust installed (it is not a dependency of impact):
    pip install rdrobust==2.1.1 && python tests/rd/reference/make_rdrobust.py
Writes rdrobust_2.1.1.json beside this script, and rd_simulated.csv (the simulated data, written once
from a seeded generator so the tests read the very same numbers). Each case records the rdrobust
call as text, the three estimates and standard errors, and the four bandwidths.
"""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import rdrobust as rdr
from rdrobust import rdrobust

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
KERNELS = ("tri", "epa", "uni")
SELECTORS = ("mserd", "msetwo", "msesum", "msecomb1", "msecomb2", "cerrd", "certwo", "cersum", "cercomb1", "cercomb2")


def simulated() -> pd.DataFrame:
    path = HERE / "rd_simulated.csv"
    if path.exists():
        return pd.read_csv(path)
    rng = np.random.default_rng(20140601)
    n = 2000
    x = rng.uniform(-1, 1, n)
    above = (x >= 0).astype(float)
    takeup = (rng.random(n) < np.where(above == 1, 0.85, 0.15)).astype(float)
    z1 = rng.normal(size=n) + 0.5 * x
    z2 = rng.normal(size=n)
    y = 0.4 + 0.9 * x - 0.6 * x**2 + 0.3 * x**3 + 0.5 * takeup + 0.3 * z1 + rng.normal(0, 0.4, n)
    cluster = rng.integers(0, 60, n)
    score = np.round(x * 40) / 40  # a discrete running variable (mass points)
    frame = pd.DataFrame({"x": x, "y": y, "takeup": takeup, "z1": z1, "z2": z2, "cluster": cluster, "score": score})
    frame.round(10).to_csv(path, index=False)
    return pd.read_csv(path)


def run(df, call: str, *, y, x, **kw):
    args = {k: (df[v] if k in ("fuzzy", "cluster") else df[list(v)] if k == "covs" else v) for k, v in kw.items()}
    with contextlib.redirect_stdout(io.StringIO()):
        r = rdrobust(y=df[y], x=df[x], **args)
    return {
        "call": call,
        "args": {"y": y, "x": x, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}},
        "coef": r.coef.iloc[:, 0].tolist(),
        "se": r.se.iloc[:, 0].tolist(),
        "bws": [float(r.bws.loc["h", "left"]), float(r.bws.loc["h", "right"]),
                float(r.bws.loc["b", "left"]), float(r.bws.loc["b", "right"])],
        "n_h": [int(v) for v in r.N_h],
    }


def main() -> None:
    senate = pd.read_csv(ROOT / "data" / "rdsenate.csv").dropna(subset=["vote", "margin"])
    sim = simulated()
    cases = {}
    for name, df, y, x in (("senate", senate, "vote", "margin"), ("sim", sim, "y", "x")):
        for k in KERNELS:
            for s in SELECTORS:
                cases[f"{name}/{k}/{s}"] = run(df, f"rdrobust(y={y}, x={x}, kernel='{k}', bwselect='{s}')",
                                              y=y, x=x, kernel=k, bwselect=s)
    extra = {
        "fuzzy": dict(fuzzy="takeup"),
        "fuzzy_msetwo_uni": dict(fuzzy="takeup", bwselect="msetwo", kernel="uni"),
        "covs": dict(covs=("z1", "z2")),
        "covs_fuzzy": dict(covs=("z1", "z2"), fuzzy="takeup"),
        "cluster": dict(cluster="cluster"),
        "cluster_cerrd": dict(cluster="cluster", bwselect="cerrd"),
        "cluster_fuzzy": dict(cluster="cluster", fuzzy="takeup"),
        "cluster_manual": dict(cluster="cluster", h=0.4),
        "hc0": dict(vce="hc0"), "hc1": dict(vce="hc1"), "hc2": dict(vce="hc2"), "hc3": dict(vce="hc3"),
        "p2": dict(p=2), "p0": dict(p=0), "kink": dict(deriv=1), "kink_p1": dict(deriv=1, p=1),
        "manual": dict(h=0.3), "manual_two": dict(h=[0.3, 0.4], b=[0.5, 0.6]), "manual_rho": dict(h=0.3, rho=0.5),
        "cutoff": dict(c=0.2),
    }
    for key, kw in extra.items():
        cases[f"sim/{key}"] = run(sim, f"rdrobust(y=y, x=x, {', '.join(f'{k}={v!r}' for k, v in kw.items())})",
                                  y="y", x="x", **kw)
    for key, kw in {"mass": {}, "mass_off": dict(masspoints="off"), "mass_msetwo": dict(bwselect="msetwo")}.items():
        cases[f"sim/{key}"] = run(sim, f"rdrobust(y=y, x=score, {', '.join(f'{k}={v!r}' for k, v in kw.items())})",
                                  y="y", x="score", **kw)
    plots = {}
    for name, df, y, x in (("senate", senate, "vote", "margin"), ("sim", sim, "y", "x"), ("sim_mass", sim, "y", "score")):
        for binselect in ("esmv", "qsmv", "esmvpr", "qsmvpr"):
            with contextlib.redirect_stdout(io.StringIO()):
                r = rdr.rdplot(df[y], df[x], binselect=binselect, hide=True)
            plots[f"{name}/{binselect}"] = {
                "call": f"rdplot(y={y}, x={x}, binselect='{binselect}')", "y": y, "x": x, "bins": binselect,
                "J": [int(v) for v in r.J],
                "mean_bin": r.vars_bins["rdplot_mean_bin"].tolist(), "mean_y": r.vars_bins["rdplot_mean_y"].tolist(),
                "ci_l": r.vars_bins["rdplot_ci_l"].tolist(), "ci_r": r.vars_bins["rdplot_ci_r"].tolist(),
                "poly_x": r.vars_poly["rdplot_x"].tolist()[::37], "poly_y": r.vars_poly["rdplot_y"].tolist()[::37],
            }
    out = {"source": f"rdrobust {rdr.__version__ if hasattr(rdr, '__version__') else '2.1.1'} (PyPI)", "cases": cases, "rdplot": plots}
    (HERE / "rdrobust_2.1.1.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
