"""Two-way fixed effects difference-in-differences (2x2 DiD as its simplest case)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from impact.data import (
    MissingPolicy,
    as_list,
    check_binary,
    check_option,
    check_treated_and_control,
    cluster_codes,
    prepare,
    show,
)
from impact.errors import DataError, SpecError, recording_warnings
from impact.did._staggered import fe_regression
from impact.inference.vcov import CLUSTER_KINDS, VCOV_KINDS
from impact.inference.wild import WEIGHT_TYPES, wild_cluster_bootstrap
from impact.results import Result, effects_table

__all__ = ["twfe"]



def _check_unique_codes(frame: pd.DataFrame, unit_codes: np.ndarray, time_codes: np.ndarray, n_time: int,
                        unit: str, time: str, where: str) -> None:
    key = unit_codes.astype(np.int64) * n_time + time_codes
    counts = np.bincount(key)
    if counts.max() > 1:
        dup_rows = np.flatnonzero(counts[key] > 1)
        keys = frame.iloc[dup_rows][[unit, time]].drop_duplicates().head(5)
        listed = "; ".join(f"{unit}={show(u)}, {time}={show(t)}" for u, t in keys.itertuples(index=False))
        raise DataError(
            f"{where}: {len(dup_rows)} rows share the same {unit} x {time} (first: {listed}). Each unit "
            "must appear once per period: aggregate duplicates, or pass panel=False for repeated "
            "cross-sections where `unit` is a group."
        )


def _check_absorbing_codes(frame: pd.DataFrame, d: np.ndarray, unit_codes: np.ndarray, time_rank: np.ndarray,
                           n_units: int, unit: str, time: str, where: str) -> None:
    """Absorbing treatment: no untreated row after a unit's first treated period (O(n))."""
    first = np.full(n_units, np.iinfo(np.int64).max)
    treated = d == 1
    np.minimum.at(first, unit_codes[treated], time_rank[treated])
    off = (~treated) & (time_rank > first[unit_codes])
    if off.any():
        rows = frame.iloc[np.flatnonzero(off)]
        units = pd.unique(rows[unit])
        listed = ", ".join(f"{unit}={show(u)} (untreated at {time}={show(rows.loc[rows[unit] == u, time].iloc[0])})" for u in units[:5])
        raise DataError(
            f"{where}: treatment must be absorbing (once 1, it stays 1) but it switches off in {len(units)} "
            f"unit(s): {listed}. Code treatment as 'programme has started', or pass absorbing=False if "
            "treatment genuinely switches on and off (TWFE then assumes homogeneous, immediate effects)."
        )


def twfe(
    df: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    unit: str,
    time: str,
    covariates: str | Sequence[str] | None = None,
    cluster: str | None = None,
    weights: str | None = None,
    vcov: str = "cluster",
    panel: bool = True,
    absorbing: bool = True,
    level: float = 0.95,
    missing: MissingPolicy = "drop",
    n_bootstrap: int = 9_999,
    bootstrap_weights: str = "webb",
    seed: int | None = None,
) -> Result:
    """Two-way fixed effects difference-in-differences.

    Regresses the outcome on the treatment indicator (and covariates) with unit and time fixed
    effects, absorbed by alternating projections rather than dummy matrices.

    Parameters
    ----------
    df : DataFrame
        Long format, one row per unit and period (``panel=True``) or per observation of a repeated
        cross-section (``panel=False``, where ``unit`` names the group, e.g. treated area).
    outcome, treatment, unit, time : str
        Column names. ``treatment`` is 0/1: 1 in the periods a unit is exposed.
    covariates : str or list of str, optional
        Time-varying controls.
    cluster : str, optional
        Cluster variable for cluster-robust inference; defaults to ``unit``.
    weights : str, optional
        Analytic (inverse-variance or population) weights, strictly positive.
    vcov : {"cluster", "CR1", "CR1-fixest", "CR2", "CR0", "wild", "iid", "HC0", "HC1", "HC2", "HC3"}
        ``cluster``/``CR1`` use Stata's small-sample factor (all absorbed effects counted in K);
        ``CR1-fixest`` excludes effects nested in clusters from K (fixest's default); ``CR2`` is
        Bell-McCaffrey with Satterthwaite degrees of freedom; ``wild`` is the restricted wild cluster
        bootstrap (p-value and test-inversion interval; the reported standard error is CR1).
    panel : bool
        True for panels (unit x time must be unique), False for repeated cross-sections.
    absorbing : bool
        Require treatment to stay on once started (staggered adoption). Default True.
    level : float
        Confidence level.
    missing : {"drop", "error"}
        Policy for rows with missing values in the columns used (dropped rows are counted, warned
        about and recorded in the sample flow).
    n_bootstrap, bootstrap_weights, seed
        Wild bootstrap draws, weight distribution ("webb" or "rademacher") and seed.

    Returns
    -------
    Result
        ``term="ATT"`` is the treatment coefficient (headline); covariates follow by name.

    Notes
    -----
    The model is :math:`Y_{it} = \\alpha_i + \\lambda_t + \\tau D_{it} + X_{it}'\\beta + \\varepsilon_{it}`.
    Under parallel trends and homogeneous, immediate effects, :math:`\\tau` is the ATT; with staggered
    adoption and effects that vary over time it is a weighted average of 2x2 comparisons that may
    include negative weights (Goodman-Bacon 2021), so use ``impact.did.att_gt`` there and
    ``impact.did.bacon`` to see the weights.

    References
    ----------
    Angrist, J. D., & Pischke, J.-S. (2009). *Mostly Harmless Econometrics*. Princeton University Press.
    Goodman-Bacon, A. (2021). Difference-in-differences with variation in treatment timing.
    *Journal of Econometrics*, 225(2), 254-277. https://doi.org/10.1016/j.jeconom.2021.03.014
    Bell, R. M., & McCaffrey, D. F. (2002). Bias reduction in standard errors for linear regression
    with multi-stage samples. *Survey Methodology*, 28(2), 169-181.

    Examples
    --------
    >>> import impact as im
    >>> organ = im.datasets.load("organ_donations")
    >>> organ["treated"] = ((organ.State == "California") & (organ.Quarter_Num >= 4)).astype(int)
    >>> res = im.did.twfe(organ, outcome="Rate", treatment="treated", unit="State", time="Quarter_Num")
    >>> round(res.estimate, 4)
    -0.0225
    """
    where = "twfe"
    check_option("vcov", vcov, VCOV_KINDS)
    check_option("bootstrap_weights", bootstrap_weights, WEIGHT_TYPES)
    if not 0 < level < 1:
        raise SpecError(f"{where}: level must be between 0 and 1, got {level}.")
    covs = as_list(covariates)
    clustered = vcov in CLUSTER_KINDS
    cluster_col = (cluster or unit) if clustered else None
    if cluster is not None and not clustered:
        raise SpecError(f"{where}: cluster={cluster!r} was given but vcov={vcov!r} ignores clusters; use vcov='cluster', 'CR2' or 'wild'.")

    with recording_warnings() as log:
        prepared = prepare(
            df,
            where=where,
            roles={"outcome": outcome, "treatment": treatment, "unit": unit, "time": time,
                   "covariates": covs, "weights": weights, "cluster": cluster_col},
            numeric=[outcome, treatment, *covs] + ([weights] if weights else []),
            missing=missing,
            unit=unit,
        )
        frame = prepared.frame
        d = check_binary(frame, treatment, where)
        check_treated_and_control(d, where)
        unit_codes, unit_levels = pd.factorize(frame[unit].to_numpy(), sort=False)
        time_codes, time_levels = pd.factorize(frame[time].to_numpy(), sort=True)
        n_units, n_time = len(unit_levels), len(time_levels)
        if panel:
            _check_unique_codes(frame, unit_codes, time_codes, n_time, unit, time, where)
            if absorbing:
                _check_absorbing_codes(frame, d, unit_codes, time_codes, n_units, unit, time, where)
        w = None
        if weights:
            w = frame[weights].to_numpy(dtype=float)
            if (w <= 0).any():
                bad = frame.index[w <= 0]
                raise DataError(f"{where}: weights in {weights!r} must be positive; rows {list(bad[:5])} are not.")

        balanced = panel and len(frame) == n_units * n_time  # unit x time is unique here
        clusters, n_clusters = (None, None)
        if clustered:
            treated_cluster = d if cluster_col else None
            clusters, n_clusters = cluster_codes(frame[cluster_col], where=where, treated=treated_cluster, name=cluster_col, vcov=vcov,
                                                 codes=unit_codes.astype(np.int64) if cluster_col == unit else None)

        X = np.column_stack([d.astype(float)] + [frame[c].to_numpy(dtype=float) for c in covs])
        names = ["ATT", *covs]
        k_report = X.shape[1]
        fit = fe_regression(
            frame[outcome].to_numpy(dtype=float), X, names,
            unit_codes=unit_codes.astype(np.int64), time_codes=time_codes.astype(np.int64), weights=w,
            cluster_name=cluster_col or unit, vcov=vcov, treated=d, where=where,
            clusters=(clusters, n_clusters) if clustered else None, fe_names=(unit, time),
            level_labels=(unit_levels, time_levels), balanced=balanced,
        )
        wild_result = None
        if vcov == "wild":
            wild_result = wild_cluster_bootstrap(
                fit.X, fit.y, clusters, coef=0, weights=w, n_clusters=n_clusters, weight_type=bootstrap_weights,
                n_bootstrap=n_bootstrap, seed=seed, level=level, absorbed=fit.absorbed,
            )

    beta = fit.coef
    n_obs = len(fit.y)
    n_fe_parameters = fit.n_fe_parameters
    se = np.sqrt(np.clip(np.diag(fit.vcov), 0, None))
    dof = fit.df
    p_values = conf_low = conf_high = None
    inference = fit.description
    if wild_result is not None:
        p_values = np.r_[wild_result.p_value, np.full(k_report - 1, np.nan)]
        conf_low = np.r_[wild_result.conf_low, np.full(k_report - 1, np.nan)]
        conf_high = np.r_[wild_result.conf_high, np.full(k_report - 1, np.nan)]
        inference = (
            f"wild cluster bootstrap (restricted, {wild_result.weight_type} weights, "
            f"{wild_result.n_bootstrap:,} {'enumerated ' if wild_result.enumerated else ''}draws, "
            f"{n_clusters} clusters) for ATT; standard errors CR1"
        )
    effects = effects_table(names[:k_report], beta[:k_report], se, df=dof, level=level,
                            p_values=p_values, conf_low=conf_low, conf_high=conf_high)
    if wild_result is not None:
        # covariate rows keep their CR1 Wald inference
        wald = effects_table(names[:k_report], beta[:k_report], se, df=dof, level=level)
        for col in ("p_value", "conf_low", "conf_high"):
            effects.loc[1:, col] = wald.loc[1:, col]
    treated_units = int(np.count_nonzero(np.bincount(unit_codes[d == 1], minlength=n_units)))
    settings = {
        "outcome": outcome, "treatment": treatment, "unit": unit, "time": time, "covariates": covs,
        "cluster": cluster_col, "weights": weights, "vcov": vcov, "panel": panel, "absorbing": absorbing,
        "level": level, "missing": missing,
        "assumption": "Parallel trends: without the programme, treated and comparison units would have "
                      "followed the same trend; effects are assumed homogeneous across units and time.",
    }
    if vcov == "wild":
        settings.update({"n_bootstrap": n_bootstrap, "bootstrap_weights": bootstrap_weights, "seed": seed})
    diagnostics = {
        "fixed_effects": {"unit levels": n_units, "time levels": n_time,
                          "absorbed parameters": int(n_fe_parameters)},
        "treated_observations": int(d.sum()),
    }
    return Result(
        design="twfe",
        estimand="ATT",
        outcome=outcome,
        effects=effects,
        headline="ATT",
        inference=inference,
        level=level,
        n_obs=n_obs,
        n_units=n_units,
        n_treated=treated_units,
        n_clusters=n_clusters,
        settings=settings,
        warnings=tuple(log),
        sample_flow=prepared.flow,
        diagnostics=diagnostics,
        vcov=fit.vcov,
    )
