"""LATE by 2SLS, Lee bounds, attrition tests.

Sources: R estimatr 1.0.0 ``iv_robust`` (tests/rct/reference/estimatr_extra.json; HC1, with a
covariate, and clustered "stata"), 1e-6 on estimates/SEs; Lee bounds against a brute-force trimming
written here (sort and cut when the trimmed count is an integer) and the simulated voucher trial's
known truth (data/sweden_regions_truth.json); Imbens-Manski against its defining equation.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import impact as im
from impact.errors import DataError

REF = json.loads((Path(__file__).parent / "reference" / "estimatr_extra.json").read_text())["results"]
TRUTH = json.loads((Path(im.datasets.data_dir()) / "sweden_regions_truth.json").read_text())["firms_trial"]


@pytest.fixture(scope="module")
def firms():
    return im.datasets.load("sweden_firms")


@pytest.mark.parametrize(("key", "kwargs"), [("HC1", {}), ("HC1_cov", {"covariates": ["x"]}), ("stata_cluster", {"clusters": "g"})])
def test_late_matches_iv_robust(key, kwargs):
    # iv_robust(y ~ d | z [+ x], se_type = "HC1") and iv_robust(y ~ d | z, clusters = g, se_type = "stata")
    ref = REF["iv"][key]
    d = pd.DataFrame(REF["iv"]["data"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = im.rct.late(d, outcome="y", treatment="d", assignment="z", **kwargs)
    row = r.tidy().set_index("term").loc["LATE"]
    assert row["estimate"] == pytest.approx(ref["estimate"], abs=1e-6)
    assert row["std_error"] == pytest.approx(ref["std_error"], abs=1e-6)
    assert row["df"] == pytest.approx(ref["df"], abs=1e-4)
    assert row["conf_low"] == pytest.approx(ref["conf_low"], abs=1e-6)
    # Wald ratio identity: LATE = ITT / first stage without covariates
    if not kwargs.get("covariates"):
        tab = r.tidy().set_index("term")
        assert tab.loc["LATE", "estimate"] == pytest.approx(tab.loc["ITT", "estimate"] / tab.loc["first stage", "estimate"], rel=1e-10)


def test_late_recovers_the_voucher_trial_truth(firms):
    # data/sweden_regions_truth.json firms_trial: LATE (compliers) 5.386, complier share 0.648;
    # tolerance 2.5 standard errors (the sample truth is for all firms, the estimate uses responders).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", im.errors.MissingDataWarning)
        r = im.rct.late(firms, outcome="turnover_growth", treatment="takeup", assignment="assigned",
                        blocks="region_code", observed="responded")
    truth = TRUTH["sample"]
    assert abs(r.estimate - truth["turnover_growth"]["late_compliers"]) < 2.5 * r.std_error
    assert r.diagnostics["complier_share"] == pytest.approx(truth["complier_share"], abs=0.03)
    assert r.diagnostics["first_stage_F"] > 100 and not r.diagnostics["weak_instrument"]
    flow = {row["arm"]: row for row in r.diagnostics["consort"]}
    assert flow["treatment (1)"]["assigned"] == (firms.assigned == 1).sum()
    assert flow["treatment (1)"]["received"] == ((firms.assigned == 1) & (firms.takeup == 1)).sum()
    assert flow["control (0)"]["lost_to_follow_up"] == ((firms.assigned == 0) & (firms.responded == 0)).sum()
    assert flow["control (0)"]["analysed"] == ((firms.assigned == 0) & firms.turnover_growth.notna()).sum()
    import matplotlib

    matplotlib.use("Agg")
    ax = r.figures()["Participant flow (CONSORT)"](None)
    assert len(ax.patches) == 8  # 4 stages x 2 arms
    matplotlib.pyplot.close(ax.figure)


def test_weak_instrument_warns():
    rng = np.random.default_rng(3)
    z = rng.integers(0, 2, 400)
    d = (rng.random(400) < 0.3 + 0.03 * z).astype(int)
    y = d + rng.normal(size=400)
    with pytest.warns(im.errors.FragileInferenceWarning, match="weak"):
        r = im.rct.late(pd.DataFrame({"y": y, "d": d, "z": z}), outcome="y", treatment="d", assignment="z")
    assert r.diagnostics["weak_instrument"]


def brute_lee(y, z, s):
    """Lee bounds by sorting and cutting an integer number of treated responders."""
    q1, q0 = s[z == 1].mean(), s[z == 0].mean()
    p = (q1 - q0) / q1
    yt = np.sort(y[(z == 1) & (s == 1)])
    cut = int(round(p * yt.size))
    control = y[(z == 0) & (s == 1)].mean()
    return yt[: yt.size - cut].mean() - control, yt[cut:].mean() - control


def test_lee_bounds_match_brute_force_trimming():
    # treated: 100 units, 90 respond; control: 100 units, 75 respond -> p = 1/6, 15 trimmed exactly
    rng = np.random.default_rng(4)
    z = np.r_[np.ones(100), np.zeros(100)].astype(int)
    s = np.r_[np.ones(90), np.zeros(10), np.ones(75), np.zeros(25)].astype(int)
    y = np.where(s == 1, rng.normal(size=200) + z, np.nan)
    lb, ub = brute_lee(y, z, s)
    r = im.rct.lee_bounds(pd.DataFrame({"y": y, "z": z, "s": s}), outcome="y", treatment="z", observed="s", seed=1,
                          n_bootstrap=200)
    tab = r.tidy().set_index("term")
    assert tab.loc["lower bound", "estimate"] == pytest.approx(lb, abs=1e-12)
    assert tab.loc["upper bound", "estimate"] == pytest.approx(ub, abs=1e-12)
    assert r.diagnostics["trimming_share"] == pytest.approx(1 / 6)
    # swapping arms trims the control arm and flips the bounds
    r2 = im.rct.lee_bounds(pd.DataFrame({"y": -y, "z": 1 - z, "s": s}), outcome="y", treatment="z", observed="s",
                           seed=1, n_bootstrap=200)
    t2 = r2.tidy().set_index("term")
    assert r2.diagnostics["trimmed_arm"] == "control"
    assert t2.loc["lower bound", "estimate"] == pytest.approx(lb, abs=1e-12)
    assert t2.loc["upper bound", "estimate"] == pytest.approx(ub, abs=1e-12)


def test_lee_bounds_contain_the_voucher_trial_truth(firms):
    # truth: ITT among always-responders 3.485 (turnover growth)
    r = im.rct.lee_bounds(firms, outcome="turnover_growth", treatment="assigned", observed="responded", seed=7)
    lb, ub = r.diagnostics["bounds"]
    assert lb < TRUTH["sample"]["turnover_growth"]["itt_always_responders"] < ub
    low, high = r.conf_int()
    assert low < lb and high > ub
    assert r.diagnostics["response_rate_control"] == pytest.approx(1 - TRUTH["sample"]["attrition_rate_control"], abs=1e-6)


def test_lee_bootstrap_se_close_to_simulated_sd():
    # Monte Carlo: the sd of the lower bound over 150 simulated trials vs the average bootstrap SE
    rng = np.random.default_rng(5)
    est, ses = [], []
    for i in range(150):
        z = rng.integers(0, 2, 600)
        y = rng.normal(size=600) + 0.5 * z
        s = (rng.random(600) < np.where(z == 1, 0.9, 0.8)).astype(int)
        r = im.rct.lee_bounds(pd.DataFrame({"y": np.where(s == 1, y, np.nan), "z": z, "s": s}), outcome="y",
                              treatment="z", observed="s", seed=i, n_bootstrap=200)
        est.append(r.diagnostics["bounds"][0])
        ses.append(r.tidy()["std_error"].iloc[0])
    assert np.mean(ses) == pytest.approx(np.std(est, ddof=1), rel=0.2)


def test_imbens_manski_equation():
    from impact.rct.attrition import imbens_manski_interval

    lo, hi = imbens_manski_interval(1.0, 2.0, 0.3, 0.5, 0.95)
    c = (1.0 - lo) / 0.3
    assert stats.norm.cdf(c + 1.0 / 0.5) - stats.norm.cdf(-c) == pytest.approx(0.95, abs=1e-10)
    assert hi == pytest.approx(2.0 + c * 0.5)
    # point identification: the usual two-sided interval
    lo, hi = imbens_manski_interval(1.0, 1.0, 0.5, 0.5, 0.95)
    assert hi - 1.0 == pytest.approx(1.959964 * 0.5, abs=1e-5)


def test_attrition_test(firms):
    r = im.rct.attrition_test(firms, treatment="assigned", observed="responded", covariates=["employees_0", "firm_age"])
    rates = firms.groupby("assigned")["responded"].mean()
    assert r.estimate == pytest.approx(rates[1] - rates[0], abs=1e-12)
    assert r.p_value < 0.01  # 6.5% vs 10.1% attrition by design
    assert "selective_attrition" in r.diagnostics and 0 <= r.diagnostics["selective_attrition"]["p_value"] <= 1
    with pytest.raises(DataError, match="0/1"):
        im.rct.attrition_test(firms.assign(responded=firms.responded * 2), treatment="assigned", observed="responded")
