"""im.did.ddd_gt: staggered triple differences (Ortiz-Villavicencio & Sant'Anna 2025).

Checks: (1) against two independent ports on the authors' simulated design (reference/ddd_gt_data.csv,
written with ddd_gt_peers.json by make_ddd_gt_peers.py): moderndid 0.2.0 ``ddd`` (a port of R
triplediff) and diff-diff 3.13.0 ``StaggeredTripleDifference``, without and with covariates,
never-treated and not-yet-treated comparisons; (2) a simulation with a known effect in which untreated
trends depend on a covariate differently by cohort and partition, so only the covariate-adjusted DDD
is unbiased; (3) few treated regions: the default is randomisation inference, which holds its size;
(4) bad input raises typed errors.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import DataError, FragileInferenceWarning, ImpactWarning

REF = Path(__file__).parent / "reference"
COVS = ["cov1", "cov2", "cov3", "cov4"]
KW = {"outcome": "y", "unit": "id", "time": "time", "cohort": "group", "partition": "partition"}


@pytest.fixture(scope="module")
def peers():
    return json.loads((REF / "ddd_gt_peers.json").read_text()), pd.read_csv(REF / "ddd_gt_data.csv")


@pytest.mark.parametrize("key", ["never/none", "never/covariates", "notyet/none", "notyet/covariates"])
def test_group_time_effects_equal_moderndid(peers, key):
    # moderndid 0.2.0: ddd(..., base_period="universal", est_method="dr") (see make_ddd_gt_peers.py).
    # ATT(g, t) to 1e-8; SEs to 1e-6 relative, except cells that combine several comparison cohorts
    # (not-yet-treated): moderndid's GMM SE sqrt(1 / (n 1'Omega^-1 1)) uses np.cov (n - 1), ours the
    # influence function's sum of squares / n^2 (R did's convention): ours = theirs * sqrt((n - 1) / n).
    ref, df = peers
    control, label = key.split("/")
    res = im.did.ddd_gt(df, **KW, covariates=None if label == "none" else COVS, control_group=control,
                        base_period="universal", inference="analytic")
    p = ref["moderndid"][key]
    mine = res.group_time().set_index(["group", "time"]).loc[list(zip(p["group"], p["time"]))]
    np.testing.assert_allclose(mine["estimate"], p["att"], atol=1e-8)
    se_ref = np.array([np.nan if v is None else v for v in p["se"]])
    gmm = np.array([c.count(",") > 0 for c in mine["comparison_cohorts"]])
    np.testing.assert_allclose(mine["std_error"][~gmm], se_ref[~gmm], rtol=1e-6)
    np.testing.assert_allclose(mine["std_error"][gmm], se_ref[gmm] * np.sqrt(999 / 1000), rtol=1e-6)


@pytest.mark.parametrize("key", ["never/none", "never/covariates", "notyet/none", "notyet/covariates"])
def test_aggregations_equal_diff_diff(peers, key):
    # diff-diff 3.13.0: StaggeredTripleDifference(estimation_method="dr", base_period="varying"),
    # aggregate="all". Without covariates: 1e-10 (estimates) and 1e-10 relative (SEs of ATT(g, t)
    # from one comparison cohort and of all aggregates). With covariates diff-diff fits its own logit
    # (IRLS, its own stopping rule, propensity scores clipped to [0.01, 0.99]): estimates agree to
    # 1e-4 (SEs are ~0.3, so 3e-4 SE) and SEs to 1e-4 relative. GMM cells' SEs as in the moderndid test.
    ref, df = peers
    control, label = key.split("/")
    covs = None if label == "none" else COVS
    tol = {"atol": 1e-10, "rtol": 1e-10} if covs is None else {"atol": 1e-4, "rtol": 1e-4}
    res = im.did.ddd_gt(df, **KW, covariates=covs, control_group=control, inference="analytic")
    p = ref["diff_diff"][key]
    mine = res.group_time().set_index(["group", "time"]).loc[list(zip(p["group"], p["time"]))]
    np.testing.assert_allclose(mine["estimate"], p["att"], atol=tol["atol"])
    single = np.array([c.count(",") == 0 for c in mine["comparison_cohorts"]])
    np.testing.assert_allclose(mine["std_error"][single], np.array(p["se"])[single], rtol=max(tol["rtol"], 1e-10))
    assert res.estimate == pytest.approx(p["overall_att"], abs=tol["atol"])
    assert res.std_error == pytest.approx(p["overall_se"], rel=tol["rtol"])
    dynamic = res.aggregate("dynamic").tidy().set_index("term")
    for e, (att, se) in p["event_study"].items():
        assert dynamic.loc[f"e={e}", "estimate"] == pytest.approx(att, abs=tol["atol"])
        assert dynamic.loc[f"e={e}", "std_error"] == pytest.approx(se, rel=tol["rtol"])
    group = res.aggregate("group").tidy().set_index("term")
    for g, (att, se) in p["group_effects"].items():
        assert group.loc[f"g={g}", "estimate"] == pytest.approx(att, abs=tol["atol"])
        assert group.loc[f"g={g}", "std_error"] == pytest.approx(se, rel=tol["rtol"])


def simulate(n=3000, periods=5, cohorts=(3, 4), effect=(1.0, 2.0), n_regions=None, seed=0):
    """Staggered DDD with known effects: ATT(g, t) = effect[g index] * (1 + 0.5 (t - g)) for eligible
    units of cohort g from t = g on. Untreated trends depend on x, by cohort and by partition (no
    cohort x partition x x term): DDD parallel trends hold conditionally on x only."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    if n_regions is None:
        S = rng.choice(np.array([0, *cohorts]), size=n, p=None)
    else:
        region = np.repeat(np.arange(n_regions), n // n_regions)  # equal-sized regions, half of each eligible
        region_cohort = np.zeros(n_regions)
        region_cohort[: len(cohorts) * 2] = np.repeat(cohorts, 2)  # two regions per cohort
        region_cohort = rng.permutation(region_cohort)
        S = region_cohort[region]
    Q = (rng.random(n) < 1 / (1 + np.exp(-0.5 * x))).astype(int)
    if n_regions is not None:
        Q = (rng.permuted(np.tile(np.arange(n // n_regions) % 2, (n_regions, 1)), axis=1).ravel()).astype(int)
    t = np.arange(1, periods + 1)
    slope = 0.3 + 0.4 * x + 0.3 * (S > 0) * x + 0.2 * Q + 0.5 * Q * x + 0.1 * S
    y = 1 + x[:, None] + 0.5 * Q[:, None] + slope[:, None] * t[None, :] + rng.normal(size=(n, periods))
    truth = np.zeros((n, periods))
    for g, a in zip(cohorts, effect):
        on = (S == g)[:, None] & (Q == 1)[:, None] & (t[None, :] >= g)
        truth += np.where(on, a * (1 + 0.5 * (t[None, :] - g)), 0.0)
    y = y + truth
    out = pd.DataFrame({"id": np.repeat(np.arange(n), periods), "time": np.tile(t, n), "y": y.ravel(),
                        "group": np.repeat(S, periods), "partition": np.repeat(Q, periods), "x": np.repeat(x, periods)})
    if n_regions is not None:
        out["region"] = np.repeat(region, periods)
    return out


def true_dynamic(cohorts=(3, 4), effect=(1.0, 2.0), periods=5, shares=None):
    return {e: np.average([a * (1 + 0.5 * e) for g, a in zip(cohorts, effect) if g + e <= periods],
                          weights=[1 for g in cohorts if g + e <= periods]) for e in range(0, periods - min(cohorts) + 1)}


@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
def test_simulation_recovers_known_effects():
    # 20 draws of 3,000 units x 5 periods; truth ATT(g, t) = a_g (1 + 0.5 (t - g)), a = (1, 2).
    # Doubly robust and regression DDD with x: every post ATT(g, t) within 0.05 of the truth on
    # average, 95% intervals cover in >= 16 of 20 draws per cell; pre-treatment cells centred on 0;
    # the unadjusted DDD is biased (trends depend on x differently by partition).
    post_err, covered, pre, naive = {}, {}, [], []
    for seed in range(20):
        df = simulate(seed=seed)
        for method in ("dr", "reg"):
            res = im.did.ddd_gt(df, **KW, covariates="x", method=method, control_group="notyet", inference="analytic")
            gt = res.group_time()
            for row in gt.itertuples():
                if row.time >= row.group:
                    truth = {3: 1.0, 4: 2.0}[int(row.group)] * (1 + 0.5 * (row.time - row.group))
                    key = (method, row.group, row.time)
                    post_err.setdefault(key, []).append(row.estimate - truth)
                    covered[key] = covered.get(key, 0) + (row.conf_low <= truth <= row.conf_high)
                elif method == "dr":
                    pre.append(row.estimate)
        naive.append(im.did.ddd_gt(df, **KW, inference="analytic").estimate
                     - im.did.ddd_gt(df, **KW, covariates="x", inference="analytic").estimate)
    for key, errs in post_err.items():
        assert abs(np.mean(errs)) < 0.05, (key, np.mean(errs))
        assert covered[key] >= 16, (key, covered[key])
    assert abs(np.mean(pre)) < 0.03
    assert abs(np.mean(naive)) > 0.1  # the bias that the covariate adjustment removes


def test_few_treated_regions_default_to_randomization_inference():
    # 20 regions, 4 of them enabled (2 in period 3, 2 in period 4), outcome without covariates:
    # "auto" permutes enabling dates across regions (cluster=) and says so in tidy()'s inference column.
    df = simulate(n=2000, n_regions=20, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FragileInferenceWarning)
        res = im.did.ddd_gt(df, **KW, cluster="region", n_permutations=999, seed=1)
    assert res.settings["inference"] == "randomization"
    assert "randomisation" in res.tidy()["inference"].iloc[0]
    tidy = res.tidy()
    assert np.isfinite(tidy.loc[tidy["std_error"].notna(), "p_value"]).all()
    dyn = res.aggregate("dynamic")
    assert "randomisation" in dyn.inference
    # with covariates the estimator is not a fixed map of cell sums: analytic, with a warning
    with pytest.warns(FragileInferenceWarning, match="randomisation inference is not used"):
        res = im.did.ddd_gt(df, **KW, covariates="x", cluster="region")
    assert res.settings["inference"] == "analytic"
    assert res.tidy()["inference"].iloc[0].startswith("analytic")
    # regions of unequal composition: permuting dates would change cell sizes; analytic, with a warning
    uneven = df.loc[(df.id % 100) >= df.region]  # region r loses r units: every region's composition differs
    with pytest.warns(FragileInferenceWarning, match="differ in their numbers of eligible and ineligible"):
        res = im.did.ddd_gt(uneven, **KW, cluster="region")
    assert res.settings["inference"] == "analytic"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
def test_randomization_inference_holds_size_with_few_treated_regions():
    # 200 draws under the null (no effect), 20 regions, 4 enabled; randomisation inference rejects at 5%
    # in at most 10% of draws (binomial 95% upper bound of 5% with 200 draws is ~8.3%), while analytic
    # region-clustered inference over-rejects.
    reject_ri = reject_an = 0
    for seed in range(200):
        df = simulate(n=800, n_regions=20, effect=(0.0, 0.0), seed=1000 + seed)
        # region-specific trends shared by eligible and ineligible units (DDD removes them) plus
        # region x partition shocks (what clustering must account for)
        shock = np.random.default_rng(seed).normal(size=(20, 2))
        df["y"] += shock[df["region"], df["partition"]] * df["time"] * 0.3
        ri = im.did.ddd_gt(df, **KW, cluster="region", n_permutations=199, seed=seed)
        an = im.did.ddd_gt(df, **KW, cluster="region", inference="analytic")
        reject_ri += ri.tidy()["p_value"].iloc[0] < 0.05
        reject_an += an.tidy()["p_value"].iloc[0] < 0.05
    assert reject_ri <= 20, reject_ri
    assert reject_an > reject_ri


def test_bad_input_raises_typed_errors():
    df = simulate(n=400, seed=1)
    varying = df.copy()
    varying.loc[varying.index[1], "partition"] = 1 - varying.loc[varying.index[1], "partition"]
    with pytest.raises(DataError, match="'partition' must be constant within each id"):
        im.did.ddd_gt(varying, **KW)
    no_cell = df.loc[~((df.group == 0) & (df.partition == 0))]
    with pytest.raises(DataError, match="cell\\(s\\) with no units: cohort 0 with partition=0"):
        im.did.ddd_gt(no_cell, **KW)
    with pytest.raises(DataError, match="must be 0 \\(ineligible\\) or 1"):
        im.did.ddd_gt(df.assign(partition=df.partition * 2), **KW)
    with pytest.raises(DataError, match="unbalanced"):
        im.did.ddd_gt(df.iloc[1:], **KW)
    with pytest.raises(DataError, match="no never-enabled cohort"):
        im.did.ddd_gt(df.loc[df.group > 0], **KW)
    inf = df.copy()
    inf.loc[inf.index[3], "y"] = np.inf
    with pytest.raises(DataError):
        im.did.ddd_gt(inf, **KW, )
    before = df.copy()
    im.did.ddd_gt(df, **KW, inference="analytic")
    pd.testing.assert_frame_equal(df, before)  # the user's frame is not modified
    # a time-varying covariate is not an error (the first-period value is used) but it is never silent
    drifting = df.assign(x=df["x"] + 0.1 * df["time"])
    with pytest.warns(ImpactWarning, match="'x' vary within .* first-period value is used"):
        im.did.ddd_gt(drifting, **KW, covariates="x", inference="analytic")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        im.did.ddd_gt(df, **KW, covariates="x", inference="analytic")
    assert not any("vary within" in str(w.message) for w in caught)


@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
def test_a_spec_may_name_the_staggered_ddd(tmp_path):
    # a programme spec names did.ddd_gt with a dynamic aggregation; the report's evidence profile is
    # the triple-differences one (SMS level 3, the DDD assumption), and the result reaches results.json
    from impact.programme.runner import evaluate
    from impact.programme.spec import load_spec, resolve_design
    from impact.report.evidence import profile

    assert resolve_design("did.ddd_gt") is im.did.ddd_gt
    assert profile("did.ddd_gt").family == "Triple differences" and profile("did.ddd_gt").sms_level == "3"
    simulate(n=600, seed=2).rename(columns={"y": "NB_EMPRATE"}).to_csv(tmp_path / "firms.csv", index=False)
    (tmp_path / "ddd.toml").write_text('''
[programme]
id = "ddd_demo"
name = "Support for small firms, enabled region by region"
regions = ["A", "B"]
questions = ["Did employment of small firms rise?"]

[effect_chain]
impacts = [{ text = "Employment", indicators = ["NB_EMPRATE"] }]

[[data]]
name = "firms"
path = "firms.csv"
description = "Simulated firms: enabling period of their region (group), eligibility (partition)."

[[evaluations]]
name = "Employment of eligible firms"
question = "Did employment rise?"
outcome = "NB_EMPRATE"
data = "firms"
design = "did.ddd_gt"
options = { unit = "id", time = "time", cohort = "group", partition = "partition", covariates = ["x"], control_group = "notyet" }
then = [{ method = "aggregate", kind = "dynamic" }]
''', encoding="utf-8")
    run = evaluate(load_spec(tmp_path / "ddd.toml"))
    outcome = run.outcomes[0]
    assert outcome.error is None, outcome.error
    assert outcome.result.design == "ddd_gt/dynamic"
    assert np.isfinite(outcome.result.estimate)


@pytest.mark.filterwarnings("ignore::impact.errors.ImpactWarning")
def test_multiplier_bootstrap_matches_analytic_and_gives_bands():
    # 4,999 Rademacher draws of the influence functions: bootstrap SEs (IQR-based, as R did) within 8% of
    # the analytic ones (Monte Carlo sd of an IQR-based SE with 4,999 draws is about 1.7%); uniform bands at least as wide as the pointwise intervals; the dynamic
    # aggregation keeps the bootstrap.
    df = simulate(n=3000, seed=5)
    analytic = im.did.ddd_gt(df, **KW, covariates="x", inference="analytic").group_time()
    boot = im.did.ddd_gt(df, **KW, covariates="x", bootstrap=4999, seed=3)
    gt = boot.group_time()
    ok = gt["std_error"].notna()
    np.testing.assert_allclose(gt.loc[ok, "std_error"], analytic.loc[ok, "std_error"], rtol=0.08)
    assert ((gt.loc[ok, "band_high"] - gt.loc[ok, "band_low"]) >= (gt.loc[ok, "conf_high"] - gt.loc[ok, "conf_low"]) - 1e-12).all()
    assert "multiplier bootstrap" in boot.aggregate("dynamic").inference
