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


def test_is_grid_recognises_a_panel_sorted_by_unit_and_period():
    from impact.inference.absorb import is_grid

    unit, time = np.repeat(np.arange(4), 3), np.tile(np.arange(3), 4)
    assert is_grid(unit, time, 4, 3)
    assert not is_grid(unit[::-1].copy(), time, 4, 3)  # units in another order
    assert not is_grid(unit, np.tile([0, 2, 1], 4), 4, 3)  # periods not in code order within a unit
    assert not is_grid(unit[:-1], time[:-1], 4, 3)  # incomplete


@pytest.mark.parametrize("n_columns", [1, 3])
def test_grid_sweep_equals_group_means_and_dummy_regression(n_columns):
    # the reshape path (rows in unit x period order) against the bincount path on the same rows
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"unit": np.repeat(np.arange(30), 6), "time": np.tile(np.arange(6), 30)})
    values = rng.normal(size=(len(frame), n_columns)) * 100 + 5
    codes = (frame["unit"].to_numpy(), frame["time"].to_numpy())
    grid = absorb(values, FixedEffects(codes, (30, 6), ("unit", "time"), balanced=True, grid=True))
    sweep = absorb(values, FixedEffects(codes, (30, 6), ("unit", "time"), balanced=True))
    np.testing.assert_allclose(grid, sweep, rtol=0, atol=1e-12)
    for j in range(n_columns):
        np.testing.assert_allclose(grid[:, j], _dummy_residuals(values[:, j], frame, ["unit", "time"]), atol=1e-9)


def test_overwrite_demeans_in_place_and_copies_otherwise():
    frame = pd.DataFrame({"g": [0, 0, 1, 1]})
    fe = FixedEffects.from_columns(frame, ["g"])
    values = np.asfortranarray(np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0], [7.0, 3.0]]))
    out = absorb(values, fe, overwrite=True)
    assert out is values and np.allclose(values[:, 0], [-1, 1, -1, 1])
    c_order = np.array([[1.0, 2.0], [3.0, 6.0]] * 2)
    assert absorb(c_order, fe, overwrite=True) is not c_order  # not column-contiguous: demeaned in a copy
