"""Two-way fixed effects difference-in-differences (2x2 DiD as its simplest case)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from impact.data import check_integer, check_level, check_seed  # shared option validation
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
from impact.inference.absorb import is_grid
from impact.inference.few_treated import RESIDUAL_METHODS, residual_inference
from impact.inference.htz import LinearFit
from impact.inference.vcov import CLUSTER_KINDS, VCOV_KINDS, SmallSampleCorrection, VcovKind
from impact.inference.wild import WEIGHT_TYPES, warn_wild_few_treated, wild_cluster_bootstrap
from impact.results import Result, effects_table

__all__ = ["twfe"]



def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(values, sort=True)``; for integers of a narrow range (periods) by a lookup table,
    three passes instead of hashing every row."""
    if values.dtype.kind in "iu" and len(values):
        low, high = int(values.min()), int(values.max())
        if high - low < max(len(values), 1_000):
            offset = values.astype(np.int64, copy=False) - low  # int64: a narrow dtype could overflow
            present = np.zeros(high - low + 1, dtype=bool)
            present[offset] = True
            rank = np.cumsum(present) - 1
            return rank[offset], np.flatnonzero(present) + low
    codes, levels = pd.factorize(values, sort=True)
    return codes, np.asarray(levels)


def _absorbing_on_grid(d: np.ndarray, n_units: int, n_time: int) -> bool:
    """On a unit x period grid: True when no unit's treatment falls from 1 to 0 (else the general check names them)."""
    D = d.reshape(n_units, n_time)
    return not (D[:, 1:] < D[:, :-1]).any()


def _check_unique_codes(frame: pd.DataFrame, unit_codes: np.ndarray, time_codes: np.ndarray, n_time: int,
                        unit: str, time: str, where: str) -> None:
    key = unit_codes * n_time
    key += time_codes
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
    vcov: VcovKind | None = None,
    panel: bool = True,
    absorbing: bool = True,
    level: float = 0.95,
    missing: MissingPolicy = "drop",
    n_bootstrap: int = 9_999,
    bootstrap_weights: str = "webb",
    seed: int | None = None,
    inference: Literal["auto", "randomization", "analytic", "conley_taber", "ferman_pinto"] = "auto",
    n_permutations: int = 9_999,
    bootstrap_enumerate_up_to: int = 20,
    ssc: SmallSampleCorrection | None = None,
    group_size: str | None = None,
    bootstrap_subcluster: str | None = None,
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
    vcov : {None, "cluster", "CR1", "CR1-fixest", "CR2", "CR0", "wild", "iid", "HC0", "HC1", "HC2", "HC3"}
        None (default): chosen by ``inference`` (randomisation inference with few treated clusters,
        else ``cluster``); the ``vcov`` matrix on the result is then CR1. ``cluster``/``CR1`` use Stata's small-sample factor (all absorbed effects counted in K);
        ``CR1-fixest`` equals fixest's ``ssc()`` default (K counts the fixed effects except those
        nested in the clusters, plus one per nested set; switches via ``ssc=``); ``CR2`` is
        Bell-McCaffrey with Satterthwaite degrees of freedom; ``wild`` is the restricted wild cluster
        bootstrap (p-value and test-inversion interval; the reported standard error is CR1).
    ssc : SmallSampleCorrection, optional
        fixest's small-sample switches for ``vcov="CR1-fixest"`` (:func:`impact.inference.ssc`:
        ``adj``, ``fixef_K``, ``cluster_adj``, ``t_df``); default fixest's defaults.
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
    bootstrap_subcluster : str, optional
        ``vcov="wild"`` only: draw the bootstrap weights by this finer level nested within the
        clusters (e.g. the unit within regions, or a unit x period id), the subcluster wild bootstrap
        of MacKinnon & Webb (2018); the t statistic keeps the CR1 variance by ``cluster``. With few
        treated clusters the ordinary wild cluster bootstrap has almost no power (its p-values cluster
        near 1); bootstrapping by subcluster restores it when the within-cluster correlation is modest.
    bootstrap_enumerate_up_to : int
        Wild bootstrap with Rademacher weights: enumerate all 2^G sign vectors when G is at most this
        (and 2^G <= n_bootstrap), else draw at random; the inference text says which was done.
    inference : {"auto", "randomization", "analytic"}
        With ``vcov=None``: "randomization" permutes the start dates across units (across clusters
        with ``cluster``) and reports the studentised randomisation p-value and the interval by test
        inversion (MacKinnon & Webb 2020; :mod:`impact.inference.randomization`); "analytic" uses
        ``vcov="cluster"``; "auto" (default) uses randomisation inference when fewer than 50 treated
        (or untreated) clusters exist, else ``cluster``. Randomisation inference needs a balanced
        panel, staggered (absorbing) treatment, no covariates and no weights; otherwise "auto" falls
        back to ``cluster`` with a FragileInferenceWarning.
        "conley_taber" (Conley & Taber 2011) approximates the distribution of the ATT's estimation
        error by the residuals of the control clusters (:mod:`impact.inference.few_treated`);
        "ferman_pinto" (Ferman & Pinto 2019) rescales them to the treated clusters' variance with the
        model Var = A + B / M of cluster size M. Both need a balanced panel, treatment assigned by
        cluster, no covariates and no weights; ``n_permutations`` and ``seed`` set the combinations.
    n_permutations : int
        Enumerate all assignments of start dates when there are at most this many, else draw this many.
    group_size : str, optional
        ``inference="ferman_pinto"`` only: a column with the number of individuals behind each row
        (e.g. the population a regional mean is taken over); a cluster's size M is the sum over its
        units (mean over periods). Default: the number of units in the cluster.

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
    check_option("inference", inference, ("auto", "randomization", "analytic", *RESIDUAL_METHODS))
    if vcov is not None and inference not in ("auto", "analytic"):
        raise SpecError(f"{where}: vcov={vcov!r} and inference={inference!r} ask for two methods; drop vcov.")
    residual_method = inference if inference in RESIDUAL_METHODS else None
    if bootstrap_subcluster is not None and vcov != "wild":
        raise SpecError(f"{where}: bootstrap_subcluster= is used by vcov='wild' only; got vcov={vcov!r}.")
    if group_size is not None and residual_method != "ferman_pinto":
        raise SpecError(f"{where}: group_size= is used by inference='ferman_pinto' only; got inference={inference!r}.")
    wants_ri = vcov is None and inference in ("auto", "randomization")
    vcov = "cluster" if vcov is None else vcov
    check_option("vcov", vcov, VCOV_KINDS)
    check_option("bootstrap_weights", bootstrap_weights, WEIGHT_TYPES)
    level = check_level(level, where)
    seed = check_seed(seed, where)
    n_bootstrap = check_integer("n_bootstrap", n_bootstrap, where, minimum=1)
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
                   "covariates": covs, "weights": weights, "cluster": cluster_col,
                   **({"group_size": group_size} if group_size else {}),
                   **({"subcluster": bootstrap_subcluster} if bootstrap_subcluster else {})},
            numeric=[outcome, treatment, *covs] + ([weights] if weights else []) + ([group_size] if group_size else []),
            missing=missing,
            unit=unit,
        )
        frame = prepared.frame
        d = check_binary(frame, treatment, where)
        check_treated_and_control(d, where)
        unit_codes, unit_levels = pd.factorize(frame[unit].to_numpy(), sort=False)
        time_codes, time_levels = _sorted_codes(frame[time].to_numpy())
        # int64 once (factorize gives intp, int64 on 64-bit platforms: no copy); every step below reuses them
        unit_codes, time_codes = unit_codes.astype(np.int64, copy=False), time_codes.astype(np.int64, copy=False)
        n_units, n_time = len(unit_levels), len(time_levels)
        # a panel sorted by unit and period is a grid: unique keys by construction, checks and demeaning by reshaping
        grid = panel and is_grid(unit_codes, time_codes, n_units, n_time)
        if panel and not grid:
            _check_unique_codes(frame, unit_codes, time_codes, n_time, unit, time, where)
        if panel and absorbing and not (grid and _absorbing_on_grid(d, n_units, n_time)):
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
                                                 codes=unit_codes if cluster_col == unit else None)

        subclusters = None
        if bootstrap_subcluster is not None:
            subclusters = pd.factorize(frame[bootstrap_subcluster].to_numpy(), sort=True)[0].astype(np.int64)
        X = np.column_stack([d.astype(float)] + [frame[c].to_numpy(dtype=float) for c in covs])
        names = ["ATT", *covs]
        k_report = X.shape[1]
        fit = fe_regression(
            frame[outcome].to_numpy(dtype=float), X, names,
            unit_codes=unit_codes, time_codes=time_codes, weights=w,
            cluster_name=cluster_col or unit, vcov=vcov, treated=d, where=where,
            clusters=(clusters, n_clusters) if clustered else None, fe_names=(unit, time),
            level_labels=(unit_levels, time_levels), balanced=balanced, ssc=ssc, resample_codes=subclusters, grid=grid,
        )
        permutation = None
        if wants_ri:
            permutation = _twfe_permutation(
                frame[outcome].to_numpy(dtype=float), d, unit_codes, time_codes,
                n_units, n_time, clusters, n_clusters, covs, w, panel and absorbing and balanced, inference,
                cluster_col, n_permutations, seed, where)
        residual = None
        if residual_method is not None:
            residual = _twfe_residual_inference(
                fit, d, unit_codes, time_codes, n_units, n_time,
                None if group_size is None else frame[group_size].to_numpy(dtype=float), covs, w,
                panel and balanced, residual_method, cluster_col, level, n_permutations, seed, where)
        wild_result = None
        if vcov == "wild":
            wild_result = wild_cluster_bootstrap(
                fit.X, fit.y, clusters, coef=0, weights=w, n_clusters=n_clusters, weight_type=bootstrap_weights,
                n_bootstrap=n_bootstrap, seed=seed, level=level, absorbed=fit.absorbed,
                enumerate_up_to=bootstrap_enumerate_up_to, subclusters=subclusters,
            )
            warn_wild_few_treated(d, clusters, n_clusters, subclusters is not None, where)

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
            f"{wild_result.draws_text(n_clusters, bootstrap_enumerate_up_to)}, "
            f"{n_clusters} clusters) for ATT; standard errors CR1"
        )
    if residual is not None:
        p_values = np.r_[residual.p_value, np.full(k_report - 1, np.nan)]
        conf_low, conf_high = np.r_[residual.conf_low], np.r_[residual.conf_high]
        se, dof = np.r_[residual.std_error], np.r_[np.inf]
        word = "clusters" if cluster_col != unit else "units"
        inference = residual.description(f"{word} ({cluster_col})") + "; the vcov matrix on the result is CR1"
    if permutation is not None:
        ri = permutation.run(level)
        p_values = np.r_[ri.p_value, np.full(k_report - 1, np.nan)]
        conf_low, conf_high = ri.conf_low, ri.conf_high
        se = np.r_[ri.std_error, se[1:]]
        dof = np.r_[np.inf, dof[1:]]
        inference = ri.description() + "; the vcov matrix on the result is CR1"
    effects = effects_table(names[:k_report], beta[:k_report], se, df=dof, level=level,
                            p_values=p_values, conf_low=conf_low, conf_high=conf_high)
    if permutation is not None:
        n_treated_blocks = np.count_nonzero(permutation.labels != len(permutation.start) - 1)  # last code: never
        note = ri.row_notes(np.array([n_treated_blocks]))[0]
        if note is not None:  # why the interval is unbounded, appended to the method by tidy()
            effects["inference"] = [note] + [None] * (k_report - 1)
    if wild_result is not None:
        # covariate rows keep their CR1 Wald inference
        wald = effects_table(names[:k_report], beta[:k_report], se, df=dof, level=level)
        for col in ("p_value", "conf_low", "conf_high"):
            effects.loc[1:, col] = wald.loc[1:, col]
    treated_units = int(np.count_nonzero(np.bincount(unit_codes[d == 1], minlength=n_units)))
    settings = {
        "outcome": outcome, "treatment": treatment, "unit": unit, "time": time, "covariates": covs,
        "cluster": cluster_col, "weights": weights, "vcov": vcov, "panel": panel, "absorbing": absorbing,
        "inference": ("randomization" if permutation is not None else residual_method if residual is not None
                      else ("wild" if vcov == "wild" else "analytic")),
        "n_permutations": n_permutations if permutation is not None else None,
        "level": level, "missing": missing,
        "assumption": "Parallel trends: without the programme, treated and comparison units would have "
                      "followed the same trend; effects are assumed homogeneous across units and time.",
    }
    if vcov == "wild":
        settings.update({"n_bootstrap": n_bootstrap, "bootstrap_weights": bootstrap_weights, "seed": seed,
                         "bootstrap_subcluster": bootstrap_subcluster})
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
        linear_fit=LinearFit.from_regression(fit, w) if vcov == "CR2" else None,
    )


def _twfe_permutation(y, d, unit_codes, time_codes, n_units, n_time, clusters, n_clusters, covs, w, eligible,
                      inference, cluster_col, n_permutations, seed, where):
    """The permutation data of the TWFE coefficient, or None when ``inference="auto"`` picks analytic."""
    from impact.did._randomization import TWFEPermutation
    from impact.inference.randomization import RI_TREATED_THRESHOLD, adoption_scheme, choose_randomization

    if inference == "auto" and cluster_col is not None and n_clusters == n_units and eligible and not covs and w is None:
        # clusters are the units (the default): with at least 50 treated and 50 untreated units "auto" is
        # analytic whatever the checks below find, so skip them (they cost several passes over 10M rows)
        treated_units = int(np.count_nonzero(np.bincount(unit_codes[d == 1], minlength=n_units)))
        if min(treated_units, n_units - treated_units) >= RI_TREATED_THRESHOLD and np.array_equal(clusters, unit_codes):
            return None
    reason = None
    if covs:
        reason = "covariates would need a regression per assignment (not implemented); drop them or use att_gt"
    elif w is not None:
        reason = "weights are not supported by the permutation path"
    elif not eligible:
        reason = "it needs a balanced panel with staggered (absorbing) treatment"
    start = np.full(n_units, n_time)
    if reason is None:
        np.minimum.at(start, unit_codes[d == 1], time_codes[d == 1])
        cluster_of_unit = np.zeros(n_units, dtype=np.int64)
        cluster_of_unit[unit_codes] = clusters
        if np.any(cluster_of_unit[unit_codes] != clusters):
            reason = (f"units move between clusters of {cluster_col!r} (clusters split units); cluster at a level "
                      "that contains whole units")
        else:
            block_start = np.full(n_clusters, -1)
            block_start[cluster_of_unit] = start
            if np.any(block_start[cluster_of_unit] != start):
                reason = (f"start dates differ within clusters of {cluster_col!r}, so treatment was not assigned by "
                          "cluster and cannot be permuted across clusters")
    treated_blocks = 0 if reason is not None else int(np.count_nonzero(block_start < n_time))
    total_blocks = n_clusters if reason is None else n_units
    if not choose_randomization(inference, n_treated_units=treated_blocks if reason is None else 0,
                                n_untreated_units=total_blocks - treated_blocks, n_units=total_blocks,
                                supported=reason, where=where):
        return None
    cohort_starts, labels = np.unique(block_start, return_inverse=True)  # the never-treated start (T) sorts last
    if cohort_starts[-1] != n_time:
        cohort_starts = np.r_[cohort_starts, n_time]  # no never-treated unit: keep the code K unused
    K = len(cohort_starts) - 1
    word = f"{n_clusters} {'units' if n_clusters == n_units else 'clusters'} ({cluster_col})"
    adoption_scheme(labels, never_code=K, where=where, unit_word=word)
    Y = np.zeros((n_units, n_time))
    Y[unit_codes, time_codes] = y
    D = np.zeros((n_units, n_time))
    D[unit_codes, time_codes] = d

    def demean(M):
        return M - M.mean(axis=1, keepdims=True) - M.mean(axis=0, keepdims=True) + M.mean()

    return TWFEPermutation(Yt=demean(Y), Dt=demean(D), labels=labels.astype(np.int64), start=cohort_starts.astype(np.int64),
                           block_of_unit=cluster_of_unit, cluster_of_unit=cluster_of_unit, n_clusters=n_clusters,
                           unit_word=word, n_permutations=int(n_permutations), seed=seed)


def _twfe_residual_inference(fit, d, unit_codes, time_codes, n_units, n_time, size_rows, covs, w, balanced, method,
                             cluster_col, level, n_draws, seed, where):
    """Conley-Taber / Ferman-Pinto inference on the TWFE coefficient (balanced panel, no covariates).

    In a balanced panel the residualised treatment is D~_it = D_it - D_i. - D_.t + D_..; when treatment
    is assigned by cluster it is the same for every unit of a cluster, so the ATT's estimation error is
    sum_g sum_t n_g D~_gt mean_resid_gt / sum D~^2: the weights a_g = n_g D~_g / sum D~^2 of
    :func:`impact.inference.few_treated.residual_inference`, applied to cluster x period mean residuals.
    """
    reason = None
    if covs:
        reason = "covariates make the residualised treatment differ within clusters; drop them or use inference='randomization'"
    elif w is not None:
        reason = "weights are not supported; drop them"
    elif not balanced:
        reason = "it needs a balanced panel (every unit in every period)"
    if reason is not None:
        raise SpecError(f"{where}: inference={method!r} is not available here: {reason}.")
    G = int(fit.n_clusters)
    cluster_of_unit = np.zeros(n_units, dtype=np.int64)
    cluster_of_unit[unit_codes] = fit.clusters
    if np.any(cluster_of_unit[unit_codes] != fit.clusters):
        raise SpecError(f"{where}: units move between clusters of {cluster_col!r}; cluster at a level that contains whole units.")
    D = np.zeros((n_units, n_time))
    D[unit_codes, time_codes] = d
    first = np.zeros((G, n_time))
    first[cluster_of_unit] = D  # any unit's path per cluster; checked below
    if np.any(first[cluster_of_unit] != D):
        raise SpecError(f"{where}: inference={method!r} needs treatment assigned by cluster, but units of the same "
                        f"{cluster_col!r} cluster are treated in different periods; cluster at the level of assignment.")
    Dt = D - D.mean(axis=1, keepdims=True) - D.mean(axis=0, keepdims=True) + D.mean()
    n_in = np.bincount(cluster_of_unit, minlength=G).astype(float)
    resid = np.zeros((G, n_time))
    np.add.at(resid, (fit.clusters, time_codes), fit.resid)
    resid /= n_in[:, None]
    ssq = float((Dt**2).sum())
    treated = first.any(axis=1)
    cluster_Dt = np.zeros((G, n_time))
    cluster_Dt[cluster_of_unit] = Dt
    weights = n_in[:, None] * cluster_Dt / ssq
    size = n_in
    if size_rows is not None:
        if not np.all(np.isfinite(size_rows)) or np.any(size_rows <= 0):
            raise DataError(f"{where}: group_size must be positive and finite in every row.")
        per_unit = np.zeros(n_units)
        np.add.at(per_unit, unit_codes, size_rows / n_time)
        size = np.bincount(cluster_of_unit, weights=per_unit, minlength=G)
    return residual_inference(float(fit.coef[0]), resid, weights, treated, method=method, group_size=size,
                              level=level, n_draws=n_draws, seed=seed, where=where)
