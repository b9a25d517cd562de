"""Tables of the results registry (SQLAlchemy Core), version 3 of the schema.

One programme has many runs; a run is one (spec hash, data hash) of that programme and is recorded
once however often it is re-run. A run has its effect chain and its evaluations; an evaluation has its
estimates (one row per ``Result.tidy()`` row) and warnings. Indicators are shared across programmes.

Timestamps are ISO-8601 UTC strings (``2026-11-26T18:00:00Z``): they sort correctly and read back the
same on SQLite and PostgreSQL. JSON columns hold what ``impact.results.jsonable`` produces.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["SCHEMA_VERSION", "define_monitoring", "define_tables", "metadata", "tables"]

SCHEMA_VERSION = 3

_KEY = 200  # length of identifiers (programme ids, names, codes)
_HASH = 128


def define_tables(meta: sa.MetaData, version: int = SCHEMA_VERSION) -> dict[str, sa.Table]:
    """Add the registry tables to ``meta`` as of schema ``version`` and return them by name.

    Version 2 added ``evaluations.intervention`` (the intervention type of the taxonomy)."""
    later = [sa.Column("intervention", sa.String(_KEY))] if version >= 2 else []
    programmes = sa.Table(
        "programmes",
        meta,
        sa.Column("programme_id", sa.String(_KEY), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("regions", sa.JSON),
        sa.Column("first_recorded_at", sa.String(40), nullable=False),
        sa.Column("last_recorded_at", sa.String(40), nullable=False),
    )
    indicators = sa.Table(
        "indicators",
        meta,
        sa.Column("code", sa.String(_KEY), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("unit", sa.Text),
        sa.Column("level", sa.String(40)),
        sa.Column("definition", sa.Text),
    )
    runs = sa.Table(
        "runs",
        meta,
        sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("programme_id", sa.String(_KEY), sa.ForeignKey("programmes.programme_id"), nullable=False),
        sa.Column("spec_hash", sa.String(_HASH), nullable=False),
        sa.Column("data_hash", sa.String(_HASH), nullable=False),
        sa.Column("package_version", sa.String(40), nullable=False),
        sa.Column("run_time", sa.String(40), nullable=False),
        sa.Column("first_recorded_at", sa.String(40), nullable=False),
        sa.Column("last_recorded_at", sa.String(40), nullable=False),
        sa.Column("spec_metadata", sa.JSON),
        sa.UniqueConstraint("programme_id", "spec_hash", "data_hash", name="uq_runs_programme_spec_data"),
    )
    effect_chain = sa.Table(
        "effect_chain",
        meta,
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("level", sa.String(40), nullable=False),
        sa.Column("text", sa.Text),
        sa.Column("indicator_code", sa.String(_KEY), sa.ForeignKey("indicators.code")),
        sa.Column("measured", sa.Text),
    )
    evaluations = sa.Table(
        "evaluations",
        meta,
        sa.Column("evaluation_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(_KEY), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),  # "main" or "robustness"
        sa.Column("parent", sa.String(_KEY)),  # the main evaluation a robustness check belongs to
        sa.Column("indicator_code", sa.String(_KEY), sa.ForeignKey("indicators.code")),
        sa.Column("design", sa.String(_KEY)),
        sa.Column("region", sa.String(_KEY)),
        sa.Column("outcome", sa.Text),
        sa.Column("status", sa.String(20), nullable=False),  # "ok" or "failed"
        sa.Column("error", sa.Text),
        sa.Column("estimand", sa.Text),
        sa.Column("headline_term", sa.Text),
        sa.Column("inference", sa.Text),
        sa.Column("level", sa.Float),
        sa.Column("n_obs", sa.BigInteger),
        sa.Column("n_units", sa.BigInteger),
        sa.Column("n_treated", sa.BigInteger),
        sa.Column("n_clusters", sa.BigInteger),
        sa.Column("settings", sa.JSON),
        sa.Column("sample_flow", sa.JSON),
        sa.Column("diagnostics", sa.JSON),
        sa.Column("details", sa.JSON),  # what the caller passed besides the result (question, options, ...)
        *later,
        sa.UniqueConstraint("run_id", "name", name="uq_evaluations_run_name"),
    )
    estimates = sa.Table(
        "estimates",
        meta,
        sa.Column(
            "evaluation_id", sa.Integer, sa.ForeignKey("evaluations.evaluation_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("term", sa.Text, nullable=False),
        sa.Column("is_headline", sa.Boolean, nullable=False),
        sa.Column("estimate", sa.Float(53)),
        sa.Column("std_error", sa.Float(53)),
        sa.Column("statistic", sa.Float(53)),
        sa.Column("p_value", sa.Float(53)),
        sa.Column("conf_low", sa.Float(53)),
        sa.Column("conf_high", sa.Float(53)),
        sa.Column("df", sa.Float(53)),  # NULL: normal reference distribution (infinite df)
        sa.Column("extra", sa.JSON),  # design-specific columns of tidy() (event_time, group, weight, ...)
    )
    warnings = sa.Table(
        "warnings",
        meta,
        sa.Column(
            "evaluation_id", sa.Integer, sa.ForeignKey("evaluations.evaluation_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("category", sa.String(_KEY)),
        sa.Column("message", sa.Text, nullable=False),
    )
    sa.Index("ix_evaluations_indicator", evaluations.c.indicator_code)
    sa.Index("ix_runs_programme", runs.c.programme_id)
    return {
        t.name: t for t in (programmes, indicators, runs, effect_chain, evaluations, estimates, warnings)
    }


def define_monitoring(meta: sa.MetaData) -> dict[str, sa.Table]:
    """Version 3: follow-up records (impact.monitoring), one row per programme, project, region, indicator,
    period and kind; re-importing a record replaces its value (``impact monitor import``)."""
    records = sa.Table(
        "monitoring_records",
        meta,
        sa.Column("programme", sa.String(_KEY), primary_key=True),
        sa.Column("project", sa.String(_KEY), primary_key=True),
        sa.Column("region", sa.String(_KEY), primary_key=True),
        sa.Column("indicator", sa.String(_KEY), primary_key=True),
        sa.Column("period", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("value", sa.Float(53), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("source", sa.Text),
        sa.Column("imported_at", sa.String(40), nullable=False),
    )
    sa.Index("ix_monitoring_indicator", records.c.indicator, records.c.period)
    return {"monitoring_records": records}


metadata = sa.MetaData()
tables = {**define_tables(metadata), **define_monitoring(metadata)}
