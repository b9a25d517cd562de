"""Power, MDE and sample size; simulated power.

Source: R 4.2.2 ``stats::power.t.test`` (tests/rct/reference/estimatr_extra.json, power_t_test).
R's default ``strict = FALSE`` ignores the far rejection tail, which we include (two-sided power):
power is compared with R's value plus that tail (computed here with scipy's noncentral t), to
1e-10; the solved n and effect differ from R's by the tail's influence (relative 1e-3). Cluster designs are checked against a simulation of a cluster trial.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import SpecError

R = json.loads((Path(__file__).parent / "reference" / "estimatr_extra.json").read_text())["results"]["power_t_test"]


def test_power_matches_power_t_test():
    # power.t.test(n = 100, delta = 0.3, sd = 1): n is per group, impact's n is the total
    from scipy import stats

    crit = stats.t.ppf(0.975, 198)
    far_tail = stats.nct.cdf(-crit, 198, 0.3 / np.sqrt(2 / 100))
    assert im.rct.power(effect=0.3, n=200).power == pytest.approx(R["power_n100_delta0.3"] + far_tail, abs=1e-10)
    # power.t.test(power = 0.8, delta = 0.25)
    solved = im.rct.power(effect=0.25, power=0.8)
    assert solved.solved_for == "n" and solved.n / 2 == pytest.approx(R["n_for_power0.8_delta0.25"], rel=1e-3)
    # power.t.test(n = 200, power = 0.8)
    mde = im.rct.power(n=400, power=0.8)
    assert mde.effect == pytest.approx(R["delta_n200_power0.8"], rel=1e-3)


def test_design_effect_and_r_squared_scale_the_standard_error():
    ind = im.rct.power(effect=0.2, n=1000)
    cl = im.rct.power(effect=0.2, n_clusters=100, cluster_size=10, icc=0.05)
    assert cl.design_effect == pytest.approx(1.45)
    assert cl.std_error == pytest.approx(ind.std_error * np.sqrt(1.45))
    cov = im.rct.power(effect=0.2, n=1000, r_squared=0.5)
    assert cov.std_error == pytest.approx(ind.std_error * np.sqrt(0.5))
    assert cl.power < ind.power < cov.power
    j = im.rct.power(effect=0.2, power=0.8, cluster_size=10, icc=0.05)
    assert j.solved_for == "n_clusters"
    assert im.rct.power(effect=0.2, n_clusters=j.n_clusters, cluster_size=10, icc=0.05).power == pytest.approx(0.8, abs=1e-8)


def test_cluster_power_agrees_with_simulation():
    # 40 clusters of 10, ICC 0.1, effect 0.3 SD; simulated with random cluster effects and the
    # clustered difference in means (CR2): analytic power within 3 Monte Carlo SE + 0.03
    analytic = im.rct.power(effect=0.3, n_clusters=40, cluster_size=10, icc=0.1).power

    def draw(rng):
        cl = np.repeat(np.arange(40), 10)
        tc = rng.permutation(np.repeat([0, 1], 20))
        u = rng.normal(scale=np.sqrt(0.1), size=40)
        y = 0.3 * tc[cl] + u[cl] + rng.normal(scale=np.sqrt(0.9), size=400)
        return pd.DataFrame({"y": y, "t": tc[cl], "c": cl})

    sim = im.rct.simulate_power(draw, "difference_in_means", n_simulations=200, seed=3,
                                options={"outcome": "y", "treatment": "t", "clusters": "c"}, true_effect=0.3)
    assert abs(sim.power - analytic) < 3 * sim.monte_carlo_error + 0.03
    table = sim.summary_table()
    assert abs(table["bias"]) < 0.03 and 0.9 <= table["coverage"] <= 0.99


def test_simulate_power_is_seeded_and_accepts_names():
    def draw(rng):
        t = rng.permutation(np.repeat([0, 1], 30))
        return pd.DataFrame({"y": 0.8 * t + rng.normal(size=60), "t": t, "x": rng.normal(size=60)})

    a = im.rct.simulate_power(draw, "lin", n_simulations=20, seed=1, options={"outcome": "y", "treatment": "t", "covariates": ["x"]})
    b = im.rct.simulate_power(draw, "rct.lin", n_simulations=20, seed=1, options={"outcome": "y", "treatment": "t", "covariates": ["x"]})
    pd.testing.assert_frame_equal(a.draws, b.draws)
    assert a.to_dict()["estimator"] == "rct.lin"
    with pytest.raises(SpecError, match="no estimator"):
        im.rct.simulate_power(draw, "rct.nonsense", n_simulations=5)


def test_power_errors_and_figures():
    with pytest.raises(SpecError, match="exactly two"):
        im.rct.power(effect=0.2)
    with pytest.raises(SpecError, match="cluster_size"):
        im.rct.power(effect=0.2, n_clusters=20)
    p = im.rct.power(effect=0.3, n=200)
    assert "Power curve" in p.figures() and p.to_dict()["solved_for"] == "power"
    assert p.curve()["power"].is_monotonic_increasing
