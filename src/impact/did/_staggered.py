"""Validation and bookkeeping shared by the staggered-adoption estimators.

``event_study``, ``sun_abraham`` and ``imputation`` all take a long panel with a ``cohort`` column
(the first treated period; 0 or missing for never-treated units). :func:`staggered_panel` checks it
once through :func:`impact.data.prepare` and returns integer codes and arrays the estimators use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from impact.data import (
    MissingPolicy,
    Prepared,
    as_list,
    check_constant_within,
    check_option,
    prepare,
)
from impact.errors import DataError, SampleWarning, warn
from impact.inference.absorb import FixedEffects
from impact.results import effects_table

__all__ = ["StaggeredPanel", "staggered_panel"]


@dataclass(frozen=True)
class StaggeredPanel:
    """A validated staggered-adoption panel."""

    prepared: Prepared
    y: np.ndarray
    unit_codes: np.ndarray
    n_units: int
    time_values: np.ndarray  # per observation
    periods: np.ndarray  # sorted distinct periods
    time_codes: np.ndarray
    cohort: np.ndarray  # per observation; 0 = never treated within the sample
    event_time: np.ndarray  # t - g, NaN for never-treated
    covariates: np.ndarray  # n x k
    covariate_names: tuple[str, ...]
    weights: np.ndarray | None
    cluster_values: np.ndarray
    treated_first_period: tuple  # units already treated in the first observed period

    @property
    def frame(self) -> pd.DataFrame:
        return self.prepared.frame

    @property
    def flow(self):
        return self.prepared.flow

    @property
    def never_treated(self) -> np.ndarray:
        return self.cohort == 0

    @property
    def treated_now(self) -> np.ndarray:
        return (self.cohort > 0) & (self.time_values >= self.cohort)

    def fixed_effects(self, mask: np.ndarray | None = None) -> FixedEffects:
        u = self.unit_codes if mask is None else self.unit_codes[mask]
        t = self.time_codes if mask is None else self.time_codes[mask]
        frame = pd.DataFrame({"unit": u, "time": t})
        return FixedEffects.from_columns(frame, ["unit", "time"])


def staggered_panel(
    df: pd.DataFrame,
    *,
    where: str,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: str | Sequence[str] | None = None,
    cluster: str | None = None,
    weights: str | None = None,
    missing: MissingPolicy = "drop",
    extra_roles: dict[str, str] | None = None,
) -> StaggeredPanel:
    """Validate a long panel with a cohort (first treated period) column.

    ``extra_roles`` names further columns a design reads (e.g. ``{"subcluster": ...}``) so that they are
    checked for presence and missing values like the others.

    Never-treated units have cohort 0 or missing (missing is read as never treated, not dropped).
    Cohorts later than the last observed period are never treated within the sample. Units treated
    in the first observed period have no untreated period; they are kept and listed in
    ``treated_first_period`` so that each estimator can report what it does with them.
    """
    check_option("missing", missing, ("drop", "error"))
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame in long format, got {type(df).__name__}.")
    covs = as_list(covariates)
    data = df
    if cohort in df.columns and df[cohort].isna().any():
        # the documented convention: a missing cohort means never treated (R did uses 0)
        data = df.assign(**{cohort: df[cohort].fillna(0)})
    roles = {
        "outcome": outcome,
        "unit": unit,
        "time": time,
        "cohort": cohort,
        "covariates": covs or None,
        "cluster": cluster,
        "weights": weights,
        **(extra_roles or {}),
    }
    numeric = [outcome, time, cohort, *covs] + ([weights] if weights else [])
    prepared = prepare(data, where=where, roles=roles, numeric=numeric, unique=[unit, time], missing=missing, unit=unit)
    frame = prepared.frame
    check_constant_within(frame, unit=unit, column=cohort, where=where)
    t = frame[time].to_numpy(dtype=float)
    g = frame[cohort].to_numpy(dtype=float)
    if (g < 0).any():
        bad = frame.index[g < 0]
        raise DataError(
            f"{where}: column {cohort!r} must hold the first treated period (0 or missing for never "
            f"treated) but is negative in rows {', '.join(map(str, bad[:5]))}."
        )
    periods = np.unique(t)
    if len(periods) < 2:
        raise DataError(f"{where}: the panel has a single period ({periods[0]}); at least two are needed.")
    late = g > periods[-1]
    if late.any():
        n_late = int(frame.loc[late, unit].nunique())
        warn(
            SampleWarning,
            f"{where}: {n_late} unit(s) have {cohort} after the last observed period {periods[-1]:g}; "
            "they are untreated throughout the sample and are used as never-treated controls.",
        )
        g = np.where(late, 0.0, g)
    w = None
    if weights:
        w = frame[weights].to_numpy(dtype=float)
        if (w <= 0).any():
            bad = frame.index[w <= 0]
            raise DataError(
                f"{where}: weights in {weights!r} must be positive; rows {', '.join(map(str, bad[:5]))} are not. "
                "Drop those rows or give them a positive weight."
            )
    unit_codes, uniques = pd.factorize(frame[unit].to_numpy(), sort=True)
    time_codes = np.searchsorted(periods, t)
    e = np.where(g > 0, t - g, np.nan)
    first = (g > 0) & (g <= periods[0])
    treated_first = tuple(pd.unique(frame.loc[first, unit]))
    n_treated_units = int(frame.loc[g > 0, unit].nunique())
    if n_treated_units == 0:
        raise DataError(
            f"{where}: no unit is ever treated within the sample ({cohort!r} is 0, missing or after the last "
            "period for every unit). Check the cohort column: it must hold the first treated period."
        )
    X = frame[covs].to_numpy(dtype=float) if covs else np.empty((len(frame), 0))
    clusters = frame[cluster].to_numpy() if cluster else frame[unit].to_numpy()
    return StaggeredPanel(
        prepared=prepared,
        y=frame[outcome].to_numpy(dtype=float),
        unit_codes=unit_codes.astype(np.int64),
        n_units=len(uniques),
        time_values=t,
        periods=periods,
        time_codes=time_codes.astype(np.int64),
        cohort=g,
        event_time=e,
        covariates=X,
        covariate_names=tuple(covs),
        weights=w,
        cluster_values=clusters,
        treated_first_period=treated_first,
    )


def group_time_layout(cohorts: np.ndarray, periods: np.ndarray, *, anticipation: int, base_period: str,
                      control_group: str):
    """The ATT(g, t) cells of Callaway & Sant'Anna (2021) as R ``did`` lays them out.

    Yields ``(k, g, ti, t, base, reference, comparison)`` for cohort ``k`` (value ``g``) and period index
    ``ti`` (value ``t``): the base period's index, whether the cell is the reference period of a
    universal base (reported as 0), and the comparison cohorts as a boolean over the K cohorts plus
    the never treated (last).
    """
    K, T = len(cohorts), len(periods)
    for k, g in enumerate(cohorts):
        base_post = int(np.flatnonzero(periods + anticipation < g)[-1])
        for ti in range(0 if base_period == "universal" else 1, T):
            t = periods[ti]
            # post-treatment cells (t >= g) compare with the last period before g - anticipation; with a
            # varying base, earlier cells (anticipation window included) compare t with t - 1 (as R did)
            base = base_post if (t >= g or base_period == "universal") else ti - 1
            reference = base_period == "universal" and ti == base
            comparison = np.zeros(K + 1, dtype=bool)
            comparison[K] = True
            if control_group == "notyet":
                threshold = periods[max(ti, base)] + anticipation
                comparison[:K] = (cohorts > threshold) & (cohorts != g)
            yield k, g, ti, t, base, reference, comparison


def integer_event_time(panel: StaggeredPanel, where: str) -> np.ndarray:
    """Event time as integers, raising if periods and cohorts are not on a common integer grid."""
    e = panel.event_time
    finite = np.isfinite(e)
    if not np.allclose(e[finite], np.round(e[finite])):
        raise DataError(
            f"{where}: time minus cohort must be a whole number of periods; code time and cohort as "
            "consecutive integers (e.g. years, or a period index)."
        )
    steps = np.diff(panel.periods)
    if len(steps) and not np.allclose(steps, 1):
        raise DataError(
            f"{where}: periods must be consecutive integers (found steps of {sorted(set(steps.tolist()))[:3]}); "
            "recode time as a period index 1, 2, ... and cohort on the same scale."
        )
    return np.where(finite, np.round(np.nan_to_num(e)), np.nan)


@dataclass(frozen=True)
class FERegression:
    """Coefficients of a regression with absorbed unit and time effects, and their covariance."""

    coef: np.ndarray
    vcov: np.ndarray
    df: np.ndarray
    description: str
    n_clusters: int | None
    resid: np.ndarray
    X: np.ndarray  # the design after absorption (reported columns first; for CR2/wild, period dummies follow)
    y: np.ndarray  # the outcome after absorption
    clusters: np.ndarray | None = None  # integer cluster codes (clustered kinds)
    absorbed: int = 0  # number of absorbed fixed-effect parameters (counted in K of the covariance)
    n_fe_parameters: int = 0  # identified unit and time effect parameters of the full model
    design_coef: np.ndarray | None = None  # every coefficient of X (reported ones, then explicit dummies)
    design_names: tuple[str, ...] = ()  # names of the columns of X


REGRESSION_VCOV = ("iid", "HC1", "cluster", "CR1", "CR1-fixest", "CR2")


_MAX_EXPLICIT_DUMMIES = 5_000


def _compact(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes renumbered 0..L-1 over the levels present (a subsample may leave gaps), order kept."""
    counts = np.bincount(codes)
    present = counts > 0
    if present.all():
        return codes, len(counts)
    return (np.cumsum(present) - 1)[codes], int(present.sum())


def _column_norms(X: np.ndarray, wroot: np.ndarray | None) -> np.ndarray:
    """Euclidean norm of each column of ``X`` (times ``wroot``), one column at a time (no n x k temporary)."""
    cols = X.T if wroot is None else (X * wroot[:, None]).T
    return np.sqrt(np.array([float(c @ c) for c in cols]))


def fe_regression(
    y: np.ndarray,
    X: np.ndarray,
    names: Sequence[str],
    *,
    unit_codes: np.ndarray,
    time_codes: np.ndarray,
    n_periods: int | None = None,
    weights: np.ndarray | None,
    cluster_values: np.ndarray | None = None,
    cluster_name: str,
    vcov: str,
    treated: np.ndarray,
    where: str,
    rank_hint: str = "",
    cluster_warnings: bool = True,
    clusters: tuple[np.ndarray, int] | None = None,
    fe_names: tuple[str, str] = ("unit", "period"),
    level_labels: tuple[Sequence, Sequence] | None = None,
    balanced: bool = False,
    ssc: Any = None,
    resample_codes: np.ndarray | None = None,
    grid: bool = False,
) -> FERegression:
    """OLS/WLS of ``y`` on ``X`` with unit and time effects absorbed; covariance of X's coefficients.

    The one fixed-effects regression behind every DiD design (``twfe``, ``event_study``,
    ``sun_abraham``, ``bacon``, the imputation pre-trend test). Effects are absorbed by alternating
    projections, except where the covariance needs them as columns: for CR2 and the wild bootstrap
    only effects nested within the clusters can be absorbed (CR2's adjustment matrices and the
    bootstrap's restricted residuals need the others in the design); for HC2/HC3 one set is absorbed
    (its leverage is known in closed form) and the other enters as dummies. For ``vcov="wild"`` the
    covariance returned is CR1; the caller runs the bootstrap on ``X``/``y``/``clusters``.

    ``clusters`` passes cluster codes the caller has already checked; ``balanced`` (a complete,
    duplicate-free unit x time grid) lets one unweighted sweep absorb both sets exactly; ``grid`` (rows
    in that grid's order, :func:`impact.inference.absorb.is_grid`) makes the sweep a reshape.
    ``ssc`` (a :class:`impact.inference.vcov.SmallSampleCorrection`) sets fixest's small-sample
    switches for ``vcov="CR1-fixest"``. ``resample_codes`` (``vcov="wild"`` only): the subclusters
    whose bootstrap weights are drawn; only effects nested within them are absorbed.
    """
    from scipy import linalg

    from impact.data import check_rank, cluster_codes
    from impact.errors import EstimationError, SpecError
    from impact.inference.absorb import absorb
    from impact.inference.vcov import linear_vcov

    n, k = X.shape
    clustered = vcov in ("CR0", "cluster", "CR1", "CR1-fixest", "CR2", "wild")
    cluster_n = None
    if clustered:
        if clusters is not None:
            codes, cluster_n = clusters
        elif cluster_warnings:
            codes, cluster_n = cluster_codes(cluster_values, where=where, treated=treated, name=cluster_name, vcov=vcov)
        else:  # an auxiliary regression on a sample whose clusters were already checked and reported
            raw, uniques = pd.factorize(np.asarray(cluster_values), sort=True)
            codes, cluster_n = raw.astype(np.int64), len(uniques)
    else:
        codes = None
    units, n_units = _compact(np.asarray(unit_codes, dtype=np.int64))
    times, n_times = _compact(np.asarray(time_codes, dtype=np.int64))
    full = FixedEffects((units, times), (n_units, n_times), fe_names, balanced=balanced, grid=grid)
    n_fe_parameters = full.n_parameters
    nested_flags = full.nested_in(codes) if clustered else [False, False]
    if vcov == "wild" and resample_codes is not None:
        absorbed_sets = [i for i in (0, 1) if full.nested_in(resample_codes)[i]]
    elif vcov in ("CR2", "wild", "HC2", "HC3"):
        absorbed_sets = [i for i in (0, 1) if nested_flags[i]] if clustered else [0]
    else:
        absorbed_sets = [0, 1]
    columns, design_names = [X], list(names)
    for i in (0, 1):
        if i in absorbed_sets:
            continue
        size = full.sizes[i]
        if size - 1 > _MAX_EXPLICIT_DUMMIES:
            raise SpecError(
                f"{where}: vcov={vcov!r} needs the {fe_names[i]!r} effects as explicit columns ({size} levels, "
                f"{'not nested within ' + repr(cluster_name) if clustered else 'for the leverage'}), too many; "
                f"use vcov='cluster' or cluster on a level that contains each {fe_names[i]}."
            )
        level_codes = full.codes[i]
        block = np.zeros((n, size - 1))
        rows = np.flatnonzero(level_codes > 0)
        block[rows, level_codes[rows] - 1] = 1.0
        columns.append(block)
        labels = level_labels[i] if level_labels is not None else range(size)
        design_names += [f"{fe_names[i]}={labels[j]}" for j in range(1, size)]
    if not absorbed_sets:
        columns.append(np.ones((n, 1)))
        design_names.append("(Intercept)")
    design = np.column_stack(columns) if len(columns) > 1 else X
    fe = FixedEffects(tuple(full.codes[i] for i in absorbed_sets), tuple(full.sizes[i] for i in absorbed_sets),
                      tuple(fe_names[i] for i in absorbed_sets), balanced=balanced and len(absorbed_sets) == 2,
                      grid=grid and absorbed_sets == [0, 1])
    absorbed = n_fe_parameters if absorbed_sets == [0, 1] else (fe.n_parameters if fe.codes else 0)
    nested = sum(s for s, flag, i in zip(full.sizes, nested_flags, (0, 1)) if flag and i in absorbed_sets)
    nested_sets = sum(1 for flag, i in zip(nested_flags, (0, 1)) if flag and i in absorbed_sets)
    if ssc is not None and vcov != "CR1-fixest":
        raise SpecError(f"{where}: ssc= sets fixest's small-sample switches and applies to vcov='CR1-fixest' only; got vcov={vcov!r}.")

    # y and the design in one column-contiguous array, demeaned in place (no further n x p copies)
    stacked = np.empty((n, 1 + design.shape[1]), order="F")
    stacked[:, 0] = y
    stacked[:, 1:] = design
    # a column the fixed effects absorb (e.g. constant within units) keeps only rounding noise; the
    # Cholesky test below compares it with itself and can pass, giving an arbitrary coefficient
    wroot = None if weights is None else np.sqrt(weights)
    before = _column_norms(stacked[:, 1:1 + k], wroot)
    absorbed_all = absorb(stacked, fe, weights=weights, overwrite=True)
    yt, Xt = absorbed_all[:, 0], absorbed_all[:, 1:]
    Xw = Xt if wroot is None else Xt * wroot[:, None]
    after = _column_norms(Xw[:, :k], None)
    gone = after <= 1e-9 * np.maximum(before, 1e-300)
    if gone.any() and fe.names:
        cols = [names[j] for j in np.flatnonzero(gone)]
        raise EstimationError(
            f"{where}: column(s) {cols} have no variation left after absorbing {' and '.join(fe.names)} fixed "
            "effects (they are constant within units or within periods), so their coefficients are not "
            f"identified. Remove them from covariates. {rank_hint}".strip()
        )
    xtx = Xw.T @ Xw
    # fast path: a Cholesky factor whose pivots keep a healthy share of each column's variation means
    # full rank; otherwise the pivoted QR of check_rank names the collinear columns
    try:
        factor = linalg.cho_factor(xtx, lower=False, check_finite=False)
        pivots = np.diag(factor[0]) ** 2 / np.maximum(np.diag(xtx), 1e-300)
        healthy = bool(np.all(pivots > 1e-9))
    except linalg.LinAlgError:
        healthy = False
    if not healthy:
        context = f" after absorbing {' and '.join(fe.names)} fixed effects" if fe.names else ""
        try:
            check_rank(Xw[:, :k], list(names), where, context=context)
            check_rank(Xw, design_names, where, context=context)
        except EstimationError as exc:
            raise EstimationError(f"{exc} {rank_hint}".strip()) from None
        factor = linalg.cho_factor(xtx, lower=False, check_finite=False)
    coef = linalg.cho_solve(factor, Xw.T @ (yt if wroot is None else yt * wroot), check_finite=False)
    resid = Xt @ -coef  # one new n-array instead of two
    resid += yt
    cov = linear_vcov(
        Xt,
        resid,
        kind="cluster" if vcov == "wild" else vcov,
        weights=weights,
        clusters=codes,
        n_clusters=cluster_n,
        absorbed=absorbed,
        absorbed_nested=nested,
        nested_sets=nested_sets,
        small_sample=ssc,
        leverage_absorbed=fe.leverage(weights) if vcov in ("HC2", "HC3") else None,
        df_for=k if vcov == "CR2" else None,
        where=where,
    )
    return FERegression(
        coef=coef[:k],
        vcov=cov.matrix[:k, :k],
        df=cov.df[:k],
        description=cov.description,
        n_clusters=cluster_n,
        resid=resid,
        X=Xt,
        y=yt,
        clusters=codes,
        absorbed=absorbed,
        n_fe_parameters=n_fe_parameters,
        design_coef=coef,
        design_names=tuple(design_names),
    )


def group_time_table(terms, estimates, se, *, level: float, extra: dict, reference: np.ndarray,
                     randomization: Any = None, ri: Any = None, omega: Any = None) -> pd.DataFrame:
    """The effects table of ``att_gt`` (overall ATT, then one row per group-time cell).

    With randomisation inference (``randomization`` the context, ``ri`` its result for the rows
    ``omega``) the p-values, intervals and the notes on unbounded intervals are the randomisation ones,
    blank on the reference rows (``reference`` flags the cells, i.e. rows 1:)."""
    if randomization is None:
        return effects_table(terms, estimates, se, level=level, **extra)
    p_ri, low_ri, high_ri = ri.p_value.copy(), ri.conf_low.copy(), ri.conf_high.copy()
    for arr in (p_ri, low_ri, high_ri):
        arr[1:][reference] = np.nan
    table = effects_table(terms, estimates, se, level=level, p_values=p_ri, conf_low=low_ri, conf_high=high_ri, **extra)
    notes = randomization.row_notes(ri, omega)
    notes[1:][reference] = None
    if any(n is not None for n in notes):  # why an interval is unbounded, appended by tidy()
        table["inference"] = notes
    return table
