"""Reference values for att_gt(panel=False) and att_gt(unbalanced="keep") from moderndid 0.2.0 (PyPI),
whose att_gt/aggte reproduce R did to 5e-5 (its documentation). Run from the repository root:
    pip install moderndid==0.2.0 && python tests/did/reference/make_moderndid_att_gt_rcs.py
Writes moderndid_att_gt_rcs.json (and sim_unbalanced.csv, the simulated unbalanced panel it uses).

Calls: ``moderndid.att_gt(data, yname, tname, gname, idname=None, panel=False, est_method, xformla,
control_group, base_period, anticipation, weightsname)`` (R: ``did::att_gt(..., panel = FALSE)``) and, for
unbalanced panels, ``idname=id, panel=False, allow_unbalanced_panel=True`` (R did's
``allow_unbalanced_panel = TRUE``); then ``moderndid.aggte(result, type=kind)`` for the four kinds.
Stored per case: ATT(g, t) and analytic SEs, and per aggregation the overall ATT/SE and per-row ATT/SE.

moderndid 0.2.0 lists an unbalanced panel's units in two different orders: the rows of the influence
functions by sorted id, the unit cohorts used for the aggregation weights' influence ("wif") by first
appearance (first period observed, cohort, id). Where the two differ its aggregated SEs mix units up
(off by 1e-4 on mpdta). The unbalanced panels are therefore given ids in the second order before the
call (:func:`aligned_ids`); estimates do not depend on id labels, so impact's tests use the data as is.

With sampling weights and panel=False, moderndid 0.2.0's att_gt leaves ``weights_ind`` empty (it looks
for the user's weight column among per-unit columns that hold only the normalised "weights"), so aggte
computes the cohort shares unweighted; R did's compute.aggte weights them (``weights.ind``). The weighted
case passes moderndid's own normalised weights, in its internal row order, to aggte
(:func:`with_unit_weights`), which is R did's computation.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from moderndid import aggte, att_gt

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
KINDS = ("simple", "dynamic", "group", "calendar")


def aligned_ids(df, unit, time, cohort):
    first = df.groupby(unit)[time].transform("min")
    key = pd.DataFrame({"f": first, "g": df[cohort].replace(0, np.inf), "u": df[unit]})
    order = key.drop_duplicates("u").sort_values(["f", "g", "u"])["u"].to_numpy()
    return df.assign(**{unit: pd.Series(np.arange(len(order)), index=order).loc[df[unit]].to_numpy()})


def with_unit_weights(result, data, **call):
    """The att_gt result with moderndid's normalised sampling weights as ``weights_ind`` (see docstring)."""
    from moderndid.core.preprocess import (BasePeriod, ControlGroup, DIDConfig, EstimationMethod,
                                           PreprocessDataBuilder)

    config = DIDConfig(yname=call["yname"], tname=call["tname"], idname=None, gname=call["gname"],
                       xformla=call["xformla"], panel=False, allow_unbalanced_panel=False,
                       control_group=ControlGroup("nevertreated"), anticipation=0, weightsname=call["weightsname"],
                       alp=0.05, boot=False, cband=False, biters=1000, clustervars=[],
                       est_method=EstimationMethod(call["est_method"]), base_period=BasePeriod("varying"))
    prepared = PreprocessDataBuilder().with_data(data).with_config(config).validate().transform().build()
    groups = prepared.data[call["gname"]].to_numpy()
    assert np.array_equal(np.asarray(result.G, float), groups.astype(float))  # same row order as result.G
    return result._replace(weights_ind=prepared.data["weights"].to_numpy())


def simulated_unbalanced(seed=20261129):
    """400 units, periods 1..6, cohorts 0 (never), 3, 4, 5; effect 1 + 0.5 e in event time e >= 0;
    a time-invariant covariate shifts trends; 15% of rows are missing at random."""
    rng = np.random.default_rng(seed)
    n, T = 400, 6
    cohort = rng.choice([0, 3, 4, 5], size=n, p=[0.4, 0.2, 0.2, 0.2])
    x = rng.normal(size=n) + 0.3 * (cohort > 0)
    unit_effect = rng.normal(size=n)
    rows = []
    for t in range(1, T + 1):
        e = t - cohort
        effect = np.where((cohort > 0) & (e >= 0), 1.0 + 0.5 * e, 0.0)
        y = unit_effect + 0.2 * t + 0.3 * x * t + effect + rng.normal(size=n)
        rows.append(pd.DataFrame({"id": np.arange(n), "t": t, "g": cohort, "x": x.round(6), "y": y.round(6)}))
    df = pd.concat(rows).sort_values(["id", "t"]).reset_index(drop=True)
    return df.loc[rng.random(len(df)) > 0.15].reset_index(drop=True)


def record(result):
    out = {"att_gt": np.asarray(result.att_gt, float).tolist(), "se_gt": np.asarray(result.se_gt, float).tolist(),
           "groups": np.asarray(result.groups, float).tolist(), "times": np.asarray(result.times, float).tolist()}
    for kind in KINDS:
        a = aggte(result, type=kind)
        out[kind] = {"att": float(a.overall_att), "se": float(a.overall_se)}
        if kind != "simple":
            out[kind].update(labels=np.asarray(a.event_times, float).tolist(),
                             atts=np.asarray(a.att_by_event, float).tolist(),
                             ses=np.asarray(a.se_by_event, float).tolist())
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    cases = {}
    mpdta = pd.read_csv(ROOT / "data" / "mpdta.csv")
    mpdta["w"] = 1.0 + (mpdta["countyreal"] % 4) / 3.0
    rc = {"yname": "lemp", "tname": "year", "gname": "first.treat", "idname": None, "panel": False}
    for method in ("dr", "ipw", "reg"):
        for covs in ([], ["lpop"]):
            cases[f"mpdta_rc/{method}/{'+'.join(covs) or 'none'}"] = {
                "data": "mpdta", "panel": False, "method": method, "covariates": covs,
                **record(att_gt(mpdta, **rc, est_method=method, xformla="~" + ("+".join(covs) or "1")))}
    variants = {
        "notyet": ({"control_group": "notyettreated"}, {"control_group": "notyet"}),
        "universal": ({"base_period": "universal"}, {"base_period": "universal"}),
        "anticipation1": ({"anticipation": 1}, {"anticipation": 1}),
        "weights": ({"weightsname": "w"}, {"weights": "w"}),
    }
    for name, (theirs, ours) in variants.items():
        result = att_gt(mpdta, **rc, est_method="dr", xformla="~lpop", **theirs)
        if name == "weights":
            result = with_unit_weights(result, mpdta, **rc, est_method="dr", xformla="~lpop", **theirs)
        cases[f"mpdta_rc/dr/lpop/{name}"] = {"data": "mpdta", "panel": False, "method": "dr", "covariates": ["lpop"],
                                             "options": ours, **record(result)}

    nsw = pd.read_csv(ROOT / "data" / "nsw_long.csv")
    nsw = nsw[(nsw["treated"] == 0) | (nsw["sample"] == 2)].copy()
    nsw["cohort"] = 1978 * nsw["experimental"]
    nsw_covs = ["age", "educ", "black", "married", "nodegree", "hisp", "re74"]
    for method in ("dr", "ipw", "reg"):
        cases[f"nsw_rc/{method}"] = {
            "data": "nsw", "panel": False, "method": method, "covariates": nsw_covs,
            **record(att_gt(nsw, yname="re", tname="year", gname="cohort", idname=None, panel=False, est_method=method,
                            xformla="~" + "+".join(nsw_covs)))}

    rng = np.random.default_rng(2026)
    dropped = np.flatnonzero(rng.random(len(mpdta)) <= 0.1)
    short = aligned_ids(mpdta.drop(index=dropped).reset_index(drop=True), "countyreal", "year", "first.treat")
    keep = {"yname": "lemp", "tname": "year", "gname": "first.treat", "idname": "countyreal", "panel": False,
            "allow_unbalanced_panel": True}
    for method in ("dr", "ipw", "reg"):
        for covs in ([], ["lpop"]):
            cases[f"mpdta_keep/{method}/{'+'.join(covs) or 'none'}"] = {
                "data": "mpdta_short", "panel": True, "method": method, "covariates": covs,
                **record(att_gt(short, **keep, est_method=method, xformla="~" + ("+".join(covs) or "1")))}
    cases["mpdta_keep/dr/lpop/notyet"] = {
        "data": "mpdta_short", "panel": True, "method": "dr", "covariates": ["lpop"], "options": {"control_group": "notyet"},
        **record(att_gt(short, **keep, est_method="dr", xformla="~lpop", control_group="notyettreated"))}

    sim = simulated_unbalanced()
    sim.to_csv(HERE / "sim_unbalanced.csv", index=False)
    sim_aligned = aligned_ids(sim, "id", "t", "g")
    for method in ("dr", "reg"):
        for covs in ([], ["x"]):
            cases[f"sim_keep/{method}/{'+'.join(covs) or 'none'}"] = {
                "data": "sim_unbalanced", "panel": True, "method": method, "covariates": covs,
                **record(att_gt(sim_aligned, yname="y", tname="t", gname="g", idname="id", panel=False,
                                allow_unbalanced_panel=True, est_method=method, xformla="~" + ("+".join(covs) or "1")))}
    out = {"source": "moderndid 0.2.0 (PyPI), att_gt + aggte; see the docstring of make_moderndid_att_gt_rcs.py",
           "mpdta_weights": "w = 1 + (countyreal % 4) / 3",
           "mpdta_short_dropped_rows": dropped.tolist(), "cases": cases}
    (HERE / "moderndid_att_gt_rcs.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
