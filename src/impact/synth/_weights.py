"""Donor weights W and predictor weights V of the Abadie synthetic control.

``W(V) = argmin_{w in simplex} (x1 - X0 w)' diag(V) (x1 - X0 w)`` is solved exactly by the active-set
QP of :mod:`impact.synth._qp`. V is chosen by one of

- ``"nested"``: minimise the pre-period outcome MSPE ``|z1 - Z0 W(V)|^2 / T`` over V (R ``Synth``,
  Stata ``synth, nested``). V lives on the simplex; it is parametrised as ``V = softmax(theta)`` and
  ``theta`` is optimised by L-BFGS-B with the exact gradient of the outer loss (implicit
  differentiation of the KKT system of the inner QP on its support), from two deterministic starts
  (equal weights and the regression-based V) keeping the better one;
- ``"regression"``: Stata ``synth``'s default data-driven V (squared coefficients of regressions of
  the pre-period outcomes on the standardised predictors across units);
- ``"equal"``: every predictor the same weight;
- ``"outcome_only"``: no predictors; W minimises the pre-period outcome MSPE directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.linalg import lapack

from impact.synth._qp import simplex_least_squares

__all__ = ["Fit", "fit_weights", "regression_v", "standardise"]

_THETA_BOUND = 25.0


@dataclass(frozen=True)
class Fit:
    """Weights and fit of one synthetic control."""

    weights: np.ndarray  # (J,) donor weights
    v: np.ndarray | None  # (k,) predictor weights, None for outcome-only
    loss: float  # pre-period outcome MSPE over the optimisation periods
    optimiser: str
    evaluations: int = 0


def standardise(X_all: np.ndarray) -> np.ndarray:
    """Divide each predictor (column) by its standard deviation across all units (as R Synth/Stata)."""
    sd = X_all.std(axis=0, ddof=1)
    sd = np.where(sd > 0, sd, 1.0)
    return X_all / sd


def regression_v(X1: np.ndarray, X0: np.ndarray, Z1: np.ndarray, Z0: np.ndarray) -> np.ndarray:
    """Stata synth's regression-based V: regress each pre-period outcome on the standardised
    predictors (with a constant) across the treated and donor units; V_k is proportional to the sum
    over periods of the squared slope on predictor k."""
    X = np.column_stack([np.concatenate([X1[:, None], X0], axis=1).T, np.ones(X0.shape[1] + 1)])
    Z = np.concatenate([Z1[:, None], Z0], axis=1).T
    beta = np.linalg.lstsq(X, Z, rcond=None)[0][:-1]
    v = (beta**2).sum(axis=1)
    total = v.sum()
    return v / total if total > 0 else np.full(X0.shape[0], 1.0 / X0.shape[0])


def _solve_w(X1: np.ndarray, X0: np.ndarray, v: np.ndarray, start=None):
    gram = (X0.T * v) @ X0
    lin = X0.T @ (v * X1)
    return simplex_least_squares(gram, lin, start=start)


def _kkt_adjoint(gram_p: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    k = gram_p.shape[0]
    kkt = np.zeros((k + 1, k + 1))
    kkt[:k, :k] = gram_p
    kkt[:k, k] = 1.0
    kkt[k, :k] = 1.0
    full = np.zeros(k + 1)
    full[:k] = rhs
    _, _, sol, info = lapack.dgesv(kkt.copy(), full.copy())
    if info != 0 or not np.isfinite(sol).all():
        return np.linalg.lstsq(kkt, full, rcond=None)[0][:k]
    return sol[:k]


def _nested(X1, X0, Z1, Z0, starts, max_iter: int) -> tuple[np.ndarray, np.ndarray, float, int]:
    T = Z1.size
    state = {"support": None, "evals": 0}

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        state["evals"] += 1
        e_theta = np.exp(theta - theta.max())
        v = e_theta / e_theta.sum()
        gram = (X0.T * v) @ X0
        lin = X0.T @ (v * X1)
        sol = simplex_least_squares(gram, lin, start=state["support"])
        w = sol.weights
        support = (w > 0).nonzero()[0]
        state["support"] = support
        e = Z1 - Z0 @ w
        loss = float(e @ e) / T
        u = _kkt_adjoint(gram[support][:, support], Z0[:, support].T @ e)
        r = X1 - X0 @ w
        grad_v = -(2.0 / T) * (X0[:, support] @ u) * r
        grad_theta = v * (grad_v - v @ grad_v)
        return loss, grad_theta

    best = None
    bounds = [(-_THETA_BOUND, _THETA_BOUND)] * X0.shape[0]
    for v0 in starts:
        theta0 = np.log(np.clip(v0, 1e-10, None))
        theta0 = np.clip(theta0 - theta0.max(), -_THETA_BOUND, _THETA_BOUND)
        state["support"] = None
        res = optimize.minimize(
            loss_grad, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
            options={"maxiter": max_iter, "ftol": 1e-12, "gtol": 1e-10},
        )
        if best is None or res.fun < best.fun:
            best = res
    theta = best.x
    v = np.exp(theta - theta.max())
    v /= v.sum()
    sol = _solve_w(X1, X0, v)
    e = Z1 - Z0 @ sol.weights
    return sol.weights, v, float(e @ e) / T, state["evals"]


def fit_weights(
    X1: np.ndarray | None,
    X0: np.ndarray | None,
    Z1: np.ndarray,
    Z0: np.ndarray,
    *,
    v_method: str,
    custom_v: np.ndarray | None = None,
    max_iter: int = 1000,
) -> Fit:
    """Donor weights for one treated unit.

    ``X1`` (k,) and ``X0`` (k, J) are standardised predictors; ``Z1`` (T,) and ``Z0`` (T, J) the
    outcomes over the periods whose MSPE is minimised.
    """
    if v_method == "outcome_only" or X0 is None:
        sol = simplex_least_squares(Z0.T @ Z0, Z0.T @ Z1)
        e = Z1 - Z0 @ sol.weights
        return Fit(sol.weights, None, float(e @ e) / Z1.size, "active-set simplex least squares on pre-period outcomes", 1)
    k = X0.shape[0]
    if custom_v is not None:
        v = np.asarray(custom_v, dtype=float) / np.sum(custom_v)
        how = "user-supplied V"
    elif v_method == "equal" or k == 1:
        v = np.full(k, 1.0 / k)
        how = "equal V"
    elif v_method == "regression":
        v = regression_v(X1, X0, Z1, Z0)
        how = "regression-based V (Stata synth default)"
    else:
        starts = [np.full(k, 1.0 / k), regression_v(X1, X0, Z1, Z0)]
        w, v, loss, evals = _nested(X1, X0, Z1, Z0, starts, max_iter)
        return Fit(w, v, loss, "nested: L-BFGS-B over log-V (analytic gradient, starts equal and regression V), "
                   "exact active-set QP for W", evals)
    sol = _solve_w(X1, X0, v)
    e = Z1 - Z0 @ sol.weights
    return Fit(sol.weights, v, float(e @ e) / Z1.size, f"{how}; exact active-set QP for W", 1)
