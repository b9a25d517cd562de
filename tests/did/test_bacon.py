"""Tests of impact.did.bacon (Goodman-Bacon 2021 decomposition)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import DataError, SampleWarning


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def simulate(seed=1, n_units=200, n_periods=9, always=True):
    rng = np.random.default_rng(seed)
    cohorts = np.array([3, 5, 8, 0] + ([1] if always else []))
    g = cohorts[rng.integers(0, len(cohorts), n_units)]
    unit = np.repeat(np.arange(n_units), n_periods)
    t = np.tile(np.arange(1, n_periods + 1), n_units)
    gi = np.repeat(g, n_periods)
    D = ((gi > 0) & (t >= gi)).astype(int)
    y = rng.normal(0, 1, n_units)[unit] + 0.3 * t + D * (1 + 0.2 * (t - gi)) + rng.normal(0, 0.5, len(t))
    return pd.DataFrame({"id": unit, "period": t, "D": D, "y": y})


def twfe_dense(d):
    """Independent TWFE coefficient: explicit unit and period dummies, least squares."""
    U = pd.get_dummies(d["id"].astype(str)).to_numpy(float)
    T = pd.get_dummies(d["period"].astype(str), drop_first=True).to_numpy(float)
    Z = np.column_stack([d["D"].to_numpy(float), U, T])
    return np.linalg.solve(Z.T @ Z, Z.T @ d["y"].to_numpy(float))[0]  # full rank: all units, periods but one


def brute_force_2x2(d, treated_first, control_first, start, stop):
    """2x2 DiD from the raw data on a window of periods, by regression on that subsample."""
    first = d.loc[d["D"] == 1].groupby("id")["period"].min()
    timing = d["id"].map(first).fillna(np.inf)
    sub = d.loc[timing.isin([treated_first, control_first]) & d["period"].between(start, stop)]
    return twfe_dense(sub), len(sub), sub


@pytest.mark.parametrize("always", [False, True])
def test_weights_sum_to_one_and_reproduce_twfe_exactly(always):
    d = simulate(seed=4, always=always)
    res = quiet(im.did.bacon, d, outcome="y", unit="id", time="period", treatment="D")
    comps = res.comparisons
    assert comps["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    assert (comps["weight"] >= 0).all()
    assert (comps["weight"] * comps["estimate"]).sum() == pytest.approx(twfe_dense(d), abs=1e-10)
    assert res.estimate == pytest.approx(twfe_dense(d), abs=1e-10)
    # Theorem 1: the unnormalised weights add up to the variance of the two-way demeaned treatment
    diag = res.diagnostics
    assert diag["sum_of_unnormalised_weights"] == pytest.approx(diag["variance_of_demeaned_treatment"], rel=1e-10)
    assert diag["reproduction_error"] < 1e-10
    types = set(comps["type"])
    assert ("Later vs always treated" in types) == always
    json.dumps(res.to_dict())


def test_each_2x2_estimate_and_weight_against_subsample_regressions():
    """Each 2x2 DiD equals TWFE on its subsample; each weight is proportional to (subsample size)^2 times the
    variance of the two-way demeaned treatment in that subsample (Goodman-Bacon 2021, eq. 10-11)."""
    d = simulate(seed=9, always=False)
    res = quiet(im.did.bacon, d, outcome="y", unit="id", time="period", treatment="D")
    T = d["period"].max()
    raw = []
    for row in res.comparisons.itertuples():
        tg = float(row.treated)
        cg = np.inf if row.control == "never" else float(row.control)
        if row.type == "Treated vs never treated":
            window = (1, T)
        elif row.type == "Earlier vs later treated":
            window = (1, cg - 1)
        else:
            window = (cg, T)
        est, n_sub, sub = brute_force_2x2(d, tg, cg, *window)
        assert row.estimate == pytest.approx(est, abs=1e-10)
        U = pd.get_dummies(sub["id"].astype(str)).to_numpy(float)
        Tm = pd.get_dummies(sub["period"].astype(str)).to_numpy(float)
        Z = np.column_stack([U, Tm])
        Dv = sub["D"].to_numpy(float)
        Z = Z[:, :-1]  # drop one period dummy: full rank
        resid = Dv - Z @ np.linalg.solve(Z.T @ Z, Z.T @ Dv)
        raw.append(n_sub**2 * (resid @ resid) / n_sub)
    raw = np.array(raw)
    np.testing.assert_allclose(res.comparisons["weight"], raw / raw.sum(), rtol=1e-9)


def test_mpdta_twfe_and_comparison_types():
    """mpdta: TWFE coefficient of lemp on the post-treatment dummy, checked exactly against dense OLS (no
    published decomposition of a bundled dataset was found, so the reference is the independent fit)."""
    mpdta = im.datasets.load("mpdta")
    d = mpdta.assign(D=((mpdta["first.treat"] > 0) & (mpdta["year"] >= mpdta["first.treat"])).astype(int))
    res = quiet(im.did.bacon, d, outcome="lemp", unit="countyreal", time="year", treatment="D")
    dense = twfe_dense(d.rename(columns={"countyreal": "id", "year": "period", "lemp": "y"}))
    assert res.estimate == pytest.approx(dense, abs=1e-10)
    assert res.tidy()["term"].tolist() == ["TWFE", "Treated vs never treated", "Earlier vs later treated",
                                          "Later vs earlier treated"]
    assert res.tidy()["weight"].iloc[1:].sum() == pytest.approx(1.0)
    import matplotlib

    matplotlib.use("Agg")
    for draw in res.figures().values():
        assert draw(None) is not None


class TestBadInput:
    def test_non_absorbing(self):
        d = simulate(seed=1, always=False)
        flip = d.index[(d["D"] == 1)][3]
        d.loc[flip, "D"] = 0
        with pytest.raises(DataError, match="absorbing"):
            im.did.bacon(d, outcome="y", unit="id", time="period", treatment="D")

    def test_unbalanced(self):
        d = simulate(seed=1, always=False).iloc[1:]
        with pytest.raises(DataError, match="balanced panel"):
            im.did.bacon(d, outcome="y", unit="id", time="period", treatment="D")

    def test_duplicates_and_non_binary(self):
        d = simulate(seed=1, always=False)
        with pytest.raises(DataError, match="share the same"):
            im.did.bacon(pd.concat([d, d.head(1)]), outcome="y", unit="id", time="period", treatment="D")
        with pytest.raises(DataError, match="coded 0/1"):
            im.did.bacon(d.assign(D=d["D"] * 2), outcome="y", unit="id", time="period", treatment="D")

    def test_no_never_treated_warns(self):
        d = simulate(seed=2, always=True)
        first = d.loc[d["D"] == 1].groupby("id")["period"].min()
        d = d.loc[d["id"].isin(first.index)]
        with pytest.warns(SampleWarning, match="no never-treated"):
            res = im.did.bacon(d, outcome="y", unit="id", time="period", treatment="D")
        assert res.estimate == pytest.approx(twfe_dense(d), abs=1e-10)
