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
    with pytest.warns(MissingDataWarning, match=r"dropped 2 row\(s\) with missing values \(y: 2\)"):
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
