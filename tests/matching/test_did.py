"""Matched difference-in-differences: simulation with a known effect, the regional demo data."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.datasets import data_dir
from impact.errors import DataError, SpecError


def simulate_panel(n_units=400, seed=3, effect=1.0):
    """Treatment start 2020 for units selected on x; the outcome trend depends on x, so parallel
    trends fail unconditionally but hold given x (and the pre-period outcome path reveals x)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n_units)
    treated = rng.binomial(1, 1 / (1 + np.exp(-(-1.2 + 1.2 * x))))
    years = np.arange(2015, 2025)
    rows = []
    for i in range(n_units):
        alpha = rng.normal() + 0.5 * x[i]
        for t in years:
            exposed = int(treated[i] and t >= 2020)
            y = alpha + 0.3 * (t - 2015) * x[i] + 0.1 * (t - 2015) + effect * exposed + rng.normal(scale=0.3)
            rows.append((f"u{i:03d}", t, y, exposed, 2020 if treated[i] else 0, x[i]))
    return pd.DataFrame(rows, columns=["unit", "year", "y", "d", "start", "x"])


def test_matched_did_recovers_known_effect_where_plain_did_fails():
    df = simulate_panel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="year")
        res = im.matching.matched_did(df, outcome="y", unit="unit", time="year", treatment="d", covariates=["x"], replace=True)
        res_cohort = im.matching.matched_did(df, outcome="y", unit="unit", time="year", cohort="start", covariates=["x"], replace=True)
    assert abs(plain.estimate - 1.0) > 5 * plain.std_error  # confounded trends
    assert abs(res.estimate - 1.0) < 3 * res.std_error
    assert res.estimate == pytest.approx(res_cohort.estimate, rel=1e-12)  # same design, other coding
    assert res.diagnostics["max_abs_smd_after"] < res.diagnostics["max_abs_smd_before"]
    assert res.settings["pre_periods_used"] == [2015.0, 2016.0, 2017.0, 2018.0, 2019.0]
    assert set(res.figures()) >= {"Covariate balance (love plot)", "Outcome paths: treated and matched comparison"}
    res.to_dict()


def test_regional_demo_business_support():
    df = pd.read_csv(data_dir() / "sweden_regions.csv", dtype={"region_code": str})
    truth = json.loads((data_dir() / "sweden_regions_truth.json").read_text())["programmes"]["bsp"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = im.matching.matched_did(df, outcome="NB_NEWFIRMS", unit="region_code", time="year", cohort="bsp_start",
                                      covariates=["manuf_2010", "tertiary_2010"],
                                      exclude_units=truth["exclude_from_controls"])
    assert res.n_treated is not None and res.diagnostics["n_matched_treated"] == len(truth["regions"])
    excluded = set(truth["exclude_from_controls"])
    assert not excluded & set(res.matched_units["region_code"])
    # true post-period effects lie between 0.1 and 1.2 new firms per 1,000: the estimate is in range
    assert 0.1 < res.estimate < 1.2
    assert any("FewClustersWarning" in w for w in res.warnings)


def test_matched_did_input_errors():
    df = simulate_panel(n_units=60)
    with pytest.raises(SpecError, match="exactly one"):
        im.matching.matched_did(df, outcome="y", unit="unit", time="year")
    with pytest.raises(SpecError, match="nothing to match"):
        im.matching.matched_did(df, outcome="y", unit="unit", time="year", treatment="d", match_on_pre_outcomes=False)
    with pytest.raises(DataError, match="no period before"):
        im.matching.matched_did(df.assign(start=np.where(df["start"] > 0, 2015, 0)), outcome="y", unit="unit", time="year", cohort="start")
    with pytest.raises(DataError, match="unit x year|share the same"):
        im.matching.matched_did(pd.concat([df, df.head(1)]), outcome="y", unit="unit", time="year", treatment="d")
