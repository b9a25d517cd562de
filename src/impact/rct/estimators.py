"""Design-based estimators of the average treatment effect in a randomised trial.

``difference_in_means`` follows R ``estimatr::difference_in_means`` (Blair, Cooper, Coppock,
Humphreys and Sonnet), ``regression`` follows ``estimatr::lm_robust`` for the treatment coefficient,
and ``lin`` follows ``estimatr::lm_lin`` (Lin 2013). Covariance matrices come from the shared
:func:`impact.inference.vcov.linear_vcov`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from impact.data import (
    as_list,
    check_level,
    check_option,
    check_positive_weights,
    check_rank,
    cluster_codes,
    prepare,
    show,
    with_unique_index,
)
from impact.errors import DataError, EstimationError, SampleWarning, recording_warnings, warn
from impact.inference.vcov import linear_vcov
from impact.results import effects_table
from impact.rct._common import (
    RCTResult,
    arm_summary,
    check_arms,
    consort_flow,
    ols,
    resolve_arms,
    treatment_within_clusters,
)
from impact.rct.balance import balance_rows

__all__ = ["difference_in_means", "regression", "lin", "SeType"]

SeType = Literal["HC0", "HC1", "HC2", "HC3", "CR0", "CR2", "stata", "iid"]
SE_TYPES = ("HC0", "HC1", "HC2", "HC3", "CR0", "CR2", "stata", "iid")
#: What a comparison of randomised arms estimates: the effect of assignment when some units did not
#: receive what they were assigned to (non-compliance), the effect of treatment when all did.
ESTIMAND_ITT = "ITT (intention-to-treat: effect of being assigned/offered the treatment)"
ESTIMAND_ATE = "ATE"


def assignment_estimand(df: pd.DataFrame, treatment: str, received: str | None) -> str:
    """``ESTIMAND_ITT`` if ``received`` differs from the assignment for any unit, else ``ESTIMAND_ATE``.

    Without ``received`` the comparison of arms is reported as the ATE, which it is under full
    compliance; pass ``received=`` to let the result name the ITT when compliance was partial.
    """
    if received is None or received not in df.columns or treatment not in df.columns:
        return ESTIMAND_ATE
    assigned = pd.to_numeric(df[treatment], errors="coerce")
    took = pd.to_numeric(df[received], errors="coerce")
    both = assigned.notna() & took.notna()
    return ESTIMAND_ITT if bool((assigned[both] != took[both]).any()) else ESTIMAND_ATE


_ASSUMPTION = "Treatment was randomly assigned (within blocks / at the cluster level, as declared), so arms are comparable."


def _welch(y1: np.ndarray, y0: np.ndarray) -> tuple[float, float, float]:
    """Difference in means, Neyman SE and Welch-Satterthwaite df."""
    n1, n0 = y1.size, y0.size
    v1, v0 = y1.var(ddof=1) / n1, y0.var(ddof=1) / n0
    se = float(np.sqrt(v1 + v0))
    df = float((v1 + v0) ** 2 / (v1**2 / (n1 - 1) + v0**2 / (n0 - 1)))
    return float(y1.mean() - y0.mean()), se, df


def _regression_dim(y: np.ndarray, t: np.ndarray, *, kind: str, clusters: np.ndarray | None, n_clusters: int | None,
                    weights: np.ndarray | None, where: str) -> tuple[float, float, float]:
    X = np.column_stack([np.ones_like(t), t])
    beta, resid = ols(X, y, weights)
    cov = linear_vcov(X, resid, kind=kind, weights=weights, clusters=clusters, n_clusters=n_clusters, where=where)
    return float(beta[1]), float(cov.std_errors[1]), float(cov.df[1])


def _flow_and_balance(df, frame, *, treatment, outcome, received, observed, balance, t, blocks, clusters, where):
    diagnostics: dict[str, Any] = {}
    if received is not None or observed is not None:
        diagnostics["consort"] = consort_flow(df, assignment=treatment, received=received, observed=observed,
                                              outcome=outcome, analysed=frame.index)
    table = None
    if balance:
        covs = as_list(balance)
        missing = [c for c in covs if c not in df.columns]
        if missing:
            raise DataError(f"{where}: balance covariate(s) {missing} not found in the data.")
        extra = df.loc[frame.index, [c for c in covs if c not in frame.columns]]
        source = pd.concat([frame, extra], axis=1) if extra.shape[1] else frame
        table = balance_rows(source, t, covs, blocks=blocks, where=where)
        diagnostics["balance"] = table
    return diagnostics, table


def difference_in_means(
    df: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    blocks: str | None = None,
    clusters: str | None = None,
    condition1: Any = None,
    condition2: Any = None,
    weights: str | None = None,
    level: float = 0.95,
    received: str | None = None,
    observed: str | None = None,
    balance: Sequence[str] | None = None,
) -> RCTResult:
    """Difference in mean outcomes between two arms, with the design-based (Neyman) variance.

    Parameters
    ----------
    df : DataFrame
        One row per unit.
    outcome, treatment : str
        Outcome column and assignment column (0/1, or several arms with ``condition1``/``condition2``).
    blocks : str, optional
        Randomisation blocks (strata). Blocks of two units (or two clusters) are matched pairs.
    clusters : str, optional
        Clusters assigned as a whole (treatment must be constant within a cluster).
    condition1, condition2 : optional
        For multi-arm trials: the control and treatment values compared (estimate = condition2 -
        condition1), as in estimatr.
    weights : str, optional
        Analytic weights; the estimate is then a weighted least-squares coefficient with HC2 (CR2 with
        clusters) standard errors, as estimatr does.
    level : float
        Confidence level.
    received, observed : str, optional
        Treatment received (0/1) and follow-up response (0/1): when given, ``diagnostics["consort"]``
        holds the CONSORT participant flow per arm.
    balance : list of str, optional
        Baseline covariates to tabulate by arm (``diagnostics["balance"]`` and a balance figure).

    Returns
    -------
    RCTResult
        Headline term is the treatment column (``"condition2 vs condition1"`` for multi-arm);
        ``diagnostics["design"]`` names the variance used (Standard, Blocked, Matched-pair,
        Clustered, Block-clustered, Matched-pair clustered).

    Notes
    -----
    The estimand is the sample average treatment effect :math:`\\tau = \\frac1N\\sum_i (Y_i(1) - Y_i(0))`.
    Without blocks: :math:`\\hat\\tau = \\bar Y_1 - \\bar Y_0`, :math:`\\hat V = s_1^2/N_1 + s_0^2/N_0`
    (Neyman; conservative), Welch-Satterthwaite degrees of freedom. With blocks :math:`j`:
    :math:`\\hat\\tau = \\sum_j (N_j/N)\\hat\\tau_j`, :math:`\\hat V = \\sum_j (N_j/N)^2 \\hat V_j`, df
    :math:`N - 2J`. If any block has two units (clusters) the matched-pairs variance is used for all
    blocks, :math:`\\hat V = \\frac{1}{J(J-1)}\\sum_j(\\hat\\tau_j - \\hat\\tau)^2`, df :math:`J-1`
    (clustered pairs: :math:`\\frac{J}{(J-1)N^2}\\sum_j (N_j\\hat\\tau_j - N\\hat\\tau/J)^2`). With clusters
    the estimate is the OLS coefficient with CR2 standard errors and Bell-McCaffrey degrees of
    freedom (within each block, with df = clusters - 2J, when blocked). These are the estimators of
    ``estimatr::difference_in_means`` 1.0 (technical notes).

    References
    ----------
    Neyman, J. (1923/1990). On the application of probability theory to agricultural experiments.
    *Statistical Science* 5(4), 465-472. doi:10.1214/ss/1177012031.
    Gerber, A. S. and Green, D. P. (2012). *Field Experiments*, ch. 3-4. Norton.
    Imai, K. (2008). Variance identification and efficiency analysis in randomized experiments under
    the matched-pair design. *Statistics in Medicine* 27(24), 4857-4873. doi:10.1002/sim.3337.
    Blair, G., Cooper, J., Coppock, A., Humphreys, M. and Sonnet, L. (2022). estimatr: Fast
    Estimators for Design-Based Inference, R package 1.0.

    Examples
    --------
    >>> import impact as im
    >>> nsw = im.datasets.load("nsw_dw")
    >>> round(im.rct.difference_in_means(nsw, outcome="re78", treatment="treat").estimate)
    1794
    """
    where = "difference_in_means"
    df = with_unique_index(df)
    level = check_level(level, where)
    with recording_warnings() as log:
        prepared = prepare(df, where=where, roles={"outcome": outcome, "treatment": treatment, "blocks": blocks,
                                                   "clusters": clusters, "weights": weights},
                           numeric=[outcome] + ([weights] if weights else []))
        frame = prepared.frame
        arms = resolve_arms(frame, treatment, condition1, condition2, where)
        flow = prepared.flow
        if not arms.keep.all():
            frame = frame.loc[arms.keep]
            flow = prepared.with_step(frame, "arms compared", f"kept {show(arms.condition1)} and {show(arms.condition2)}").flow
        y = frame[outcome].to_numpy(dtype=float)
        t = arms.indicator
        check_arms(t, where)
        w = None
        if weights:
            w = frame[weights].to_numpy(dtype=float)
            check_positive_weights(frame, weights, where)
            w = w / w.mean()
        cl_codes, n_clusters = (None, None)
        if clusters:
            cl_codes, n_clusters = cluster_codes(frame[clusters], where=where, treated=t, name=clusters)
            treatment_within_clusters(t, cl_codes, where, frame[clusters].to_numpy())
        n_blocks = None
        if blocks is None:
            if clusters is None and w is None:
                est, se, dof = _welch(y[t == 1], y[t == 0])
                design = "Standard"
            else:
                kind = "CR2" if clusters else "HC2"
                est, se, dof = _regression_dim(y, t, kind=kind, clusters=cl_codes, n_clusters=n_clusters, weights=w, where=where)
                design = "Clustered" if clusters else "Standard (weighted)"
        else:
            est, se, dof, design, n_blocks = _blocked(frame, y, t, w, blocks=blocks, clusters=clusters, where=where)
        if w is not None and "weighted" not in design:
            design += " (weighted)"
        table = effects_table([arms.term], [est], [se], df=dof, level=level)
        diagnostics, bal = _flow_and_balance(df, frame, treatment=treatment, outcome=outcome, received=received,
                                             observed=observed, balance=balance, t=t, blocks=blocks, clusters=clusters, where=where)
        diagnostics.update({"design": design, "arms": arm_summary(y, t)})
        if n_blocks is not None:
            diagnostics["n_blocks"] = n_blocks
        inference = {
            "Standard": "Neyman variance, Welch-Satterthwaite df",
            "Blocked": "blocked Neyman variance, df = N - 2 x blocks",
            "Matched-pair": "matched-pairs variance, df = pairs - 1",
            "Clustered": "CR2 (Bell-McCaffrey) with Satterthwaite df",
            "Block-clustered": "per-block CR2 variances, df = clusters - 2 x blocks",
            "Matched-pair clustered": "matched-pairs clustered variance, df = pairs - 1",
        }.get(design.replace(" (weighted)", ""), "HC2 (weighted least squares)")
    return RCTResult(
        design="difference_in_means", estimand=assignment_estimand(df, treatment, received), effects=table, headline=arms.term,
        inference=f"{design} design: {inference}", n_obs=len(y), outcome=outcome, level=level,
        n_treated=int(t.sum()), n_clusters=n_clusters,
        settings={"treatment": treatment, "blocks": blocks, "clusters": clusters, "weights": weights,
                  "condition1": arms.condition1, "condition2": arms.condition2, "assumption": _ASSUMPTION},
        warnings=tuple(log), sample_flow=flow, diagnostics=diagnostics, balance=bal,
    )


def _blocked(frame, y, t, w, *, blocks, clusters, where):
    block_values = frame[blocks].to_numpy()
    codes, labels = pd.factorize(block_values, sort=True)
    J = len(labels)
    n_t = np.bincount(codes, weights=t, minlength=J)
    n_all = np.bincount(codes, minlength=J)
    if clusters:
        pair = frame.groupby(codes)[clusters].nunique().to_numpy()  # randomisation units per block
        arm_units = frame.assign(_t=t, _b=codes).groupby(["_b", "_t"])[clusters].nunique().unstack(fill_value=0)
    else:
        pair = n_all
        arm_units = pd.DataFrame({0.0: n_all - n_t, 1.0: n_t})
    arm_units = arm_units.reindex(columns=[0.0, 1.0], fill_value=0).to_numpy()
    lacking = np.flatnonzero((arm_units == 0).any(axis=1))
    if lacking.size:
        names = ", ".join(show(labels[j]) for j in lacking[:8])
        more = f" and {lacking.size - 8} more" if lacking.size > 8 else ""
        raise DataError(
            f"{where}: {lacking.size} block(s) in {blocks!r} lack one of the two arms: {names}{more}. Every "
            "block must contain treated and control units; drop those blocks or merge them with neighbours."
        )
    if np.any(pair == 1):
        raise DataError(f"{where}: every block must have at least two units (or clusters).")
    pair_matched = bool(np.any(pair == 2))
    if pair_matched and np.any(pair > 2):
        warn(SampleWarning, f"{where}: some blocks in {blocks!r} have two units (clusters) and others more; the "
             "matched-pairs variance is used for all blocks (the within-block variance cannot be estimated from pairs).")
    if not pair_matched:
        single = np.flatnonzero((arm_units == 1).any(axis=1))
        if single.size:
            names = ", ".join(show(labels[j]) for j in single[:8])
            raise DataError(
                f"{where}: block(s) {names} have a single treated or control unit (cluster); the blocked "
                "Neyman variance needs at least two of each. Merge small blocks, or use pairs throughout."
            )
    if pair_matched and w is not None:
        raise DataError(f"{where}: weights cannot be combined with a matched-pairs design (as in estimatr).")
    tau = np.empty(J)
    var = np.empty(J)
    n_units = n_all.astype(float) if w is None else np.bincount(codes, weights=w, minlength=J)
    cl_total = 0
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(J + 1))
    if clusters is None and w is None:
        s1 = np.bincount(codes, weights=y * t, minlength=J)
        s0 = np.bincount(codes, weights=y * (1 - t), minlength=J)
        n0 = n_all - n_t
        tau = s1 / n_t - s0 / n0
        if not pair_matched:
            q1 = np.bincount(codes, weights=(y**2) * t, minlength=J)
            q0 = np.bincount(codes, weights=(y**2) * (1 - t), minlength=J)
            v1 = (q1 - s1**2 / n_t) / (n_t - 1)
            v0 = (q0 - s0**2 / n0) / (n0 - 1)
            var = v1 / n_t + v0 / n0
    else:
        cluster_values = frame[clusters].to_numpy() if clusters else None
        for j in range(J):
            idx = order[bounds[j] : bounds[j + 1]]
            yj, tj = y[idx], t[idx]
            wj = None if w is None else w[idx]
            if clusters:
                cj, gj = pd.factorize(cluster_values[idx], sort=True)
                cl_total += len(gj)
            if pair_matched:
                tau[j] = yj[tj == 1].mean() - yj[tj == 0].mean()
                continue
            X = np.column_stack([np.ones_like(tj), tj])
            beta, resid = ols(X, yj, wj)
            kind = "CR2" if clusters else "HC2"
            cov = linear_vcov(X, resid, kind=kind, weights=wj, clusters=cj if clusters else None,
                              n_clusters=len(gj) if clusters else None, where=where, df_for=0)
            tau[j] = beta[1]
            var[j] = cov.matrix[1, 1]
    N = n_units.sum()
    est = float((n_units / N) @ tau)
    if pair_matched:
        if clusters:
            se = float(np.sqrt(J / ((J - 1) * N**2) * np.sum((n_units * tau - N * est / J) ** 2)))
            design = "Matched-pair clustered"
        else:
            se = float(np.sqrt(np.sum((tau - est) ** 2) / (J * (J - 1))))
            design = "Matched-pair"
        dof = float(J - 1)
    else:
        se = float(np.sqrt(np.sum(var * (n_units / N) ** 2)))
        if clusters:
            design, dof = "Block-clustered", float(cl_total - 2 * J)
        else:
            design, dof = "Blocked", float(len(y) - 2 * J)
    if J < 2 and pair_matched:
        raise EstimationError(f"{where}: a matched-pairs variance needs at least two pairs.")
    return est, se, dof, design, J


def _treatment_design(frame: pd.DataFrame, treatment: str, control: Any, where: str) -> tuple[np.ndarray, list[str], list[Any]]:
    """0/1 treatment -> one column; several arms -> one dummy per arm against ``control``."""
    values = frame[treatment]
    levels = sorted(pd.unique(values), key=lambda v: (str(type(v)), v))
    numeric = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    if numeric and control is None and set(np.asarray(levels, dtype=float)) <= {0.0, 1.0}:
        t = values.to_numpy(dtype=float)
        return t[:, None], [treatment], [1]
    if control is None:
        listed = ", ".join(show(v) for v in levels[:8])
        raise DataError(
            f"{where}: treatment column {treatment!r} has values {listed}; for a multi-arm trial pass "
            "control= (the comparison arm); each other arm gets its own coefficient."
        )
    if not (values == control).any():
        raise DataError(f"{where}: control={show(control)} does not occur in {treatment!r}.")
    others = [v for v in levels if v != control]
    D = np.column_stack([(values == v).to_numpy(dtype=float) for v in others])
    return D, [str(v) for v in others], others


def _fit(
    where: str,
    df: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    covariates: list[str],
    clusters: str | None,
    se_type: str | None,
    level: float,
    interact: bool,
    control: Any = None,
    weights: str | None = None,
    received: str | None = None,
    observed: str | None = None,
    balance: Sequence[str] | None = None,
    blocks: str | None = None,
) -> RCTResult:
    df = with_unique_index(df)
    level = check_level(level, where)
    with recording_warnings() as log:
        prepared = prepare(df, where=where, roles={"outcome": outcome, "treatment": treatment, "covariates": covariates,
                                                   "clusters": clusters, "weights": weights, "blocks": blocks},
                           numeric=[outcome, *covariates] + ([weights] if weights else []))
        frame = prepared.frame
        user_covariates = list(covariates)
        if blocks:  # block fixed effects as dummies (additive, never interacted)
            dummies = pd.get_dummies(frame[blocks], prefix=str(blocks), drop_first=True, dtype=float)
            frame = pd.concat([frame, dummies], axis=1)
            covariates = [*covariates, *dummies.columns]
        D, terms, _ = _treatment_design(frame, treatment, control, where)
        if D.shape[1] == 1:
            check_arms(D[:, 0], where)
        y = frame[outcome].to_numpy(dtype=float)
        n = len(y)
        Xcov = frame[covariates].to_numpy(dtype=float) if covariates else np.empty((n, 0))
        w = None
        if weights:
            w = frame[weights].to_numpy(dtype=float)
            if np.any(w <= 0):
                raise DataError(f"{where}: weights in {weights!r} must be positive.")
        names = ["(Intercept)", *terms]
        if interact:
            # lm_lin centres at the (weighted, with weights) sample means, so tau is the (weighted) ATE
            means = Xcov.mean(axis=0) if w is None else (w @ Xcov) / w.sum()
            centred = Xcov - means
            inter = np.column_stack([D[:, [a]] * centred for a in range(D.shape[1])]) if covariates else np.empty((n, 0))
            X = np.column_stack([np.ones(n), D, centred, inter])
            names += [f"{c}_c" for c in covariates] + [f"{a}:{c}_c" for a in terms for c in covariates]
        else:
            X = np.column_stack([np.ones(n), D, Xcov])
            names += covariates
        check_rank(X, names, where)
        if se_type is None:
            se_type = "CR2" if clusters else "HC2"
        check_option("se_type", se_type, SE_TYPES)
        cl_codes, n_clusters = None, None
        if se_type in ("CR0", "CR2") and not clusters:
            raise DataError(f"{where}: se_type={se_type!r} needs clusters=.")
        if clusters:
            if se_type not in ("CR0", "CR2", "stata"):
                raise DataError(f"{where}: with clusters= use se_type='CR2' (default), 'CR0' or 'stata'; got {se_type!r}.")
            cl_codes, n_clusters = cluster_codes(frame[clusters], where=where, treated=D.any(axis=1), name=clusters)
        kind = {"stata": "cluster" if clusters else "HC1"}.get(se_type, se_type)
        beta, resid = ols(X, y, w)
        cov = linear_vcov(X, resid, kind=kind, weights=w, clusters=cl_codes, n_clusters=n_clusters, where=where)
        se = cov.std_errors
        dof = cov.df
        k_t = len(terms)
        table = effects_table(terms, beta[1 : 1 + k_t], se[1 : 1 + k_t], df=dof[1 : 1 + k_t], level=level)
        everything = effects_table(names, beta, se, df=dof, level=level)
        t_any = D.any(axis=1).astype(float)
        diagnostics, bal = _flow_and_balance(df, frame, treatment=treatment, outcome=outcome, received=received,
                                             observed=observed,
                                             balance=list(balance) if balance is not None else (covariates if interact and k_t == 1 else None),
                                             t=t_any, blocks=None, clusters=clusters, where=where)
        diagnostics.update({
            "coefficients": everything,
            "r_squared": float(1 - (resid @ resid) / np.sum((y - y.mean()) ** 2)),
            "se_type": se_type,
            "control_mean": float(y[~D.any(axis=1)].mean()),
        })
        if interact:
            diagnostics["covariate_means"] = {c: float(m) for c, m in zip(covariates, means)}
    return RCTResult(
        design=where, estimand=assignment_estimand(df, treatment, received), effects=table, headline=terms[0], inference=cov.description,
        n_obs=n, outcome=outcome, level=level, n_treated=int(t_any.sum()), n_clusters=n_clusters,
        settings={"treatment": treatment, "covariates": user_covariates, "blocks": blocks, "clusters": clusters,
                  "se_type": se_type, "control": control, "weights": weights, "assumption": _ASSUMPTION},
        warnings=tuple(log), sample_flow=prepared.flow, diagnostics=diagnostics, vcov=cov.matrix, balance=bal,
    )


def regression(
    df: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    covariates: Sequence[str] | None = None,
    clusters: str | None = None,
    se_type: SeType | None = None,
    control: Any = None,
    blocks: str | None = None,
    weights: str | None = None,
    level: float = 0.95,
    received: str | None = None,
    observed: str | None = None,
    balance: Sequence[str] | None = None,
) -> RCTResult:
    """Regression of the outcome on treatment (and covariates) with robust standard errors.

    As ``estimatr::lm_robust(outcome ~ treatment + covariates, se_type=...)``; the effects table has
    the treatment coefficient(s), ``diagnostics["coefficients"]`` all of them.

    Parameters
    ----------
    covariates : list of str, optional
        Additive baseline covariates (precision only; see :func:`lin` for the interacted version).
    clusters : str, optional
        Cluster column; then ``se_type`` defaults to ``"CR2"``.
    se_type : {"HC2", "HC0", "HC1", "HC3", "iid", "CR2", "CR0", "stata"}
        ``HC2`` (default without clusters), ``CR2`` (default with clusters, Bell-McCaffrey df);
        ``stata`` is HC1 without clusters and CR1 (df = G - 1) with clusters.
    control : optional
        For a treatment column with several arms: the comparison arm; each other arm gets a term.
    blocks : str, optional
        Randomisation blocks, entered as fixed effects (one dummy per block but the first).
    weights : str, optional
        Analytic weights (weighted least squares).

    Notes
    -----
    :math:`Y_i = \\alpha + \\tau T_i + X_i'\\beta + e_i` by OLS; :math:`\\hat\\tau` estimates the ATE under
    randomisation (with bias of order 1/N when covariates are included, Freedman 2008).

    References
    ----------
    Freedman, D. A. (2008). On regression adjustments to experimental data. *Advances in Applied
    Mathematics* 40(2), 180-193. doi:10.1016/j.aam.2006.12.003.
    MacKinnon, J. G. and White, H. (1985). Some heteroskedasticity-consistent covariance matrix
    estimators with improved finite sample properties. *Journal of Econometrics* 29(3), 305-325.
    doi:10.1016/0304-4076(85)90158-7.

    Examples
    --------
    >>> import impact as im
    >>> hiv = im.datasets.load("thornton_hiv")
    >>> fit = im.rct.regression(hiv, outcome="got", treatment="any", se_type="HC1")
    """
    return _fit("regression", df, outcome=outcome, treatment=treatment, covariates=as_list(covariates),
                clusters=clusters, se_type=se_type, level=level, interact=False, control=control, weights=weights,
                received=received, observed=observed, balance=balance, blocks=blocks)


def lin(
    df: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    covariates: Sequence[str],
    clusters: str | None = None,
    se_type: SeType | None = None,
    weights: str | None = None,
    level: float = 0.95,
    received: str | None = None,
    observed: str | None = None,
) -> RCTResult:
    """Lin (2013) covariate adjustment: treatment fully interacted with centred covariates.

    As ``estimatr::lm_lin(outcome ~ treatment, covariates = ~ x1 + x2)``: covariates are centred at
    their sample means (weighted means with ``weights``) so that the treatment coefficient is the ATE; HC2 standard errors (CR2 with
    clusters). The covariates also fill a balance table (``diagnostics["balance"]``).

    Notes
    -----
    :math:`Y_i = \\alpha + \\tau T_i + (X_i - \\bar X)'\\beta + T_i (X_i - \\bar X)'\\gamma + e_i`.
    Lin shows that :math:`\\hat\\tau` is consistent for the ATE and asymptotically no less precise than
    the difference in means, and that the HC (here HC2) variance is conservative.

    References
    ----------
    Lin, W. (2013). Agnostic notes on regression adjustments to experimental data: reexamining
    Freedman's critique. *Annals of Applied Statistics* 7(1), 295-318. doi:10.1214/12-AOAS583.

    Examples
    --------
    >>> import impact as im
    >>> hiv = im.datasets.load("thornton_hiv")
    >>> fit = im.rct.lin(hiv, outcome="got", treatment="any", covariates=["age", "distvct"])
    """
    covs = as_list(covariates)
    if not covs:
        raise DataError("lin: give at least one covariate (without covariates use difference_in_means).")
    return _fit("lin", df, outcome=outcome, treatment=treatment, covariates=covs, clusters=clusters,
                se_type=se_type, level=level, interact=True, weights=weights, received=received, observed=observed)

