"""Greedy nearest-neighbour matching kernels.

Greedy matching without replacement is sequential by definition (each treated unit, in the
matching order, takes the nearest control still available), so the loops over treated units run
compiled with numba when it is installed (plain Python otherwise: same code, slower).

Score (1-D) matching never compares all pairs: controls are sorted by score and grouped into
blocks of equal score; a treated unit's nearest available control is found from its insertion
point with two union-find pointer arrays ("next available block to the left / right", path
compressed), so the cost is O((n_t + n_c) log n_c) and memory is linear.

Ties are broken deterministically: among controls at the same distance the one that comes first
in the data wins (also between equally distant controls to the left and right of the score).
"""

from __future__ import annotations

import numpy as np

try:  # numba is a declared dependency; the fallback keeps the code importable without it
    from numba import njit
except ImportError:  # pragma: no cover
    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

__all__ = ["greedy_score", "nearest_score_with_replacement", "greedy_vectors"]


@njit(cache=True)
def _find(parent, b):
    root = b
    while parent[root] != root:
        root = parent[root]
    while parent[b] != root:  # path compression
        nxt = parent[b]
        parent[b] = root
        b = nxt
    return root


@njit(cache=True)
def _greedy_score_kernel(t_score, order_t, block_val, block_start, block_end, c_pos_sorted, ratio, caliper):
    n_t = t_score.shape[0]
    B = block_val.shape[0]
    matches = -np.ones((n_t, ratio), dtype=np.int64)
    head = block_start.copy()
    # right parent: index in 0..B (B = none); left parent: index shifted by one, 0 = none
    par_r = np.arange(B + 1)
    par_l = np.arange(B + 1)
    for r in range(ratio):
        for k in range(n_t):
            i = order_t[k]
            if r > 0 and matches[i, r - 1] < 0:
                continue
            x = t_score[i]
            p = np.searchsorted(block_val, x)
            R = _find(par_r, p)
            L = _find(par_l, p) - 1  # shifted: block p-1 sits at index p
            best = -1
            if R < B and L >= 0:
                dr = block_val[R] - x
                dl = x - block_val[L]
                if dr < dl:
                    best = R
                elif dl < dr:
                    best = L
                else:
                    best = R if c_pos_sorted[head[R]] < c_pos_sorted[head[L]] else L
            elif R < B:
                best = R
            elif L >= 0:
                best = L
            if best < 0:
                continue
            if abs(block_val[best] - x) > caliper:
                continue
            matches[i, r] = c_pos_sorted[head[best]]
            head[best] += 1
            if head[best] == block_end[best]:
                par_r[best] = best + 1
                par_l[best + 1] = best
    return matches


def _blocks(c_score: np.ndarray):
    pos = np.arange(c_score.size)
    order = np.lexsort((pos, c_score))
    sorted_scores = c_score[order]
    new = np.empty(sorted_scores.size, dtype=bool)
    new[0] = True
    new[1:] = sorted_scores[1:] != sorted_scores[:-1]
    block_start = np.flatnonzero(new)
    block_end = np.append(block_start[1:], sorted_scores.size)
    return sorted_scores[block_start], block_start, block_end, order


def greedy_score(t_score, c_score, order_t, *, ratio: int, caliper: float) -> np.ndarray:
    """Greedy matching without replacement on a 1-D score.

    Returns an (n_t, ratio) array of control positions (-1 = no match). Every treated unit gets
    its first match (in ``order_t``) before any gets its second, as MatchIt does.
    """
    block_val, block_start, block_end, order = _blocks(np.asarray(c_score, dtype=float))
    return _greedy_score_kernel(
        np.asarray(t_score, dtype=float), np.asarray(order_t, dtype=np.int64), block_val,
        block_start.astype(np.int64), block_end.astype(np.int64), order.astype(np.int64), int(ratio),
        float(caliper),
    )


@njit(cache=True)
def _with_replacement_kernel(t_score, block_val, block_start, block_end, c_pos_sorted, ratio, caliper):
    n_t = t_score.shape[0]
    B = block_val.shape[0]
    matches = -np.ones((n_t, ratio), dtype=np.int64)
    for i in range(n_t):
        x = t_score[i]
        R = np.searchsorted(block_val, x)
        L = R - 1
        taken = 0
        while taken < ratio and (R < B or L >= 0):
            if R < B and L >= 0:
                dr = block_val[R] - x
                dl = x - block_val[L]
                if dr < dl or (dr == dl and c_pos_sorted[block_start[R]] < c_pos_sorted[block_start[L]]):
                    b = R
                    R += 1
                else:
                    b = L
                    L -= 1
            elif R < B:
                b = R
                R += 1
            else:
                b = L
                L -= 1
            if abs(block_val[b] - x) > caliper:
                break
            j = block_start[b]
            while j < block_end[b] and taken < ratio:
                matches[i, taken] = c_pos_sorted[j]
                taken += 1
                j += 1
    return matches


def nearest_score_with_replacement(t_score, c_score, *, ratio: int, caliper: float) -> np.ndarray:
    """The ``ratio`` nearest controls of every treated unit on a 1-D score (controls reusable)."""
    block_val, block_start, block_end, order = _blocks(np.asarray(c_score, dtype=float))
    return _with_replacement_kernel(
        np.asarray(t_score, dtype=float), block_val, block_start.astype(np.int64),
        block_end.astype(np.int64), order.astype(np.int64), int(ratio), float(caliper),
    )


@njit(cache=True)
def _greedy_vectors_kernel(Zt, Zc, order_t, cand, ratio):
    n_t = Zt.shape[0]
    n_c = Zc.shape[0]
    K = cand.shape[1]
    matches = -np.ones((n_t, ratio), dtype=np.int64)
    available = np.ones(n_c, dtype=np.bool_)
    ptr = np.zeros(n_t, dtype=np.int64)
    n_avail = n_c
    for r in range(ratio):
        for k in range(n_t):
            i = order_t[k]
            if n_avail == 0:
                break
            if r > 0 and matches[i, r - 1] < 0:
                continue
            best = -1
            while ptr[i] < K:
                c = cand[i, ptr[i]]
                ptr[i] += 1
                if c >= 0 and available[c]:
                    best = c
                    break
            if best < 0:  # candidate list exhausted: exact search over the available controls
                best_d = np.inf
                for c in range(n_c):
                    if not available[c]:
                        continue
                    d = 0.0
                    for m in range(Zt.shape[1]):
                        diff = Zt[i, m] - Zc[c, m]
                        d += diff * diff
                    if d < best_d:
                        best_d = d
                        best = c
            matches[i, r] = best
            available[best] = False
            n_avail -= 1
    return matches


def candidate_lists(Zt: np.ndarray, Zc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest controls of each treated unit in Euclidean distance on whitened
    covariates, ordered by (distance, data position); rows whose k-th and (k+1)-th candidates tie
    are completed by an exact search so that ties are always broken by data position."""
    from scipy.spatial import cKDTree

    k = min(k, Zc.shape[0])
    tree = cKDTree(Zc)
    extra = min(k + 1, Zc.shape[0])
    # every core: the 10-D queries are the cost of Mahalanobis matching, and rows are independent
    dist, idx = tree.query(Zt, k=extra, workers=-1)
    dist = dist.reshape(len(Zt), extra)
    idx = idx.reshape(len(Zt), extra)
    # sort each row by (distance, position): stable sorts, position first
    keys = np.argsort(idx, axis=1, kind="stable")
    idx = np.take_along_axis(idx, keys, axis=1)
    dist = np.take_along_axis(dist, keys, axis=1)
    keys = np.argsort(dist, axis=1, kind="stable")
    idx = np.take_along_axis(idx, keys, axis=1)
    dist = np.take_along_axis(dist, keys, axis=1)
    if extra > k:
        tie = dist[:, k - 1] >= dist[:, k] * (1 - 1e-12)
        for i in np.flatnonzero(tie):  # rare: identical covariate vectors at the boundary
            d = np.sqrt(((Zc - Zt[i]) ** 2).sum(axis=1))
            o = np.lexsort((np.arange(len(d)), d))[:extra]
            idx[i], dist[i] = o, d[o]
    return idx[:, :k].astype(np.int64), dist[:, :k]


def greedy_vectors(Zt: np.ndarray, Zc: np.ndarray, order_t: np.ndarray, *, ratio: int) -> np.ndarray:
    """Greedy matching without replacement in Euclidean distance on whitened covariates
    (= Mahalanobis distance on the original ones)."""
    # short candidate lists: k-d tree queries in many dimensions are the expensive part
    K = min(Zc.shape[0], max(8, 4 * ratio))
    cand, _ = candidate_lists(Zt, Zc, K)
    return _greedy_vectors_kernel(
        np.ascontiguousarray(Zt, dtype=float), np.ascontiguousarray(Zc, dtype=float),
        np.asarray(order_t, dtype=np.int64), cand, int(ratio),
    )


@njit(cache=True)
def _match_sets_kernel(t_score, block_val, block_start, block_end, c_pos_sorted, ratio, caliper, ties, indptr, out, fill):
    n_t = t_score.shape[0]
    B = block_val.shape[0]
    counts = np.zeros(n_t, dtype=np.int64)
    for i in range(n_t):
        x = t_score[i]
        R = np.searchsorted(block_val, x)
        L = R - 1
        taken = 0
        last = -1.0
        slot = indptr[i] if fill else 0
        while R < B or L >= 0:
            if R < B and L >= 0:
                dr = block_val[R] - x
                dl = x - block_val[L]
                if dr < dl or (dr == dl and c_pos_sorted[block_start[R]] < c_pos_sorted[block_start[L]]):
                    b = R
                else:
                    b = L
            elif R < B:
                b = R
            else:
                b = L
            dist = abs(block_val[b] - x)
            if dist > caliper:
                break
            if taken >= ratio and (not ties or dist > last):
                break
            if b == R:
                R += 1
            else:
                L -= 1
            j = block_start[b]
            while j < block_end[b] and (ties or taken < ratio):
                if fill:
                    out[slot] = c_pos_sorted[j]
                    slot += 1
                taken += 1
                j += 1
            last = dist
        counts[i] = taken
    return counts


def match_sets(t_score, c_score, *, ratio: int, caliper: float = np.inf, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Matched sets (with replacement) of every query unit on a 1-D score, as CSR arrays.

    Returns ``(indptr, indices)``: the matches of query ``i`` are ``indices[indptr[i]:indptr[i + 1]]``
    (positions into ``c_score``), nearest first. Without ``ties`` each set holds the ``ratio``
    nearest units (ties to the unit first in the data, as :func:`nearest_score_with_replacement`);
    with ``ties`` it also holds every unit as near as the ``ratio``-th (R ``Matching``'s
    ``ties = TRUE``, Stata ``teffects``). Units beyond ``caliper`` are never matched.
    """
    block_val, block_start, block_end, order = _blocks(np.asarray(c_score, dtype=float))
    args = (np.asarray(t_score, dtype=float), block_val, block_start.astype(np.int64), block_end.astype(np.int64),
            order.astype(np.int64), int(ratio), float(caliper), bool(ties))
    counts = _match_sets_kernel(*args, np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), False)
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    out = np.empty(int(indptr[-1]), dtype=np.int64)
    _match_sets_kernel(*args, indptr, out, True)
    return indptr, out


def dense_to_sets(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) match array with -1 for none -> CSR ``(indptr, indices)``."""
    valid = pairs >= 0
    indptr = np.zeros(len(pairs) + 1, dtype=np.int64)
    np.cumsum(valid.sum(axis=1), out=indptr[1:])
    return indptr, pairs[valid].astype(np.int64)
