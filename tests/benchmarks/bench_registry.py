"""Benchmark: recording and reading the results registry on SQLite and PostgreSQL.

Run from the repository root:  PYTHONPATH=src python tests/benchmarks/bench_registry.py
PostgreSQL is used when IMPACT_TEST_POSTGRES_URL is set (``. .ci/postgres.sh``), in a scratch schema
that is dropped afterwards. A portfolio of P programmes x E evaluations x T estimate rows is recorded,
recorded again (idempotent update), and read back (all estimates; pooling one indicator).
Reports wall time and peak Python memory (tracemalloc). Not collected by pytest.
"""

from __future__ import annotations

import os
import tempfile
import time
import tracemalloc
import uuid

import numpy as np
import sqlalchemy as sa

from impact.registry import Registry, resolve_url
from impact.results import Result, effects_table

PROGRAMMES, EVALUATIONS, TERMS = 21, 10, 20


def portfolio() -> list[tuple[dict, list[dict]]]:
    rng = np.random.default_rng(3)
    runs = []
    for p in range(PROGRAMMES):
        evaluations = []
        for e in range(EVALUATIONS):
            terms = ["ATT", *(f"e={t}" for t in range(-5, TERMS - 6))]
            table = effects_table(terms, rng.normal(0.2, 0.1, TERMS), rng.uniform(0.05, 0.1, TERMS),
                                  event_time=[None, *range(-5, TERMS - 6)])
            result = Result(design="att_gt", estimand="ATT", effects=table, headline="ATT", inference="iid", n_obs=1000,
                            diagnostics={"pretrend_p": 0.5, "groups": [{"g": g, "n": 10} for g in range(5)]})
            evaluations.append({"name": f"eval{e}", "indicator": f"RCR{e:02d}", "design": "did.att_gt", "result_dict": result.to_dict()})
        meta = {"id": f"prog{p}", "name": f"Programme {p}", "regions": [f"R{p}"], "spec_hash": "s", "data_hash": "d",
                "effect_chain": {"outcomes": [{"text": "x", "indicators": [f"RCR{e:02d}" for e in range(EVALUATIONS)]}]}}
        runs.append((meta, evaluations))
    return runs


def timed(label: str, func) -> tuple[str, float, float]:
    """Wall time of one call without tracing, then peak memory of a second (traced) call. For the
    recording steps the traced call is one more idempotent update of the same content."""
    start = time.perf_counter()
    func()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    func()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return label, seconds, peak


def bench(backend: str, url: str) -> list[tuple[str, str, float, float]]:
    runs = portfolio()
    reg = Registry(url)
    rows = [
        timed("record (first run)", lambda: [reg.record_run(m, e) for m, e in runs]),
        timed("record again (update)", lambda: [reg.record_run(m, e) for m, e in runs]),
        timed("estimates() all rows", lambda: reg.estimates()),
        timed("pool one indicator", lambda: reg.pool("RCR03", method="REML", knha=True)),
        timed("export json", lambda: reg.export(tempfile.mktemp(suffix=".json"), format="json")),
    ]
    reg.close()
    return [(backend, *row) for row in rows]


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as folder:
        results += bench("sqlite", os.path.join(folder, "bench.sqlite"))
    base = os.environ.get("IMPACT_TEST_POSTGRES_URL")
    if base:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(resolve_url(base))
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            results += bench("postgresql", f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}")
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    n_rows = PROGRAMMES * EVALUATIONS * TERMS
    print(f"{PROGRAMMES} programmes x {EVALUATIONS} evaluations x {TERMS} estimates = {n_rows} estimate rows")
    print(f"{'backend':<12}{'step':<24}{'wall s':>8}{'peak MB':>9}")
    for backend, step, seconds, peak in results:
        print(f"{backend:<12}{step:<24}{seconds:8.2f}{peak:9.1f}")


if __name__ == "__main__":
    main()
