"""Resampling draws in fixed chunks, run in this process or split across a joblib/Dask executor.

Every resampling engine (wild and multiplier bootstrap, permutation and randomisation tests) makes its
draws in chunks whose boundaries depend only on the problem (the number of draws and a memory budget),
never on how many workers run them, and chunk ``i`` draws from the ``i``-th child of the seed's
:class:`numpy.random.SeedSequence`. Each chunk's arithmetic runs with one BLAS thread (a multi-threaded
BLAS sums a product in an order that depends on its thread count). So a seed gives bit-identical draws
whether the chunks run one after another here or on worker processes.

Splitting is asked for with :func:`parallel_draws` (a context that every engine inside it obeys) or
with an engine's ``n_jobs=`` argument. The chunks go to joblib's active backend: worker processes
(loky) by default, or a Dask cluster inside ``joblib.parallel_backend("dask")``. We write no
scheduler of our own.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np

from impact.errors import SpecError

__all__ = ["DRAWS_PER_CHUNK", "chunk_generators", "chunk_starts", "map_chunks", "parallel_draws", "pieces", "resolve_jobs"]

#: Draws per chunk: each chunk has its own random stream and is the unit of work sent to a worker.
DRAWS_PER_CHUNK = 1_000

_JOBS: contextvars.ContextVar[int] = contextvars.ContextVar("impact_resampling_jobs", default=1)

T = TypeVar("T")


def _check_jobs(n_jobs: object) -> int:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs == 0 or n_jobs < -1:
        raise SpecError(f"n_jobs must be a positive number of workers or -1 for one per core; got {n_jobs!r}.")
    return int(n_jobs)


@contextlib.contextmanager
def parallel_draws(n_jobs: int = -1) -> Iterator[None]:
    """Within this context the resampling engines split their chunks of draws over ``n_jobs`` workers
    of joblib's active backend (-1: one per core). The numbers do not change, only where they are made.

    Examples
    --------
    >>> import impact as im
    >>> from impact.inference.resampling import parallel_draws
    >>> with parallel_draws(2):  # doctest: +SKIP
    ...     res = im.did.att_gt(im.datasets.load("mpdta"), outcome="lemp", unit="countyreal",
    ...                         time="year", cohort="first.treat", inference="analytic")
    """
    token = _JOBS.set(_check_jobs(n_jobs))
    try:
        yield
    finally:
        _JOBS.reset(token)


def resolve_jobs(n_jobs: int | None) -> int:
    """``n_jobs`` if given, else the value of the enclosing :func:`parallel_draws` (default 1)."""
    return _JOBS.get() if n_jobs is None else _check_jobs(n_jobs)


def chunk_starts(n_draws: int) -> list[int]:
    """First draw of each chunk (``DRAWS_PER_CHUNK`` draws, the last one shorter). The chunks are
    fixed by the number of draws alone; an engine that bounds memory splits a chunk further and
    draws its pieces one after another from the chunk's stream."""
    return list(range(0, int(n_draws), DRAWS_PER_CHUNK))


def pieces(start: int, stop: int, rows: int) -> list[tuple[int, int]]:
    """``[start, stop)`` in consecutive pieces of at most ``rows`` (at least one) draws."""
    step = max(1, int(rows))
    return [(a, min(a + step, stop)) for a in range(start, stop, step)]


def chunk_generators(seed: int | np.random.Generator | np.random.SeedSequence | None, n_chunks: int) -> list[np.random.Generator]:
    """One independent generator per chunk: the children of the seed's SeedSequence (of the
    Generator's own SeedSequence when a Generator is passed, which advances its spawn counter)."""
    if isinstance(seed, np.random.Generator):
        return seed.spawn(n_chunks)
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.default_rng(child) for child in sequence.spawn(n_chunks)]


def _run(work: Callable[[int], T], indices: Sequence[int]) -> list[T]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return [work(i) for i in indices]


def map_chunks(work: Callable[[int], T], n_chunks: int, *, n_jobs: int | None = None) -> list[T]:
    """``[work(0), ..., work(n_chunks - 1)]``, in this process or split over workers (contiguous
    batches, one per worker, results in chunk order). ``work`` must be picklable (cloudpickle) to run
    on workers; it runs with one BLAS thread in both cases."""
    jobs = resolve_jobs(n_jobs)
    if jobs == -1:
        import os

        jobs = os.cpu_count() or 1
    if jobs == 1 or n_chunks <= 1:
        return _run(work, range(n_chunks))
    from joblib import Parallel, delayed

    batches = [list(b) for b in np.array_split(np.arange(n_chunks), min(jobs, n_chunks))]
    results = Parallel(n_jobs=jobs)(delayed(_run)(work, batch) for batch in batches)
    return [r for batch in results for r in batch]
