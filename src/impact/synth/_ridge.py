"""Ridge augmentation of synthetic-control weights (Ben-Michael, Feller & Rothstein 2021).

With pre-period outcomes ``Z0`` (T0 x J, donors in columns) and ``z1`` (T0,), centred at the donor
mean in each period (``Z0c``, ``z1c``), the ridge-augmented weights are

    w_aug = w_scm + Z0c' (Z0c Z0c' + lambda I)^(-1) (z1c - Z0c w_scm),

which still sum to one (the columns of ``Z0c`` sum to zero across donors) but may be negative:
the outcome model extrapolates outside the donors' convex hull by as much as the ridge penalty
allows. ``lambda -> inf`` gives back the synthetic control.
"""

from __future__ import annotations

import numpy as np

from impact.synth._qp import simplex_least_squares


def ridge_adjustment(z1: np.ndarray, Z0: np.ndarray, w_scm: np.ndarray, lam: float) -> np.ndarray:
    """The weight adjustment added to the synthetic-control weights."""
    centre = Z0.mean(axis=1, keepdims=True)
    Z0c, z1c = Z0 - centre, z1 - centre[:, 0]
    residual = z1c - Z0c @ w_scm
    gram = Z0c @ Z0c.T + lam * np.eye(Z0.shape[0])
    return Z0c.T @ np.linalg.solve(gram, residual)


def lambda_grid(Z0: np.ndarray, n: int = 20, min_ratio: float = 1e-8) -> np.ndarray:
    """Geometric grid from the largest squared singular value of the centred Z0 downwards (augsynth)."""
    Z0c = Z0 - Z0.mean(axis=1, keepdims=True)
    top = float(np.linalg.svd(Z0c, compute_uv=False)[0] ** 2)
    return top * min_ratio ** np.linspace(0.0, 1.0, n)


def cross_validate(z1: np.ndarray, Z0: np.ndarray, lambdas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-pre-period-out squared prediction error of the treated unit for each lambda.

    Returns the mean error and its standard error over the held-out periods."""
    T0 = z1.size
    errors = np.empty((T0, lambdas.size))
    for k in range(T0):  # T0 small refits; each is one exact QP plus T0-1 dimensional ridge solves
        keep = np.arange(T0) != k
        z1k, Z0k = z1[keep], Z0[keep]
        w = simplex_least_squares(Z0k.T @ Z0k, Z0k.T @ z1k).weights
        for j, lam in enumerate(lambdas):
            w_aug = w + ridge_adjustment(z1k, Z0k, w, float(lam))
            errors[k, j] = (z1[k] - Z0[k] @ w_aug) ** 2
    return errors.mean(axis=0), errors.std(axis=0, ddof=1) / np.sqrt(T0)


def choose_lambda(z1: np.ndarray, Z0: np.ndarray, rule: str = "1se") -> tuple[float, dict]:
    """Lambda by cross-validation: the minimiser (``"min"``) or the largest lambda whose error is
    within one standard error of the minimum (``"1se"``, augsynth's default)."""
    lambdas = lambda_grid(Z0)
    mean, se = cross_validate(z1, Z0, lambdas)
    best = int(np.argmin(mean))
    if rule == "min":
        chosen = best
    else:
        within = np.flatnonzero(mean <= mean[best] + se[best])
        chosen = int(within[np.argmax(lambdas[within])])
    table = {"lambda": lambdas, "cv_error": mean, "cv_se": se}
    return float(lambdas[chosen]), table
