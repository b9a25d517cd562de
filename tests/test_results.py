"""The shared result type: tidy/summary/to_dict/conf_int/compare behave the same for every design."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from impact.errors import SpecError
from impact.results import TIDY_COLUMNS, FlowStep, Result, compare, effects_table


def _result(**kw):
    table = effects_table(["ATT", "x"], [2.0, 0.5], [0.5, 0.25], df=20, level=0.95)
    base = dict(design="demo", estimand="ATT", effects=table, headline="ATT", inference="iid", n_obs=100,
                sample_flow=(FlowStep("rows supplied", 100),))
    base.update(kw)
    return Result(**base)


def test_effects_table_uses_t_with_df():
    table = effects_table(["a"], [2.0], [0.5], df=20, level=0.9)
    crit = stats.t.ppf(0.95, 20)
    assert table.loc[0, "conf_low"] == pytest.approx(2 - crit * 0.5)
    assert table.loc[0, "p_value"] == pytest.approx(2 * stats.t.sf(4, 20))
    normal = effects_table(["a"], [2.0], [0.5])
    assert normal.loc[0, "p_value"] == pytest.approx(2 * stats.norm.sf(4))


def test_headline_accessors_and_conf_int_levels():
    res = _result()
    assert res.estimate == 2.0 and res.std_error == 0.5
    low, high = res.conf_int()
    assert (low, high) == pytest.approx((2 - stats.t.ppf(0.975, 20) * 0.5, 2 + stats.t.ppf(0.975, 20) * 0.5))
    assert res.conf_int(0.5)[0] > low
    with pytest.raises(SpecError):
        res.conf_int(1.5)


def test_tidy_is_a_copy_with_required_columns_first():
    res = _result()
    tidy = res.tidy()
    assert tuple(tidy.columns[:7]) == TIDY_COLUMNS
    tidy.loc[0, "estimate"] = 99
    assert res.estimate == 2.0


def test_to_dict_is_json_and_complete():
    res = _result(warnings=("FewClustersWarning: few",), diagnostics={"pre": {"p": np.float64(0.3)}, "inf": math.inf})
    out = json.loads(json.dumps(res.to_dict()))
    assert out["headline"]["term"] == "ATT" and out["n_obs"] == 100
    assert out["warnings"] == ["FewClustersWarning: few"]
    assert out["sample_flow"][0]["rows"] == 100
    assert out["diagnostics"]["pre"]["p"] == 0.3


def test_summary_mentions_sample_inference_and_warnings():
    text = _result(warnings=("W: careful",)).summary()
    assert "Observations: 100" in text and "Inference: iid" in text and "careful" in text


def test_invalid_construction():
    with pytest.raises(ValueError, match="headline"):
        _result(headline="nope")
    with pytest.raises(ValueError, match="lacks columns"):
        _result(effects=pd.DataFrame({"term": ["ATT"]}))


def test_replace_returns_new_object():
    res = _result()
    other = res.replace(inference="CR2")
    assert other.inference == "CR2" and res.inference == "iid"


def test_compare_side_by_side():
    table = compare({"model A": _result(), "model B": _result(n_obs=50)})
    assert table["model"].tolist() == ["model A", "model B"]
    assert compare([_result(), _result()], terms="all")["model"].tolist() == ["demo", "demo", "demo (2)", "demo (2)"]
    with pytest.raises(SpecError):
        compare([_result()], terms="some")


def test_tidy_names_the_inference_method_of_every_row():
    res = _result()
    assert list(res.tidy()["inference"]) == ["iid", "iid"]
    table = effects_table(["ATT", "x"], [2.0, 0.5], [0.5, 0.25], df=20,
                          inference=["randomisation inference, 1,140 assignments", None])
    mixed = _result(effects=table, inference="CR2, Satterthwaite df")
    assert list(mixed.tidy()["inference"]) == ["randomisation inference, 1,140 assignments",
                                               "CR2, Satterthwaite df"]
