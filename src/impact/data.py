"""Input validation shared by every estimator.

Estimators call :func:`prepare` once at their boundary. It never modifies the caller's DataFrame:
it returns a new frame holding only the columns in use (original index kept, so that errors and
sample-flow notes can name the user's own rows), after checking columns, types, duplicates,
missing values and treatment coding, and records every row it removed in a sample flow.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd

from impact.errors import (
    DataError,
    EstimationError,
    FewClustersWarning,
    FewTreatedClustersWarning,
    MissingDataWarning,
    SpecError,
    warn,
)
from impact.results import FlowStep

__all__ = [
    "MissingPolicy",
    "Prepared",
    "check_option",
    "show",
    "prepare",
    "check_absorbing",
    "check_constant_within",
    "check_treated_and_control",
    "check_rank",
    "cluster_codes",
    "as_list",
    "check_level",
    "check_seed",
    "check_integer",
    "check_number",
    "check_column_argument",
    "check_column_arguments",
    "check_varies",
    "check_positive_weights",
    "with_unique_index",
    "coerce_period",
    "canonical_order",
    "check_not_outcome",
]

MissingPolicy = Literal["drop", "error"]
FEW_CLUSTERS = 30
FEW_TREATED_CLUSTERS = 5
_MAX_LISTED = 5
# Values beyond this overflow in the squares and cross-products every estimator forms (1e154 squared
# is inf); anything near it is a unit or coding error (e.g. a sentinel), so it is refused.
MAX_MAGNITUDE = 1e100
# Roles that name exactly one column.
_SINGLE_COLUMN_ROLES = frozenset({
    "outcome", "treatment", "unit", "time", "cohort", "weights", "cluster", "clusters", "blocks", "assignment",
    "observed", "received",
})
# Roles that must be given (a None there is a mistake, not an omitted option).
_REQUIRED_ROLES = frozenset({"outcome", "outcomes", "unit", "time"})

T = TypeVar("T")


def check_option(name: str, value: T, allowed: Iterable[Any]) -> T:
    """Return ``value`` if it is one of ``allowed``; otherwise raise SpecError listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise SpecError(f"{name}={value!r} is not a valid option; choose one of {listed}.")
    return value


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_level(level: Any, where: str, *, name: str = "level") -> float:
    """Return ``level`` as a float if it is a number strictly between 0 and 1, else raise SpecError."""
    if not _is_real(level) or not 0 < float(level) < 1:
        raise SpecError(
            f"{where}: {name} must be a number strictly between 0 and 1 (e.g. 0.95 for 95% intervals); "
            f"got {level!r} ({type(level).__name__})."
        )
    return float(level)


def check_seed(seed: Any, where: str) -> Any:
    """Return ``seed`` if it is None, a non-negative integer or a numpy Generator, else raise SpecError."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)) and seed >= 0:
        return int(seed)
    raise SpecError(
        f"{where}: seed must be a non-negative whole number (or None for a fresh random seed); got "
        f"{seed!r} ({type(seed).__name__})."
    )


def check_integer(name: str, value: Any, where: str, *, minimum: int | None = None, allow_none: bool = False) -> Any:
    """Return ``value`` as an int if it is a whole number (at least ``minimum``), else raise SpecError.

    Floats are accepted only when whole (3.0); 2.5 is refused rather than truncated.
    """
    if value is None and allow_none:
        return None
    whole = (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))) or (
        isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer()
    )
    if not whole:
        raise SpecError(f"{where}: {name} must be a whole number; got {value!r} ({type(value).__name__}).")
    if minimum is not None and int(value) < minimum:
        raise SpecError(f"{where}: {name} must be at least {minimum}; got {value!r}.")
    return int(value)


def check_number(
    name: str,
    value: Any,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> Any:
    """Return ``value`` as a float if it is a finite number within the bounds, else raise SpecError."""
    if value is None and allow_none:
        return None
    ok = _is_real(value) and np.isfinite(float(value))
    if ok and low is not None:
        ok = float(value) > low if low_open else float(value) >= low
    if ok and high is not None:
        ok = float(value) < high if high_open else float(value) <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        bounds = " and ".join(b for b in (lo, hi) if b)
        raise SpecError(
            f"{where}: {name} must be a finite number{' ' + bounds if bounds else ''}; got {value!r} "
            f"({type(value).__name__})."
        )
    return float(value)


def check_column_argument(role: str, value: Any, where: str) -> None:
    """Raise SpecError if a column argument has the wrong type (e.g. ``outcome=None`` or a list)."""
    if role in _REQUIRED_ROLES and value is None:
        raise SpecError(f"{where}: {role}= is required: pass the name of the {role} column.")
    if role in _SINGLE_COLUMN_ROLES and isinstance(value, (list, tuple, set, dict, np.ndarray, pd.Index, pd.Series)):
        raise SpecError(f"{where}: {role}= takes the name of one column; got {type(value).__name__} {value!r}.")
    if isinstance(value, (list, tuple)) and any(isinstance(v, (list, tuple, set, dict)) or v is None for v in value):
        raise SpecError(f"{where}: {role}= must list column names; got {value!r}.")


def check_column_arguments(where: str, **roles: Any) -> None:
    """:func:`check_column_argument` for each ``role=value`` (for estimators that look at columns before prepare)."""
    for role, value in roles.items():
        check_column_argument(role, value, where)


def check_varies(frame: pd.DataFrame, column: str, where: str, *, role: str = "outcome") -> None:
    """Raise DataError if ``column`` is constant (to within rounding) in the estimation sample."""
    values = frame[column].to_numpy(dtype=float)
    if len(values) == 0:
        return
    low, high = float(np.min(values)), float(np.max(values))
    if high - low <= 1e-12 * max(abs(low), abs(high)):
        raise DataError(
            f"{where}: {role} column {column!r} is constant ({show(values[0])} in all {len(values)} rows of "
            "the estimation sample), so there is no variation to estimate an effect from. Check that the "
            "right column is used and that filters did not leave a single value."
        )


def check_positive_weights(frame: pd.DataFrame, column: str | None, where: str) -> None:
    """Raise DataError naming the rows whose weight is zero or negative."""
    if not column:
        return
    w = frame[column].to_numpy(dtype=float)
    bad = ~(w > 0)
    if bad.any():
        raise DataError(
            f"{where}: weights in {column!r} must be positive; rows {_rows(frame.index[bad])} are not "
            f"(e.g. {show(w[bad][0])}). Drop those rows or give them a positive weight."
        )


def canonical_order(values: np.ndarray, labels: Sequence[Any]) -> np.ndarray:
    """A permutation of units that depends on their data only, not on row order or unit labels.

    Units (rows of ``values``, e.g. treatment and outcome paths) are sorted lexicographically by their
    values, first column first (NaN last). Estimators that draw random numbers per unit (bootstrap,
    placebo draws) or match greedily process units in this order, so that shuffling the rows or
    renaming the units gives the same result with the same seed. Ties (units with identical data)
    are broken by the label's text; they only matter where tied units differ in something not in
    ``values``.
    """
    values = np.asarray(values, dtype=float).reshape(len(labels), -1)
    text = pd.Index(labels).astype(str)
    tie = np.empty(len(text), dtype=np.int64)
    tie[np.argsort(np.asarray(text), kind="stable")] = np.arange(len(text))
    keys = [tie] + [values[:, j] for j in range(values.shape[1] - 1, -1, -1)]
    return np.lexsort(keys)


def coerce_period(value: Any, times: pd.Series, name: str, where: str) -> Any:
    """A period named by the user (e.g. ``treatment_time``) on the scale of the validated time column.

    Text numbers become numbers when time is numeric ('1989' -> 1989), text dates become Timestamps
    when time holds datetimes; a value that cannot be compared with the periods is refused, so that
    no comparison silently sorts text against numbers.
    """
    import datetime

    if pd.api.types.is_datetime64_any_dtype(times):
        if isinstance(value, (str, datetime.date, np.datetime64, pd.Timestamp)):
            try:
                return pd.Timestamp(value)
            except (TypeError, ValueError):
                pass
        raise SpecError(
            f"{where}: {name}={value!r} cannot be compared with the datetime periods of the time column; give "
            "a date such as '2015-01-01' or pd.Timestamp('2015-01-01')."
        )
    if pd.api.types.is_numeric_dtype(times):
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
            if number is not None and np.isfinite(number):
                return int(number) if number.is_integer() else number
        elif _is_real(value) and np.isfinite(float(value)):
            return value
        raise SpecError(
            f"{where}: {name}={value!r} is not a period of the numeric time column (e.g. {show(times.iloc[0])}); "
            "give a number on the same scale."
        )
    return value


def with_unique_index(df: Any) -> Any:
    """``df`` itself if its row labels are unique, else a shallow relabelled view numbered 0..n-1.

    Estimators that look rows up again by label (``df.loc[frame.index]``) need unique labels; with
    duplicated labels the rows are then named by position in messages. The caller's frame is untouched.
    """
    if isinstance(df, pd.DataFrame) and not df.index.is_unique:
        return df.set_axis(pd.RangeIndex(len(df)), axis=0)
    return df


def as_list(columns: str | Sequence[str] | None) -> list[str]:
    """Normalise a column argument (None, one name, or several) into a list of names."""
    if columns is None:
        return []
    if isinstance(columns, str) or not isinstance(columns, Iterable):
        return [columns]  # one column label (text, or e.g. an integer label)
    return list(columns)


def show(value: Any) -> str:
    """repr() of a user's value as they would type it (numpy scalars shown as Python scalars)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _rows(index: pd.Index, limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(str(i) for i in index[:limit])
    more = f" and {len(index) - limit} more" if len(index) > limit else ""
    return f"{shown}{more}"


@dataclass(frozen=True)
class Prepared:
    """A validated estimation sample and how it was reached from the user's data."""

    frame: pd.DataFrame
    flow: tuple[FlowStep, ...]
    roles: dict[str, Any] = field(default_factory=dict)

    def with_step(self, frame: pd.DataFrame, step: str, note: str, unit: str | None = None) -> Prepared:
        """A new Prepared after removing rows, with the step recorded in the flow."""
        units = int(frame[unit].nunique()) if unit else None
        return Prepared(frame, self.flow + (FlowStep(step, len(frame), units, note),), self.roles)


def _require_columns(df: pd.DataFrame, roles: dict[str, Any], where: str) -> None:
    missing = []
    for role, cols in roles.items():
        for col in as_list(cols):
            if col not in df.columns:
                close = difflib.get_close_matches(str(col), [str(c) for c in df.columns], n=3)
                hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
                missing.append(f"{role}={col!r}{hint}")
    if missing:
        available = ", ".join(repr(c) for c in list(df.columns)[:20])
        more = " ..." if df.shape[1] > 20 else ""
        raise DataError(
            f"{where}: column(s) not found in the data: {'; '.join(missing)}. "
            f"Available columns: {available}{more}. Pass the name of an existing column."
        )


def _require_numeric(frame: pd.DataFrame, columns: Iterable[str], where: str) -> pd.DataFrame:
    out = frame
    for col in columns:
        series = frame[col]
        if pd.api.types.is_bool_dtype(series):
            out = out if out is not frame else frame.copy()
            out[col] = series.astype(float)
            continue
        if pd.api.types.is_numeric_dtype(series):
            continue
        if pd.api.types.is_datetime64_any_dtype(series) or isinstance(series.dtype, pd.PeriodDtype):
            # pd.to_numeric would silently turn dates into nanoseconds since 1970
            raise DataError(
                f"{where}: column {col!r} holds dates ({show(series.iloc[0])}, ...) but this estimator needs numbers "
                f"there. Convert it, e.g. df[{col!r}].dt.year for years, or a period index 1, 2, ..., and give "
                "cohorts or treatment times on the same scale."
            )
        coerced = pd.to_numeric(series, errors="coerce")
        bad = series.notna() & coerced.isna()
        if bad.any():
            examples = ", ".join(show(v) for v in series[bad].unique()[:3])
            raise DataError(
                f"{where}: column {col!r} must be numeric but holds non-numeric values ({examples}) in "
                f"rows {_rows(series.index[bad])}. Recode it as numbers (e.g. 0/1 for a treatment dummy, "
                "or pd.get_dummies for a categorical covariate)."
            )
        out = out if out is not frame else frame.copy()
        out[col] = coerced
    return out


def prepare(
    df: pd.DataFrame,
    *,
    where: str,
    roles: dict[str, str | Sequence[str] | None],
    numeric: Iterable[str] = (),
    unique: Sequence[str] | None = None,
    missing: MissingPolicy = "drop",
    unit: str | None = None,
) -> Prepared:
    """Validate ``df`` for an estimator and return the estimation sample.

    Parameters
    ----------
    df : DataFrame
        The user's data; never modified.
    where : str
        Name of the calling estimator, used in messages.
    roles : dict
        Argument name -> column name(s), e.g. ``{"outcome": "y", "covariates": ["x1", "x2"]}``.
        ``None`` values are skipped.
    numeric : iterable of str
        Columns that must be numeric (booleans become 0.0/1.0 in the returned copy).
    unique : sequence of str, optional
        Columns that must identify rows uniquely (e.g. unit and time of a panel).
    missing : {"drop", "error"}
        Rows with a missing value in any column in use are dropped (with a
        :class:`~impact.errors.MissingDataWarning` and a sample-flow step that counts them per
        column), or raise a DataError.
    unit : str, optional
        Unit column, used to count units in the sample flow.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame in long format, got {type(df).__name__}.")
    check_option("missing", missing, ("drop", "error"))
    for role, cols in roles.items():
        check_column_argument(role, cols, where)
    roles = {k: v for k, v in roles.items() if v is not None and as_list(v)}
    _require_columns(df, roles, where)
    used = list(dict.fromkeys(c for cols in roles.values() for c in as_list(cols)))
    if len(df) == 0:
        raise DataError(f"{where}: the data has no rows (an empty DataFrame); pass the data to estimate from.")
    # a new frame of the used columns; no deep copy: every later change replaces a column (frame.copy()
    # first, or assign), and pandas 3's copy-on-write never writes through to the user's data
    frame = df.loc[:, used]
    flow = (FlowStep("rows supplied", len(frame), int(frame[unit].nunique()) if unit else None, ""),)
    prepared = Prepared(frame, flow, dict(roles))

    numeric = list(dict.fromkeys(numeric))
    if "time" in roles:
        frame = _parse_time(frame, roles["time"], where)
    frame = _require_numeric(frame, numeric, where)

    # +-inf is bad input exactly like a missing value: counted, reported and handled by `missing`
    if _all_finite(frame):
        _check_magnitude(frame, numeric, where)
        _check_degenerate(frame, roles, where)
        return _check_unique(Prepared(frame, prepared.flow, prepared.roles), unique, where)
    na = frame.isna()
    infinite = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for col in frame.columns:
        if pd.api.types.is_float_dtype(frame[col]):
            infinite[col] = np.isinf(frame[col].to_numpy(dtype=float, na_value=np.nan))
    bad_cells = na | infinite
    if bad_cells.to_numpy().any():
        bad = bad_cells.any(axis=1)
        parts = []
        for c in frame.columns:
            n_na, n_inf = int(na[c].sum()), int(infinite[c].sum())
            kinds = [f"{n_na} missing"] * bool(n_na) + [f"{n_inf} infinite"] * bool(n_inf)
            if kinds:
                parts.append(f"{c}: {' and '.join(kinds)}")
        detail = ", ".join(parts)
        what = "missing or infinite values" if infinite.to_numpy().any() else "missing values"
        if missing == "error":
            raise DataError(
                f"{where}: {int(bad.sum())} row(s) have {what} in the columns used ({detail}); "
                f"first rows: {_rows(frame.index[bad])}. Impute or remove them, or pass missing='drop' "
                "to drop them (the report will state how many were dropped)."
            )
        frame = frame.loc[~bad]
        note = f"dropped {int(bad.sum())} row(s) with {what} ({detail}; first rows: {_rows(bad.index[bad])})"
        warn(MissingDataWarning, f"{where}: {note}.")
        prepared = prepared.with_step(frame, "complete cases", note, unit)
        if len(frame) == 0:
            raise DataError(f"{where}: no rows are left after dropping rows with {what} ({detail}).")

    _check_magnitude(frame, numeric, where)
    prepared = Prepared(frame, prepared.flow, prepared.roles)
    _check_degenerate(frame, roles, where)
    return _check_unique(prepared, unique, where)


def _all_finite(frame: pd.DataFrame) -> bool:
    """No missing or infinite value in any column (integer columns hold neither): one pass per float column."""
    for col in frame.columns:
        series = frame[col]
        dtype = series.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "iub":
            continue
        if isinstance(dtype, np.dtype) and dtype.kind == "f":
            values = series.to_numpy()
            if not np.isfinite(values.sum()) and not np.isfinite(values).all():  # a finite sum proves it at once
                return False
            continue
        if series.isna().any() or (pd.api.types.is_float_dtype(dtype)
                                   and np.isinf(series.to_numpy(dtype=float, na_value=np.nan)).any()):
            return False
    return True


def _check_unique(prepared: Prepared, unique: Sequence[str] | None, where: str) -> Prepared:
    frame = prepared.frame
    if unique:
        dup = frame.duplicated(subset=list(unique), keep=False)
        if dup.any():
            keys = frame.loc[dup, list(unique)].drop_duplicates().head(_MAX_LISTED)
            listed = "; ".join(", ".join(f"{k}={show(v)}" for k, v in zip(unique, row)) for row in keys.itertuples(index=False))
            n_keys = int(frame.loc[dup, list(unique)].drop_duplicates().shape[0])
            raise DataError(
                f"{where}: {int(dup.sum())} rows share the same {' x '.join(unique)} ({n_keys} duplicated "
                f"key(s), first: {listed}). Each {' x '.join(unique)} must appear once: aggregate the "
                "duplicates or fix the unit/time identifiers."
            )
    return prepared


def _parse_time(frame: pd.DataFrame, time: str, where: str) -> pd.DataFrame:
    """Numbers stored as text become numbers, so that periods sort in time order ('2' before '10')."""
    series = frame[time]
    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        return frame
    if pd.api.types.is_bool_dtype(series):
        return frame
    present = series.dropna()
    if present.map(lambda v: isinstance(v, (pd.Timestamp, np.datetime64))).all() and len(present):
        out = frame.copy()
        out[time] = pd.to_datetime(series)
        return out
    coerced = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & coerced.isna()
    if bad.any():
        examples = ", ".join(show(v) for v in pd.unique(series[bad])[:3])
        raise DataError(
            f"{where}: time column {time!r} holds text that is not a number ({examples} in rows "
            f"{_rows(series.index[bad])}); text periods would sort alphabetically ('10' before '2'). Code "
            "periods as numbers (e.g. 2015, or a period index 1, 2, ...) or as datetimes (pd.to_datetime)."
        )
    out = frame.copy()
    out[time] = coerced
    return out


def _check_magnitude(frame: pd.DataFrame, numeric: Sequence[str], where: str) -> None:
    for col in numeric:
        values = frame[col].to_numpy(dtype=float)
        if len(values) == 0 or max(-float(values.min()), float(values.max())) <= MAX_MAGNITUDE:
            continue  # two reductions instead of an |x| array and a mask
        big = np.abs(values) > MAX_MAGNITUDE
        if big.any():
            raise DataError(
                f"{where}: column {col!r} holds values too large to compute with safely ({show(values[big][0])} "
                f"in rows {_rows(frame.index[big])}; limit {MAX_MAGNITUDE:g}): their squares overflow. "
                "Check for sentinel codes, or rescale the column (e.g. to thousands or logs)."
            )


def _check_degenerate(frame: pd.DataFrame, roles: dict[str, Any], where: str) -> None:
    """Refuse a constant outcome, a constant covariate, and a covariate that is the outcome."""
    outcomes = as_list(roles.get("outcome")) + as_list(roles.get("outcomes"))
    for col in outcomes:
        if pd.api.types.is_numeric_dtype(frame[col]):
            check_varies(frame, col, where)
    for cov in as_list(roles.get("covariates")):
        if not pd.api.types.is_numeric_dtype(frame[cov]) or cov in outcomes:
            continue
        x = frame[cov].to_numpy(dtype=float)
        if len(x) and float(np.max(x) - np.min(x)) <= 1e-12 * float(np.max(np.abs(x))):
            raise DataError(
                f"{where}: covariate {cov!r} is constant ({show(x[0])} in every row of the estimation sample), "
                "so it carries no information and its coefficient is not identified. Remove it from covariates."
            )
        for col in outcomes:
            check_not_outcome(x, frame[col].to_numpy(dtype=float), covariate=cov, outcome=col, where=where)


def check_not_outcome(x: np.ndarray, y: np.ndarray, *, covariate: str, outcome: str, where: str) -> None:
    """Raise DataError if covariate ``x`` is the outcome ``y`` or an exact linear function of it."""
    if len(y) <= 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return
    if abs(np.corrcoef(x, y)[0, 1]) > 1 - 1e-12:
        raise DataError(
            f"{where}: covariate {covariate!r} is the outcome {outcome!r} (or an exact linear function of it); "
            "adjusting for the outcome itself makes any effect estimate meaningless. Remove it from "
            "covariates (use pre-treatment values of the outcome instead, if intended)."
        )


def check_binary(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """Return ``column`` as a 0/1 integer array, or raise naming the rows with other values."""
    values = frame[column].to_numpy(dtype=float)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        examples = ", ".join(show(v) for v in pd.unique(values[bad])[:3])
        raise DataError(
            f"{where}: column {column!r} must be coded 0/1 (or True/False) but holds {examples} in rows "
            f"{_rows(frame.index[bad])}. Recode the treatment indicator as 0 = untreated, 1 = treated."
        )
    return values.astype(np.int8)


def check_treated_and_control(treated: np.ndarray, where: str, *, what: str = "observations") -> None:
    """Raise if there are no treated or no untreated ``what``."""
    n_treated = int(np.count_nonzero(treated))
    if n_treated == 0:
        raise DataError(
            f"{where}: there are no treated {what} (treatment is 0 everywhere). Check the treatment "
            "column and its coding (1 = treated)."
        )
    if n_treated == len(treated):
        raise DataError(
            f"{where}: there are no untreated {what} to compare with (treatment is 1 everywhere). "
            "A comparison group is required."
        )


def check_absorbing(frame: pd.DataFrame, *, unit: str, time: str, treatment: str, where: str) -> None:
    """Raise if treatment switches off within a unit (1 followed by 0 in time order)."""
    ordered = frame.sort_values([unit, time], kind="stable")
    d = ordered[treatment].to_numpy()
    same_unit = ordered[unit].to_numpy()[1:] == ordered[unit].to_numpy()[:-1]
    off = same_unit & (d[:-1] == 1) & (d[1:] == 0)
    if off.any():
        idx = np.flatnonzero(off) + 1
        units = ordered[unit].to_numpy()[idx]
        times = ordered[time].to_numpy()[idx]
        listed = ", ".join(f"{unit}={show(u)} at {time}={show(t)}" for u, t in list(zip(units, times))[:_MAX_LISTED])
        n_units = len(pd.unique(units))
        raise DataError(
            f"{where}: treatment must be absorbing (once 1, it stays 1) but it switches off for {n_units} "
            f"unit(s): {listed}. Code treatment as 'has ever started', or use a design for treatment "
            "that switches on and off."
        )


def check_constant_within(frame: pd.DataFrame, *, unit: str, column: str, where: str) -> None:
    """Raise if ``column`` takes more than one value within a unit (e.g. the cohort)."""
    counts = frame.groupby(unit, sort=False)[column].nunique(dropna=False)
    bad = counts[counts > 1]
    if len(bad):
        raise DataError(
            f"{where}: column {column!r} must be constant within each {unit} but varies for {len(bad)} "
            f"unit(s): {_rows(bad.index)}. Use one value per unit (e.g. the first treated period)."
        )


def cluster_codes(
    values: pd.Series | np.ndarray,
    *,
    where: str,
    treated: np.ndarray | None = None,
    name: str = "cluster",
    codes: np.ndarray | None = None,
    vcov: str | None = None,
) -> tuple[np.ndarray, int]:
    """Integer cluster codes and the number of clusters, with the few-cluster checks.

    ``vcov`` is the inference the caller will use: when it is already a small-sample remedy (CR2,
    wild bootstrap) the warning says what remains fragile instead of recommending it.

    Raises DataError with fewer than two clusters; warns (FewClustersWarning) with fewer than 30,
    and (FewTreatedClustersWarning) when fewer than five clusters contain treated observations.
    Pass ``codes`` (0..G-1) when the caller has already factorised the same column.
    """
    if codes is None:
        codes, uniques = pd.factorize(np.asarray(values), sort=True)
        n_clusters = len(uniques)
    else:
        n_clusters = int(codes.max()) + 1 if len(codes) else 0
    if n_clusters < 2:
        raise DataError(
            f"{where}: cluster-robust inference needs at least 2 clusters in {name!r}; the sample has "
            f"{n_clusters}. Cluster at a level with several groups, or use vcov='HC1'."
        )
    n_treated = None
    if treated is not None:
        n_treated = int(np.count_nonzero(np.bincount(codes[np.asarray(treated) != 0], minlength=n_clusters)))
    if n_clusters < FEW_CLUSTERS:
        extra = f" ({n_treated} of them treated)" if n_treated is not None else ""
        remedy = {"CR2": "CR2 (Bell-McCaffrey) with Satterthwaite degrees of freedom",
                  "wild": "the wild cluster bootstrap"}.get(str(vcov))
        if remedy:
            advice = (f"The inference chosen, {remedy}, is the small-sample remedy; it can still be somewhat "
                      "off when clusters differ much in size or few are treated, so read p-values near the "
                      "threshold with care.")
        else:
            advice = ("The DiD designs' default (inference='auto') uses randomisation inference over the "
                      "assignment of start years here where it can; the result's inference text names the method "
                      "used. Where it says analytic, prefer small-sample corrected (CR2) or wild cluster bootstrap "
                      "inference with Webb weights (vcov='CR2' or vcov='wild' in regression designs; bootstrap "
                      "with bootstrap_weights='webb' in att_gt).")
        warn(
            FewClustersWarning,
            f"{where}: only {n_clusters} clusters in {name!r}{extra}; analytic cluster-robust standard "
            f"errors over-reject with fewer than about 30 clusters. {advice}",
        )
    if n_treated is not None and 0 < n_treated < FEW_TREATED_CLUSTERS:
        warn(
            FewTreatedClustersWarning,
            f"{where}: only {n_treated} treated cluster(s) out of {n_clusters} in {name!r}; with so few "
            "treated clusters every cluster-based method (analytic, CR2, wild bootstrap) can be "
            "unreliable. Randomisation inference over the assignment of treatment (the DiD designs' default "
            "with inference='auto' where it applies; the result's inference text says whether it was used) or "
            "synthetic control is the valid choice.",
        )
    return codes.astype(np.int64, copy=False), n_clusters


def check_rank(matrix: np.ndarray, names: Sequence[str], where: str, *, context: str = "") -> None:
    """Raise EstimationError naming the columns of ``matrix`` that are collinear.

    Uses a QR decomposition with column pivoting; columns whose pivot falls below a relative
    tolerance are reported with the columns they are a combination of.
    """
    from scipy import linalg

    n, k = matrix.shape
    if k == 0:
        return
    norms = np.sqrt((matrix**2).sum(axis=0))
    zero = norms <= 1e-12 * max(1.0, float(np.sqrt((matrix**2).sum() / max(k, 1))))
    if zero.any():
        cols = [names[i] for i in np.flatnonzero(zero)]
        raise EstimationError(
            f"{where}: column(s) {cols} have no variation left{context}, so their effect is not "
            "identified. Remove them (a variable constant within units is absorbed by unit fixed "
            "effects; one constant within periods by time effects)."
        )
    scaled = matrix / norms
    _, r, piv = linalg.qr(scaled, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    tol = max(n, k) * np.finfo(float).eps * 1e3 * diag[0]
    rank = int((diag > tol).sum())
    if rank < k:
        kept = piv[:rank]
        dropped = piv[rank:]
        coef, *_ = np.linalg.lstsq(scaled[:, kept], scaled[:, dropped], rcond=None)
        details = []
        for j, col in enumerate(dropped):
            partners = [names[kept[i]] for i in np.flatnonzero(np.abs(coef[:, j]) > 1e-8)]
            details.append(f"{names[col]!r} is a linear combination of {partners}" if partners else repr(names[col]))
        raise EstimationError(
            f"{where}: the design matrix is rank deficient (rank {rank} of {k} columns){context}: "
            f"{'; '.join(details)}. Drop one of the collinear columns."
        )
