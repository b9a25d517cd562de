"""im.did.ddd: doubly robust triple differences on a two-period panel.

Checks: (1) without covariates the DDD equals the triple interaction of the saturated regression
dy ~ s * q (brute force, statsmodels OLS; estimate to 1e-10, SE within 0.1% of HC0, the same
sandwich up to the sd(psi) degrees of freedom) and diff-diff 3.13.0's triple_difference (ATT to
1e-10; reference/diffdiff_ddd.json, make_diffdiff_ddd.py); (2) a simulation with a known effect
where trends depend on a covariate differently by cell, so only the covariate-adjusted DDD is
unbiased.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

import impact as im
from impact.errors import DataError

EFFECT = 1.5


def simulate(n=4000, seed=0, effect=EFFECT):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    s = (rng.random(n) < 1 / (1 + np.exp(-0.6 * x))).astype(int)
    q = (rng.random(n) < 1 / (1 + np.exp(0.4 * x))).astype(int)
    y0 = 1 + x + 0.5 * s + 0.3 * q + rng.normal(size=n)
    # untreated trends depend on x, differently by group and by partition but with no
    # group x partition x covariate term: DDD parallel trends hold conditional on x only
    trend = 0.5 + 0.4 * x + 0.3 * s * x + 0.2 * q + 0.5 * q * x
    y1 = y0 + trend + effect * s * q + rng.normal(size=n)
    ids = np.arange(n)
    return pd.concat([pd.DataFrame({"id": ids, "t": 0, "y": y0, "s": s, "q": q, "x": x}),
                      pd.DataFrame({"id": ids, "t": 1, "y": y1, "s": s, "q": q, "x": x})], ignore_index=True)


KW = {"outcome": "y", "unit": "id", "time": "t", "group": "s", "partition": "q"}


def test_without_covariates_equals_brute_force_and_diff_diff():
    df = simulate()
    res = im.did.ddd(df, **KW)
    wide = df.pivot(index="id", columns="t", values="y")
    base = df[df.t == 0].set_index("id")
    fit = smf.ols("dy ~ s * q", pd.DataFrame({"dy": wide[1] - wide[0], "s": base.s, "q": base.q})).fit(cov_type="HC0")
    assert res.estimate == pytest.approx(fit.params["s:q"], abs=1e-10)
    assert res.std_error == pytest.approx(fit.bse["s:q"], rel=1e-3)
    ref = json.loads((Path(__file__).parent / "reference" / "diffdiff_ddd.json").read_text())
    assert res.estimate == pytest.approx(ref["att"], abs=1e-10)
    tidy = res.tidy().set_index("term")
    parts = tidy["estimate"].to_numpy()
    assert parts[0] == pytest.approx(parts[1] + parts[2] - parts[3], abs=1e-12)


@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
def test_covariate_adjusted_ddd_recovers_the_effect():
    # 30 draws of 2,000 units: every doubly robust / regression DDD is centred on 1.5 and its 95%
    # interval covers it in at least 25 draws; the unadjusted DDD is biased (trends depend on x).
    rng_seeds = range(100, 130)
    results = {m: [] for m in ("imp", "trad", "reg", "none")}
    covered = {m: 0 for m in results}
    for seed in rng_seeds:
        df = simulate(n=2000, seed=seed)
        for m in results:
            res = im.did.ddd(df, **KW, covariates=None if m == "none" else ["x"], method="imp" if m == "none" else m)
            low, high = res.conf_int()
            covered[m] += low <= EFFECT <= high
            results[m].append(res.estimate)
    for m in ("imp", "trad", "reg"):
        assert np.mean(results[m]) == pytest.approx(EFFECT, abs=0.04), m
        assert covered[m] >= 25, (m, covered[m])
    assert np.mean(results["none"]) - EFFECT > 0.08  # the bias the covariates remove


def test_ddd_errors():
    df = simulate(n=400)
    with pytest.raises(DataError, match="cell s=0, q=0 is empty"):
        im.did.ddd(df[~((df.s == 0) & (df.q == 0))], **KW)
    with pytest.raises(DataError, match="observed in only one period"):
        im.did.ddd(df.iloc[1:], **KW)
    with pytest.raises(DataError, match="coded 0/1"):
        im.did.ddd(df.assign(q=df.q * 2), **KW)
