"""Portfolio runs in worker processes and on a Dask cluster write exactly what a serial run writes.

Workers only evaluate and render; the client writes. The test compares the rendered files of two
bundled programmes byte for byte across the serial path, ``jobs=2`` (joblib/loky) and a Dask
``LocalCluster`` of two worker processes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from impact.errors import SpecError
from impact.programme.parallel import run_programmes
from impact.programme.spec import load_spec

ANALYSES = Path(__file__).resolve().parents[2] / "analyses"
SPECS = ("organ_donations.toml", "kielmc.toml")


@pytest.fixture(scope="module")
def specs():
    return [load_spec(ANALYSES / name) for name in SPECS]


@pytest.fixture(scope="module")
def serial(specs):
    return [(run.spec.programme.id, files) for run, files in run_programmes(specs, seed=7, command="impact run x")]


def _same(a, b):
    assert [pid for pid, _ in a] == [pid for pid, _ in b]  # spec order, whatever finishes first
    for (pid, files_a), (_, files_b) in zip(a, b, strict=True):
        assert files_a.keys() == files_b.keys()
        for name in files_a:
            assert files_a[name] == files_b[name], f"{pid}/{name} differs from the serial run"


def test_specs_survive_pickling(specs):
    again = pickle.loads(pickle.dumps(specs[0]))
    assert again == specs[0]


def test_worker_processes_write_what_the_serial_run_writes(specs, serial):
    parallel = [(run.spec.programme.id, files)
                for run, files in run_programmes(specs, seed=7, command="impact run x", jobs=2)]
    _same(serial, parallel)


def test_dask_cluster_writes_what_the_serial_run_writes(specs, serial):
    distributed = pytest.importorskip("distributed", reason="the Dask path needs the 'distributed' package")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_dask = [(run.spec.programme.id, files)
                   for run, files in run_programmes(specs, seed=7, command="impact run x",
                                                    scheduler=cluster.scheduler_address)]
    _same(serial, on_dask)


@pytest.mark.parametrize("jobs", [0, -2, 1.5, True])
def test_jobs_must_be_a_count(specs, jobs):
    with pytest.raises(SpecError, match="jobs"):
        list(run_programmes(specs, seed=1, jobs=jobs))


def test_unreachable_scheduler_is_a_typed_error(specs):
    pytest.importorskip("distributed")
    with pytest.raises(SpecError, match="Dask scheduler"):
        list(run_programmes(specs, seed=1, scheduler="tcp://127.0.0.1:9", connect_timeout=2))
