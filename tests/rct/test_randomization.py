"""Randomisation inference and the balance table.

Checks: exact p-values against a brute-force enumeration written here (itertools, pandas group
means); Monte Carlo p-values against the exact ones; the test's size under the null by simulation;
the interval by test inversion against re-running the test at its end points.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import DataError, SpecError


def brute_force_blocked(d: pd.DataFrame, weights_by_size: bool = True) -> tuple[float, np.ndarray]:
    """Every within-block assignment with the observed counts; estimatr's blocked DiM."""
    blocks = sorted(d.b.unique())
    options = []
    for b in blocks:
        idx = np.flatnonzero(d.b.to_numpy() == b)
        k = int(d.t.to_numpy()[idx].sum())
        options.append([(idx, set(c)) for c in itertools.combinations(idx, k)])
    y = d.y.to_numpy()

    def dim(assign):
        total = 0.0
        for idx, treated in assign:
            mask = np.isin(idx, list(treated))
            total += len(idx) / len(y) * (y[idx][mask].mean() - y[idx][~mask].mean())
        return total

    obs = dim([(np.flatnonzero(d.b.to_numpy() == b), set(np.flatnonzero((d.b.to_numpy() == b) & (d.t.to_numpy() == 1)))) for b in blocks])
    draws = np.array([dim(a) for a in itertools.product(*options)])
    return obs, draws


@pytest.fixture
def small_blocked():
    rng = np.random.default_rng(11)
    b = np.repeat([0, 1, 2], [6, 5, 4])
    t = np.r_[1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0]
    y = 1 + 0.8 * t + 0.5 * b + rng.normal(size=15)
    return pd.DataFrame({"y": y, "t": t, "b": b})


def test_exact_blocked_p_value_matches_brute_force(small_blocked):
    obs, draws = brute_force_blocked(small_blocked)
    expected = np.mean(np.abs(draws) >= abs(obs) - 1e-12)
    r = im.rct.randomization_test(small_blocked, outcome="y", treatment="t", blocks="b", n_permutations=10_000)
    assert r.diagnostics["exact"] and r.diagnostics["n_draws"] == len(draws) == 20 * 10 * 6
    assert r.estimate == pytest.approx(obs, abs=1e-12)
    assert r.p_value == pytest.approx(expected, abs=1e-12)
    # Monte Carlo agrees within 4 MC standard errors
    mc = im.rct.randomization_test(small_blocked, outcome="y", treatment="t", blocks="b", exact=False,
                                   n_permutations=20_000, seed=3)
    assert abs(mc.p_value - expected) < 4 * np.sqrt(expected * (1 - expected) / 20_000)


def test_exact_clustered_p_value_matches_brute_force():
    # 6 clusters of unequal size, 3 treated: 20 assignments; DiM of unit means (as estimatr)
    rng = np.random.default_rng(12)
    sizes = [2, 4, 3, 5, 2, 3]
    cl = np.repeat(np.arange(6), sizes)
    tc = np.array([1, 0, 1, 0, 0, 1])
    y = 0.5 * tc[cl] + rng.normal(size=cl.size)
    d = pd.DataFrame({"y": y, "t": tc[cl], "c": cl})
    draws = []
    for treated in itertools.combinations(range(6), 3):
        tt = np.isin(cl, treated)
        draws.append(y[tt].mean() - y[~tt].mean())
    obs = y[tc[cl] == 1].mean() - y[tc[cl] == 0].mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", im.errors.FragileInferenceWarning)
        r = im.rct.randomization_test(d, outcome="y", treatment="t", clusters="c")
    assert r.diagnostics["exact"] and r.diagnostics["n_draws"] == 20
    assert r.p_value == pytest.approx(np.mean(np.abs(draws) >= abs(obs) - 1e-12), abs=1e-12)


def test_studentized_and_coefficient_statistics_exact(small_blocked):
    # Coefficient with block effects equals the OLS coefficient of t in y ~ t + C(b) (numpy lstsq)
    d = small_blocked
    X = np.column_stack([np.ones(15), d.t, d.b == 1, d.b == 2]).astype(float)
    beta = np.linalg.lstsq(X, d.y.to_numpy(), rcond=None)[0][1]
    r = im.rct.randomization_test(d, outcome="y", treatment="t", blocks="b", statistic="coefficient")
    assert r.estimate == pytest.approx(beta, abs=1e-10)
    s = im.rct.randomization_test(d, outcome="y", treatment="t", blocks="b", statistic="studentized")
    dim = im.rct.difference_in_means(d, outcome="y", treatment="t", blocks="b")
    assert s.tidy()["statistic"].iloc[0] == pytest.approx(dim.estimate / dim.std_error, abs=1e-10)


def test_callable_statistic_matches_builtin(small_blocked):
    def dim(y, t):
        return (t @ y) / t.sum(1) - ((1 - t) @ y) / (1 - t).sum(1)

    a = im.rct.randomization_test(small_blocked, outcome="y", treatment="t", statistic=dim, exact=False, seed=5, n_permutations=3000)
    b = im.rct.randomization_test(small_blocked, outcome="y", treatment="t", exact=False, seed=5, n_permutations=3000)
    assert a.p_value == pytest.approx(b.p_value, abs=1e-12)


def test_size_under_the_null_simulation():
    # Sharp null true (no effect): rejection at 5% should be about 5%. 300 trials x 199 draws;
    # binomial 99.9% band for 300 trials at p = 0.05 is roughly [0.015, 0.10].
    rng = np.random.default_rng(13)
    rejections = 0
    for i in range(300):
        y = rng.exponential(size=40)
        t = rng.permutation(np.r_[np.ones(20), np.zeros(20)])
        r = im.rct.randomization_test(pd.DataFrame({"y": y, "t": t}), outcome="y", treatment="t",
                                      n_permutations=199, seed=i)
        rejections += r.p_value <= 0.05
    assert 0.015 <= rejections / 300 <= 0.10


def test_interval_by_inversion_has_p_equal_alpha_at_its_ends():
    nsw = im.datasets.load("nsw_dw")
    r = im.rct.randomization_test(nsw, outcome="re78", treatment="treat", n_permutations=4000, seed=2)
    lo, hi = r.conf_int()
    assert lo < r.estimate < hi
    for end, inside in ((lo, lo + 5), (hi, hi - 5)):
        shifted = nsw.assign(re78=nsw.re78 - end * nsw.treat)
        p_end = im.rct.randomization_test(shifted, outcome="re78", treatment="treat", n_permutations=4000, seed=2).p_value
        shifted = nsw.assign(re78=nsw.re78 - inside * nsw.treat)
        p_in = im.rct.randomization_test(shifted, outcome="re78", treatment="treat", n_permutations=4000, seed=2).p_value
        assert p_in > 0.05 and p_end <= 0.06


def test_nsw_randomisation_p_value_is_small_and_close_to_analytic():
    # NSW (Dehejia-Wahba): $1,794 effect, Neyman t = 2.67 -> two-sided p about 0.008.
    nsw = im.datasets.load("nsw_dw")
    r = im.rct.randomization_test(nsw, outcome="re78", treatment="treat", n_permutations=10_000, seed=1)
    assert r.estimate == pytest.approx(1794.34, abs=0.01)
    assert 0.002 < r.p_value < 0.02
    assert "Randomisation distribution of the statistic" in r.figures()
    assert r.to_dict()["settings"]["seed"] == 1


def test_balance_table_omnibus():
    nsw = im.datasets.load("nsw_dw")
    covs = ["age", "educ", "re74", "re75", "black", "hisp", "marr", "nodegree"]
    b = im.rct.balance_table(nsw, treatment="treat", covariates=covs, n_permutations=2000, seed=1)
    omni = b.diagnostics["omnibus"]
    # the classical F from statsmodels OLS of treat on the covariates
    import statsmodels.api as sm

    fit = sm.OLS(nsw.treat.astype(float), sm.add_constant(nsw[covs].astype(float))).fit()
    assert omni["F"] == pytest.approx(fit.fvalue, rel=1e-10)
    assert omni["classical_p_value"] == pytest.approx(fit.f_pvalue, rel=1e-8)
    assert abs(omni["randomization_p_value"] - fit.f_pvalue) < 0.02  # large n: permutation ~ F
    assert b.headline == "joint (F, randomisation p)" and list(b.balance["covariate"]) == covs
    nd = b.balance.set_index("covariate").loc["nodegree"]
    assert nd["difference"] == pytest.approx(nsw.loc[nsw.treat == 1, "nodegree"].mean() - nsw.loc[nsw.treat == 0, "nodegree"].mean())


def test_errors():
    nsw = im.datasets.load("nsw_dw")
    with pytest.raises(SpecError, match="statistic"):
        im.rct.randomization_test(nsw, outcome="re78", treatment="treat", statistic="t")
    with pytest.raises(SpecError, match="covariates"):
        im.rct.randomization_test(nsw, outcome="re78", treatment="treat", covariates=["age"])
    with pytest.raises(DataError, match="treat"):
        im.rct.balance_table(nsw, treatment="treatment", covariates=["age"])


def test_design_from_assign_reruns_its_procedure():
    firms = im.datasets.load("sweden_firms")
    a = im.rct.assign(firms.drop(columns=["assigned"]), method="block", blocks="region_code", seed=3)
    data = a.data.assign(y=np.random.default_rng(1).normal(size=len(firms)))
    r = im.rct.randomization_test(data, outcome="y", treatment="assignment", design=a, n_permutations=500, seed=1)
    manual = im.rct.randomization_test(data, outcome="y", treatment="assignment", blocks="region_code",
                                       n_permutations=500, seed=1)
    assert r.p_value == manual.p_value and r.settings["blocks"] == "region_code"
    s = im.rct.assign(firms.drop(columns=["assigned"]), method="simple", prob=0.3, seed=4)
    rs = im.rct.randomization_test(s.data.assign(y=data.y), outcome="y", treatment="assignment", design=s,
                                   n_permutations=500, seed=1)
    assert rs.settings["method"] == "simple" and rs.settings["prob"] == pytest.approx(0.3)


def test_blocks_with_one_arm_are_left_out_of_the_statistic(small_blocked):
    # a block where every unit is treated carries no comparison: the statistic (and its draws) equal
    # those of the data without that block
    extra = pd.DataFrame({"y": [5.0, 6.0, 7.0], "t": [1, 1, 1], "b": [9, 9, 9]})
    with_block = im.rct.randomization_test(pd.concat([small_blocked, extra]), outcome="y", treatment="t", blocks="b")
    without = im.rct.randomization_test(small_blocked, outcome="y", treatment="t", blocks="b")
    assert with_block.estimate == pytest.approx(without.estimate, abs=1e-12)
    assert with_block.p_value == pytest.approx(without.p_value, abs=1e-12)
    simple = im.rct.randomization_test(pd.concat([small_blocked, extra]), outcome="y", treatment="t", blocks="b",
                                       method="simple", prob=0.5, n_permutations=2000, seed=1)
    assert simple.estimate == pytest.approx(without.estimate, abs=1e-12)
