"""im.rd.rdd against rdrobust 2.1.1 (PyPI), on its Senate data and on simulated data.

Reference values: tests/rd/reference/rdrobust_2.1.1.json, written by make_rdrobust.py beside it
(each case stores the exact rdrobust call). Tolerance 1e-6 absolute on every estimate, standard
error and bandwidth (observed agreement is about 1e-11).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact as im

REF = Path(__file__).parent / "reference"
CASES = json.loads((REF / "rdrobust_2.1.1.json").read_text())["cases"]
KERNEL = {"tri": "triangular", "epa": "epanechnikov", "uni": "uniform"}
TOL = 1e-6


@pytest.fixture(scope="module")
def data():
    senate = im.datasets.load("rdsenate")
    return {"senate": senate, "sim": pd.read_csv(REF / "rd_simulated.csv")}


def _options(args: dict) -> dict:
    """Translate an rdrobust call into rdd's keywords."""
    rename = {"fuzzy": "treatment", "covs": "covariates", "bwselect": "bandwidth", "h": "bandwidth",
              "b": "bias_bandwidth", "c": "cutoff"}
    out = {}
    for key, value in args.items():
        if key in ("y", "x"):
            continue
        if key == "kernel":
            value = KERNEL[value]
        if key in ("h", "b") and isinstance(value, list):
            value = tuple(value)
        out[rename.get(key, key)] = value
    return out


@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_rdrobust(case, data):
    ref = CASES[case]
    df = data[case.split("/")[0]]
    res = im.rd.rdd(df, outcome=ref["args"]["y"], running=ref["args"]["x"], **_options(ref["args"]))
    tidy = res.tidy().set_index("term")
    np.testing.assert_allclose(tidy["estimate"].to_numpy(), ref["coef"], rtol=0, atol=TOL)
    np.testing.assert_allclose(tidy["std_error"].to_numpy(), ref["se"], rtol=0, atol=TOL)
    b = res.bandwidths
    np.testing.assert_allclose([b["h_left"], b["h_right"], b["b_left"], b["b_right"]], ref["bws"], rtol=0, atol=TOL)
    assert [res.diagnostics["n_h_left"], res.diagnostics["n_h_right"]] == ref["n_h"]


def test_headline_is_conventional_estimate_with_robust_interval(data):
    res = im.rd.rdd(data["sim"], outcome="y", running="x")
    tidy = res.tidy().set_index("term")
    assert list(tidy.index) == ["conventional", "bias-corrected", "robust"]
    assert res.estimate == tidy.loc["conventional", "estimate"]
    assert res.conf_int() == (tidy.loc["robust", "conf_low"], tidy.loc["robust", "conf_high"])
    assert res.p_value == tidy.loc["robust", "p_value"]
    assert set(tidy["inference"]) and tidy.loc["robust", "inference"].startswith("robust bias-corrected")
    d = res.to_dict()
    assert d["headline"]["estimate"] == res.estimate and d["headline"]["conf_low"] == res.conf_int()[0]
