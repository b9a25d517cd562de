"""Reference values for vcov="CR1-fixest" and its ssc switches, from pyfixest (fixest's conventions).

Run from the repository root:  .venv/bin/python tests/did/reference/pyfixest_ssc.py
(needs ``pip install pyfixest``; writes pyfixest_ssc.json and firms_regions.csv next to this script).

Calls (pyfixest 0.60.0, whose get_ssc follows R fixest's ssc(), fixest issue #554):
  organ donations (bundled data, Treated = California from Quarter_Num 4):
    pf.feols("Rate ~ Treated | State + Quarter", data, vcov={"CRV1": "State"}, ssc=pf.ssc(...))
  firms in regions (simulated below, clusters coarser than the unit effect):
    pf.feols("y ~ d + x | firm + year", data, vcov={"CRV1": "region"}, ssc=pf.ssc(...))
for ssc() at its defaults (k_adj=True, k_fixef="nonnested", G_adj=True, G_df="min") and with each switch
changed: k_adj=False, k_fixef="none", k_fixef="full", G_adj=False.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyfixest as pf

import impact as im

HERE = Path(__file__).parent
SWITCHES = {
    "default": {},
    "adj_false": {"k_adj": False},
    "fixef_none": {"k_fixef": "none"},
    "fixef_full": {"k_fixef": "full"},
    "cluster_adj_false": {"G_adj": False},
}


def firms_regions() -> pd.DataFrame:
    rng = np.random.default_rng(554)
    regions, firms, years = 12, 4, 6
    firm = np.repeat(np.arange(regions * firms), years)
    region = firm // firms
    year = np.tile(np.arange(2015, 2015 + years), regions * firms)
    d = ((region < 3) & (year >= 2018)).astype(int)
    x = rng.normal(size=len(firm))
    y = 0.5 * d + 0.3 * x + rng.normal(size=regions)[region] + rng.normal(size=len(firm))
    return pd.DataFrame({"firm": firm, "region": region, "year": year, "d": d, "x": x, "y": y})


def main() -> None:
    od = im.datasets.load("organ_donations")
    od["Treated"] = ((od["State"] == "California") & (od["Quarter_Num"] >= 4)).astype(int)
    fr = firms_regions()
    fr.to_csv(HERE / "firms_regions.csv", index=False)
    cases = {
        "organ": (od, "Rate ~ Treated | State + Quarter", {"CRV1": "State"}, "Treated"),
        "firms_regions": (fr, "y ~ d + x | firm + year", {"CRV1": "region"}, "d"),
    }
    out = {"pyfixest_version": pf.__version__, "source": Path(__file__).read_text(), "results": {}}
    for name, (data, formula, vcov, term) in cases.items():
        out["results"][name] = {}
        for label, switches in SWITCHES.items():
            fit = pf.feols(formula, data=data, vcov=vcov, ssc=pf.ssc(**switches))
            out["results"][name][label] = {"call": f"pf.feols({formula!r}, vcov={vcov}, ssc=pf.ssc(**{switches}))",
                                           "estimate": float(fit.coef()[term]), "se": float(fit.se()[term])}
    (HERE / "pyfixest_ssc.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out["results"], indent=1))


if __name__ == "__main__":
    main()
