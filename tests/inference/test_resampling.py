"""Resampling split across an executor: the same seed gives bit-identical draws serially and on workers.

Every engine makes its draws in chunks that each have their own random stream (children of the seed's
SeedSequence) and one BLAS thread, so the numbers cannot depend on where the chunks run. The problems
below are sized to need several chunks (more than ``DRAWS_PER_CHUNK`` draws), so that two workers each
get some of them; equality is exact (``np.array_equal``), not a tolerance.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import impact as im
from impact.errors import SpecError
from impact.inference.multiplier import multiplier_bootstrap
from impact.inference.permutation import AssignmentScheme, null_distribution
from impact.inference.randomization import LinearComponents, adoption_randomization, randomization_joint_test
from impact.inference.resampling import DRAWS_PER_CHUNK, chunk_generators, map_chunks, parallel_draws, resolve_jobs
from impact.inference.wild import bootstrap_weights, wild_cluster_bootstrap

N = 2 * DRAWS_PER_CHUNK + 501  # three chunks, the last one short


def test_chunks_have_independent_streams_fixed_by_the_seed():
    a = [g.random(3) for g in chunk_generators(7, 3)]
    b = [g.random(3) for g in chunk_generators(7, 3)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[1])


def test_map_chunks_keeps_chunk_order_on_workers():
    assert map_chunks(lambda i: i * i, 7, n_jobs=2) == [i * i for i in range(7)]


def test_parallel_draws_sets_and_restores_the_number_of_workers():
    assert resolve_jobs(None) == 1
    with parallel_draws(2):
        assert resolve_jobs(None) == 2
        assert resolve_jobs(1) == 1
    assert resolve_jobs(None) == 1
    with pytest.raises(SpecError, match="n_jobs"):
        with parallel_draws(0):
            pass


@pytest.mark.parametrize("kind", ["mammen", "rademacher", "webb"])
def test_multiplier_bootstrap_identical_on_two_workers(kind):
    rng = np.random.default_rng(1)
    psi = rng.normal(size=(300, 4))
    serial = multiplier_bootstrap(psi, n_draws=N, seed=11, kind=kind)
    split = multiplier_bootstrap(psi, n_draws=N, seed=11, kind=kind, n_jobs=2)
    assert np.array_equal(serial.deviations, split.deviations)
    assert serial.critical_value == split.critical_value
    # memory-bound chunks (here 25 draws each): still identical across workers
    small = multiplier_bootstrap(psi, n_draws=N, seed=11, kind=kind, chunk_elements=300 * 25)
    with parallel_draws(2):
        small_split = multiplier_bootstrap(psi, n_draws=N, seed=11, kind=kind, chunk_elements=300 * 25)
    assert np.array_equal(small.deviations, small_split.deviations)


def test_wild_bootstrap_identical_on_two_workers():
    rng = np.random.default_rng(2)
    G, n = 12, 600
    clusters = np.repeat(np.arange(G), n // G)
    X = np.column_stack([rng.normal(size=n) + (clusters < 4), np.ones(n), rng.normal(size=n)])
    y = X @ np.array([0.3, 1.0, -0.5]) + rng.normal(size=n) + rng.normal(size=G)[clusters]
    for weight_type in ("webb", "rademacher"):
        serial = wild_cluster_bootstrap(X, y, clusters, coef=0, n_bootstrap=N, seed=5, weight_type=weight_type,
                                        enumerate_up_to=0)
        split = wild_cluster_bootstrap(X, y, clusters, coef=0, n_bootstrap=N, seed=5, weight_type=weight_type,
                                       enumerate_up_to=0, n_jobs=2)
        assert serial == split
    # the public weights are the engine's weights
    V, enumerated = bootstrap_weights(N, G, weight_type="webb", seed=5)
    assert not enumerated and V.shape == (N, G)


def test_enumerated_wild_bootstrap_identical_on_two_workers():
    rng = np.random.default_rng(3)
    G, n = 11, 440  # 2^11 = 2048 sign vectors: three chunks
    clusters = np.repeat(np.arange(G), n // G)
    X = np.column_stack([rng.normal(size=n), np.ones(n)])
    y = 0.2 * X[:, 0] + rng.normal(size=n)
    serial = wild_cluster_bootstrap(X, y, clusters, coef=0, n_bootstrap=4999, weight_type="rademacher")
    split = wild_cluster_bootstrap(X, y, clusters, coef=0, n_bootstrap=4999, weight_type="rademacher", n_jobs=2)
    assert serial.enumerated and serial.n_bootstrap == 2**G
    assert serial == split


def test_permutation_null_identical_on_two_workers():
    rng = np.random.default_rng(4)
    y = rng.normal(size=40)
    scheme = AssignmentScheme(np.repeat([0, 1], 20))

    def diff(t):
        return (t @ y) / 20 - ((1 - t) @ y) / 20

    serial = null_distribution(diff, scheme, n_permutations=N, seed=9)
    split = null_distribution(diff, scheme, n_permutations=N, seed=9, n_jobs=2)
    assert np.array_equal(serial.draws, split.draws)
    # the enumeration path is split too (6 of 12 treated: 924 assignments; chunk of 100)
    small = AssignmentScheme(np.repeat([0, 1], 6))
    z = y[:12]
    every = null_distribution(lambda t: t @ z, small, exact=True, chunk_bytes=100 * (12 * 13 + 8 + 64))
    with parallel_draws(2):
        every_split = null_distribution(lambda t: t @ z, small, exact=True, chunk_bytes=100 * (12 * 13 + 8 + 64))
    assert np.array_equal(every.draws, every_split.draws)


def _components(y):
    def components(labels):
        treated = (labels > 0).astype(float)
        k = treated.sum(axis=1, keepdims=True)
        a = (treated @ y[:, None]) / k - ((1 - treated) @ y[:, None]) / (len(y) - k)
        ones = np.ones_like(a)
        return LinearComponents(a, ones, 1.0 + (treated @ (y[:, None] ** 2)) / k, 0 * a, 0 * a)
    return components


def test_adoption_randomization_identical_on_two_workers():
    rng = np.random.default_rng(6)
    y = rng.normal(size=30)
    scheme = AssignmentScheme(np.repeat([0, 1], [24, 6]), method="complete", n_arms=2)  # 593,775 assignments: drawn
    components = _components(y)
    serial = adoption_randomization(components, scheme, n_permutations=N, seed=3)
    split = adoption_randomization(components, scheme, n_permutations=N, seed=3, chunk=700, n_jobs=2)
    same_chunks = adoption_randomization(components, scheme, n_permutations=N, seed=3, chunk=700)
    assert not serial.exact and serial.n_draws == N
    assert np.array_equal(same_chunks.draws.a, split.draws.a)
    assert np.array_equal(same_chunks.p_value, split.p_value)
    assert np.array_equal(same_chunks.conf_low, split.conf_low) and np.array_equal(same_chunks.conf_high, split.conf_high)
    joint = randomization_joint_test(components, scheme, [0], n_permutations=N, seed=3)
    with parallel_draws(2):
        joint_split = randomization_joint_test(components, scheme, [0], n_permutations=N, seed=3)
    assert joint == joint_split


def test_att_gt_bootstrap_identical_inside_parallel_draws():
    mpdta = im.datasets.load("mpdta")
    options = dict(outcome="lemp", unit="countyreal", time="year", cohort="first.treat", inference="analytic",
                   bootstrap=N, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = im.did.att_gt(mpdta, **options)
        with parallel_draws(2):
            split = im.did.att_gt(mpdta, **options)
    assert np.array_equal(serial.tidy()["std_error"].to_numpy(), split.tidy()["std_error"].to_numpy())
    assert np.array_equal(serial.tidy()["conf_low"].to_numpy(), split.tidy()["conf_low"].to_numpy())
