"""Two-period DiD for repeated cross-sections: the ATT and its influence function.

The estimators of Sant'Anna and Zhao (2020) for data where different units are observed before and
after (R ``DRDID``'s ``reg_did_rc``, ``std_ipw_did_rc``, ``drdid_rc`` and ``drdid_imp_rc``). Every
observation is its own unit: ``post`` says in which period it was sampled and ``treated`` to which
group it belongs. The contract is the panel backend's (:mod:`impact.did.drdid`): the returned
influence function ``psi`` satisfies ``att - att_true = mean(psi) + o_p(n^-1/2)``, so the standard
error is ``sd(psi)/sqrt(n)``.

References
----------
Sant'Anna, P. H. C., & Zhao, J. (2020). Doubly robust difference-in-differences estimators.
*Journal of Econometrics* 219(1), 101-122. doi:10.1016/j.jeconom.2020.06.003
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, special

from impact.data import check_rank
from impact.did.drdid import _PS_CAP, TRIM_LEVEL, _logit_mle, _tilting
from impact.errors import DataError, EstimationError

__all__ = ["RCS_METHODS", "cross_section_att"]

RCS_METHODS = ("imp", "trad", "reg", "std_ipw", "imp_local")


def _wls(X: np.ndarray, y: np.ndarray, w: np.ndarray, rows: np.ndarray, names, where: str, context: str) -> np.ndarray:
    Xs, ws = X[rows], w[rows]
    if rows.sum() < X.shape[1]:
        raise DataError(f"{where}: only {int(rows.sum())} observation(s) {context}; the outcome regression needs "
                        f"at least {X.shape[1]}. Each group must be observed in both periods.")
    gram = (Xs * ws[:, None]).T @ Xs
    try:
        return linalg.solve(gram, (Xs * ws[:, None]).T @ y[rows], assume_a="pos")
    except (linalg.LinAlgError, ValueError):
        check_rank(Xs * np.sqrt(ws)[:, None], list(names), where, context=f" {context}")
        raise EstimationError(f"{where}: the outcome regression {context} is singular.") from None


def _ols_influence(X: np.ndarray, y: np.ndarray, fitted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """n x k asymptotic linear representation of a weighted OLS fit (rows with weight zero are zero)."""
    n = len(y)
    gram = (X * weights[:, None]).T @ X / n
    return ((weights * (y - fitted))[:, None] * X) @ np.linalg.inv(gram)


def cross_section_att(y: np.ndarray, post: np.ndarray, treated: np.ndarray, covariates: np.ndarray | None,
                      weights: np.ndarray | None, method: str, *, names=(), where: str = "drdid"
                      ) -> tuple[float, np.ndarray, dict]:
    """ATT, its influence function (one value per observation) and propensity diagnostics.

    ``covariates`` without an intercept (one is added); ``weights`` are sampling weights (normalised
    to mean one). Comparison observations with a propensity score of 0.995 or more get weight zero in
    the propensity-weighted estimators, as R DRDID's ``trim.level``.
    """
    n = len(y)
    D = np.asarray(treated, dtype=float)
    T = np.asarray(post, dtype=float)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float) / np.mean(weights)
    X = np.ones((n, 1)) if covariates is None or np.size(covariates) == 0 else \
        np.column_stack([np.ones(n), np.asarray(covariates, dtype=float).reshape(n, -1)])
    names = ("(intercept)", *names)
    for group, label in ((1, "treated"), (0, "comparison")):
        for period, when in ((0, "pre"), (1, "post")):
            if not np.any((D == group) & (T == period)):
                raise DataError(f"{where}: no {label} observations in the {when} period; repeated cross-sections "
                                "need both groups sampled in both periods.")
    diagnostics: dict = {}
    if method == "reg":
        return (*_regression(y, T, D, X, w, names, where), diagnostics)
    if method in ("imp", "imp_local"):
        start, _ = _logit_mle(X, D, w, where)
        gamma = _tilting(X, D, w, start, where)
        ps = np.clip(special.expit(X @ gamma), 1 - _PS_CAP, _PS_CAP)
        ps_influence = None
    else:
        beta, h_inv = _logit_mle(X, D, w, where)
        ps = special.expit(X @ beta)
        ps = np.clip(ps, 1 - _PS_CAP, _PS_CAP) if method == "std_ipw" else np.minimum(ps, _PS_CAP)
        # n x k linear representation of the logit coefficients: score_i (X'VX/n)^-1
        ps_influence = ((w * (D - ps))[:, None] * X) @ (h_inv * n)
    keep = np.where(D == 0, ps < TRIM_LEVEL, True)
    diagnostics.update(propensity_min_comparison=float(ps[D == 0].min()),
                       propensity_max_comparison=float(ps[D == 0].max()),
                       comparison_units_trimmed=int((~keep).sum()))
    odds = ps / (1 - ps)
    w_treat_pre = keep * w * D * (1 - T)
    w_treat_post = keep * w * D * T
    w_cont_pre = keep * w * odds * (1 - D) * (1 - T)
    w_cont_post = keep * w * odds * (1 - D) * T
    if method == "std_ipw":
        att, psi = _ipw(y, X, w_treat_pre, w_treat_post, w_cont_pre, w_cont_post, ps_influence)
        return att, psi, diagnostics
    # doubly robust: outcome regressions of the comparison (and treated) group in each period
    cont_weight = w * odds if method in ("imp", "imp_local") else w
    beta_cp = _wls(X, y, cont_weight, (D == 0) & (T == 0), names, where, "among comparison observations before")
    beta_cq = _wls(X, y, cont_weight, (D == 0) & (T == 1), names, where, "among comparison observations after")
    m_cp, m_cq = X @ beta_cp, X @ beta_cq
    m_c = T * m_cq + (1 - T) * m_cp
    if method == "imp":
        # improved DR (Sant'Anna & Zhao 2020, eq. 3.3 with calibrated nuisance fits): the first-step
        # estimation has no first-order effect, so the influence function has none of its terms
        _, a_tp, i_tp = _eta(w_treat_pre, y - m_c)
        _, a_tq, i_tq = _eta(w_treat_post, y - m_c)
        _, a_cp, i_cp = _eta(w_cont_pre, y - m_c)
        _, a_cq, i_cq = _eta(w_cont_post, y - m_c)
        return (a_tq - a_tp) - (a_cq - a_cp), (i_tq - i_tp) - (i_cq - i_cp), diagnostics
    beta_tp = _wls(X, y, w, (D == 1) & (T == 0), names, where, "among treated observations before")
    beta_tq = _wls(X, y, w, (D == 1) & (T == 1), names, where, "among treated observations after")
    m_tp, m_tq = X @ beta_tp, X @ beta_tq
    w_d, w_dt1, w_dt0 = keep * w * D, keep * w * D * T, keep * w * D * (1 - T)
    eta = _eta
    _, a_tp, i_tp = eta(w_treat_pre, y - m_c)
    _, a_tq, i_tq = eta(w_treat_post, y - m_c)
    _, a_cp, i_cp = eta(w_cont_pre, y - m_c)
    _, a_cq, i_cq = eta(w_cont_post, y - m_c)
    _, a_d1, i_d1 = eta(w_d, m_tq - m_cq)
    _, a_dt1, i_dt1 = eta(w_dt1, m_tq - m_cq)
    _, a_d0, i_d0 = eta(w_d, m_tp - m_cp)
    _, a_dt0, i_dt0 = eta(w_dt0, m_tp - m_cp)
    att = (a_tq - a_tp) - (a_cq - a_cp) + (a_d1 - a_dt1) - (a_d0 - a_dt0)
    inf_treat = i_tq - i_tp
    inf_cont = i_cq - i_cp
    inf_eff = (i_d1 - i_dt1) - (i_d0 - i_dt0)
    if method == "imp_local":
        # improved and locally efficient (eq. 3.4): again no first-step estimation effects
        return att, inf_treat - inf_cont + inf_eff, diagnostics
    # traditional (locally efficient) DR: add the estimation effects of the regressions and the logit
    lin_cp = _ols_influence(X, y, m_cp, w * (1 - D) * (1 - T))
    lin_cq = _ols_influence(X, y, m_cq, w * (1 - D) * T)
    lin_tp = _ols_influence(X, y, m_tp, w * D * (1 - T))
    lin_tq = _ols_influence(X, y, m_tq, w * D * T)

    def colmean(weight: np.ndarray) -> np.ndarray:
        return np.mean(weight[:, None] * X, axis=0)

    inf_treat = inf_treat + lin_cq @ (-colmean(w_treat_post * T) / np.mean(w_treat_post)) \
        + lin_cp @ (-colmean(w_treat_pre * (1 - T)) / np.mean(w_treat_pre))
    moment_pre = colmean(w_cont_pre * (y - m_c - a_cp)) / np.mean(w_cont_pre)
    moment_post = colmean(w_cont_post * (y - m_c - a_cq)) / np.mean(w_cont_post)
    inf_cont = inf_cont + ps_influence @ (moment_post - moment_pre) \
        + lin_cq @ (-colmean(w_cont_post * T) / np.mean(w_cont_post)) \
        + lin_cp @ (-colmean(w_cont_pre * (1 - T)) / np.mean(w_cont_pre))
    mom_post = colmean(w_d / np.mean(w_d) - w_dt1 / np.mean(w_dt1))
    mom_pre = colmean(w_d / np.mean(w_d) - w_dt0 / np.mean(w_dt0))
    inf_or = (lin_tq - lin_cq) @ mom_post - (lin_tp - lin_cp) @ mom_pre
    return att, inf_treat - inf_cont + inf_eff + inf_or, diagnostics


def _eta(weight: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """A normalised weighted mean's terms, the mean, and its influence function."""
    e = weight * values / np.mean(weight)
    mean = float(np.mean(e))
    return e, mean, e - weight * mean / np.mean(weight)


def _regression(y, T, D, X, w, names, where) -> tuple[float, np.ndarray]:
    """Outcome regression DiD (Heckman, Ichimura & Todd 1997) for repeated cross-sections."""
    beta_pre = _wls(X, y, w, (D == 0) & (T == 0), names, where, "among comparison observations before")
    beta_post = _wls(X, y, w, (D == 0) & (T == 1), names, where, "among comparison observations after")
    m_pre, m_post = X @ beta_pre, X @ beta_post
    w_tp, w_tq, w_c = w * D * (1 - T), w * D * T, w * D
    r_tp, r_tq, r_c = w_tp * y, w_tq * y, w_c * (m_post - m_pre)
    e_tp, e_tq, e_c = np.mean(r_tp) / np.mean(w_tp), np.mean(r_tq) / np.mean(w_tq), np.mean(r_c) / np.mean(w_c)
    att = (e_tq - e_tp) - e_c
    lin_pre = _ols_influence(X, y, m_pre, w * (1 - D) * (1 - T))
    lin_post = _ols_influence(X, y, m_post, w * (1 - D) * T)
    inf_treat = (r_tq - w_tq * e_tq) / np.mean(w_tq) - (r_tp - w_tp * e_tp) / np.mean(w_tp)
    m1 = np.mean(w_c[:, None] * X, axis=0)
    inf_cont = (r_c - w_c * e_c + lin_post @ m1 - lin_pre @ m1) / np.mean(w_c)
    return float(att), inf_treat - inf_cont


def _ipw(y, X, w_tp, w_tq, w_cp, w_cq, ps_influence) -> tuple[float, np.ndarray]:
    """Standardised (Hajek) IPW DiD for repeated cross-sections."""
    def part(weight):
        e = weight * y / np.mean(weight)
        mean = float(np.mean(e))
        return mean, e - weight * mean / np.mean(weight)

    a_tp, i_tp = part(w_tp)
    a_tq, i_tq = part(w_tq)
    a_cp, i_cp = part(w_cp)
    a_cq, i_cq = part(w_cq)
    att = (a_tq - a_tp) - (a_cq - a_cp)
    m_pre = np.mean((w_cp * (y - a_cp))[:, None] * X, axis=0) / np.mean(w_cp)
    m_post = np.mean((w_cq * (y - a_cq))[:, None] * X, axis=0) / np.mean(w_cq)
    inf_cont = (i_cq - i_cp) + ps_influence @ (m_post - m_pre)
    return float(att), (i_tq - i_tp) - inf_cont


def drdid_cross_sections(df, *, outcome: str, time: str, treatment: str, covariates: list[str], method: str,
                         weights: str | None, level: float, missing: str, unit: str | None):
    """``drdid(panel=False)``: the 2x2 estimators for two repeated cross-sections (one row per observation)."""
    from impact.data import check_option, prepare
    from impact.did.drdid import METHOD_NAMES, jsonable_period
    from impact.errors import SmallComparisonWarning, SpecError, recording_warnings, warn
    from impact.results import Result, effects_table

    where = "drdid"
    if method not in RCS_METHODS:
        raise SpecError(f"{where}: method={method!r} is not available for repeated cross-sections (panel=False); "
                        f"choose one of {', '.join(repr(m) for m in RCS_METHODS)}.")
    check_option("method", method, RCS_METHODS)
    with recording_warnings() as log:
        roles = {"outcome": outcome, "time": time, "treatment": treatment, "covariates": covariates,
                 "weights": weights, **({"unit": unit} if unit is not None else {})}
        prepared = prepare(df, where=where, roles=roles,
                           numeric=[outcome, treatment, *covariates] + ([weights] if weights else []),
                           missing=missing)
        frame = prepared.frame
        periods = np.sort(frame[time].unique())
        if len(periods) != 2:
            raise DataError(f"{where}: needs exactly two periods in {time!r}; found {len(periods)} "
                            f"({', '.join(map(str, periods[:6]))}). Select the pre and post period.")
        D = frame[treatment].to_numpy(dtype=float)
        bad = ~np.isin(D, (0, 1))
        if bad.any():
            raise DataError(f"{where}: column {treatment!r} must be the treated-group indicator coded 0/1 in both "
                            f"periods; rows {', '.join(map(str, frame.index[bad][:5]))} hold other values.")
        post = (frame[time] == periods[1]).to_numpy(dtype=float)
        w = None
        if weights:
            w = frame[weights].to_numpy(dtype=float)
            if (w < 0).any() or not np.isfinite(w).all():
                raise DataError(f"{where}: weights {weights!r} must be finite and non-negative.")
        n_comparison = int((D == 0).sum())
        if n_comparison < 30:
            warn(SmallComparisonWarning, f"{where}: only {n_comparison} comparison observations.")
        X = frame[covariates].to_numpy(dtype=float) if covariates else None
        y = frame[outcome].to_numpy(dtype=float)
        att, psi, diagnostics = cross_section_att(y, post, D, X, w, method, names=tuple(covariates), where=where)
        n = len(y)
        se = float(np.std(psi, ddof=1) / np.sqrt(n))
    counts = {f"n_{g}_{p}": int(((D == gi) & (post == pi)).sum())
              for g, gi in (("treated", 1), ("comparison", 0)) for p, pi in (("pre", 0), ("post", 1))}
    description = METHOD_NAMES.get(method, "improved and locally efficient doubly robust (Sant'Anna & Zhao 2020, eq. 3.4)")
    return Result(
        design="drdid", estimand="ATT", effects=effects_table(["ATT"], [att], [se], level=level), headline="ATT",
        inference="analytic standard error from the influence function (sd(psi)/sqrt(n)), normal critical values",
        n_obs=n, outcome=outcome, level=level, n_treated=int(D.sum()),
        settings={"method": method, "method_description": description, "covariates": covariates, "weights": weights,
                  "panel": False, "trim_level": TRIM_LEVEL,
                  "assumption": "Conditional parallel trends, and the composition of each group is stable over "
                                "the two cross-sections (no compositional change)."},
        warnings=tuple(log), sample_flow=prepared.flow,
        diagnostics={**counts, **diagnostics,
                     "periods": f"{jsonable_period(periods[0])} (pre), {jsonable_period(periods[1])} (post)"},
    )
