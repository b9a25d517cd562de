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


# --- polynomial roots and the sweep, shared with the randomisation engine --------------------------

from impact.inference.inversion import acceptance_hull, acceptance_sup, real_roots  # noqa: E402


@pytest.mark.parametrize("degree", [1, 2, 3, 4])
def test_real_roots_equal_numpy_roots(degree):
    # Independent source: numpy.roots (eigenvalues of the companion matrix), real roots to 1e-9.
    rng = np.random.default_rng(degree)
    coef = rng.normal(size=(400, degree + 1))
    coef[:50, :degree] = 0.0  # x^d: a root of multiplicity d at 0 (numpy returns d zeros)
    coef[:50, degree] = 1.0
    built = rng.normal(size=(100, degree))  # polynomials with known, all-real roots
    ours = real_roots(coef)
    for row in range(50, 400):
        reference = np.roots(coef[row, ::-1])
        real = np.sort(reference[np.abs(reference.imag) < 1e-7].real)
        found = ours[row][np.isfinite(ours[row])]
        assert len(found) == len(real), (row, found, reference)
        np.testing.assert_allclose(found, real, rtol=1e-8, atol=1e-9)
    with_roots = np.array([np.polynomial.polynomial.polyfromroots(r) for r in built])
    np.testing.assert_allclose(real_roots(with_roots), np.sort(built, axis=1), rtol=1e-6, atol=1e-6)
    assert np.all(ours[:50][np.isfinite(ours[:50])] == pytest.approx(0.0, abs=1e-4))


def test_a_zero_leading_coefficient_lowers_the_degree():
    coef = np.array([[2.0, -3.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0], [-4.0, 0.0, 1.0, 0.0, 0.0]])
    roots = real_roots(coef)
    np.testing.assert_allclose(roots[0, :2], [1.0, 2.0])
    assert np.isnan(roots[0, 2:]).all() and np.isnan(roots[1]).all()
    np.testing.assert_allclose(roots[2, :2], [-2.0, 2.0])


def _quartic_tests(seed, R=6, P=60):
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=(R, P, 5))
    coef[..., 4] = -np.abs(coef[..., 4])  # draws fall behind the observed one far out, as studentised ones do
    return coef


def _value(coef, x):
    return sum(coef[..., j : j + 1] * x**j for j in range(5))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sweep_of_quartic_comparisons_equals_a_brute_force_grid(seed):
    # Independent computation: count the draws with g_k(tau) >= 0 on a fine grid (step 1e-3) and read off
    # the accepted set {p > alpha}; the exact hull and the windowed upper end must agree to the grid step.
    coef = _quartic_tests(seed)
    R, P, _ = coef.shape
    alpha = 0.3
    hull = acceptance_hull(real_roots(coef), lambda t: _value(coef, t) >= 0, base=1.0, total=1.0 + P, alpha=alpha)
    grid = np.arange(-8, 8, 1e-3)
    p = (1 + (_value(coef, grid[None, None, :]) >= 0).sum(axis=1)) / (1 + P)  # (R, grid)
    for r in range(R):
        accepted = grid[p[r] > alpha]
        if accepted.size == 0:
            assert hull.empty[r]
            continue
        if np.isfinite(hull.low[r]):
            assert hull.low[r] == pytest.approx(accepted.min(), abs=2e-3)
        if np.isfinite(hull.high[r]):
            assert hull.high[r] == pytest.approx(accepted.max(), abs=2e-3)
        inside = (grid > hull.low[r] + 2e-3) & (grid < hull.high[r] - 2e-3)
        if np.any(p[r][inside] <= alpha):  # a rejected stretch inside the hull: the set has a hole
            assert not hull.connected[r]
        # windowed: from the first accepted grid point, the sup over (above, 8]
        above = np.full(R, accepted.min())
        sup = acceptance_sup(real_roots(coef), lambda t: _value(coef, t) >= 0, base=1.0, total=1.0 + P, alpha=alpha,
                             above=above, below=np.full(R, 8.0))
        assert sup[r] == pytest.approx(accepted.max(), abs=2e-3)


def test_a_draw_fitted_exactly_counts_at_every_effect():
    # Prop 99's in-time placebo (1980) has placebo states whose donors fit them to an MSPE of 1e-23:
    # their ratio is infinite, so they are at least as extreme as the treated unit whatever effect is
    # subtracted. Before, their comparison polynomials put a root at 1.6e23, reported as the upper
    # bound. Check against a grid on which such a draw's statistic is set to +inf.
    rng = np.random.default_rng(5)
    K, S = 20, 3
    a = rng.normal(size=(K, S))
    c = np.concatenate([[-1.0], rng.uniform(0, 0.4, K - 1)])[:, None] * np.ones((1, S))
    scale = rng.uniform(0.5, 2, K)
    scale[[4, 9]] = 1e-23  # two placebos fitted exactly
    res = invert_quadratic_permutation_test(a, c, scale, alpha=0.15)
    grid = np.arange(-8, 8, 5e-4)
    q = ((a[None] + c[None] * grid[:, None, None]) ** 2).sum(axis=2) / scale
    q[:, [4, 9]] = np.inf
    p = (q >= q[:, :1] * (1 - 1e-12)).mean(axis=1)
    accepted = grid[p > 0.15]
    assert res.p_value == pytest.approx(p[np.argmin(np.abs(grid))])
    assert res.conf_low == pytest.approx(accepted.min(), abs=1e-3) and res.conf_high == pytest.approx(accepted.max(), abs=1e-3)
    # with alpha below 3/20 the two infinite placebos keep every effect inside: the whole line
    whole = invert_quadratic_permutation_test(a, c, scale, alpha=0.1)
    assert (whole.conf_low, whole.conf_high) == (-math.inf, math.inf)
