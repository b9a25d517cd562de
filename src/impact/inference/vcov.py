"""Covariance matrices for linear estimators, written once for every design.

``linear_vcov`` takes the design (after any fixed effects were absorbed), residuals, optional
analytic weights and clusters, and returns a :class:`Covariance` with the matrix and the degrees
of freedom to use for t tests. Conventions:

=============  ==================================================================================
``iid``        s^2 (X'WX)^-1, t with n - K df
``HC0``        White; ``HC1`` scales by n / (n - K); ``HC2``/``HC3`` divide e_i^2 by (1 - h_ii)^(1|2)
``CR0``        cluster sandwich without correction, t with G - 1 df
``cluster``    = ``CR1``: Stata's factor G/(G-1) * (n-1)/(n-K), K counting every absorbed effect
``CR1-fixest`` fixest's ``ssc()`` default: G/(G-1) * (n-1)/(n-K) with K = coefficients + fixed
               effects - those nested in the clusters + one per nested set (fixest issue #554);
               the other ``ssc`` switches via :func:`ssc`
``CR2``        Bell & McCaffrey (2002) bias-reduced sandwich with the Satterthwaite degrees of
               freedom of Pustejovsky & Tipton (2018), as R ``clubSandwich`` (working model: the
               inverse of the analytic weights)
=============  ==================================================================================

K is the number of estimated coefficients plus the number of absorbed fixed-effect parameters.
Weighted fits are handled by transforming with sqrt(w), so every formula is the unweighted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import linalg, stats

from impact.errors import EstimationError, SpecError

__all__ = [
    "VcovKind", "VCOV_KINDS", "Covariance", "linear_vcov", "wald_test", "bread", "group_sums",
    "SmallSampleCorrection", "ssc", "cr2_cluster_terms",
]

VcovKind = Literal["iid", "HC0", "HC1", "HC2", "HC3", "CR0", "cluster", "CR1", "CR1-fixest", "CR2", "wild"]
VCOV_KINDS: tuple[str, ...] = ("iid", "HC0", "HC1", "HC2", "HC3", "CR0", "cluster", "CR1", "CR1-fixest", "CR2", "wild")
CLUSTER_KINDS = ("CR0", "cluster", "CR1", "CR1-fixest", "CR2", "wild")


FIXEF_K = ("nested", "none", "full")
T_DF = ("min", "conventional")


@dataclass(frozen=True)
class SmallSampleCorrection:
    """fixest's small-sample correction switches (R ``fixest::ssc()``, pyfixest ``ssc()``).

    Used by ``vcov="CR1-fixest"``; the defaults are fixest's, so ``SmallSampleCorrection()`` is what
    ``feols(..., cluster = ~g)`` reports. Build it with :func:`ssc`.

    Attributes
    ----------
    adj : bool
        Multiply by ``(n - 1) / (n - K)`` (fixest ``adj``, pyfixest ``k_adj``).
    fixef_K : {"nested", "none", "full"}
        How K counts the absorbed fixed effects (fixest ``fixef.K``; fixest >= 0.13 and pyfixest
        call ``"nested"`` ``"nonnested"``): ``"nested"`` counts every fixed effect except those
        nested in the clusters, adding back one per nested set; ``"none"`` counts none (K = the
        reported coefficients); ``"full"`` counts all.
    cluster_adj : bool
        Multiply by ``G / (G - 1)`` (fixest ``cluster.adj``, pyfixest ``G_adj``).
    t_df : {"min", "conventional"}
        Degrees of freedom of the t tests: ``G - 1`` (``"min"``, fixest's default) or ``n - K``.
    """

    adj: bool = True
    fixef_K: Literal["nested", "none", "full"] = "nested"
    cluster_adj: bool = True
    t_df: Literal["min", "conventional"] = "min"

    def __post_init__(self) -> None:
        if not isinstance(self.adj, bool) or not isinstance(self.cluster_adj, bool):
            raise SpecError(f"ssc: adj and cluster_adj must be True or False; got adj={self.adj!r}, cluster_adj={self.cluster_adj!r}.")
        if self.fixef_K not in FIXEF_K:
            raise SpecError(f"ssc: fixef_K={self.fixef_K!r} is not one of {FIXEF_K} (fixest's fixef.K).")
        if self.t_df not in T_DF:
            raise SpecError(f"ssc: t_df={self.t_df!r} is not one of {T_DF} (fixest's t.df).")

    def n_parameters(self, k: int, absorbed: int, absorbed_nested: int, nested_sets: int) -> int:
        """K of ``(n - 1) / (n - K)``: ``k`` reported coefficients plus the fixed effects counted."""
        if self.fixef_K == "none":
            return k
        if self.fixef_K == "full":
            return k + absorbed
        return k + absorbed - absorbed_nested + nested_sets


def ssc(
    *, adj: bool = True, fixef_K: Literal["nested", "none", "full"] = "nested", cluster_adj: bool = True,
    t_df: Literal["min", "conventional"] = "min",
) -> SmallSampleCorrection:
    """fixest's ``ssc()``: small-sample correction switches for ``vcov="CR1-fixest"``.

    Examples
    --------
    >>> import impact as im
    >>> im.inference.ssc(fixef_K="full", t_df="conventional")
    SmallSampleCorrection(adj=True, fixef_K='full', cluster_adj=True, t_df='conventional')
    """
    return SmallSampleCorrection(adj=adj, fixef_K=fixef_K, cluster_adj=cluster_adj, t_df=t_df)


@dataclass(frozen=True)
class Covariance:
    """A covariance matrix with the degrees of freedom for its t tests (``inf`` = normal)."""

    matrix: np.ndarray
    df: np.ndarray
    kind: str
    n_clusters: int | None
    description: str

    @property
    def std_errors(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.matrix), 0, None))


def bread(X: np.ndarray, where: str = "estimator") -> np.ndarray:
    """(X'X)^-1 via Cholesky; raises EstimationError when X'X is singular."""
    xtx = X.T @ X
    try:
        factor = linalg.cho_factor(xtx, lower=False, check_finite=False)
        return linalg.cho_solve(factor, np.eye(xtx.shape[0]), check_finite=False)
    except linalg.LinAlgError as exc:
        raise EstimationError(
            f"{where}: X'X is singular, so the coefficients are not identified; check the covariates "
            "for collinearity."
        ) from exc


def _inv_sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric inverse square root, with a generalised inverse on (numerically) null directions."""
    vals, vecs = np.linalg.eigh((matrix + matrix.T) / 2)
    tol = max(matrix.shape) * np.finfo(float).eps * max(1.0, float(np.abs(vals).max())) * 100
    inv = np.where(vals > tol, 1.0 / np.sqrt(np.clip(vals, tol, None)), 0.0)
    return (vecs * inv) @ vecs.T


def group_sums(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of ``values`` (n or n x k) within groups coded 0..G-1: G or G x k (one bincount
    per column: linear time, no n x G indicator matrix)."""
    if values.ndim == 1:
        return np.bincount(codes, weights=values, minlength=n_groups)
    n_clusters = n_groups
    out = np.empty((n_clusters, values.shape[1]))
    for j in range(values.shape[1]):
        out[:, j] = np.bincount(codes, weights=values[:, j], minlength=n_clusters)
    return out


def linear_vcov(
    X: np.ndarray,
    resid: np.ndarray,
    *,
    kind: str,
    weights: np.ndarray | None = None,
    clusters: np.ndarray | None = None,
    n_clusters: int | None = None,
    absorbed: int = 0,
    absorbed_nested: int = 0,
    leverage_absorbed: np.ndarray | None = None,
    df_for: int | None = None,
    where: str = "estimator",
    nested_sets: int | None = None,
    small_sample: SmallSampleCorrection | None = None,
) -> Covariance:
    """Covariance of OLS/WLS coefficients.

    Parameters
    ----------
    X : ndarray (n, k)
        Design of the reported coefficients, after absorbing fixed effects (within transformation).
    resid : ndarray (n,)
        Residuals of the full model.
    kind : str
        One of ``iid``, ``HC0``-``HC3``, ``CR0``, ``cluster``/``CR1``, ``CR1-fixest``, ``CR2``.
    weights : ndarray (n,), optional
        Analytic (inverse-variance) weights of a WLS fit.
    clusters : ndarray (n,) of int codes 0..G-1, optional
        Required for the CR kinds.
    absorbed, absorbed_nested : int
        Number of absorbed fixed-effect parameters, and how many of them are nested within clusters.
    leverage_absorbed : ndarray (n,), optional
        Leverage of the absorbed fixed effects (HC2/HC3 only; e.g. w_i / sum of w in i's unit).
        For CR2, absorbed effects must be nested within clusters; include the others in X.
    df_for : int, optional
        CR2 only: compute Satterthwaite df for the first ``df_for`` coefficients (others get NaN);
        the degrees of freedom cost grows with the number of coefficients.
    nested_sets : int, optional
        ``CR1-fixest`` only: how many fixed-effect sets are nested in the clusters (default: one
        when ``absorbed_nested`` > 0); fixest adds one parameter back per nested set.
    small_sample : SmallSampleCorrection, optional
        ``CR1-fixest`` only: fixest's ``ssc()`` switches (default: fixest's defaults).
    """
    if kind not in VCOV_KINDS or kind == "wild":
        raise SpecError(f"vcov={kind!r} is not a covariance matrix kind; choose one of {VCOV_KINDS[:-1]}.")
    n, k = X.shape
    X_raw, resid_raw = X, resid
    if weights is not None:
        root = np.sqrt(weights)
        X = X * root[:, None]
        resid = resid * root
    K = k + absorbed
    if n - K <= 0:
        raise EstimationError(f"{where}: {n} observations cannot identify {K} parameters.")
    M = bread(X, where)
    full = np.full(k, float(n - K))

    if kind == "iid":
        sigma2 = float(resid @ resid) / (n - K)
        return Covariance(sigma2 * M, full, kind, None, f"classical OLS (iid errors), t with {n - K} df")

    if kind in ("HC0", "HC1", "HC2", "HC3"):
        e2 = resid**2
        if kind in ("HC2", "HC3"):
            h = np.einsum("ij,jk,ik->i", X, M, X)
            if leverage_absorbed is not None:
                h = h + leverage_absorbed
            elif absorbed:
                raise SpecError(f"{where}: {kind} needs the leverage of the absorbed fixed effects.")
            one_minus = np.clip(1 - h, 1e-12, None)
            e2 = e2 / (one_minus if kind == "HC2" else one_minus**2)
        meat = (X * e2[:, None]).T @ X
        V = M @ meat @ M
        if kind == "HC1":
            V *= n / (n - K)
        return Covariance(V, full, kind, None, f"heteroskedasticity-robust ({kind}), t with {n - K} df")

    if clusters is None:
        raise SpecError(f"{where}: vcov={kind!r} needs a cluster variable.")
    G = int(n_clusters if n_clusters is not None else clusters.max() + 1)
    if G < 2:
        raise EstimationError(f"{where}: cluster-robust inference needs at least 2 clusters, got {G}.")

    if kind != "CR2":
        scores = group_sums(clusters, X * resid[:, None], G)
        V = M @ (scores.T @ scores) @ M
        if kind in ("cluster", "CR1"):
            V *= G / (G - 1) * (n - 1) / (n - K)
            label = "CR1 (Stata small-sample factor)"
        elif kind == "CR1-fixest":
            switches = small_sample if small_sample is not None else SmallSampleCorrection()
            sets = (1 if absorbed_nested > 0 else 0) if nested_sets is None else nested_sets
            K_fixest = switches.n_parameters(k, absorbed, absorbed_nested, sets)
            if n - K_fixest <= 0:
                raise EstimationError(f"{where}: {n} observations cannot identify {K_fixest} parameters.")
            V *= (G / (G - 1) if switches.cluster_adj else 1.0) * ((n - 1) / (n - K_fixest) if switches.adj else 1.0)
            dof = float(G - 1) if switches.t_df == "min" else float(n - K_fixest)
            label = (
                "CR1 (fixest small-sample factor" + ("" if small_sample is None or small_sample == SmallSampleCorrection()
                                                     else f": {small_sample}") + ")"
            )
            return Covariance(V, np.full(k, dof), kind, G, f"cluster-robust {label}, {G} clusters, t with {dof:.0f} df")
        else:
            label = "CR0"
        return Covariance(V, np.full(k, float(G - 1)), kind, G, f"cluster-robust {label}, {G} clusters, t with {G - 1} df")

    if absorbed > absorbed_nested:
        raise SpecError(
            f"{where}: CR2 needs fixed effects that are nested within clusters to be absorbed and the "
            "others included as columns of X."
        )
    return _cr2(X_raw, resid_raw, weights, M, clusters, G, df_for if df_for is not None else k)


def _low_rank_adjustment(Xg: np.ndarray, wg: np.ndarray, M: np.ndarray, MSM: np.ndarray):
    """``y -> B_g^(-1/2) y`` for one cluster without forming the n_g x n_g matrix.

    ``B_g = I - X_g M X_g' W_g - W_g X_g M X_g' + X_g MSM X_g'`` differs from the identity only on
    the span of ``Z = [X_g, W_g X_g]`` (at most 2k columns): ``B_g = I + Z K Z'`` with
    ``K = [[MSM, -M], [-M, 0]]`` (with equal weights c, ``Z = X_g`` and ``K = MSM - 2c M``). With the
    thin QR factorisation ``Z = Q R`` (Q orthonormal; R may be singular),
    ``B_g = (I - QQ') + Q (I + R K R') Q'``, so ``B_g^(-1/2) = (I - QQ') + Q E Q'`` with
    ``E = (I + R K R')^(-1/2)``: a small eigen-decomposition instead of an n_g x n_g one. Null
    directions get a zero, with the same tolerance as :func:`_inv_sqrt_psd` on the full matrix
    (clubSandwich's pseudo-inverse square root), so results equal the dense formula.
    """
    n_g, k = Xg.shape
    if np.all(wg == wg[0]):
        Z, K = Xg, MSM - 2.0 * wg[0] * M
    else:
        Z = np.concatenate([Xg, Xg * wg[:, None]], axis=1)
        K = np.zeros((2 * k, 2 * k))
        K[:k, :k] = MSM
        K[:k, k:] = -M
        K[k:, :k] = -M
    Q, R = np.linalg.qr(Z)
    small = np.eye(Q.shape[1]) + R @ K @ R.T
    vals, vecs = np.linalg.eigh((small + small.T) / 2)
    tol = n_g * np.finfo(float).eps * max(1.0, float(np.abs(vals).max(initial=1.0))) * 100
    E = (vecs * np.where(vals > tol, 1.0 / np.sqrt(np.clip(vals, tol, None)), 0.0)) @ vecs.T

    def apply(y: np.ndarray) -> np.ndarray:
        projected = Q.T @ y
        return y - Q @ projected + Q @ (E @ projected)

    return apply


def cr2_cluster_terms(X: np.ndarray, resid: np.ndarray, weights: np.ndarray | None, M: np.ndarray,
                      clusters: np.ndarray, G: int, directions: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-cluster pieces of the CR2 sandwich and of its sampling variance under the working model.

    For WLS with weights W and working model Phi = I (clubSandwich's default for weighted ``lm``):
    B_g = [(I - H)(I - H)']_gg with H = X M X'W, A_g = B_g^(-1/2) (pseudo-inverse on null directions),
    meat_g = X_g' W_g A_g e_g. For the q contrasts L (``directions``, k x q) of the coefficients,
    v_g = A_g W_g X_g L (n_g x q) and the returned arrays are D_g = v_g'v_g, P_g = X_g'v_g and
    Qw_g = X_g'W_g v_g, from which the covariance of the q x q blocks of L' V^CR2 L between clusters
    g and h is Theta_gh = delta_gh D_g - Qw_g'M P_h - P_g'M Qw_h + P_g'(M X'W^2X M) P_h
    (Pustejovsky & Tipton 2018, eq. 8 and the proof of Theorem 1). Clusters with more than 4k rows
    apply A_g through the low-rank structure of B_g (:func:`_low_rank_adjustment`), so the cost is
    linear in the cluster size, not cubic.

    Returns ``(meat_scores (G x k), D (G x q x q), P (G x k x q), Qw (G x k x q), MSM)``.
    """
    n, k = X.shape
    q = directions.shape[1]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    S = (X * (w**2)[:, None]).T @ X
    MSM = M @ S @ M
    order = np.argsort(clusters, kind="stable")
    bounds = np.searchsorted(clusters[order], np.arange(G + 1))
    meat_scores = np.empty((G, k))
    D = np.empty((G, q, q))
    P = np.empty((G, k, q))
    Qw = np.empty((G, k, q))
    for g in range(G):
        idx = order[bounds[g] : bounds[g + 1]]
        Xg, wg = X[idx], w[idx]
        if len(idx) > 4 * k:  # large cluster: work in the span of [X_g, W_g X_g] (O(n_g k^2))
            apply_A = _low_rank_adjustment(Xg, wg, M, MSM)
        else:
            XMX = Xg @ M @ Xg.T
            B = np.eye(len(idx)) - XMX * wg[None, :] - wg[:, None] * XMX + Xg @ MSM @ Xg.T
            apply_A = _inv_sqrt_psd(B).__matmul__
        meat_scores[g] = (Xg * wg[:, None]).T @ apply_A(resid[idx])
        if q:
            v = apply_A((Xg * wg[:, None]) @ directions)
            D[g] = v.T @ v
            P[g] = Xg.T @ v
            Qw[g] = (Xg * wg[:, None]).T @ v
    return meat_scores, D, P, Qw, MSM


def _cr2(X: np.ndarray, resid: np.ndarray, weights: np.ndarray | None, M: np.ndarray, clusters: np.ndarray,
         G: int, df_for: int) -> Covariance:
    """Bell-McCaffrey CR2 with Pustejovsky-Tipton (2018) Satterthwaite df, identity working model.

    The df of coefficient c is tr(Omega)^2 / sum(Omega^2) with Omega_gh = Theta_gh of
    :func:`cr2_cluster_terms` for the single direction L = M c. Without weights this reduces to
    A_g = (I - X_g M X_g')^(-1/2) and Omega = diag(|v|^2) - P M P'.
    """
    k = X.shape[1]
    meat_scores, D, P, Qw, MSM = cr2_cluster_terms(X, resid, weights, M, clusters, G, M[:, :df_for])
    V = M @ (meat_scores.T @ meat_scores) @ M
    df = np.full(k, np.nan)
    for j in range(df_for):
        Pj, Qj = P[:, :, j], Qw[:, :, j]  # G x k
        cross = Qj @ M @ Pj.T
        omega = np.diag(D[:, j, j]) - cross - cross.T + Pj @ MSM @ Pj.T
        df[j] = np.trace(omega) ** 2 / float((omega**2).sum())
    return Covariance(V, df, "CR2", G, f"cluster-robust CR2 (Bell-McCaffrey), {G} clusters, Satterthwaite df")


def wald_test(
    estimates: np.ndarray,
    vcov: np.ndarray,
    *,
    df_denom: float = math.inf,
    null: np.ndarray | None = None,
) -> dict[str, float]:
    """Joint Wald test that all ``estimates`` equal ``null`` (default zero).

    With finite ``df_denom`` the statistic is referred to F(q, df_denom) (e.g. G - 1 for cluster-robust
    covariances), otherwise to chi2(q)/q, reported as F for comparability. When the covariance of the
    tested effects is rank deficient (e.g. more effects than clusters) the statistic and p-value are
    None and ``note`` says why.
    """
    est = np.asarray(estimates, dtype=float)
    diff = est - (np.zeros_like(est) if null is None else np.asarray(null, dtype=float))
    q = len(est)
    V = np.asarray(vcov, dtype=float)
    scale = np.sqrt(np.clip(np.diag(V), 0, None))
    if q == 0 or not np.all(np.isfinite(V)) or np.any(scale <= 0):
        return {"statistic": None, "df_num": float(q), "df_denom": float(df_denom), "p_value": None,
                "note": "not computable: some tested effects have no variance"}
    corr = V / np.outer(scale, scale)
    rank = int(np.linalg.matrix_rank(corr, tol=1e-10 * q))
    if rank < q:
        # e.g. a cluster-robust covariance has rank at most G - 1: with as many tested effects as
        # clusters the quadratic form is unbounded, and a number would be meaningless
        return {"statistic": None, "df_num": float(q), "df_denom": float(df_denom), "p_value": None,
                "note": f"not computable: the covariance of the {q} tested effects has rank {rank} < {q} "
                        "(fewer independent clusters than tested effects); test fewer effects jointly"}
    stat = float(diff @ np.linalg.solve(V, diff)) / q
    if math.isinf(df_denom):
        p = float(stats.chi2.sf(stat * q, q))
    else:
        p = float(stats.f.sf(stat, q, df_denom))
    return {"statistic": stat, "df_num": float(q), "df_denom": float(df_denom), "p_value": p}
