"""Second peer for att_gt(panel=False) and att_gt(unbalanced="keep"): csdid 0.4.3 (PyPI, a port of R did).
Run from the repository root:
    pip install csdid==0.4.3 && python tests/did/reference/make_csdid_att_gt_rcs.py
Writes csdid_att_gt_rcs.json. Calls: ``ATTgt(yname, tname, idname, gname, data, xformla, panel,
allow_unbalanced_panel, control_group="nevertreated").fit(est_method="dr", bstrap=False)`` and
``.aggte(typec=kind, bstrap=False)``; for repeated cross-sections idname is a row number (csdid needs one).
The data are those of make_moderndid_att_gt_rcs.py (mpdta, mpdta with the same 10% of rows removed,
sim_unbalanced.csv), used as they are: csdid lines up its unit-level cohorts with its influence functions.
"""

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from csdid.att_gt import ATTgt

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


def record(data, **call):
    model = ATTgt(data=data, control_group="nevertreated", **call)
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        model.fit(est_method="dr", bstrap=False)
        out.update(att_gt=np.asarray(model.results["att"], float).tolist(),
                   se_gt=np.asarray(model.results["se"], float).tolist())
        for kind in ("simple", "dynamic", "group", "calendar"):
            model.aggte(typec=kind, bstrap=False)
            agg = model.atte
            out[kind] = {"att": float(agg["overall_att"]), "se": float(agg["overall_se"])}
            if kind != "simple":
                out[kind].update(atts=np.asarray(agg["att_egt"], float).tolist(),
                                 ses=np.asarray(agg["se_egt"], float).tolist())
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    reference = json.loads((HERE / "moderndid_att_gt_rcs.json").read_text())
    mpdta = pd.read_csv(ROOT / "data" / "mpdta.csv")
    short = mpdta.drop(index=reference["mpdta_short_dropped_rows"]).reset_index(drop=True)
    sim = pd.read_csv(HERE / "sim_unbalanced.csv")
    common = {"yname": "lemp", "tname": "year", "gname": "first.treat"}
    cases = {}
    for covs in ([], ["lpop"]):
        xformla = "~" + "+".join(covs) if covs else None
        name = "+".join(covs) or "none"
        cases[f"mpdta_rc/dr/{name}"] = {
            "data": "mpdta", "panel": False, "method": "dr", "covariates": covs,
            **record(mpdta.assign(row=np.arange(len(mpdta))), **common, idname="row", xformla=xformla, panel=False)}
        cases[f"mpdta_keep/dr/{name}"] = {
            "data": "mpdta_short", "panel": True, "method": "dr", "covariates": covs,
            **record(short, **common, idname="countyreal", xformla=xformla, panel=True, allow_unbalanced_panel=True)}
    for covs in ([], ["x"]):
        name = "+".join(covs) or "none"
        cases[f"sim_keep/dr/{name}"] = {
            "data": "sim_unbalanced", "panel": True, "method": "dr", "covariates": covs,
            **record(sim, yname="y", tname="t", gname="g", idname="id", xformla="~" + "+".join(covs) if covs else None,
                     panel=True, allow_unbalanced_panel=True)}
    out = {"source": "csdid 0.4.3 (PyPI), ATTgt.fit(est_method='dr', bstrap=False) + aggte(bstrap=False)", "cases": cases}
    (HERE / "csdid_att_gt_rcs.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
