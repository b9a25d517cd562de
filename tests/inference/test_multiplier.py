"""Multiplier bootstrap engine: every weight distribution has mean 0 and variance 1, so the bootstrap
standard error of a mean of influence functions converges to the analytic one; draws are seeded."""

import numpy as np
import pytest

from impact.errors import SpecError
from impact.inference.multiplier import multiplier_bootstrap


@pytest.mark.parametrize("kind", ["mammen", "rademacher", "webb"])
def test_bootstrap_se_matches_analytic_se(kind):
    rng = np.random.default_rng(0)
    n = 2_000
    influence = rng.normal(size=(n, 3)) * np.array([1.0, 2.0, 0.5])
    analytic = np.sqrt((influence**2).sum(axis=0)) / n
    draws = multiplier_bootstrap(influence, n_draws=4_000, seed=1, kind=kind)
    # IQR-based SEs from 4,000 draws: Monte Carlo error of a few per cent
    assert draws.std_errors == pytest.approx(analytic, rel=0.06)
    again = multiplier_bootstrap(influence, n_draws=4_000, seed=1, kind=kind)
    assert np.array_equal(draws.std_errors, again.std_errors)


def test_webb_with_clusters_uses_cluster_sums():
    rng = np.random.default_rng(3)
    clusters = np.repeat(np.arange(12), 50)
    influence = rng.normal(size=(600, 1)) + rng.normal(size=12)[clusters][:, None]
    sums = np.bincount(clusters, weights=influence[:, 0], minlength=12)
    analytic = np.sqrt((sums**2).sum()) / 600
    draws = multiplier_bootstrap(influence, n_draws=6_000, seed=2, kind="webb", clusters=clusters, n_clusters=12)
    assert draws.std_errors[0] == pytest.approx(analytic, rel=0.08)


def test_unknown_kind():
    with pytest.raises(SpecError, match="'webb'"):
        multiplier_bootstrap(np.ones((10, 1)), n_draws=10, kind="normal")
