"""Ridge augmented synthetic control (Ben-Michael, Feller & Rothstein 2021)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import SpecError

PROP99 = dict(outcome="PacksPerCapita", unit="State", time="Year", treated_unit="California", treatment_time=1989)


@pytest.mark.parametrize("ridge", [5.0, 500.0])
def test_matches_pysyncon_augsynth_at_fixed_lambda(prop99, ridge):
    # Peer: pysyncon 1.7.0 AugSynth().fit(Dataprep(... time_optimize_ssr=1970..1988), lambda_=ridge),
    # which implements augsynth's ridge ASCM without covariates. Its SC step is an iterative QP
    # (SLSQP-type), ours exact, so weights agree to 5e-4 and the ATT to 0.005.
    pysyncon = pytest.importorskip("pysyncon")
    ours = im.synth.augmented_synthetic_control(prop99, ridge=ridge, **PROP99)
    states = sorted(prop99["State"].unique())
    dp = pysyncon.Dataprep(
        foo=prop99, predictors=["PacksPerCapita"], predictors_op="mean", dependent="PacksPerCapita",
        unit_variable="State", time_variable="Year", treatment_identifier="California",
        controls_identifier=[s for s in states if s != "California"],
        time_predictors_prior=list(range(1970, 1989)), time_optimize_ssr=list(range(1970, 1989)),
    )
    peer = pysyncon.AugSynth()
    peer.fit(dp, lambda_=ridge)
    Z0, Z1 = dp.make_outcome_mats(time_period=range(1970, 2001))
    gap = Z1 - Z0 @ np.asarray(peer.W)
    assert ours.estimate == pytest.approx(float(gap[gap.index >= 1989].mean()), abs=0.005)
    np.testing.assert_allclose(ours.weights.reindex(Z0.columns).to_numpy(), np.asarray(peer.W), atol=5e-4)
    assert ours.weights.sum() == pytest.approx(1.0, abs=1e-10)


def test_cross_validated_lambda_and_limits(prop99):
    res = im.synth.augmented_synthetic_control(prop99, **PROP99)
    cv = res.diagnostics["ridge_cross_validation"]
    assert res.diagnostics["ridge_lambda"] in set(cv["lambda"])
    # The augmented fit is at least as close in the pre-period as the plain SC it corrects.
    assert res.diagnostics["pre_rmspe"] <= res.diagnostics["scm_pre_rmspe"] + 1e-9
    # A huge penalty gives back the synthetic control.
    huge = im.synth.augmented_synthetic_control(prop99, ridge=1e12, **PROP99)
    assert huge.estimate == pytest.approx(im.synth.synthetic_control(prop99, **PROP99).estimate, abs=1e-6)
    pl = res.placebo()
    assert 0 < pl.p_value <= 1
    with pytest.raises(SpecError):
        im.synth.augmented_synthetic_control(prop99, ridge=-1.0, **PROP99)


def test_reduces_bias_outside_the_hull(make_panel):
    # Treated unit's factor loadings pushed outside the donors' hull: SC cannot fit the pre-period
    # and is biased; the ridge correction extrapolates and lands closer to the true effect of 5.
    biases_sc, biases_aug = [], []
    for seed in range(5):
        df = make_panel(n_units=30, n_periods=30, adoption=20, effect=5.0, noise=0.3, seed=40 + seed)
        wide = df.pivot(index="unit", columns="time", values="y")
        donors = wide.drop(index="u29")
        wide.loc["u29"] = donors.mean() + 2.0 * (wide.loc["u29"] - donors.mean())  # stretch away from the centre
        wide.loc["u29", 20:] += 5.0 * (1 - 2.0)  # keep the true effect at 5 after stretching
        long = wide.stack().rename("y").reset_index()
        kwargs = dict(outcome="y", unit="unit", time="time", treated_unit="u29", treatment_time=20)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            biases_sc.append(abs(im.synth.synthetic_control(long, **kwargs).estimate - 5.0))
            biases_aug.append(abs(im.synth.augmented_synthetic_control(long, **kwargs).estimate - 5.0))
    assert np.mean(biases_aug) < np.mean(biases_sc)


def test_in_time_placebo_and_leave_one_out_keep_the_augmentation(make_panel):
    df = make_panel(n_units=20, n_periods=24, adoption=16, effect=3.0, noise=0.3, seed=9)
    res = im.synth.augmented_synthetic_control(df, outcome="y", unit="unit", time="time", treated_unit="u19", treatment_time=16, ridge=50.0)
    fake = res.in_time_placebo(11)
    assert fake.design == "augmented_synthetic_control" and fake.settings["ridge"] == 50.0
    loo = res.leave_one_out()
    assert len(loo.diagnostics["leave_one_out"]) == int((res.weights.abs() > 1e-8).sum())
