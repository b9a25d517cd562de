"""Sandwich variance of exactly identified M-estimators (stacked estimating equations).

Used by the weighting estimators so that standard errors account for the estimated propensity
score or balancing weights: V = A^-1 B A^-T / n with A = mean dpsi/dtheta and B = mean psi psi'
(HC0, as Stata ``teffects`` and statsmodels ``TreatmentEffect``). The Jacobian is computed by the
complex-step method (exact to rounding) when the moment function accepts complex parameters,
otherwise by central differences.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from impact.errors import EstimationError

__all__ = ["sandwich"]


def jacobian(psi: Callable[[np.ndarray], np.ndarray], theta: np.ndarray) -> np.ndarray:
    """Mean Jacobian of the moment function (p x p)."""
    p = theta.size
    A = np.empty((p, p))
    try:
        h = 1e-30
        for j in range(p):
            step = theta.astype(complex)
            step[j] += 1j * h
            A[:, j] = psi(step).imag.mean(axis=0) / h
        return A
    except (TypeError, ValueError):
        pass
    for j in range(p):
        h = 1e-6 * max(abs(theta[j]), 1e-2)
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        A[:, j] = (psi(up).mean(axis=0) - psi(down).mean(axis=0)) / (2 * h)
    return A


def sandwich(
    psi: Callable[[np.ndarray], np.ndarray],
    theta: np.ndarray,
    where: str,
    jac: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Covariance of theta from the moment function psi(theta) -> (n, p).

    ``jac(theta)`` may give the mean Jacobian analytically (faster on large samples); otherwise
    it is computed numerically.
    """
    moments = psi(theta)
    n = moments.shape[0]
    B = moments.T @ moments / n
    A = jac(theta) if jac is not None else jacobian(psi, theta)
    try:
        Ainv = np.linalg.inv(A)
    except np.linalg.LinAlgError as exc:
        raise EstimationError(f"{where}: the estimating equations are singular; the variance cannot be computed.") from exc
    return Ainv @ B @ Ainv.T / n
