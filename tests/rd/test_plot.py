"""im.rd.rdplot against rdrobust 2.1.1's rdplot (PyPI): bin counts exactly, bin means, midpoints,
intervals and the global quartic fit to 1e-8 (reference: tests/rd/reference/rdrobust_2.1.1.json,
written by make_rdrobust.py with the rdplot call stored per case)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import DataError, SpecError

REF = Path(__file__).parent / "reference"
PLOTS = json.loads((REF / "rdrobust_2.1.1.json").read_text())["rdplot"]


@pytest.fixture(scope="module")
def data():
    sim = pd.read_csv(REF / "rd_simulated.csv")
    return {"senate": im.datasets.load("rdsenate"), "sim": sim, "sim_mass": sim}


@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
@pytest.mark.parametrize("case", sorted(PLOTS))
def test_matches_rdplot(case, data):
    ref = PLOTS[case]
    res = im.rd.rdplot(data[case.split("/")[0]], outcome=ref["y"], running=ref["x"], bins=ref["bins"])
    assert list(res.n_bins) == ref["J"]
    np.testing.assert_allclose(res.bins["y_mean"], ref["mean_y"], atol=1e-8)
    np.testing.assert_allclose(res.bins["x_mid"], ref["mean_bin"], atol=1e-8)
    np.testing.assert_allclose(res.bins["conf_low"], ref["ci_l"], atol=1e-8)
    np.testing.assert_allclose(res.bins["conf_high"], ref["ci_r"], atol=1e-8)
    # rdplot's polynomial path: 500 grid points below then 500 above (every 37th stored)
    fitted = res.fit["fitted"].to_numpy()[::37]
    np.testing.assert_allclose(fitted, ref["poly_y"], atol=1e-6)


def test_rdplot_draws_and_validates(data):
    res = im.rd.rdplot(data["sim"], outcome="y", running="x")
    ax = res.plot()
    assert ax.get_xlabel() == "x"
    with pytest.raises(SpecError, match="bins='es' is not a valid option"):
        im.rd.rdplot(data["sim"], outcome="y", running="x", bins="es")
    with pytest.raises(DataError, match="strictly inside"):
        im.rd.rdplot(data["sim"], outcome="y", running="x", cutoff=3)
