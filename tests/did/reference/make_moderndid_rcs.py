"""Reference values for drdid(panel=False) from moderndid 0.2.0 (PyPI), whose DiD estimators equal R
did/DRDID to 5e-5 (its documentation). Run from the repository root with moderndid installed:
    pip install moderndid==0.2.0 && python tests/did/reference/make_moderndid_rcs.py
Writes moderndid_rcs.json: per case the call, ATT, standard error (moderndid's convention
sd(psi) sqrt(n-1)/n) and the influence function's first 50 values and its sum of squares.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from moderndid.drdid.estimators.drdid_imp_local_rc import drdid_imp_local_rc
from moderndid.drdid.estimators.drdid_imp_rc import drdid_imp_rc
from moderndid.drdid.estimators.drdid_rc import drdid_rc
from moderndid.drdid.estimators.reg_did_rc import reg_did_rc
from moderndid.drdid.estimators.std_ipw_did_rc import std_ipw_did_rc

ROOT = Path(__file__).resolve().parents[3]
ESTIMATORS = {"imp": drdid_imp_rc, "trad": drdid_rc, "imp_local": drdid_imp_local_rc, "reg": reg_did_rc,
              "std_ipw": std_ipw_did_rc}


def samples():
    nsw = pd.read_csv(ROOT / "data" / "nsw_long.csv")
    nsw = nsw[(nsw["treated"] == 0) | (nsw["sample"] == 2)]
    yield "nsw", nsw, "re", "year", "experimental", ["age", "educ", "black", "married", "nodegree", "hisp", "re74"]
    mpdta = pd.read_csv(ROOT / "data" / "mpdta.csv")
    two = mpdta[mpdta["year"].isin([2006, 2007]) & mpdta["first.treat"].isin([0, 2007])].copy()
    two["group2007"] = (two["first.treat"] == 2007).astype(int)
    # repeated cross-sections: keep the 2006 rows of counties in the lower half of their group's ids and
    # the 2007 rows of the upper half, so no county appears twice
    rank = two.groupby("first.treat")["countyreal"].rank(method="dense", pct=True)
    two = two[(two["year"] == 2006) == (rank <= 0.5)]
    yield "mpdta", two, "lemp", "year", "group2007", ["lpop"]


def main() -> None:
    cases = {}
    for name, df, y, t, d, covs in samples():
        yy = df[y].to_numpy(float)
        post = (df[t] == df[t].max()).to_numpy(float)
        dd = df[d].to_numpy(float)
        X = np.column_stack([np.ones(len(df)), df[covs].to_numpy(float)])
        for method, f in ESTIMATORS.items():
            r = f(yy, post, dd, X, influence_func=True)
            psi = np.asarray(r.att_inf_func)
            cases[f"{name}/{method}"] = {
                "call": f"{f.__name__}(y={y}, post={t}=={df[t].max()}, d={d}, covariates=1+{'+'.join(covs)})",
                "att": float(r.att), "se": float(r.se), "n": int(len(df)),
                "influence_head": psi[:50].tolist(), "influence_sumsq": float(np.sum(psi**2)),
            }
    out = {"source": "moderndid 0.2.0 (PyPI)", "cases": cases}
    (Path(__file__).parent / "moderndid_rcs.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
