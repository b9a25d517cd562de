"""im.rd.density_test against rddensity 3.0 (PyPI, Cattaneo, Jansson & Ma), and on simulated
manipulation. Reference: tests/rd/reference/rddensity_3.0.json (make_rddensity.py beside it stores
each call). Tolerance 1e-8 on densities, standard error, p-value and bandwidths (observed ~1e-11)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import DataError, SpecError

ROOT = Path(__file__).resolve().parents[2]
REF = Path(__file__).parent / "reference"
CASES = json.loads((REF / "rddensity_3.0.json").read_text())["cases"]


@pytest.fixture(scope="module")
def frames():
    sim = pd.read_csv(REF / "rd_simulated.csv")
    return {"senate": im.datasets.load("rdsenate"), "sim": sim, "sim_c03": sim, "sim_mass": sim,
            "grants": pd.read_csv(ROOT / "data" / "innovation_grants.csv")}


@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_rddensity(case, frames):
    ref = CASES[case]
    options = {("bandwidth" if k in ("bwselect", "h") else k): (tuple(v) if isinstance(v, list) else v)
               for k, v in ref["args"].items()}
    res = im.rd.density_test(frames[ref["data"]], running=ref["running"], cutoff=ref["cutoff"], **options)
    got = [res.density_left, res.density_right, res.std_error, res.p_value, *res.bandwidths]
    want = [ref["density_left"], ref["density_right"], ref["std_error"], ref["p_value"], *ref["bandwidths"]]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)
    assert [res.n_effective_left, res.n_effective_right] == ref["n_effective"]


def test_detects_manipulation_and_not_its_absence():
    # 4,000 scores, uniform density; "manipulated": 40% of those within 0.1 below the cutoff move just
    # above it. The test should reject then (density jumps from ~0.3 to ~0.7) and not without it.
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, 4000)
    clean = im.rd.density_test(pd.DataFrame({"x": x}), running="x")
    moved = (x > -0.1) & (x < 0) & (rng.random(x.size) < 0.4)
    shifted = np.where(moved, -x, x)
    dirty = im.rd.density_test(pd.DataFrame({"x": shifted}), running="x")
    assert clean.p_value > 0.05
    assert dirty.p_value < 0.001 and dirty.difference > 0


def test_density_validation():
    df = pd.DataFrame({"x": np.linspace(-1, 1, 200)})
    with pytest.raises(DataError, match="at least 23 observations"):
        im.rd.density_test(df.loc[df.x < 0.05], running="x")
    with pytest.raises(SpecError, match="p must be at least 1"):
        im.rd.density_test(df, running="x", p=0)
    with pytest.raises(DataError, match="strictly inside"):
        im.rd.density_test(df, running="x", cutoff=2)
