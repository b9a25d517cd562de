"""Restricted wild cluster bootstrap (WCR) for one coefficient of a linear model.

Implements the wild cluster restricted bootstrap of Cameron, Gelbach & Miller (2008) with
Rademacher or Webb (2023) six-point weights, the symmetric p-value, and a confidence interval by
test inversion, as in Stata/R ``boottest`` (Roodman, MacKinnon, Nielsen & Webb 2019).

The computation never forms bootstrap samples. By Frisch-Waugh-Lovell, with x~ the tested column
partialled out of the others (Z), the restricted residuals at a null value b are u(b) = y~ - b x~,
and every bootstrap statistic is a function of G-vectors and G x G matrices that are linear in b:

    score*_g = sum_h v_h T_gh(b),   T(b) = diag(s) - C (Z'Z)^-1 F' - s a'   (see ``_cluster_terms``)

so one (B x G) @ (G x G) product per null value gives all B statistics. The design passed in must
already have absorbed any fixed effects that are nested within clusters (their projection of
u * v is zero), with the others as explicit columns.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from impact.errors import EstimationError, SpecError
from impact.inference.resampling import chunk_generators, chunk_starts, map_chunks
from impact.inference.vcov import group_sums

__all__ = ["WEIGHT_TYPES", "WILD_FEW_TREATED", "WildBootstrap", "bootstrap_weights", "warn_wild_few_treated",
           "wild_cluster_bootstrap"]

WEIGHT_TYPES = ("webb", "rademacher")
_WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])


@dataclass(frozen=True)
class WildBootstrap:
    """Outcome of a wild cluster bootstrap test of one coefficient."""

    estimate: float
    std_error: float
    statistic: float
    p_value: float
    conf_low: float
    conf_high: float
    n_bootstrap: int
    weight_type: str
    enumerated: bool
    n_weight_groups: int | None = None  # clusters, or subclusters for the subcluster bootstrap
    subcluster: bool = False

    def draws_text(self, n_clusters: int, enumerate_up_to: int = 20) -> str:
        """How the weights were obtained, in words (full enumeration or random draws, and why)."""
        if self.subcluster:
            by = f"weights by {self.n_weight_groups:,} subclusters (MacKinnon & Webb 2018)"
            if self.enumerated:
                return f"all {self.n_bootstrap:,} Rademacher sign vectors enumerated, {by}"
            return f"{self.n_bootstrap:,} random draws, {by}"
        if self.enumerated:
            return f"all {self.n_bootstrap:,} Rademacher sign vectors of the {n_clusters} clusters enumerated"
        why = ("Webb weights are always drawn" if self.weight_type == "webb" else
               f"full enumeration needs at most {enumerate_up_to} clusters and 2^G <= n_bootstrap")
        return f"{self.n_bootstrap:,} random draws ({why})"


def bootstrap_weights(n_draws: int, n_clusters: int, *, weight_type: str, seed: int | None,
                      enumerate_up_to: int = 20) -> tuple[np.ndarray, bool]:
    """Cluster weights (n_draws x G): Rademacher or Webb; all 2^G sign vectors when 2^G <= n_draws and
    G <= ``enumerate_up_to`` (the result's ``enumerated`` flag records which was done)."""
    if _enumerates(n_draws, n_clusters, weight_type, enumerate_up_to):
        return np.array(list(itertools.product((-1.0, 1.0), repeat=n_clusters))), True
    starts = chunk_starts(n_draws)
    generators = chunk_generators(seed, len(starts))
    return np.concatenate([_drawn_weights(rng, n, n_clusters, weight_type)
                           for rng, n in zip(generators, np.diff([*starts, n_draws]), strict=True)]), False


def _enumerates(n_draws: int, n_clusters: int, weight_type: str, enumerate_up_to: int) -> bool:
    """Check the options; True when all 2^G Rademacher sign vectors are used instead of draws."""
    if weight_type not in WEIGHT_TYPES:
        raise SpecError(f"weight_type={weight_type!r} is not valid; choose one of {WEIGHT_TYPES}.")
    if not isinstance(enumerate_up_to, int | np.integer) or isinstance(enumerate_up_to, bool) or not 0 <= enumerate_up_to <= 25:
        raise SpecError(f"enumerate_up_to must be an integer between 0 and 25 (2^25 sign vectors); got {enumerate_up_to!r}.")
    return weight_type == "rademacher" and n_clusters <= enumerate_up_to and 2**n_clusters <= n_draws


def _drawn_weights(rng: np.random.Generator, n_draws: int, n_clusters: int, weight_type: str) -> np.ndarray:
    """One chunk of random weights: each chunk draws from its own stream (impact.inference.resampling)."""
    if weight_type == "rademacher":
        return rng.choice(np.array([-1.0, 1.0]), size=(int(n_draws), n_clusters))
    return _WEBB[rng.integers(0, 6, size=(int(n_draws), n_clusters))]


def _weighted_terms(terms: tuple[np.ndarray, ...], n_draws: int, G: int, *, weight_type: str, seed: int | None,
                    enumerate_up_to: int, n_jobs: int | None) -> tuple[tuple[np.ndarray, ...], int, bool]:
    """``V @ term`` for every term, with V the weights of :func:`bootstrap_weights`, made in chunks of
    draws that run here or on workers with the same numbers (:mod:`impact.inference.resampling`)."""
    enumerated = _enumerates(n_draws, G, weight_type, enumerate_up_to)
    grid = bootstrap_weights(n_draws, G, weight_type=weight_type, seed=None, enumerate_up_to=enumerate_up_to)[0] if enumerated else None
    total = len(grid) if enumerated else n_draws
    starts = chunk_starts(total)
    ends = [*starts[1:], total]
    generators = None if enumerated else chunk_generators(seed, len(starts))

    def work(i: int) -> tuple[np.ndarray, ...]:
        V = grid[starts[i] : ends[i]] if enumerated else _drawn_weights(generators[i], ends[i] - starts[i], G, weight_type)
        return tuple(V @ term for term in terms)

    parts = map_chunks(work, len(starts), n_jobs=n_jobs)
    return tuple(np.concatenate([part[j] for part in parts]) for j in range(len(terms))), total, enumerated


def _cluster_terms(x: np.ndarray, r: np.ndarray, Z: np.ndarray, ZtZ_inv: np.ndarray,
                   clusters: np.ndarray, G: int, groups: np.ndarray | None = None,
                   cluster_of_group: np.ndarray | None = None) -> np.ndarray:
    """T (H x G) with score*_g = sum_h v_h T[h, g] for residual vector r, where the bootstrap weights
    v are drawn per weight group h (the clusters themselves, or subclusters nested in them)."""
    def csum(values: np.ndarray) -> np.ndarray:
        return group_sums(clusters, values, G)

    if groups is None or cluster_of_group is None:
        groups, cluster_of_group = clusters, np.arange(G)
    H = len(cluster_of_group)
    xtx = float(x @ x)
    s = group_sums(groups, x * r, H)      # s_h = x~_h' r_h
    a = csum(x * x) / xtx                 # a_g = x~_g' x~_g / x~'x~
    T = -np.outer(s, a)                   # T[h, g]: effect of weight group h's weight on cluster g's score
    T[np.arange(H), cluster_of_group] += s
    if Z.shape[1]:
        F = csum(Z * x[:, None])          # F_g = Z_g' x~_g   (G x kz)
        C = group_sums(groups, Z * r[:, None], H)  # C_h = Z_h' r_h    (H x kz)
        T -= C @ ZtZ_inv @ F.T
    return T


def wild_cluster_bootstrap(
    X: np.ndarray,
    y: np.ndarray,
    clusters: np.ndarray,
    *,
    coef: int,
    weights: np.ndarray | None = None,
    n_clusters: int | None = None,
    null: float = 0.0,
    weight_type: str = "webb",
    n_bootstrap: int = 9_999,
    seed: int | None = None,
    level: float = 0.95,
    absorbed: int = 0,
    enumerate_up_to: int = 20,
    subclusters: np.ndarray | None = None,
    n_jobs: int | None = None,
    where: str = "wild_cluster_bootstrap",
) -> WildBootstrap:
    """Restricted wild cluster bootstrap test and confidence interval for coefficient ``coef``.

    Parameters
    ----------
    X, y : ndarray
        Design and outcome after absorbing fixed effects nested within clusters.
    clusters : ndarray of int codes 0..G-1
    coef : int
        Column of X that is tested.
    weights : ndarray, optional
        Analytic weights (the model is transformed by sqrt(w)).
    null : float
        Value of the coefficient under the null hypothesis for the reported p-value.
    weight_type : {"webb", "rademacher"}
        Webb's six-point distribution is recommended with fewer than about 12 clusters.
    n_bootstrap : int
        Draws (Rademacher draws are enumerated exactly when 2^G <= n_bootstrap and G <= ``enumerate_up_to``).
    enumerate_up_to : int
        Largest number of clusters whose 2^G Rademacher sign vectors are enumerated (default 20);
        above it random draws are used. ``WildBootstrap.draws_text`` says which.
    absorbed : int
        Absorbed fixed-effect parameters, for the CR1 small-sample factor of the t statistic.
    subclusters : ndarray of int codes 0..S-1, optional
        The subcluster wild bootstrap of MacKinnon & Webb (2018): the bootstrap weights are drawn per
        subcluster (e.g. unit within region, or observation) while the t statistic keeps the
        cluster-robust variance by ``clusters``. Every subcluster must lie within one cluster, and the
        absorbed fixed effects must be nested within subclusters. With few (treated) clusters the
        ordinary WCR bootstrap has too few distinct draws and under-rejects badly; bootstrapping by
        subcluster restores power at little cost in size when the within-cluster correlation is modest.
    n_jobs : int, optional
        Split the chunks of weights over this many workers of joblib's active backend (-1: one per
        core); default: the enclosing :func:`impact.inference.resampling.parallel_draws`, else 1. The
        draws are the same for a given seed whatever the number of workers.
    where : str
        The caller's name, to prefix error messages.

    Notes
    -----
    The t statistics use the CR1 variance (G/(G-1) (n-1)/(n-K)); the factor cancels in the
    bootstrap comparison but sets the reported standard error. The interval collects the null values
    not rejected at 1 - ``level`` (bisection on each side of the estimate with the same draws).

    References
    ----------
    Cameron, A. C., Gelbach, J. B., & Miller, D. L. (2008). Bootstrap-based improvements for inference
    with clustered errors. *Review of Economics and Statistics*, 90(3), 414-427.
    https://doi.org/10.1162/rest.90.3.414
    Webb, M. D. (2023). Reworking wild bootstrap-based inference for clustered errors. *Canadian
    Journal of Economics*, 56(3), 839-858. https://doi.org/10.1111/caje.12661
    Roodman, D., MacKinnon, J. G., Nielsen, M. O., & Webb, M. D. (2019). Fast and wild: Bootstrap
    inference in Stata using boottest. *Stata Journal*, 19(1), 4-60.
    https://doi.org/10.1177/1536867X19830877
    MacKinnon, J. G., & Webb, M. D. (2018). The wild bootstrap for few (treated) clusters.
    *Econometrics Journal*, 21(2), 114-135. https://doi.org/10.1111/ectj.12107
    """
    if n_bootstrap < 99:
        raise SpecError(f"n_bootstrap={n_bootstrap} is too small for a bootstrap p-value; use at least 999.")
    G = int(n_clusters if n_clusters is not None else clusters.max() + 1)
    if G < 2:
        raise EstimationError(f"the wild cluster bootstrap needs at least 2 clusters, got {G}.")
    if weights is not None:
        root = np.sqrt(weights)
        X = X * root[:, None]
        y = y * root
    n, k = X.shape
    x = X[:, coef]
    Z = np.delete(X, coef, axis=1)
    ZtZ_inv = np.linalg.pinv(Z.T @ Z) if Z.shape[1] else np.zeros((0, 0))
    # partial the other regressors out of x and y
    x_t = x - Z @ (ZtZ_inv @ (Z.T @ x)) if Z.shape[1] else x.copy()
    y_t = y - Z @ (ZtZ_inv @ (Z.T @ y)) if Z.shape[1] else y.copy()
    xtx = float(x_t @ x_t)
    if xtx <= 1e-12 * max(1.0, float(x @ x)):
        raise EstimationError("the tested coefficient is collinear with the other regressors.")
    beta = float(x_t @ y_t) / xtx
    resid = y_t - beta * x_t
    factor = G / (G - 1) * (n - 1) / (n - k - absorbed)
    score = np.bincount(clusters, weights=x_t * resid, minlength=G)
    se = math.sqrt(factor * float(score @ score)) / xtx

    groups, cluster_of_group = clusters, None
    if subclusters is not None:
        groups, cluster_of_group = _check_subclusters(subclusters, clusters, G, where)
    H = G if cluster_of_group is None else len(cluster_of_group)
    # restricted residuals are linear in the null value b: u(b) = y~ - b x~
    terms = (_cluster_terms(x_t, y_t, Z, ZtZ_inv, clusters, G, groups, cluster_of_group),
             _cluster_terms(x_t, x_t, Z, ZtZ_inv, clusters, G, groups, cluster_of_group),
             np.bincount(groups, weights=x_t * y_t, minlength=H), np.bincount(groups, weights=x_t * x_t, minlength=H))
    (VT_y, VT_x, Vs_y, Vs_x), n_draws, enumerated = _weighted_terms(
        terms, n_bootstrap, H, weight_type=weight_type, seed=seed, enumerate_up_to=enumerate_up_to, n_jobs=n_jobs)

    def p_value(b: float) -> float:
        scores = VT_y - b * VT_x                      # B x G bootstrap cluster scores
        num = (Vs_y - b * Vs_x) / xtx                 # beta* - b
        den = np.sqrt(factor * np.einsum("ij,ij->i", scores, scores)) / xtx
        with np.errstate(divide="ignore", invalid="ignore"):
            t_star = np.where(den > 0, num / den, 0.0)
        t_obs = (beta - b) / se
        return float(np.mean(np.abs(t_star) >= abs(t_obs) - 1e-12 * max(1.0, abs(t_obs))))

    alpha = 1 - level
    p_null = p_value(null)

    def bound(direction: float) -> float:
        inside, step = beta, se
        outside = beta + direction * step
        for _ in range(60):
            if p_value(outside) < alpha:
                break
            inside, step = outside, step * 2
            outside = beta + direction * step
        else:
            return direction * math.inf
        for _ in range(60):
            mid = (inside + outside) / 2
            if p_value(mid) < alpha:
                outside = mid
            else:
                inside = mid
            if abs(outside - inside) <= 1e-7 * max(se, 1e-12):
                break
        return (inside + outside) / 2

    low, high = bound(-1.0), bound(1.0)
    return WildBootstrap(beta, se, (beta - null) / se, p_null, low, high, n_draws, weight_type, enumerated,
                         n_weight_groups=H, subcluster=subclusters is not None)


def _check_subclusters(subclusters: np.ndarray, clusters: np.ndarray, G: int,
                       where: str = "wild_cluster_bootstrap") -> tuple[np.ndarray, np.ndarray]:
    """Subcluster codes 0..S-1 and the cluster of each; raises when a subcluster spans clusters."""
    sub = np.asarray(subclusters)
    if sub.shape != clusters.shape:
        raise SpecError(f"{where}: subclusters must have one code per row ({clusters.shape[0]}); got shape {sub.shape}.")
    codes = np.unique(sub, return_inverse=True)[1].reshape(-1).astype(np.int64)
    S = int(codes.max()) + 1
    cluster_of = np.full(S, -1, dtype=np.int64)
    cluster_of[codes] = clusters
    if np.any(cluster_of[codes] != clusters):
        spanning = int(np.count_nonzero(np.bincount(codes[cluster_of[codes] != clusters], minlength=S)))
        raise SpecError(
            f"{where}: {spanning} subcluster(s) span more than one cluster; the subcluster wild bootstrap needs subclusters "
            "nested within clusters (e.g. units within regions, or unit x period cells).")
    if S <= G:
        raise SpecError(f"{where}: {S} subclusters for {G} clusters: subclusters must be finer than the clusters "
                        "(e.g. units within regions, or unit x period cells); with subclusters equal to the clusters "
                        "drop bootstrap_subcluster= for the ordinary wild cluster bootstrap.")
    return codes, cluster_of


#: with this many treated clusters or fewer, the restricted wild cluster bootstrap has no power
#: (MacKinnon & Webb 2017, 2018; README table: 0.00 rejections with 1-2 treated regions of 20)
WILD_FEW_TREATED = 2


def warn_wild_few_treated(treated: np.ndarray, clusters: np.ndarray, n_clusters: int, subcluster: bool,
                          where: str) -> None:
    """FewTreatedClustersWarning when at most ``WILD_FEW_TREATED`` clusters hold treated rows (``treated``
    nonzero): the designs that offer ``vcov="wild"`` (twfe, event_study) say what to do instead."""
    from impact.errors import FewTreatedClustersWarning, warn

    n_treated = int(np.count_nonzero(np.bincount(clusters[np.asarray(treated) != 0], minlength=n_clusters)))
    if n_treated > WILD_FEW_TREATED:
        return
    advice = ("the subcluster bootstrap used here is valid only if errors are not strongly correlated within "
              "clusters" if subcluster else
              "bootstrap by subcluster (bootstrap_subcluster=, MacKinnon & Webb 2018) or use inference='randomization'")
    warn(FewTreatedClustersWarning,
         f"{where}: wild bootstrap with few treated clusters: only {n_treated} of {n_clusters} clusters are treated, "
         "and the restricted wild cluster bootstrap then has almost no power (its p-values bunch near 1 and its "
         f"intervals are very wide; MacKinnon & Webb 2017, 2018); {advice}.")
