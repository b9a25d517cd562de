"""Fixed-effect absorption: exact against explicit dummy regressions (numpy lstsq)."""

import numpy as np
import pandas as pd
import pytest

from impact.inference.absorb import FixedEffects, absorb


def _dummy_residuals(values, frame, columns, weights=None):
    D = pd.get_dummies(frame[columns].astype(str), drop_first=True).astype(float).to_numpy()
    D = np.column_stack([np.ones(len(frame)), D])
    w = np.ones(len(frame)) if weights is None else weights
    r = np.sqrt(w)
    coef = np.linalg.lstsq(D * r[:, None], values * r, rcond=None)[0]
    return values - D @ coef


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("columns", [["a"], ["a", "b"], ["a", "b", "c"]])
def test_absorb_equals_dummy_regression_on_unbalanced_data(columns, weighted):
    rng = np.random.default_rng(4)
    n = 400
    frame = pd.DataFrame({"a": rng.integers(0, 30, n), "b": rng.integers(0, 8, n), "c": rng.integers(0, 3, n)})
    values = rng.normal(size=n)
    w = rng.uniform(0.5, 2, n) if weighted else None
    fe = FixedEffects.from_columns(frame, columns)
    got = absorb(values, fe, weights=w, tol=1e-13)
    assert np.allclose(got, _dummy_residuals(values, frame, columns, w), atol=1e-8)


def test_parameter_count_counts_disconnected_components():
    # two separate blocks: units 0-1 only in periods 0-1, units 2-3 only in periods 2-3
    frame = pd.DataFrame({"unit": [0, 0, 1, 1, 2, 2, 3, 3], "time": [0, 1, 0, 1, 2, 3, 2, 3]})
    fe = FixedEffects.from_columns(frame, ["unit", "time"])
    D = pd.get_dummies(frame.astype(str)).astype(float).to_numpy()
    assert fe.n_parameters == np.linalg.matrix_rank(D) == 6


def test_nested_in_clusters():
    frame = pd.DataFrame({"unit": [0, 0, 1, 1, 2, 2], "time": [0, 1, 0, 1, 0, 1]})
    fe = FixedEffects.from_columns(frame, ["unit", "time"])
    assert fe.nested_in(np.array([0, 0, 0, 0, 1, 1])) == [True, False]


def test_input_is_not_modified():
    values = np.arange(6.0)
    frame = pd.DataFrame({"g": [0, 0, 1, 1, 2, 2]})
    absorb(values, FixedEffects.from_columns(frame, ["g"]))
    assert np.array_equal(values, np.arange(6.0))
