"""The runner: spec -> data -> evaluations -> results, with failures recorded, never raised.

End-to-end checks run the bundled analyses with the real estimators and compare with the published
numbers quoted in ../shared/datasets/PROVENANCE.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from impact.programme.portfolio import benjamini_hochberg, portfolio_rows
from impact.programme.runner import evaluate, outcome_trends, run_spec
from impact.programme.spec import load_spec
from impact.results import Result, effects_table

ANALYSES = Path(__file__).resolve().parents[2] / "analyses"


def by_name(run):
    out = {}
    for o in run.outcomes:
        out[o.name] = o
        for r in o.robustness:
            out[r.name] = r
    return out


def test_organ_donations_reproduces_published_twfe():
    # Source: PROVENANCE.md, organ_donations TWFE Rate ~ Treated | State + Quarter: -0.0225,
    # state-clustered SE 0.0067 (Stata convention), 0.0061 (fixest convention). Tolerance: the
    # published numbers are rounded to 4 decimals, so 5e-5.
    run = evaluate(load_spec(ANALYSES / "organ_donations.toml"))
    results = by_name(run)
    main = results["Active choice and donor registration"].result
    assert main.estimate == pytest.approx(-0.0225, abs=5e-5)
    # The headline uses the valid default (randomisation over which of the 27 states is treated), so
    # its p-value lies on the grid k/27; the published clustered SE is the labelled robustness check.
    assert main.p_value * 27 == pytest.approx(round(main.p_value * 27), abs=1e-9)
    assert "randomisation" in main.tidy()["inference"].iloc[0]
    published = results["Published convention: CR1 clustered by state (Stata; over-rejects with one treated state)"].result
    assert published.estimate == pytest.approx(-0.0225, abs=5e-5)
    assert published.std_error == pytest.approx(0.0067, abs=5e-5)
    fixest = results["fixest small-sample convention (CR1, nested effects not counted)"].result
    assert fixest.std_error == pytest.approx(0.0061, abs=5e-5)
    # the derived Treated column: California in Quarter_Num 4, 5, 6
    frame = run.data[0].frame
    assert frame["Treated"].sum() == 3 and set(frame.loc[frame["Treated"] == 1, "State"]) == {"California"}


def test_kielmc_reproduces_wooldridge_example_13_3():
    # Source: Wooldridge, Introductory Econometrics, Example 13.3: -11,863.9 (SE 7,456.6);
    # + age, age^2: -21,920.27; full controls: -14,177.93. Tolerance 0.05 (published to 1-2 decimals).
    results = by_name(evaluate(load_spec(ANALYSES / "kielmc.toml")))
    main = results["Price effect, no controls"].result
    assert main.estimate == pytest.approx(-11863.9, abs=0.05)
    assert main.std_error == pytest.approx(7456.6, abs=0.05)
    assert results["Add age and age squared"].result.estimate == pytest.approx(-21920.27, abs=0.005)
    full = "Full controls (age, age², interstate distance, land, area, rooms, baths)"
    assert results[full].result.estimate == pytest.approx(-14177.93, abs=0.005)


def test_injury_reproduces_example_13_4_with_filter_in_sample_flow():
    # Source: Wooldridge, Example 13.4 (Kentucky): 0.191 (0.069), n = 5,626. Tolerance 5e-4 (3 decimals).
    run = evaluate(load_spec(ANALYSES / "injury.toml"))
    res = run.outcomes[0].result
    assert res.estimate == pytest.approx(0.191, abs=5e-4)
    assert res.std_error == pytest.approx(0.069, abs=5e-4)
    assert res.n_obs == 5626
    flow = res.sample_flow
    assert flow[0].step == "read ../data/injury.csv" and flow[0].rows == 7150
    assert flow[1].step == "data filter (claims): ky == 1" and flow[1].rows == 5626
    assert "1,524 rows not matching" in flow[1].note


def test_failed_evaluation_is_recorded_and_others_run(spec_dir):
    text = spec_dir.base + '''
[[evaluations]]
name = "Broken"
outcome = "NB_EMPRATE"
design = "did.twfe"
options = { treatment = "NB_EMPRATE", unit = "region", time = "year" }
'''
    run = evaluate(load_spec(spec_dir(text)))
    ok, broken = run.outcomes
    assert ok.ok and ok.result.estimate == pytest.approx(2.0, abs=0.5)  # simulated true effect 2
    assert not broken.ok and broken.result is None
    assert broken.error.startswith("DataError:") and "must be coded 0/1" in broken.error
    assert run.n_failed == 1


def test_generic_dispatch_effect_then_and_seed(spec_dir, monkeypatch):
    """A design returning a non-Result with .effect(outcome=) gets it called; `then` steps are chained;
    the run's seed is passed to functions that accept one."""
    import impact.matching

    calls = {}

    class Matched:
        def __init__(self, df, seed):
            self.df, self.seed = df, seed

        def refine(self, *, factor):
            calls["factor"] = factor
            return self

        def effect(self, *, outcome):
            calls["outcome"], calls["seed"] = outcome, self.seed
            gap = self.df.loc[self.df.treated == 1, outcome].mean() - self.df.loc[self.df.treated == 0, outcome].mean()
            table = effects_table(["ATT"], [gap], [1.0])
            return Result(design="toy", estimand="ATT", effects=table, headline="ATT", inference="toy", n_obs=len(self.df))

    def toy_match(df, *, treatment, seed=None):
        return Matched(df, seed)

    import impact.programme.safety as safety

    monkeypatch.setattr(impact.matching, "toy_match", toy_match, raising=False)
    monkeypatch.setattr(impact.matching, "__all__", [*impact.matching.__all__, "toy_match"])
    # the allow-list of chained methods is a table: a new method is one row
    rules = dict(safety.ALLOWED_STEPS)
    rules["refine"] = safety.StepRule("refine", {"factor": lambda v: isinstance(v, int)}, "a refined match")
    monkeypatch.setattr(safety, "ALLOWED_STEPS", rules)
    text = spec_dir.base.replace('design = "did.twfe"', 'design = "matching.toy_match"').replace(
        'options = { treatment = "treated", unit = "region", time = "year", vcov = "CR2" }',
        'options = { treatment = "treated" }\nthen = [{ method = "refine", factor = 3 }]',
    )
    run = evaluate(load_spec(spec_dir(text)), seed=123)
    assert run.outcomes[0].ok, run.outcomes[0].error
    assert calls == {"factor": 3, "outcome": "NB_EMPRATE", "seed": 123}


def test_design_returning_something_else_fails_clearly(spec_dir, monkeypatch):
    import impact.rct

    def toy_nothing(df, *, outcome):
        return 42

    monkeypatch.setattr(impact.rct, "toy_nothing", toy_nothing, raising=False)
    monkeypatch.setattr(impact.rct, "__all__", [*impact.rct.__all__, "toy_nothing"])
    text = spec_dir.base.replace('design = "did.twfe"', 'design = "rct.toy_nothing"').replace(
        'options = { treatment = "treated", unit = "region", time = "year", vcov = "CR2" }', ""
    )
    run = evaluate(load_spec(spec_dir(text)))
    assert "returned a int, not a Result" in run.outcomes[0].error


def test_results_json_has_metadata_and_each_to_dict(spec_dir, tmp_path):
    run, report = run_spec(spec_dir(), out=tmp_path / "out", command="impact run demo.toml")
    data = json.loads((report.parent / "results.json").read_text(encoding="utf-8"))
    assert data["programme"]["id"] == "demo" and data["seed"] == run.seed
    assert data["evaluations"][0]["result"] == json.loads(json.dumps(run.outcomes[0].result.to_dict()))
    assert data["data"][0]["path"] == "panel.csv" and len(data["data"][0]["sha256"]) == 64
    assert str(tmp_path) not in json.dumps(data)  # no absolute paths: outputs do not depend on the machine


def test_outcome_trends_by_cohort():
    df = pd.DataFrame({"u": [1, 1, 2, 2, 3, 3], "t": [1, 2, 1, 2, 1, 2], "d": [0, 1, 0, 0, 0, 1], "y": [1.0, 3, 2, 2, 5, 9]})
    table = outcome_trends(df, "y", {"unit": "u", "time": "t", "treatment": "d"})
    treated = table.loc[table["group"] == "first treated 2"].set_index("time")["mean"]
    assert treated.to_dict() == {1: 3.0, 2: 6.0}
    assert outcome_trends(df, "y", {"treatment": "d"}) is None


def test_benjamini_hochberg_matches_statsmodels():
    # Independent source: statsmodels.stats.multitest.multipletests(method="fdr_bh").
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.01, 0.04, 0.03, 0.2, 0.005, 0.5])
    assert np.allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], atol=1e-12)
    with_nan = benjamini_hochberg([0.02, np.nan, 0.04])
    assert np.isnan(with_nan[1]) and np.allclose(with_nan[[0, 2]], [0.04, 0.04])


def test_portfolio_rows_adjust_within_programme(spec_dir):
    text = spec_dir.base + '''
[[evaluations]]
name = "Outputs"
outcome = "RCO01"
design = "did.twfe"
options = { treatment = "treated", unit = "region", time = "year", vcov = "CR2" }
'''
    run = evaluate(load_spec(spec_dir(text)))
    rows = portfolio_rows([run])
    p = [r["p_value"] for r in rows]
    assert [r["p_adjusted"] for r in rows] == pytest.approx(list(benjamini_hochberg(p)))
    assert {r["indicator"] for r in rows} == {"NB_EMPRATE", "RCO01"}


def test_portfolio_shows_romano_wolf_where_a_design_computed_it(spec_dir, monkeypatch):
    import impact.rct

    def toy_trial(df, *, outcome):
        table = effects_table(["ATT"], [1.0], [0.5], p_romano_wolf=[0.07])
        return Result(design="toy", estimand="ATE", effects=table, headline="ATT", inference="toy", n_obs=len(df))

    monkeypatch.setattr(impact.rct, "toy_trial", toy_trial, raising=False)
    monkeypatch.setattr(impact.rct, "__all__", [*impact.rct.__all__, "toy_trial"])
    text = spec_dir.base.replace('design = "did.twfe"', 'design = "rct.toy_trial"').replace(
        'options = { treatment = "treated", unit = "region", time = "year", vcov = "CR2" }', ""
    )
    rows = portfolio_rows([evaluate(load_spec(spec_dir(text)))])
    assert rows[0]["p_romano_wolf"] == 0.07 and rows[0]["sms_level"] == "5"


def test_warnings_are_recorded_for_the_report_but_not_developer_noise(spec_dir, monkeypatch):
    import warnings

    import impact.rct

    def noisy(df, *, outcome):
        warnings.warn("numerical trouble", RuntimeWarning, stacklevel=1)
        warnings.warn("old API", FutureWarning, stacklevel=1)
        table = effects_table(["ATE"], [1.0], [0.5])
        return Result(design="toy", estimand="ATE", effects=table, headline="ATE", inference="toy", n_obs=len(df))

    monkeypatch.setattr(impact.rct, "noisy", noisy, raising=False)
    monkeypatch.setattr(impact.rct, "__all__", [*impact.rct.__all__, "noisy"])
    text = spec_dir.base.replace('design = "did.twfe"', 'design = "rct.noisy"').replace(
        'options = { treatment = "treated", unit = "region", time = "year", vcov = "CR2" }', ""
    )
    outcome = evaluate(load_spec(spec_dir(text))).outcomes[0]
    assert outcome.captured_warnings == ("RuntimeWarning: numerical trouble",)
