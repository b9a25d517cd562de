"""Small-sample Wald tests of several linear constraints with the CR2 covariance.

The HTZ test of Pustejovsky & Tipton (2018) refers the Wald statistic built on the bias-reduced
(CR2) cluster-robust covariance to a Hotelling's T^2 distribution whose degrees of freedom are
chosen so that the sampling variance of the CR2 covariance of the tested contrasts matches that
of a Wishart matrix, under a working model of independent, homoskedastic errors. It is what R
``clubSandwich::Wald_test(test = "HTZ")`` reports and it keeps its size with few clusters, where the
naive F(q, G - 1) test over-rejects badly, and (conservatively) with 3 or more treated clusters. It
is not valid with one treated cluster: a contrast that varies within that cluster only (e.g. the
leads of the one treated region) is fitted almost exactly there, its CR2 variance is close to zero,
and the test rejected 86-95% of true nulls at 5% (analyses/simulations/few_treated_options.csv); a
FewTreatedClustersWarning says so.

Two entry points share one engine:

* :func:`cr2_wald_test` works on the arrays of any linear model (design, residuals, coefficients,
  cluster codes, optional analytic weights);
* :func:`htz_test` works on a :class:`impact.results.Result` that was fitted with ``vcov="CR2"``
  (``twfe``, ``event_study``, ``sun_abraham``): those keep the fitted linear model on the result.

Which working model is matched: clubSandwich's CR2 for an ``lm`` with the fixed effects entered as
factor dummies (the full design), identity working variance (weights, if any, enter the WLS fit
and the adjustment, clubSandwich's ``inverse_var = FALSE``). ``impact`` absorbs the fixed effects
that are nested within clusters (e.g. unit effects when clustering by unit or by region) and keeps
the others (period effects) as columns; the tests reproduce the full-dummy ``lm`` values of
clubSandwich 0.5.8 to 1e-8 (``tests/inference/reference/htz.R``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import stats

from impact.errors import EstimationError, SpecError
from impact.inference.vcov import _inv_sqrt_psd, bread, cr2_cluster_terms

if TYPE_CHECKING:
    from impact.results import Result

__all__ = ["CR2_WALD_TESTS", "LinearFit", "cr2_wald_test", "htz_test"]

CR2_WALD_TESTS = ("HTZ", "HTA", "Naive-F", "chi-sq")
Cr2WaldKind = Literal["HTZ", "HTA", "Naive-F", "chi-sq"]

_CHUNK_ELEMENTS = 4_000_000  # Theta blocks held at once (G x chunk x q x q doubles)


class LinearFit:
    """The pieces of a fitted linear model that a CR2 Wald test needs, kept on a result.

    ``X`` is the design after absorbing the fixed effects nested within clusters (reported
    coefficients first, then any explicit dummies), ``resid`` the residuals, ``coef`` all
    coefficients of ``X``, ``names`` their names, ``clusters`` integer codes 0..G-1 and ``weights``
    the analytic weights (None for OLS). ``effect_terms`` and ``effect_contrasts`` (rows x k) give
    the rows of the result's effects table as combinations of the coefficients (e.g. Sun-Abraham
    event-time effects as weighted cohort effects), so tests can name either. A plain read-only
    object, not a dataclass, so that ``Result.to_dict()`` and other serialisers never expand it.
    """

    __slots__ = ("X", "resid", "coef", "names", "clusters", "n_clusters", "weights", "effect_terms",
                 "effect_contrasts")

    def __init__(self, X: np.ndarray, resid: np.ndarray, coef: np.ndarray, names: Sequence[str],
                 clusters: np.ndarray, n_clusters: int, weights: np.ndarray | None = None,
                 effect_terms: Sequence[str] = (), effect_contrasts: np.ndarray | None = None) -> None:
        for name, value in (("X", X), ("resid", resid), ("coef", coef), ("clusters", clusters),
                            ("weights", weights), ("effect_contrasts", effect_contrasts)):
            object.__setattr__(self, name, None if value is None else np.asarray(value))
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "n_clusters", int(n_clusters))
        object.__setattr__(self, "effect_terms", tuple(effect_terms))

    def constraints(self, terms: Sequence[str], where: str) -> np.ndarray:
        """The constraint matrix (q x k) of the named effects rows or coefficients."""
        k = self.X.shape[1]
        C = np.zeros((len(terms), k))
        for row, term in enumerate(terms):
            if term in self.effect_terms and self.effect_contrasts is not None:
                C[row, : self.effect_contrasts.shape[1]] = self.effect_contrasts[self.effect_terms.index(term)]
            elif term in self.names:
                C[row, self.names.index(term)] = 1.0
            else:
                known = list(dict.fromkeys([*self.effect_terms, *self.names[:20]]))
                raise SpecError(f"{where}: no effect or coefficient named {term!r}; choose from {known}.")
            if not C[row].any():
                raise SpecError(f"{where}: {term!r} is a reference (normalised to zero) and cannot be tested.")
        return C

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("LinearFit is read-only")

    def __reduce__(self):
        return (LinearFit, (self.X, self.resid, self.coef, self.names, self.clusters, self.n_clusters, self.weights,
                            self.effect_terms, self.effect_contrasts))

    def __repr__(self) -> str:
        return f"LinearFit(n={self.X.shape[0]}, k={self.X.shape[1]}, clusters={self.n_clusters})"

    @classmethod
    def from_regression(cls, fit: Any, weights: np.ndarray | None, effect_terms: Sequence[str] = (),
                        effect_contrasts: np.ndarray | None = None) -> LinearFit:
        """From :class:`impact.did._staggered.FERegression` (a CR2 fit)."""
        return cls(fit.X, fit.resid, fit.design_coef, fit.design_names, fit.clusters, fit.n_clusters, weights,
                   effect_terms, effect_contrasts)


def _constraint_matrix(constraints: Any, k: int, names: Sequence[str] | None, where: str) -> np.ndarray:
    if isinstance(constraints, str):
        constraints = [constraints]
    arr = np.asarray(constraints)
    if arr.ndim == 1 and arr.dtype.kind in "iuUSO":  # a list of coefficient names or positions
        C = np.zeros((len(arr), k))
        for row, item in enumerate(arr.tolist()):
            if isinstance(item, str):
                if names is None or item not in names:
                    raise SpecError(f"{where}: no coefficient named {item!r}; the coefficients are "
                                    f"{list(names) if names is not None else 'unnamed (pass positions)'}.")
                C[row, list(names).index(item)] = 1.0
            else:
                if not 0 <= int(item) < k:
                    raise SpecError(f"{where}: coefficient position {item} is outside 0..{k - 1}.")
                C[row, int(item)] = 1.0
        if len(set(map(str, arr.tolist()))) < len(arr):
            raise SpecError(f"{where}: the constraints name a coefficient twice ({arr.tolist()}).")
        return C
    C = np.atleast_2d(np.asarray(constraints, dtype=float))
    if C.shape[1] != k or not np.all(np.isfinite(C)):
        raise SpecError(f"{where}: the constraint matrix must be q x {k} and finite; got shape {C.shape}.")
    return C


def cr2_wald_test(
    X: np.ndarray,
    resid: np.ndarray,
    coef: np.ndarray,
    clusters: np.ndarray,
    constraints: Sequence[str] | Sequence[int] | np.ndarray,
    *,
    null: float | Sequence[float] | np.ndarray | None = None,
    weights: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    test: Cr2WaldKind = "HTZ",
    where: str = "cr2_wald_test",
) -> dict[str, Any]:
    """Wald test of ``C beta = null`` with the CR2 covariance and small-sample reference distribution.

    Parameters
    ----------
    X : ndarray (n, k)
        Design of the linear model (fixed effects nested within clusters may be absorbed; others
        must be columns).
    resid : ndarray (n,)
        Residuals of the fit.
    coef : ndarray (k,)
        Coefficients of ``X``.
    clusters : ndarray (n,)
        Cluster labels (any hashable values or integer codes).
    constraints : list of names or positions, or ndarray (q, k)
        The coefficients tested jointly, or a constraint matrix C.
    null : float or array (q,), optional
        Hypothesised value of ``C beta`` (default zero).
    weights : ndarray (n,), optional
        Analytic weights of a WLS fit.
    names : list of str, optional
        Coefficient names, to give ``constraints`` by name.
    test : {"HTZ", "HTA", "Naive-F", "chi-sq"}
        ``HTZ`` (default): Hotelling's T^2 approximation with degrees of freedom matched to the total
        variance of the CR2 covariance under the working model; ``HTA``: matched to all its
        covariances; ``Naive-F``: F(q, G - 1); ``chi-sq``: chi^2_q / q.

    Returns
    -------
    dict
        ``statistic`` (the F statistic, delta * Q / q), ``Q`` (the Wald statistic), ``delta`` (the
        Hotelling scaling, 1 for the naive tests), ``df_num`` (q), ``df_denom``, ``nu`` (the
        Hotelling degrees of freedom), ``p_value``, ``test`` and ``method`` in words.

    Notes
    -----
    With :math:`\\hat V` the CR2 covariance and :math:`Q = (C\\hat\\beta - c)'(C\\hat VC')^{-1}(C\\hat\\beta - c)`,
    HTZ treats :math:`\\eta\\, \\Omega^{-1/2} C \\hat V C'\\Omega^{-1/2}` as Wishart with :math:`\\eta` degrees
    of freedom, :math:`\\eta = q(q+1) / \\sum_{s,t} \\operatorname{Var}(d_{st})`, the variances computed
    under the working model, and refers :math:`F = \\delta Q / q` with
    :math:`\\delta = (\\eta - q + 1)/\\eta` to :math:`F(q, \\eta - q + 1)`. With q = 1 it is the
    Satterthwaite t test of :func:`impact.inference.vcov.linear_vcov` (``CR2``).

    References
    ----------
    Pustejovsky, J. E., & Tipton, E. (2018). Small-sample methods for cluster-robust variance
    estimation and hypothesis testing in fixed effects models. *Journal of Business & Economic
    Statistics*, 36(4), 672-683. https://doi.org/10.1080/07350015.2016.1247004
    Tipton, E., & Pustejovsky, J. E. (2015). Small-sample adjustments for tests of moderators and
    model fit using robust variance estimation in meta-regression. *Journal of Educational and
    Behavioral Statistics*, 40(6), 604-634. https://doi.org/10.3102/1076998615606099

    Examples
    --------
    >>> import numpy as np, impact as im
    >>> rng = np.random.default_rng(1)
    >>> X = np.column_stack([np.ones(60), rng.normal(size=(60, 2))])
    >>> y = X @ [1.0, 0.0, 0.0] + rng.normal(size=60)
    >>> coef = np.linalg.lstsq(X, y, rcond=None)[0]
    >>> out = im.inference.cr2_wald_test(X, y - X @ coef, coef, np.repeat(np.arange(12), 5), [1, 2])
    >>> out["test"], out["df_num"]
    ('HTZ', 2.0)
    """
    if test not in CR2_WALD_TESTS:
        raise SpecError(f"{where}: test={test!r} is not one of {CR2_WALD_TESTS}.")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise SpecError(f"{where}: X must be a 2-d design matrix; got {X.ndim} dimension(s).")
    n, k = X.shape
    resid = np.asarray(resid, dtype=float).reshape(-1)
    coef = np.asarray(coef, dtype=float).reshape(-1)
    if len(resid) != n or len(coef) != k or len(clusters) != n:
        raise SpecError(f"{where}: X is {n} x {k} but resid has {len(resid)} rows, coef {len(coef)} entries "
                        f"and clusters {len(clusters)} rows.")
    for label, arr in (("X", X), ("resid", resid), ("coef", coef)):
        if not np.all(np.isfinite(arr)):
            raise SpecError(f"{where}: {label} has missing or infinite values; drop those rows before the test.")
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=float).reshape(-1)
        if len(w) != n or not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise SpecError(f"{where}: weights must be {n} finite, strictly positive values.")
    codes = np.unique(np.asarray(clusters), return_inverse=True)[1].reshape(-1).astype(np.int64)
    G = int(codes.max()) + 1
    C = _constraint_matrix(constraints, k, names, where)
    q = C.shape[0]
    if np.linalg.matrix_rank(C) < q:
        raise SpecError(f"{where}: the {q} constraints are linearly dependent; drop the redundant ones.")
    if G <= q:
        raise EstimationError(
            f"{where}: {G} clusters cannot support a joint test of {q} constraints (the cluster-robust "
            f"covariance of the tested contrasts has rank at most {G - 1}); test at most {G - 1} constraints "
            "jointly, or use randomisation inference.")
    _warn_single_cluster_columns(X, C, codes, G, names, where)
    c0 = np.zeros(q) if null is None else np.broadcast_to(np.asarray(null, dtype=float), (q,))
    Xw = X if w is None else X * np.sqrt(w)[:, None]
    M = bread(Xw, where)
    meat, D, P, Qw, MSM = cr2_cluster_terms(X, resid, w, M, codes, G, M @ C.T)
    V = M @ (meat.T @ meat) @ M
    diff = C @ coef - c0
    CVC = C @ V @ C.T
    try:
        Q = float(diff @ np.linalg.solve(CVC, diff))
        ok = np.linalg.matrix_rank(CVC) == q
    except np.linalg.LinAlgError:
        ok = False
    if not ok:
        raise EstimationError(
            f"{where}: the CR2 covariance of the {q} tested contrasts is singular (e.g. a contrast identified by "
            "a single cluster); test fewer contrasts jointly, or use randomisation inference.")
    out: dict[str, Any] = {"Q": Q, "df_num": float(q), "test": test, "n_clusters": G}
    if test in ("Naive-F", "chi-sq"):
        df2 = float(G - 1) if test == "Naive-F" else math.inf
        F = Q / q
        p = float(stats.f.sf(F, q, df2)) if math.isfinite(df2) else float(stats.chi2.sf(Q, q))
        out.update(statistic=F, delta=1.0, df_denom=df2, nu=None, p_value=p,
                   method=f"Wald test with the CR2 covariance, {'F(q, G - 1)' if test == 'Naive-F' else 'chi-squared'} "
                          f"reference, {G} clusters")
        return out
    nu = _hotelling_df(D, P, Qw, M, MSM, test)
    df2 = nu - q + 1
    method = (f"CR2 Wald test, Hotelling's T-squared approximation ({test}, Pustejovsky & Tipton 2018): "
              f"F({q}, {df2:.2f}), {G} clusters")
    if df2 <= 0:  # as clubSandwich: delta floored at zero and no p-value
        out.update(statistic=0.0, delta=0.0, df_denom=df2, nu=nu, p_value=None, method=method,
                   note=(f"not computable: the Hotelling degrees of freedom ({nu:.2f}) are below q - 1 = {q - 1}, "
                         "so the clusters carry too little information for this joint test; test fewer "
                         "contrasts jointly, or use randomisation inference"))
        return out
    delta = df2 / nu
    F = delta * Q / q
    out.update(statistic=F, delta=delta, df_denom=df2, nu=nu, p_value=float(stats.f.sf(F, q, df2)), method=method)
    return out


def _warn_single_cluster_columns(X: np.ndarray, C: np.ndarray, codes: np.ndarray, G: int,
                                 names: Sequence[str] | None, where: str) -> None:
    """FewTreatedClustersWarning when a tested column is nonzero in a single cluster (e.g. the leads of the
    one treated region): the fit reproduces that cluster's observations of it almost exactly, so the CR2
    variance of the contrast is close to zero whatever the truth and the test over-rejects grossly."""
    from impact.errors import FewTreatedClustersWarning, warn

    used = np.flatnonzero(np.any(C != 0, axis=0))
    block = np.abs(X[:, used])
    nonzero = (block > 1e-10 * np.maximum(block.max(axis=0), 1e-300)).astype(float)
    clusters_per_column = np.count_nonzero(
        np.column_stack([np.bincount(codes, weights=nonzero[:, j], minlength=G) for j in range(len(used))]), axis=0)
    single = used[clusters_per_column <= 1]
    if not len(single):
        return
    labels = [names[j] if names is not None and j < len(names) else f"column {j}" for j in single]
    warn(FewTreatedClustersWarning,
         f"{where}: the tested coefficient(s) {labels} vary within a single cluster only (e.g. the leads of one "
         "treated region), whose observations of them the model fits almost exactly: their CR2 variance is close to "
         "zero and the Wald test over-rejects grossly (the HTZ pre-trend test rejected 86-95% of true nulls at 5% "
         "with 1 treated region of 20, analyses/simulations/few_treated_options.csv). Use randomisation inference "
         "(the DiD designs' default, inference='auto').")


def _hotelling_df(D: np.ndarray, P: np.ndarray, Qw: np.ndarray, M: np.ndarray, MSM: np.ndarray, test: str) -> float:
    """Degrees of freedom eta of the Hotelling approximation, from Theta_gh (see ``cr2_cluster_terms``).

    The contrasts are first standardised by S = Omega^(-1/2), Omega = sum_g Theta_gg (Theta is bilinear
    in the contrasts, so D -> S D S, P -> P S, Qw -> Qw S). HTZ:
    eta = q(q+1) / sum_gh [tr(Theta_gh^2) + tr(Theta_gh)^2]; HTA: eta = 2 sum_st Var(d_st) / sum Cov^2
    with Cov(d_st, d_uv) = sum_gh Theta_gh[s,u] Theta_gh[t,v] + Theta_gh[s,v] Theta_gh[t,u].
    Theta is formed as (G q x G q) matrix products, in blocks of clusters so that memory stays
    bounded for many clusters.
    """
    G, k, q = P.shape

    def rows_of(A: np.ndarray) -> np.ndarray:  # (G, k, q) -> (G q, k): row g*q + s is contrast s of cluster g
        return A.transpose(0, 2, 1).reshape(G * q, k)

    def theta_diag(D, P, Qw):  # Theta_gg, (G, q, q)
        return (D - np.matmul(np.matmul(M, Qw).transpose(0, 2, 1), P) - np.matmul(np.matmul(M, P).transpose(0, 2, 1), Qw)
                + np.matmul(np.matmul(MSM, P).transpose(0, 2, 1), P))

    S = _inv_sqrt_psd(theta_diag(D, P, Qw).sum(axis=0))  # Omega^(-1/2)
    D, P, Qw = S @ D @ S, P @ S, Qw @ S
    QM, PM, PS = rows_of(np.matmul(M, Qw)), rows_of(np.matmul(M, P)), rows_of(np.matmul(MSM, P))
    Pf, Qf = rows_of(P), rows_of(Qw)
    step = max(1, _CHUNK_ELEMENTS // max(1, G * q * q))
    total, var_sum, cov_sum = 0.0, np.zeros((q, q)), np.zeros((q * q, q * q))
    for start in range(0, G, step):
        stop = min(start + step, G)
        rows = slice(start * q, stop * q)
        theta = -(QM[rows] @ Pf.T + PM[rows] @ Qf.T - PS[rows] @ Pf.T)  # (chunk q, G q)
        B = theta.reshape(stop - start, q, G, q).transpose(0, 2, 1, 3).copy()  # (chunk, G, s, t)
        local = np.arange(stop - start)
        B[local, local + start] += D[start:stop]
        trace = np.trace(B, axis1=2, axis2=3)
        if test == "HTZ":
            total += float((B * B.transpose(0, 1, 3, 2)).sum() + (trace**2).sum())
        else:
            diag = np.diagonal(B, axis1=2, axis2=3)  # (chunk, G, q)
            var_sum += (B * B.transpose(0, 1, 3, 2)).sum(axis=(0, 1)) + np.tensordot(diag, diag, axes=([0, 1], [0, 1]))
            flat_b = B.reshape(-1, q * q)  # columns (s, u)
            cov_sum += flat_b.T @ flat_b  # [(s,u), (t,v)] = sum_gh B[s,u] B[t,v]
    if test == "HTZ":
        return q * (q + 1) / total
    cov = cov_sum.reshape(q, q, q, q).transpose(0, 2, 1, 3)  # [s, t, u, v] = sum B[s,u] B[t,v]
    cov = cov + cov.transpose(0, 1, 3, 2)
    return 2.0 * float(var_sum.sum()) / float((cov**2).sum())


def htz_test(
    result: Result,
    terms: str | Sequence[str],
    *,
    null: float | Sequence[float] | np.ndarray | None = None,
    test: Cr2WaldKind = "HTZ",
) -> dict[str, Any]:
    """CR2 Wald test (HTZ by default) that the named ``terms`` of a CR2-fitted result are jointly ``null``.

    Works on results of ``twfe``, ``event_study`` and ``sun_abraham`` fitted with ``vcov="CR2"``,
    which keep their linear model. See :func:`cr2_wald_test` for the test and its reference.

    Examples
    --------
    >>> import impact as im
    >>> mpdta = im.datasets.load("mpdta")
    >>> res = im.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year",
    ...                          cohort="first.treat", vcov="CR2")
    >>> round(im.inference.htz_test(res, ["e=-4", "e=-3", "e=-2"])["p_value"], 4)
    0.1858
    """
    fit = getattr(result, "linear_fit", None)
    if not isinstance(fit, LinearFit):
        raise SpecError(
            f"htz_test: the {getattr(result, 'design', type(result).__name__)!r} result does not carry its linear "
            "model; fit twfe, event_study or sun_abraham with vcov='CR2' (other vcov kinds and designs do not keep it).")
    if isinstance(terms, str):
        terms = [terms]
    if len(terms) == 0:
        raise SpecError("htz_test: name at least one effect or coefficient to test.")
    C = fit.constraints(list(terms), "htz_test")
    return cr2_wald_test(fit.X, fit.resid, fit.coef, fit.clusters, C, null=null, weights=fit.weights,
                         names=fit.names, test=test, where="htz_test")
