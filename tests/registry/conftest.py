"""Registry fixtures: every test runs against SQLite, and against PostgreSQL when
IMPACT_TEST_POSTGRES_URL is set (``. .ci/postgres.sh`` installs, starts and exports it)."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from impact.registry import resolve_url

POSTGRES_ENV = "IMPACT_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request, tmp_path):
    """URL of an empty registry: a fresh SQLite file, or a fresh schema in the test PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests skipped: {POSTGRES_ENV} is not set (run `. .ci/postgres.sh` to start a server)")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        admin = sa.create_engine(resolve_url(base))
    except ImportError as exc:
        pytest.skip(f"PostgreSQL tests skipped: the psycopg driver is not installed ({exc.name}); pip install 'psycopg[binary]'")
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL tests skipped: cannot connect to {POSTGRES_ENV} ({str(exc.orig).strip()[:200]})")
    separator = "&" if "?" in base else "?"
    try:
        # each test sees only its own schema: an empty database for migrations and exact row counts
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
