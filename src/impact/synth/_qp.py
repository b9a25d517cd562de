"""Exact least squares on the probability simplex (the synthetic-control weight problem).

Solves ``min_w  w'Gw - 2c'w  subject to  w >= 0, sum(w) = 1`` for a positive semi-definite Gram
matrix ``G`` (``G = A'A``, ``c = A'b`` for ``||Aw - b||^2``) with a primal active-set method: the
Lawson-Hanson NNLS algorithm extended by the sum-to-one equality constraint.

Why an active-set method and not a general-purpose optimiser: the problem is a convex QP whose
solution has at most ``rank(A) + 1`` positive weights. An active-set method terminates after
finitely many steps at a point that satisfies the KKT conditions to rounding error, so weights are
exact (zeros are exact zeros) and deterministic; warm-starting from the previous support makes the
repeated solves inside the nested V optimisation and the placebo loops cheap (one or two linear
solves of size |support| + 1). Interior-point or first-order solvers (R Synth's ipop, Stata's
plugin, BFGS on a softmax parametrisation) only approximate the vertices the solution lies on.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

__all__ = ["simplex_least_squares", "SimplexSolution"]

_TOL = 1e-12


class SimplexSolution:
    """Solution of a simplex least-squares problem: weights, support and KKT multiplier."""

    __slots__ = ("weights", "support", "multiplier", "iterations")

    def __init__(self, weights: np.ndarray, support: np.ndarray, multiplier: float, iterations: int):
        self.weights = weights
        self.support = support
        self.multiplier = multiplier
        self.iterations = iterations


def _solve_on_support(gram: np.ndarray, lin: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, float]:
    """Equality-constrained minimiser on ``support``: [G_PP 1; 1' 0][z; nu] = [c_P; 1]."""
    k = support.size
    kkt = np.empty((k + 1, k + 1))
    kkt[:k, :k] = gram[support][:, support]
    kkt[:k, k] = 1.0
    kkt[k, :k] = 1.0
    kkt[k, k] = 0.0
    rhs = np.empty(k + 1)
    rhs[:k] = lin[support]
    rhs[k] = 1.0
    # LAPACK gesv directly: numpy's solve wrapper costs more than the solve at these sizes.
    _, _, sol, info = lapack.dgesv(kkt, rhs)
    if info != 0 or not np.isfinite(sol).all():
        # Affinely dependent columns on the support (ties): the minimum-norm solution is still a
        # minimiser of the equality-constrained problem.
        kkt[:k, :k] = gram[support][:, support]
        kkt[:k, k] = 1.0
        kkt[k, :k] = 1.0
        kkt[k, k] = 0.0
        sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
    return sol[:k], float(sol[k])


def simplex_least_squares(
    gram: np.ndarray,
    lin: np.ndarray,
    *,
    start: np.ndarray | None = None,
    max_iter: int | None = None,
) -> SimplexSolution:
    """Minimise ``w'Gw - 2c'w`` over the probability simplex by a primal active-set method.

    Parameters
    ----------
    gram : (J, J) array
        Positive semi-definite matrix ``G`` (e.g. ``X0' V X0``).
    lin : (J,) array
        Linear term ``c`` (e.g. ``X0' V x1``).
    start : array of int, optional
        Indices of a starting support (warm start); the solver starts from the best vertex inside it.
    max_iter : int, optional
        Iteration cap (default ``10 * J + 50``), reached only in degenerate cycling.

    Returns
    -------
    SimplexSolution
        ``weights`` (exact zeros off the support), ``support`` and the KKT multiplier of the
        sum-to-one constraint.

    Notes
    -----
    KKT conditions: with gradient ``g = Gw - c`` there is ``mu`` such that ``g_j = mu`` on the support
    and ``g_j >= mu`` off it. Each outer step adds the index with the most negative ``g_j - mu``; the
    inner loop solves the equality-constrained problem on the support and, if a weight would turn
    negative, moves to the boundary and drops it (Lawson & Hanson 1974, ch. 23).
    """
    n = lin.size
    if n == 1:
        return SimplexSolution(np.ones(1), np.zeros(1, dtype=np.intp), float(gram[0, 0] - lin[0]), 0)
    scale = max(float(np.max(np.abs(np.diag(gram)))), float(np.max(np.abs(lin))), 1e-300)
    tol = 1e-11 * scale
    diag = np.diag(gram)
    # Objective at each vertex e_j: G_jj - 2 c_j.
    vertex_loss = diag - 2.0 * lin
    if start is not None and len(start):
        start = np.asarray(start, dtype=np.intp)
        j0 = int(start[np.argmin(vertex_loss[start])])
    else:
        j0 = int(np.argmin(vertex_loss))
    w = np.zeros(n)
    w[j0] = 1.0
    in_support = np.zeros(n, dtype=bool)
    in_support[j0] = True
    # Warm start: try the whole previous support at once when its solution is feasible.
    if start is not None and len(start) > 1:
        support = np.unique(start)
        z, _ = _solve_on_support(gram, lin, support)
        if (z > 0).all():
            w[:] = 0.0
            w[support] = z
            in_support[:] = False
            in_support[support] = True
    max_iter = 10 * n + 50 if max_iter is None else max_iter
    iterations = 0
    while True:
        grad = gram @ w - lin
        mu = float(np.dot(w, grad))  # = g_j on the support at a support optimum
        reduced = grad - mu
        reduced[in_support] = np.inf
        j = int(np.argmin(reduced))
        if reduced[j] >= -tol or iterations >= max_iter:
            break
        in_support[j] = True
        while iterations < max_iter:
            iterations += 1
            support = in_support.nonzero()[0]
            z, _ = _solve_on_support(gram, lin, support)
            if (z > 0).all():
                w[:] = 0.0
                w[support] = z
                break
            current = w[support]
            neg = z <= 0
            ratios = current[neg] / (current[neg] - z[neg])
            alpha = float(np.min(ratios))
            new = current + alpha * (z - current)
            new[new <= 1e-15] = 0.0
            new[np.flatnonzero(neg)[np.argmin(ratios)]] = 0.0
            w[:] = 0.0
            w[support] = new
            in_support[support[new <= 0]] = False
            if not in_support.any():  # numerical safety: restart from the best vertex
                in_support[j] = True
                w[:] = 0.0
                w[j] = 1.0
                break
    support = in_support.nonzero()[0]
    w = np.maximum(w, 0.0)
    total = w.sum()
    w /= total
    grad = gram @ w - lin
    return SimplexSolution(w, support, float(np.dot(w, grad)), iterations)
