"""Results registry: every programme run's results in one relational store (SQLite or PostgreSQL).

``Registry(url)`` opens (and creates or upgrades) a store; ``record_run(spec_metadata, evaluations)``
stores one run idempotently; ``runs()``, ``estimates()``, ``show()``, ``export()`` read it back and
``pool()`` pools one indicator's stored estimates across programmes or regions with
:func:`impact.meta.pool`. The command line is in :mod:`impact.registry.commands`.
"""

from impact.registry.store import (
    DEFAULT_PATH,
    ENV_VAR,
    Registry,
    RunRecord,
    combined_hash,
    record_results,
    record_run,
    resolve_url,
)

__all__ = [
    "DEFAULT_PATH",
    "ENV_VAR",
    "Registry",
    "RunRecord",
    "combined_hash",
    "record_results",
    "record_run",
    "resolve_url",
]
