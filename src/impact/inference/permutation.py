"""The permutation (randomisation-inference) engine, written once for every design.

A randomisation test re-runs the assignment procedure that produced the data many times, computes
the test statistic under each re-drawn assignment (the sharp null fixes every outcome), and reports
where the observed statistic falls in that distribution. This module holds the two generic parts:

* :class:`AssignmentScheme`: how treatment was assigned to ``m`` randomisation units (individual
  units, or clusters), optionally within strata (blocks): ``"complete"`` randomisation (fixed number
  per arm in each stratum, randomizr's ``complete_ra``/``block_ra``) or ``"simple"`` (independent
  draws with per-unit arm probabilities, ``simple_ra``). It draws assignment matrices in bulk and can
  enumerate every possible assignment of a small design.
* :func:`null_distribution` / :func:`permutation_test`: evaluate a *vectorised* statistic on chunks
  of drawn (or enumerated) assignments, so memory stays bounded whatever the number of draws.

The statistic is any callable ``statistic(labels) -> values`` taking an integer matrix of arm codes
of shape ``(draws, m)`` and returning shape ``(draws,)`` (one statistic) or ``(draws, q)`` (several,
e.g. one per outcome for Westfall-Young or Romano-Wolf adjustments). Linear statistics are matrix
products, ``labels @ weights``, which is what makes 10,000 draws over 10,000 units take well under a
second.

How draws are made (and why it is fast). For a binary arm in a stratum of size ``s`` with ``c``
treated, each draw gives every unit a uniform random key and treats the ``c`` units with the
smallest keys: the treated set is then a uniform random ``c``-subset (the keys are exchangeable).
The ``c``-th smallest key is found by ``numpy.partition`` (linear time; 16-bit integer keys) instead
of a sort or a Fisher-Yates shuffle, and all strata that share the same size and count are processed in one call
(reshaped to ``(draws, strata, s)``), so matched pairs and many equal blocks cost one call. Draws
with a tie at the threshold (probability below ``s / 2**16``) are redrawn, which keeps the
distribution exactly uniform (the accepted event is invariant to permuting the units). Several arms use a full ``argsort`` of the keys.

References
----------
Fisher, R. A. (1935). *The Design of Experiments*. Oliver & Boyd.
Imbens, G. W. and Rubin, D. B. (2015). *Causal Inference for Statistics, Social, and Biomedical
Sciences*, ch. 5. Cambridge University Press. doi:10.1017/CBO9781139025751.
Phipson, B. and Smyth, G. K. (2010). Permutation p-values should never be zero. *Statistical
Applications in Genetics and Molecular Biology* 9(1). doi:10.2202/1544-6115.1585.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import special

from impact.errors import EstimationError, SpecError
from impact.inference.resampling import chunk_generators, chunk_starts, map_chunks, pieces

__all__ = [
    "AssignmentScheme",
    "NullDistribution",
    "PermutationTest",
    "null_distribution",
    "permutation_p_values",
    "permutation_test",
    "DEFAULT_CHUNK_BYTES",
    "MAX_ENUMERATION",
]

Method = Literal["complete", "simple"]
Alternative = Literal["two-sided", "greater", "less"]
DEFAULT_CHUNK_BYTES = 48 * 2**20
MAX_ENUMERATION = 2_000_000
_TIE_TOLERANCE = 1e-6  # relative: statistics may be computed in float32 for speed


def _multinomial(size: int, counts: np.ndarray) -> int:
    out = math.factorial(size)
    for c in counts:
        out //= math.factorial(int(c))
    return out


@dataclass(frozen=True, eq=False)
class AssignmentScheme:
    """How treatment was randomised over ``m`` randomisation units.

    Parameters
    ----------
    labels : ndarray (m,) of int
        Observed arm code (0 .. n_arms-1) of each randomisation unit.
    strata : ndarray (m,) of int, optional
        Stratum (block) code of each unit; complete randomisation fixes the count per arm within
        each stratum. ``None`` = one stratum.
    method : {"complete", "simple"}
        ``complete``: the number of units per arm in each stratum is fixed at the observed counts
        (all assignments with those counts equally likely). ``simple``: each unit draws its arm
        independently with ``probabilities``.
    probabilities : ndarray (m, n_arms), optional
        Arm probabilities per unit (``simple`` only).
    n_arms : int, optional
        Number of arms (defaults to ``labels.max() + 1``).
    """

    labels: np.ndarray
    strata: np.ndarray | None = None
    method: Method = "complete"
    probabilities: np.ndarray | None = None
    n_arms: int | None = None
    _groups: list = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method not in ("complete", "simple"):
            raise SpecError(f"method={self.method!r} is not valid; choose 'complete' or 'simple'.")
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or labels.size == 0:
            raise SpecError("labels must be a non-empty 1-d array of arm codes.")
        labels = labels.astype(np.int64)
        if labels.min() < 0:
            raise SpecError("arm codes must be non-negative integers.")
        n_arms = int(self.n_arms if self.n_arms is not None else labels.max() + 1)
        strata = np.zeros(labels.size, np.int64) if self.strata is None else np.asarray(self.strata)
        if strata.shape != labels.shape:
            raise SpecError("strata must have one code per randomisation unit.")
        _, strata = np.unique(strata, return_inverse=True)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "strata", strata.astype(np.int64))
        object.__setattr__(self, "n_arms", n_arms)
        if self.method == "simple":
            probs = self.probabilities
            if probs is None:
                raise SpecError("simple randomisation needs the arm probabilities of each unit.")
            probs = np.asarray(probs, dtype=float)
            if probs.ndim == 1 and n_arms == 2:
                probs = np.column_stack([1 - probs, probs])
            if probs.shape != (labels.size, n_arms) or np.any(probs < 0) or not np.allclose(probs.sum(1), 1):
                raise SpecError("probabilities must be an (m, n_arms) array of probabilities summing to 1 per unit.")
            object.__setattr__(self, "probabilities", probs)
        object.__setattr__(self, "_groups", self._build_groups())

    # -- structure ------------------------------------------------------------------------------
    @property
    def m(self) -> int:
        """Number of randomisation units."""
        return int(self.labels.size)

    @property
    def n_strata(self) -> int:
        return int(self.strata.max() + 1)

    def counts(self) -> np.ndarray:
        """(n_strata, n_arms) observed count of units per arm in each stratum."""
        out = np.zeros((self.n_strata, self.n_arms), np.int64)
        np.add.at(out, (self.strata, self.labels), 1)
        return out

    def _build_groups(self) -> list[tuple[np.ndarray, np.ndarray, tuple[int, ...]]]:
        """Strata sharing (size, counts per arm), as (unit index matrix (J, s), base labels, counts)."""
        if self.method != "complete":
            return []
        order = np.lexsort((self.labels, self.strata))
        sizes = np.bincount(self.strata)
        counts = self.counts()
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        keyed: dict[tuple[int, ...], list[int]] = {}
        for j in range(self.n_strata):
            keyed.setdefault((int(sizes[j]), *map(int, counts[j])), []).append(j)
        groups = []
        for key, strata in keyed.items():
            s = key[0]
            idx = np.stack([order[starts[j] : starts[j] + s] for j in strata])  # (J, s), arms sorted
            if self.n_arms == 2:  # binary draws ignore the base order: keep units in data order
                idx = np.sort(idx, axis=1)
            groups.append((idx, self.labels[idx[0]], key[1:]))
        return groups

    def log_n_assignments(self) -> float:
        """Natural log of the number of distinct possible assignments (cheap for any size)."""
        if self.method == "complete":
            sizes = np.bincount(self.strata)
            counts = self.counts()
            return float(np.sum(special.gammaln(sizes + 1)) - np.sum(special.gammaln(counts + 1)))
        return float(np.sum(np.log((self.probabilities > 0).sum(axis=1))))

    def n_assignments(self) -> int | float:
        """Number of distinct possible assignments (support size for ``simple``).

        Exact (an int) up to 1e15; beyond, a float approximation (possibly ``inf``).
        """
        log_total = self.log_n_assignments()
        if log_total > math.log(1e15):
            return math.exp(log_total) if log_total < 700 else math.inf
        if self.method == "complete":
            total = 1
            sizes = np.bincount(self.strata)
            for j, row in enumerate(self.counts()):
                total *= _multinomial(int(sizes[j]), row)
            return total
        support = (self.probabilities > 0).sum(axis=1)
        return int(np.prod([int(v) for v in support], dtype=object))

    # -- drawing ----------------------------------------------------------------------------------
    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` independent assignments: an int8 matrix (size, m) of arm codes."""
        if self.method == "simple":
            u = rng.random((size, self.m))
            cum = np.cumsum(self.probabilities, axis=1)[:, :-1]
            return (u[:, :, None] >= cum[None, :, :]).sum(axis=2).astype(np.int8)
        out = np.empty((size, self.m), np.int8)
        for idx, base, counts in self._groups:
            J, s = idx.shape
            if max(counts) == s:  # one arm only in these strata: nothing to randomise
                out[:, idx.ravel()] = np.broadcast_to(base, (size, J, s)).reshape(size, -1)
                continue
            if self.n_arms == 2:
                block = self._binary_draw(size, J, s, counts[1], rng)
            else:
                keys = rng.random((size, J, s), dtype=np.float32)
                perm = np.argsort(keys, axis=2)
                block = np.broadcast_to(base, (size, J, s))[np.arange(size)[:, None, None], np.arange(J)[None, :, None], perm]
            if J == 1 and s == self.m and np.array_equal(idx[0], np.arange(self.m)):
                out[:] = block.reshape(size, -1)
            else:
                out[:, idx.ravel()] = block.reshape(size, -1)
        return out

    @staticmethod
    def _binary_draw(size: int, J: int, s: int, treated: int, rng: np.random.Generator) -> np.ndarray:
        """(size, J, s) 0/1 matrix with exactly ``treated`` ones in each (draw, stratum).

        Keys are 16-bit integers for strata of up to 16,384 units (partitioning them is several
        times faster than 32-bit floats), 32-bit beyond; a (draw, stratum) with a tie at the
        threshold is redrawn, which leaves the accepted draws exactly uniform.
        """
        flip = treated > s - treated  # threshold at the smaller arm's count
        k = s - treated if flip else treated
        dtype = np.uint16 if s <= 16_384 else np.uint32
        top = int(np.iinfo(dtype).max) + 1

        def draw(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
            keys = rng.integers(0, top, size=(*shape, s), dtype=dtype)
            part = np.partition(keys, k - 1, axis=-1)
            kth = part[..., k - 1 : k]
            # a tie at the threshold: a key after position k-1 equals the k-th smallest
            tie = part[..., k:].min(axis=-1) == kth[..., 0] if k < s else np.zeros(kth.shape[:-1], bool)
            return (keys > kth if flip else keys <= kth), tie

        chosen, bad = draw((size, J))
        while bad.any():
            rows, strata = np.nonzero(bad)
            fresh, fresh_bad = draw((len(rows),))
            ok = ~fresh_bad
            chosen[rows[ok], strata[ok]] = fresh[ok]
            bad[rows[ok], strata[ok]] = False
        return chosen.view(np.int8)

    def enumerate(self, limit: int = MAX_ENUMERATION) -> tuple[np.ndarray, np.ndarray]:
        """Every possible assignment, as (labels (N, m) int8, probabilities (N,)).

        Raises SpecError when there are more than ``limit`` assignments.
        """
        total = self.n_assignments()
        if total > limit:
            raise SpecError(
                f"exact enumeration would need {total:,.0f} assignments (more than {limit:,}); use "
                "exact=False (Monte Carlo draws) instead."
            )
        if self.method == "simple":
            arms = [np.flatnonzero(p > 0) for p in self.probabilities]
            grid = np.array(list(itertools.product(*arms)), dtype=np.int8).reshape(-1, self.m)
            prob = np.prod(self.probabilities[np.arange(self.m)[None, :], grid], axis=1)
            return grid, prob / prob.sum()
        per_stratum = []
        for j in range(self.n_strata):
            members = np.flatnonzero(self.strata == j)
            options = _distinct_arrangements(np.bincount(self.labels[members], minlength=self.n_arms))
            per_stratum.append((members, options))
        choice = np.indices([len(o) for _, o in per_stratum]).reshape(len(per_stratum), -1).T
        out = np.empty((len(choice), self.m), np.int8)
        for j, (members, options) in enumerate(per_stratum):
            out[:, members] = options[choice[:, j]]
        return out, np.full(len(out), 1.0 / len(out))


def _distinct_arrangements(counts: np.ndarray) -> np.ndarray:
    """Every distinct arrangement of ``counts[a]`` units in arm ``a`` over ``counts.sum()`` positions,
    as an int8 matrix in lexicographic order.

    Built arm by arm from combinations of the free positions, so the work is proportional to the
    number of distinct arrangements (the multinomial coefficient), not to ``size!`` as a set of all
    permutations would be (21 regions with three singleton cohorts: 7,980 rows, not 5e19).
    """
    size = int(counts.sum())
    rows = np.full((1, size), -1, dtype=np.int8)
    for arm in np.flatnonzero(counts)[:-1]:
        k = int(counts[arm])
        free = np.flatnonzero(rows[0] < 0)  # free positions are the same count in every row
        combos = np.array(list(itertools.combinations(range(len(free)), k)), dtype=np.int64).reshape(-1, k)
        expanded = np.repeat(rows, len(combos), axis=0)
        free_all = np.flatnonzero(expanded[0] < 0)
        free_pos = np.argsort(expanded < 0, axis=1, kind="stable")[:, size - len(free_all):]  # free columns per row
        picked = np.take_along_axis(free_pos, np.tile(combos, (len(rows), 1)), axis=1)
        np.put_along_axis(expanded, picked, arm, axis=1)
        rows = expanded
    last = np.flatnonzero(counts)[-1]
    rows[rows < 0] = last
    return rows[np.lexsort(rows.T[::-1])]


@dataclass(frozen=True)
class NullDistribution:
    """The statistic under the observed assignment and under re-drawn (or all) assignments."""

    observed: np.ndarray
    draws: np.ndarray
    weights: np.ndarray | None
    exact: bool
    n_assignments: int | float

    @property
    def n_draws(self) -> int:
        return int(self.draws.shape[0])


@dataclass(frozen=True)
class PermutationTest:
    """Result of :func:`permutation_test`: observed statistic(s), p-value(s) and the null draws."""

    statistic: np.ndarray
    p_value: np.ndarray
    null: NullDistribution
    alternative: str

    @property
    def exact(self) -> bool:
        return self.null.exact

    def description(self) -> str:
        n = self.null.n_draws
        if self.exact:
            return f"exact randomisation test over all {n:,} possible assignments"
        return f"randomisation test with {n:,} re-drawn assignments (p = (1 + #extreme) / (1 + draws))"


def _chunk_rows(m: int, q: int, chunk_bytes: int) -> int:
    per_row = m * (4 + 1 + 8) + q * 8 + 64  # keys, labels, float copy in the statistic
    return max(1, int(chunk_bytes // per_row))


def null_distribution(
    statistic: Callable[[np.ndarray], np.ndarray],
    scheme: AssignmentScheme,
    *,
    n_permutations: int = 10_000,
    seed: int | np.random.Generator | None = None,
    exact: bool | Literal["auto"] = "auto",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    n_jobs: int | None = None,
) -> NullDistribution:
    """Evaluate ``statistic`` at the observed assignment and under the null assignment distribution.

    Parameters
    ----------
    statistic : callable
        ``statistic(labels)`` with ``labels`` an int8 matrix ``(draws, m)`` of arm codes, returning
        ``(draws,)`` or ``(draws, q)`` floats. It must be vectorised over draws.
    scheme : AssignmentScheme
        How the observed assignment was drawn.
    n_permutations : int
        Number of Monte Carlo draws (ignored when enumerating).
    seed : int or Generator, optional
        Seed for reproducible draws.
    exact : bool or "auto"
        ``"auto"`` enumerates all assignments when there are no more than ``n_permutations`` of
        them; ``True`` always enumerates (error beyond :data:`MAX_ENUMERATION`); ``False`` never.
    chunk_bytes : int
        Memory budget per chunk of draws; peak memory is about this plus the (draws, q) output.
    n_jobs : int, optional
        Split the chunks of draws over this many workers of joblib's active backend (-1: one per
        core); default: the enclosing :func:`impact.inference.resampling.parallel_draws`, else 1.
        The draws are the same for a given seed whatever the number of workers (``statistic`` must
        then be picklable).
    """
    if exact not in (True, False, "auto"):
        raise SpecError(f"exact={exact!r} is not valid; choose True, False or 'auto'.")
    if not isinstance(n_permutations, int | np.integer) or n_permutations < 1:
        raise SpecError(f"n_permutations must be a positive integer, got {n_permutations!r}.")
    observed = np.asarray(statistic(scheme.labels[None, :].astype(np.int8)), dtype=float)
    single = observed.ndim == 1
    observed = observed.reshape(1, -1)[0]
    q = observed.size
    total = scheme.n_assignments()
    enumerate_all = exact is True or (exact == "auto" and total <= n_permutations)
    if enumerate_all:
        labels, weights = scheme.enumerate()
        starts = chunk_starts(len(labels))
        ends = [*starts[1:], len(labels)]
        rows = _chunk_rows(scheme.m, q, chunk_bytes)

        def every(i: int) -> np.ndarray:
            return np.concatenate([np.asarray(statistic(labels[a:b]), dtype=float).reshape(-1, q)
                                   for a, b in pieces(starts[i], ends[i], rows)])

        draws = np.concatenate(map_chunks(every, len(starts), n_jobs=n_jobs))
    else:
        if total <= 1:
            raise EstimationError("the assignment scheme allows a single assignment: there is nothing to permute.")
        # each chunk has its own random stream (the same draws here or on workers); pieces bound memory
        n = int(n_permutations)
        starts = chunk_starts(n)
        ends = [*starts[1:], n]
        rows = _chunk_rows(scheme.m, q, chunk_bytes)
        generators = chunk_generators(seed, len(starts))

        def work(i: int) -> np.ndarray:
            return np.concatenate([np.asarray(statistic(scheme.sample(b - a, generators[i])), dtype=float).reshape(b - a, q)
                                   for a, b in pieces(starts[i], ends[i], rows)])

        draws = np.concatenate(map_chunks(work, len(starts), n_jobs=n_jobs))
        weights = None
    if single:
        draws = draws[:, 0]
        observed = observed[:1].reshape(())
    return NullDistribution(observed, draws, weights if enumerate_all else None, enumerate_all, total)


def permutation_p_values(null: NullDistribution, alternative: Alternative = "two-sided") -> np.ndarray:
    """p-values of the observed statistic(s) against ``null``.

    Exact: the probability, over all assignments, of a statistic at least as extreme as observed.
    Monte Carlo: ``(1 + #{draws at least as extreme}) / (1 + draws)`` (Phipson & Smyth 2010), which
    gives a valid test at any number of draws. Two-sided uses absolute values (the statistic is
    assumed centred at zero under the null, as a difference in means is). Draws whose statistic is
    undefined (NaN, e.g. an empty arm under simple randomisation) are left out.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise SpecError(f"alternative={alternative!r} is not valid; choose 'two-sided', 'greater' or 'less'.")
    obs = np.asarray(null.observed, dtype=float)
    draws = np.asarray(null.draws, dtype=float)
    if alternative == "two-sided":
        obs, draws = np.abs(obs), np.abs(draws)
    elif alternative == "less":
        obs, draws = -obs, -draws
    tol = _TIE_TOLERANCE * np.abs(obs) + 1e-12
    extreme = draws >= obs - tol
    valid = ~np.isnan(draws)
    if null.exact:
        w = null.weights if null.weights is not None else np.ones(len(draws))
        w = w.reshape((-1,) + (1,) * (draws.ndim - 1))
        return (np.where(valid & extreme, w, 0).sum(axis=0)) / np.where(valid, w, 0).sum(axis=0)
    return (1 + (valid & extreme).sum(axis=0)) / (1 + valid.sum(axis=0))


def permutation_test(
    statistic: Callable[[np.ndarray], np.ndarray],
    scheme: AssignmentScheme,
    *,
    n_permutations: int = 10_000,
    seed: int | np.random.Generator | None = None,
    exact: bool | Literal["auto"] = "auto",
    alternative: Alternative = "two-sided",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    n_jobs: int | None = None,
) -> PermutationTest:
    """Fisher randomisation test of the sharp null with a vectorised statistic.

    See :func:`null_distribution` for the parameters and :func:`permutation_p_values` for the
    p-value convention. Returns the observed statistic(s), p-value(s) and the null draws.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])
    >>> scheme = AssignmentScheme(np.array([1, 0, 1, 0, 1, 0]))
    >>> test = permutation_test(lambda t: (t @ y) / 3 - ((1 - t) @ y) / 3, scheme)
    >>> test.exact, round(float(test.p_value), 2)   # all 20 assignments enumerated
    (True, 1.0)
    """
    null = null_distribution(statistic, scheme, n_permutations=n_permutations, seed=seed, exact=exact, chunk_bytes=chunk_bytes,
                             n_jobs=n_jobs)
    return PermutationTest(null.observed, permutation_p_values(null, alternative), null, alternative)
