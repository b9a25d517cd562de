"""Multiplier (score) bootstrap from influence functions, written once for every design.

Given the influence functions ``psi`` (n x p) of p asymptotically linear estimators,
``theta_hat - theta = (1/n) sum_i psi_i + o_p(n^-1/2)``, one bootstrap draw is
``(1/n) sum_i V_i psi_i`` with i.i.d. multipliers ``V_i`` of mean 0 and variance 1 (one multiplier per
cluster when clusters are given: ``(1/n) sum_c V_c sum_{i in c} psi_i``). Nothing is re-estimated, so
B draws cost one (B x n) @ (n x p) product, done here in chunks of draws so that memory stays
bounded (about ``chunk_elements`` multipliers at a time) whatever B and n.

Used by :func:`impact.did.att_gt` (group-time ATTs and their aggregations); any estimator that can
return its influence functions can use it for standard errors and uniform (simultaneous) bands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from impact.data import check_option
from impact.inference.resampling import chunk_generators, chunk_starts, map_chunks, pieces
from impact.inference.vcov import group_sums
from impact.errors import SpecError

__all__ = ["MultiplierDraws", "MultiplierKind", "multiplier_bootstrap"]

MultiplierKind = Literal["mammen", "rademacher", "webb"]

_SQRT5 = math.sqrt(5.0)
# Mammen (1993) two-point distribution: mean 0, variance 1, third moment 1.
_MAMMEN_LOW = (1.0 - _SQRT5) / 2.0
_MAMMEN_HIGH = (1.0 + _SQRT5) / 2.0
_MAMMEN_P_LOW = (_SQRT5 + 1.0) / (2.0 * _SQRT5)
_IQR_NORMAL = float(stats.norm.ppf(0.75) - stats.norm.ppf(0.25))


@dataclass(frozen=True)
class MultiplierDraws:
    """Bootstrap draws of p estimates and the inference they imply.

    Attributes
    ----------
    deviations : ndarray (B, p)
        Draws of ``theta* - theta_hat``.
    draws : ndarray (B, p) or None
        Draws of the estimates, ``theta_hat + deviations`` (when ``estimates`` were given).
    std_errors : ndarray (p,)
        Bootstrap standard errors: the interquartile range of the draws divided by that of the
        standard normal (robust to heavy tails; as R ``did``), or their standard deviation.
    critical_value : float
        Uniform (simultaneous) critical value: the ``level`` quantile of
        ``max_j |deviation_j / std_error_j|`` over the columns with a positive standard error;
        never below the pointwise normal critical value.
    pointwise_critical_value : float
        The normal critical value at ``level``.
    n_draws, kind, n_clusters, level : as requested.
    """

    deviations: np.ndarray
    draws: np.ndarray | None
    std_errors: np.ndarray
    critical_value: float
    pointwise_critical_value: float
    n_draws: int
    kind: str
    n_clusters: int | None
    level: float

    def bands(self, estimates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Uniform confidence bands ``estimate -/+ critical_value * std_error``."""
        est = np.asarray(estimates, dtype=float)
        return est - self.critical_value * self.std_errors, est + self.critical_value * self.std_errors


_WEBB32 = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)], dtype=np.float32)


def _chunk(rng: np.random.Generator, buffer: np.ndarray, psi32: np.ndarray, colsum: np.ndarray, kind: str) -> np.ndarray:
    """``len(buffer)`` draws of ``V @ psi`` (V: rows x m multipliers), via a 0/1 indicator matrix written
    into the reused single-precision ``buffer``: V = a + (b - a) * B, so
    V @ psi = a * colsum(psi) + (b - a) * (B @ psi)."""
    rows, m = buffer.shape
    if kind == "webb":
        # Webb's six-point distribution (+-sqrt(1/2), +-1, +-sqrt(3/2), each 1/6): with few clusters it
        # has far more distinct draws than Rademacher's 2^G (Webb 2023)
        np.take(_WEBB32, rng.integers(0, 6, size=(rows, m), dtype=np.int8), out=buffer)
        return (buffer @ psi32).astype(np.float64)
    if kind == "rademacher":
        # one random bit per multiplier: -1 + 2 * bit
        raw = np.frombuffer(rng.bytes(rows * ((m + 7) // 8)), dtype=np.uint8).reshape(rows, -1)
        np.copyto(buffer, np.unpackbits(raw, axis=1, count=m), casting="unsafe")
        low, high = -1.0, 1.0
    else:
        np.copyto(buffer, rng.random((rows, m), dtype=np.float32) >= _MAMMEN_P_LOW, casting="unsafe")
        low, high = _MAMMEN_LOW, _MAMMEN_HIGH
    return low * colsum[None, :] + (high - low) * (buffer @ psi32).astype(np.float64)


def multiplier_bootstrap(
    influence: np.ndarray,
    *,
    n_draws: int,
    seed: int | np.random.Generator | None = None,
    clusters: np.ndarray | None = None,
    n_clusters: int | None = None,
    kind: MultiplierKind = "mammen",
    estimates: np.ndarray | None = None,
    level: float = 0.95,
    scale: Literal["iqr", "sd"] = "iqr",
    band: np.ndarray | None = None,
    chunk_elements: int = 16_000_000,
    n_jobs: int | None = None,
) -> MultiplierDraws:
    """Multiplier bootstrap of estimates from their influence functions.

    Parameters
    ----------
    influence : ndarray (n, p)
        Influence function of each estimate at each unit, scaled so that the estimate's variance is
        ``sum_i psi_i^2 / n^2`` (i.e. ``theta_hat - theta ~ mean(psi)``).
    n_draws : int
        Number of bootstrap draws B (e.g. 999).
    seed : int, Generator or None
        Seed of ``numpy.random.default_rng``; the same seed gives the same draws.
    clusters : ndarray (n,) of int codes 0..G-1, optional
        One multiplier per cluster (units in a cluster share it), for inference clustered above
        the unit level.
    kind : {"mammen", "rademacher", "webb"}
        Distribution of the multipliers: Mammen's two-point distribution (mean 0, variance 1,
        skewness 1), Rademacher signs, or Webb's six-point distribution (recommended when the
        multipliers are drawn per cluster and there are few clusters).
    estimates : ndarray (p,), optional
        Point estimates; when given, ``draws`` holds ``estimates + deviations``.
    level : float
        Confidence level of the critical values.
    scale : {"iqr", "sd"}
        How standard errors are read off the draws (see :class:`MultiplierDraws`).
    band : array of column indices or booleans, optional
        Columns the uniform critical value covers (default: all columns with a positive standard
        error), e.g. the event-time effects but not their average.
    chunk_elements : int
        Upper bound on the multipliers held in memory at once (rows of draws x units/clusters).
    n_jobs : int, optional
        Split the chunks of draws over this many workers of joblib's active backend (-1: one per
        core); default: the enclosing :func:`impact.inference.resampling.parallel_draws`, else 1.
        The draws are the same for a given seed whatever the number of workers.

    Returns
    -------
    MultiplierDraws

    Notes
    -----
    Draw b is :math:`\\hat\\theta^*_b - \\hat\\theta = n^{-1} \\sum_i V_{b i} \\psi_i` (or the cluster
    version), conditional on the data. The uniform critical value is the :math:`1-\\alpha` quantile of
    :math:`\\max_j |\\hat\\theta^*_{bj} - \\hat\\theta_j| / \\hat\\sigma_j`, which gives simultaneous
    bands :math:`\\hat\\theta_j \\pm c \\hat\\sigma_j` covering all p parameters with probability
    :math:`1-\\alpha` asymptotically (Callaway & Sant'Anna 2021, section 4.1).

    References
    ----------
    Mammen, E. (1993). Bootstrap and wild bootstrap for high dimensional linear models. *Annals of
    Statistics* 21(1), 255-285. doi:10.1214/aos/1176349025

    Callaway, B., & Sant'Anna, P. H. C. (2021). Difference-in-differences with multiple time
    periods. *Journal of Econometrics* 225(2), 200-230. doi:10.1016/j.jeconom.2020.12.001
    """
    check_option("kind", kind, ("mammen", "rademacher", "webb"))
    check_option("scale", scale, ("iqr", "sd"))
    psi = np.asarray(influence, dtype=float)
    if psi.ndim == 1:
        psi = psi[:, None]
    if psi.ndim != 2:
        raise SpecError(f"influence must be an n x p matrix; got an array with shape {psi.shape}.")
    n, p = psi.shape
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 2:
        raise SpecError(f"the number of bootstrap draws must be an integer of at least 2; got {n_draws!r}.")
    if not 0 < level < 1:
        raise SpecError(f"level must be between 0 and 1; got {level}.")
    n_draws = int(n_draws)

    if clusters is not None:
        codes = np.asarray(clusters, dtype=np.int64)
        G = int(n_clusters if n_clusters is not None else codes.max() + 1)
        psi_eff, n_clusters_used = group_sums(codes, psi, G), G
    else:
        psi_eff, n_clusters_used = psi, None

    m = psi_eff.shape[0]
    # single precision for the (B x m) @ (m x p) product: its rounding (~1e-6 relative) is far below
    # the Monte Carlo error of any bootstrap
    psi32 = psi_eff.astype(np.float32)
    colsum = psi_eff.sum(axis=0)
    # each chunk of draws has its own random stream, so the draws are the same whether the chunks run
    # here or on workers (impact.inference.resampling); within a chunk, pieces of at most
    # chunk_elements multipliers bound memory (each piece is one matmul)
    starts = chunk_starts(n_draws)
    ends = [*starts[1:], n_draws]
    generators = chunk_generators(seed, len(starts))
    rows = max(1, min(n_draws, chunk_elements // max(m, 1)))
    reused: dict[str, np.ndarray] = {}  # one buffer per process: fresh pages for every piece cost more than the work

    def work(i: int) -> np.ndarray:
        if "buffer" not in reused:
            reused["buffer"] = np.empty((min(rows, ends[0]), m), dtype=np.float32)
        return np.concatenate([_chunk(generators[i], reused["buffer"][: stop - start], psi32, colsum, kind)
                               for start, stop in pieces(starts[i], ends[i], min(rows, ends[0]))])

    deviations = np.concatenate(map_chunks(work, len(starts), n_jobs=n_jobs))
    deviations /= n

    if scale == "iqr":
        q75, q25 = np.quantile(deviations, [0.75, 0.25], axis=0, method="inverted_cdf")
        se = (q75 - q25) / _IQR_NORMAL
    else:
        se = deviations.std(axis=0, ddof=1)
    z = float(stats.norm.ppf(0.5 + level / 2))
    usable = np.isfinite(se) & (se > 0)
    if band is not None:
        in_band = np.zeros(p, dtype=bool)
        in_band[np.asarray(band)] = True
        usable &= in_band
    if usable.any():
        t_max = np.max(np.abs(deviations[:, usable] / se[usable]), axis=1)
        crit = float(np.quantile(t_max, level, method="inverted_cdf"))
        crit = max(crit, z) if np.isfinite(crit) else z
    else:
        crit = z
    draws = None if estimates is None else np.asarray(estimates, dtype=float)[None, :] + deviations
    return MultiplierDraws(
        deviations=deviations,
        draws=draws,
        std_errors=se,
        critical_value=crit,
        pointwise_critical_value=z,
        n_draws=n_draws,
        kind=kind,
        n_clusters=n_clusters_used,
        level=level,
    )
