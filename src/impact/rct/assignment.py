"""Random assignment of units (or clusters, within blocks) to the arms of a trial, as R randomizr.

``assign`` draws one assignment reproducibly from a seed and returns an :class:`Assignment`: the
data with the assignment column added (a new DataFrame), the probability of each arm for each unit
(for inverse-probability weights), and ``redraw``/``permutations`` that re-run exactly the same
procedure (used by randomisation inference and power simulations).

Counts that do not divide evenly (randomizr's rule, made exact): in each block (or the whole sample)
of ``N`` units (clusters) with arm probabilities ``p_k``, arm ``k`` first gets ``floor(N p_k)``
units; the ``r`` units left over go to ``r`` distinct arms drawn by systematic sampling with
inclusion probabilities equal to the fractional parts ``N p_k - floor(N p_k)`` (they sum to ``r``).
Every unit therefore has probability exactly ``p_k`` of arm ``k`` and every count is within one
of ``N p_k``. With two arms this is randomizr's ``complete_ra``: ``floor(N p)`` treated, plus one
more with probability ``N p - floor(N p)``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from impact.data import check_integer, check_seed  # shared option validation
from impact.data import check_option, prepare
from impact.errors import DataError, SpecError
from impact.inference.permutation import AssignmentScheme

__all__ = ["assign", "Assignment", "AssignMethod"]

AssignMethod = Literal["complete", "simple", "block", "cluster", "block_cluster"]
METHODS = ("complete", "simple", "block", "cluster", "block_cluster")


def _probabilities(arms: tuple, prob: float | Sequence[float] | None) -> np.ndarray:
    k = len(arms)
    if prob is None:
        return np.full(k, 1.0 / k)
    if np.isscalar(prob):
        if k != 2:
            raise SpecError(f"assign: with {k} arms give prob= as one probability per arm.")
        p = float(prob)
        out = np.array([1 - p, p])
    else:
        out = np.asarray(prob, dtype=float)
    if out.shape != (k,) or np.any(out < 0) or np.any(out > 1) or not np.isclose(out.sum(), 1):
        raise SpecError(f"assign: prob must be a probability of treatment (two arms) or {k} probabilities summing to 1, got {prob!r}.")
    return out


def _counts_for(N: int, probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Counts per arm for ``draws`` draws (u: (draws,) uniforms): floor + systematic remainder."""
    base = np.floor(N * probs + 1e-9).astype(np.int64)
    frac = np.clip(N * probs - base, 0, None)
    r = int(round(N - base.sum()))
    counts = np.broadcast_to(base, (len(u), len(probs))).copy()
    if r > 0:
        edges = np.concatenate([[0.0], np.cumsum(frac)])
        edges[-1] = float(r)  # guard rounding
        points = u[:, None] + np.arange(r)[None, :]  # systematic points in [0, r)
        arm = np.searchsorted(edges, points, side="right") - 1
        for j in range(r):
            np.add.at(counts, (np.arange(len(u)), arm[:, j]), 1)
    return counts


@dataclass(frozen=True, eq=False)
class Assignment:
    """One random assignment and the procedure that produced it (immutable).

    Attributes
    ----------
    data : DataFrame
        A copy of the input with the assignment column added.
    column : str
        Name of the assignment column (arm labels from ``arms``).
    arms : tuple
        Arm labels; the first is the control.
    probabilities : DataFrame
        Probability of each arm for each unit (columns = arms, index = the data's index).
    method, blocks, clusters, seed
        The procedure, for ``redraw``/``permutations`` and the report.
    """

    data: pd.DataFrame
    column: str
    arms: tuple
    probabilities: pd.DataFrame
    method: str
    blocks: str | None
    clusters: str | None
    seed: int
    _prob: np.ndarray = field(repr=False)
    _counts: tuple | None = field(repr=False)
    _ru: np.ndarray = field(repr=False)  # randomisation unit of each row
    _ru_block: np.ndarray = field(repr=False)  # block of each randomisation unit

    @property
    def codes(self) -> np.ndarray:
        """Arm index (0 = first arm) of each row."""
        return pd.Categorical(self.data[self.column], categories=list(self.arms)).codes.astype(np.int64)

    @property
    def weights(self) -> pd.Series:
        """Inverse probability of the arm each unit was assigned to (for weighted estimators)."""
        p = self.probabilities.to_numpy()[np.arange(len(self.data)), self.codes]
        return pd.Series(1.0 / p, index=self.data.index, name="ipw")

    def summary(self) -> pd.DataFrame:
        """Units per arm (and per block when blocked)."""
        keys = [self.blocks] if self.blocks else []
        return self.data.groupby(keys + [self.column]).size().unstack(fill_value=0) if keys else \
            self.data[self.column].value_counts().reindex(list(self.arms), fill_value=0).to_frame("units")

    def _draw_codes(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """(size, n_rows) arm codes from re-running the procedure ``size`` times."""
        m = int(self._ru.max()) + 1
        k = len(self.arms)
        if self.method == "simple":
            u = rng.random((size, m))
            cum = np.cumsum(self._prob)[:-1]
            ru_codes = np.searchsorted(cum, u, side="right").astype(np.int8)
            return ru_codes[:, self._ru]
        ru_codes = np.empty((size, m), np.int8)
        for b in np.unique(self._ru_block):
            members = np.flatnonzero(self._ru_block == b)
            N = len(members)
            if self._counts is not None:
                counts = np.broadcast_to(np.asarray(self._counts), (size, k))
            else:
                counts = _counts_for(N, self._prob, rng.random(size))
            keys = rng.random((size, N))
            ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
            bounds = np.cumsum(counts, axis=1)
            arm = (ranks[:, :, None] >= bounds[:, None, :]).sum(axis=2)
            ru_codes[:, members] = arm.astype(np.int8)
        return ru_codes[:, self._ru]

    def redraw(self, seed: int | None = None) -> Assignment:
        """A new assignment drawn by the same procedure (new seed)."""
        seed = secrets.randbits(32) if seed is None else int(seed)
        codes = self._draw_codes(1, np.random.default_rng(seed))[0]
        data = self.data.copy()
        data[self.column] = np.asarray(self.arms, dtype=object)[codes] if not _numeric(self.arms) else np.asarray(self.arms)[codes]
        return Assignment(data, self.column, self.arms, self.probabilities, self.method, self.blocks, self.clusters,
                          seed, self._prob, self._counts, self._ru, self._ru_block)

    def permutations(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` re-draws of the whole procedure: an int8 matrix (n, rows) of arm indices.

        Memory is n x rows bytes; randomisation inference itself uses :meth:`scheme` with the chunked
        engine instead.
        """
        if n < 1:
            raise SpecError("permutations: n must be a positive integer.")
        return self._draw_codes(int(n), np.random.default_rng(seed))

    def scheme(self) -> AssignmentScheme:
        """The assignment scheme for :mod:`impact.inference.permutation` at the randomisation-unit level.

        Complete designs are re-randomised holding the realised count per arm in each block fixed
        (conditioning on the counts, which carry no information about the effect).
        """
        m = int(self._ru.max()) + 1
        ru_codes = np.zeros(m, np.int64)
        ru_codes[self._ru] = self.codes
        if self.method == "simple":
            return AssignmentScheme(ru_codes, method="simple", probabilities=np.broadcast_to(self._prob, (m, len(self.arms))),
                                    n_arms=len(self.arms))
        return AssignmentScheme(ru_codes, strata=self._ru_block, method="complete", n_arms=len(self.arms))


def _numeric(arms: tuple) -> bool:
    return all(isinstance(a, int | float | np.integer | np.floating) and not isinstance(a, bool) for a in arms)


def assign(
    df: pd.DataFrame,
    *,
    method: AssignMethod = "complete",
    blocks: str | None = None,
    clusters: str | None = None,
    prob: float | Sequence[float] | None = None,
    n: int | Sequence[int] | None = None,
    arms: Sequence[Any] = ("control", "treatment"),
    seed: int | None = None,
    column: str = "assignment",
) -> Assignment:
    """Randomly assign units (or clusters, within blocks) to arms, reproducibly.

    Parameters
    ----------
    df : DataFrame
        One row per unit; not modified.
    method : {"complete", "simple", "block", "cluster", "block_cluster"}
        ``simple``: each unit (cluster) independently with ``prob``; ``complete``: exactly ``n`` per
        arm (or the rounding rule of the module docstring applied to ``prob``); ``block``: complete
        within each block; ``cluster``: complete over clusters (all units of a cluster share the arm);
        ``block_cluster``: complete over clusters within blocks.
    blocks, clusters : str, optional
        Block (stratum) and cluster columns (required by the methods that name them).
    prob : float or sequence of float, optional
        Probability of treatment (two arms) or one probability per arm; default equal shares.
    n : int or sequence of int, optional
        ``complete``/``cluster`` only: number of units (clusters) treated (two arms) or per arm.
    arms : sequence
        Arm labels, control first. Default ``("control", "treatment")``.
    seed : int, optional
        Seed; recorded on the result (drawn at random when None, so the draw can be repeated).
    column : str
        Name of the new column.

    Returns
    -------
    Assignment

    Notes
    -----
    Each unit's probability of arm :math:`k` is exactly :math:`p_k` (or :math:`n_k/N`); these are
    returned per unit in ``probabilities`` for inverse-probability weighting when they differ between
    blocks.

    References
    ----------
    Coppock, A. (2023). randomizr: Easy-to-Use Tools for Common Forms of Random Assignment and
    Sampling, R package 1.0 (complete_ra, block_ra, cluster_ra, block_and_cluster_ra).
    Gerber, A. S. and Green, D. P. (2012). *Field Experiments*, ch. 2. Norton.
    Madow, W. G. (1949). On the theory of systematic sampling, II. *Annals of Mathematical
    Statistics* 20(3), 333-354. doi:10.1214/aoms/1177729988.

    Examples
    --------
    >>> import impact as im
    >>> firms = im.datasets.load("sweden_firms")
    >>> a = im.rct.assign(firms, method="block", blocks="region_code", prob=0.5, seed=2024)
    >>> sorted(a.data["assignment"].unique())
    ['control', 'treatment']
    """
    where = "assign"
    check_option("method", method, METHODS)
    seed = check_seed(seed, where)
    if n is not None:
        # a count of 2.5 is refused, never truncated to 2
        n = check_integer("n", n, where, minimum=0) if np.ndim(n) == 0 else [
            check_integer("n", c, where, minimum=0) for c in n]
    arms = tuple(arms)
    if len(arms) < 2 or len(set(arms)) != len(arms):
        raise SpecError(f"{where}: arms must be at least two distinct labels, got {arms!r}.")
    if column in df.columns:
        raise DataError(f"{where}: the data already has a column {column!r}; pass column= with a new name.")
    needs_blocks = method in ("block", "block_cluster")
    needs_clusters = method in ("cluster", "block_cluster")
    if needs_blocks and not blocks:
        raise SpecError(f"{where}: method={method!r} needs blocks=.")
    if needs_clusters and not clusters:
        raise SpecError(f"{where}: method={method!r} needs clusters=.")
    if blocks and not needs_blocks:
        raise SpecError(f"{where}: blocks= given with method={method!r}; use method='block' or 'block_cluster'.")
    if clusters and not needs_clusters and method != "simple":
        raise SpecError(f"{where}: clusters= given with method={method!r}; use method='cluster' or 'block_cluster'.")
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}.")
    if blocks or clusters:  # columns exist and have no missing values
        prepare(df, where=where, roles={"blocks": blocks, "clusters": clusters}, missing="error")
    k = len(arms)
    probs = _probabilities(arms, prob)
    counts = None
    if n is not None:
        if method not in ("complete", "cluster"):
            raise SpecError(f"{where}: n= applies to method='complete' or 'cluster'; with blocks give prob=.")
        if prob is not None:
            raise SpecError(f"{where}: give prob= or n=, not both.")
        counts = (np.array([0, int(n)]) if np.isscalar(n) else np.asarray(n, dtype=np.int64))
    rows = len(df)
    if clusters:
        ru, cl_labels = pd.factorize(df[clusters].to_numpy(), sort=True)
    else:
        ru = np.arange(rows)
    m = int(ru.max()) + 1 if rows else 0
    if blocks:
        b_codes, _ = pd.factorize(df[blocks].to_numpy(), sort=True)
        ru_block = np.full(m, -1)
        ru_block[ru] = b_codes
        if np.any(ru_block[ru] != b_codes):
            raise DataError(f"{where}: clusters in {clusters!r} must each lie within one block of {blocks!r}.")
    else:
        ru_block = np.zeros(m, np.int64)
    if method != "simple" and m < k:
        unit = f"clusters in {clusters!r}" if clusters else "units"
        raise DataError(
            f"{where}: method={method!r} needs at least as many {unit} as arms ({k}); the data has {m}, so "
            "every unit would get the same arm. Randomise at a finer level or add units."
        )
    if counts is not None:
        if np.isscalar(n):
            counts = np.array([m - int(n), int(n)]) if k == 2 else None
            if counts is None:
                raise SpecError(f"{where}: with {k} arms give n= as one count per arm.")
        if counts.shape != (k,) or counts.sum() != m or np.any(counts < 0):
            unit = "clusters" if clusters else "units"
            raise SpecError(f"{where}: n= must give counts per arm summing to the {m} {unit}, got {n!r}.")
        probs = counts / m
    seed = secrets.randbits(32) if seed is None else int(seed)
    out = Assignment(
        data=df.copy(), column=column, arms=arms,
        probabilities=pd.DataFrame(np.broadcast_to(probs, (rows, k)).copy(), index=df.index, columns=list(arms)),
        method=method, blocks=blocks, clusters=clusters, seed=seed, _prob=probs,
        _counts=tuple(int(c) for c in counts) if counts is not None else None, _ru=ru, _ru_block=ru_block,
    )
    codes = out._draw_codes(1, np.random.default_rng(seed))[0]
    labels = np.asarray(arms)[codes] if _numeric(arms) else np.asarray(arms, dtype=object)[codes]
    out.data[column] = labels
    return out
