"""event_study(vcov="wild", bootstrap_subcluster=...): the subcluster wild bootstrap (MacKinnon & Webb 2018).

No peer computes it for an event study (R fwildclusterboot is not installed; wildboottest 0.3.2 fails
with bootstrap clusters finer than the clusters, see tests/inference/test_wild_subcluster.py), so the
independent checks are:

* a brute-force re-implementation in this file: every Rademacher sign vector over the subclusters is
  enumerated, each bootstrap sample is rebuilt explicitly (restricted least squares under the null
  ``a'beta = 0``, y* = fitted_r + u_r * v_subcluster) and refitted by OLS with full unit and period
  dummies, and the CR1 t statistic by cluster is compared with the observed one; the p-values must
  agree to 1e-12 (exact enumeration, so no Monte Carlo error);
* with leads=1, lags=0 the event study is the static TWFE, whose subcluster bootstrap is itself checked
  by brute force: the two must agree draw for draw;
* with subclusters equal to the clusters the subcluster path must reproduce the ordinary wild cluster
  bootstrap exactly (same seed, same weights).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
import impact.inference.wild as wild_module
from impact.errors import DataError, SpecError
from impact.inference.wild import wild_cluster_bootstrap

COMMON = {"outcome": "y", "unit": "unit", "time": "year", "cohort": "cohort", "cluster": "region", "vcov": "wild"}


def _panel(seed=2, G=5, T=5, effect=0.0):
    """G regions of 2-3 units (12 units for G=5), T periods; regions 0 and 1 adopt in period 2."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(G):
        for u in range(2 + g % 2):
            fe = rng.normal()
            for t in range(T):
                cohort = 2 if g < 2 else 0
                rows.append({"region": g, "unit": f"{g}-{u}", "year": t, "cohort": cohort,
                             "y": fe + 0.2 * t + effect * (cohort > 0 and t >= cohort) + rng.normal()})
    return pd.DataFrame(rows)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few (treated) clusters warnings: intended here
        return fn(*args, **kwargs)


def _brute_force_p(df, a_of, sub_col, weights=None):
    """p-value of the restricted wild bootstrap of ``a'beta = 0`` with every sign vector over ``sub_col``.

    ``a_of(names)`` gives the contrast over the event-time coefficients named ``e=k``. The model is the
    event study with explicit dummies (e=-1 the reference; never-treated units all zero). With analytic
    ``weights`` (a column) it is WLS: the model, the restricted fit and every refit are those of the
    rows scaled by sqrt(w)."""
    e = np.where(df["cohort"] > 0, df["year"] - df["cohort"], np.nan)
    times = sorted(int(v) for v in np.unique(e[np.isfinite(e)]) if v != -1)
    D = np.column_stack([(e == k).astype(float) for k in times])
    names = [f"e={k}" for k in times]
    Z = np.column_stack([np.ones(len(df)), pd.get_dummies(df["unit"], drop_first=True).to_numpy(float),
                         pd.get_dummies(df["year"], drop_first=True).to_numpy(float)])
    X = np.column_stack([D, Z])
    a = np.r_[a_of(names), np.zeros(Z.shape[1])]
    y = df["y"].to_numpy(float)
    if weights is not None:
        root = np.sqrt(df[weights].to_numpy(float))
        X, y = X * root[:, None], y * root
    cl = pd.factorize(df["region"])[0]
    G, (n, k) = cl.max() + 1, X.shape
    M = np.linalg.inv(X.T @ X)

    def t_stat(Y):  # Y: n x B
        b = M @ X.T @ Y
        resid = Y - X @ b
        scores = np.stack([X[cl == g].T @ resid[cl == g] for g in range(G)])  # G x k x B
        Ma = M @ a
        var = np.einsum("j,gjb,gmb,m->b", Ma, scores, scores, Ma) * G / (G - 1) * (n - 1) / (n - k)
        return (a @ b) / np.sqrt(var)

    t_obs = t_stat(y[:, None])[0]
    b = M @ X.T @ y
    b_r = b - M @ a * (a @ b) / (a @ M @ a)  # restricted least squares under a'beta = 0
    fitted = X @ b_r
    resid = y - fitted
    sub = pd.factorize(df[sub_col])[0]
    S = sub.max() + 1
    signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * S, indexing="ij")).reshape(S, -1).T  # 2^S x S
    t_boot = t_stat(fitted[:, None] + resid[:, None] * signs[:, sub].T)
    return float(np.mean(np.abs(t_boot) >= abs(t_obs) - 1e-12 * abs(t_obs))), len(signs)


def _one(names, term):
    return np.array([1.0 if n == term else 0.0 for n in names])


def _post_average(names):
    post = np.array([int(n[2:]) >= 0 for n in names], dtype=float)
    return post / post.sum()


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("term", ["e=0", "e=-2", "ATT (average e>=0)"])
def test_subcluster_p_values_equal_brute_force_refits(term, weighted):
    df = _panel()
    df["w"] = 1.0 + (pd.factorize(df["unit"])[0] % 3)  # analytic weights, constant within unit
    a_of = _post_average if term.startswith("ATT") else (lambda names: _one(names, term))
    p, B = _brute_force_p(df, a_of, "unit", "w" if weighted else None)
    res = _quiet(im.did.event_study, df, **COMMON, bootstrap_subcluster="unit", bootstrap_weights="rademacher",
                 n_bootstrap=B, seed=1, weights="w" if weighted else None)
    row = res.tidy().set_index("term").loc[term]
    assert row["p_value"] == pytest.approx(p, abs=1e-12)
    assert "all 4,096 Rademacher sign vectors enumerated, weights by 12 subclusters (MacKinnon & Webb 2018)" in row["inference"]


def test_single_post_bin_equals_twfe_subcluster_bootstrap():
    """leads=1, lags=0 with binned endpoints is the static TWFE: same p-value and interval, same seed."""
    df = _panel(seed=7, G=8, effect=0.5)
    df["D"] = ((df["cohort"] > 0) & (df["year"] >= df["cohort"])).astype(int)
    es = _quiet(im.did.event_study, df, **COMMON, leads=1, lags=0, bootstrap_subcluster="unit", n_bootstrap=999, seed=3)
    tw = _quiet(im.did.twfe, df, outcome="y", treatment="D", unit="unit", time="year", cluster="region", vcov="wild",
                bootstrap_subcluster="unit", n_bootstrap=999, seed=3)
    row = es.tidy().set_index("term").loc["e=0"]
    assert row["estimate"] == pytest.approx(tw.estimate, abs=1e-12)
    assert row["p_value"] == pytest.approx(tw.p_value, abs=1e-12)
    assert (row["conf_low"], row["conf_high"]) == pytest.approx(tw.conf_int(), abs=1e-9)
    assert es.settings["bootstrap_subcluster"] == "unit"


def test_subclusters_equal_to_clusters_reproduce_the_ordinary_wild_bootstrap(monkeypatch):
    """The engine refuses subclusters that are not finer than the clusters (the user meant the ordinary
    bootstrap); with that guard lifted, the subcluster path must give exactly the ordinary results."""
    df = _panel(seed=4, G=7)
    ordinary = _quiet(im.did.event_study, df, **COMMON, n_bootstrap=999, seed=5).tidy()
    with pytest.raises(SpecError, match="event_study: 7 subclusters for 7 clusters: subclusters must be finer"):
        _quiet(im.did.event_study, df, **COMMON, bootstrap_subcluster="region", n_bootstrap=999, seed=5)
    check = wild_module._check_subclusters

    def equal_allowed(subclusters, clusters, G, where="wild_cluster_bootstrap"):
        codes = np.unique(subclusters, return_inverse=True)[1].reshape(-1).astype(np.int64)
        cluster_of = np.zeros(codes.max() + 1, dtype=np.int64)
        cluster_of[codes] = clusters
        assert np.array_equal(cluster_of[codes], clusters)
        return codes, cluster_of

    monkeypatch.setattr(wild_module, "_check_subclusters", equal_allowed)
    by_region = _quiet(im.did.event_study, df, **COMMON, bootstrap_subcluster="region", n_bootstrap=999, seed=5).tidy()
    monkeypatch.setattr(wild_module, "_check_subclusters", check)
    for col in ("estimate", "std_error", "p_value", "conf_low", "conf_high"):
        np.testing.assert_allclose(by_region[col], ordinary[col], rtol=0, atol=1e-10, err_msg=col)
    assert "subclusters" in by_region["inference"].iloc[0] and "subclusters" not in ordinary["inference"].iloc[0]


def test_inference_text_and_settings_name_the_subcluster_bootstrap():
    df = _panel(G=6)
    res = _quiet(im.did.event_study, df, **COMMON, bootstrap_subcluster="unit", n_bootstrap=999, seed=1)
    table = res.tidy()
    estimated = table.loc[~table["reference"]]
    assert estimated["inference"].str.contains("weights by 15 subclusters \\(MacKinnon & Webb 2018\\)").all()
    assert estimated["p_value"].between(0, 1).all()
    assert (estimated["conf_low"] < estimated["estimate"]).all() and (estimated["estimate"] < estimated["conf_high"]).all()
    assert res.settings["bootstrap_subcluster"] == "unit"
    assert res.to_dict()["settings"]["bootstrap_subcluster"] == "unit"


def test_bad_input_is_typed():
    df = _panel()
    with pytest.raises(SpecError, match="vcov='wild' only"):
        im.did.event_study(df, **{**COMMON, "vcov": "CR2"}, bootstrap_subcluster="unit")
    with pytest.raises(SpecError, match="vcov='wild' only"):  # the default (vcov=None) is not the bootstrap
        im.did.event_study(df, **{k: v for k, v in COMMON.items() if k != "vcov"}, bootstrap_subcluster="unit")
    with pytest.raises(DataError, match="column\\(s\\) not found.*subcluster='block'"):
        _quiet(im.did.event_study, df, **COMMON, bootstrap_subcluster="block")
    spanning = df.assign(block=df["year"])  # periods span every region
    with pytest.raises(SpecError, match="event_study: 5 subcluster\\(s\\) span more than one cluster"):
        _quiet(im.did.event_study, spanning, **COMMON, bootstrap_subcluster="block", n_bootstrap=999)
    holes = df.assign(block=df["unit"].where(df.index != 3))
    with pytest.raises(DataError, match="missing values.*block"):
        _quiet(im.did.event_study, holes, **COMMON, bootstrap_subcluster="block", n_bootstrap=999, missing="error")
    kept = _quiet(im.did.event_study, holes, **COMMON, bootstrap_subcluster="block", n_bootstrap=999, seed=1)
    assert kept.n_obs == len(df) - 1  # missing="drop" drops the row and records it
    X = np.column_stack([np.ones(len(df)), df["year"]]).astype(float)
    cl = pd.factorize(df["region"])[0]
    with pytest.raises(SpecError, match="one code per row \\(60\\)"):
        wild_cluster_bootstrap(X, df["y"].to_numpy(float), cl, coef=1, subclusters=np.arange(10), n_bootstrap=999)
    assert "block" in holes.columns and holes["block"].isna().sum() == 1  # the caller's frame is untouched


@pytest.mark.filterwarnings("ignore::impact.errors.FewClustersWarning")
@pytest.mark.filterwarnings("ignore:.*with so few treated clusters every cluster-based method")
def test_few_treated_warning_names_the_remedy():
    from impact.errors import FewTreatedClustersWarning

    df = _panel(G=6)  # 2 treated regions of 6: the ordinary bootstrap by region has almost no power
    with pytest.warns(FewTreatedClustersWarning, match="wild bootstrap with few treated clusters.*bootstrap_subcluster"):
        im.did.event_study(df, **COMMON, n_bootstrap=999, seed=1)
    with pytest.warns(FewTreatedClustersWarning, match="subcluster bootstrap used here is valid only if errors"):
        im.did.event_study(df, **COMMON, bootstrap_subcluster="unit", n_bootstrap=999, seed=1)
