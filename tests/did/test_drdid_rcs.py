"""drdid(panel=False): the repeated-cross-section estimators against moderndid 0.2.0 (PyPI), which
equals R did/DRDID to 5e-5. Reference: tests/did/reference/moderndid_rcs.json, written by
make_moderndid_rcs.py beside it (the exact moderndid calls are stored per case).

Tolerances: ATT 1e-6 relative; the influence function 1e-6 absolute (scaled by max |psi|) and the
standard error 1e-8 relative once moderndid's convention sd(psi) sqrt(n-1)/n is applied (impact
reports R DRDID's sd(psi)/sqrt(n), larger by sqrt(n/(n-1))). For "imp" and "imp_local" the propensity score comes
from inverse probability tilting, which impact solves to machine precision (covariate balance
1e-15) while moderndid's optimiser stops at a relative imbalance of about 1e-5: its ATT agrees to
1e-6 relative, its standard error to 1e-4 relative.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import DataError, SpecError

ROOT = Path(__file__).resolve().parents[2]
CASES = json.loads((Path(__file__).parent / "reference" / "moderndid_rcs.json").read_text())["cases"]
NSW_COVS = ["age", "educ", "black", "married", "nodegree", "hisp", "re74"]


def _nsw():
    nsw = im.datasets.load("nsw_long")
    return nsw[(nsw["treated"] == 0) | (nsw["sample"] == 2)], "re", "experimental", NSW_COVS


def _mpdta():
    mpdta = im.datasets.load("mpdta")
    two = mpdta[mpdta["year"].isin([2006, 2007]) & mpdta["first.treat"].isin([0, 2007])].copy()
    two["group2007"] = (two["first.treat"] == 2007).astype(int)
    rank = two.groupby("first.treat")["countyreal"].rank(method="dense", pct=True)
    return two[(two["year"] == 2006) == (rank <= 0.5)], "lemp", "group2007", ["lpop"]


@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_moderndid(case):
    data, method = case.split("/")
    df, y, d, covs = _nsw() if data == "nsw" else _mpdta()
    res = im.did.drdid(df, outcome=y, time="year", treatment=d, covariates=covs, method=method, panel=False)
    ref = CASES[case]
    assert res.n_obs == ref["n"]
    assert res.estimate == pytest.approx(ref["att"], rel=1e-6)
    n = res.n_obs
    moderndid_se = res.std_error * np.sqrt(n) * np.sqrt(n - 1) / n  # sd(psi) sqrt(n-1)/n
    assert moderndid_se == pytest.approx(ref["se"], rel=1e-4 if method.startswith("imp") else 1e-8)


def test_influence_function_matches():
    from impact.did._rcs import cross_section_att

    df, y, d, covs = _nsw()
    post = (df["year"] == df["year"].max()).to_numpy(float)
    for method in ("trad", "reg", "std_ipw"):
        _, psi, _ = cross_section_att(df[y].to_numpy(float), post, df[d].to_numpy(float),
                                      df[covs].to_numpy(float), None, method)
        ref = CASES[f"nsw/{method}"]
        np.testing.assert_allclose(psi[:50], ref["influence_head"], atol=1e-6 * np.abs(psi).max())
        assert np.sum(psi**2) == pytest.approx(ref["influence_sumsq"], rel=1e-8)


def test_simulated_cross_sections_recover_the_effect():
    # 40 draws of 4,000 observations: selection on x into the treated group, a common trend that
    # depends on x (so unconditional DiD is biased), true ATT 2. Every estimator's mean is near 2 and
    # its 95% interval covers 2 in at least 33 of 40 draws.
    rng = np.random.default_rng(1)
    hits = {m: 0 for m in ("imp", "trad", "reg", "std_ipw")}
    means = {m: [] for m in hits}
    for _ in range(40):
        n = 4000
        x = rng.normal(size=n)
        d = (rng.random(n) < 1 / (1 + np.exp(-(0.5 * x)))).astype(int)
        post = rng.integers(0, 2, n)
        y = 1 + x + d + post * (0.5 + 0.8 * x) + 2.0 * d * post + rng.normal(size=n)
        df = pd.DataFrame({"y": y, "x": x, "d": d, "t": post})
        for m in hits:
            res = im.did.drdid(df, outcome="y", time="t", treatment="d", covariates=["x"], method=m, panel=False)
            low, high = res.conf_int()
            hits[m] += low <= 2.0 <= high
            means[m].append(res.estimate)
    for m in hits:
        assert hits[m] >= 33, (m, hits[m])
        assert np.mean(means[m]) == pytest.approx(2.0, abs=0.05)


def test_cross_section_errors():
    df, y, d, covs = _mpdta()
    with pytest.raises(SpecError, match="method='ipw' is not available for repeated cross-sections"):
        im.did.drdid(df, outcome=y, time="year", treatment=d, method="ipw", panel=False)
    one_group = df[~((df["year"] == 2006) & (df[d] == 1))]
    with pytest.raises(DataError, match="no treated observations in the pre period"):
        im.did.drdid(one_group, outcome=y, time="year", treatment=d, panel=False)
    bad = df.assign(**{d: df[d].where(df.index != df.index[0], 2)})
    with pytest.raises(DataError, match="treated-group indicator coded 0/1"):
        im.did.drdid(bad, outcome=y, time="year", treatment=d, panel=False)
    with pytest.raises(SpecError, match="panel data need unit="):
        im.did.drdid(df, outcome=y, time="year", treatment=d)
