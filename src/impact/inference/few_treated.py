"""Residual-based inference for difference-in-differences with few treated groups.

With one or a handful of treated groups, the estimation error of a DiD coefficient is dominated by
the errors of the treated groups, which no cluster-robust variance can estimate. Conley & Taber
(2011) approximate its distribution with the residuals of the (many) control groups: for a
coefficient that is linear in the outcome,

    alpha_hat - alpha = sum_{j treated} sum_t a_jt eta_jt  (+ a term that vanishes as controls grow)

where ``a_j`` is treated group j's weight on its own group-by-period errors (its row of the
residualised treatment, divided by the residualised treatment's sum of squares). Replacing
``eta_j`` by the residuals ``eta_hat_l`` of control groups l gives draws

    W(l_1, ..., l_N1) = sum_j a_j . eta_hat_{l_j}

whose distribution stands in for that of alpha_hat - alpha. Every combination of controls is
enumerated when there are at most ``n_draws`` of them (N0^N1), else ``n_draws`` are drawn.

Ferman & Pinto (2019) show that this over-rejects when treated groups are smaller (noisier) than
the controls, e.g. regional aggregates of fewer individuals, and correct it with a model of the
heteroskedasticity: with group sizes M_l, the variance of W_l = a_j . eta_hat_l is
Var(W | M) = A + B / M, estimated by regressing W_l^2 on (1, 1/M_l) over the controls; each
control's draw is rescaled by sqrt(Var(W | M_j) / Var(W | M_l)) to the treated group's variance.
With equal sizes the correction is one and the method is Conley-Taber's.

Finite number of controls. Both papers' approximations drop the controls' own term
sum_l a_l . eta_l and the shrinkage of residuals by the period effects (1 - 1/G); with 20 groups
they matter (3 treated of 20, iid errors: 12% rejections at 5%). The draws are therefore scaled by
kappa = sqrt(sum_g w_g |a_g|^2 / sum_{j treated} w_j |a_j|^2 * G / (G - 1)), with w_g the relative
variance of group g's errors (1 for Conley-Taber, A + B / M_g for Ferman-Pinto): exact for the
variance when errors are independent across groups and the treated share one adoption date.

Intervals and p-values. The test of ``alpha = alpha_0`` is equal-tailed: with d = alpha_hat -
alpha_0, p = min(1, 2 min(P(W <= d), P(W >= d))). The interval is the set of alpha_0 it does not
reject at ``1 - level``: [alpha_hat - W_(B-m+1), alpha_hat - W_(m)] with W sorted and
m = floor((1 - level) B / 2) + 1, so interval and p-value always agree. The standard error shown is
the one the interval implies, (high - low) / (2 z).

References
----------
Conley, T. G., & Taber, C. R. (2011). Inference with "difference in differences" with a small number
of policy changes. *Review of Economics and Statistics* 93(1), 113-125. doi:10.1162/REST_a_00049
Ferman, B., & Pinto, C. (2019). Inference in differences-in-differences with few treated groups and
heteroskedasticity. *Review of Economics and Statistics* 101(3), 452-467. doi:10.1162/rest_a_00759
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from impact.errors import EstimationError, FewAssignmentsWarning, SpecError, warn

__all__ = ["RESIDUAL_METHODS", "ResidualInference", "residual_inference"]

RESIDUAL_METHODS = ("conley_taber", "ferman_pinto")
ResidualMethod = Literal["conley_taber", "ferman_pinto"]
_NAMES = {"conley_taber": "Conley-Taber (2011)", "ferman_pinto": "Ferman-Pinto (2019)"}


@dataclass(frozen=True)
class ResidualInference:
    """Outcome of Conley-Taber / Ferman-Pinto inference on one coefficient."""

    method: str
    estimate: float
    p_value: float
    conf_low: float
    conf_high: float
    std_error: float
    n_draws: int
    enumerated: bool
    n_treated: int
    n_controls: int
    level: float
    variance_model: tuple[float, float] | None = None  # (A, B) of Var(W | M) = A + B / M, Ferman-Pinto only

    def description(self, group_word: str = "groups") -> str:
        how = (f"all {self.n_draws:,} combinations of control residuals" if self.enumerated
               else f"{self.n_draws:,} random combinations of control residuals")
        text = (f"{_NAMES[self.method]} residual-based inference with {self.n_treated} treated and "
                f"{self.n_controls} control {group_word} ({how}); symmetric test, interval by inversion")
        if self.method == "ferman_pinto":
            text += "; control residuals rescaled to the treated groups' variance, Var(W | M) = A + B/M by group size"
        return text


def _draw_indices(n_controls: int, n_treated: int, n_draws: int, seed: int | None) -> tuple[np.ndarray, bool]:
    """Control indices (B x N1): every combination when N0^N1 <= n_draws, else uniform draws."""
    total = n_controls**n_treated
    if total <= n_draws:
        grids = np.meshgrid(*[np.arange(n_controls)] * n_treated, indexing="ij")
        return np.stack([g.reshape(-1) for g in grids], axis=1), True
    rng = np.random.default_rng(20_101 if seed is None else seed)  # reproducible reports without a seed
    return rng.integers(0, n_controls, size=(n_draws, n_treated)), False


def _variance_ratio(scores: np.ndarray, size: np.ndarray, control: np.ndarray, treated: np.ndarray,
                    where: str) -> tuple[np.ndarray, tuple[float, float]]:
    """sqrt(Var(W | M_j) / Var(W | M_l)) for treated path j (rows) and control l (columns).

    ``scores`` (N1 x N0) are W_jl = a_j . eta_hat_l; for each treated path j, W_jl^2 is regressed on
    (1, 1/M_l) over the controls (Ferman & Pinto 2019, section 3). Returns the ratios and the (A, B)
    of the first path (for the record)."""
    inv_c, inv_t = 1.0 / size[control], 1.0 / size[treated]
    if np.ptp(inv_c) <= 1e-12 * np.abs(inv_c).max():
        if np.allclose(inv_t, inv_c[0]):
            return np.ones_like(scores), (math.nan, math.nan)
        raise SpecError(
            f"{where}: inference='ferman_pinto' models the variance by group size, but every control group has the "
            "same size while the treated groups differ; the variance at the treated size cannot be estimated. Use "
            "inference='conley_taber', or give the group sizes (group_size=).")
    from scipy.optimize import nnls

    # both components are variances (a common part A and an individual-noise part B/M), so the fit is
    # constrained to A, B >= 0: unconstrained OLS can cross zero at the largest sizes
    Z = np.column_stack([np.ones_like(inv_c), inv_c])
    coef = np.array([nnls(Z, row**2)[0] for row in scores]).T  # 2 x N1
    var_c = coef[0][:, None] + coef[1][:, None] * inv_c[None, :]  # N1 x N0
    var_t = coef[0] + coef[1] * inv_t  # N1
    if np.any(var_c <= 0) or np.any(var_t <= 0):
        raise EstimationError(
            f"{where}: the Ferman-Pinto variance model A + B/M fitted to the control residuals is zero at some group "
            f"size (A = {coef[0][0]:.3g}, B = {coef[1][0]:.3g}); the residuals carry no variance to rescale. Use "
            "inference='conley_taber' or 'randomization'.")
    return np.sqrt(var_t[:, None] / var_c), (float(coef[0][0]), float(coef[1][0]))


def residual_inference(
    estimate: float,
    residuals: np.ndarray,
    weights: np.ndarray,
    treated: np.ndarray,
    *,
    method: ResidualMethod = "conley_taber",
    group_size: np.ndarray | None = None,
    level: float = 0.95,
    n_draws: int = 9_999,
    seed: int | None = None,
    where: str = "residual_inference",
) -> ResidualInference:
    """Conley-Taber (2011) or Ferman-Pinto (2019) inference on one DiD coefficient.

    Parameters
    ----------
    estimate : float
        The coefficient alpha_hat.
    residuals : ndarray (G, T)
        Group-by-period residuals of the fitted model (e.g. the mean residual of each cluster and
        period); only the rows of control groups are used.
    weights : ndarray (G, T)
        ``a_g``: the weight of group g's period-t error in alpha_hat - alpha (row g of the
        residualised treatment, summed over the group's units, divided by its total sum of squares).
        Treated rows define the draws; control rows enter the finite-control correction.
    treated : ndarray (G,) of bool
        Which groups are treated.
    method : {"conley_taber", "ferman_pinto"}
        Plain control residuals, or rescaled by the variance model A + B / M of group size.
    group_size : ndarray (G,), optional
        M_g, required for ``ferman_pinto`` (e.g. individuals or units behind each group's mean).
    level : float
        Confidence level of the interval.
    n_draws : int
        Enumerate every combination of control groups when there are at most this many.
    seed : int, optional
        Seed of the random draws (unused when enumerating).

    Returns
    -------
    ResidualInference

    Notes
    -----
    The approximation needs many control groups (N0 -> infinity with N1 fixed) and errors whose
    distribution is the same across groups (Conley-Taber) or depends on the group only through its
    size, in a known way (Ferman-Pinto). See the module docstring for the formulas.

    References
    ----------
    Conley & Taber (2011), doi:10.1162/REST_a_00049; Ferman & Pinto (2019), doi:10.1162/rest_a_00759.

    Examples
    --------
    >>> import numpy as np, impact as im
    >>> rng = np.random.default_rng(0)
    >>> E = rng.normal(size=(20, 6))
    >>> a = np.array([[-1, -1, -1, 1, 1, 1]]) / 6
    >>> out = im.inference.residual_inference(0.1, E, np.repeat(a, 20, axis=0) * (np.arange(20) == 0)[:, None],
    ...                                       np.arange(20) == 0)
    >>> out.n_draws, out.enumerated
    (19, True)
    """
    if method not in RESIDUAL_METHODS:
        raise SpecError(f"{where}: method={method!r} is not one of {RESIDUAL_METHODS}.")
    E = np.asarray(residuals, dtype=float)
    A_all = np.atleast_2d(np.asarray(weights, dtype=float))
    is_treated = np.asarray(treated, dtype=bool)
    if E.ndim != 2 or A_all.shape != E.shape or len(is_treated) != E.shape[0]:
        raise SpecError(f"{where}: residuals ({E.shape}) and weights ({A_all.shape}) must both be G x T, with one "
                        f"treated flag per group ({len(is_treated)}).")
    A = A_all[is_treated]
    if not (np.all(np.isfinite(E)) and np.all(np.isfinite(A_all)) and math.isfinite(float(estimate))):
        raise SpecError(f"{where}: residuals, weights and estimate must be finite (a balanced group x period panel).")
    control = ~is_treated
    n_treated, n_controls = int(is_treated.sum()), int(control.sum())
    if n_treated == 0:
        raise EstimationError(f"{where}: no treated group; residual-based inference needs at least one.")
    if n_controls < 2:
        raise EstimationError(
            f"{where}: {n_controls} control group(s): Conley-Taber / Ferman-Pinto inference approximates the treated "
            "groups' errors by the residuals of many control groups; use a design with more comparison groups.")
    scores = A @ E[control].T  # N1 x N0: W_jl = a_j . eta_hat_l
    model = None
    relative_variance = np.ones(len(is_treated))  # of each group's errors, for the finite-control correction
    if method == "ferman_pinto":
        if group_size is None:
            raise SpecError(f"{where}: inference='ferman_pinto' needs the group sizes (group_size=).")
        size = np.asarray(group_size, dtype=float)
        if size.shape != is_treated.shape or not np.all(np.isfinite(size)) or np.any(size <= 0):
            raise SpecError(f"{where}: group_size must hold {len(is_treated)} finite, positive sizes.")
        ratio, model = _variance_ratio(scores, size, control, is_treated, where)
        scores = scores * ratio
        if math.isfinite(model[0]):
            relative_variance = model[0] + model[1] / size
    # finite-control correction: the draws stand for the treated groups' term only; the controls' own
    # term sum_l a_l . eta_l (of order N1/G) and the period effects' absorption of 1/G of each
    # residual's variance are put back by scaling, exact when errors are iid across groups
    ssq = np.einsum("gt,gt->g", A_all, A_all) * relative_variance
    kappa = math.sqrt(ssq.sum() / ssq[is_treated].sum() * len(is_treated) / (len(is_treated) - 1))
    scores = scores * kappa
    idx, enumerated = _draw_indices(n_controls, n_treated, n_draws, seed)
    W = np.sort(np.abs(scores[np.arange(n_treated)[None, :], idx].sum(axis=1)))[::-1]  # |W|, largest first
    B = len(W)
    alpha = 1.0 - level
    m = int(math.floor(alpha * (B + 1) + 1e-9))  # the interval is estimate -/+ the m-th largest |W|
    if m == 0:
        low, high = -math.inf, math.inf
        warn(FewAssignmentsWarning,
             f"{where}: only {B} combinations of control residuals; the smallest attainable p-value is {1 / (B + 1):.3f}, "
             f"above {alpha:g}, so the interval is unbounded. Add control groups.")
    else:
        low, high = float(estimate) - W[m - 1], float(estimate) + W[m - 1]
    tol = 1e-10 * max(1.0, float(W[0]))
    p = float((1 + np.count_nonzero(W >= abs(float(estimate)) - tol)) / (B + 1))
    z = stats.norm.ppf(0.5 + level / 2)
    se = (high - low) / (2 * z) if math.isfinite(high - low) else math.inf
    return ResidualInference(method=method, estimate=float(estimate), p_value=float(p), conf_low=low, conf_high=high,
                             std_error=float(se), n_draws=B, enumerated=enumerated, n_treated=n_treated,
                             n_controls=n_controls, level=level, variance_model=model)
