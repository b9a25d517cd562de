"""Absorbing fixed effects without dummy matrices.

The within transformation by one or more sets of fixed effects is computed by alternating
projections (the method of alternating projections, Gaure 2013): subtract the (weighted) group
means of each set in turn until the largest change is below a tolerance. One set is exact in a
single pass; two sets in a balanced panel converge after one sweep. Memory is a few copies of the
n x p array being demeaned; group means come from ``np.bincount``, so time is linear in n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

from impact.errors import ConvergenceWarning, warn

__all__ = ["FixedEffects", "absorb"]


@dataclass(frozen=True)
class FixedEffects:
    """Integer codes of one or more sets of fixed effects, with their sizes."""

    codes: tuple[np.ndarray, ...]
    sizes: tuple[int, ...]
    names: tuple[str, ...]
    balanced: bool = False  # two sets forming a complete, duplicate-free grid: one unweighted sweep is exact
    # ... and the rows in that grid's order (set 0 major, set 1 by code, as a panel sorted by unit and
    # period): each sweep is then a mean over an axis of a reshaped view, without scatter or gather
    grid: bool = False

    @classmethod
    def from_columns(cls, frame: pd.DataFrame, columns: Sequence[str]) -> FixedEffects:
        codes, sizes = [], []
        for col in columns:
            c, uniques = pd.factorize(frame[col].to_numpy(), sort=False)
            codes.append(c.astype(np.int64))
            sizes.append(len(uniques))
        return cls(tuple(codes), tuple(sizes), tuple(columns))

    @property
    def n_parameters(self) -> int:
        """Number of identified fixed-effect parameters (levels less redundancies).

        Exact for one or two sets (two sets lose one parameter per connected component of their
        bipartite graph); for three or more, each further set is assumed to lose one.
        """
        if not self.codes:
            return 0
        total = sum(self.sizes)
        if len(self.codes) == 1:
            return total
        if self.balanced:
            return total - 1 - (len(self.codes) - 2)
        return total - _components(self.codes[0], self.codes[1], self.sizes[0], self.sizes[1]) - (len(self.codes) - 2)

    def nested_in(self, clusters: np.ndarray) -> list[bool]:
        """For each set, whether every level lies within a single cluster."""
        out = []
        for c, size in zip(self.codes, self.sizes):
            if c is clusters or np.array_equal(c, clusters):  # e.g. unit effects and clusters by unit: one pass
                out.append(True)
                continue
            if len(clusters) and size < int(clusters.max()) + 1:  # codes 0..G-1: each cluster needs a level of its own
                out.append(False)
                continue
            owner = np.empty(size, dtype=clusters.dtype)
            owner[c] = clusters  # any row's cluster; nested iff every row agrees with it
            out.append(bool(np.array_equal(owner[c], clusters)))
        return out

    def leverage(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Leverage of a single set of fixed effects: w_i / (sum of w in i's group)."""
        if len(self.codes) != 1:
            raise ValueError("leverage is only available for one set of fixed effects")
        c = self.codes[0]
        w = np.ones(len(c)) if weights is None else weights
        return w / np.bincount(c, weights=w, minlength=self.sizes[0])[c]


def is_grid(a: np.ndarray, b: np.ndarray, size_a: int, size_b: int) -> bool:
    """Whether rows are the complete size_a x size_b grid of codes ``a`` x ``b`` in row-major order
    (``a`` = 0,0,..,1,1,.. and ``b`` = 0,1,..,0,1,..): a long panel sorted by unit and period."""
    if len(a) != size_a * size_b or len(a) == 0:
        return False
    A, B = a.reshape(size_a, size_b), b.reshape(size_a, size_b)
    return bool(np.array_equal(B[0], np.arange(size_b)) and np.array_equal(A[:, 0], np.arange(size_a))
                and (B == B[0]).all() and (A == A[:, :1]).all())


def _components(a: np.ndarray, b: np.ndarray, size_a: int, size_b: int) -> int:
    """Connected components of the bipartite graph linking levels of two sets that share a row.

    Every level of the larger set joins the component of the smallest level of the other set it
    meets, so the count is found on a graph among the smaller set's levels only.
    """
    if size_b > size_a:
        a, b, size_a, size_b = b, a, size_b, size_a
    first = np.full(size_a, size_b, dtype=np.int64)
    np.minimum.at(first, a, b)
    key = first[a] * size_b + b
    edges = np.flatnonzero(np.bincount(key, minlength=size_b * size_b)) if size_b**2 <= 50_000_000 else np.unique(key)
    graph = sparse.coo_matrix((np.ones(len(edges)), (edges // size_b, edges % size_b)), shape=(size_b, size_b))
    return int(csgraph.connected_components(graph, directed=False)[0])


def absorb(
    values: np.ndarray,
    fe: FixedEffects,
    *,
    weights: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 10_000,
    overwrite: bool = False,
) -> np.ndarray:
    """Return ``values`` (n or n x p) minus their projection on the fixed effects (a new array).

    With ``overwrite`` a float64, column-contiguous (Fortran-ordered) ``values`` is demeaned in place
    and returned, saving a copy of the n x p array."""
    if overwrite and isinstance(values, np.ndarray) and values.dtype == np.float64 and values.flags.f_contiguous:
        arr = values
    else:
        # column-contiguous: each column is swept on its own, and strided columns cost a copy per pass
        arr = np.array(values, dtype=float, copy=True, order="F")
    squeeze = arr.ndim == 1
    if squeeze:
        arr = arr[:, None]
    if not fe.codes:
        return arr[:, 0] if squeeze else arr
    if fe.grid and weights is None and len(fe.codes) == 2:
        for j in range(arr.shape[1]):
            grid = arr[:, j].reshape(fe.sizes)  # a view: demeaned in place, one sweep is exact
            grid -= grid.mean(axis=1, keepdims=True)
            grid -= grid.mean(axis=0, keepdims=True)
        return arr[:, 0] if squeeze else arr
    w = None if weights is None else np.asarray(weights, dtype=float)
    counts = [np.bincount(c, weights=w, minlength=s) for c, s in zip(fe.codes, fe.sizes)]
    # one pass of each set is exact with a single set, and for two sets on a complete unweighted grid
    one_sweep = len(fe.codes) == 1 or (fe.balanced and weights is None)
    scratch = np.empty(arr.shape[0])  # the expanded group means, reused (a fresh n-array per pass costs page faults)
    for j in range(arr.shape[1]):
        col = arr[:, j]  # a contiguous view: demeaned in place
        scale = 1.0 if one_sweep else max(float(np.abs(col).max()), 1.0)
        for _ in range(max_iter):
            biggest = 0.0
            for c, s, gw in zip(fe.codes, fe.sizes, counts):
                means = np.bincount(c, weights=col if w is None else col * w, minlength=s)
                means /= gw
                col -= np.take(means, c, out=scratch, mode="clip")  # codes are 0..s-1: no bounds checks
                if not one_sweep:
                    biggest = max(biggest, float(np.abs(means).max()))
            if one_sweep or biggest <= tol * scale:
                break
        else:
            warn(
                ConvergenceWarning,
                f"absorbing fixed effects {list(fe.names)} did not converge in {max_iter} sweeps "
                f"(last change {biggest:.2e}); estimates may be inexact.",
            )
    return arr[:, 0] if squeeze else arr
