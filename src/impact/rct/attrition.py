"""Attrition: differential response by arm, and Lee (2009) trimming bounds with Imbens-Manski intervals."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from impact.data import (
    as_list,
    check_binary,
    check_column_argument,
    check_integer,
    check_level,
    check_rank,
    check_seed,
    prepare,
    with_unique_index,
)
from impact.errors import EstimationError, SampleWarning, SpecError, recording_warnings, warn
from impact.inference.vcov import linear_vcov, wald_test
from impact.results import FlowStep, effects_table
from impact.rct._common import RCTResult, check_arms, consort_flow, ols

__all__ = ["lee_bounds", "attrition_test", "imbens_manski_interval"]


def imbens_manski_interval(lower: float, upper: float, se_lower: float, se_upper: float, level: float = 0.95) -> tuple[float, float]:
    """Imbens & Manski (2004) confidence interval for a partially identified parameter.

    Solves :math:`\\Phi(c + \\Delta/\\max(\\sigma_l, \\sigma_u)) - \\Phi(-c) = \\text{level}` for c, with
    :math:`\\Delta = u - l`, and returns :math:`[l - c\\sigma_l, u + c\\sigma_u]`; c moves from the one-sided
    critical value (wide bounds) to the two-sided one (point identification).
    """
    width = max(upper - lower, 0.0)
    sigma = max(se_lower, se_upper)
    if sigma <= 0 or not np.isfinite(sigma):
        return lower, upper
    f = lambda c: stats.norm.cdf(c + width / sigma) - stats.norm.cdf(-c) - level  # noqa: E731
    c = optimize.brentq(f, 0.0, 10.0)
    return lower - c * se_lower, upper + c * se_upper


def _trimmed_means(y_sorted: np.ndarray, counts: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means of the lowest and of the highest ``keep`` (fractional) units, per row of ``counts``.

    ``y_sorted`` ascending (m,); ``counts`` (B, m) multiplicities; ``keep`` (B,) mass to retain.
    Units at the cut count fractionally, so the trimmed share is exact even with ties.
    """
    cum = np.cumsum(counts, axis=1)
    before = cum - counts
    w_low = np.clip(keep[:, None] - before, 0, None)
    w_low = np.minimum(w_low, counts)
    total = cum[:, -1:]
    after = total - cum  # mass strictly above unit i
    w_high = np.minimum(np.clip(keep[:, None] - after, 0, None), counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w_low @ y_sorted) / keep, (w_high @ y_sorted) / keep


def lee_bounds(
    df: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    observed: str,
    n_bootstrap: int = 1_000,
    seed: int | None = None,
    level: float = 0.95,
    received: str | None = None,
) -> RCTResult:
    """Lee (2009) bounds on the effect among units observed whatever their assignment.

    Parameters
    ----------
    outcome : str
        Outcome column (may be missing where ``observed`` is 0).
    treatment : str
        Random assignment, 0/1.
    observed : str
        Response indicator, 0/1 (1 = outcome observed at follow-up).
    n_bootstrap : int
        Bootstrap resamples (within arms) for the standard errors of the two bounds.
    seed : int, optional
        Bootstrap seed (recorded; drawn at random when None).
    received : str, optional
        Treatment received, for the CONSORT flow in ``diagnostics``.

    Returns
    -------
    RCTResult
        Effects ``lower bound``, ``upper bound`` (with bootstrap SEs and their own intervals) and the
        headline ``bounds (Imbens-Manski)``: estimate = midpoint, interval = the Imbens-Manski
        confidence interval for the effect. ``diagnostics`` holds response rates by arm, the trimming
        share and which arm was trimmed.

    Notes
    -----
    Assume assignment :math:`Z` is random and monotonicity: assignment changes response in one
    direction only. If :math:`q_1 = P(S=1|Z=1) > q_0 = P(S=1|Z=0)`, the treated responders include
    a share :math:`p = (q_1 - q_0)/q_1` of units who respond only because treated. Trimming that
    share from the top (bottom) of the treated responders' outcomes gives the lower (upper) bound on
    :math:`E[Y(1) - Y(0) | \\text{always-responder}]`:
    :math:`\\Delta^{LB} = E[Y|Z=1,S=1,Y \\le y_{1-p}] - E[Y|Z=0,S=1]` and symmetrically; the control
    arm is trimmed when :math:`q_0 > q_1`. Standard errors are from a stratified bootstrap
    (resampling within arms, the trimming share re-estimated in each resample), vectorised over
    resamples; the interval for the effect is Imbens & Manski's (2004).

    References
    ----------
    Lee, D. S. (2009). Training, wages, and sample selection: estimating sharp bounds on treatment
    effects. *Review of Economic Studies* 76(3), 1071-1102. doi:10.1111/j.1467-937X.2009.00536.x.
    Imbens, G. W. and Manski, C. F. (2004). Confidence intervals for partially identified
    parameters. *Econometrica* 72(6), 1845-1857. doi:10.1111/j.1468-0262.2004.00555.x.

    Examples
    --------
    >>> import impact as im
    >>> firms = im.datasets.load("sweden_firms")
    >>> b = im.rct.lee_bounds(firms, outcome="turnover_growth", treatment="assigned", observed="responded", seed=1)
    """
    where = "lee_bounds"
    check_column_argument("outcome", outcome, where)
    df = with_unique_index(df)
    level = check_level(level, where)
    seed = check_seed(seed, where)
    n_bootstrap = check_integer("n_bootstrap", n_bootstrap, where)
    if seed is None:
        seed = secrets.randbits(32)
    if n_bootstrap < 50:
        raise SpecError(f"{where}: n_bootstrap must be at least 50, got {n_bootstrap}.")
    with recording_warnings() as log:
        prepared = prepare(df, where=where, roles={"treatment": treatment, "observed": observed},
                           numeric=[treatment, observed])
        frame = prepared.frame
        z = check_binary(frame, treatment, where).astype(bool)
        s = check_binary(frame, observed, where).astype(bool)
        check_arms(z.astype(float), where)
        if outcome not in df.columns:
            prepare(df, where=where, roles={"outcome": outcome})  # raises the standard missing-column error
        y_all = pd.to_numeric(df.loc[frame.index, outcome], errors="coerce").to_numpy(dtype=float)
        # +-inf is bad input like a missing value: such units are counted as not observed
        missing_when_observed = s & ~np.isfinite(y_all)
        if missing_when_observed.any():
            n_inf = int((s & np.isinf(y_all)).sum())
            warn(SampleWarning, f"{where}: {int(missing_when_observed.sum())} unit(s) marked observed have a missing "
                 f"or infinite {outcome!r} ({n_inf} infinite; first rows: "
                 f"{', '.join(map(str, frame.index[missing_when_observed][:5]))}); they are counted as not observed.")
            s = s & np.isfinite(y_all)
        observed_y = pd.DataFrame({outcome: y_all[s]}, index=frame.index[s])
        prepare(observed_y, where=where, roles={"outcome": outcome}, numeric=[outcome])  # constant or too large
        q1, q0 = s[z].mean(), s[~z].mean()
        if min(s[z].sum(), s[~z].sum()) < 2:
            raise EstimationError(f"{where}: fewer than two observed outcomes in an arm; bounds cannot be estimated.")
        trim_treated = q1 >= q0
        rng = np.random.default_rng(seed)

        def arm_arrays(mask: np.ndarray) -> tuple[np.ndarray, int]:
            yy = np.sort(y_all[mask & s])
            return yy, int(mask.sum())

        y_t, n_t = arm_arrays(z)
        y_c, n_c = arm_arrays(~z)

        def bounds(counts_t: np.ndarray, counts_c: np.ndarray, resp_t: np.ndarray, resp_c: np.ndarray):
            """Bounds for rows of response counts; resp_* = responders' share in each arm."""
            if trim_treated:
                p = np.clip((resp_t - resp_c) / resp_t, 0, 1)
                keep = (1 - p) * counts_t.sum(axis=1)
                low_mean, high_mean = _trimmed_means(y_t, counts_t, keep)
                other = (counts_c @ y_c) / counts_c.sum(axis=1)
                return low_mean - other, high_mean - other, p
            p = np.clip((resp_c - resp_t) / resp_c, 0, 1)
            keep = (1 - p) * counts_c.sum(axis=1)
            low_mean, high_mean = _trimmed_means(y_c, counts_c, keep)
            other = (counts_t @ y_t) / counts_t.sum(axis=1)
            return other - high_mean, other - low_mean, p

        lb, ub, p_hat = bounds(np.ones((1, y_t.size)), np.ones((1, y_c.size)), np.array([q1]), np.array([q0]))
        lb, ub, p_hat = float(lb[0]), float(ub[0]), float(p_hat[0])
        # bootstrap within arms: responders' counts are multinomial given the resampled number of responders
        draws_lb = np.empty(n_bootstrap)
        draws_ub = np.empty(n_bootstrap)
        chunk = max(1, int(5e6 // max(1, y_t.size + y_c.size)))
        for start in range(0, n_bootstrap, chunk):
            size = min(chunk, n_bootstrap - start)
            r_t = rng.binomial(n_t, q1, size=size)
            r_c = rng.binomial(n_c, q0, size=size)
            r_t, r_c = np.maximum(r_t, 1), np.maximum(r_c, 1)
            c_t = _multinomial_rows(rng, r_t, y_t.size)
            c_c = _multinomial_rows(rng, r_c, y_c.size)
            l, u, _ = bounds(c_t.astype(float), c_c.astype(float), r_t / n_t, r_c / n_c)
            draws_lb[start : start + size] = l
            draws_ub[start : start + size] = u
        se_lb, se_ub = float(np.std(draws_lb, ddof=1)), float(np.std(draws_ub, ddof=1))
        im_low, im_high = imbens_manski_interval(lb, ub, se_lb, se_ub, level)
        table = effects_table(
            ["lower bound", "upper bound", "bounds (Imbens-Manski)"],
            [lb, ub, (lb + ub) / 2],
            [se_lb, se_ub, float("nan")],
            level=level,
            p_values=[float(2 * stats.norm.sf(abs(lb / se_lb))), float(2 * stats.norm.sf(abs(ub / se_ub))), float("nan")],
            conf_low=[lb - stats.norm.ppf(0.5 + level / 2) * se_lb, ub - stats.norm.ppf(0.5 + level / 2) * se_ub, im_low],
            conf_high=[lb + stats.norm.ppf(0.5 + level / 2) * se_lb, ub + stats.norm.ppf(0.5 + level / 2) * se_ub, im_high],
        )
        diagnostics = {
            "response_rate_treatment": float(q1),
            "response_rate_control": float(q0),
            "trimmed_arm": "treatment" if trim_treated else "control",
            "trimming_share": p_hat,
            "bounds": [lb, ub],
            "imbens_manski_interval": [im_low, im_high],
            "excludes_zero": bool(im_low > 0 or im_high < 0),
            "n_bootstrap": n_bootstrap,
            "consort": consort_flow(df, assignment=treatment, received=received, observed=observed, outcome=outcome,
                                    analysed=frame.index[s]),
        }
        flow = prepared.flow + (FlowStep("observed at follow-up", int(s.sum()), None,
                                         f"{int((~s).sum())} not observed (attrition)"),)
    return RCTResult(
        design="lee_bounds", estimand="effect of assignment among always-observed units (bounded)", effects=table,
        headline="bounds (Imbens-Manski)",
        inference=f"Lee trimming bounds; bootstrap SEs ({n_bootstrap} resamples within arms, seed {seed}); "
                  "Imbens-Manski interval for the effect (the headline p-value is not defined)",
        n_obs=int(s.sum()), outcome=outcome, level=level, n_treated=int((z & s).sum()),
        settings={"treatment": treatment, "observed": observed, "n_bootstrap": n_bootstrap, "seed": seed,
                  "assumption": "Random assignment and monotone response: assignment makes no one drop out who would otherwise respond (or the reverse)."},
        warnings=tuple(log), sample_flow=flow, diagnostics=diagnostics,
    )


def _multinomial_rows(rng: np.random.Generator, totals: np.ndarray, m: int) -> np.ndarray:
    """(len(totals), m) counts: row r is multinomial(totals[r], uniform over m) (resampling with replacement)."""
    size = len(totals)
    biggest = int(totals.max())
    picks = rng.integers(0, m, size=(size, biggest))
    valid = np.arange(biggest)[None, :] < totals[:, None]
    rows = np.broadcast_to(np.arange(size)[:, None], picks.shape)
    out = np.zeros((size, m), np.int64)
    np.add.at(out, (rows[valid], picks[valid]), 1)
    return out


def attrition_test(
    df: pd.DataFrame,
    *,
    treatment: str,
    observed: str,
    covariates: Sequence[str] | None = None,
    blocks: str | None = None,
    level: float = 0.95,
) -> RCTResult:
    """Is attrition differential by arm (and, with covariates, differential in who drops out)?

    Returns
    -------
    RCTResult
        Headline ``response rate difference`` (treatment minus control, HC2 standard error, blocks
        as fixed effects when given). With covariates, ``diagnostics["selective_attrition"]`` holds the
        joint HC2 Wald test that the covariates predict response differently by arm (the
        treatment x covariate interactions in a regression of response on treatment, covariates and
        their interactions), and ``diagnostics["balance_among_observed"]`` the covariate balance in
        the analysed sample.

    Notes
    -----
    Differential attrition :math:`P(S=1|Z=1) - P(S=1|Z=0)`. A difference, or a selective pattern,
    threatens the comparability of the analysed arms: report :func:`lee_bounds` alongside.

    References
    ----------
    Ghanem, D., Hirshleifer, S. and Ortiz-Becerra, K. (2023). Testing attrition bias in field
    experiments. *Journal of Human Resources*. doi:10.3368/jhr.0920-11190R2.
    What Works Clearinghouse (2022). *Procedures and Standards Handbook*, v5.0 (attrition boundaries).
    """
    where = "attrition_test"
    level = check_level(level, where)
    covs = as_list(covariates)
    with recording_warnings() as log:
        prepared = prepare(df, where=where, roles={"treatment": treatment, "observed": observed, "covariates": covs,
                                                   "blocks": blocks}, numeric=[treatment, observed, *covs])
        frame = prepared.frame
        z = check_binary(frame, treatment, where).astype(float)
        s = check_binary(frame, observed, where).astype(float)
        check_arms(z, where)
        n = len(z)
        fe = (pd.get_dummies(frame[blocks], drop_first=True, dtype=float).to_numpy() if blocks else np.empty((n, 0)))
        X = np.column_stack([np.ones(n), z, fe])
        beta, resid = ols(X, s)
        cov = linear_vcov(X, resid, kind="HC2", where=where)
        table = effects_table(["response rate difference"], [beta[1]], [cov.std_errors[1]], df=cov.df[1], level=level)
        overall = 1 - s.mean()
        diff_rate = abs((1 - s[z == 1].mean()) - (1 - s[z == 0].mean()))
        diagnostics: dict = {
            "attrition_treatment": float(1 - s[z == 1].mean()),
            "attrition_control": float(1 - s[z == 0].mean()),
            "attrition_overall": float(overall),
            "differential_attrition": float(diff_rate),
        }
        if covs:
            Xc = frame[covs].to_numpy(dtype=float)
            Xc = Xc - Xc.mean(axis=0)
            Xi = np.column_stack([np.ones(n), z, fe, Xc, Xc * z[:, None]])
            names = ["(Intercept)", treatment] + [f"block{j}" for j in range(fe.shape[1])] + covs + [f"{treatment}:{c}" for c in covs]
            check_rank(Xi, names, where)
            bi, ri = ols(Xi, s)
            ci = linear_vcov(Xi, ri, kind="HC2", where=where)
            k = len(covs)
            idx = np.arange(Xi.shape[1] - k, Xi.shape[1])
            test = wald_test(bi[idx], ci.matrix[np.ix_(idx, idx)], df_denom=float(ci.df[0]))
            diagnostics["selective_attrition"] = {"hypothesis": "covariates predict response equally in both arms", **test}
            from impact.rct.balance import balance_rows

            kept = frame.loc[s == 1]
            diagnostics["balance_among_observed"] = balance_rows(kept, z[s == 1], covs, where=where)
    return RCTResult(
        design="attrition_test", estimand="difference in response rates", effects=table,
        headline="response rate difference", inference=cov.description, n_obs=n, outcome=observed, level=level,
        n_treated=int(z.sum()),
        settings={"treatment": treatment, "observed": observed, "covariates": covs, "blocks": blocks},
        warnings=tuple(log), sample_flow=prepared.flow, diagnostics=diagnostics,
        balance=diagnostics.get("balance_among_observed"),
    )
