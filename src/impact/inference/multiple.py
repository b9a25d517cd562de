"""Multiple-testing adjustments, written once for every design.

* :func:`holm` and :func:`benjamini_hochberg` adjust a vector of p-values (family-wise error rate and
  false discovery rate, as R ``p.adjust(method = "holm" | "BH")``).
* :func:`westfall_young` (step-down maxT or minP) and :func:`romano_wolf` (step-down maxT on a
  bootstrap or permutation null) use the *joint* resampling distribution of the test statistics, so
  they account for the dependence between outcomes and are less conservative than Holm when the
  outcomes are correlated. The null draws come from :mod:`impact.inference.permutation` (re-drawn
  assignments) or from a bootstrap of the statistics centred at the estimates.

All functions take arrays and return adjusted p-values in the input order; they are generic (any
design that produces per-hypothesis statistics and their joint null draws can use them).

References
----------
Holm, S. (1979). A simple sequentially rejective multiple test procedure. *Scandinavian Journal of
Statistics* 6(2), 65-70.
Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate. *JRSS B* 57(1),
289-300. doi:10.1111/j.2517-6161.1995.tb02031.x.
Westfall, P. H. and Young, S. S. (1993). *Resampling-Based Multiple Testing*. Wiley. (Algorithms
2.5 maxT and 2.8 minP.)
Romano, J. P. and Wolf, M. (2005). Stepwise multiple testing as formalized data snooping.
*Econometrica* 73(4), 1237-1282. doi:10.1111/j.1468-0262.2005.00615.x.
Romano, J. P. and Wolf, M. (2016). Efficient computation of adjusted p-values for resampling-based
stepdown multiple testing. *Statistics & Probability Letters* 113, 38-40.
doi:10.1016/j.spl.2016.02.012.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from impact.errors import SpecError

__all__ = ["holm", "benjamini_hochberg", "westfall_young", "romano_wolf", "ADJUSTMENTS"]

ADJUSTMENTS = ("holm", "bh", "westfall_young", "romano_wolf")


def _as_p(p_values: np.ndarray) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise SpecError("p-values must be a 1-d array.")
    if np.any((p < 0) | (p > 1)):
        raise SpecError("p-values must lie in [0, 1].")
    return p


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values: ``min(1, max_{j<=i} (m - j + 1) p_(j))``."""
    p = _as_p(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg (1995) step-up adjusted p-values (q-values): ``min_{j>=i} m p_(j) / j``."""
    p = _as_p(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")[::-1]
    ranks = m - np.arange(m)  # rank of each p in ascending order, visiting from the largest
    adjusted = np.minimum(1.0, np.minimum.accumulate(p[order] * m / ranks))
    out = np.empty(m)
    out[order] = adjusted
    return out


def _validate(observed: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    obs = np.asarray(observed, dtype=float)
    draws = np.asarray(null, dtype=float)
    if obs.ndim != 1 or draws.ndim != 2 or draws.shape[1] != obs.size:
        raise SpecError("null draws must be a (draws, hypotheses) matrix matching the observed statistics.")
    if draws.shape[0] < 1:
        raise SpecError("need at least one null draw.")
    return obs, draws


def _step_down_max(obs_abs: np.ndarray, null_abs: np.ndarray, exact: bool) -> np.ndarray:
    """Step-down maxT: successive maxima of the null over the hypotheses not yet rejected."""
    order = np.argsort(-obs_abs, kind="stable")  # most significant first
    sorted_null = null_abs[:, order]
    # u[b, j] = max over hypotheses ranked j..m (less significant ones) of the null statistic
    u = np.maximum.accumulate(sorted_null[:, ::-1], axis=1)[:, ::-1]
    tol = 1e-9 * np.abs(obs_abs[order]) + 1e-12
    extreme = (u >= obs_abs[order][None, :] - tol).sum(axis=0)
    B = null_abs.shape[0]
    p = extreme / B if exact else (1 + extreme) / (1 + B)
    p = np.maximum.accumulate(np.minimum(p, 1.0))
    out = np.empty_like(p)
    out[order] = p
    return out


def westfall_young(
    observed: np.ndarray,
    null: np.ndarray,
    *,
    method: Literal["maxT", "minP"] = "maxT",
    exact: bool = False,
) -> np.ndarray:
    """Westfall-Young step-down adjusted p-values from the joint null distribution.

    Parameters
    ----------
    observed : ndarray (m,)
        Observed test statistics (two-sided: absolute values are compared).
    null : ndarray (B, m)
        Statistics under the null for the same draws (e.g. re-drawn assignments: one row per draw,
        the same assignment for every hypothesis, so the dependence is kept).
    method : {"maxT", "minP"}
        ``maxT`` compares statistics directly (they should be on a common scale, e.g. t statistics);
        ``minP`` first turns each column into marginal p-values, which needs no common scale.
    exact : bool
        ``True`` when ``null`` enumerates all (equally likely) assignments, including the observed
        one; otherwise the Monte Carlo ``(1 + count)/(1 + B)`` convention is used.

    Notes
    -----
    maxT (Westfall & Young 1993, Algorithm 2.8): order hypotheses by :math:`|t_{(1)}|\\ge\\dots\\ge|t_{(m)}|`;
    :math:`\\tilde p_{(j)} = \\Pr(\\max_{k \\ge j} |T^*_{(k)}| \\ge |t_{(j)}|)`, made monotone by a running
    maximum. minP replaces :math:`|T^*|` by its marginal p-value and the maximum by a minimum.
    Strong control of the family-wise error rate needs subset pivotality, which holds for tests
    of the sharp null with re-drawn assignments.
    """
    obs, draws = _validate(observed, null)
    if method not in ("maxT", "minP"):
        raise SpecError(f"method={method!r} is not valid; choose 'maxT' or 'minP'.")
    obs_abs, null_abs = np.abs(obs), np.abs(draws)
    if method == "maxT":
        return _step_down_max(obs_abs, null_abs, exact)
    B = draws.shape[0]
    # marginal p-values of the observed and of every null draw (rank within its own column)
    sorted_cols = np.sort(null_abs, axis=0)
    def marginal(values: np.ndarray, col: int) -> np.ndarray:
        tol = 1e-9 * np.abs(values) + 1e-12
        ge = B - np.searchsorted(sorted_cols[:, col], values - tol, side="left")
        return ge / B if exact else (1 + ge) / (1 + B)
    p_obs = np.array([marginal(np.array([obs_abs[j]]), j)[0] for j in range(obs.size)])
    p_null = np.column_stack([marginal(null_abs[:, j], j) for j in range(obs.size)])
    # minP is maxT on -p: smaller p = more extreme
    return _step_down_max(-p_obs + 2.0, -p_null + 2.0, exact)


def romano_wolf(
    observed: np.ndarray,
    null: np.ndarray,
    *,
    exact: bool = False,
) -> np.ndarray:
    """Romano-Wolf (2005, 2016) step-down adjusted p-values.

    Parameters
    ----------
    observed : ndarray (m,)
        Observed studentised statistics :math:`t_j = \\hat\\theta_j / \\hat\\sigma_j`.
    null : ndarray (B, m)
        Draws of the statistics under the null: either from re-drawn assignments (then this equals
        Westfall-Young maxT) or **centred** bootstrap draws :math:`(\\hat\\theta^*_j - \\hat\\theta_j)/\\hat\\sigma^*_j`
        (Romano & Wolf's bootstrap version, which does not need subset pivotality).
    exact : bool
        As in :func:`westfall_young`.

    Notes
    -----
    Romano & Wolf (2016, eq. 2-3): with hypotheses ordered by decreasing :math:`|t|`, the adjusted
    p-value of the j-th is the share of draws whose maximum of :math:`|t^*|` over the hypotheses
    ranked j and below reaches :math:`|t_{(j)}|`, made monotone by a running maximum.
    """
    obs, draws = _validate(observed, null)
    return _step_down_max(np.abs(obs), np.abs(draws), exact)
