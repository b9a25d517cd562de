"""Registry safety (issue 11 item 13): concurrent first use, foreign and damaged files, locks held
for a while. Every test runs on SQLite, and on PostgreSQL when IMPACT_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa

from impact.errors import RegistryError
from impact.registry import Registry, resolve_url
from impact.registry.migrations import MIGRATIONS

N_PROCESSES = 16


def _first_run(url: str, index: int, barrier, queue) -> None:
    """One process: open a (fresh) registry and record one run, all starting at the same moment."""
    try:
        barrier.wait(timeout=60)
        with Registry(url) as registry:
            programme = f"prog{index % 4}"  # four programmes, four runs each: races on every unique key
            record = registry.record_run(
                {"id": programme, "name": programme, "spec_hash": f"spec{index}", "data_hash": "data",
                 "indicators": ["RCR01"]},
                [{"name": "effect", "indicator": "RCR01", "design": "did.twfe", "error": "not run"}],
            )
        queue.put(("ok", index, record.run_id))
    except BaseException as exc:  # noqa: BLE001 - report any failure to the parent
        queue.put(("failed", index, f"{type(exc).__name__}: {exc}"))


def test_16_parallel_first_runs_lose_nothing(registry_url):
    """Before: 5/18 runs on SQLite and 13/18 on PostgreSQL died on the migration race (IntegrityError)."""
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(N_PROCESSES), context.Queue()
    processes = [context.Process(target=_first_run, args=(registry_url, i, barrier, queue)) for i in range(N_PROCESSES)]
    for p in processes:
        p.start()
    outcomes = [queue.get(timeout=240) for _ in processes]
    for p in processes:
        p.join(timeout=60)
    failures = [o for o in outcomes if o[0] != "ok"]
    assert not failures, failures
    with Registry(registry_url) as registry:
        runs = registry.runs()
        assert len(runs) == N_PROCESSES and runs["run_id"].is_unique
        assert sorted(runs["programme_id"].unique()) == ["prog0", "prog1", "prog2", "prog3"]
        assert registry.schema_version == MIGRATIONS[-1][0]
        with registry.engine.connect() as conn:
            applied = conn.execute(sa.text("SELECT count(*) FROM schema_migrations")).scalar_one()
    assert applied == len(MIGRATIONS)  # each migration applied exactly once


def test_an_unrelated_sqlite_file_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "mine.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE budget (year INTEGER, amount REAL)")
        conn.execute("INSERT INTO budget VALUES (2024, 1.5)")
    before = path.read_bytes()
    with pytest.raises(RegistryError, match="not an impact results registry .*budget.* will not change it"):
        Registry(path)
    assert path.read_bytes() == before


def test_a_file_that_is_not_a_database_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "registry.sqlite"
    path.write_text("my notes, not a database\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="is not an SQLite database .*damaged") as err:
        Registry(path)
    assert "my notes" not in str(err.value)
    assert path.read_text(encoding="utf-8") == "my notes, not a database\n"


def test_a_damaged_registry_is_a_registry_error_not_a_raw_sqlalchemy_error(tmp_path):
    path = tmp_path / "registry.sqlite"
    Registry(path).close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # wipe the schema page after the header
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="cannot open the registry"):
        Registry(path)


def test_a_writer_waits_for_a_lock_held_longer_than_5_seconds(tmp_path):
    """Before: the driver's 5 s busy timeout lost the run; now it waits (bounded by `timeout`)."""
    path = tmp_path / "registry.sqlite"
    Registry(path).close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Timer(6.0, lambda: holder.execute("COMMIT"))
    released.start()
    start = time.monotonic()
    try:
        with Registry(path, timeout=30) as registry:
            record = registry.record_run({"id": "late", "spec_hash": "s", "data_hash": "d"}, [])
    finally:
        released.join()
        holder.close()
    assert record.created and time.monotonic() - start >= 5.5


def test_a_lock_held_too_long_fails_with_a_bounded_registry_error(tmp_path):
    path = tmp_path / "registry.sqlite"
    Registry(path).close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RegistryError, match="locked"):
            Registry(path, timeout=0.2, attempts=2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_postgres_migration_takes_the_advisory_lock(registry_url):
    if not registry_url.startswith("postgres"):
        pytest.skip("advisory locks are PostgreSQL's")
    from impact.registry.migrations import ADVISORY_LOCK_KEY

    engine = sa.create_engine(resolve_url(registry_url))
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
        opened: list[object] = []
        thread = threading.Thread(target=lambda: opened.append(Registry(registry_url)))
        thread.start()
        thread.join(timeout=2)
        assert thread.is_alive() and not opened  # waits for the lock instead of racing
    thread.join(timeout=60)
    assert opened
    opened[0].close()
    engine.dispose()
