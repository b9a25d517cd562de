"""Randomisation inference for trials (Fisher's sharp null), and the balance table.

The assignment procedure is re-run with the shared engine :mod:`impact.inference.permutation`:
complete randomisation within blocks (the observed number of treated units, or clusters, per block
is kept) or simple (Bernoulli) randomisation with the given probability. Statistics are computed
for whole chunks of draws as matrix products on per-cluster (or per-unit) sums, sorted by block so
that block totals are contiguous ``np.add.reduceat`` sums.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from impact.data import check_integer, check_level, check_seed  # shared option validation
from impact.data import as_list, check_option, check_rank, cluster_codes, prepare
from impact.errors import DataError, SpecError, recording_warnings
from impact.inference.vcov import group_sums
from impact.inference.permutation import AssignmentScheme, NullDistribution, null_distribution, permutation_p_values
from impact.results import effects_table
from impact.rct._common import RCTResult, check_arms, resolve_arms, treatment_within_clusters
from impact.rct.balance import balance_rows

__all__ = ["randomization_test", "balance_table", "Statistic", "RandomisationDesign"]

Statistic = Literal["difference_in_means", "studentized", "coefficient"]
STATISTICS = ("difference_in_means", "studentized", "coefficient")


@dataclass(frozen=True, eq=False)
class RandomisationDesign:
    """Randomisation units (units or clusters) sorted by block, and how units map onto them.

    ``unit_to_ru[i]`` is the randomisation unit of row ``i``; ``starts`` the first randomisation
    unit of each block (for ``np.add.reduceat``); ``scheme`` the assignment procedure.
    """

    scheme: AssignmentScheme
    unit_to_ru: np.ndarray
    starts: np.ndarray
    count: np.ndarray  # units per randomisation unit
    block_of_unit: np.ndarray
    n_blocks: int
    clustered: bool

    def ru_sums(self, values: np.ndarray) -> np.ndarray:
        """Sum unit-level ``values`` (n,) or (n, k) within randomisation units."""
        values = np.asarray(values, dtype=float)
        m = self.scheme.m
        return group_sums(self.unit_to_ru, values, m)

    def block_totals(self, R: np.ndarray, ru_values: np.ndarray) -> np.ndarray:
        """(draws, blocks) sums of ``ru_values`` over the treated randomisation units of each block."""
        prod = R * ru_values[None, :]
        if self.n_blocks == 1:
            return prod.sum(axis=1, keepdims=True)
        return np.add.reduceat(prod, self.starts, axis=1)

    @property
    def fixed_counts(self) -> bool:
        """Treated units per block are the same in every draw (complete randomisation of units)."""
        return self.scheme.method == "complete" and not self.clustered


def build_design(frame: pd.DataFrame, t: np.ndarray, *, blocks: str | None, clusters: str | None,
                 method: str, prob: float | None, where: str) -> RandomisationDesign:
    """Randomisation units, their blocks and the assignment scheme of the observed data."""
    n = len(t)
    if clusters:
        codes, _ = cluster_codes(frame[clusters], where=where, treated=t, name=clusters)
        treatment_within_clusters(t, codes, where, frame[clusters].to_numpy())
    else:
        codes = np.arange(n)
    m = int(codes.max()) + 1
    if blocks:
        bcodes, blabels = pd.factorize(frame[blocks].to_numpy(), sort=True)
        ru_block = np.full(m, -1)
        ru_block[codes] = bcodes
        clash = np.bincount(codes, weights=(bcodes != ru_block[codes]).astype(float), minlength=m) > 0
        if clash.any():
            raise DataError(f"{where}: each cluster must lie within one block; {int(clash.sum())} cluster(s) span several blocks of {blocks!r}.")
    else:
        bcodes = np.zeros(n, np.int64)
        ru_block = np.zeros(m, np.int64)
    order = np.argsort(ru_block, kind="stable")  # randomisation units sorted by block
    rank = np.empty(m, np.int64)
    rank[order] = np.arange(m)
    unit_to_ru = rank[codes]
    ru_t = np.zeros(m)
    ru_t[unit_to_ru] = t
    sorted_block = ru_block[order]
    J = int(sorted_block.max()) + 1
    starts = np.searchsorted(sorted_block, np.arange(J))
    count = np.bincount(unit_to_ru, minlength=m).astype(float)
    if method == "complete":
        scheme = AssignmentScheme(ru_t.astype(np.int64), strata=sorted_block, method="complete", n_arms=2)
        per_block = np.add.reduceat(ru_t, starts)
        sizes = np.diff(np.append(starts, m))
        single = np.flatnonzero((per_block == 0) | (per_block == sizes))
        if single.size == J:
            raise DataError(f"{where}: no block contains both arms, so no re-randomisation can change the comparison.")
    else:
        p = float(ru_t.mean()) if prob is None else float(prob)
        if not 0 < p < 1:
            raise SpecError(f"{where}: prob must be strictly between 0 and 1, got {prob!r}.")
        scheme = AssignmentScheme(ru_t.astype(np.int64), strata=sorted_block, method="simple",
                                  probabilities=np.full(m, p), n_arms=2)
    return RandomisationDesign(scheme, unit_to_ru, starts, count, bcodes, J, bool(clusters))


def _float(R: np.ndarray, m: int) -> np.ndarray:
    # float32 halves the memory traffic of large draws; ties are compared with a relative tolerance
    return R.astype(np.float32 if m > 2000 else np.float64)


def _products(R: np.ndarray, V: np.ndarray) -> np.ndarray:
    """R (draws, m) of 0/1 codes times V (m,) or (m, k), without converting R or calling BLAS.

    ``einsum`` reads the int8 labels directly (casting in its inner loop) and runs single-threaded:
    a multi-threaded BLAS matrix-vector product is memory-bound here and, on a busy machine, many
    times slower than this.
    """
    if V.ndim == 1:
        return np.einsum("ij,j->i", R, V)
    return np.einsum("ij,jk->ik", R, V)


def _dim_statistic(design: RandomisationDesign, y: np.ndarray, extra: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray]:
    """Unit-weighted (estimatr) difference in means, blocks weighted by size; optional 2nd outcome."""
    m = design.scheme.m
    N_b = np.add.reduceat(design.count, design.starts) if design.n_blocks > 1 else np.array([design.count.sum()])
    outcomes = [y] if extra is None else [y, extra]
    ysum = [design.ru_sums(v - v.mean()) for v in outcomes]
    S_b = [np.add.reduceat(s, design.starts) if design.n_blocks > 1 else np.array([s.sum()]) for s in ysum]

    if design.fixed_counts:
        n1_b = np.add.reduceat(design.scheme.labels.astype(float), design.starts) if design.n_blocks > 1 else np.array([float(design.scheme.labels.sum())])
        n0_b = N_b - n1_b
        # blocks holding one arm only say nothing about the effect (and never change): weight 0
        valid = (n1_b > 0) & (n0_b > 0)
        w_b = np.where(valid, N_b, 0.0) / np.sum(np.where(valid, N_b, 0.0))
        safe1, safe0 = np.where(valid, n1_b, 1.0), np.where(valid, n0_b, 1.0)
        coef_b = np.where(valid, w_b * (1 / safe1 + 1 / safe0), 0.0)
        const = [-np.sum(np.where(valid, w_b * S / safe0, 0.0)) for S in S_b]
        block_of_ru = np.repeat(np.arange(design.n_blocks), np.diff(np.append(design.starts, m)))
        dtype = np.float32 if m > 2000 else np.float64
        vectors = [np.ascontiguousarray(s * coef_b[block_of_ru], dtype=dtype) for s in ysum]

        def linear(R: np.ndarray) -> np.ndarray:
            out = np.column_stack([_products(R, v).astype(float) + c for v, c in zip(vectors, const)])
            return out if extra is not None else out[:, 0]

        return linear

    def general(R: np.ndarray) -> np.ndarray:
        Rf = _float(R, m)
        n1 = design.block_totals(Rf, design.count.astype(Rf.dtype)).astype(float)
        n0 = N_b[None, :] - n1
        # per draw, blocks where the draw left one arm empty get weight 0 (weights renormalised)
        valid = (n1 > 0) & (n0 > 0)
        w = np.where(valid, N_b[None, :], 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = w / w.sum(axis=1, keepdims=True)
        cols = []
        for s, S in zip(ysum, S_b):
            s1 = design.block_totals(Rf, s.astype(Rf.dtype)).astype(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                diff = np.where(valid, s1 / np.where(valid, n1, 1) - (S[None, :] - s1) / np.where(valid, n0, 1), 0.0)
            cols.append((diff * w).sum(axis=1))
        out = np.column_stack(cols)
        return out if extra is not None else out[:, 0]

    return general


def _studentized_statistic(design: RandomisationDesign, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Blocked difference in means divided by its Neyman standard error (Welch t without blocks)."""
    if design.clustered:
        raise SpecError("randomization_test: statistic='studentized' is for individually randomised designs; with "
                        "clusters use 'difference_in_means' or 'coefficient'.")
    yc = y - y.mean()
    s = design.ru_sums(yc)
    q = design.ru_sums(yc**2)
    N_b = np.add.reduceat(design.count, design.starts)
    S_b, Q_b = np.add.reduceat(s, design.starts), np.add.reduceat(q, design.starts)
    w_b = N_b / N_b.sum()

    def student(R: np.ndarray) -> np.ndarray:
        Rd = R.astype(np.float64)
        n1 = design.block_totals(Rd, design.count)
        n0 = N_b[None, :] - n1
        s1 = design.block_totals(Rd, s)
        q1 = design.block_totals(Rd, q)
        s0, q0 = S_b[None, :] - s1, Q_b[None, :] - q1
        with np.errstate(divide="ignore", invalid="ignore"):
            v1 = (q1 - s1**2 / n1) / (n1 - 1)
            v0 = (q0 - s0**2 / n0) / (n0 - 1)
            tau = s1 / n1 - s0 / n0
            var = (v1 / n1 + v0 / n0) @ (w_b**2)
            return (tau @ w_b) / np.sqrt(var)

    return student


def _coefficient_statistic(design: RandomisationDesign, y: np.ndarray, covariates: np.ndarray, t_obs: np.ndarray):
    """OLS coefficient of treatment given covariates and block effects (Frisch-Waugh-Lovell)."""
    n = len(y)
    b = design.block_of_unit
    J = design.n_blocks

    def demean(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        if v.ndim == 1:
            return v - (np.bincount(b, weights=v, minlength=J) / np.bincount(b, minlength=J))[b]
        return np.column_stack([demean(v[:, j]) for j in range(v.shape[1])])

    X = demean(covariates) if covariates.shape[1] else np.empty((n, 0))
    if X.shape[1]:
        Q, _ = np.linalg.qr(X)
    else:
        Q = np.empty((n, 0))

    def resid(v: np.ndarray) -> np.ndarray:
        v = demean(v)
        return v - Q @ (Q.T @ v) if Q.shape[1] else v

    targets = np.column_stack([design.ru_sums(resid(y)), design.ru_sums(resid(t_obs))])
    Qsum = design.ru_sums(Q) if Q.shape[1] else np.empty((design.scheme.m, 0))
    if Qsum.ndim == 1:
        Qsum = Qsum[:, None]
    N_b = np.bincount(b, minlength=J).astype(float)

    def coefficient(R: np.ndarray) -> np.ndarray:
        Rd = R.astype(np.float64)
        n1 = design.block_totals(Rd, design.count)
        tmt = (n1 - n1**2 / N_b[None, :]).sum(axis=1)  # T' M_blocks T
        if Qsum.shape[1]:
            tmt = tmt - (_products(R, Qsum) ** 2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _products(R, targets) / tmt[:, None]

    return coefficient


def _invert(null: NullDistribution, estimate: float, scale: float, level: float) -> tuple[float, float]:
    """Confidence interval by inverting the test of tau0 under a constant additive effect.

    For statistics linear in the outcome, stat(Y - tau0 T_obs; T*) = a(T*) - tau0 c(T*), so one set of
    draws of (a, c) gives p(tau0) for every tau0; the interval is {tau0: p(tau0) > 1 - level}.
    """
    a, c = null.draws[:, 0], null.draws[:, 1]
    obs_a, obs_c = float(null.observed[0]), float(null.observed[1])
    valid = ~(np.isnan(a) | np.isnan(c))
    a, c = a[valid], c[valid]
    w = None if null.weights is None else null.weights[valid]
    alpha = 1 - level

    def p(tau0: float) -> float:
        obs = abs(obs_a - tau0 * obs_c)
        extreme = np.abs(a - tau0 * c) >= obs - 1e-6 * obs - 1e-12
        if null.exact:
            return float(np.sum(w[extreme]) / np.sum(w))
        return float((1 + extreme.sum()) / (1 + a.size))

    def edge(direction: int) -> float:
        inside, step = estimate, max(scale, 1e-12 * max(1.0, abs(estimate)))
        outside = estimate + direction * step
        grow = 0
        while p(outside) > alpha:
            inside, outside = outside, outside + direction * step * 2**grow
            grow += 1
            if grow > 60:
                return direction * np.inf
        for _ in range(60):
            mid = (inside + outside) / 2
            if p(mid) > alpha:
                inside = mid
            else:
                outside = mid
        return inside

    if p(estimate) <= alpha:
        return float("nan"), float("nan")
    return edge(-1), edge(+1)


def randomization_test(
    df: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    blocks: str | None = None,
    clusters: str | None = None,
    statistic: Statistic | Callable[[np.ndarray, np.ndarray], np.ndarray] = "difference_in_means",
    covariates: Sequence[str] | None = None,
    n_permutations: int = 10_000,
    seed: int | None = None,
    exact: bool | Literal["auto"] = "auto",
    method: Literal["complete", "simple"] = "complete",
    prob: float | None = None,
    condition1: Any = None,
    condition2: Any = None,
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
    level: float = 0.95,
    design: Any = None,
) -> RCTResult:
    """Fisher randomisation test of the sharp null of no effect for any unit.

    The assignment procedure is re-run ``n_permutations`` times (or every possible assignment is
    enumerated when there are few): complete randomisation keeps the observed number of treated
    units (clusters) in each block; ``method="simple"`` redraws each unit (cluster) independently
    with probability ``prob`` (default: the observed share).

    Parameters
    ----------
    statistic : {"difference_in_means", "studentized", "coefficient"} or callable
        ``difference_in_means``: as :func:`difference_in_means` (block-size weighted with blocks);
        ``studentized``: the same divided by its Neyman standard error (individual randomisation);
        ``coefficient``: OLS coefficient of treatment given ``covariates`` and block effects. A
        callable ``statistic(y, treatment)`` receives the outcome (n,) and a matrix of re-drawn
        0/1 assignments (draws, n) and must return (draws,) values (vectorised).
    covariates : list of str, optional
        Covariates of the ``coefficient`` statistic.
    n_permutations, seed, exact
        Number of draws, seed (recorded in ``settings``; drawn at random when None) and whether to
        enumerate all assignments (``"auto"``: when there are no more than ``n_permutations``).
    alternative : {"two-sided", "greater", "less"}
        Two-sided compares absolute values.
    design : Assignment, optional
        The :class:`~impact.rct.Assignment` that produced the trial (from :func:`assign`): its
        procedure (simple or complete, blocks, clusters, probability) is re-run, so ``blocks``,
        ``clusters``, ``method`` and ``prob`` need not be repeated.

    Returns
    -------
    RCTResult
        Estimate = observed effect (difference in means or coefficient; the statistic itself for a
        callable), p-value from the randomisation distribution, and for the difference in means and
        the coefficient a confidence interval by inverting the test under a constant additive effect
        (Imbens & Rubin 2015, sec. 5.7). The standard error shown is the analytic design-based one.
        ``null_distribution`` holds the draws (histogram in ``figures()``).

    Notes
    -----
    Under :math:`H_0: Y_i(1) = Y_i(0)` for all :math:`i`, the outcomes are fixed and only the assignment
    varies: :math:`p = \\Pr_{T^* \\sim \\mathcal{A}}(|S(Y, T^*)| \\ge |S(Y, T)|)`. With Monte Carlo
    draws :math:`p = (1 + \\#\\{b: |S_b| \\ge |S|\\})/(1 + B)`, exact when enumerated.

    References
    ----------
    Fisher, R. A. (1935). *The Design of Experiments*. Oliver & Boyd.
    Imbens, G. W. and Rubin, D. B. (2015). *Causal Inference for Statistics, Social, and Biomedical
    Sciences*, ch. 5. Cambridge University Press. doi:10.1017/CBO9781139025751.
    Young, A. (2019). Channeling Fisher: randomization tests and the statistical insignificance of
    seemingly significant experimental results. *Quarterly Journal of Economics* 134(2), 557-598.
    doi:10.1093/qje/qjy029.

    Examples
    --------
    >>> import impact as im
    >>> nsw = im.datasets.load("nsw_dw")
    >>> ri = im.rct.randomization_test(nsw, outcome="re78", treatment="treat", n_permutations=2000, seed=1)
    >>> ri.p_value < 0.01
    True
    """
    where = "randomization_test"
    level = check_level(level, where)
    seed = check_seed(seed, where)
    n_permutations = check_integer("n_permutations", n_permutations, where, minimum=1)
    if design is not None:
        from impact.rct.assignment import Assignment

        if not isinstance(design, Assignment):
            raise SpecError(f"{where}: design= must be an Assignment returned by im.rct.assign().")
        if len(design.arms) != 2 and (condition1 is None or condition2 is None):
            raise SpecError(f"{where}: the design has {len(design.arms)} arms; say which two to compare with condition1=/condition2=.")
        blocks = blocks or design.blocks
        clusters = clusters or design.clusters
        if design.method == "simple":
            method = "simple"
            prob = float(design.probabilities.iloc[0, -1]) if prob is None else prob
    custom = callable(statistic)
    if not custom:
        check_option("statistic", statistic, STATISTICS)
    check_option("method", method, ("complete", "simple"))
    check_option("alternative", alternative, ("two-sided", "greater", "less"))
    covs = as_list(covariates)
    if covs and statistic != "coefficient":
        raise SpecError(f"{where}: covariates= are used by statistic='coefficient' only.")
    if seed is None:
        seed = secrets.randbits(32)
    with recording_warnings() as log:
        prepared = prepare(df, where=where, roles={"outcome": outcome, "treatment": treatment, "blocks": blocks,
                                                   "clusters": clusters, "covariates": covs},
                           numeric=[outcome, *covs])
        frame = prepared.frame
        arms = resolve_arms(frame, treatment, condition1, condition2, where)
        frame = frame.loc[arms.keep]
        t = arms.indicator
        check_arms(t, where)
        y = frame[outcome].to_numpy(dtype=float)
        design = build_design(frame, t, blocks=blocks, clusters=clusters, method=method, prob=prob, where=where)
        invertible = statistic in ("difference_in_means", "coefficient")
        if custom:
            expand = design.unit_to_ru

            def stat(R: np.ndarray) -> np.ndarray:
                return np.asarray(statistic(y, R[:, expand].astype(float)), dtype=float).reshape(len(R))
        elif statistic == "difference_in_means":
            stat = _dim_statistic(design, y, t)
        elif statistic == "studentized":
            stat = _studentized_statistic(design, y)
        else:
            Xc = frame[covs].to_numpy(dtype=float) if covs else np.empty((len(y), 0))
            if covs:
                check_rank(np.column_stack([np.ones(len(y)), Xc]), ["(Intercept)", *covs], where)
            stat = _coefficient_statistic(design, y, Xc, t)
        null = null_distribution(stat, design.scheme, n_permutations=n_permutations, seed=seed, exact=exact)
        if invertible:
            first = NullDistribution(null.observed[0], null.draws[:, 0], null.weights, null.exact, null.n_assignments)
        else:
            first = null
        p = float(permutation_p_values(first, alternative))
        observed = float(first.observed)
        # analytic design-based standard error of the same estimate, for scale and reporting
        from impact.rct.estimators import difference_in_means, regression

        sub = frame.assign(**{"__t": t})
        if statistic == "coefficient":
            dummies = pd.get_dummies(frame[blocks], prefix="__b", drop_first=True, dtype=float) if blocks else pd.DataFrame(index=frame.index)
            ref = regression(pd.concat([sub, dummies], axis=1), outcome=outcome, treatment="__t",
                             covariates=covs + list(dummies.columns), clusters=clusters)
            se = ref.std_error
            estimate = observed
        else:
            try:
                ref = difference_in_means(sub, outcome=outcome, treatment="__t", blocks=blocks, clusters=clusters)
                se = ref.std_error
            except DataError:
                se = float("nan")
            estimate = observed if not custom else observed
            if statistic == "studentized":
                estimate = float(_dim_statistic(design, y, None)(design.scheme.labels[None, :].astype(np.int8))[0])
        scale = se if np.isfinite(se) and se > 0 else np.nanstd(first.draws)
        low, high = (_invert(null, estimate, scale, level) if invertible and alternative == "two-sided"
                     else (float("nan"), float("nan")))
        dof = float("inf")
        table = effects_table([arms.term], [estimate], [se if not custom else float("nan")], df=dof, level=level,
                              p_values=[p], conf_low=[low], conf_high=[high])
        if statistic == "studentized":
            table["statistic"] = observed
        how = (f"exact randomisation test over all {null.n_draws:,} assignments" if null.exact
               else f"randomisation test with {null.n_draws:,} draws (seed {seed})")
        stat_name = statistic if not custom else getattr(statistic, "__name__", "custom statistic")
        inference = (f"{how} of the sharp null, statistic: {stat_name}; re-run assignment: {method} randomisation"
                     + (f" within blocks of {blocks!r}" if blocks else "") + (f" of clusters {clusters!r}" if clusters else "")
                     + ("; interval by test inversion (constant effect)" if invertible and alternative == "two-sided" else ""))
        diagnostics = {
            "observed_statistic": observed,
            "n_draws": null.n_draws,
            "exact": null.exact,
            "n_possible_assignments": (int(null.n_assignments) if null.n_assignments <= 1e15
                                       else f"about 10^{design.scheme.log_n_assignments() / np.log(10):.0f}"),
            "alternative": alternative,
            "analytic_std_error": se,
        }
    return RCTResult(
        design="randomization_test", estimand="effect of assignment (test of the sharp null of no effect)", effects=table, headline=arms.term,
        inference=inference, n_obs=len(y), outcome=outcome, level=level, n_treated=int(t.sum()),
        n_clusters=design.scheme.m if clusters else None,
        settings={"treatment": treatment, "blocks": blocks, "clusters": clusters, "statistic": stat_name,
                  "n_permutations": n_permutations, "seed": seed, "exact": exact, "method": method, "prob": prob,
                  "assumption": "Treatment was assigned by the stated randomisation procedure; the test is exact under the sharp null."},
        warnings=tuple(log), sample_flow=prepared.flow, diagnostics=diagnostics,
        null_distribution=first.draws.copy(),
    )


def balance_table(
    df: pd.DataFrame,
    *,
    treatment: str,
    covariates: Sequence[str],
    blocks: str | None = None,
    clusters: str | None = None,
    n_permutations: int = 2_000,
    seed: int | None = None,
    exact: bool | Literal["auto"] = "auto",
    method: Literal["complete", "simple"] = "complete",
    level: float = 0.95,
) -> RCTResult:
    """Baseline balance by arm, with an omnibus randomisation test of joint balance.

    Returns
    -------
    RCTResult
        One effects row per covariate (difference in means treatment - control, Welch SE and
        p-value) and a final row ``"joint (F, randomisation p)"`` whose estimate is the F statistic of
        the regression of treatment on all covariates (with block effects) and whose p-value is from
        re-running the assignment (the headline). ``balance`` holds means, standardised differences
        and variance ratios; ``figures()`` draws the love plot and the randomisation distribution.

    Notes
    -----
    Omnibus statistic: :math:`R^2 = \\|Q'T\\|^2 / T'M_B T` from the regression of :math:`T` on the
    block-demeaned covariates (orthonormal basis :math:`Q`), reported as
    :math:`F = (R^2/k)/((1-R^2)/(n-k-J))`; its p-value is the share of re-drawn assignments with a
    larger :math:`R^2` (Hansen & Bowers 2008 use the same idea with a different statistic).

    References
    ----------
    Hansen, B. B. and Bowers, J. (2008). Covariate balance in simple, stratified and clustered
    comparative studies. *Statistical Science* 23(2), 219-236. doi:10.1214/08-STS254.
    Imbens, G. W. and Rubin, D. B. (2015), ch. 14 (standardised differences).

    Examples
    --------
    >>> import impact as im
    >>> nsw = im.datasets.load("nsw_dw")
    >>> bal = im.rct.balance_table(nsw, treatment="treat", covariates=["age", "educ", "re75"], seed=1)
    """
    where = "balance_table"
    level = check_level(level, where)
    seed = check_seed(seed, where)
    n_permutations = check_integer("n_permutations", n_permutations, where, minimum=1)
    covs = as_list(covariates)
    if not covs:
        raise SpecError(f"{where}: give at least one covariate.")
    if seed is None:
        seed = secrets.randbits(32)
    with recording_warnings() as log:
        prepared = prepare(df, where=where, roles={"treatment": treatment, "covariates": covs, "blocks": blocks,
                                                   "clusters": clusters}, numeric=covs)
        frame = prepared.frame
        arms = resolve_arms(frame, treatment, None, None, where)
        t = arms.indicator
        check_arms(t, where)
        X = frame[covs].to_numpy(dtype=float)
        check_rank(np.column_stack([np.ones(len(t)), X]), ["(Intercept)", *covs], where)
        design = build_design(frame, t, blocks=blocks, clusters=clusters, method=method, prob=None, where=where)
        table = balance_rows(frame, t, covs, blocks=blocks, where=where)
        n, k, J = len(t), X.shape[1], design.n_blocks
        b = design.block_of_unit
        counts = np.bincount(b, minlength=J).astype(float)
        Xd = X - np.column_stack([(np.bincount(b, weights=X[:, j], minlength=J) / counts)[b] for j in range(k)])
        Q, _ = np.linalg.qr(Xd)
        Qsum = design.ru_sums(Q)
        Qsum = Qsum[:, None] if Qsum.ndim == 1 else Qsum

        def r_squared(R: np.ndarray) -> np.ndarray:
            Rd = R.astype(np.float64)
            n1 = design.block_totals(Rd, design.count)
            tmt = (n1 - n1**2 / counts[None, :]).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                return (_products(R, Qsum) ** 2).sum(axis=1) / tmt

        null = null_distribution(r_squared, design.scheme, n_permutations=n_permutations, seed=seed, exact=exact)
        p = float(permutation_p_values(null, "greater"))
        r2 = float(null.observed)
        dof = n - k - J
        F = (r2 / k) / ((1 - r2) / dof)
        F_draws = (null.draws / k) / ((1 - null.draws) / dof)
        terms = [*covs, "joint (F, randomisation p)"]
        effects = effects_table(
            terms,
            [*table["difference"], F],
            [*table["std_error"], float("nan")],
            level=level,
            p_values=[*table["p_value"], p],
        )
        omnibus = {"statistic": "F of treatment on covariates" + (" with block effects" if blocks else ""),
                   "F": F, "r_squared": r2, "df_num": k, "df_denom": dof, "randomization_p_value": p,
                   "classical_p_value": float(stats.f.sf(F, k, dof)), "n_draws": null.n_draws, "exact": null.exact}
    return RCTResult(
        design="balance_table", estimand="baseline differences (should be zero)", effects=effects,
        headline="joint (F, randomisation p)",
        inference=f"Welch t per covariate; joint test by re-running the assignment ({null.n_draws:,} "
                  f"{'assignments, exact' if null.exact else f'draws, seed {seed}'})",
        n_obs=n, outcome=None, level=level, n_treated=int(t.sum()), n_clusters=design.scheme.m if clusters else None,
        settings={"treatment": treatment, "covariates": covs, "blocks": blocks, "clusters": clusters,
                  "n_permutations": n_permutations, "seed": seed, "method": method},
        warnings=tuple(log), sample_flow=prepared.flow,
        diagnostics={"balance": table, "omnibus": omnibus, "observed_statistic": F},
        balance=table, null_distribution=F_draws,
    )

