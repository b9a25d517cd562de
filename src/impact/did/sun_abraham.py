"""Sun & Abraham (2021) interaction-weighted event-study estimator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from impact.data import check_integer, check_level  # shared option validation
from impact.data import MissingPolicy, check_option
from impact.did._staggered import (
    REGRESSION_VCOV,
    fe_regression,
    integer_event_time,
    staggered_panel,
)
from impact.did.event_study import EventStudyResult, _assemble, _linear_fit, _rows_matrix
from impact.did.pretrends import pretrend_test
from impact.errors import DataError, SampleWarning, SpecError, recording_warnings, warn
from impact.inference.vcov import SmallSampleCorrection

__all__ = ["sun_abraham"]

ControlCohort = Literal["never", "last"]
HEADLINE = "ATT"


def sun_abraham(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    covariates: str | Sequence[str] | None = None,
    control: ControlCohort = "never",
    reference: int = -1,
    leads: int | None = None,
    lags: int | None = None,
    cluster: str | None = None,
    weights: str | None = None,
    vcov: Literal["iid", "HC1", "cluster", "CR1", "CR1-fixest", "CR2"] | None = None,
    ssc: SmallSampleCorrection | None = None,
    level: float = 0.95,
    missing: MissingPolicy = "drop",
    inference: Literal["auto", "randomization", "analytic"] = "auto",
    n_permutations: int = 9_999,
    seed: int | None = None,
) -> EventStudyResult:
    """Interaction-weighted event-study estimator robust to heterogeneous effects across cohorts.

    Parameters
    ----------
    df : DataFrame
        Long panel, one row per unit and period; ``time`` consecutive integers.
    outcome, unit, time, cohort : str
        Column names; ``cohort`` is the first treated period, 0 or missing for never-treated units.
    covariates : str or list of str, optional
        Time-varying controls entered linearly (common slopes).
    control : {"never", "last"}
        Control cohort: never-treated units (default), or the last-treated cohort, in which case the
        periods from its adoption onwards and any never-treated units are dropped (recorded in the
        sample flow).
    reference : int
        Event time omitted for every cohort (default -1).
    leads, lags : int, optional
        Report event times ``-leads .. lags`` only (the regression stays fully saturated).
    inference, n_permutations, seed
        As in :func:`impact.did.event_study`: randomisation inference over start years by default with
        few treated units (never-treated control, balanced panel, no covariates or weights).
    cluster, weights, vcov, ssc, level, missing
        As in :func:`impact.did.event_study`, except that ``vcov="wild"`` is not offered (the
        interaction-weighted effects are combinations of many cohort coefficients; use CR2 with few
        clusters).

    Returns
    -------
    EventStudyResult
        Rows ``"e=k"`` (interaction-weighted effects, ``event_time`` column) and the headline ``"ATT"``:
        the average of the cohort-by-period effects over all treated observations (weights = number of
        observations in each post-treatment cohort x event-time cell, as fixest's ``aggregate(, "att")``).
        ``diagnostics["cohort_effects"]`` lists every cohort-specific effect with its weight.

    Notes
    -----
    The saturated regression (unit and period effects absorbed)

    .. math:: Y_{it} = \\alpha_i + \\lambda_t + \\sum_{g \\notin C} \\sum_{e \\ne -1} \\delta_{g,e}
              1\\{G_i = g\\} 1\\{t - g = e\\} + u_{it}

    estimates cohort-specific effects :math:`CATT_{g,e}` under parallel trends and no anticipation.
    The interaction-weighted estimator is :math:`\\hat\\nu_e = \\sum_g \\hat w_{g,e} \\hat\\delta_{g,e}` with
    :math:`\\hat w_{g,e}` the share of cohort :math:`g` among the treated observations at event time
    :math:`e`. Standard errors use the delta method on the covariance of :math:`\\hat\\delta` treating the
    shares as fixed (as fixest ``sunab``), i.e. :math:`Var(\\hat\\nu_e) = w_e' \\hat V_\\delta w_e`.

    References
    ----------
    Sun, L. & Abraham, S. (2021). Estimating dynamic treatment effects in event studies with
    heterogeneous treatment effects. *Journal of Econometrics* 225(2), 175-199.
    https://doi.org/10.1016/j.jeconom.2020.09.006

    Examples
    --------
    >>> import impact as im
    >>> mpdta = im.datasets.load("mpdta")
    >>> res = im.did.sun_abraham(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    >>> round(res.estimate, 4)  # doctest: +SKIP
    -0.04
    """
    where = "sun_abraham"
    level = check_level(level, where)
    leads = check_integer("leads", leads, where, minimum=0, allow_none=True)
    lags = check_integer("lags", lags, where, minimum=0, allow_none=True)
    check_option("control", control, ("never", "last"))
    check_option("inference", inference, ("auto", "randomization", "analytic"))
    if vcov is not None and inference == "randomization":
        raise SpecError(f"{where}: vcov={vcov!r} and inference='randomization' ask for two methods; drop vcov.")
    wants_ri = vcov is None and inference != "analytic"
    vcov = "cluster" if vcov is None else vcov
    check_option("vcov", vcov, REGRESSION_VCOV)
    if not isinstance(reference, int | np.integer) or reference >= 0:
        raise SpecError(f"{where}: reference must be a negative integer event time, got {reference!r}.")
    reference = int(reference)
    with recording_warnings() as log:
        panel = staggered_panel(
            df, where=where, outcome=outcome, unit=unit, time=time, cohort=cohort,
            covariates=covariates, cluster=cluster, weights=weights, missing=missing,
        )
        e = integer_event_time(panel, where)
        prepared = panel.prepared
        g = panel.cohort
        keep = np.ones(len(g), dtype=bool)
        if panel.treated_first_period:
            first = (g > 0) & (g <= panel.periods[0])
            keep &= ~first
            note = (f"dropped {len(panel.treated_first_period)} unit(s) treated from the first period: they have no "
                    "pre-period, so their cohort effects are not identified")
            warn(SampleWarning, f"{where}: {note}.")
            prepared = prepared.with_step(panel.frame.loc[keep], "always-treated units", note, unit)
        if control == "never":
            if not (g[keep] == 0).any():
                raise DataError(
                    f"{where}: there are no never-treated units to serve as controls. Pass control='last' to "
                    "use the last-treated cohort as the control group (periods from its adoption are dropped)."
                )
            control_mask = g == 0
        else:
            last = float(g[keep & (g > 0)].max())
            cut = keep & ((g == 0) | (panel.time_values >= last))
            if cut.any():
                note = (f"control='last': cohort {last:g} is the control group; dropped its periods from {last:g} on "
                        "and any never-treated units")
                keep &= ~cut
                prepared = prepared.with_step(panel.frame.loc[keep], "last-treated cohort as control", note, unit)
            control_mask = g == last
            if not (keep & (g > 0) & ~control_mask).any():
                raise DataError(f"{where}: no treated cohort is left besides the control cohort {last:g}.")
        treated = keep & ~control_mask & (g > 0)
        cells = pd.DataFrame({"g": g[treated], "e": e[treated]})
        cells = cells.loc[cells["e"] != reference]
        cell_keys = cells.drop_duplicates().sort_values(["e", "g"]).to_numpy()
        if len(cell_keys) == 0:
            raise DataError(f"{where}: no cohort x event-time cell is left to estimate.")
        lookup = {(float(a), float(b)): j for j, (a, b) in enumerate(cell_keys)}
        col = np.full(len(g), -1)
        idx = np.flatnonzero(treated & (e != reference))
        col[idx] = [lookup[(float(a), float(b))] for a, b in zip(g[idx], e[idx])]
        sub = np.flatnonzero(keep)
        n_cells = len(cell_keys)
        D = np.zeros((len(sub), n_cells))
        has = col[sub] >= 0
        D[np.flatnonzero(has), col[sub][has]] = 1.0
        names = [f"g={a:g},e={int(b)}" for a, b in cell_keys]
        X = np.column_stack([D, panel.covariates[sub]])
        w_obs = np.ones(len(sub)) if panel.weights is None else panel.weights[sub]
        fit = fe_regression(
            panel.y[sub], X, names + list(panel.covariate_names),
            unit_codes=panel.unit_codes[sub], time_codes=panel.time_codes[sub], n_periods=len(panel.periods),
            weights=None if panel.weights is None else panel.weights[sub],
            cluster_values=panel.cluster_values[sub], cluster_name=cluster or unit, vcov=vcov,
            treated=(g[sub] > 0) & ~control_mask[sub], where=where, ssc=ssc,
        )
        p = X.shape[1]
        mass = D.T @ w_obs  # observations (or weight) per cell
        event_times = sorted({int(b) for _, b in cell_keys})
        combination = np.zeros((len(event_times), p))
        for j, ev in enumerate(event_times):
            in_e = cell_keys[:, 1] == ev
            combination[j, :n_cells] = np.where(in_e, mass, 0.0) / mass[in_e].sum()
        post = cell_keys[:, 1] >= 0
        if not post.any():
            raise DataError(f"{where}: no treated observation is observed at or after adoption.")
        head = np.zeros(p)
        head[:n_cells] = np.where(post, mass, 0.0) / mass[post].sum()
        show = [ev for ev in event_times
                if (leads is None or ev >= -int(leads)) and (lags is None or ev <= int(lags))]
        rows = [event_times.index(ev) for ev in show]
        effects, V = _assemble(
            where=where, event_times=show, refs=[reference], coef=fit.coef, vcov=fit.vcov, dof=fit.df,
            level=level, combination=combination[rows], headline_weights=head, headline=HEADLINE,
        )
        cell_se = np.sqrt(np.clip(np.diag(fit.vcov)[:n_cells], 0, None))
        weight_in_e = np.array([combination[event_times.index(int(b)), j] for j, (_, b) in enumerate(cell_keys)])
        diagnostics = {
            "cohort_effects": [
                {"cohort": float(a), "event_time": int(b), "estimate": float(fit.coef[j]), "std_error": float(cell_se[j]),
                 "weight_in_event_time": float(weight_in_e[j]), "observations": float(mass[j])}
                for j, (a, b) in enumerate(cell_keys)
            ],
            "control_cohort": "never treated" if control == "never" else f"last treated ({float(g[control_mask].max()):g})",
            "treated_in_first_period": len(panel.treated_first_period),
        }
        frame = prepared.frame
        res = EventStudyResult(
            design="sun_abraham",
            estimand="ATT by event time (interaction-weighted)",
            effects=effects,
            headline=HEADLINE,
            inference=(f"{fit.description}; event-time and ATT effects by the delta method with cohort shares "
                       "held fixed; ATT = average of the cohort x event-time effects over treated observations"),
            n_obs=len(sub), outcome=outcome, level=level, n_units=int(frame[unit].nunique()),
            n_treated=int(np.unique(panel.unit_codes[treated]).size), n_clusters=fit.n_clusters,
            settings={"control": control, "reference": reference, "vcov": vcov, "cluster": cluster or unit,
                      "covariates": list(panel.covariate_names), "weights": weights,
                      "assumption": "Parallel trends between every treated cohort and the control cohort, and no "
                      "anticipation before adoption."},
            sample_flow=prepared.flow, diagnostics=diagnostics, vcov=V,
            linear_fit=_linear_fit(fit, vcov, effects, _rows_matrix(where, show, [reference], len(fit.coef),
                                                                     combination[rows], head)[0],
                                   None if panel.weights is None else panel.weights[sub]),
        )
        ri = None
        if wants_ri:
            from impact.did._randomization import event_time_randomization

            L, _ = _rows_matrix(where, show, [reference], len(fit.coef), combination[rows], head)

            def run(mode):
                return event_time_randomization(
                    effects, V, L=L, fit=fit, panel=panel, obs=sub, obs_event_time=np.where(treated[sub], e[sub], np.nan),
                    inference=mode, reason=None if control == "never" else "control='last' drops periods (unbalanced)",
                    n_permutations=n_permutations, seed=seed, level=level, where=where, cluster_name=cluster or unit,
                    unit_name=unit)

            ri = run(inference)
        if ri is not None:
            effects, V, test, text = ri
            res = res.replace(effects=effects, vcov=V, settings={**res.settings, "inference": "randomization"},
                              inference=f"{text}; vcov: analytic CR1 correlations scaled to the randomisation standard errors")
            if test is not None:
                diagnostics["pretrend_test"] = test
        elif (effects["event_time"] < reference).any():
            from impact.did._randomization import pretrend_randomization

            test = pretrend_randomization(run, n_units=res.n_units) if wants_ri and inference == "auto" else None
            diagnostics["pretrend_test"] = test if test is not None else pretrend_test(res)
        res = res.replace(warnings=tuple(log), diagnostics=diagnostics)
    return res
