"""Reference values for im.did.ddd_gt from two independent ports of Ortiz-Villavicencio & Sant'Anna (2025).

    pip install moderndid==0.2.0 diff-diff==3.13.0
    python tests/did/reference/make_ddd_gt_peers.py

Data: the authors' simulated staggered DDD design as shipped by moderndid 0.2.0
(``moderndid.didtriple.dgp.gen_dgp_mult_periods(n=1000, dgp_type=1, random_state=20250)``: 3 periods,
enabling cohorts 2 and 3 and never enabled, partition 0/1, covariates cov1..cov4), written to
ddd_gt_data.csv so that the test needs neither peer. Both peers are then run on the CSV as read back.

Writes ddd_gt_peers.json:
- "moderndid": ATT(g, t) and standard errors from ``moderndid.ddd(data, yname="y", tname="time",
  idname="id", gname="group", pname="partition", xformla=<None | "~cov1+cov2+cov3+cov4">,
  control_group=<"nevertreated" | "notyettreated">, base_period="universal", est_method="dr")``
  (moderndid's didtriple ports the authors' R package triplediff);
- "diff_diff": ATT(g, t), the overall ATT and the event-study and group aggregations from
  ``diff_diff.StaggeredTripleDifference(estimation_method="dr", control_group=<...>,
  base_period="varying").fit(data, outcome="y", unit="id", time="time", first_treat="group",
  eligibility="partition", covariates=<None | [...]>, aggregate="all")``.
"""

import json
import warnings
from pathlib import Path

import diff_diff
import moderndid
import numpy as np
import pandas as pd
import polars as pl
from moderndid.didtriple.dgp import gen_dgp_mult_periods

warnings.simplefilter("ignore")
HERE = Path(__file__).parent
COVS = ["cov1", "cov2", "cov3", "cov4"]

raw = gen_dgp_mult_periods(n=1000, dgp_type=1, random_state=20250)["data"].to_pandas()
raw[["id", "group", "partition", "time", "y", *COVS]].to_csv(HERE / "ddd_gt_data.csv", index=False, float_format="%.17g")
data = pd.read_csv(HERE / "ddd_gt_data.csv")

out = {"source": {"moderndid": moderndid.__version__, "diff_diff": diff_diff.__version__},
       "dgp": "moderndid.didtriple.dgp.gen_dgp_mult_periods(n=1000, dgp_type=1, random_state=20250)",
       "moderndid": {}, "diff_diff": {}}
for control, md_name, dd_name in (("never", "nevertreated", "nevertreated"), ("notyet", "notyettreated", "notyettreated")):
    for label, covs in (("none", None), ("covariates", COVS)):
        key = f"{control}/{label}"
        m = moderndid.ddd(pl.from_pandas(data), yname="y", tname="time", idname="id", gname="group", pname="partition",
                          xformla=None if covs is None else "~" + "+".join(covs), control_group=md_name,
                          base_period="universal", est_method="dr")
        out["moderndid"][key] = {"group": np.asarray(m.groups, float).tolist(), "time": np.asarray(m.times, float).tolist(),
                                 "att": np.asarray(m.att, float).tolist(),
                                 "se": [None if not np.isfinite(v) else float(v) for v in m.se]}
        est = diff_diff.StaggeredTripleDifference(estimation_method="dr", control_group=dd_name, base_period="varying")
        r = est.fit(data, outcome="y", unit="id", time="time", first_treat="group", eligibility="partition",
                    covariates=covs, aggregate="all")
        gt = sorted(r.group_time_effects.items())
        out["diff_diff"][key] = {
            "group": [float(g) for (g, t), _ in gt], "time": [float(t) for (g, t), _ in gt],
            "att": [float(v["effect"]) for _, v in gt], "se": [float(v["se"]) for _, v in gt],
            "overall_att": float(r.overall_att), "overall_se": float(r.overall_se),
            "event_study": {str(int(e)): [float(v["effect"]), float(v["se"])] for e, v in sorted(r.event_study_effects.items())
                            if np.isfinite(v["se"])},
            "group_effects": {str(int(g)): [float(v["effect"]), float(v["se"])] for g, v in sorted(r.group_effects.items())},
        }
(HERE / "ddd_gt_peers.json").write_text(json.dumps(out, indent=1))
print(json.dumps(out["diff_diff"]["never/covariates"], indent=1)[:1500])
