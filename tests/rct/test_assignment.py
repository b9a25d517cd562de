"""im.rct.assign: reproducible randomizr-style assignment.

Independent checks: counts against the rounding rule written out by hand (randomizr complete_ra:
floor(N p) plus one with probability N p - floor(N p)); marginal probabilities by simulation
(binomial tolerance); cluster and block structure by direct grouping.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import DataError, SpecError


@pytest.fixture(scope="module")
def firms():
    f = im.datasets.load("sweden_firms")
    return f.assign(cluster=f.region_code.astype(str) + "-" + f.sector)


def test_seeded_and_input_untouched(firms):
    before = firms.copy()
    a = im.rct.assign(firms, method="block", blocks="region_code", prob=0.5, seed=42)
    b = im.rct.assign(firms, method="block", blocks="region_code", prob=0.5, seed=42)
    pd.testing.assert_frame_equal(firms, before)
    assert "assignment" not in firms.columns
    pd.testing.assert_series_equal(a.data["assignment"], b.data["assignment"])
    assert not a.redraw(seed=43).data["assignment"].equals(a.data["assignment"])
    assert a.seed == 42 and a.method == "block"


def test_block_counts_follow_the_rounding_rule(firms):
    a = im.rct.assign(firms, method="block", blocks="region_code", prob=0.5, seed=1)
    counts = a.data.groupby("region_code")["assignment"].apply(lambda s: (s == "treatment").sum())
    sizes = firms.groupby("region_code").size()
    # odd blocks get floor(N/2) or floor(N/2) + 1 treated; even blocks exactly N/2
    assert np.all((counts == sizes // 2) | ((sizes % 2 == 1) & (counts == sizes // 2 + 1)))


def test_marginal_probabilities_are_exact_with_remainders():
    # 7 units, probabilities (0.2, 0.3, 0.5): floor counts (1, 2, 3) and one unit left over
    a = im.rct.assign(pd.DataFrame({"x": range(7)}), prob=[0.2, 0.3, 0.5], arms=("c", "a", "v"), seed=5)
    draws = a.permutations(60_000, seed=1)
    shares = np.array([(draws == k).mean() for k in range(3)])
    assert shares == pytest.approx([0.2, 0.3, 0.5], abs=0.006)
    per_draw = np.stack([(draws == k).sum(axis=1) for k in range(3)], axis=1)
    assert set(map(tuple, per_draw)) <= {(2, 2, 3), (1, 3, 3), (1, 2, 4)}
    np.testing.assert_allclose(a.probabilities.to_numpy(), np.broadcast_to([0.2, 0.3, 0.5], (7, 3)))
    # two arms, N p not an integer: 10 units at p = 0.35 -> 3 treated w.p. 0.5, 4 w.p. 0.5
    two = im.rct.assign(pd.DataFrame({"x": range(10)}), prob=0.35, seed=2).permutations(40_000, seed=3)
    treated = two.sum(axis=1)
    assert set(np.unique(treated)) == {3, 4}
    assert (treated == 4).mean() == pytest.approx(0.5, abs=0.01)


def test_cluster_and_block_cluster(firms):
    a = im.rct.assign(firms, method="block_cluster", blocks="region_code", clusters="cluster", seed=3)
    assert a.data.groupby("cluster")["assignment"].nunique().max() == 1
    n_cl = firms.groupby("region_code")["cluster"].nunique()
    treated_cl = a.data.loc[a.data.assignment == "treatment"].groupby("region_code")["cluster"].nunique().reindex(n_cl.index, fill_value=0)
    assert np.all(np.abs(treated_cl - n_cl / 2) <= 0.5)
    c = im.rct.assign(firms, method="cluster", clusters="cluster", n=40, seed=4)
    assert c.data.loc[c.data.assignment == "treatment", "cluster"].nunique() == 40


def test_complete_with_counts_and_simple():
    df = pd.DataFrame({"x": range(100)})
    a = im.rct.assign(df, method="complete", n=[30, 30, 40], arms=(0, 1, 2), seed=1)
    assert a.data["assignment"].value_counts().sort_index().tolist() == [30, 30, 40]
    s = im.rct.assign(df, method="simple", prob=0.3, seed=2)
    draws = s.permutations(5000, seed=1)
    assert draws.mean() == pytest.approx(0.3, abs=0.01)
    assert len(np.unique(draws.sum(axis=1))) > 5  # counts vary under simple randomisation
    assert s.weights.iloc[0] in (pytest.approx(1 / 0.3), pytest.approx(1 / 0.7))


def test_assignment_feeds_the_estimators_and_the_engine(firms):
    a = im.rct.assign(firms, method="block", blocks="region_code", seed=9)
    data = a.data.assign(y=np.random.default_rng(0).normal(size=len(firms)))
    r = im.rct.difference_in_means(data, outcome="y", treatment="assignment", blocks="region_code")
    assert r.n_treated == (a.data.assignment == "treatment").sum()
    scheme = a.scheme()
    assert scheme.n_strata == firms.region_code.nunique()


def test_errors(firms):
    with pytest.raises(SpecError, match="method"):
        im.rct.assign(firms, method="blocked")
    with pytest.raises(SpecError, match="needs blocks"):
        im.rct.assign(firms, method="block")
    with pytest.raises(DataError, match="within one block"):
        im.rct.assign(firms, method="block_cluster", blocks="region_code", clusters="sector")
    with pytest.raises(SpecError, match="summing"):
        im.rct.assign(firms, method="complete", n=[10, 10])
    with pytest.raises(DataError, match="already has a column"):
        im.rct.assign(firms.assign(assignment=1))
