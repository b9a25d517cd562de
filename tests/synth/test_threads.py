"""The single-threaded BLAS context of the synthetic-control loops."""

import threadpoolctl

from impact.synth import _threads


def _blas_threads() -> list[int]:
    return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]


def test_single_threaded_blas_limits_inside_and_restores_after():
    before = _blas_threads()
    with _threads.single_threaded_blas():
        assert all(n == 1 for n in _blas_threads())
        with _threads.single_threaded_blas():  # nested (sdid inside a runner that limits too)
            assert all(n == 1 for n in _blas_threads())
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


def test_blas_libraries_are_searched_once_per_process():
    # The search reads /proc/self/maps (about 4 ms), as long as a whole 20-unit sdid fit.
    _threads._controller.cache_clear()
    for _ in range(3):
        with _threads.single_threaded_blas():
            pass
    assert _threads._controller.cache_info().misses == 1
