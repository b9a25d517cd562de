"""Net-to-gross ratio and cost per net outcome: Fieller sets against closed forms and a coverage simulation.

Sources: Fieller (1954), JRSS B 16(2) 175-185 (the set {rho: (a - rho b)^2 <= q^2 (va - 2 rho c + rho^2 vb)});
with a fixed numerator B the set for B / N is the image of the interval for N, [B / (N + q s), B / (N - q s)],
when that interval excludes zero (Polsky et al. 1997, Health Economics 6(3), the "Fieller" method with a
known cost), and two rays when it covers zero.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from impact.errors import DataError
from impact.monitoring.additionality import additionality, fieller


def test_cost_per_net_outcome_is_the_image_of_the_net_interval():
    q = stats.norm.ppf(0.975)
    r = additionality(gross=1000, net=400, net_std_error=80, gross_indicator="RCR01", net_evaluation="jobs",
                      unit="annual FTEs", resources=120.0, resources_unit="MSEK")
    cost = r.cost_per_net
    assert cost.estimate == pytest.approx(0.3)
    assert (cost.low, cost.high) == pytest.approx((120 / (400 + q * 80), 120 / (400 - q * 80)), rel=1e-12)
    assert cost.shape == "bounded"
    # gross is a count (no sampling error): the ratio's interval is the net interval over gross
    assert (r.net_to_gross.low, r.net_to_gross.high) == pytest.approx(((400 - q * 80) / 1000, (400 + q * 80) / 1000), rel=1e-12)
    # delta method: se = B s / N^2
    assert cost.delta_std_error == pytest.approx(120 * 80 / 400**2)


def test_t_critical_value_with_df():
    q = stats.t.ppf(0.975, 6)
    r = fieller(400, 1000, 80**2, 0.0, df=6)
    assert (r.low, r.high) == pytest.approx(((400 - q * 80) / 1000, (400 + q * 80) / 1000))


def test_net_effect_not_distinguishable_from_zero_gives_an_unbounded_cost():
    r = additionality(gross=1000, net=100, net_std_error=80, gross_indicator="RCR01", net_evaluation="jobs",
                      unit="annual FTEs", resources=120.0)
    q = stats.norm.ppf(0.975)
    assert r.cost_per_net.shape == "unbounded"
    assert (r.cost_per_net.low, r.cost_per_net.high) == pytest.approx(sorted((120 / (100 - q * 80), 120 / (100 + q * 80))))
    assert "unbounded" in r.cost_per_net.describe()


def test_everything_when_both_are_noise():
    assert fieller(0.1, 0.1, 1.0, 1.0).shape == "everything"


def test_fieller_coverage_with_both_estimated():
    """Jointly normal (a, b) with a noisy denominator: Fieller covers at the nominal 95%, the delta method does not."""
    rng = np.random.default_rng(20261129)
    rho, b_true, sa, sb = 0.5, 2.0, 0.4, 0.8
    reps = 4000
    a = rng.normal(rho * b_true, sa, reps)
    b = rng.normal(b_true, sb, reps)
    hit_f = hit_d = 0
    for x, y in zip(a, b):
        r = fieller(x, y, sa**2, sb**2)
        if r.shape == "bounded":
            hit_f += r.low <= rho <= r.high
        elif r.shape == "unbounded":
            hit_f += rho <= r.low or rho >= r.high
        else:
            hit_f += 1
        hit_d += r.delta_low <= rho <= r.delta_high
    mc = 3 * math.sqrt(0.95 * 0.05 / reps)  # 3 Monte Carlo standard errors
    assert abs(hit_f / reps - 0.95) < mc
    assert hit_d / reps < 0.95 - mc


@pytest.mark.parametrize("kwargs, message", [
    ({"gross": 0}, "needs a positive gross figure"),
    ({"net_std_error": -1}, "finite non-negative"),
    ({"net": 0.0, "resources": 5.0}, "undefined"),
])
def test_bad_input(kwargs, message):
    base = dict(gross=10, net=4, net_std_error=1, gross_indicator="RCR01", net_evaluation="e", unit="u")
    with pytest.raises(DataError, match=message):
        additionality(**{**base, **kwargs})


def test_delta_method_matches_car():
    """car 3.1.1 deltaMethod(c(a=, b=), "a / b", vcov. = V), R 4.2.2 (tests/monitoring/reference/delta_ratio.R); 1e-10."""
    import json
    from pathlib import Path

    from impact.monitoring.additionality import delta_ratio

    ref = json.loads((Path(__file__).parent / "reference" / "delta_ratio.json").read_text())
    for case in ref["cases"]:
        r = fieller(case["a"], case["b"], case["va"], case["vb"], case["cov"])
        assert r.estimate == pytest.approx(case["estimate"], rel=1e-12)
        assert delta_ratio(case["a"], case["b"], case["va"], case["vb"], case["cov"]) == pytest.approx(case["se"], rel=1e-10)
        assert r.delta_std_error == pytest.approx(case["se"], rel=1e-10)
