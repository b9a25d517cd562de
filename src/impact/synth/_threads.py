"""Single-threaded BLAS for the many small matrix operations of the synthetic-control loops.

The QP, the nested V search and Frank-Wolfe multiply 20-40 dimensional matrices thousands of times.
A multi-threaded BLAS (OpenBLAS) wakes its threads for each of them; on a shared 2-core machine that
costs 5-7 times the CPU time of one thread (prop99 nested SC with 38 placebos: 4.7 s vs 0.66 s CPU).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit BLAS to one thread inside the block (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a declared dependency
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
