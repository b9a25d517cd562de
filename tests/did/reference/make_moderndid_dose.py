"""Second reference for im.did.dose_response: moderndid 0.2.0 (PyPI) cont_did, a port of R contdid.

    pip install moderndid==0.2.0 "polars<2" && python tests/did/reference/make_moderndid_dose.py

(moderndid 0.2.0 fails with polars 2: ``'is_in' cannot check for Float64 values in List(Int64)``.)
On the data of make_diffdiff_dose.py, cont_did(data, yname="outcome", tname="period", idname="unit",
gname="first_treat", dname="dose", control_group=..., dvals=<diff-diff's grid>, random_state=1).
Only point estimates are kept: moderndid's standard errors are multiplier-bootstrap SEs of a
differently scaled influence function (overall ATT SE 0.105 on dose_single.csv where diff-diff and
the brute-force two-sample formula give 0.2197); impact follows diff-diff there.
"""

import json
import warnings
from pathlib import Path

import moderndid
import numpy as np
import pandas as pd

HERE = Path(__file__).parent
warnings.simplefilter("ignore")
grids = json.loads((HERE / "diffdiff_dose.json").read_text())["cases"]
CASES = {"single_default": ("dose_single.csv", "nevertreated"),
         "staggered_default": ("dose_staggered.csv", "nevertreated"),
         "staggered_notyet": ("dose_staggered.csv", "notyettreated")}
out = {"source": f"moderndid {moderndid.__version__}", "cases": {}}
for name, (path, control) in CASES.items():
    data = pd.read_csv(HERE / path).astype({"period": float, "first_treat": float})
    res = moderndid.cont_did(data, yname="outcome", tname="period", idname="unit", gname="first_treat",
                             dname="dose", control_group=control, dvals=np.array(grids[name]["dose_grid"]),
                             random_state=1)
    out["cases"][name] = {
        "data": path, "control_group": control,
        "overall_att": float(res.overall_att), "overall_acrt": float(res.overall_acrt),
        "dose_grid": grids[name]["dose_grid"],
        "att_d": np.asarray(res.att_d, dtype=float).tolist(), "acrt_d": np.asarray(res.acrt_d, dtype=float).tolist(),
        "overall_att_se_bootstrap": float(res.overall_att_se),
    }
(HERE / "moderndid_dose.json").write_text(json.dumps(out, indent=1))
