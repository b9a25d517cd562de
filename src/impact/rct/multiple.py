"""Several outcomes in one trial: effects with multiplicity-adjusted p-values."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from impact.data import check_integer, check_level, check_seed  # shared option validation
from impact.data import as_list, check_option, prepare
from impact.errors import SpecError, recording_warnings
from impact.inference.multiple import ADJUSTMENTS, benjamini_hochberg, holm, romano_wolf, westfall_young
from impact.inference.permutation import null_distribution, permutation_p_values
from impact.results import effects_table
from impact.rct._common import RCTResult, check_arms, resolve_arms
from impact.rct.estimators import difference_in_means
from impact.rct.randomization import _dim_statistic, build_design

__all__ = ["multiple_outcomes"]

Adjustment = Literal["holm", "bh", "westfall_young", "romano_wolf"]


def _bootstrap_t(y: np.ndarray, t: np.ndarray, est: np.ndarray, n_bootstrap: int, rng: np.random.Generator,
                 chunk_bytes: float = 4e7) -> np.ndarray:
    """Centred, studentised bootstrap draws (B, q) of the difference in means, resampling within arms."""
    arms = [np.flatnonzero(t == 1), np.flatnonzero(t == 0)]
    q = y.shape[1]
    out = np.empty((n_bootstrap, q))
    rows = max(1, int(chunk_bytes // (8 * len(t))))
    for start in range(0, n_bootstrap, rows):
        size = min(rows, n_bootstrap - start)
        means, variances = [], []
        for idx in arms:
            counts = np.zeros((size, idx.size))
            picks = rng.integers(0, idx.size, size=(size, idx.size))
            np.add.at(counts, (np.repeat(np.arange(size), idx.size), picks.ravel()), 1.0)
            yy = y[idx]
            s1 = counts @ yy
            s2 = counts @ (yy**2)
            mean = s1 / idx.size
            var = (s2 - idx.size * mean**2) / (idx.size - 1)
            means.append(mean)
            variances.append(var / idx.size)
        dim = means[0] - means[1]
        se = np.sqrt(variances[0] + variances[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start : start + size] = (dim - est[None, :]) / se
    return out


def multiple_outcomes(
    df: pd.DataFrame,
    *,
    outcomes: Sequence[str],
    treatment: str,
    blocks: str | None = None,
    clusters: str | None = None,
    adjust: Sequence[Adjustment] = ADJUSTMENTS,
    n_permutations: int = 5_000,
    n_bootstrap: int = 2_000,
    seed: int | None = None,
    level: float = 0.95,
    condition1=None,
    condition2=None,
) -> RCTResult:
    """Effects of one treatment on several outcomes, with family-wise and FDR-adjusted p-values.

    Each outcome gets :func:`difference_in_means` (design-based SE and p-value, respecting blocks and
    clusters). The adjusted p-values are added as columns ``p_holm``, ``p_bh``,
    ``p_westfall_young`` and ``p_romano_wolf`` (and ``p_randomization``, the unadjusted
    randomisation p-value).

    Parameters
    ----------
    outcomes : list of str
        The family of outcomes (rows with a missing value in any of them are dropped, so all tests
        use the same units and the same re-drawn assignments).
    adjust : sequence of {"holm", "bh", "westfall_young", "romano_wolf"}
        Adjustments to compute.
    n_permutations : int
        Re-drawn assignments for the randomisation p-values and Westfall-Young (the assignment is
        re-run as in :func:`randomization_test`; the same draw is used for every outcome).
    n_bootstrap : int
        Bootstrap resamples (within arms) for Romano-Wolf (individually randomised, unblocked
        designs); with blocks or clusters Romano-Wolf uses the permutation draws instead (identical
        to Westfall-Young maxT, stated in ``inference``).
    seed : int, optional
        Seed for both resampling schemes (recorded).

    Returns
    -------
    RCTResult
        One row per outcome (``term`` = outcome); headline = the first outcome.

    Notes
    -----
    Westfall-Young step-down maxT uses :math:`t_k = \\hat\\tau_k / \\widehat{se}_k` with the observed
    standard errors as fixed scales, under re-drawn assignments (exact under the sharp null of no
    effect on any outcome, strong FWER control by subset pivotality). Romano-Wolf uses the
    studentised bootstrap :math:`t^*_k = (\\hat\\tau^*_k - \\hat\\tau_k)/\\widehat{se}^*_k`.

    References
    ----------
    Westfall, P. H. and Young, S. S. (1993). *Resampling-Based Multiple Testing*. Wiley.
    Romano, J. P. and Wolf, M. (2005). *Econometrica* 73(4), 1237-1282. doi:10.1111/j.1468-0262.2005.00615.x.
    Anderson, M. L. (2008). Multiple inference and gender differences in the effects of early
    intervention. *JASA* 103(484), 1481-1495. doi:10.1198/016214508000000841.

    Examples
    --------
    >>> import impact as im
    >>> firms = im.datasets.load("sweden_firms")
    >>> res = im.rct.multiple_outcomes(firms, outcomes=["turnover_growth", "employees_2"],
    ...                                treatment="assigned", blocks="region_code", seed=1)
    """
    where = "multiple_outcomes"
    level = check_level(level, where)
    seed = check_seed(seed, where)
    n_permutations = check_integer("n_permutations", n_permutations, where, minimum=1)
    n_bootstrap = check_integer("n_bootstrap", n_bootstrap, where, minimum=1)
    outs = as_list(outcomes)
    if len(outs) < 2:
        raise SpecError(f"{where}: give at least two outcomes (for one, use difference_in_means).")
    adjust = tuple(adjust)
    for a in adjust:
        check_option("adjust", a, ADJUSTMENTS)
    if seed is None:
        seed = secrets.randbits(32)
    with recording_warnings() as log:
        prepared = prepare(df, where=where, roles={"outcomes": outs, "treatment": treatment, "blocks": blocks,
                                                   "clusters": clusters}, numeric=outs)
        frame = prepared.frame
        arms = resolve_arms(frame, treatment, condition1, condition2, where)
        frame = frame.loc[arms.keep]
        t = arms.indicator
        check_arms(t, where)
        sub = frame.assign(__t=t)
        fits = [difference_in_means(sub, outcome=o, treatment="__t", blocks=blocks, clusters=clusters, level=level)
                for o in outs]
        est = np.array([f.estimate for f in fits])
        se = np.array([f.std_error for f in fits])
        dof = np.array([f.tidy()["df"].iloc[0] for f in fits])
        p_analytic = np.array([f.p_value for f in fits])
        Y = frame[outs].to_numpy(dtype=float)
        design = build_design(frame, t, blocks=blocks, clusters=clusters, method="complete", prob=None, where=where)
        stats_k = [_dim_statistic(design, Y[:, k], None) for k in range(len(outs))]

        def scaled(R: np.ndarray) -> np.ndarray:
            return np.column_stack([f(R) / s for f, s in zip(stats_k, se)])

        rng = np.random.default_rng(seed)
        null = null_distribution(scaled, design.scheme, n_permutations=n_permutations, seed=rng)
        p_perm = permutation_p_values(null)
        extra: dict[str, np.ndarray] = {"p_randomization": p_perm}
        notes = [f"randomisation p-values and Westfall-Young from {null.n_draws:,} "
                 f"{'enumerated' if null.exact else 're-drawn'} assignments"]
        if "holm" in adjust:
            extra["p_holm"] = holm(p_analytic)
        if "bh" in adjust:
            extra["p_bh"] = benjamini_hochberg(p_analytic)
        if "westfall_young" in adjust:
            extra["p_westfall_young"] = westfall_young(null.observed, null.draws, exact=null.exact)
        if "romano_wolf" in adjust:
            if blocks is None and clusters is None:
                boot = _bootstrap_t(Y, t, est, n_bootstrap, rng)
                extra["p_romano_wolf"] = romano_wolf(est / se, boot)
                notes.append(f"Romano-Wolf from {n_bootstrap:,} studentised bootstrap draws within arms")
            else:
                extra["p_romano_wolf"] = romano_wolf(null.observed, null.draws, exact=null.exact)
                notes.append("Romano-Wolf on the permutation null (blocked/clustered design)")
        table = effects_table(outs, est, se, df=dof, level=level, p_values=p_analytic, **extra)
        corr = np.corrcoef(null.draws, rowvar=False) if null.n_draws > 2 else None
    return RCTResult(
        design="multiple_outcomes", estimand="ATE per outcome", effects=table, headline=outs[0],
        inference="design-based difference in means per outcome; Holm/BH on the analytic p-values; "
                  + "; ".join(notes) + f" (seed {seed})",
        n_obs=len(t), outcome=", ".join(outs), level=level, n_treated=int(t.sum()),
        n_clusters=design.scheme.m if clusters else None,
        settings={"treatment": treatment, "outcomes": outs, "blocks": blocks, "clusters": clusters,
                  "adjust": list(adjust), "n_permutations": n_permutations, "n_bootstrap": n_bootstrap, "seed": seed},
        warnings=tuple(log), sample_flow=prepared.flow,
        diagnostics={"design": fits[0].diagnostics["design"],
                     "null_correlation_of_statistics": (pd.DataFrame(corr, index=outs, columns=outs).round(4)
                                                        .reset_index(names="outcome") if corr is not None else None)},
    )

