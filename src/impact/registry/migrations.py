"""Versioned schema migrations of the results registry.

Why not Alembic: Alembic is built around a script directory and an ``alembic.ini`` on disk and an
``env.py`` that configures the connection; that suits an application that owns its database, less a
library that opens whichever SQLite file or PostgreSQL URL a user passes at run time and must upgrade
it on the spot. The registry's schema is small, so migrations are plain Python functions here, applied
in order inside one transaction (both SQLite and PostgreSQL have transactional DDL) and recorded in
``schema_migrations`` (version, description, applied_at). Opening a registry applies what is missing;
a database written by a newer impact (a version we do not know) is refused rather than guessed at.

Rule for future changes: never edit a released migration. Add ``(2, "what and why", function)`` to
:data:`MIGRATIONS` using explicit DDL (``op``-style ``ALTER TABLE`` through SQLAlchemy), update
:mod:`impact.registry.schema` to the new shape behind ``version >= N`` in ``define_tables`` so that
``_v1`` still creates the version-1 tables and a fresh database goes 1 -> 2 -> ... like an old one. A test checks that a migrated
empty database has exactly the columns of :mod:`impact.registry.schema`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from impact.errors import RegistryError
from impact.registry import schema

__all__ = ["ADVISORY_LOCK_KEY", "MIGRATIONS", "current_version", "migrate"]

_versions_meta = sa.MetaData()
schema_migrations = sa.Table(
    "schema_migrations",
    _versions_meta,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", sa.String(40), nullable=False),
)


def _v1(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    schema.define_tables(meta, version=1)
    meta.create_all(conn)


def _v2(conn: sa.Connection) -> None:
    conn.execute(sa.text("ALTER TABLE evaluations ADD COLUMN intervention VARCHAR(200)"))


def _v3(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    schema.define_monitoring(meta)
    meta.create_all(conn)


MIGRATIONS: list[tuple[int, str, Callable[[sa.Connection], None]]] = [
    (1, "programmes, indicators, runs, effect chain, evaluations, estimates, warnings", _v1),
    (2, "evaluations.intervention: the intervention type, for pooling and the evidence map by type", _v2),
    (3, "monitoring_records: follow-up records with baselines, targets and actual values (issue 13)", _v3),
]


def current_version(conn: sa.Connection) -> int:
    """Highest applied migration (0 for an empty database)."""
    if not sa.inspect(conn).has_table("schema_migrations"):
        return 0
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(schema_migrations.c.version), 0))).scalar_one())


#: Key of the PostgreSQL advisory lock that serialises migrations (any constant shared by all impacts).
ADVISORY_LOCK_KEY = 0x1A2B3C4D


def _refuse_foreign(conn: sa.Connection, engine: sa.Engine) -> None:
    """Refuse, without changing it, a database that holds tables but is not an impact registry."""
    names = set(sa.inspect(conn).get_table_names())
    if not names or "schema_migrations" in names:
        return
    ours = set(schema.define_tables(sa.MetaData()))
    if engine.dialect.name == "sqlite" or names & ours:
        shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
        raise RegistryError(
            f"{engine.url.render_as_string(hide_password=True)} is a database but not an impact results registry "
            f"(it holds other tables: {shown}); impact will not change it. Choose another path with --registry."
        )


def migrate(engine: sa.Engine) -> list[int]:
    """Apply every missing migration in one transaction; return the versions applied.

    Safe when several processes open a fresh registry at once: on PostgreSQL the transaction first
    takes an advisory lock, on SQLite it starts with ``BEGIN IMMEDIATE`` (see ``Registry``), so one
    process migrates and the others wait, then find the schema in place."""
    known = MIGRATIONS[-1][0]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        _refuse_foreign(conn, engine)
        _versions_meta.create_all(conn)
        have = current_version(conn)
        if have > known:
            raise RegistryError(
                f"the registry at {engine.url.render_as_string(hide_password=True)} has schema version {have}, "
                f"newer than this impact understands ({known}); upgrade impact."
            )
        applied = []
        for version, description, apply in MIGRATIONS:
            if version <= have:
                continue
            apply(conn)
            conn.execute(
                schema_migrations.insert().values(
                    version=version,
                    description=description,
                    applied_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                )
            )
            applied.append(version)
    return applied
