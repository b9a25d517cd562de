"""Simulation with a known pre-trend: the exact randomisation pre-trend test detects a linear pre-trend
in the treated regions far more often than its omnibus part alone, and holds its size without one.

Data as in ``analyses/simulations/few_treated.py`` (issue 10), smaller: 20 regions x 10 years, region and
year effects, AR(1) errors, 8 treated regions starting in years 5/7/9 (3/3/2), so the exact window is
years 1-4. The full size and power tables (1,000 and 200 replications) are in the README.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im


def _panel(rng: np.random.Generator, slope: float) -> pd.DataFrame:
    n, T = 20, 10
    e = np.empty((n, T))
    e[:, 0] = rng.normal(0, 1, n) / np.sqrt(0.75)
    for t in range(1, T):
        e[:, t] = 0.5 * e[:, t - 1] + rng.normal(0, 1, n)
    start = np.zeros(n, dtype=int)
    start[rng.permutation(n)[:8]] = np.repeat([5, 7, 9], [3, 3, 2])
    year = np.arange(1, T + 1)
    treated = start[:, None] > 0
    y = (rng.normal(0, 1, n)[:, None] + 0.3 * year + e + 1.0 * (treated & (year >= start[:, None]))
         + slope * treated * (year - start[:, None]))
    return pd.DataFrame({"region": np.repeat(np.arange(n), T), "year": np.tile(year, n), "y": y.ravel(),
                         "cohort": np.repeat(start, T)})


def _rejections(design: str, slope: float, reps: int, seed: int) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    combined = omnibus = 0
    for rep in range(reps):
        df = _panel(rng, slope)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = getattr(im.did, design)(df, outcome="y", unit="region", time="year", cohort="cohort",
                                          n_permutations=99, seed=rep)
        test = im.did.pretrend_test(fit)
        assert test["exact"] is False and test["pre_periods"] == 4  # 99 draws of the 20!/(12! 3! 3! 2!) assignments
        combined += test["p_value"] <= 0.05
        omnibus += test["p_value_sum_of_squares"] <= 0.05
    return int(combined), int(omnibus)


@pytest.mark.parametrize("design", ["event_study", "imputation"])
def test_linear_pre_trend_is_detected_and_the_trend_component_adds_power(design):
    # slope 0.7 a year in the treated regions. Observed over these 40 replications (seed 7): 26 (event_study)
    # and 27 (imputation) rejections by the default test, 10 and 12 by its omnibus part alone (the test before
    # the trend component was added). The thresholds leave room for Monte Carlo noise (binomial s.e. about 3
    # replications) but fail if the trend component did nothing.
    combined, omnibus = _rejections(design, 0.7, 40, 7)
    assert combined >= 18 and combined >= omnibus + 8


def test_pre_trend_test_holds_its_size_without_a_pre_trend():
    # 60 replications of a true null (parallel trends, effect 1 after the start): expected 3 rejections at
    # 5%; more than 9 has probability below 0.001 for an exact test
    combined, _ = _rejections("event_study", 0.0, 60, 11)
    assert combined <= 9
