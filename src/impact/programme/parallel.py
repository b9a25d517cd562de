"""Running a portfolio of programmes at once: local worker processes or a Dask cluster.

We write no scheduler of our own. Each programme is one task (evaluate every evaluation and check,
then render its report and ``results.json`` to text); joblib runs the tasks in worker processes
(``jobs=N``, the loky backend) or, given a scheduler address, on a Dask distributed cluster through
joblib's ``dask`` backend. Workers only compute and return text; the client writes every file and
every registry record, in spec order, so a parallel run writes byte-identical outputs to the serial
one: every resampling design is seeded from the run's seed, never from the process, and every task
runs with single-threaded BLAS, because a multi-threaded BLAS sums in an order that depends on its
thread count (the last digits of an SE would then depend on how many processes share the cores).

Results travel between processes by pickle. Specs are frozen dataclasses holding
``types.MappingProxyType`` views, which pickle cannot reconstruct by name; a reducer registered here
rebuilds them from a plain dict.
"""

from __future__ import annotations

import copyreg
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from impact.errors import SpecError

if TYPE_CHECKING:
    from impact.programme.runner import ProgrammeRun
    from impact.programme.spec import Spec

__all__ = ["run_programmes", "evaluate_and_render"]


def _mapping_proxy(mapping: dict) -> types.MappingProxyType:
    return types.MappingProxyType(mapping)


copyreg.pickle(types.MappingProxyType, lambda proxy: (_mapping_proxy, (dict(proxy),)))


def evaluate_and_render(
    spec: Spec, seed: int, command: str | None, portfolio: bool, echo: bool = False
) -> tuple[ProgrammeRun, dict[str, str]]:
    """One task: evaluate a programme and render its files (name -> text). With ``echo`` each
    finished evaluation and check is printed to standard error (progress from a worker process)."""
    def progress(label: str) -> None:
        print(f"  done: {label}", file=sys.stderr, flush=True)

    return _task(spec, seed, command, portfolio, progress if echo else None)


def _task(spec: Spec, seed: int, command: str | None, portfolio: bool,
          progress: Callable[[str], None] | None) -> tuple[ProgrammeRun, dict[str, str]]:
    from threadpoolctl import threadpool_limits

    from impact.programme.runner import evaluate, render_outputs

    with threadpool_limits(limits=1):
        run = evaluate(spec, seed=seed, progress=progress)
        return run, render_outputs(run, command=command, portfolio=portfolio)


def run_programmes(
    specs: Sequence[Spec],
    *,
    seed: int,
    command: str | None = None,
    portfolio: bool = False,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: Callable[[str], None] | None = None,
    connect_timeout: float = 30.0,
) -> Iterator[tuple[ProgrammeRun, dict[str, str]]]:
    """Evaluate and render every spec; yield ``(run, files)`` in spec order as they finish.

    Parameters
    ----------
    jobs : int
        Worker processes on this machine (1 = in this process, with ``progress`` called after every
        evaluation and check; -1 = one per core).
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:8786``); the tasks run on its workers.
        Needs the ``distributed`` package (``pip install "impact[distributed]"``).
    connect_timeout : float
        Seconds to wait for the scheduler before giving up.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs == 0 or jobs < -1:
        raise SpecError(f"jobs must be a positive number of worker processes or -1 for one per core; got {jobs!r}.")
    if scheduler is None and (jobs == 1 or len(specs) <= 1):
        for spec in specs:
            yield _task(spec, seed, command, portfolio, progress)
        return

    from joblib import Parallel, delayed, parallel_backend

    tasks = (delayed(evaluate_and_render)(spec, seed, command, portfolio, progress is not None) for spec in specs)
    if scheduler is None:
        yield from Parallel(n_jobs=jobs, backend="loky", return_as="generator")(tasks)
        return
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SpecError(
            "--scheduler needs the Dask distributed package: pip install 'impact[distributed]' (or distributed)."
        ) from exc
    try:
        client = Client(scheduler, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise SpecError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from exc
    with client, parallel_backend("dask"):
        yield from Parallel(n_jobs=-1, return_as="generator")(tasks)
