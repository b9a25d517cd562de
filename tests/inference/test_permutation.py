"""The permutation engine: uniform draws, exact enumeration, p-value conventions.

Independent checks: draws are compared with the combinatorial counts (multinomial coefficients) and
with uniform frequencies (chi-square goodness of fit); exact p-values with a brute-force
itertools enumeration written in the test.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from impact.errors import SpecError
from impact.inference.permutation import AssignmentScheme, null_distribution, permutation_p_values, permutation_test


def test_counts_are_kept_within_strata():
    rng = np.random.default_rng(1)
    strata = np.repeat(np.arange(7), [2, 2, 5, 9, 9, 30, 101])
    labels = np.concatenate([rng.permutation(np.r_[np.ones(k), np.zeros(s - k)]) for s, k in
                             zip([2, 2, 5, 9, 9, 30, 101], [1, 1, 2, 4, 5, 15, 80])]).astype(int)
    scheme = AssignmentScheme(labels, strata=strata)
    draws = scheme.sample(500, rng)
    for j in range(7):
        assert np.all(draws[:, strata == j].sum(axis=1) == labels[strata == j].sum())
    exact = 2 * 2 * math.comb(5, 2) * math.comb(9, 4) * math.comb(9, 5) * math.comb(30, 15) * math.comb(101, 80)
    assert scheme.log_n_assignments() == pytest.approx(math.log(exact), rel=1e-12)
    assert scheme.n_assignments() == pytest.approx(float(exact), rel=1e-9)  # float beyond 1e15
    small = AssignmentScheme(labels[strata < 5], strata=strata[strata < 5])
    assert small.n_assignments() == 2 * 2 * math.comb(5, 2) * math.comb(9, 4) * math.comb(9, 5)  # exact int


@pytest.mark.parametrize("strata", [None, np.array([0, 0, 0, 0, 1, 1, 1, 1])])
def test_draws_are_uniform_over_assignments(strata):
    labels = np.array([1, 0, 1, 0, 0, 1, 1, 0])
    scheme = AssignmentScheme(labels, strata=strata)
    draws = scheme.sample(60_000, np.random.default_rng(2))
    _, counts = np.unique(draws, axis=0, return_counts=True)
    assert len(counts) == scheme.n_assignments() == (70 if strata is None else 36)
    chi2 = stats.chisquare(counts)
    assert chi2.pvalue > 0.001


def test_multi_arm_draws_keep_counts_and_are_uniform():
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    scheme = AssignmentScheme(labels)
    draws = scheme.sample(40_000, np.random.default_rng(3))
    assert np.all((draws == 0).sum(1) == 3) and np.all((draws == 2).sum(1) == 2)
    _, counts = np.unique(draws, axis=0, return_counts=True)
    assert len(counts) == scheme.n_assignments() == math.factorial(7) // (6 * 2 * 2)
    assert stats.chisquare(counts).pvalue > 0.001


def test_large_stratum_uses_exact_counts():
    # 20,000 units in one stratum: 32-bit keys path
    labels = np.r_[np.ones(7000), np.zeros(13000)].astype(int)
    draws = AssignmentScheme(labels).sample(20, np.random.default_rng(4))
    assert np.all(draws.sum(axis=1) == 7000)


def test_exact_p_value_matches_brute_force_enumeration():
    y = np.array([2.1, 3.4, 1.9, 5.6, 4.4, 2.8, 3.3, 6.1, 0.7])
    labels = np.array([1, 0, 0, 1, 1, 0, 0, 1, 0])

    def dim(t):
        t = t.astype(float)
        return (t @ y) / t.sum(axis=1) - ((1 - t) @ y) / (1 - t).sum(axis=1)

    test = permutation_test(dim, AssignmentScheme(labels), exact=True)
    observed = y[labels == 1].mean() - y[labels == 0].mean()
    brute = []
    for treated in itertools.combinations(range(9), 4):
        mask = np.zeros(9, bool)
        mask[list(treated)] = True
        brute.append(y[mask].mean() - y[~mask].mean())
    brute = np.array(brute)
    expected = np.mean(np.abs(brute) >= abs(observed) - 1e-12)
    assert test.exact and test.null.n_draws == 126
    assert float(test.p_value) == pytest.approx(expected, abs=1e-12)
    greater = permutation_p_values(test.null, "greater")
    assert float(greater) == pytest.approx(np.mean(brute >= observed - 1e-12), abs=1e-12)
    # Monte Carlo agrees with the exact value within 4 Monte Carlo standard errors
    mc = permutation_test(dim, AssignmentScheme(labels), exact=False, n_permutations=20_000, seed=5)
    assert abs(float(mc.p_value) - expected) < 4 * math.sqrt(expected * (1 - expected) / 20_000)


def test_simple_randomisation_enumeration_is_weighted():
    probs = np.array([0.2, 0.5, 0.7])
    scheme = AssignmentScheme(np.array([0, 1, 1]), method="simple", probabilities=probs)
    labels, weights = scheme.enumerate()
    assert len(labels) == 8 and weights.sum() == pytest.approx(1)
    i = np.flatnonzero((labels == [1, 1, 1]).all(axis=1))[0]
    assert weights[i] == pytest.approx(0.2 * 0.5 * 0.7)
    draws = scheme.sample(100_000, np.random.default_rng(6))
    assert draws.mean(axis=0) == pytest.approx(probs, abs=0.01)


def test_monte_carlo_p_value_is_never_zero_and_seeded():
    y = np.r_[np.zeros(50), np.ones(50) * 10]
    labels = np.r_[np.zeros(50), np.ones(50)].astype(int)
    stat = lambda t: t.astype(float) @ y  # noqa: E731
    a = permutation_test(stat, AssignmentScheme(labels), n_permutations=999, seed=1)
    b = permutation_test(stat, AssignmentScheme(labels), n_permutations=999, seed=1)
    assert float(a.p_value) == pytest.approx(1 / 1000)
    np.testing.assert_array_equal(a.null.draws, b.null.draws)


def test_chunking_gives_identical_results():
    rng = np.random.default_rng(8)
    labels = (rng.random(300) < 0.4).astype(int)
    y = rng.normal(size=300)
    stat = lambda t: t.astype(float) @ y  # noqa: E731
    small = null_distribution(stat, AssignmentScheme(labels), n_permutations=3000, seed=3, chunk_bytes=10_000)
    assert small.draws.shape == (3000,)
    assert np.unique(small.draws).size > 2900


def test_invalid_options_raise():
    with pytest.raises(SpecError, match="exact"):
        null_distribution(lambda t: t.sum(1), AssignmentScheme(np.array([0, 1, 0, 1])), exact="yes")
    with pytest.raises(SpecError, match="enumeration"):
        AssignmentScheme(np.r_[np.zeros(40), np.ones(40)].astype(int)).enumerate()
    with pytest.raises(SpecError, match="method"):
        AssignmentScheme(np.array([0, 1]), method="bernoulli")
