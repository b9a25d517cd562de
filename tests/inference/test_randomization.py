"""Randomisation inference over adoption dates: exact enumeration against brute-force loops.

Independent checks: the vectorised statistics are compared with a brute-force loop that writes
every distinct assignment of start years into the data and re-fits the public estimator
(``att_gt(inference="analytic")``, ``twfe(vcov="cluster")``), ranking its t statistic; the test-
inversion interval is checked against the same loop at its end points.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

import impact as im
from impact.errors import EstimationError, FewAssignmentsWarning, FragileInferenceWarning, SpecError
from impact.inference.permutation import AssignmentScheme, _distinct_arrangements


def _panel(n_units=8, n_periods=5, starts=(3, 4), seed=0, effect=0.0):
    rng = np.random.default_rng(seed)
    start = np.zeros(n_units, dtype=int)
    start[: len(starts)] = starts
    years = np.arange(1, n_periods + 1)
    sd = rng.uniform(0.5, 2.0, n_units)
    y = rng.normal(0, 1, n_units)[:, None] + 0.2 * years + rng.normal(0, 1, (n_units, n_periods)) * sd[:, None]
    D = (start[:, None] > 0) & (years[None, :] >= start[:, None])
    y = y + effect * D
    return pd.DataFrame({"unit": np.repeat(np.arange(n_units), n_periods), "year": np.tile(years, n_units),
                         "y": y.ravel(), "cohort": np.repeat(start, n_periods), "D": D.ravel().astype(int)})


def _assignments(start: np.ndarray):
    """Every distinct arrangement of the unit start years (brute force: a set of permutations)."""
    return sorted(set(itertools.permutations(start.tolist())))


def _relabel(df, start):
    out = df.copy()
    out["cohort"] = np.repeat(np.asarray(start), df["year"].nunique())
    out["D"] = ((out["cohort"] > 0) & (out["year"] >= out["cohort"])).astype(int)
    return out


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


@pytest.mark.parametrize("counts", [[3, 1, 1, 2], [5, 1], [2, 2, 2], [4]])
def test_multi_arm_enumeration_equals_set_of_permutations(counts):
    base = np.repeat(np.arange(len(counts)), counts)
    brute = np.array(sorted(set(itertools.permutations(base.tolist()))))
    assert np.array_equal(_distinct_arrangements(np.array(counts)), brute)
    scheme = AssignmentScheme(base, n_arms=len(counts))
    labels, _ = scheme.enumerate()
    assert len(labels) == scheme.n_assignments() == len(brute)


def test_att_gt_exact_randomisation_equals_brute_force_loop():
    df = _panel()
    res = _quiet(im.did.att_gt, df, outcome="y", unit="unit", time="year", cohort="cohort", inference="randomization")
    assert "all 56 assignments" in res.inference  # 8 units, two singleton cohorts: 8 * 7
    start = df.groupby("unit")["cohort"].first().to_numpy()
    rows = ["g=3,t=4", "g=4,t=5", "g=3,t=2"]  # post cells of both cohorts and a pre-period cell
    brute_t = {r: [] for r in rows}
    for assignment in _assignments(start):
        fit = _quiet(im.did.att_gt, _relabel(df, assignment), outcome="y", unit="unit", time="year", cohort="cohort",
                     inference="analytic").tidy().set_index("term")
        g = sorted(set(assignment) - {0})
        # cohort labels follow the permuted start years: map the row of cohort 3/4 in the original to the same
        # cohort codes (the first and second start years) in the relabelled fit
        for r in rows:
            brute_t[r].append(fit.loc[r, "estimate"] / fit.loc[r, "std_error"] if r in fit.index else np.nan)
        assert g == [3, 4]
    table = res.tidy().set_index("term")
    for r in rows:
        t = np.array(brute_t[r])
        observed = table.loc[r, "estimate"] / _quiet(im.did.att_gt, df, outcome="y", unit="unit", time="year",
                                                    cohort="cohort", inference="analytic").tidy().set_index("term").loc[r, "std_error"]
        p_brute = np.mean(np.abs(t) >= abs(observed) - 1e-10)
        assert table.loc[r, "p_value"] == pytest.approx(p_brute, abs=1e-12)


def test_att_gt_interval_is_the_test_inversion_of_the_brute_force_loop():
    df = _panel(seed=3, effect=1.0)
    res = _quiet(im.did.att_gt, df, outcome="y", unit="unit", time="year", cohort="cohort", inference="randomization")
    # a row whose interval is bounded (with one treated unit per cohort some cells' intervals are not: the
    # observed unit keeps its cohort in 1/8 of the assignments, so large effects cannot be rejected there)
    row = res.tidy().set_index("term").loc["g=3,t=5"]
    assert np.isfinite(row["conf_low"]) and np.isfinite(row["conf_high"])
    start = df.groupby("unit")["cohort"].first().to_numpy()

    def brute_p(tau):
        shifted = df.copy()
        cell = (shifted["cohort"] == 3) & (shifted["year"] == 5)
        shifted.loc[cell, "y"] -= tau  # sharp null: the effect in this cell is tau
        t = []
        for assignment in _assignments(start):
            fit = _quiet(im.did.att_gt, _relabel(shifted, assignment), outcome="y", unit="unit", time="year",
                         cohort="cohort", inference="analytic").tidy().set_index("term").loc["g=3,t=5"]
            t.append(fit["estimate"] / fit["std_error"])
        obs = _quiet(im.did.att_gt, shifted, outcome="y", unit="unit", time="year", cohort="cohort",
                     inference="analytic").tidy().set_index("term").loc["g=3,t=5"]
        return np.mean(np.abs(t) >= abs(obs["estimate"] / obs["std_error"]) - 1e-10)

    eps = 1e-4 * (row["conf_high"] - row["conf_low"])
    for bound, inward in ((row["conf_low"], eps), (row["conf_high"], -eps)):
        assert brute_p(bound + inward) > 0.05  # inside the interval: not rejected
        assert brute_p(bound - inward) <= 0.05  # just outside: rejected
    # the reported standard error is the one the interval implies
    assert row["std_error"] == pytest.approx((row["conf_high"] - row["conf_low"]) / (2 * 1.959963984540054))


def test_aggregations_use_the_same_randomisation_and_match_the_estimates():
    df = _panel(n_units=10, starts=(3, 3, 4))
    res = _quiet(im.did.att_gt, df, outcome="y", unit="unit", time="year", cohort="cohort", inference="randomization")
    analytic = _quiet(im.did.att_gt, df, outcome="y", unit="unit", time="year", cohort="cohort", inference="analytic")
    for kind in ("simple", "dynamic", "group", "calendar"):
        ri, an = res.aggregate(kind).tidy(), analytic.aggregate(kind).tidy()
        np.testing.assert_allclose(ri["estimate"], an["estimate"], rtol=1e-12)  # same estimates, other inference
        assert ri["inference"].str.startswith("randomisation inference").all()
        ok = ri["conf_low"].notna()
        assert ((ri.loc[ok, "conf_low"] <= ri.loc[ok, "estimate"]) & (ri.loc[ok, "estimate"] <= ri.loc[ok, "conf_high"])).all()
    test = im.did.pretrend_test(res.aggregate("dynamic"))
    assert "randomisation test" in test["method"] and 0 < test["p_value"] <= 1


def test_twfe_exact_randomisation_equals_brute_force_loop():
    df = _panel(n_units=7, starts=(3, 4), seed=5)
    res = _quiet(im.did.twfe, df, outcome="y", treatment="D", unit="unit", time="year")
    assert "all 42 assignments" in res.inference
    start = df.groupby("unit")["cohort"].first().to_numpy()
    t = []
    for assignment in _assignments(start):
        fit = _quiet(im.did.twfe, _relabel(df, assignment), outcome="y", treatment="D", unit="unit", time="year",
                     vcov="cluster")
        t.append(fit.estimate / fit.std_error)
    obs = _quiet(im.did.twfe, df, outcome="y", treatment="D", unit="unit", time="year", vcov="cluster")
    assert res.p_value == pytest.approx(np.mean(np.abs(t) >= abs(obs.estimate / obs.std_error) - 1e-10), abs=1e-12)
    assert res.estimate == pytest.approx(obs.estimate, rel=1e-12)


def test_one_treated_of_two_units_cannot_be_permuted():
    df = _panel(n_units=2, starts=(3,))
    with pytest.raises(EstimationError, match="cannot be permuted.*inference='analytic'"):
        _quiet(im.did.twfe, df, outcome="y", treatment="D", unit="unit", time="year")


def test_too_few_assignments_say_how_many_and_the_smallest_p():
    df = _panel(n_units=12, starts=(3,))
    with pytest.warns(FewAssignmentsWarning, match=r"only 12 distinct assignments.*smallest attainable p-value is 0.0833"):
        res = im.did.att_gt(df, outcome="y", unit="unit", time="year", cohort="cohort")
    assert res.p_value >= 1 / 12


def test_clusters_that_split_start_dates_fall_back_with_a_warning_or_raise():
    df = _panel(n_units=12, starts=(3, 4, 4))
    df["region"] = df["unit"] // 2  # units 0 and 1 share a region but start in different years
    with pytest.warns(FragileInferenceWarning, match="start years differ within some clusters"):
        res = im.did.att_gt(df, outcome="y", unit="unit", time="year", cohort="cohort", cluster="region")
    assert res.inference.startswith("analytic")
    with pytest.raises(SpecError, match="start dates differ within clusters"):
        _quiet(im.did.twfe, df, outcome="y", treatment="D", unit="unit", time="year", cluster="region",
               inference="randomization")


def test_many_treated_units_keep_the_analytic_path():
    df = _panel(n_units=240, starts=tuple([3] * 60 + [4] * 60), seed=2)
    res = _quiet(im.did.att_gt, df, outcome="y", unit="unit", time="year", cohort="cohort")
    assert res.inference.startswith("analytic")
    assert _quiet(im.did.twfe, df, outcome="y", treatment="D", unit="unit", time="year").inference.startswith("cluster-robust CR1")


def test_default_does_not_over_reject_grossly_with_few_treated():
    # a small Monte Carlo (true effect 0, 3 singleton cohorts of 12 units, heteroskedastic errors): the
    # analytic influence-function test rejects about a third of the time here (issue 10); randomisation
    # inference is exact, so 60 replications rejecting more than 12 times would mean a broken default
    reject_ri = reject_twfe = reject_pre = 0
    for rep in range(60):
        df = _panel(n_units=12, n_periods=6, starts=(3, 4, 5), seed=100 + rep)
        res = _quiet(im.did.att_gt, df, outcome="y", unit="unit", time="year", cohort="cohort", n_permutations=199, seed=rep)
        dyn = res.aggregate("dynamic")
        reject_ri += dyn.p_value <= 0.05
        reject_pre += im.did.pretrend_test(dyn)["p_value"] <= 0.05
        reject_twfe += _quiet(im.did.twfe, df, outcome="y", treatment="D", unit="unit", time="year",
                              n_permutations=199, seed=rep).p_value <= 0.05
    assert reject_ri <= 12 and reject_twfe <= 12 and reject_pre <= 12


@pytest.mark.parametrize("design", ["event_study", "sun_abraham", "imputation", "did2s"])
def test_event_time_designs_default_to_randomisation_and_keep_their_estimates(design):
    df = _panel(n_units=12, n_periods=6, starts=(3, 4, 5), seed=9)
    fn = getattr(im.did, design)
    res = _quiet(fn, df, outcome="y", unit="unit", time="year", cohort="cohort", n_permutations=499, seed=1)
    analytic = _quiet(fn, df, outcome="y", unit="unit", time="year", cohort="cohort",
                      **({"inference": "analytic"} if design in ("imputation", "did2s") else {"vcov": "cluster"}))
    assert res.inference.startswith("randomisation inference") and analytic.inference[:13] != res.inference[:13]
    np.testing.assert_allclose(res.tidy()["estimate"], analytic.tidy()["estimate"], rtol=1e-10)
    rows = res.tidy()
    est = rows.loc[rows["std_error"].notna()]
    assert ((est["conf_low"] <= est["estimate"]) | est["conf_low"].isna()).all()
    assert (est["p_value"] >= 1 / 500).all()
    if design != "did2s":
        test = im.did.pretrend_test(res) if design != "imputation" else res.diagnostics["pretrend_test"]
        assert "randomisation test" in test["method"]


@pytest.mark.parametrize("design", ["event_study", "sun_abraham", "imputation"])
def test_event_time_designs_do_not_over_reject_grossly(design):
    # 40 replications with a true effect of 0 and 3 singleton cohorts of 12 units: the analytic CR1 / BJS
    # tests reject 20-60% here; more than 9 rejections (22%) would mean a broken default
    fn = getattr(im.did, design)
    reject = reject_pre = 0
    for rep in range(40):
        df = _panel(n_units=12, n_periods=6, starts=(3, 4, 5), seed=300 + rep)
        res = _quiet(fn, df, outcome="y", unit="unit", time="year", cohort="cohort", n_permutations=199, seed=rep)
        reject += res.p_value <= 0.05
        test = res.diagnostics.get("pretrend_test") or {}
        reject_pre += (test.get("p_value") or 1.0) <= 0.05
    assert reject <= 9 and reject_pre <= 9


@pytest.mark.slow
def test_default_size_with_few_treated_regions():
    # issue 10's configuration: 20 regions x 12 years, AR(1) heteroskedastic errors, 3 singleton cohorts;
    # 500 replications (Monte Carlo s.e. of a 5% rate: 0.0097); the seeds are fixed, so the outcome is
    # deterministic. analyses/simulations/few_treated.py prints the full table (1,000 replications per
    # cell there, every default within [0.03, 0.07] up to Monte Carlo noise).
    # The band is the binomial band of an exact 5% test for this many replications, Bonferroni-corrected
    # over the rows at a 1% family-wise level (about [0.017, 0.083] for 14 rows): a fixed [0.03, 0.07] is
    # +-2 s.e. per row here, which some row of 14 exact tests leaves up to half the time (it did: the
    # dynamic att_gt pre-trend test's 0.072 after its statistic became the min-p of two exact tests). The old
    # analytic formulas (0.17-0.99 in this design) and CR1 (0.145) stay far outside.
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "analyses" / "simulations" / "few_treated.py"
    spec = importlib.util.spec_from_file_location("few_treated", path)
    sim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sim)
    table = sim.run(500, 199, 7, [(3, True)], [0.0])
    defaults = table.loc[table["method"].str.contains("default")]
    assert len(defaults) >= 10
    from scipy import stats

    half = stats.norm.ppf(1 - 0.01 / (2 * len(defaults))) * np.sqrt(0.05 * 0.95 / 500)
    assert defaults["rejection_rate"].between(0.05 - half, 0.05 + half).all(), defaults[["method", "rejection_rate"]]


def test_unbounded_intervals_say_why_in_tidy_and_in_the_report():
    # 14 units, cohorts of 1/2/1: single group-time cells of a one-region cohort often cannot reject any
    # effect at 5% (an unbounded test-inversion interval); tidy() and the report must say why, and only there
    from impact.report.html import _effects_rows

    df = _panel(n_units=14, n_periods=6, starts=(3, 4, 4, 5), seed=0)
    res = _quiet(im.did.att_gt, df, outcome="y", unit="unit", time="year", cohort="cohort")
    for result in (res, res.aggregate("dynamic"), _quiet(im.did.event_study, df, outcome="y", unit="unit", time="year",
                                                           cohort="cohort")):
        table = result.tidy()
        unbounded = np.isinf(table["conf_low"]) | np.isinf(table["conf_high"])
        assert unbounded.any()
        noted = table["inference"].str.contains("interval unbounded", regex=False)
        assert (noted == unbounded).all()
        assert table.loc[noted, "inference"].str.contains("with 1 treated unit behind this row").all()
        # the method text comes first, so every row still names its method
        assert table["inference"].str.startswith(result.inference).all()
        columns, rows, shared = _effects_rows(result)
        ci = [r[5] for r in rows]
        assert [c.endswith("unbounded") for c in ci] == unbounded.tolist()
        assert shared is not None and "Intervals marked unbounded" in shared


def test_did2s_randomisation_is_imputations():
    # did2s and imputation are the same linear estimator (Gardner 2022; BJS 2024), so their randomisation
    # p-values and intervals must agree exactly (few_treated.py reports one row for both)
    df = _panel(n_units=12, n_periods=6, starts=(3, 4, 4, 5), seed=4)
    kw = dict(outcome="y", unit="unit", time="year", cohort="cohort", n_permutations=199, seed=3)
    a, b = _quiet(im.did.imputation, df, **kw).tidy(), _quiet(im.did.did2s, df, **kw).tidy()
    for col in ("estimate", "p_value", "conf_low", "conf_high"):
        np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_default_size_with_one_and_three_treated_regions_twfe_and_att_gt():
    # issue 10 item 6: 300 replications of the default twfe and att_gt (every aggregation and both pre-trend
    # tests) with 1 and with 3 treated regions of 20 (singleton cohorts), heteroskedastic AR(1) errors.
    # With 1 treated there are only 20 assignments, so p-values lie on the grid 0.05, 0.10, ...; RI is still
    # exact (size 0.05). Monte Carlo s.e. at 300 replications 0.0126: [0.02, 0.08] is about 2.4 s.e.
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "analyses" / "simulations" / "few_treated.py"
    spec = importlib.util.spec_from_file_location("few_treated", path)
    sim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sim)
    table = sim.run(300, 99, 20261129, [(1, True), (3, True)], [0.0], only=("att_gt", "twfe"), option_reps=0)
    defaults = table.loc[table["method"].str.contains("default")]
    assert len(defaults) == 2 * 7
    assert defaults["rejection_rate"].between(0.02, 0.08).all(), defaults[["treated", "method", "rejection_rate"]]


def _welch_components(y, treated_obs, weights=None):
    """LinearComponents of the Welch t statistic of a difference in means (two arms, codes 1 = treated),
    under the sharp null that shifts the observed treated units by tau: y - tau * D_obs."""
    from impact.inference.randomization import LinearComponents

    D = treated_obs.astype(float)

    def components(labels):
        T = (labels == 1).astype(float)
        C = 1.0 - T
        nT, nC = T.sum(1, keepdims=True), C.sum(1, keepdims=True)

        def mean(M, n, x):
            return (M @ x)[:, None] / n

        a = (mean(T, nT, y) - mean(C, nC, y))[:, 0]
        b = (mean(T, nT, D) - mean(C, nC, D))[:, 0]

        def cov(x, z):  # sum over arms of the within-arm covariance / arm size
            out = 0.0
            for M, n in ((T, nT), (C, nC)):
                mx, mz = mean(M, n, x), mean(M, n, z)
                out = out + ((M @ (x * z))[:, None] - n * mx * mz)[:, 0] / ((n - 1) * n)[:, 0]
            return out

        return LinearComponents(a[:, None], b[:, None], cov(y, y)[:, None], cov(y, D)[:, None], cov(D, D)[:, None])

    return components


def _brute_p(y, D, all_labels, tau):
    """Independent p-value at tau: every assignment's Welch t recomputed from the shifted outcomes."""
    z = y - tau * D
    ts = []
    for lab in all_labels:
        t, c = z[lab == 1], z[lab == 0]
        ts.append((t.mean() - c.mean()) / np.sqrt(t.var(ddof=1) / len(t) + c.var(ddof=1) / len(c)))
    ts = np.abs(np.array(ts))
    t_obs = abs((z[D == 1].mean() - z[D == 0].mean()) / np.sqrt(z[D == 1].var(ddof=1) / D.sum()
                                                                  + z[D == 0].var(ddof=1) / (len(z) - D.sum())))
    return np.mean(ts >= t_obs * (1 - 1e-9) - 1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_interval_ends_are_exact_against_brute_force_and_a_fine_bisection(seed):
    # Independent source: the Welch t of every one of the C(11, 4) = 330 assignments recomputed from
    # y - tau * D (no LinearComponents), and a 60-step bisection on that brute-force p(tau). The engine's
    # ends must agree with the fine bisection to 1e-9 of the interval width, and the brute-force p-value
    # must be above alpha just inside each end and at most alpha just outside (1e-7 of the width).
    from impact.inference.randomization import adoption_randomization, adoption_scheme

    rng = np.random.default_rng(seed)
    m = 11
    labels = np.zeros(m, dtype=np.int64)
    labels[:4] = 1
    D = labels.astype(float)
    y = rng.normal(size=m) * rng.uniform(0.5, 2.0, m) + 1.5 * D
    scheme = adoption_scheme(labels, never_code=0, where="test")
    res = adoption_randomization(_welch_components(y, labels), scheme, level=0.9)
    assert res.exact and res.n_assignments == 330
    all_labels, _ = scheme.enumerate()
    low, high = float(res.conf_low[0]), float(res.conf_high[0])
    assert np.isfinite(low) and np.isfinite(high)
    assert res.p_value[0] == pytest.approx(_brute_p(y, D, all_labels, 0.0), abs=1e-12)
    est = float(res.observed.a[0, 0])
    width = high - low
    for end, direction in ((high, 1.0), (low, -1.0)):
        inside, outside = est, est + direction * 4 * width
        assert _brute_p(y, D, all_labels, outside) <= 0.1
        for _ in range(60):
            mid = (inside + outside) / 2
            if _brute_p(y, D, all_labels, mid) > 0.1:
                inside = mid
            else:
                outside = mid
        assert end == pytest.approx(inside, abs=1e-9 * width)
        assert _brute_p(y, D, all_labels, end - direction * 1e-7 * width) > 0.1
        assert _brute_p(y, D, all_labels, end + direction * 1e-7 * width) <= 0.1


def _pretrend_null_panel():
    """Six units, seven years, singleton cohorts starting in years 4 and 5 (30 assignments). Untreated
    outcomes with parallel trends and unit-specific noise; treatment effects that are large and differ by
    unit and year (nothing like a constant effect that could be estimated and removed)."""
    rng = np.random.default_rng(11)
    n, T = 6, 7
    y0 = rng.normal(0, 1, n)[:, None] + 0.3 * np.arange(1, T + 1) + rng.normal(0, 1, (n, T)) * rng.uniform(0.5, 2, n)[:, None]
    effect = rng.normal(0, 5, (n, T)) + 8 * rng.uniform(-1, 1, n)[:, None]
    return y0, effect, np.array([4, 5, 0, 0, 0, 0])


def _realisations():
    """The data under every possible realised assignment of the start years (effects after each start)."""
    y0, effect, start = _pretrend_null_panel()
    n, T = y0.shape
    years = np.arange(1, T + 1)
    for assignment in _assignments(start):
        s = np.asarray(assignment)
        D = (s[:, None] > 0) & (years[None, :] >= s[:, None])
        yield pd.DataFrame({"unit": np.repeat(np.arange(n), T), "year": np.tile(years, n),
                            "y": (y0 + effect * D).ravel(), "cohort": np.repeat(s, T)})


@pytest.mark.parametrize("design", ["event_study", "sun_abraham", "imputation"])
def test_pretrend_test_is_exact_brute_force_over_every_realised_assignment(design):
    # Exactness by brute force: write every one of the 30 possible realised assignments of the start years
    # into the data (outcomes = untreated outcomes + effects after each unit's start), run the default
    # pre-trend test on each and collect its p-value. An exact test compares one fixed function f of the
    # assignment with itself over all assignments (p(z) = #{z': f(z') >= f(z)} / 30), so across the 30
    # possible realisations, whatever the effects, every attained p-value v is attained or undercut by
    # exactly 30 v of them: P(p <= v) = v (1/30, 2/30, ...; assignments that f cannot tell apart, e.g. two
    # singleton cohorts swapped within the window, tie and share a rank).
    kw = {"outcome": "y", "unit": "unit", "time": "year", "cohort": "cohort", "inference": "randomization"}
    tests = [_quiet(getattr(im.did, design), df, **kw).diagnostics["pretrend_test"] for df in _realisations()]
    assert all(MIN_P in t["method"] and t["exact"] for t in tests)  # the default statistic, over all 30 assignments
    p = [t["p_value"] for t in tests]
    assert len(p) == 30 and _is_exact(p)
    # and each of its two components alone (the statistic before the trend was added, and the trend)
    assert _is_exact([t["p_value_sum_of_squares"] for t in tests]) and _is_exact([t["p_value_trend"] for t in tests])


MIN_P = "min-p of the sum of squared studentised pre-period effects and their linear trend"


def _is_exact(p) -> bool:
    p = np.asarray(p)
    return all(np.count_nonzero(p <= v + 1e-12) == round(len(p) * v) for v in np.unique(p))


def test_att_gt_pretrend_tests_are_exact_and_removing_estimated_effects_is_not():
    # the brute-force check above for att_gt's two pre-trend tests (event-time leads, every pre-period
    # ATT(g, t)); and the check has teeth: the earlier test (post-period effects estimated and removed
    # before permuting, still used when the engine is not given the start years) fails it on the same panels
    import dataclasses

    p_dynamic, p_cells, p_removed = [], [], []
    for df in _realisations():
        res = _quiet(im.did.att_gt, df, outcome="y", unit="unit", time="year", cohort="cohort", inference="randomization")
        p_dynamic.append(im.did.pretrend_test(res.aggregate("dynamic"))["p_value"])
        test = res.diagnostics["pretrend_wald"]
        assert "before the earliest start" in test["method"] and MIN_P in test["method"] and test["pre_periods"] == 3
        p_cells.append(test["p_value"])
        engine = res.randomization
        cells = res.effects["estimate"].to_numpy(dtype=float)[1:]  # the headline ATT, then the ATT(g, t)
        assert len(cells) == len(engine.cell_post)
        pre = np.eye(len(cells))[~engine.cell_post & ~engine.cell_reference]
        removed = dataclasses.replace(engine, onset=None).joint_test_cells(pre, cells)
        assert "approximately" in removed["assumption"]
        p_removed.append(removed["p_value"])
    assert _is_exact(p_dynamic) and _is_exact(p_cells)
    assert not _is_exact(p_removed)


def test_pretrend_test_without_two_periods_before_the_earliest_start_says_it_is_approximate():
    # a cohort starting in the second period leaves one period before the earliest start: no contrast is
    # exact there, so the test falls back to removing the estimated effects and says so
    df = _panel(n_units=10, n_periods=6, starts=(2, 4, 5), seed=2)
    for res in (_quiet(im.did.att_gt, df, outcome="y", unit="unit", time="year", cohort="cohort"),
                _quiet(im.did.event_study, df, outcome="y", unit="unit", time="year", cohort="cohort")):
        test = res.diagnostics["pretrend_wald" if "pretrend_wald" in res.diagnostics else "pretrend_test"]
        assert "approximately exact" in test["assumption"] and "earliest start" not in test["method"]
        assert 0 < test["p_value"] <= 1


def test_min_p_combination_equals_a_loop_over_assignments():
    # the vectorised min-p (sorts and searches) against its definition, one assignment at a time: each
    # assignment's p-value per statistic is its share of assignments at least as extreme (itself included);
    # the combined p-value is the share whose smaller p-value is at most the observed one, ties of the smaller
    # p-value broken by the larger. Ties in the statistics included.
    from impact.inference.randomization import _min_p

    rng = np.random.default_rng(5)
    for n, ties in ((30, False), (200, True), (1000, False)):
        stats_ = rng.chisquare(3, (n, 2))
        if ties:
            stats_ = np.round(stats_)
        counts = np.array([[np.sum(stats_[:, j] >= stats_[i, j]) for j in range(2)] for i in range(n)])
        pairs = [tuple(sorted(c)) for c in counts]  # (smaller, larger): Python compares tuples lexicographically
        expected = sum(pair <= pairs[0] for pair in pairs) / n
        p, (p1, p2) = _min_p(stats_)
        assert p == pytest.approx(expected, abs=1e-15)
        assert (p1, p2) == pytest.approx(tuple(counts[0] / n), abs=1e-15)
        assert p >= max(1 / n, min(p1, p2))  # never below the smaller single p-value


def test_trend_row_is_the_least_squares_treated_by_period_slope_in_the_window():
    # independent source: numpy least squares of y on unit and year dummies and treated x year, on the
    # years before the earliest start (here years 1-4: starts 5, 7); the trend row applied to the cohort-year
    # sums must give the same coefficient, and the pre-trend test reports it studentised, with its sign
    df = _panel(n_units=12, n_periods=8, starts=(5, 5, 7), seed=3)
    treated = df["cohort"] > 0
    df.loc[treated, "y"] += 1.5 * df.loc[treated, "year"]  # a linear pre-trend in the treated units
    res = _quiet(im.did.event_study, df, outcome="y", unit="unit", time="year", cohort="cohort",
                 inference="randomization", n_permutations=999, seed=1)
    test = res.diagnostics["pretrend_test"]
    assert "min-p of the sum of squared studentised pre-period effects and their linear trend" in test["method"]
    assert test["pre_periods"] == 4 and test["trend_t"] > 2 and test["p_value"] <= 0.05
    assert test["p_value"] >= min(test["p_value_sum_of_squares"], test["p_value_trend"])

    window = df.loc[df["year"] <= 4]
    units = pd.get_dummies(window["unit"], dtype=float).to_numpy()
    years = pd.get_dummies(window["year"], dtype=float).to_numpy()[:, 1:]
    slope = ((window["cohort"] > 0) * (window["year"] - 2.5)).to_numpy(dtype=float)
    X = np.column_stack([slope, units, years])
    beta = np.linalg.lstsq(X, window["y"].to_numpy(), rcond=None)[0][0]

    from impact.did._randomization import CohortLinear

    codes = np.array([0, 0, 1] + [2] * 9)  # cohorts 5, 7, never (code K = 2)
    Y = df.pivot(index="unit", columns="year", values="y").to_numpy()
    ctx = CohortLinear(Yb=Y, labels=codes, K=2, block_units=np.ones(12), unit_word="units", n_permutations=999,
                       seed=1, onset=np.array([4, 6, 8]))
    row = ctx.trend_row()
    sums = np.stack([Y[codes == k].sum(axis=0) for k in range(3)])
    assert np.sum(row * sums) == pytest.approx(beta, rel=1e-10)
    # without never-treated units the contrast is later against earlier starters (start column as g)
    late = CohortLinear(Yb=Y, labels=np.array([0] * 6 + [1] * 6), K=2, block_units=np.ones(12), unit_word="units",
                        n_permutations=999, seed=1, onset=np.array([4, 6, 8]))
    row = late.trend_row()
    assert np.allclose(row[:2, :4].sum(axis=1), 0) and np.allclose(row[:, 4:], 0) and row[1, 3] > 0 > row[0, 3]


def _exact_only_with_start_years(p_values, n_assignments: int, monkeypatch) -> None:
    """The brute-force check of ``p_values(window)`` (one p-value per realised assignment, each test asserting
    its ``pre_periods``): exact with the start years (a window of 3 periods), not without them (the earlier
    test, estimated effects removed before permuting)."""
    import impact.did._randomization as engine

    exact = p_values(3)
    assert len(exact) == n_assignments and _is_exact(exact)
    monkeypatch.setattr(engine, "cell_onset", lambda *args: None)
    assert not _is_exact(p_values(None))


def test_dose_response_pretrend_test_is_exact_brute_force_over_every_realised_assignment(monkeypatch):
    # the brute-force check above for dose_response's randomisation pre-trend test (binarised event-time
    # leads): dose_response needs three treated units per cohort, so seven units with cohorts of three
    # starting in years 4 and 5 (7! / (3! 3! 1!) = 140 assignments), large unit- and year-specific effects.
    # Without the start years (the approximate test it used before) the same check fails.
    rng = np.random.default_rng(11)
    n, T = 7, 7
    y0 = rng.normal(0, 1, n)[:, None] + 0.3 * np.arange(1, T + 1) + rng.normal(0, 1, (n, T)) * rng.uniform(0.5, 2, n)[:, None]
    effect = rng.normal(0, 5, (n, T)) + 8 * rng.uniform(-1, 1, n)[:, None]
    years = np.arange(1, T + 1)

    def p_values(window: int | None) -> list[float]:
        out = []
        for s in map(np.asarray, _assignments(np.array([4, 4, 4, 5, 5, 5, 0]))):
            D = (s[:, None] > 0) & (years[None, :] >= s[:, None])
            df = pd.DataFrame({"unit": np.repeat(np.arange(n), T), "year": np.tile(years, n), "y": (y0 + effect * D).ravel(),
                               "cohort": np.repeat(s, T), "dose": np.repeat(np.where(s > 0, 1 + 0.3 * np.arange(n), 0.0), T)})
            fit = _quiet(im.did.dose_response, df, outcome="y", unit="unit", time="year", cohort="cohort", dose="dose",
                         inference="randomization", degree=1, n_bootstrap=None)
            test = fit.diagnostics["pretrend_wald_event_time"]
            assert test["exact"] and test["n_assignments"] == 140 and test.get("pre_periods") == window
            out.append(test["p_value"])
        return out

    _exact_only_with_start_years(p_values, 140, monkeypatch)


def test_ddd_gt_pretrend_test_is_exact_brute_force_over_every_realised_assignment(monkeypatch):
    # the brute-force check for ddd_gt's pre-trend test (the pre-period DDD(g, t) wholly before the earliest
    # start): seven regions of one eligible and one ineligible unit, clustered by region, singleton cohorts
    # enabled in years 4 and 5 (42 assignments; ddd_gt permutes only when at least 40 exist), large effects
    # on the eligible units of enabled regions. Without the start years (the approximate test it used
    # before) the same check fails.
    rng = np.random.default_rng(11)
    R, T = 7, 7
    years = np.arange(1, T + 1)
    region, part = np.repeat(np.arange(R), 2), np.tile([1, 0], R)
    n = len(region)
    y0 = rng.normal(0, 1, n)[:, None] + 0.3 * years + rng.normal(0, 1, (n, T)) * rng.uniform(0.5, 2, n)[:, None]
    effect = rng.normal(0, 5, (n, T)) + 8 * rng.uniform(-1, 1, n)[:, None]

    def p_values(window: int | None) -> list[float]:
        out = []
        for s in map(np.asarray, _assignments(np.array([4, 5, 0, 0, 0, 0, 0]))):
            start = s[region]
            D = (start[:, None] > 0) & (years[None, :] >= start[:, None]) & (part[:, None] == 1)
            df = pd.DataFrame({"id": np.repeat(np.arange(n), T), "time": np.tile(years, n), "y": (y0 + effect * D).ravel(),
                               "group": np.repeat(start, T), "partition": np.repeat(part, T), "region": np.repeat(region, T)})
            fit = _quiet(im.did.ddd_gt, df, outcome="y", unit="id", time="time", cohort="group", partition="partition",
                         cluster="region", inference="randomization")
            test = fit.diagnostics["pretrend_wald"]
            assert test["exact"] and test["n_assignments"] == 42 and test.get("pre_periods") == window
            out.append(test["p_value"])
        return out

    _exact_only_with_start_years(p_values, 42, monkeypatch)


def test_ddd_trend_row_is_the_difference_of_the_partitions_slopes():
    # two partitions of the columns (ddd_gt): the trend row is the treated-vs-never slope of the first partition
    # less that of the second; a trend shared by a region's eligible and ineligible units cancels
    from impact.did._randomization import CohortLinear

    T = 5
    rng = np.random.default_rng(4)
    Yb = rng.normal(size=(6, 2 * T))
    ctx = CohortLinear(Yb=Yb, labels=np.array([0, 1, 2, 2, 2, 2]), K=2, block_units=np.ones(6), unit_word="regions",
                       n_permutations=999, seed=1, onset=np.array([3, 4, 5]), column_period=np.tile(np.arange(T), 2),
                       column_part=np.repeat([0, 1], T))
    row = ctx.trend_row()
    assert ctx.pretreatment_columns == 3 and np.allclose(row[:, [3, 4, 8, 9]], 0)
    assert np.allclose(row[:, :T], -row[:, T:])  # equal composition: the two halves mirror each other
    shared = np.outer(rng.normal(size=6), np.tile(np.arange(T), 2))  # a trend per region, common to both partitions
    sums = lambda Y: np.stack([Y[ctx.labels == k].sum(axis=0) for k in range(3)])  # noqa: E731
    assert np.sum(row * sums(Yb + shared)) == pytest.approx(np.sum(row * sums(Yb)), abs=1e-12)
    only_first = np.outer(np.r_[1.0, 1.0, 0, 0, 0, 0], np.r_[np.arange(T), np.zeros(T)])  # slope 1 in treated, first half
    assert np.sum(row * sums(only_first)) == pytest.approx(1.0)


def test_repeated_cross_section_att_gt_pretrend_tests_are_exact_brute_force(monkeypatch):
    # the brute-force check for att_gt(panel=False) clustered by region (CrossSectionSums): seven regions, three
    # weighted observations per region and period, singleton cohorts in years 4 and 5 (42 assignments), large
    # effects that differ by observation. Both pre-trend tests (every pre-period ATT(g, t); the dynamic
    # aggregation's leads) are exact; removing the estimated effects instead (no start years) is not.
    import impact.did._randomization as engine

    rng = np.random.default_rng(11)
    R, T, m = 7, 7, 3
    region, t = np.repeat(np.arange(R), T * m), np.tile(np.repeat(np.arange(1, T + 1), m), R)
    n = len(region)
    y0 = rng.normal(0, 1, R)[region] + 0.3 * t + rng.normal(0, 1, n) * rng.uniform(0.5, 2, R)[region]
    effect = rng.normal(0, 5, n) + 8 * rng.uniform(-1, 1, R)[region]
    w = rng.uniform(0.5, 2, n)

    def p_values(window: int | None) -> tuple[list[float], list[float]]:
        cells, dynamic = [], []
        for s in map(np.asarray, _assignments(np.array([4, 5, 0, 0, 0, 0, 0]))):
            g = s[region]
            df = pd.DataFrame({"region": region, "t": t, "g": g, "w": w, "y": y0 + effect * ((g > 0) & (t >= g))})
            fit = _quiet(im.did.att_gt, df, outcome="y", time="t", cohort="g", panel=False, cluster="region", weights="w",
                         inference="randomization")
            test = fit.diagnostics["pretrend_wald"]
            assert test["exact"] and test["n_assignments"] == 42 and test.get("pre_periods") == window
            cells.append(test["p_value"])
            dynamic.append(_quiet(im.did.pretrend_test, fit.aggregate("dynamic"))["p_value"])
        return cells, dynamic

    cells, dynamic = p_values(3)
    assert len(cells) == 42 and _is_exact(cells) and _is_exact(dynamic)
    monkeypatch.setattr(engine, "cell_onset", lambda *args: None)  # no start years: estimated effects removed
    assert not _is_exact(p_values(None)[0])
