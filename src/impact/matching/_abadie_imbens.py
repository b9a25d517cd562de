"""Abadie-Imbens inference for nearest-neighbour matching with replacement.

Matched sets are CSR arrays ``(focal, indptr, indices)`` over positions of the estimation sample
(see ``match._replacement_sets``); a set may hold more than M units when ties are kept. With
K(j) = sum over the sets holding j of 1/|set| and K'(j) = sum of 1/|set|^2 (K = k/M and K' = k/M^2
without ties, k = times j is used):

* ATT (focal = treated; the ATC swaps the groups), Abadie & Imbens (2006, Theorem 7):
  V = N_1^-2 [sum_focal (Y_i - Yhat_i - tau)^2 + sum_other (K^2 - K') sigma^2_j];
* ATE: V = N^-2 [sum_i (Yhat_i(1) - Yhat_i(0) - tau)^2 + sum_i (K^2 + 2K - K') sigma^2_i],

which reduce to the paper's K(K - 1)/M^2 and (K/M)^2 + (2M - 1)/M K/M without ties and equal R
``Matching``'s ``Match(..., ties = TRUE, Var.calc = J)`` with ties.

The conditional variances sigma^2_i come from unit i and its J nearest same-group units.

:func:`propensity_adjustment` adds the Abadie & Imbens (2016) term for a propensity score
estimated by maximum likelihood (logit or probit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from impact.matching import _nearest

__all__ = ["MatchingVariance", "matching_variance", "propensity_adjustment", "set_counts"]

Sets = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def set_counts(indptr: np.ndarray, indices: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """K(j) = sum over the sets holding j of 1/|set|, and K'(j) = the sum of 1/|set|^2."""
    size = np.diff(indptr)
    inv = np.repeat(1.0 / np.maximum(size, 1), size)
    return np.bincount(indices, weights=inv, minlength=n), np.bincount(indices, weights=inv**2, minlength=n)


def _row_ids(indptr: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def set_means(values: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (1-D or 2-D, rows = units) over each set; NaN for an empty set."""
    size = np.diff(indptr)
    rows = _row_ids(indptr)
    if values.ndim == 1:
        total = np.bincount(rows, weights=values[indices], minlength=len(size))
        return np.where(size > 0, total / np.maximum(size, 1), np.nan)
    out = np.column_stack([np.bincount(rows, weights=values[indices, k], minlength=len(size)) for k in range(values.shape[1])])
    return np.where((size > 0)[:, None], out / np.maximum(size, 1)[:, None], np.nan)


def same_group_neighbours(metric: np.ndarray, positions: np.ndarray, J: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    """The J nearest other units of the same group for each unit in ``positions`` (CSR over
    positions of the sample). Without ties: exactly J, ties to the unit first in the data; with
    ties: every unit as near as the J-th."""
    J = min(J, len(positions) - 1)
    if ties:
        indptr, local = _nearest.match_sets(metric[positions], metric[positions], ratio=J + 1, ties=True)
        own = local == np.repeat(np.arange(len(positions)), np.diff(indptr))  # the unit itself, at distance 0
        keep = ~own
        counts = np.bincount(_row_ids(indptr)[keep], minlength=len(positions))
        new_ptr = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(counts, out=new_ptr[1:])
        return new_ptr, positions[local[keep]]
    pts = metric[positions].reshape(len(positions), -1)
    nb, _ = _nearest.candidate_lists(pts, pts, J + 1)
    self_col = nb == np.arange(len(positions))[:, None]
    keep = np.where(self_col.any(axis=1)[:, None], ~self_col, np.arange(J + 1)[None, :] < J)
    nb = nb[keep].reshape(len(positions), J)
    return np.arange(0, len(positions) * J + 1, J, dtype=np.int64), positions[nb.ravel()]


def conditional_variances(y: np.ndarray, treated: np.ndarray, metric: np.ndarray, J: int, convention: str,
                          ties: bool) -> np.ndarray:
    """sigma^2 of every unit from itself and its J nearest same-group units: their sample variance
    (denominator = number of neighbours; R Matching, Stata teffects) or Abadie-Imbens (2006) eq. 14,
    J/(J + 1) (Y_i - mean of the neighbours)^2."""
    sigma2 = np.zeros(len(y))
    for group in (treated, ~treated):
        pos = np.flatnonzero(group)
        if len(pos) < 2:
            continue
        indptr, nb = same_group_neighbours(metric, pos, J, ties)
        m = np.diff(indptr).astype(float)
        rows = _row_ids(indptr)
        nb_mean = np.bincount(rows, weights=y[nb], minlength=len(pos)) / m
        if convention == "sample_variance":
            mean = (y[pos] + m * nb_mean) / (m + 1)
            ss = (y[pos] - mean) ** 2 + np.bincount(rows, weights=(y[nb] - mean[rows]) ** 2, minlength=len(pos))
            sigma2[pos] = ss / m
        else:
            sigma2[pos] = m / (m + 1) * (y[pos] - nb_mean) ** 2
    return sigma2


@dataclass(frozen=True)
class MatchingVariance:
    """The matching estimate, its Abadie-Imbens (2006) variance and what the 2016 term needs."""

    estimate: float
    variance: float
    n_focal: int
    n_used: int
    unit_effects: np.ndarray  # Yhat_i(1) - Yhat_i(0) per unit of the sample, NaN where not imputed


def _imputed_other(y: np.ndarray, focal: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
                   mu: np.ndarray | None) -> np.ndarray:
    """Mean outcome of each focal unit's matched set, bias-adjusted by mu(X_i) - mu(X_j) if given."""
    yhat = set_means(y, indptr, indices)
    if mu is not None:
        yhat = yhat + mu[focal] - set_means(mu, indptr, indices)
    return yhat


def _bias_regression(y: np.ndarray, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Fitted values of the weighted regression of y on [1, X] over the units with weight > 0
    (Abadie & Imbens 2011: the outcome model of the group the matches come from)."""
    used = weights > 0
    A = np.column_stack([np.ones(int(used.sum())), X[used]])
    sw = np.sqrt(weights[used])
    beta = np.linalg.lstsq(A * sw[:, None], y[used] * sw, rcond=None)[0]
    return np.column_stack([np.ones(len(X)), X]) @ beta


def matching_variance(y: np.ndarray, treated: np.ndarray, sets: Sets, estimand: str, metric: np.ndarray, *,
                      J: int, convention: str, ties: bool, bias_X: np.ndarray | None = None) -> MatchingVariance:
    """Matching estimate of the ATT, ATC or ATE and its Abadie-Imbens (2006) variance."""
    n = len(y)
    K = np.zeros(n)
    K2 = np.zeros(n)
    effects = np.full(n, np.nan)
    for group, (focal, indptr, indices) in sets.items():
        k, k2 = set_counts(indptr, indices, n)
        K += k
        K2 += k2
        mu = _bias_regression(y, bias_X, k) if bias_X is not None else None
        yhat = _imputed_other(y, focal, indptr, indices, mu)
        effects[focal] = (y[focal] - yhat) if group == "treated" else (yhat - y[focal])
    sigma2 = conditional_variances(y, treated, metric, J, convention, ties)
    if estimand == "ATE":
        focal_mask = np.isfinite(effects)
        weight = K**2 + 2 * K - K2
    else:
        focal_mask = np.isfinite(effects) & (treated if estimand == "ATT" else ~treated)
        weight = np.where(treated if estimand == "ATT" else ~treated, 0.0, K**2 - K2)
    e = effects[focal_mask]
    tau = float(e.mean())
    n_f = len(e)
    # weight 0 where a unit's variance does not enter (the focal group of the ATT/ATC), whose
    # unmatched units may lack an outcome
    var = (np.sum((e - tau) ** 2) + np.sum(np.where(weight != 0, weight * sigma2, 0.0))) / n_f**2
    n_used = int((focal_mask | (K > 0)).sum())
    return MatchingVariance(tau, float(var), n_f, n_used, effects)


def _set_covariances(X: np.ndarray, y: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Sample covariance of each column of X with y over each set (rows = sets)."""
    rows = _row_ids(indptr)
    m = np.diff(indptr).astype(float)
    xbar = set_means(X, indptr, indices)
    ybar = set_means(y, indptr, indices)
    prod = (X[indices] - xbar[rows]) * (y[indices] - ybar[rows])[:, None]
    out = np.column_stack([np.bincount(rows, weights=prod[:, k], minlength=len(m)) for k in range(X.shape[1])])
    return out / np.maximum(m - 1, 1)[:, None]


def propensity_adjustment(y: np.ndarray, treated: np.ndarray, X1: np.ndarray, score: np.ndarray, linear: np.ndarray,
                          link: str, estimand: str, estimate: float, unit_effects: np.ndarray, metric: np.ndarray, *,
                          L: int, ties: bool) -> float:
    """Abadie & Imbens (2016) change in Var(tau_hat) from estimating the propensity score.

    With the score model's information matrix I = E[f^2 / (p (1 - p)) X X'] (f = dp/d index; X
    with the intercept) and cov_w(X) = cov(X, mu(w, X) | p(X)):

    * ATE (Theorem 1): -c' I^-1 c / N, c = E[f (cov_1(X) / p + cov_0(X) / (1 - p))];
    * ATT (Theorem 2): (-c_t' I^-1 c_t + a' I^-1 a) / N with
      c_t = E[f (cov_1(X) + p / (1 - p) cov_0(X))] / P(W = 1) and a = dtau_t/dtheta =
      E[f X (tau(X) - tau_t)] / P(W = 1) (the ATC swaps the groups and p with 1 - p).

    Checked by simulation (tests/matching/test_abadie_imbens.py): with c_t the mean SE equals the
    Monte Carlo SD of the estimate (0.2312 vs 0.2302, 1,000 samples); adding a to c_t, as a
    projection argument might suggest, gives 0.2098.

    cov_w(X_i) is the sample covariance of X and Y over the L units of group w nearest to unit i
    on the score (i itself among them when it belongs to w), as Abadie & Imbens (2016, Section 4)
    estimate it; tau(X_i) by the unit's imputed effect Yhat_i(1) - Yhat_i(0).
    """
    n = len(y)
    p = score
    if link == "logit":
        f = p * (1 - p)
        info_w = f
    else:
        f = stats.norm.pdf(linear)
        info_w = f**2 / (p * (1 - p))
    info = (X1 * info_w[:, None]).T @ X1 / n
    cov = {}
    for w, group in ((1, treated), (0, ~treated)):
        pos = np.flatnonzero(group)
        indptr, local = _nearest.match_sets(metric, metric[pos], ratio=min(L, len(pos)), ties=ties)
        cov[w] = _set_covariances(X1, y, indptr, pos[local])

    def quad(v: np.ndarray) -> float:
        return float(v @ np.linalg.solve(info, v))

    if estimand == "ATE":
        c = (f[:, None] * (cov[1] / p[:, None] + cov[0] / (1 - p)[:, None])).mean(axis=0)
        return -quad(c) / n
    if estimand == "ATT":
        q = treated.mean()
        d = (f[:, None] * (cov[1] + (p / (1 - p))[:, None] * cov[0])).mean(axis=0) / q
        a = (X1 * (f * (unit_effects - estimate))[:, None]).mean(axis=0) / q
    else:
        q = 1 - treated.mean()
        d = (f[:, None] * (cov[0] + ((1 - p) / p)[:, None] * cov[1])).mean(axis=0) / q
        a = -(X1 * (f * (unit_effects - estimate))[:, None]).mean(axis=0) / q
    return (-quad(d) + quad(a)) / n
