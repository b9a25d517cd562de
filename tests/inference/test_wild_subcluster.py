"""Subcluster wild bootstrap (MacKinnon & Webb 2018) in impact.inference.wild and twfe.

Independent check: every Rademacher sign vector over the subclusters is enumerated, each bootstrap
sample is rebuilt explicitly (restricted fit, y* = fitted_r + u_r * v_{subcluster}, a full OLS refit
with unit and period dummies, CR1 t statistic by cluster) and the p-value must agree to 1e-12.
wildboottest 0.3.2 (PyPI) could not serve as a peer: its ``WildboottestCL(bootcluster=...)`` raises
IndexError in ``get_denom`` whenever the bootstrap clusters are finer than the clusters.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import FewTreatedClustersWarning, SpecError
from impact.inference.wild import wild_cluster_bootstrap


def _panel(seed=2, G=5, T=4, effect=0.0):
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(G):
        for u in range(2 + g % 2):
            fe = rng.normal()
            for t in range(T):
                d = int(g < 2 and t >= 2)
                rows.append({"region": g, "unit": f"{g}-{u}", "year": t, "d": d,
                             "y": fe + 0.2 * t + effect * d + rng.normal()})
    return pd.DataFrame(rows)


def _brute_force_p(df, sub_col):
    """Refit every enumerated bootstrap sample with full dummies; symmetric p-value of the CR1 t."""
    Z = np.column_stack([np.ones(len(df)), pd.get_dummies(df["unit"], drop_first=True).to_numpy(float),
                         pd.get_dummies(df["year"], drop_first=True).to_numpy(float)])
    X = np.column_stack([df["d"].to_numpy(float), Z])
    y = df["y"].to_numpy(float)
    cl = pd.factorize(df["region"])[0]
    G, (n, k) = cl.max() + 1, X.shape
    M = np.linalg.inv(X.T @ X)

    def t_stat(Y):  # Y: n x B
        b = M @ X.T @ Y
        e = Y - X @ b
        scores = np.stack([X[cl == g].T @ e[cl == g] for g in range(G)])  # G x k x B
        var = np.einsum("j,gjb,gmb,m->b", M[0], scores, scores, M[0]) * G / (G - 1) * (n - 1) / (n - k)
        return b[0] / np.sqrt(var)

    t_obs = t_stat(y[:, None])[0]
    gamma = np.linalg.lstsq(Z, y, rcond=None)[0]  # restricted fit under beta = 0
    fitted, resid = Z @ gamma, y - Z @ gamma
    sub = pd.factorize(df[sub_col])[0]
    S = sub.max() + 1
    signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * S, indexing="ij")).reshape(S, -1).T  # 2^S x S
    t_boot = t_stat(fitted[:, None] + resid[:, None] * signs[:, sub].T)
    return float(np.mean(np.abs(t_boot) >= abs(t_obs) - 1e-12 * abs(t_obs))), len(signs)


def test_twfe_subcluster_bootstrap_equals_brute_force_refits():
    df = _panel()
    p, B = _brute_force_p(df, "unit")
    res = im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="year", cluster="region", vcov="wild",
                      bootstrap_subcluster="unit", bootstrap_weights="rademacher", n_bootstrap=B,
                      bootstrap_enumerate_up_to=12)
    assert res.p_value == pytest.approx(p, abs=1e-12)
    assert "4,096 Rademacher sign vectors enumerated, weights by 12 subclusters" in res.inference


def test_unit_by_period_subclusters_keep_unit_effects_as_columns():
    df = _panel(seed=5, G=3, T=3)  # 3 x ... units x 3 periods: 21 cells is too many to enumerate; use 4 units
    df = df.loc[df["unit"].isin(["0-0", "0-1", "1-0", "2-0"])].reset_index(drop=True)
    df["cell"] = df["unit"] + "_" + df["year"].astype(str)
    p, B = _brute_force_p(df, "cell")
    res = im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="year", cluster="region", vcov="wild",
                      bootstrap_subcluster="cell", bootstrap_weights="rademacher", n_bootstrap=B,
                      bootstrap_enumerate_up_to=12)
    assert res.p_value == pytest.approx(p, abs=1e-12)


def _rejections(reps, effect, n_treated=2, seed=0):
    """Share of p <= 0.05 for the WCR bootstrap by region and by unit (subcluster): 8 regions x 4 units
    x 6 periods, unit and period effects, iid errors (no within-region correlation beyond the unit
    effects, where the subcluster bootstrap is valid), treatment from period 3 in the first regions."""
    rng = np.random.default_rng(seed)
    region = np.repeat(np.arange(8), 24)
    unit = np.repeat(np.arange(32), 6)
    year = np.tile(np.arange(6), 32)
    d = ((region < n_treated) & (year >= 3)).astype(float)
    T = (year[:, None] == np.arange(1, 6)[None, :]).astype(float)

    def within(a):  # absorb unit effects (nested in units, so valid for both bootstraps)
        means = np.stack([np.bincount(unit, weights=col) / 6 for col in np.atleast_2d(a.T)]).T
        return a - means[unit].reshape(a.shape)

    X = within(np.column_stack([d, T]))
    out = {"region": 0, "unit": 0}
    for r in range(reps):
        y = within(rng.normal(size=32)[unit] + 0.1 * year + effect * d + rng.normal(size=len(d)))
        for name, sub in (("region", None), ("unit", unit)):
            res = wild_cluster_bootstrap(X, y, region, coef=0, n_bootstrap=399, seed=r, absorbed=32,
                                         subclusters=sub)
            out[name] += res.p_value <= 0.05
    return {k: v / reps for k, v in out.items()}


def test_subclusters_keep_size_and_restore_power_with_one_treated_region():
    # known truth: zero effect (size), then an effect of 1 sd (power); one treated region of 8, where the
    # WCR bootstrap by region can never reject (MacKinnon & Webb 2018); 120 replications, MC s.e. 0.02
    size = _rejections(120, 0.0, n_treated=1)
    power = _rejections(120, 1.0, n_treated=1, seed=1)
    assert size["unit"] <= 0.11 and size["region"] <= 0.05, size
    assert power["region"] <= 0.05 and power["unit"] >= 0.15, power


def test_few_treated_warning_names_the_remedy():
    df = _panel()
    with pytest.warns(FewTreatedClustersWarning, match="wild bootstrap with few treated clusters.*bootstrap_subcluster"):
        im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="year", cluster="region", vcov="wild",
                    n_bootstrap=999, seed=1)


def test_bad_input_is_typed():
    df = _panel()
    with pytest.raises(SpecError, match="vcov='wild' only"):
        im.did.twfe(df, outcome="y", treatment="d", unit="unit", time="year", cluster="region", vcov="CR2",
                    bootstrap_subcluster="unit")
    spanning = df.assign(block=df["year"])  # periods span every region
    with pytest.raises(SpecError, match="span more than one cluster"):
        im.did.twfe(spanning, outcome="y", treatment="d", unit="unit", time="year", cluster="region", vcov="wild",
                    bootstrap_subcluster="block", n_bootstrap=999)
    X = np.column_stack([df["d"], np.ones(len(df))]).astype(float)
    cl = pd.factorize(df["region"])[0]
    with pytest.raises(SpecError, match="finer than the clusters"):
        wild_cluster_bootstrap(X, df["y"].to_numpy(float), cl, coef=0, subclusters=cl, n_bootstrap=999)
