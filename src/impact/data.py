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
]

MissingPolicy = Literal["drop", "error"]
FEW_CLUSTERS = 30
FEW_TREATED_CLUSTERS = 5
_MAX_LISTED = 5

T = TypeVar("T")


def check_option(name: str, value: T, allowed: Iterable[Any]) -> T:
    """Return ``value`` if it is one of ``allowed``; otherwise raise SpecError listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise SpecError(f"{name}={value!r} is not a valid option; choose one of {listed}.")
    return value


def as_list(columns: str | Sequence[str] | None) -> list[str]:
    """Normalise a column argument (None, one name, or several) into a list of names."""
    if columns is None:
        return []
    if isinstance(columns, str):
        return [columns]
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
    roles = {k: v for k, v in roles.items() if v is not None and as_list(v)}
    _require_columns(df, roles, where)
    used = list(dict.fromkeys(c for cols in roles.values() for c in as_list(cols)))
    if len(df) == 0:
        raise DataError(f"{where}: the data has no rows.")
    frame = df.loc[:, used].copy()
    flow = (FlowStep("rows supplied", len(frame), int(frame[unit].nunique()) if unit else None, ""),)
    prepared = Prepared(frame, flow, dict(roles))

    na = frame.isna()
    if na.to_numpy().any():
        bad = na.any(axis=1)
        per_column = {c: int(n) for c, n in na.sum().items() if n}
        detail = ", ".join(f"{c}: {n}" for c, n in per_column.items())
        if missing == "error":
            raise DataError(
                f"{where}: {int(bad.sum())} row(s) have missing values in the columns used ({detail}); "
                f"first rows: {_rows(frame.index[bad])}. Impute or remove them, or pass missing='drop' "
                "to drop them (the report will state how many were dropped)."
            )
        frame = frame.loc[~bad]
        note = f"dropped {int(bad.sum())} row(s) with missing values ({detail})"
        warn(MissingDataWarning, f"{where}: {note}.")
        prepared = prepared.with_step(frame, "complete cases", note, unit)
        if len(frame) == 0:
            raise DataError(f"{where}: no rows are left after dropping rows with missing values ({detail}).")

    frame = _require_numeric(frame, numeric, where)
    prepared = Prepared(frame, prepared.flow, prepared.roles)

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
            advice = ("Prefer small-sample corrected (CR2) or wild cluster bootstrap inference with Webb weights "
                      "(vcov='CR2' or vcov='wild' in regression designs; bootstrap with bootstrap_weights='webb' "
                      "in att_gt).")
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
            "unreliable. Report randomisation/permutation inference or synthetic control alongside.",
        )
    return codes.astype(np.int64), n_clusters


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
