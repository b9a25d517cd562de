"""Imputation estimator (Borusyak, Jaravel & Spiess 2024) and Gardner's two-stage DiD (did2s).

Both fit unit and period effects (and covariates) on the untreated observations, impute Y(0) for
the treated observations and average the differences; they give the same point estimates and differ
in their standard errors: BJS's conservative cluster-robust variance (Theorem 3, optionally with
leave-one-unit-out cell means) or Gardner's GMM sandwich that accounts for the first stage.

The first stage never forms unit dummies: unit effects are eliminated by weighted within-unit
demeaning, and the linear systems that give the implicit weights of the untreated observations are
solved by the Schur complement on the (period dummies, covariates) block, whose size is the number
of periods plus covariates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from impact.data import check_level  # shared option validation
from impact.data import MissingPolicy, check_option, check_rank, cluster_codes
from impact.did._staggered import StaggeredPanel, integer_event_time, staggered_panel
from impact.did.event_study import EventStudyResult
from impact.errors import (
    DataError,
    EstimationError,
    SampleWarning,
    SpecError,
    recording_warnings,
    warn,
)
from impact.inference.absorb import FixedEffects, absorb
from impact.results import effects_table

__all__ = ["did2s", "imputation"]

HEADLINE = "ATT"


@dataclass(frozen=True)
class _FirstStage:
    """The untreated-observation fit and what is needed to project targets onto it."""

    keep: np.ndarray  # observations in the estimation sample
    untreated: np.ndarray  # within keep: untreated observations (first stage)
    unit: np.ndarray  # unit codes within keep (dense 0..N-1)
    n_units: int
    W: np.ndarray  # period dummies (identified periods, first dropped) and covariates, within keep
    omega: np.ndarray  # analytic weights within keep (ones if none)
    S_inv: np.ndarray  # inverse of the within-unit cross-product of W on untreated observations
    du: np.ndarray  # per-unit sum of weights on untreated observations
    resid0: np.ndarray  # first-stage residuals (untreated), zero elsewhere
    tau: np.ndarray  # y - imputed Y(0) on treated observations, zero elsewhere

    def project(self, target: np.ndarray) -> np.ndarray:
        """h = Omega_0 Z_0 (Z_0' Omega_0 Z_0)^-1 Z' target, on every kept observation (zero off the
        untreated set): the implicit weight of each untreated observation in ``target``'s estimator."""
        u0 = self.untreated
        c_u = np.column_stack([np.bincount(self.unit, weights=target[:, j], minlength=self.n_units)
                               for j in range(target.shape[1])])
        c_b = self.W.T @ target
        ratio = c_u / self.du[:, None]
        b = self.S_inv @ (c_b - self.W[u0].T @ (self.omega[u0, None] * ratio[self.unit[u0]]))
        Wb = self.W[u0] @ b
        Bb = np.column_stack([np.bincount(self.unit[u0], weights=self.omega[u0] * Wb[:, j], minlength=self.n_units)
                              for j in range(target.shape[1])])
        a = (c_u - Bb) / self.du[:, None]
        h = np.zeros_like(target, dtype=float)
        h[u0] = self.omega[u0, None] * (a[self.unit[u0]] + Wb)
        return h


def _first_stage(panel: StaggeredPanel, where: str, unit_name: str):
    """Fit Y(0) on untreated observations; drop what cannot be imputed (with a sample-flow step)."""
    prepared = panel.prepared
    n = len(panel.y)
    treated = panel.treated_now
    keep = np.ones(n, dtype=bool)
    first_units = np.isin(panel.unit_codes, np.unique(panel.unit_codes[(panel.cohort > 0) & (panel.cohort <= panel.periods[0])]))
    if first_units.any():
        keep &= ~first_units
        note = (f"dropped {len(panel.treated_first_period)} unit(s) treated from the first period: without an untreated "
                "period their unit effect, and so Y(0), cannot be imputed")
        warn(SampleWarning, f"{where}: {note}.")
        prepared = prepared.with_step(panel.frame.loc[keep], "always-treated units", note, unit_name)
    untreated_periods = np.unique(panel.time_codes[keep & ~treated])
    no_control = keep & treated & ~np.isin(panel.time_codes, untreated_periods)
    if no_control.any():
        bad = sorted({float(v) for v in panel.time_values[no_control]})
        note = (f"dropped {int(no_control.sum())} treated observation(s) in period(s) {', '.join(f'{v:g}' for v in bad[:5])} "
                "where every unit is treated: their period effect, and so Y(0), cannot be imputed")
        warn(SampleWarning, f"{where}: {note}.")
        keep &= ~no_control
        prepared = prepared.with_step(panel.frame.loc[keep], "periods without untreated units", note, unit_name)
    if not (keep & treated).any():
        raise DataError(f"{where}: no treated observation can be imputed (see the sample flow).")
    if not (keep & ~treated).any():
        raise DataError(f"{where}: there are no untreated observations to fit Y(0) on.")
    unit = pd.factorize(panel.unit_codes[keep])[0]
    n_units = int(unit.max()) + 1
    tc = panel.time_codes[keep]
    periods_used = untreated_periods[1:]  # first identified period is the base
    dummies = (tc[:, None] == periods_used[None, :]).astype(float)
    W = np.column_stack([dummies, panel.covariates[keep]])
    names = [f"period {panel.periods[p]:g}" for p in periods_used] + list(panel.covariate_names)
    omega = np.ones(int(keep.sum())) if panel.weights is None else panel.weights[keep]
    u0 = ~treated[keep]
    y = panel.y[keep]
    fe = FixedEffects.from_columns(pd.DataFrame({"u": unit[u0]}), ["u"])
    demeaned = absorb(np.column_stack([y[u0], W[u0]]), fe, weights=omega[u0])
    y_t, W_t = demeaned[:, 0], demeaned[:, 1:]
    if W.shape[1]:
        check_rank(W_t * np.sqrt(omega[u0])[:, None], names, where, context=" in the untreated observations after removing unit effects")
        S = (W_t * omega[u0, None]).T @ W_t
        S_inv = np.linalg.inv(S)
        b = S_inv @ ((W_t * omega[u0, None]).T @ y_t)
    else:
        S_inv = np.zeros((0, 0))
        b = np.zeros(0)
    du = np.bincount(unit[u0], weights=omega[u0], minlength=n_units)
    alpha = np.bincount(unit[u0], weights=omega[u0] * (y[u0] - W[u0] @ b), minlength=n_units) / du
    y0_hat = alpha[unit] + W @ b
    resid0 = np.where(u0, y - y0_hat, 0.0)
    tau = np.where(~u0, y - y0_hat, 0.0)
    stage = _FirstStage(keep, u0, unit, n_units, W, omega, S_inv, du, resid0, tau)
    return stage, prepared


def _targets(panel: StaggeredPanel, stage: _FirstStage, e: np.ndarray, horizons, where: str):
    """Target weights (n_kept x q) of the event-time rows and the overall ATT."""
    treated = ~stage.untreated
    ek = e[stage.keep]
    observed = sorted({int(v) for v in ek[treated]})
    if horizons is None:
        chosen = observed
    else:
        chosen = sorted({int(h) for h in horizons})
        missing = [h for h in chosen if h not in observed]
        if any(h < 0 for h in chosen):
            raise SpecError(f"{where}: horizons must be non-negative event times, got {chosen}.")
        if missing:
            raise SpecError(f"{where}: horizons {missing} have no treated observations; observed: {observed}.")
    cols = []
    for h in chosen:
        m = treated & (ek == h)
        cols.append(np.where(m, stage.omega, 0.0) / stage.omega[m].sum())
    cols.append(np.where(treated, stage.omega, 0.0) / stage.omega[treated].sum())
    return chosen, np.column_stack(cols)


def _cell_codes(panel: StaggeredPanel, stage: _FirstStage, e: np.ndarray) -> np.ndarray:
    """Cohort x event-time cell of each kept treated observation (-1 elsewhere)."""
    treated = ~stage.untreated
    g = panel.cohort[stage.keep]
    ek = e[stage.keep]
    codes = np.full(len(g), -1)
    codes[treated] = pd.factorize(pd.MultiIndex.from_arrays([g[treated], ek[treated]]))[0]
    return codes


def _run(df, *, where, outcome, unit, time, cohort, covariates, horizons, cluster, weights, level, missing):
    check_level(level, where)
    panel = staggered_panel(df, where=where, outcome=outcome, unit=unit, time=time, cohort=cohort,
                            covariates=covariates, cluster=cluster, weights=weights, missing=missing)
    e = integer_event_time(panel, where)
    stage, prepared = _first_stage(panel, where, unit)
    chosen, targets = _targets(panel, stage, e, horizons, where)
    estimates = targets.T @ stage.tau
    clusters, G = cluster_codes(panel.cluster_values[stage.keep], where=where,
                                treated=(panel.cohort[stage.keep] > 0), name=cluster or unit)
    return panel, e, stage, prepared, chosen, targets, estimates, clusters, G


PRETREND_VCOV = ("cluster", "CR2")


def _leads_fit(panel: StaggeredPanel, stage: _FirstStage, e: np.ndarray, leads: int, cluster_name: str, where: str,
               vcov: str = "cluster"):
    """The BJS Test 1 regression: (fit, chosen leads, its observations, leads requested) or a note (str).

    ``vcov="CR2"`` keeps the period effects (not nested within clusters) as columns of ``fit.X`` for the
    HTZ test; the default absorbs both sets of effects."""
    from impact.did._staggered import fe_regression

    keep_idx = np.flatnonzero(stage.keep)[stage.untreated]
    ek = e[keep_idx]
    available = sorted({int(v) for v in ek[np.isfinite(ek)]})
    chosen = [k for k in range(-leads, 0) if k in available]
    if not chosen:
        return "no pre-treatment observations of treated units to test"
    requested = len(chosen)
    fit = None
    while chosen and fit is None:
        D = np.column_stack([(ek == k).astype(float) for k in chosen])
        X = np.column_stack([D, panel.covariates[keep_idx]])
        names = [f"e={k}" for k in chosen] + list(panel.covariate_names)
        try:
            fit = fe_regression(
                panel.y[keep_idx], X, names, unit_codes=panel.unit_codes[keep_idx],
                time_codes=panel.time_codes[keep_idx], n_periods=len(panel.periods),
                weights=None if panel.weights is None else panel.weights[keep_idx],
                cluster_values=panel.cluster_values[keep_idx], cluster_name=cluster_name, vcov=vcov,
                treated=panel.cohort[keep_idx] > 0, where=where, cluster_warnings=False,
            )
        except EstimationError:
            # every untreated period of some cohort is a lead: drop the most distant lead and retry
            chosen = chosen[1:]
    if fit is None:
        return ("not computed: the lead indicators are collinear with the unit effects (no untreated "
                "period of treated units is left as reference)")
    return fit, chosen, keep_idx, requested


def _pretrend_leads(panel: StaggeredPanel, stage: _FirstStage, e: np.ndarray, leads: int, cluster_name: str,
                    where: str, vcov: str = "cluster") -> dict:
    """BJS (2024, Test 1): on untreated observations, regress Y on unit and period effects (and covariates)
    plus indicators of the last ``leads`` pre-treatment periods; Wald test that they are jointly zero:
    F(q, G - 1) with CR1 (``vcov="cluster"``), or the CR2 Wald test with the HTZ reference distribution of
    Pustejovsky & Tipton (2018) (``vcov="CR2"``), which keeps its size with few (treated) clusters."""
    from impact.did.pretrends import htz_entries, pretrend_wald
    from impact.inference.htz import cr2_wald_test

    fitted = _leads_fit(panel, stage, e, leads, cluster_name, where, vcov)
    if isinstance(fitted, str):
        return {"note": fitted}
    fit, chosen, keep_idx, requested = fitted
    k = len(chosen)
    if vcov == "CR2":
        test = {"event_times": list(chosen)}
        try:
            test.update(htz_entries(cr2_wald_test(
                fit.X, fit.resid, fit.design_coef, fit.clusters, np.eye(fit.X.shape[1])[:k],
                weights=None if panel.weights is None else panel.weights[keep_idx], names=fit.design_names,
                where=where)))
        except EstimationError as exc:
            test.update(statistic=None, chi2=None, df_num=float(k), df_denom=None, p_value=None,
                        note=f"not computable: {exc}")
        how = "CR2 with the HTZ test (Pustejovsky & Tipton 2018)"
    else:
        test = pretrend_wald(chosen, fit.coef[:k], fit.vcov[:k, :k], df_denom=float(fit.df[0]))
        how = "CR1"
    test["coefficients"] = [{"event_time": c, "estimate": float(b), "std_error": float(s)}
                            for c, b, s in zip(chosen, fit.coef[:k], np.sqrt(np.diag(fit.vcov)[:k]))]
    detail = test.get("method")  # the HTZ test's own description (degrees of freedom, clusters)
    test["method"] = ("BJS Test 1: lead indicators added to the untreated-observation regression, "
                      f"{how} by {cluster_name}; reference = untreated periods more than {k} before adoption and "
                      "never-treated units" + (f" ({requested} leads requested; the most distant were dropped to "
                                              "keep a reference period)" if k < requested else "")
                      + (f"; {detail}" if vcov == "CR2" and detail else ""))
    return test


def _result(*, design, panel, prepared, stage, chosen, estimates, V, dof, inference, level, outcome, unit,
            G, settings, log, extra_diagnostics):
    terms = [f"e={h}" for h in chosen] + [HEADLINE]
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    effects = effects_table(terms, estimates, se, df=dof, level=level,
                            event_time=[float(h) for h in chosen] + [math.nan],
                            reference=[False] * (len(chosen) + 1))
    frame = prepared.frame
    treated = ~stage.untreated
    diagnostics = {
        "treated_observations": int(treated.sum()),
        "untreated_observations": int(stage.untreated.sum()),
        "treated_in_first_period": len(panel.treated_first_period),
        **extra_diagnostics,
    }
    return EventStudyResult(
        design=design,
        estimand="ATT by event time (imputation)",
        effects=effects,
        headline=HEADLINE,
        inference=inference,
        n_obs=int(stage.keep.sum()),
        outcome=outcome,
        level=level,
        n_units=int(frame[unit].nunique()),
        n_treated=int(np.unique(stage.unit[treated]).size),
        n_clusters=G,
        settings={**settings, "assumption": "Parallel trends in untreated potential outcomes for all units and "
                  "periods (unit + period effects model for Y(0)) and no anticipation."},
        warnings=tuple(log),
        sample_flow=prepared.flow,
        diagnostics=diagnostics,
        vcov=V,
    )


def imputation(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: str | Sequence[str] | None = None,
    horizons: Sequence[int] | None = None,
    cluster: str | None = None,
    weights: str | None = None,
    leave_out: bool = True,
    pretrend_leads: int | None = 3,
    level: float = 0.95,
    missing: MissingPolicy = "drop",
    inference: Literal["auto", "randomization", "analytic"] = "auto",
    n_permutations: int = 9_999,
    seed: int | None = None,
    pretrend_vcov: Literal["cluster", "CR2"] | None = None,
) -> EventStudyResult:
    """Borusyak-Jaravel-Spiess imputation estimator of event-time and overall ATTs.

    Parameters
    ----------
    df : DataFrame
        Long panel; ``time`` consecutive integers.
    outcome, unit, time, cohort : str
        Column names; ``cohort`` = first treated period, 0 or missing if never treated.
    covariates : str or list of str, optional
        Time-varying controls in the model for Y(0).
    horizons : sequence of int, optional
        Event times to report (default: every observed post-treatment event time).
    cluster : str, optional
        Cluster column for the variance (default: the unit).
    weights : str, optional
        Analytic weights: used in the first stage and to weight treated observations in each average.
    leave_out : bool
        Use leave-one-cluster-out cohort x event-time means of the imputed effects in the conservative
        variance (BJS Appendix A.6; default); cells with a single cluster fall back to the full mean.
    pretrend_leads : int or None
        Number of pre-treatment periods in the BJS pre-trend test (Test 1, estimated on untreated
        observations only, so it does not affect the estimates); stored in
        ``diagnostics["pretrend_test"]``. None skips it.
    pretrend_vcov : {None, "cluster", "CR2"}
        Covariance of the pre-trend test's lead coefficients. None (default): the randomisation test over
        start years when ``inference`` picks randomisation inference, else ``"cluster"``. ``"cluster"``:
        CR1 with an F(q, G - 1) reference, which over-rejects with few (treated) clusters. ``"CR2"``: the
        CR2 Wald test with the HTZ reference distribution (Pustejovsky & Tipton 2018; equal to R
        ``clubSandwich::Wald_test(test = "HTZ")``), used whatever ``inference`` says about the effects.
        It is an analytic option, conservative with 3 or more treated clusters (size 0.000 with 3 and
        0.027 with 8 treated regions of 20, where CR1 rejects 0.58 and 0.09) but not valid with one
        treated cluster, whose leads it fits exactly (size 0.86-0.95; a FewTreatedClustersWarning says so):
        there only randomisation inference is valid (analyses/simulations/few_treated_options.csv).
    level : float
        Confidence level (normal critical values, as BJS).
    missing : {"drop", "error"}
        What to do with rows with missing values.

    Returns
    -------
    EventStudyResult
        Rows ``"e=0"``, ``"e=1"``, ... and the headline ``"ATT"`` (average over all imputed treated
        observations); ``vcov`` is the covariance of these rows.

    Notes
    -----
    Step 1 fits :math:`Y_{it} = \\alpha_i + \\lambda_t + X_{it}'\\gamma + \\varepsilon_{it}` on the untreated
    observations :math:`\\Omega_0`; step 2 imputes :math:`\\hat\\tau_{it} = Y_{it} - \\hat\\alpha_i - \\hat\\lambda_t -
    X_{it}'\\hat\\gamma` for treated :math:`(i,t) \\in \\Omega_1`; step 3 averages
    :math:`\\hat\\tau_w = \\sum_{\\Omega_1} w_{it} \\hat\\tau_{it}` (equal or analytic weights within the target).
    The estimator is linear, :math:`\\hat\\tau_w = \\sum_{it} v_{it} Y_{it}` with :math:`v = w` on :math:`\\Omega_1`
    and :math:`v_0 = -\\Omega_0 Z_0 (Z_0'\\Omega_0 Z_0)^{-1} Z_1' w_1` on :math:`\\Omega_0`. The conservative
    variance (Theorem 3) is :math:`\\sum_c (\\sum_{it \\in c} v_{it} \\tilde\\varepsilon_{it})^2` with
    :math:`\\tilde\\varepsilon` the first-stage residual on :math:`\\Omega_0` and :math:`\\hat\\tau_{it} - \\bar\\tau_{g,e}` on
    :math:`\\Omega_1`, where :math:`\\bar\\tau_{g,e} = \\sum v^2 \\hat\\tau / \\sum v^2` over the cohort x event-time cell
    (leaving out the observation's own cluster when ``leave_out``). Units treated in the first
    period and treated observations in periods without untreated units cannot be imputed and are
    dropped (recorded in the sample flow).

    References
    ----------
    Borusyak, K., Jaravel, X. & Spiess, J. (2024). Revisiting event-study designs: robust and efficient
    estimation. *Review of Economic Studies* 91(6), 3253-3285. https://doi.org/10.1093/restud/rdae007

    Examples
    --------
    >>> import impact as im
    >>> mpdta = im.datasets.load("mpdta")
    >>> res = im.did.imputation(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    >>> res.tidy()[["term", "estimate", "std_error"]]  # doctest: +SKIP
    """
    where = "imputation"
    check_option("leave_out", leave_out, (True, False))
    if pretrend_vcov is not None:
        check_option("pretrend_vcov", pretrend_vcov, PRETREND_VCOV)
        if pretrend_leads is None:
            raise SpecError(f"{where}: pretrend_vcov={pretrend_vcov!r} sets the pre-trend test, which "
                            "pretrend_leads=None skips; drop one of them.")
    if pretrend_leads is not None and (not isinstance(pretrend_leads, int | np.integer) or pretrend_leads < 1):
        raise SpecError(f"{where}: pretrend_leads must be a positive integer or None, got {pretrend_leads!r}.")
    with recording_warnings() as log:
        panel, e, stage, prepared, chosen, targets, estimates, clusters, G = _run(
            df, where=where, outcome=outcome, unit=unit, time=time, cohort=cohort, covariates=covariates,
            horizons=horizons, cluster=cluster, weights=weights, level=level, missing=missing)
        treated = ~stage.untreated
        v = np.where(treated[:, None], targets, -stage.project(targets))
        cells = _cell_codes(panel, stage, e)
        n_cells = int(cells.max()) + 1
        scores = np.empty((G, targets.shape[1]))
        tr = np.flatnonzero(treated)
        for j in range(targets.shape[1]):
            v2 = v[tr, j] ** 2
            num = np.bincount(cells[tr], weights=v2 * stage.tau[tr], minlength=n_cells)
            den = np.bincount(cells[tr], weights=v2, minlength=n_cells)
            tau_bar = np.zeros(len(v))
            if leave_out:
                key = cells[tr] * G + clusters[tr]
                own_num = np.bincount(key, weights=v2 * stage.tau[tr], minlength=n_cells * G)[key]
                own_den = np.bincount(key, weights=v2, minlength=n_cells * G)[key]
                rest = den[cells[tr]] - own_den
                with np.errstate(invalid="ignore", divide="ignore"):
                    loo = (num[cells[tr]] - own_num) / rest
                full = np.divide(num, den, out=np.zeros(n_cells), where=den > 0)[cells[tr]]
                tau_bar[tr] = np.where(rest > 1e-14 * den[cells[tr]], loo, full)
            else:
                tau_bar[tr] = np.divide(num, den, out=np.zeros(n_cells), where=den > 0)[cells[tr]]
            eps = np.where(treated, stage.tau - tau_bar, stage.resid0)
            scores[:, j] = np.bincount(clusters, weights=v[:, j] * eps, minlength=G)
        V = scores.T @ scores
        res = _result(
            design="imputation", panel=panel, prepared=prepared, stage=stage, chosen=chosen, estimates=estimates,
            V=V, dof=math.inf,
            inference=(f"BJS (2024) conservative cluster-robust variance (Theorem 3), {G} clusters, "
                       f"{'leave-one-cluster-out ' if leave_out else ''}cohort x event-time means of the imputed effects; "
                       "normal critical values; ATT = average over all imputed treated observations"),
            level=level, outcome=outcome, unit=unit, G=G,
            settings={"horizons": chosen, "leave_out": leave_out, "cluster": cluster or unit,
                      "covariates": list(panel.covariate_names), "weights": weights,
                      **({"pretrend_vcov": pretrend_vcov} if pretrend_vcov is not None else {})},
            log=log, extra_diagnostics={
                "estimator_weights_check": float(abs(v[:, -1] @ panel.y[stage.keep] - estimates[-1])),
                **({"pretrend_test": _pretrend_leads(panel, stage, e, int(pretrend_leads), cluster or unit, where,
                                                     pretrend_vcov or "cluster")}
                   if pretrend_leads is not None else {}),
            },
        )
        # an explicit pretrend_vcov keeps its analytic pre-trend test; the effects may still be randomised
        res = _randomized(res, panel=panel, stage=stage, e=e, weights_obs=v.T, inference=inference,
                          pretrend_leads=pretrend_leads if pretrend_vcov is None else None, n_permutations=n_permutations, seed=seed, level=level,
                          where=where, cluster=cluster, unit=unit)
    return res.replace(warnings=tuple(log))


def _randomized(res, *, panel, stage, e, weights_obs, inference, pretrend_leads, n_permutations, seed, level, where,
                cluster, unit):
    """The result with randomisation inference over start years (``inference="auto"`` with few treated units):
    the imputation estimator is the linear map ``weights_obs @ y``, constant within cohort-period in a
    balanced panel without covariates or weights (:func:`impact.did._randomization.event_time_randomization`)."""
    from impact.did._randomization import event_time_randomization

    check_option("inference", inference, ("auto", "randomization", "analytic"))
    if inference == "analytic":
        return res
    obs = np.flatnonzero(stage.keep)
    treated = ~stage.untreated
    leads = None
    if pretrend_leads is not None:
        fitted = _leads_fit(panel, stage, e, int(pretrend_leads), cluster or unit, where)
        if not isinstance(fitted, str):
            fit, chosen, keep_idx, _ = fitted
            X = fit.X
            W2 = np.linalg.solve(X.T @ X, X.T)[: len(chosen)]
            effect_obs = np.where(treated, stage.tau, 0.0)
            leads = (W2, keep_idx, chosen, effect_obs)
    ri = event_time_randomization(
        res.effects, res.vcov, L=None, fit=None, panel=panel, obs=obs, obs_event_time=np.where(treated, e[obs], np.nan),
        inference=inference, reason=None, n_permutations=n_permutations, seed=seed, level=level, where=where,
        cluster_name=cluster or unit, unit_name=unit, W=weights_obs, pretrend=leads)
    if ri is None:
        return res
    effects, V, test, text = ri
    diagnostics = dict(res.diagnostics)
    if test is not None:
        diagnostics["pretrend_test"] = {**test, "method": test["method"] + " (BJS Test 1 leads on untreated observations)"}
    return res.replace(effects=effects, vcov=V, diagnostics=diagnostics, settings={**res.settings, "inference": "randomization"},
                      inference=f"{text}; vcov: analytic correlations scaled to the randomisation standard errors")


def did2s(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: str | Sequence[str] | None = None,
    horizons: Sequence[int] | None = None,
    cluster: str | None = None,
    weights: str | None = None,
    level: float = 0.95,
    missing: MissingPolicy = "drop",
    inference: Literal["auto", "randomization", "analytic"] = "auto",
    n_permutations: int = 9_999,
    seed: int | None = None,
) -> EventStudyResult:
    """Gardner's two-stage DiD: same point estimates as :func:`imputation`, GMM standard errors.

    Parameters are as in :func:`imputation`.

    Notes
    -----
    Stage 1 fits unit and period effects (and covariates) on untreated observations; stage 2 regresses
    the adjusted outcome :math:`\\tilde Y = Y - \\hat\\alpha_i - \\hat\\lambda_t - X'\\hat\\gamma` on event-time
    indicators (and, separately, on the treatment indicator for the overall ATT) over all observations.
    The cluster-robust GMM variance of the two-step estimator (Butts & Gardner 2022) is
    :math:`(X_2'\\Omega X_2)^{-1} \\sum_c \\psi_c \\psi_c' (X_2'\\Omega X_2)^{-1}` with
    :math:`\\psi_c = X_{2c}'\\Omega_c \\hat e_{2c} - X_2'\\Omega Z (Z_0'\\Omega_0 Z_0)^{-1} Z_{0c}'\\Omega_{0c} \\hat e_{1c}`,
    without small-sample correction (as the R ``did2s`` package), referred to the normal.

    References
    ----------
    Gardner, J. (2022). Two-stage differences in differences. arXiv:2207.05943.
    https://doi.org/10.48550/arXiv.2207.05943

    Butts, K. & Gardner, J. (2022). did2s: two-stage difference-in-differences. *The R Journal* 14(3),
    162-173. https://doi.org/10.32614/RJ-2022-048

    Examples
    --------
    >>> import impact as im
    >>> mpdta = im.datasets.load("mpdta")
    >>> res = im.did.did2s(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    >>> res.tidy()[["term", "estimate", "std_error"]]  # doctest: +SKIP
    """
    where = "did2s"
    with recording_warnings() as log:
        panel, _e, stage, prepared, chosen, targets, estimates, clusters, G = _run(
            df, where=where, outcome=outcome, unit=unit, time=time, cohort=cohort, covariates=covariates,
            horizons=horizons, cluster=cluster, weights=weights, level=level, missing=missing)
        X2 = (targets > 0).astype(float)  # second-stage regressors: event-time dummies, then D
        WX2 = stage.omega[:, None] * X2
        h = stage.project(WX2)  # Omega_0 Z_0 (Z_0'Omega_0 Z_0)^-1 Z' Omega X2 on untreated rows
        resid2 = stage.tau[:, None] - X2 * estimates[None, :]  # stage-2 residuals where X2 = 1 (tau = y~ there)
        psi = np.empty((G, X2.shape[1]))
        for j in range(X2.shape[1]):
            psi[:, j] = (np.bincount(clusters, weights=WX2[:, j] * resid2[:, j], minlength=G)
                         - np.bincount(clusters, weights=h[:, j] * stage.resid0, minlength=G))
        bread = 1.0 / WX2.sum(axis=0)
        V = (psi * bread).T @ (psi * bread)
        res = _result(
            design="did2s", panel=panel, prepared=prepared, stage=stage, chosen=chosen, estimates=estimates,
            V=V, dof=math.inf,
            inference=(f"two-stage GMM cluster-robust variance (Butts & Gardner 2022), {G} clusters, normal critical "
                       "values; ATT = second-stage coefficient on the treatment indicator"),
            level=level, outcome=outcome, unit=unit, G=G,
            settings={"horizons": chosen, "cluster": cluster or unit, "covariates": list(panel.covariate_names),
                      "weights": weights},
            log=log, extra_diagnostics={},
        )
        # the same point estimates as imputation: the same linear map of y, so the same randomisation
        v = np.where((~stage.untreated)[:, None], targets, -stage.project(targets))
        res = _randomized(res, panel=panel, stage=stage, e=_e, weights_obs=v.T, inference=inference,
                          pretrend_leads=None, n_permutations=n_permutations, seed=seed, level=level,
                          where=where, cluster=cluster, unit=unit)
    return res.replace(warnings=tuple(log))
