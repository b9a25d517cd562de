"""Covariate balance diagnostics (MatchIt's conventions).

For each covariate: standardised mean difference, variance ratio and the mean and maximum
distance between the (weighted) empirical CDFs of the two groups, before and after matching or
weighting.

Conventions, as MatchIt 4 ``summary(m, standardize = TRUE)``:

* SMD = (mean_t - mean_c) / s, with the same s before and after matching: for the ATT the SD of
  the *treated* group in the full (unmatched) sample, for the ATC that of the controls, for the
  ATE sqrt((s_t^2 + s_c^2) / 2). For a binary covariate s = sqrt(p (1 - p)) (no n - 1).
* Variance ratio var_t / var_c with weighted variances
  sum w (x - m)^2 / (sum w - sum w^2 / sum w); not defined (NaN) for binary covariates.
* eCDF statistics over the pooled distinct values of the covariate in the full sample (also
  after matching, with unmatched units at weight 0): mean and maximum of
  |F_t(x) - F_c(x)|, the weighted empirical CDFs (the mean includes the largest value, where the
  difference is 0); for a binary covariate both equal the absolute difference in proportions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["balance_table", "BALANCE_COLUMNS"]

BALANCE_COLUMNS = (
    "covariate",
    "mean_treated_before",
    "mean_control_before",
    "mean_treated_after",
    "mean_control_after",
    "smd_before",
    "smd_after",
    "var_ratio_before",
    "var_ratio_after",
    "ecdf_mean_before",
    "ecdf_mean_after",
    "ecdf_max_before",
    "ecdf_max_after",
)


# elementwise sums rather than np.dot: a 1-D BLAS dot product can be very slow when OpenBLAS
# threads compete for busy cores
def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    return float((w * x).sum() / w.sum())


def _wvar(x: np.ndarray, w: np.ndarray) -> float:
    sw = w.sum()
    m = (w * x).sum() / sw
    denom = sw - (w * w).sum() / sw
    return float((w * (x - m) ** 2).sum() / denom) if denom > 0 else np.nan


def _ecdf_stats(order: np.ndarray, xs: np.ndarray, t: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """eCDF mean and max |F_t - F_c| over the distinct values of the whole sample.

    ``order`` sorts the covariate, ``xs`` is it sorted (rounded so that values equal up to rounding
    error, such as scores of identical units, count as one); ``w`` are weights (0 = unmatched).
    """
    wt = np.where(t, w, 0.0)[order]
    wc = np.where(t, 0.0, w)[order]
    ft = np.cumsum(wt) / wt.sum()
    fc = np.cumsum(wc) / wc.sum()
    last = np.flatnonzero(np.append(xs[1:] != xs[:-1], True))  # last position of each value
    diff = np.abs(ft[last] - fc[last])
    return float(diff.mean()), float(diff.max())


def balance_table(
    X: np.ndarray,
    names: list[str],
    treated: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    estimand: str = "ATT",
) -> pd.DataFrame:
    """Balance before (all units, unweighted) and after (``weights``; zero = unmatched).

    Parameters
    ----------
    X : ndarray (n, k)
        Covariates (every level of a categorical covariate as a 0/1 column).
    names : list of str
    treated : ndarray of 0/1
    weights : ndarray, optional
        Matching or balancing weights; ``None`` gives only the before columns (after = NaN).
    estimand : {"ATT", "ATC", "ATE"}
        Chooses the SMD denominator.
    """
    t = np.asarray(treated) == 1
    ones = np.ones(len(t))
    rows = []
    for j, name in enumerate(names):
        x = np.asarray(X[:, j], dtype=float)
        lo, hi = x.min(), x.max()
        binary = bool(((x == lo) | (x == hi)).all())
        x1, x0 = x[t], x[~t]
        if not binary:
            grain = 1e-10 * max(abs(lo), abs(hi), 1e-300)
            order = np.argsort(x, kind="stable")
            xs = np.round(x[order] / grain)

        def sd(v: np.ndarray) -> float:
            if binary:
                p = v.mean()
                return float(np.sqrt(p * (1 - p)))
            return float(v.std(ddof=1))

        if estimand == "ATT":
            s = sd(x1)
        elif estimand == "ATC":
            s = sd(x0)
        else:
            s = float(np.sqrt((sd(x1) ** 2 + sd(x0) ** 2) / 2))
        row = {"covariate": name}
        for label, w in (("before", ones), ("after", weights)):
            if w is None:
                row.update({f"{k}_{label}": np.nan for k in ("mean_treated", "mean_control", "smd", "var_ratio", "ecdf_mean", "ecdf_max")})
                continue
            w1, w0 = w[t], w[~t]
            k1, k0 = w1 > 0, w0 > 0
            if not k1.any() or not k0.any():
                row.update({f"{k}_{label}": np.nan for k in ("mean_treated", "mean_control", "smd", "var_ratio", "ecdf_mean", "ecdf_max")})
                continue
            # units with weight 0 drop out of the means and variances; their values stay on the
            # eCDF grid (MatchIt evaluates the eCDFs at every distinct value of the full sample)
            a1, b1, a0, b0 = x1, w1, x0, w0
            m1, m0 = _wmean(a1, b1), _wmean(a0, b0)
            row[f"mean_treated_{label}"] = m1
            row[f"mean_control_{label}"] = m0
            row[f"smd_{label}"] = (m1 - m0) / s if s > 0 else np.nan
            if binary:
                row[f"var_ratio_{label}"] = np.nan
                row[f"ecdf_mean_{label}"] = row[f"ecdf_max_{label}"] = abs(m1 - m0)
            else:
                v0 = _wvar(a0, b0)
                row[f"var_ratio_{label}"] = _wvar(a1, b1) / v0 if v0 > 0 else np.nan
                row[f"ecdf_mean_{label}"], row[f"ecdf_max_{label}"] = _ecdf_stats(order, xs, t, w)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(BALANCE_COLUMNS))
