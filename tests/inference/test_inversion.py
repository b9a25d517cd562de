"""Test inversion of permutation tests with quadratic statistics: exact bounds vs a brute-force grid."""

from __future__ import annotations

import math

import numpy as np
import pytest

from impact.inference.inversion import invert_quadratic_permutation_test


def _grid_p(a, c, scale, grid):
    q = ((a[None] + c[None] * grid[:, None, None]) ** 2).sum(axis=2) / scale
    return (q >= q[:, :1] * (1 - 1e-12)).mean(axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_bounds_equal_a_brute_force_grid(seed):
    # Independent computation: evaluate p(tau) on a fine grid (step 5e-4) and read off the accepted
    # set; the exact bounds must agree to the grid step.
    rng = np.random.default_rng(seed)
    K, S = 25, 4
    a = rng.normal(size=(K, S))
    c = np.concatenate([[-1.0], rng.uniform(0, 0.4, K - 1)])[:, None] * np.ones((1, S))
    scale = rng.uniform(0.5, 2, K)
    res = invert_quadratic_permutation_test(a, c, scale, alpha=0.1)
    grid = np.arange(-6, 6, 5e-4)
    p = _grid_p(a, c, scale, grid)
    accepted = grid[p > 0.1]
    if accepted.size == 0:  # every constant effect rejected (seed 3): the set is empty
        assert res.empty and p.max() <= 0.1 and res.conf_low == res.conf_high
        return
    assert res.conf_low == pytest.approx(accepted.min(), abs=1e-3)
    assert res.conf_high == pytest.approx(accepted.max(), abs=1e-3)
    assert res.p_value == pytest.approx(_grid_p(a, c, scale, np.zeros(1))[0])
    assert res.n_draws == K


def test_too_few_draws_give_the_whole_line_and_scalar_input_works():
    # With 10 draws the smallest p is 0.1 > 0.05: nothing can be rejected.
    rng = np.random.default_rng(5)
    a = rng.normal(size=10)
    c = np.concatenate([[-1.0], np.zeros(9)])
    res = invert_quadratic_permutation_test(a, c, np.ones(10), alpha=0.05)
    assert res.conf_low == -math.inf and res.conf_high == math.inf and not res.empty


def test_interval_excludes_zero_exactly_when_p_is_at_most_alpha():
    rng = np.random.default_rng(11)
    for _ in range(50):
        a = rng.normal(size=40)
        a[0] += rng.choice([0.0, 3.0])
        c = np.concatenate([[-1.0], rng.uniform(0, 0.3, 39)])
        res = invert_quadratic_permutation_test(a, c, np.ones(40), alpha=0.05)
        assert (res.conf_low <= 0 <= res.conf_high) == (res.p_value > 0.05)
