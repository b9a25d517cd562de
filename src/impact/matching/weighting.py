"""Weighting estimators: inverse probability weighting, augmented IPW (doubly robust) and
entropy balancing, with standard errors that account for the estimated weights."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from impact.data import check_integer, check_level, check_number  # shared option validation
from impact.data import as_list, check_option
from impact.errors import ConvergenceWarning, EstimationError, OverlapWarning, SampleWarning, SpecError, recording_warnings, warn
from impact.matching._design import CovariateDesign, prepare_design
from impact.matching._mestimation import sandwich
from impact.matching._results import BalanceResult
from impact.matching.balance import balance_table
from impact.matching.propensity import ScoreModel, crump_threshold, fit_score
from impact.results import FlowStep, effects_table

__all__ = ["ipw", "aipw", "entropy_balance"]

ESTIMANDS = ("ATE", "ATT")
TRIMS = (None, "crump")
ASSUMPTION = ("no unmeasured confounding given the covariates (selection on observables) and overlap "
              "(every unit could have been treated or not)")


def _score_psi_logit(X1: np.ndarray, d: np.ndarray, beta) -> np.ndarray:
    p = 1.0 / (1.0 + np.exp(-(X1 @ beta)))
    return (d - p)[:, None] * X1


def _prob(X1: np.ndarray, beta, link: str):
    eta = X1 @ beta
    if link == "logit":
        return 1.0 / (1.0 + np.exp(-eta))
    return special.ndtr(eta)


def _dprob(X1: np.ndarray, beta: np.ndarray, link: str) -> tuple[np.ndarray, np.ndarray]:
    """Probability and its derivative with respect to the linear index."""
    eta = X1 @ beta
    if link == "logit":
        p = special.expit(eta)
        return p, p * (1 - p)
    return special.ndtr(eta), np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi)


def _score_hessian(X1: np.ndarray, d: np.ndarray, beta: np.ndarray, link: str) -> np.ndarray:
    """Mean derivative of the score moments (the mean Hessian of the log likelihood)."""
    eta = X1 @ beta
    if link == "logit":
        p = special.expit(eta)
        h = -p * (1 - p)
    else:
        log_dens = -0.5 * eta**2 - 0.5 * np.log(2 * np.pi)
        lam1 = np.exp(log_dens - special.log_ndtr(eta))  # inverse Mills ratios
        lam0 = np.exp(log_dens - special.log_ndtr(-eta))
        h = np.where(d == 1, -lam1 * (lam1 + eta), -lam0 * (lam0 - eta))
    return (X1 * h[:, None]).T @ X1 / len(d)


def _score_moments(X1, d, beta, link):
    if link == "logit":
        return _score_psi_logit(X1, d, beta)
    eta = X1 @ beta
    p = special.ndtr(eta)
    dens = np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi)
    return ((d - p) * dens / (p * (1 - p)))[:, None] * X1


def _fit_with_trim(
    design: CovariateDesign, link: str, trim: str | None, where: str
) -> tuple[np.ndarray, ScoreModel, list[FlowStep], dict[str, Any]]:
    """Fit the score; with trim='crump' drop units outside [alpha, 1 - alpha] and refit."""
    d = design.treated
    model = fit_score(design.model, d, design.model_names, link=link, where=where)
    keep = np.ones(len(d), dtype=bool)
    flow: list[FlowStep] = []
    info: dict[str, Any] = {}
    if trim == "crump":
        alpha = crump_threshold(model.score)
        keep = (model.score >= alpha) & (model.score <= 1 - alpha)
        n_t, n_c = int((~keep & (d == 1)).sum()), int((~keep & (d == 0)).sum())
        flow.append(FlowStep("overlap trimming", int(keep.sum()), None,
                             f"Crump et al. (2009) rule: kept propensity scores in [{alpha:.4f}, {1 - alpha:.4f}]; "
                             f"trimmed {n_t} treated and {n_c} comparison unit(s)"))
        info = {"crump_alpha": alpha, "trimmed_treated": n_t, "trimmed_control": n_c}
        if n_t + n_c:
            warn(SampleWarning, f"{where}: Crump trimming dropped {n_t} treated and {n_c} comparison unit(s) with scores outside [{alpha:.3f}, {1 - alpha:.3f}]; the estimand is the effect on the overlap population.")
            if d[keep].min() == d[keep].max():
                raise EstimationError(f"{where}: after trimming, one group is empty.")
            model = fit_score(design.model[keep], d[keep], design.model_names, link=link, where=where)
    return keep, model, flow, info


def _overlap_warn(p: np.ndarray, d: np.ndarray, where: str) -> dict[str, Any]:
    low = int((p < 0.01).sum())
    high = int((p > 0.99).sum())
    info = {"min_score_treated": float(p[d == 1].min()), "max_score_control": float(p[d == 0].max()),
            "n_score_below_0.01": low, "n_score_above_0.99": high}
    t, c = p[d == 1], p[d == 0]
    if t.min() > c.max() or c.min() > t.max():
        raise EstimationError(f"{where}: no overlap: treated scores [{t.min():.3g}, {t.max():.3g}] and comparison scores [{c.min():.3g}, {c.max():.3g}] do not intersect.")
    if low or high:
        warn(OverlapWarning, f"{where}: {low} unit(s) have propensity scores below 0.01 and {high} above 0.99; their inverse-probability weights are extreme. Consider trim='crump'.")
    return info


def _prepare(df, where, outcome, treatment, covariates, estimand, trim, link):
    check_option("estimand", estimand, ESTIMANDS)
    check_option("trim", trim, TRIMS)
    check_option("link", link, ("logit", "probit"))
    if outcome in as_list(covariates) or outcome == treatment:
        raise SpecError(f"{where}: the outcome {outcome!r} cannot also be the treatment or a covariate.")
    design = prepare_design(df, where=where, treatment=treatment, covariates=covariates,
                            extra={"outcome": outcome}, numeric_extra=[outcome], check_collinear=False)
    return design


def _result(
    *, design_name, estimand, terms, est, cov, design, keep, weights, score, outcome, flow, diagnostics,
    settings, log, level, inference,
) -> BalanceResult:
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    effects = effects_table(terms, est, se, level=level)
    d = design.treated[keep]
    bal = balance_table(design.balance[keep], list(design.balance_names), d, weights, estimand=estimand)
    diagnostics = {**diagnostics, "max_abs_smd_before": float(np.nanmax(np.abs(bal["smd_before"]))),
                   "max_abs_smd_after": float(np.nanmax(np.abs(bal["smd_after"]))),
                   "effective_sample_size_control": float(weights[d == 0].sum() ** 2 / (weights[d == 0] ** 2).sum()),
                   "balance": bal}
    scores = None if score is None else pd.DataFrame({"score": score, "treated": d.astype(int)})
    return BalanceResult(
        design=design_name, estimand=estimand, effects=effects, headline=estimand, inference=inference,
        n_obs=int(keep.sum()), outcome=outcome, level=level, n_units=int(keep.sum()), n_treated=int(d.sum()),
        settings={**settings, "assumption": ASSUMPTION}, warnings=tuple(log),
        sample_flow=tuple(design.prepared.flow) + tuple(flow), diagnostics=diagnostics, vcov=cov,
        scores=scores,
    )


def ipw(
    df: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    covariates: str | list[str],
    estimand: Literal["ATE", "ATT"] = "ATE",
    link: Literal["logit", "probit"] = "logit",
    trim: Literal["crump"] | None = None,
    level: float = 0.95,
) -> BalanceResult:
    """Inverse probability weighting with normalised (Hajek) weights.

    Parameters
    ----------
    df : DataFrame
        One row per unit; never modified.
    outcome, treatment : str
        Outcome column and 0/1 treatment column.
    covariates : list of str
        Covariates of the propensity-score model (categorical columns dummy coded).
    estimand : {"ATE", "ATT"}
    link : {"logit", "probit"}
        Link of the propensity-score model.
    trim : {None, "crump"}
        ``"crump"``: drop units with scores outside [alpha, 1 - alpha] (Crump et al. 2009) and
        re-estimate the score on the rest; counts are recorded in the sample flow.

    Returns
    -------
    BalanceResult
        Rows ``ATE``/``ATT`` (headline), ``POM0`` and ``POM1`` (potential-outcome means of the target
        population), the weighted balance table and the scores.

    Notes
    -----
    ATE: weights w = D/e(X) + (1-D)/(1-e(X)); ATT: w = D + (1-D) e(X)/(1-e(X)). The effect is the
    difference of weighted means (weights normalised within each group). Standard errors stack the
    weighted-mean estimating equations with the score equations of the propensity model and use the
    HC0 sandwich, as Stata ``teffects ipw`` and statsmodels ``TreatmentEffect.ipw``; they account
    for estimating the score.

    References
    ----------
    Hirano, K., Imbens, G. W. and Ridder, G. (2003). Efficient estimation of average treatment
    effects using the estimated propensity score. Econometrica 71(4), 1161-1189.
    doi:10.1111/1468-0262.00442
    Crump, R. K., Hotz, V. J., Imbens, G. W. and Mitnik, O. A. (2009). Dealing with limited overlap
    in estimation of average treatment effects. Biometrika 96(1), 187-199. doi:10.1093/biomet/asn055

    Examples
    --------
    >>> import impact as im
    >>> lalonde = im.datasets.load("lalonde")
    >>> res = im.matching.ipw(lalonde, outcome="re78", treatment="treat", estimand="ATT",
    ...                       covariates=["age", "educ", "race", "married", "nodegree", "re74", "re75"])
    >>> round(res.estimate)  # doctest: +SKIP
    1214
    """
    where = "ipw"
    level = check_level(level, where)
    with recording_warnings() as log:
        design = _prepare(df, where, outcome, treatment, covariates, estimand, trim, link)
        keep, model, flow, trim_info = _fit_with_trim(design, link, trim, where)
        d = design.treated[keep].astype(float)
        y = design.prepared.frame[outcome].to_numpy(dtype=float)[keep]
        X1 = np.column_stack([np.ones(int(keep.sum())), design.model[keep]])
        p = model.score
        overlap = _overlap_warn(p, d, where)
        if estimand == "ATE":
            w = d / p + (1 - d) / (1 - p)
        else:
            w = d + (1 - d) * p / (1 - p)
        m1 = np.sum(w * d * y) / np.sum(w * d)
        m0 = np.sum(w * (1 - d) * y) / np.sum(w * (1 - d))
        k = X1.shape[1]
        TI = np.column_stack([d, np.ones_like(d)])

        def psi(theta):
            tau, mu0, beta = theta[0], theta[1], theta[2:]
            pr = _prob(X1, beta, link)
            ww = d / pr + (1 - d) / (1 - pr) if estimand == "ATE" else d + (1 - d) * pr / (1 - pr)
            out = (ww * (y - mu0 - tau * d))[:, None] * TI
            return np.column_stack([out, _score_moments(X1, d, beta, link)])

        def jac(theta):
            tau, mu0, beta = theta[0], theta[1], theta[2:]
            pr, dp = _dprob(X1, beta, link)
            if estimand == "ATE":
                ww = d / pr + (1 - d) / (1 - pr)
                dw = (-d / pr**2 + (1 - d) / (1 - pr) ** 2) * dp
            else:
                ww = d + (1 - d) * pr / (1 - pr)
                dw = (1 - d) / (1 - pr) ** 2 * dp
            r = y - mu0 - tau * d
            n = len(y)
            A = np.zeros((2 + k, 2 + k))
            A[:2, 0] = -(ww * d)[:, None].T @ TI / n
            A[:2, 1] = -(ww[:, None] * TI).sum(axis=0) / n
            A[:2, 2:] = (TI * (r * dw)[:, None]).T @ X1 / n
            A[2:, 2:] = _score_hessian(X1, d, beta, link)
            return A

        theta = np.concatenate([[m1 - m0, m0], model.coef])
        V = sandwich(psi, theta, where, jac)
        # rows: effect, POM0, POM1 = tau + mu0
        L = np.zeros((3, len(theta)))
        L[0, 0] = 1
        L[1, 1] = 1
        L[2, :2] = 1
        est = L @ theta
        cov = L @ V @ L.T
    return _result(
        design_name="ipw", estimand=estimand, terms=[estimand, "POM0", "POM1"], est=est, cov=cov, design=design,
        keep=keep, weights=w, score=p, outcome=outcome, flow=flow,
        diagnostics={**overlap, **trim_info, "score_model": dict(zip(model.names, model.coef.tolist()))},
        settings={"estimand": estimand, "link": link, "trim": trim, "covariates": design.covariates, "treatment": treatment},
        log=log, level=level,
        inference="M-estimation sandwich (HC0) stacking the weighted means with the propensity-score equations; normal reference",
    )


def aipw(
    df: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    covariates: str | list[str],
    estimand: Literal["ATE", "ATT"] = "ATE",
    link: Literal["logit", "probit"] = "logit",
    trim: Literal["crump"] | None = None,
    level: float = 0.95,
) -> BalanceResult:
    """Augmented inverse probability weighting (doubly robust).

    Outcome models: linear regressions of the outcome on the covariates, fitted separately in each
    group; propensity score: logit or probit on the same covariates. Consistent if either model is
    right.

    Notes
    -----
    ATE (as statsmodels ``TreatmentEffect.aipw`` and Stata ``teffects aipw``):
    tau = mean[m1(X) + D (Y - m1(X)) / e(X)] - mean[m0(X) + (1 - D)(Y - m0(X)) / (1 - e(X))].
    ATT (normalised weights, only the control-outcome model is needed):
    tau = mean_{D=1}[Y - m0(X)] - sum_{D=0} w (Y - m0(X)) / sum_{D=0} w, with w = e/(1-e).
    Standard errors: HC0 sandwich of all stacked estimating equations (outcome regressions,
    score model, effect).

    References
    ----------
    Robins, J. M., Rotnitzky, A. and Zhao, L. P. (1994). Estimation of regression coefficients when
    some regressors are not always observed. JASA 89(427), 846-866. doi:10.1080/01621459.1994.10476818
    Glynn, A. N. and Quinn, K. M. (2010). An introduction to the augmented inverse propensity
    weighted estimator. Political Analysis 18(1), 36-56. doi:10.1093/pan/mpp036

    Examples
    --------
    >>> import impact as im
    >>> lalonde = im.datasets.load("lalonde")
    >>> res = im.matching.aipw(lalonde, outcome="re78", treatment="treat",
    ...                        covariates=["age", "educ", "race", "married", "nodegree", "re74", "re75"])
    >>> res.tidy()["term"].tolist()
    ['ATE', 'POM0', 'POM1']
    """
    where = "aipw"
    level = check_level(level, where)
    with recording_warnings() as log:
        design = _prepare(df, where, outcome, treatment, covariates, estimand, trim, link)
        keep, model, flow, trim_info = _fit_with_trim(design, link, trim, where)
        d = design.treated[keep].astype(float)
        y = design.prepared.frame[outcome].to_numpy(dtype=float)[keep]
        X1 = np.column_stack([np.ones(int(keep.sum())), design.model[keep]])
        p = model.score
        overlap = _overlap_warn(p, d, where)
        k = X1.shape[1]
        t_mask = d == 1
        for g, mask in (("treated", t_mask), ("comparison", ~t_mask)):
            if mask.sum() <= k:
                raise EstimationError(f"{where}: the {g} group has {int(mask.sum())} units, too few for an outcome regression on {k - 1} covariates.")
        b0 = np.linalg.lstsq(X1[~t_mask], y[~t_mask], rcond=None)[0]
        b1 = np.linalg.lstsq(X1[t_mask], y[t_mask], rcond=None)[0]
        if estimand == "ATE":
            mu1_i = X1 @ b1 + d * (y - X1 @ b1) / p
            mu0_i = X1 @ b0 + (1 - d) * (y - X1 @ b0) / (1 - p)
            pom0, pom1 = mu0_i.mean(), mu1_i.mean()
            tau = pom1 - pom0

            def psi(theta):
                tau_, pom0_, c0, c1, beta = theta[0], theta[1], theta[2:2 + k], theta[2 + k:2 + 2 * k], theta[2 + 2 * k:]
                pr = _prob(X1, beta, link)
                f0, f1 = X1 @ c0, X1 @ c1
                a1 = f1 + d * (y - f1) / pr
                a0 = f0 + (1 - d) * (y - f0) / (1 - pr)
                return np.column_stack([
                    a1 - a0 - tau_, a0 - pom0_,
                    ((1 - d) * (y - f0))[:, None] * X1, (d * (y - f1))[:, None] * X1,
                    _score_moments(X1, d, beta, link),
                ])

            def jac(theta):
                c0, c1, beta = theta[2:2 + k], theta[2 + k:2 + 2 * k], theta[2 + 2 * k:]
                pr, dp = _dprob(X1, beta, link)
                f0, f1 = X1 @ c0, X1 @ c1
                n = len(y)
                A = np.zeros((2 + 3 * k, 2 + 3 * k))
                da1_dc1 = X1 * (1 - d / pr)[:, None]
                da0_dc0 = X1 * (1 - (1 - d) / (1 - pr))[:, None]
                da1_deta = -d * (y - f1) / pr**2 * dp
                da0_deta = (1 - d) * (y - f0) / (1 - pr) ** 2 * dp
                sl0, sl1, slb = slice(2, 2 + k), slice(2 + k, 2 + 2 * k), slice(2 + 2 * k, 2 + 3 * k)
                A[0, 0] = -1
                A[0, sl0] = -da0_dc0.mean(axis=0)
                A[0, sl1] = da1_dc1.mean(axis=0)
                A[0, slb] = ((da1_deta - da0_deta)[:, None] * X1).mean(axis=0)
                A[1, 1] = -1
                A[1, sl0] = da0_dc0.mean(axis=0)
                A[1, slb] = (da0_deta[:, None] * X1).mean(axis=0)
                A[sl0, sl0] = -(X1 * (1 - d)[:, None]).T @ X1 / n
                A[sl1, sl1] = -(X1 * d[:, None]).T @ X1 / n
                A[slb, slb] = _score_hessian(X1, d, beta, link)
                return A

            theta = np.concatenate([[tau, pom0], b0, b1, model.coef])
            w = d / p + (1 - d) / (1 - p)
        else:
            wc = p / (1 - p)
            r0 = y - X1 @ b0
            delta = np.sum((1 - d) * wc * r0) / np.sum((1 - d) * wc)
            tau = r0[t_mask].mean() - delta
            pom1 = y[t_mask].mean()
            pom0 = pom1 - tau

            def psi(theta):
                tau_, delta_, pom1_, c0, beta = theta[0], theta[1], theta[2], theta[3:3 + k], theta[3 + k:]
                pr = _prob(X1, beta, link)
                rr = y - X1 @ c0
                return np.column_stack([
                    d * (rr - delta_ - tau_), (1 - d) * pr / (1 - pr) * (rr - delta_), d * (y - pom1_),
                    ((1 - d) * rr)[:, None] * X1, _score_moments(X1, d, beta, link),
                ])

            def jac(theta):
                delta_, c0, beta = theta[1], theta[3:3 + k], theta[3 + k:]
                pr, dp = _dprob(X1, beta, link)
                rr = y - X1 @ c0
                o = pr / (1 - pr)
                n = len(y)
                A = np.zeros((3 + 2 * k, 3 + 2 * k))
                sl0, slb = slice(3, 3 + k), slice(3 + k, 3 + 2 * k)
                A[0, 0] = A[0, 1] = -d.mean()
                A[0, sl0] = -(X1 * d[:, None]).mean(axis=0)
                A[1, 1] = -((1 - d) * o).mean()
                A[1, sl0] = -(X1 * ((1 - d) * o)[:, None]).mean(axis=0)
                A[1, slb] = (X1 * ((1 - d) * (rr - delta_) / (1 - pr) ** 2 * dp)[:, None]).mean(axis=0)
                A[2, 2] = -d.mean()
                A[sl0, sl0] = -(X1 * (1 - d)[:, None]).T @ X1 / n
                A[slb, slb] = _score_hessian(X1, d, beta, link)
                return A

            theta = np.concatenate([[tau, delta, pom1], b0, model.coef])
            w = d + (1 - d) * wc
        V = sandwich(psi, theta, where, jac)
        if estimand == "ATE":
            L = np.zeros((3, len(theta)))
            L[0, 0] = 1
            L[1, 1] = 1
            L[2, :2] = 1
            est = L @ theta
            cov = L @ V @ L.T
        else:
            # rows: ATT, POM0 = POM1 - ATT, POM1 = mean outcome of the treated
            L = np.zeros((3, len(theta)))
            L[0, 0] = 1
            L[1, 2] = 1
            L[1, 0] = -1
            L[2, 2] = 1
            est = L @ theta
            cov = L @ V @ L.T
    result = _result(
        design_name="aipw", estimand=estimand, terms=[estimand, "POM0", "POM1"], est=est, cov=cov, design=design,
        keep=keep, weights=w, score=p, outcome=outcome, flow=flow,
        diagnostics={**overlap, **trim_info, "score_model": dict(zip(model.names, model.coef.tolist()))},
        settings={"estimand": estimand, "link": link, "trim": trim, "covariates": design.covariates, "treatment": treatment},
        log=log, level=level,
        inference="M-estimation sandwich (HC0) stacking outcome regressions, propensity-score equations and the effect; normal reference",
    )
    return result


def entropy_balance(
    df: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    covariates: str | list[str],
    estimand: Literal["ATT"] = "ATT",
    max_iter: int = 200,
    tol: float = 1e-8,
    level: float = 0.95,
) -> BalanceResult:
    """Entropy balancing (Hainmueller 2012) for the ATT.

    Control units get the weights closest (in Kullback-Leibler divergence) to uniform such that the
    weighted control means of the covariates equal the treated means exactly.

    Notes
    -----
    Weights w_i = exp(lambda' X_i) / sum_j exp(lambda' X_j) over controls, with lambda minimising
    the convex dual log sum_{D=0} exp(lambda'(X_i - m_1)), m_1 the treated means (Newton's method
    with backtracking). Convergence (largest standardised imbalance left, iterations) is reported
    in ``diagnostics``. The effect is mean_{D=1} Y - sum_{D=0} w Y. Standard errors: HC0 sandwich
    of the stacked equations (treated means, balance conditions, outcome means), so they account
    for estimating the weights (entropy balancing is doubly robust for a linear outcome model;
    Zhao and Percival 2017).

    References
    ----------
    Hainmueller, J. (2012). Entropy balancing for causal effects: a multivariate reweighting method
    to produce balanced samples in observational studies. Political Analysis 20(1), 25-46.
    doi:10.1093/pan/mpr025
    Zhao, Q. and Percival, D. (2017). Entropy balancing is doubly robust. Journal of Causal
    Inference 5(1). doi:10.1515/jci-2016-0010

    Examples
    --------
    >>> import impact as im
    >>> lalonde = im.datasets.load("lalonde")
    >>> res = im.matching.entropy_balance(lalonde, outcome="re78", treatment="treat",
    ...     covariates=["age", "educ", "race", "married", "nodegree", "re74", "re75"])
    >>> res.diagnostics["converged"]
    True
    """
    where = "entropy_balance"
    level = check_level(level, where)
    max_iter = check_integer("max_iter", max_iter, where, minimum=1)
    tol = check_number("tol", tol, where, low=0, low_open=True)
    check_option("estimand", estimand, ("ATT",))
    with recording_warnings() as log:
        if outcome in as_list(covariates) or outcome == treatment:
            raise SpecError(f"{where}: the outcome {outcome!r} cannot also be the treatment or a covariate.")
        design = prepare_design(df, where=where, treatment=treatment, covariates=covariates,
                                extra={"outcome": outcome}, numeric_extra=[outcome])
        d = design.treated.astype(float)
        t = d == 1
        y = design.prepared.frame[outcome].to_numpy(dtype=float)
        X = design.model
        center, scale = X.mean(axis=0), X.std(axis=0)
        Z = (X - center) / scale
        target = Z[t].mean(axis=0)
        Zc = Z[~t] - target
        k = Z.shape[1]
        lam = np.zeros(k)

        def dual(l):
            e = Zc @ l
            m = e.max()
            return m + np.log(np.exp(e - m).sum())

        converged = False
        it = 0
        f = dual(lam)
        for it in range(1, max_iter + 1):
            e = Zc @ lam
            w = np.exp(e - e.max())
            w /= w.sum()
            grad = w @ Zc
            if np.abs(grad).max() < tol:
                converged = True
                break
            H = (Zc * w[:, None]).T @ Zc - np.outer(grad, grad)
            try:
                step = np.linalg.solve(H + 1e-12 * np.eye(k), grad)
            except np.linalg.LinAlgError:
                step = np.linalg.lstsq(H, grad, rcond=None)[0]
            s = 1.0
            while s > 1e-10:
                new = lam - s * step
                fn = dual(new)
                if fn <= f - 1e-4 * s * float(grad @ step):
                    break
                s /= 2
            lam, f = new, fn
        e = Zc @ lam
        w = np.exp(e - e.max())
        w /= w.sum()
        imbalance = float(np.abs(w @ Zc).max())
        if not converged:
            if imbalance > 1e-3:
                raise EstimationError(
                    f"{where}: the treated means cannot be matched by reweighting the comparison units "
                    f"(largest standardised imbalance left {imbalance:.3g} after {it} iterations); the "
                    "treated means lie outside what the comparison group can reach. Drop or coarsen "
                    "covariates, or restrict the sample to comparable units."
                )
            warn(ConvergenceWarning, f"{where}: entropy balancing stopped after {it} iterations with largest standardised imbalance {imbalance:.2e} (tolerance {tol:g}).")
        weights = np.zeros(len(d))
        weights[t] = 1.0
        weights[~t] = w * t.sum()
        mu1 = y[t].mean()
        mu0 = float((w * y[~t]).sum())
        tau = mu1 - mu0

        def psi(theta):
            tau_, mu0_, lam_, m_ = theta[0], theta[1], theta[2:2 + k], theta[2 + k:]
            Zm = Z - m_
            ex = np.exp(Zm @ lam_) * (1 - d)
            return np.column_stack([
                d * (y - mu0_ - tau_), ex * (y - mu0_), ex[:, None] * Zm, d[:, None] * Zm,
            ])

        # lambda here is on the scale exp(lambda'(Z - m)), the same as the fitted one
        def jac(theta):
            mu0_, lam_, m_ = theta[1], theta[2:2 + k], theta[2 + k:]
            Zm = Z - m_
            ex = np.exp(Zm @ lam_) * (1 - d)
            n = len(y)
            A = np.zeros((2 + 2 * k, 2 + 2 * k))
            sll, slm = slice(2, 2 + k), slice(2 + k, 2 + 2 * k)
            A[0, 0] = A[0, 1] = -d.mean()
            A[1, 1] = -ex.mean()
            g = (Zm * (ex * (y - mu0_))[:, None]).mean(axis=0)
            A[1, sll] = g
            A[1, slm] = -(ex * (y - mu0_)).mean() * lam_
            A[sll, sll] = (Zm * ex[:, None]).T @ Zm / n
            A[sll, slm] = -np.outer((Zm * ex[:, None]).mean(axis=0), lam_) - ex.mean() * np.eye(k)
            A[slm, slm] = -d.mean() * np.eye(k)
            return A

        theta = np.concatenate([[tau, mu0], lam, target])
        V = sandwich(psi, theta, where, jac)
        L = np.zeros((3, len(theta)))
        L[0, 0] = 1
        L[1, 1] = 1
        L[2, :2] = 1
        est = L @ theta
        cov = L @ V @ L.T
        # a logit score only for the overlap figure
        try:
            score = fit_score(X, design.treated, design.model_names, where=where).score
        except EstimationError:
            score = None
    keep = np.ones(len(d), dtype=bool)
    return _result(
        design_name="entropy_balance", estimand="ATT", terms=["ATT", "POM0", "POM1"], est=est, cov=cov, design=design,
        keep=keep, weights=weights, score=score, outcome=outcome, flow=[],
        diagnostics={"converged": converged, "iterations": it, "max_standardised_imbalance": imbalance},
        settings={"estimand": "ATT", "covariates": design.covariates, "treatment": treatment, "tol": tol},
        log=log, level=level,
        inference="M-estimation sandwich (HC0) stacking treated means, balance conditions and outcome means; normal reference",
    )
