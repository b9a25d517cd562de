"""pretrend_test on synthetic control and synthetic DiD: in-time placebos with each design's own test.

Neither design has event-time leads, so issue 10's "pretrend_test on each of them" is an in-time
placebo (Abadie, Diamond & Hainmueller 2015): refit on the periods before the (earliest) start with
a pretend start, with the design's default randomisation test. Only untreated periods enter, so the
test is exact under the sharp null of no pre-trend whatever the effects after the start: the checks
below change those effects and require the test not to move at all.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import impact as im
from impact.errors import DataError

from .conftest import sdid_rejections

SDID = dict(outcome="y", unit="unit", time="time", treatment="treated", n_replications=200, seed=3)


def _with_pretrend(df, start, slope, units):
    """Treated units drift by ``slope`` a period before ``start`` (zero at the start)."""
    drift = np.where(df["unit"].isin(units) & (df["time"] < start), slope * (df["time"] - start), 0.0)
    return df.assign(y=df["y"] + drift)


def test_sdid_pretrend_test_ignores_post_period_effects_and_finds_a_pretrend(make_panel):
    quiet = make_panel(n_units=20, n_periods=14, n_treated=3, adoption=10, effect=0.0, noise=0.5, seed=5)
    loud = make_panel(n_units=20, n_periods=14, n_treated=3, adoption=10, effect=50.0, noise=0.5, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = im.synth.sdid(quiet, **SDID), im.synth.sdid(loud, **SDID)
        test_a, test_b = im.did.pretrend_test(a), b.pretrend_test()
    # exact: the test sees only the 10 periods before the start, so an effect of 50 after it changes nothing
    assert test_a["p_value"] == test_b["p_value"] and test_a["statistic"] == test_b["statistic"]
    assert test_a["pre_periods"] == 10 and test_a["placebo_start"] == 5 and test_a["exact"]
    assert test_a["p_value"] > 0.05 and "in-time placebo" in test_a["method"]
    assert "randomisation inference over 200 random draws of the 1,140 assignments" in test_a["method"]
    treated = [f"u{i:02d}" for i in range(17, 20)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drifting = im.synth.sdid(_with_pretrend(loud, 10, 1.0, treated), **SDID)
        found = im.did.pretrend_test(drifting)
    assert found["p_value"] <= 0.05 and found["estimate"] > 1  # the treated rose 1 a period towards the start


def test_sdid_pretrend_test_needs_enough_pre_periods(make_panel):
    df = make_panel(n_units=12, n_periods=8, n_treated=2, adoption=4, effect=1.0, noise=0.5, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = im.synth.sdid(df, **SDID)
    with pytest.raises(DataError, match=r"4 period\(s\) precede the earliest adoption .* needs at least 5"):
        res.pretrend_test(placebo_periods=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert res.pretrend_test(placebo_periods=2)["placebo_start"] == 2


def test_synthetic_control_pretrend_test_is_its_in_time_placebo(make_panel):
    # 30 pre-periods (ADH's California has 19): with only a few, placebo regions that the donors fit
    # almost exactly get huge post/pre ratios and the ratio test loses its power.
    quiet = make_panel(n_units=20, n_periods=40, n_treated=1, adoption=30, effect=0.0, noise=0.5, seed=9)
    loud = make_panel(n_units=20, n_periods=40, n_treated=1, adoption=30, effect=50.0, noise=0.5, seed=9)
    call = dict(outcome="y", unit="unit", time="time", treated_unit="u19", treatment_time=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = im.did.pretrend_test(im.synth.synthetic_control(quiet, **call))
        b = im.synth.synthetic_control(loud, **call).pretrend_test()
        direct = im.synth.synthetic_control(quiet.loc[quiet["time"] < 30], **{**call, "treatment_time": 15})
        # the treated region starts to pull away 15 periods before the start (anticipation)
        pulling = quiet.assign(y=quiet["y"] + np.where((quiet["unit"] == "u19") & quiet["time"].between(15, 29),
                                                        1.5 * (quiet["time"] - 14), 0.0))
        drifting = im.did.pretrend_test(im.synth.synthetic_control(pulling, **call))
    assert a["p_value"] == b["p_value"] == direct.p_value and a["placebo_start"] == 15 and a["pre_periods"] == 30
    assert a["n_assignments"] == 20 and a["smallest_p"] == pytest.approx(1 / 20)
    assert drifting["p_value"] == pytest.approx(1 / 20)  # the drifting region's ratio ranks first of 20


@pytest.mark.slow
def test_sdid_pretrend_test_has_its_size(size_design):
    # analyses/simulations/synth_size.py design, heteroskedastic AR(1) errors, 3 treated (block) of 20,
    # no pre-trend; 300 replications (binomial sd 0.013 at 5%), 100 draws per in-time placebo.
    rate = sdid_rejections(size_design, np.random.default_rng([13, 3]), 300, 3, "block", "heteroskedastic",
                           test=lambda res: res.pretrend_test()["p_value"])
    assert 0.02 <= rate <= 0.08
