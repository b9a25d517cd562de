"""Single-threaded BLAS for the many small matrix operations of the synthetic-control loops.

The QP, the nested V search and Frank-Wolfe multiply 20-40 dimensional matrices thousands of times.
A multi-threaded BLAS (OpenBLAS) wakes its threads for each of them; on a shared 2-core machine that
costs 5-7 times the CPU time of one thread (prop99 nested SC with 38 placebos: 4.7 s vs 0.66 s CPU).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any


@functools.lru_cache(maxsize=1)
def _controller() -> Any:
    # Finding the loaded BLAS libraries reads /proc/self/maps (about 4 ms); the libraries numpy and
    # scipy use are loaded once at import, so the search is done once per process, not per call
    # (a 20-unit sdid fit costs about 10 ms).
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit BLAS to one thread inside the block (no-op without threadpoolctl)."""
    try:
        controller = _controller()
    except ImportError:  # pragma: no cover - threadpoolctl is a declared dependency
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield
