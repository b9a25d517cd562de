"""Covariate matrices for matching and weighting: validation, dummy coding and checks.

Categorical covariates (text, pandas ``category`` or boolean-free non-numeric columns) are dummy
coded. The score model uses one dummy per level except the reference level, which is the first
level (the first category of a pandas ``Categorical``, otherwise the first in sorted order, as R's
``factor``). Balance tables show every level, as MatchIt does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from impact.data import Prepared, as_list, check_binary, check_rank, check_treated_and_control, prepare
from impact.errors import DataError, SpecError

__all__ = ["CovariateDesign", "prepare_design", "categorical_columns"]


def categorical_columns(df: pd.DataFrame, covariates: list[str]) -> list[str]:
    """Covariates that are not numeric or boolean (they will be dummy coded)."""
    out = []
    for col in covariates:
        if col not in df.columns:
            continue
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            continue
        out.append(col)
    return out


@dataclass(frozen=True)
class CovariateDesign:
    """The estimation sample as arrays.

    ``model`` holds the score-model columns (with reference levels dropped, no intercept);
    ``balance`` every covariate with all dummy levels, for balance tables.
    """

    prepared: Prepared
    treated: np.ndarray  # int8 0/1
    model: np.ndarray
    model_names: list[str]
    balance: np.ndarray
    balance_names: list[str]
    covariates: list[str]
    categorical: dict[str, list]  # column -> levels (first = reference)

    @property
    def index(self) -> pd.Index:
        return self.prepared.frame.index


def _ill_conditioned(model: np.ndarray) -> bool:
    """Whether [1, model] may be rank deficient: condition number of the correlation matrix."""
    sd = model.std(axis=0)
    if (sd == 0).any():
        return True
    Z = (model - model.mean(axis=0)) / sd
    eig = np.linalg.eigvalsh(Z.T @ Z / len(Z))
    return bool(eig.min() <= 1e-10 * eig.max())


def _levels(series: pd.Series) -> list:
    if isinstance(series.dtype, pd.CategoricalDtype):
        present = set(series.dropna().unique())
        return [c for c in series.cat.categories if c in present]
    return sorted(series.dropna().unique(), key=lambda v: str(v))


def prepare_design(
    df: pd.DataFrame,
    *,
    where: str,
    treatment: str,
    covariates: str | list[str],
    extra: dict[str, str | list[str] | None] | None = None,
    numeric_extra: list[str] = (),
    check_collinear: bool = True,
) -> CovariateDesign:
    """Validate the data and build covariate matrices (see module docstring for coding rules)."""
    covs = as_list(covariates)
    if not covs:
        raise SpecError(f"{where}: give at least one covariate in covariates=[...].")
    if treatment in covs:
        raise SpecError(f"{where}: the treatment column {treatment!r} cannot also be a covariate.")
    if len(set(covs)) != len(covs):
        dup = sorted({c for c in covs if covs.count(c) > 1})
        raise SpecError(f"{where}: covariates are listed twice: {dup}.")
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}.")
    cats = categorical_columns(df, covs)
    numeric = [treatment, *[c for c in covs if c not in cats], *numeric_extra]
    roles = {"treatment": treatment, "covariates": covs, **(extra or {})}
    prepared = prepare(df, where=where, roles=roles, numeric=numeric)
    frame = prepared.frame
    treated = check_binary(frame, treatment, where)
    check_treated_and_control(treated, where)

    model_cols: list[np.ndarray] = []
    model_names: list[str] = []
    bal_cols: list[np.ndarray] = []
    bal_names: list[str] = []
    categorical: dict[str, list] = {}
    for col in covs:
        s = frame[col]
        if col in cats:
            levels = _levels(s)
            if len(levels) < 2:
                raise DataError(
                    f"{where}: categorical covariate {col!r} takes a single value ({levels[0]!r}) in the "
                    "estimation sample, so it cannot explain treatment. Remove it from covariates."
                )
            categorical[col] = levels
            values = s.to_numpy()
            for j, level in enumerate(levels):
                dummy = (values == level).astype(float)
                bal_cols.append(dummy)
                bal_names.append(f"{col}{level}")
                if j > 0:
                    model_cols.append(dummy)
                    model_names.append(f"{col}{level}")
        else:
            x = s.to_numpy(dtype=float)
            if not np.isfinite(x).all():
                bad = frame.index[~np.isfinite(x)]
                raise DataError(f"{where}: covariate {col!r} holds infinite values in rows {list(bad[:5])}.")
            if np.ptp(x) == 0:
                raise DataError(
                    f"{where}: covariate {col!r} is constant (every row equals {x[0]:g}) in the estimation "
                    "sample, so it cannot explain treatment or be balanced. Remove it from covariates."
                )
            model_cols.append(x)
            model_names.append(col)
            bal_cols.append(x)
            bal_names.append(col)
    if cats:
        model = np.column_stack(model_cols)
        balance = np.column_stack(bal_cols)
    else:  # often a view of the prepared frame's float block: no second copy of the data
        model = frame[covs].to_numpy(dtype=float)
        balance = model
    if check_collinear and _ill_conditioned(model):
        # the QR-based check names the collinear columns; it only runs when the cheap test fails
        check_rank(
            np.column_stack([np.ones(len(frame)), model]), ["(Intercept)", *model_names], where,
            context=" of the score model",
        )
    return CovariateDesign(
        prepared=prepared,
        treated=treated,
        model=model,
        model_names=model_names,
        balance=balance,
        balance_names=bal_names,
        covariates=covs,
        categorical=categorical,
    )
