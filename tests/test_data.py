"""The shared validation layer: every check names what, where and how to fix."""

import numpy as np
import pandas as pd
import pytest

from impact.data import (
    check_absorbing,
    check_binary,
    check_constant_within,
    check_option,
    check_rank,
    check_treated_and_control,
    cluster_codes,
    prepare,
)
from impact.errors import (
    DataError,
    EstimationError,
    FewClustersWarning,
    FewTreatedClustersWarning,
    MissingDataWarning,
    SpecError,
)


def _frame():
    return pd.DataFrame({"id": [1, 1, 2, 2, 3, 3], "t": [1, 2] * 3, "y": [1.0, 2, 3, 4, 5, 6],
                         "d": [0, 1, 0, 0, 0, 0], "x": ["a", "b", "a", "b", "a", "b"]})


def test_prepare_returns_a_copy_with_only_used_columns():
    df = _frame()
    out = prepare(df, where="t", roles={"outcome": "y", "unit": "id"}, numeric=["y"], unit="id")
    assert list(out.frame.columns) == ["y", "id"]
    out.frame.loc[0, "y"] = 99
    assert df.loc[0, "y"] == 1.0
    assert out.flow[0].rows == 6 and out.flow[0].units == 3


def test_missing_values_policy_and_flow():
    df = _frame()
    df.loc[[0, 3], "y"] = np.nan
    with pytest.warns(MissingDataWarning, match=r"dropped 2 row\(s\) with missing values \(y: 2 missing; first rows: 0, 3\)"):
        out = prepare(df, where="est", roles={"outcome": "y", "unit": "id"}, unit="id")
    assert [s.rows for s in out.flow] == [6, 4]
    with pytest.raises(DataError, match=r"first rows: 0, 3.*missing='drop'"):
        prepare(df, where="est", roles={"outcome": "y"}, missing="error")
    with pytest.raises(SpecError, match="missing='keep'"):
        prepare(df, where="est", roles={"outcome": "y"}, missing="keep")


def test_all_rows_missing_is_an_error():
    df = _frame().assign(y=np.nan)
    with pytest.raises(DataError, match="no rows are left"):
        with pytest.warns(MissingDataWarning):
            prepare(df, where="est", roles={"outcome": "y"})


def test_booleans_become_numbers_and_text_is_rejected():
    df = _frame().assign(flag=[True, False] * 3)
    out = prepare(df, where="est", roles={"treatment": "flag"}, numeric=["flag"])
    assert out.frame["flag"].dtype == float
    with pytest.raises(DataError, match=r"'x' must be numeric.*'a', 'b'.*pd.get_dummies"):
        prepare(df, where="est", roles={"covariates": ["x"]}, numeric=["x"])


def test_duplicates_listed():
    df = pd.concat([_frame(), _frame().iloc[[2]]])
    with pytest.raises(DataError, match=r"2 rows share the same id x t \(1 duplicated key\(s\), first: id=2, t=1\)"):
        prepare(df, where="est", roles={"unit": "id", "time": "t"}, unique=["id", "t"])


def test_check_binary_and_treated_control():
    df = _frame()
    assert check_binary(df, "d", "est").tolist() == [0, 1, 0, 0, 0, 0]
    with pytest.raises(DataError, match="no treated"):
        check_treated_and_control(np.zeros(4), "est", what="units")
    with pytest.raises(DataError, match="no untreated units"):
        check_treated_and_control(np.ones(4), "est", what="units")
    with pytest.raises(DataError, match=r"coded 0/1.*holds 0.5"):
        check_binary(df.assign(d=0.5), "d", "est")


def test_check_absorbing_and_constant_within():
    df = _frame().assign(d=[1, 0, 0, 0, 0, 1])
    with pytest.raises(DataError, match=r"switches off for 1 unit\(s\): id=1 at t=2"):
        check_absorbing(df, unit="id", time="t", treatment="d", where="est")
    df = _frame().assign(cohort=[2, 3, 0, 0, 0, 0])
    with pytest.raises(DataError, match=r"'cohort' must be constant within each id but varies for 1 unit\(s\): 1"):
        check_constant_within(df, unit="id", column="cohort", where="est")


def test_cluster_checks():
    with pytest.raises(DataError, match="at least 2 clusters"):
        cluster_codes(np.ones(5), where="est")
    with pytest.warns(FewClustersWarning, match=r"only 4 clusters in 'cluster' \(1 of them treated\)"):
        with pytest.warns(FewTreatedClustersWarning):
            codes, G = cluster_codes(np.array([1, 1, 2, 3, 4]), where="est", treated=np.array([1, 0, 0, 0, 0]))
    assert G == 4 and codes.tolist() == [0, 0, 1, 2, 3]


def test_check_rank_names_collinear_columns():
    X = np.column_stack([np.ones(10), np.arange(10.0), 2 * np.arange(10.0) + 1])
    with pytest.raises(EstimationError, match=r"rank 2 of 3 columns.*linear combination of"):
        check_rank(X, ["const", "a", "b"], "est")
    with pytest.raises(EstimationError, match=r"\['z'\] have no variation"):
        check_rank(np.column_stack([np.ones(5), np.zeros(5)]), ["const", "z"], "est")
    check_rank(np.column_stack([np.ones(5), np.arange(5.0)]), ["const", "a"], "est")


def test_check_option_lists_values():
    assert check_option("method", "dr", ("reg", "dr")) == "dr"
    with pytest.raises(SpecError, match="choose one of 'reg', 'dr'"):
        check_option("method", "x", ("reg", "dr"))


def test_not_a_dataframe_and_empty():
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        prepare([1, 2], where="est", roles={})
    with pytest.raises(DataError, match="no rows"):
        prepare(_frame().iloc[:0], where="est", roles={"outcome": "y"})


# --- issue 11: non-finite values, magnitudes, degenerate columns, option validation ---------------
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from impact.data import (  # noqa: E402
    canonical_order,
    check_column_argument,
    check_integer,
    check_level,
    check_number,
    check_seed,
    coerce_period,
    with_unique_index,
)


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_values_are_missing_values(bad):
    df = _frame().assign(y=[1.0, bad, 3, 4, np.nan, 6])
    with pytest.warns(MissingDataWarning, match=r"2 row\(s\) with missing or infinite values \(y: 1 missing and 1 infinite; first rows: 1, 4\)"):
        p = prepare(df, where="est", roles={"outcome": "y"}, numeric=["y"])
    assert list(p.frame.index) == [0, 2, 3, 5]
    assert "infinite" in p.flow[-1].note
    with pytest.raises(DataError, match=r"missing or infinite values in the columns used \(y: 1 missing and 1 infinite\)"):
        prepare(df, where="est", roles={"outcome": "y"}, numeric=["y"], missing="error")
    text = df.assign(y=["1", "inf", "3", "4", "5", "6"])  # 'inf' as text is parsed and treated the same
    with pytest.raises(DataError, match="y: 1 infinite"):
        prepare(text, where="est", roles={"outcome": "y"}, numeric=["y"], missing="error")


def test_huge_values_constant_outcome_and_degenerate_covariates():
    df = _frame()
    with pytest.raises(DataError, match=r"'y' holds values too large.*rows 2"):
        prepare(df.assign(y=[1.0, 2, 1e300, 4, 5, 6]), where="est", roles={"outcome": "y"}, numeric=["y"])
    with pytest.raises(DataError, match=r"outcome column 'y' is constant \(2.0 in all 6 rows"):
        prepare(df.assign(y=2.0), where="est", roles={"outcome": "y"}, numeric=["y"])
    with pytest.raises(DataError, match=r"covariate 'z' is constant"):
        prepare(df.assign(z=1.0), where="est", roles={"outcome": "y", "covariates": ["z"]}, numeric=["y", "z"])
    with pytest.raises(DataError, match=r"covariate 'z' is the outcome 'y'"):
        prepare(df.assign(z=3 * df["y"] - 1), where="est", roles={"outcome": "y", "covariates": ["z"]}, numeric=["y", "z"])


def test_text_time_is_parsed_as_numbers_or_refused():
    df = pd.DataFrame({"t": ["10", "2", "1"], "y": [1.0, 2, 3]})
    p = prepare(df, where="est", roles={"time": "t", "outcome": "y"})
    assert p.frame["t"].tolist() == [10, 2, 1] and pd.api.types.is_numeric_dtype(p.frame["t"])
    with pytest.raises(DataError, match=r"time column 't' holds text that is not a number \('2020Q1'"):
        prepare(df.assign(t=["2020Q1", "2020Q2", "2020Q3"]), where="est", roles={"time": "t", "outcome": "y"})
    dates = pd.to_datetime(["2020-01-01", "2021-01-01", "2022-01-01"])
    with pytest.raises(DataError, match=r"'t' holds dates .*dt.year"):
        prepare(df.assign(t=dates), where="est", roles={"time": "t", "outcome": "y"}, numeric=["t"])
    assert coerce_period("2021", pd.Series([2020, 2021]), "treatment_time", "est") == 2021
    assert coerce_period("2021-01-01", pd.Series(dates), "treatment_time", "est") == dates[1]
    with pytest.raises(SpecError, match="datetime periods"):
        coerce_period(2021, pd.Series(dates), "treatment_time", "est")


@pytest.mark.parametrize("level", ["0.95", 0, 1, 1.5, -0.1, float("nan"), None, True, np.inf])
def test_check_level_refuses(level):
    with pytest.raises(SpecError, match=r"est: level must be a number strictly between 0 and 1"):
        check_level(level, "est")


def test_option_helpers():
    assert check_level(np.float32(0.9), "est") == pytest.approx(0.9)
    assert check_seed(None, "est") is None and check_seed(np.int64(3), "est") == 3
    for bad in (-1, 1.5, "1", True, np.nan):
        with pytest.raises(SpecError, match="seed must be a non-negative whole number"):
            check_seed(bad, "est")
    assert check_integer("n", 3.0, "est") == 3
    with pytest.raises(SpecError, match=r"n must be a whole number; got 2.5"):
        check_integer("n", 2.5, "est")
    with pytest.raises(SpecError, match=r"n must be at least 1"):
        check_integer("n", 0, "est", minimum=1)
    with pytest.raises(SpecError, match=r"effect must be a finite number; got nan"):
        check_number("effect", float("nan"), "est")
    with pytest.raises(SpecError, match=r"tol must be a finite number > 0"):
        check_number("tol", 0.0, "est", low=0, low_open=True)
    with pytest.raises(SpecError, match=r"outcome= is required"):
        check_column_argument("outcome", None, "est")
    with pytest.raises(SpecError, match=r"outcome= takes the name of one column"):
        check_column_argument("outcome", ["y"], "est")


def test_duplicated_index_is_renumbered_on_a_new_frame():
    df = _frame().set_axis([0, 0, 1, 1, 2, 2])
    out = with_unique_index(df)
    assert out is not df and out.index.is_unique and list(df.index) == [0, 0, 1, 1, 2, 2]
    assert with_unique_index(_frame()) is not None


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=12), st.randoms())
def test_canonical_order_ignores_row_order_and_labels(rows, rnd):
    """The order depends on the data only: permuting units and renaming them gives the same data order."""
    values = np.array(rows, dtype=float)
    labels = [f"u{i}" for i in range(len(rows))]
    ordered = values[canonical_order(values, labels)]
    perm = list(range(len(rows)))
    rnd.shuffle(perm)
    renamed = [f"z{rnd.randint(0, 10**6)}_{i}" for i in range(len(rows))]
    np.testing.assert_array_equal(values[perm][canonical_order(values[perm], renamed)], ordered)
