"""Non-compliance: intention-to-treat, first stage, complier share and the LATE (CACE) by 2SLS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from impact.data import check_level  # shared option validation
from impact.data import as_list, check_binary, check_option, check_rank, cluster_codes, prepare
from impact.errors import EstimationError, FragileInferenceWarning, SpecError, recording_warnings, warn
from impact.inference.vcov import linear_vcov
from impact.results import effects_table
from impact.rct._common import RCTResult, check_arms, consort_flow, ols

__all__ = ["late"]

WEAK_F = 10.0


def late(
    df: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    assignment: str,
    covariates: Sequence[str] | None = None,
    blocks: str | None = None,
    clusters: str | None = None,
    se_type: Literal["HC1", "stata"] = "HC1",
    level: float = 0.95,
    observed: str | None = None,
) -> RCTResult:
    """Local average treatment effect of take-up, instrumented by random assignment.

    Parameters
    ----------
    outcome : str
        Outcome column.
    treatment : str
        Treatment actually received (take-up), 0/1.
    assignment : str
        Random assignment (offer), 0/1: the instrument.
    covariates : list of str, optional
        Baseline covariates, included in both stages (and in the ITT and first-stage regressions).
    blocks : str, optional
        Randomisation blocks: block fixed effects (dummies) join the covariates.
    clusters : str, optional
        Cluster column for cluster-robust (Stata CR1) standard errors, t with G - 1 df.
    se_type : {"HC1", "stata"}
        Heteroskedasticity-robust with the n/(n-k) correction (linearmodels ``robust`` with
        ``debiased=True``); with clusters both mean Stata's CR1.
    observed : str, optional
        Follow-up response indicator (0/1), for the CONSORT flow.

    Returns
    -------
    RCTResult
        Effects ``ITT`` (reduced form), ``first stage`` (= complier share under monotonicity) and
        ``LATE`` (headline), each with its own standard error. ``diagnostics`` holds the complier
        share, compliance by arm, first-stage F (robust or clustered), its weak-instrument flag and
        the CONSORT flow (assigned, received, lost, analysed per arm).

    Notes
    -----
    With assignment :math:`Z`, take-up :math:`D` and outcome :math:`Y`, under independence,
    exclusion, relevance and monotonicity (no defiers),
    :math:`\\tau_{LATE} = E[Y_i(1) - Y_i(0) \\mid \\text{complier}] = \\frac{E[Y|Z=1]-E[Y|Z=0]}{E[D|Z=1]-E[D|Z=0]}`,
    estimated by two-stage least squares (linearmodels ``IV2SLS``). The complier share is the first
    stage :math:`\\pi = E[D|Z=1] - E[D|Z=0]`; the first-stage F is :math:`(\\hat\\pi/\\widehat{se})^2`
    with the robust (clustered) standard error; values below 10 flag a weak instrument (Staiger &
    Stock 1997), in which case the Anderson-Rubin test (the ITT test) remains valid.

    References
    ----------
    Imbens, G. W. and Angrist, J. D. (1994). Identification and estimation of local average
    treatment effects. *Econometrica* 62(2), 467-475. doi:10.2307/2951620.
    Angrist, J. D., Imbens, G. W. and Rubin, D. B. (1996). Identification of causal effects using
    instrumental variables. *JASA* 91(434), 444-455. doi:10.1080/01621459.1996.10476902.
    Staiger, D. and Stock, J. H. (1997). Instrumental variables regression with weak instruments.
    *Econometrica* 65(3), 557-586. doi:10.2307/2171753.

    Examples
    --------
    >>> import impact as im
    >>> firms = im.datasets.load("sweden_firms")
    >>> fit = im.rct.late(firms, outcome="turnover_growth", treatment="takeup", assignment="assigned")
    """
    from linearmodels.iv import IV2SLS

    where = "late"
    level = check_level(level, where)
    clash = sorted({str(c) for c in as_list(covariates)} & {str(outcome), str(treatment), str(assignment)})
    if clash:
        raise SpecError(f"{where}: covariates {clash} are also the outcome, treatment or assignment; remove them from covariates.")
    check_option("se_type", se_type, ("HC1", "stata"))
    covs = as_list(covariates)
    with recording_warnings() as log:
        prepared = prepare(df, where=where, roles={"outcome": outcome, "treatment": treatment, "assignment": assignment,
                                                   "covariates": covs, "clusters": clusters, "blocks": blocks},
                           numeric=[outcome, treatment, assignment, *covs])
        frame = prepared.frame
        z = check_binary(frame, assignment, where).astype(float)
        d = check_binary(frame, treatment, where).astype(float)
        check_arms(z, where)
        y = frame[outcome].to_numpy(dtype=float)
        n = len(y)
        if blocks:
            dummies = pd.get_dummies(frame[blocks], prefix=str(blocks), drop_first=True, dtype=float)
            frame = pd.concat([frame, dummies], axis=1)
            covs = covs + list(dummies.columns)
        W = np.column_stack([np.ones(n), frame[covs].to_numpy(dtype=float)]) if covs else np.ones((n, 1))
        check_rank(np.column_stack([z, W]), [assignment, "(Intercept)", *covs], where)
        codes, G = (None, None)
        if clusters:
            codes, G = cluster_codes(frame[clusters], where=where, treated=z, name=clusters)
        kind = "cluster" if clusters else "HC1"

        def reduced(target: np.ndarray) -> tuple[float, float, float]:
            X = np.column_stack([z, W])
            beta, resid = ols(X, target)
            cov = linear_vcov(X, resid, kind=kind, clusters=codes, n_clusters=G, where=where)
            return float(beta[0]), float(cov.std_errors[0]), float(cov.df[0])

        itt, itt_se, itt_df = reduced(y)
        fs, fs_se, fs_df = reduced(d)
        if abs(fs) < 1e-12:
            raise EstimationError(f"{where}: take-up does not differ between arms ({treatment!r} has the same mean "
                                  f"whatever {assignment!r}), so the LATE is not identified.")
        intercept = "const"
        while intercept in {*covs, outcome, treatment, assignment}:  # a user's column may be called "const"
            intercept = f"_{intercept}"
        exog = pd.DataFrame(W, columns=[intercept, *covs], index=frame.index)
        model = IV2SLS(pd.Series(y, index=frame.index, name=outcome), exog,
                       pd.Series(d, index=frame.index, name=treatment), pd.Series(z, index=frame.index, name=assignment))
        if clusters:
            fit = model.fit(cov_type="clustered", clusters=pd.Series(codes, index=frame.index), debiased=True)
            dof = float(G - 1)
        else:
            fit = model.fit(cov_type="robust", debiased=True)
            dof = float(n - W.shape[1] - 1)
        est = float(fit.params[treatment])
        se = float(fit.std_errors[treatment])
        first_f = (fs / fs_se) ** 2
        if first_f < WEAK_F:
            warn(FragileInferenceWarning, f"{where}: first-stage F = {first_f:.1f} is below {WEAK_F:g}: the instrument "
                 "is weak and the 2SLS interval unreliable; rely on the ITT (its test is the Anderson-Rubin test).")
        table = effects_table(["ITT", "first stage", "LATE"], [itt, fs, est], [itt_se, fs_se, se],
                              df=[itt_df, fs_df, dof], level=level)
        take_up = {
            "assigned": float(d[z == 1].mean()),
            "not_assigned": float(d[z == 0].mean()),
        }
        diagnostics = {
            "complier_share": fs,
            "take_up_by_arm": take_up,
            "always_taker_share": take_up["not_assigned"],
            "never_taker_share": 1 - take_up["assigned"],
            "first_stage_F": first_f,
            "first_stage_F_kind": "cluster-robust (CR1)" if clusters else "heteroskedasticity-robust (HC1)",
            "first_stage_p_value": float(2 * stats.t.sf(abs(fs / fs_se), fs_df)),
            "weak_instrument": bool(first_f < WEAK_F),
            "control_mean": float(y[z == 0].mean()),
            "consort": consort_flow(df, assignment=assignment, received=treatment, observed=observed, outcome=outcome,
                                    analysed=frame.index),
        }
    return RCTResult(
        design="late", estimand="LATE / CACE (complier average causal effect)", effects=table, headline="LATE",
        inference=(f"2SLS (linearmodels IV2SLS), {'cluster-robust CR1, t with G - 1 df' if clusters else 'HC1 robust, t with n - k df'}"),
        n_obs=n, outcome=outcome, level=level, n_treated=int(d.sum()), n_clusters=G,
        settings={"treatment": treatment, "assignment": assignment, "covariates": as_list(covariates),
                  "blocks": blocks, "clusters": clusters,
                  "se_type": se_type,
                  "assumption": "Assignment is random and affects the outcome only through take-up; no one takes up because they were NOT offered (monotonicity)."},
        warnings=tuple(log), sample_flow=prepared.flow, diagnostics=diagnostics,
    )
