"""Multiple-testing adjustments.

Holm and Benjamini-Hochberg against statsmodels 0.14 ``multipletests`` (which matches R p.adjust),
1e-12. Westfall-Young maxT/minP and Romano-Wolf against a direct loop over hypotheses written
here from Westfall & Young (1993, Algorithms 2.5/2.8) and Romano & Wolf (2016, eq. 2-3); family-wise
error control by simulation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

import impact as im
from impact.errors import SpecError
from impact.inference.multiple import benjamini_hochberg, holm, romano_wolf, westfall_young


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holm_and_bh_match_statsmodels(seed):
    p = np.random.default_rng(seed).uniform(size=12) ** 3
    p[3] = p[5]  # a tie
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1], abs=1e-12)
    assert benjamini_hochberg(p) == pytest.approx(multipletests(p, method="fdr_bh")[1], abs=1e-12)


def loop_maxT(obs, null):
    m = len(obs)
    order = np.argsort(-np.abs(obs))
    p = np.empty(m)
    previous = 0.0
    for rank, j in enumerate(order):
        remaining = order[rank:]
        maxima = np.abs(null[:, remaining]).max(axis=1)
        pj = (1 + np.sum(maxima >= abs(obs[j]))) / (1 + len(null))
        previous = max(previous, pj)
        p[j] = previous
    return p


def loop_minP(obs, null):
    B, m = null.shape
    marg_null = np.array([[(1 + np.sum(np.abs(null[:, k]) >= abs(null[b, k]))) / (1 + B) for k in range(m)] for b in range(B)])
    marg_obs = np.array([(1 + np.sum(np.abs(null[:, k]) >= abs(obs[k]))) / (1 + B) for k in range(m)])
    order = np.argsort(marg_obs, kind="stable")
    p = np.empty(m)
    previous = 0.0
    for rank, j in enumerate(order):
        minima = marg_null[:, order[rank:]].min(axis=1)
        pj = (1 + np.sum(minima <= marg_obs[j])) / (1 + B)
        previous = max(previous, pj)
        p[j] = previous
    return p


def test_westfall_young_and_romano_wolf_match_loops():
    rng = np.random.default_rng(3)
    cov = 0.6 + 0.4 * np.eye(5)
    null = rng.multivariate_normal(np.zeros(5), cov, size=400)
    obs = np.array([3.1, -0.4, 2.2, 1.1, -2.6])
    assert westfall_young(obs, null, method="maxT") == pytest.approx(loop_maxT(obs, null), abs=1e-12)
    assert romano_wolf(obs, null) == pytest.approx(loop_maxT(obs, null), abs=1e-12)
    assert westfall_young(obs, null, method="minP") == pytest.approx(loop_minP(obs, null), abs=1e-12)


def test_resampling_adjustments_are_less_conservative_than_holm_with_correlated_outcomes():
    rng = np.random.default_rng(4)
    null = rng.multivariate_normal(np.zeros(4), 0.9 + 0.1 * np.eye(4), size=20_000)
    obs = np.array([2.4, 2.3, 2.5, 2.2])
    from scipy import stats

    raw = 2 * stats.norm.sf(np.abs(obs))
    assert np.all(westfall_young(obs, null) < holm(raw))
    assert np.all(westfall_young(obs, null) >= raw - 0.002)


def test_family_wise_error_rate_under_the_null():
    # 1,000 trials with 4 correlated null outcomes, joint null from re-drawn assignments (the
    # permutation engine); the FWER of Westfall-Young at 5% should be about 5% (binomial band).
    from impact.inference.permutation import AssignmentScheme, null_distribution, permutation_p_values

    rng = np.random.default_rng(5)
    hits_wy = hits_none = 0
    trials = 1000
    labels = np.r_[np.ones(30), np.zeros(30)].astype(int)
    for i in range(trials):
        t = rng.permutation(labels)
        Y = rng.normal(size=60)[:, None] + rng.normal(size=(60, 4))
        Yc = Y - Y.mean(axis=0)
        null = null_distribution(lambda R: R.astype(float) @ Yc, AssignmentScheme(t), n_permutations=199, seed=i)
        hits_wy += (westfall_young(null.observed, null.draws) <= 0.05).any()
        hits_none += (permutation_p_values(null) <= 0.05).any()
    assert 0.03 <= hits_wy / trials <= 0.075
    assert hits_none / trials > 0.1  # unadjusted tests over-reject the family


def test_rct_multiple_outcomes_columns_and_errors():
    firms = im.datasets.load("sweden_firms")
    with pytest.warns(im.errors.MissingDataWarning):
        r = im.rct.multiple_outcomes(firms, outcomes=["turnover_growth", "employees_2"], treatment="assigned",
                                     blocks="region_code", n_permutations=500, seed=1)
    tab = r.tidy()
    assert list(tab["term"]) == ["turnover_growth", "employees_2"]
    for col in ("p_holm", "p_bh", "p_westfall_young", "p_romano_wolf", "p_randomization"):
        assert col in tab and tab[col].between(0, 1).all()
    single = im.rct.difference_in_means(firms.dropna(subset=["turnover_growth", "employees_2"]),
                                        outcome="turnover_growth", treatment="assigned", blocks="region_code")
    assert tab["estimate"].iloc[0] == pytest.approx(single.estimate, abs=1e-12)
    with pytest.raises(SpecError, match="adjust"):
        im.rct.multiple_outcomes(firms, outcomes=["turnover_growth", "employees_2"], treatment="assigned", adjust=("bonferroni",))
    with pytest.raises(SpecError, match="hypotheses"):
        westfall_young(np.ones(3), np.ones((10, 2)))
