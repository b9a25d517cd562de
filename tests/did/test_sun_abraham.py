"""Tests of impact.did.sun_abraham."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import DataError, SampleWarning, SpecError


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def simulate(seed=1, n_units=400, n_periods=10, noise=0.2, never=True):
    """Cohorts 4, 6, 8 (+ never treated) with cohort-specific dynamic effects; ``tau`` is the truth."""
    rng = np.random.default_rng(seed)
    cohorts = np.array([4, 6, 8, 0] if never else [4, 6, 8])
    g = cohorts[rng.integers(0, len(cohorts), n_units)]
    slope = {4: 0.30, 6: 0.15, 8: 0.05, 0: 0.0}
    unit = np.repeat(np.arange(n_units), n_periods)
    t = np.tile(np.arange(1, n_periods + 1), n_units)
    gi = np.repeat(g, n_periods)
    e = t - gi
    treated = (gi > 0) & (e >= 0)
    tau = np.where(treated, np.array([slope[v] for v in gi]) * (e + 1) + 0.5 * (gi == 4), 0.0)
    y = rng.normal(0, 1, n_units)[unit] + np.sin(t / 2.0) + tau + rng.normal(0, noise, len(t))
    return pd.DataFrame({"unit": unit, "time": t, "cohort": gi, "y": y, "tau": tau, "D": treated.astype(int)})


@pytest.fixture(scope="module")
def mpdta():
    return im.datasets.load("mpdta")


def test_mpdta_matches_published_callaway_santanna_post_periods(mpdta):
    """With never-treated controls, no covariates and a balanced panel, SA's post-period effects equal the
    Callaway-Sant'Anna dynamic effects (same 2x2 comparisons with base period g-1) and SA's ATT equals CS's
    simple aggregation (weights = group sizes). Source: R did README (PROVENANCE.md): e=0..3 -0.0199,
    -0.0510, -0.1373, -0.1008; simple ATT -0.0400. Tolerance 5e-5 (published to 4 decimals)."""
    res = quiet(im.did.sun_abraham, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    est = res.tidy().set_index("term")["estimate"]
    np.testing.assert_allclose(est[["e=0", "e=1", "e=2", "e=3"]], [-0.0199, -0.0510, -0.1373, -0.1008], atol=5e-5)
    assert res.estimate == pytest.approx(-0.0400, abs=5e-5)
    assert res.diagnostics["pretrend_test"]["df_num"] == 3


def test_cohort_effects_match_pyfixest_saturated_event_study(mpdta):
    """pyfixest 0.60.0: pf.SaturatedEventStudy(mpdta renamed first.treat->g, yname="lemp", idname="countyreal",
    tname="year", gname="g", cluster="countyreal").estimate(); tidy() cohort x rel_time coefficients (CRV1,
    fixest small-sample factor). Order: (2007,-4), (2006,-3), (2007,-3), (2006,-2), (2007,-2), (2004,0),
    (2006,0), (2007,0), (2004,1), (2006,1), (2004,2), (2004,3)."""
    est = [0.0033063567, -0.0037692937, 0.0338130123, 0.0027508188, 0.0310871194, -0.0105032462, -0.004594607,
           -0.0260544107, -0.0704231581, -0.0412244715, -0.1372587389, -0.1008113631]
    se = [0.0245550955, 0.0314743367, 0.0212183709, 0.0196411267, 0.0179529805, 0.0233491897, 0.0178301495,
          0.0167257456, 0.0311155677, 0.0203145774, 0.036589476, 0.0345042719]
    res = quiet(im.did.sun_abraham, mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat",
                vcov="CR1-fixest")
    cells = pd.DataFrame(res.diagnostics["cohort_effects"])
    np.testing.assert_allclose(cells["estimate"], est, atol=1e-9)
    # pyfixest counts 5 period effects, impact 4 identified ones: relative difference about 2e-4
    np.testing.assert_allclose(cells["std_error"], se, rtol=5e-4)
    # interaction weights are cohort shares at each event time
    w0 = cells.loc[cells["event_time"] == 0, "weight_in_event_time"].to_numpy()
    np.testing.assert_allclose(w0, np.array([20, 40, 131]) / 191)


def test_simulation_recovers_truth_where_twfe_fails():
    d = simulate(seed=1)
    res = quiet(im.did.sun_abraham, d, outcome="y", unit="unit", time="time", cohort="cohort")
    tr = d.loc[d["D"] == 1]
    truth = tr.groupby(tr["time"] - tr["cohort"])["tau"].mean()
    tidy = res.tidy().set_index("term")
    for k, value in truth.items():
        row = tidy.loc[f"e={k}"]
        assert abs(row["estimate"] - value) < 4 * row["std_error"], k
    assert abs(res.estimate - tr["tau"].mean()) < 4 * res.std_error
    # true leads are zero: no spurious pre-trend, unlike the dynamic TWFE (see test_event_study)
    assert res.diagnostics["pretrend_test"]["p_value"] > 0.001
    twfe = quiet(im.did.bacon, d, outcome="y", unit="unit", time="time", treatment="D")
    assert abs(twfe.estimate - tr["tau"].mean()) > 0.3  # static TWFE bias (truth 0.92, TWFE 0.44)


def test_last_treated_cohort_as_control():
    d = simulate(seed=5, never=False)
    with pytest.raises(DataError, match="control='last'"):
        quiet(im.did.sun_abraham, d, outcome="y", unit="unit", time="time", cohort="cohort")
    res = quiet(im.did.sun_abraham, d, outcome="y", unit="unit", time="time", cohort="cohort", control="last")
    assert res.n_obs == int((d["time"] < 8).sum())
    assert res.sample_flow[-1].step == "last-treated cohort as control"
    tr = d.loc[(d["D"] == 1) & (d["time"] < 8) & (d["cohort"] < 8)]
    truth = tr.groupby(tr["time"] - tr["cohort"])["tau"].mean()
    tidy = res.tidy().set_index("term")
    for k, value in truth.items():
        assert abs(tidy.loc[f"e={k}", "estimate"] - value) < 4 * tidy.loc[f"e={k}", "std_error"]


def test_always_treated_units_dropped_and_reported(mpdta):
    d = mpdta.copy()
    d.loc[d["countyreal"] < 8100, "first.treat"] = 2003
    with pytest.warns(SampleWarning, match="treated from the first period"):
        res = im.did.sun_abraham(d, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    n_first = d.loc[d["countyreal"] < 8100, "countyreal"].nunique()
    assert res.n_units == 500 - n_first
    assert res.sample_flow[-1].step == "always-treated units"


def test_bad_options(mpdta):
    with pytest.raises(SpecError, match="control='none'"):
        im.did.sun_abraham(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", control="none")
    with pytest.raises(SpecError, match="reference"):
        im.did.sun_abraham(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", reference=1)
    bad = mpdta.copy()
    bad.loc[bad.index[3], "first.treat"] = 2004
    with pytest.raises(DataError, match="constant within"):
        im.did.sun_abraham(bad, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
