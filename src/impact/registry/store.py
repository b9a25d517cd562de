"""The results registry: every programme run's results in one relational store.

See :class:`Registry`. The store is SQLite (a file, the default) or PostgreSQL (by URL), reached
through SQLAlchemy 2.x Core; the schema is created and upgraded on opening (``migrations``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, get_args

import numpy as np
import pandas as pd
import sqlalchemy as sa

from impact.errors import DataError, RegistryError, SpecError
from impact.registry.migrations import current_version, migrate
from impact.registry.schema import tables
from impact.results import TIDY_COLUMNS, Result, jsonable

if TYPE_CHECKING:
    from impact.meta import MetaResult, Method

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

ENV_VAR = "IMPACT_REGISTRY"
DEFAULT_PATH = Path("reports") / "registry.sqlite"
LEVELS = ("resources", "activities", "outputs", "outcomes", "impacts")
ExportFormat = Literal["csv", "json"]
PoolBy = Literal["programme", "region", "intervention"]

T = tables
_ESTIMATE_COLUMNS = (*TIDY_COLUMNS, "df")
_TIME_COLUMNS = ("run_time", "first_recorded_at", "last_recorded_at")


def resolve_url(url: str | os.PathLike[str] | None = None) -> str:
    """The SQLAlchemy URL of a registry.

    ``None`` -> ``$IMPACT_REGISTRY`` -> ``reports/registry.sqlite``. A plain path means an SQLite file
    (its folder is created). ``postgresql://`` and ``postgres://`` URLs use the psycopg (v3) driver.
    """
    if url is None:
        url = os.environ.get(ENV_VAR) or str(DEFAULT_PATH)
    text = os.fspath(url)
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    scheme, rest = text.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return text


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp(value: Any) -> str:
    if value is None:
        return _now()
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def combined_hash(parts: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """One SHA-256 over several named hashes (e.g. one per data file), independent of their order."""
    items = sorted((parts.items() if isinstance(parts, Mapping) else parts), key=lambda kv: kv[0])
    digest = hashlib.sha256()
    for name, value in items:
        digest.update(f"{name}\t{value}\n".encode())
    return digest.hexdigest()


def _float(value: Any) -> float | None:
    """A stored number: JSON's "inf" strings back to floats, NaN/None to NULL."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    value = float(value)
    return None if math.isnan(value) else value


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class RunRecord:
    """What :meth:`Registry.record_run` did."""

    run_id: int
    programme_id: str
    created: bool  # False when the same spec and data were recorded before (the run was updated)
    n_evaluations: int
    n_failed: int


# ---------------------------------------------------------------------------------------------
# Normalising what callers pass
# ---------------------------------------------------------------------------------------------
def _provenance(meta: Mapping[str, Any]) -> dict[str, Any]:
    nested = meta.get("provenance") or {}
    if not isinstance(nested, Mapping):
        raise SpecError("spec_metadata['provenance'] must be a mapping (spec_hash, data_hash, package_version, time).")
    merged = {**meta, **nested}
    programme_id = merged.get("id", merged.get("programme_id"))
    if programme_id in (None, ""):
        raise SpecError("spec_metadata needs the programme 'id' (the key under which its runs are stored).")
    spec_hash = merged.get("spec_hash") or merged.get("spec_sha256")
    if not spec_hash:
        raise SpecError(
            f"spec_metadata of programme {programme_id!r} needs 'spec_hash' (e.g. the SHA-256 of the spec file); "
            "without it re-runs cannot be recognised."
        )
    data_hash = merged.get("data_hash")
    if not data_hash and isinstance(merged.get("data"), Sequence) and merged.get("data"):
        # the programme runner's list of data sources, each with its file's sha256
        pairs = []
        for source in merged["data"]:
            if not isinstance(source, Mapping) or "sha256" not in source:
                raise SpecError("each entry of spec_metadata['data'] must be a mapping with 'name' and 'sha256'.")
            pairs.append((str(source.get("name", source.get("path", ""))), str(source["sha256"])))
        data_hash = combined_hash(pairs)
    if not data_hash:
        raise SpecError(
            f"spec_metadata of programme {programme_id!r} needs 'data_hash' (or 'data': [{{name, sha256}}, ...]); "
            "without it a changed data file could not be told apart from a re-run."
        )
    versions = merged.get("versions") if isinstance(merged.get("versions"), Mapping) else {}
    if merged.get("package_version"):
        package_version = str(merged["package_version"])
    elif versions.get("impact"):
        package_version = str(versions["impact"])
    else:
        from impact import __version__

        package_version = __version__
    return {
        "programme_id": str(programme_id),
        "spec_hash": str(spec_hash),
        "data_hash": str(data_hash),
        "package_version": package_version,
        "run_time": _timestamp(merged.get("time", merged.get("run_time"))),
    }


def _indicator_rows(meta: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    raw = meta.get("indicators") or []
    rows: dict[str, dict[str, Any]] = {}
    if isinstance(raw, Mapping):
        raw = [{"code": code, **(info if isinstance(info, Mapping) else {"name": info})} for code, info in raw.items()]
    for item in raw:
        if isinstance(item, str):
            rows[item] = {"code": item}
        elif isinstance(item, Mapping) and item.get("code"):
            rows[str(item["code"])] = {
                "code": str(item["code"]),
                **{k: (None if item.get(k) is None else str(item[k])) for k in ("name", "unit", "level", "definition")},
            }
        else:
            raise SpecError(f"each indicator must be a code or a mapping with 'code'; got {item!r}.")
    return rows


def _chain_rows(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flatten the effect chain to (level, text, indicator, measured) rows, one per indicator of each box.

    Accepts ``{level: [item, ...]}`` or ``[{"level": ..., ...}, ...]``; an item is an indicator code or
    a mapping with ``text`` (or ``description``), ``indicators`` (or ``indicator``/``code``) and
    ``measured`` (or ``where``).
    """
    raw = meta.get("effect_chain") or {}
    pairs: list[tuple[str, Any]] = []
    if isinstance(raw, Mapping):
        order = [lv for lv in LEVELS if lv in raw] + [lv for lv in raw if lv not in LEVELS]
        pairs = [(str(level), item) for level in order for item in (raw[level] or [])]
    elif isinstance(raw, Sequence) and not isinstance(raw, str):
        for item in raw:
            if not isinstance(item, Mapping) or "level" not in item:
                raise SpecError(f"effect chain entries given as a list need a 'level'; got {item!r}.")
            pairs.append((str(item["level"]), item))
    else:
        raise SpecError("effect_chain must map levels to lists of items, or be a list of items with 'level'.")
    rows = []
    for level, item in pairs:
        if isinstance(item, str):
            text, codes, measured = None, [item], None
        elif isinstance(item, Mapping):
            text = item.get("text", item.get("description"))
            codes = item.get("indicators", item.get("indicator", item.get("code")))
            codes = [] if codes is None else [codes] if isinstance(codes, str) else list(codes)
            measured = item.get("measured", item.get("where"))
        else:
            raise SpecError(f"an effect chain item must be an indicator code or a mapping; got {item!r}.")
        for code in codes or [None]:
            rows.append(
                {
                    "level": level,
                    "text": None if text is None else str(text),
                    "indicator_code": None if code is None else str(code),
                    "measured": None if measured is None else str(measured),
                }
            )
    return [{**row, "position": i} for i, row in enumerate(rows)]


def _flatten_evaluations(evaluations: Sequence[Mapping[str, Any]], intervention: Any = None) -> list[dict[str, Any]]:
    """Main evaluations, their robustness checks and their region-level estimates, each as one record
    with role (``main``, ``robustness``, ``region``) and parent."""
    out: list[dict[str, Any]] = []
    for i, item in enumerate(evaluations):
        if isinstance(item, Result) or not isinstance(item, Mapping):
            raise SpecError(
                f"evaluation {i} must be a mapping {{name, indicator, design, result_dict | error}}; got {type(item).__name__}."
            )
        if not item.get("name"):
            raise SpecError(f"evaluation {i} has no 'name'; names identify evaluations across re-runs.")
        item = {**item, "intervention": item.get("intervention") or intervention or None}
        out.append({**item, "role": "main", "parent": None})
        for sub in item.get("region_estimates") or []:
            if not isinstance(sub, Mapping) or not sub.get("region"):
                raise SpecError(f"region estimates of evaluation {item['name']!r} must be mappings with a 'region'.")
            name = str(sub.get("name") or "")
            out.append(
                {
                    **sub,
                    "name": name if name.startswith(f"{item['name']} / ") else f"{item['name']} / region: {sub['region']}",
                    "indicator": sub.get("indicator", item.get("indicator")),
                    "intervention": sub.get("intervention") or item["intervention"],
                    "role": "region",
                    "parent": item["name"],
                }
            )
        for check in item.get("robustness") or []:
            if not isinstance(check, Mapping) or not check.get("name"):
                raise SpecError(f"robustness checks of evaluation {item['name']!r} must be mappings with a 'name'.")
            out.append(
                {
                    **check,
                    "name": f"{item['name']} / {check['name']}",
                    "indicator": check.get("indicator", item.get("indicator")),
                    "region": check.get("region", item.get("region")),
                    "intervention": check.get("intervention") or item["intervention"],
                    "role": "robustness",
                    "parent": item["name"],
                }
            )
    repeated = sorted(n for n, count in Counter(e["name"] for e in out).items() if count > 1)
    if repeated:
        raise SpecError(f"evaluation names must be unique within a run; repeated: {repeated}.")
    return out


def _result_of(item: Mapping[str, Any]) -> dict[str, Any] | None:
    result = item.get("result_dict", item.get("result"))
    if result is None:
        return None
    if isinstance(result, Result):
        return result.to_dict()
    if not isinstance(result, Mapping) or "effects" not in result:
        raise SpecError(
            f"evaluation {item['name']!r}: 'result_dict' must be Result.to_dict() output (with 'effects'); "
            f"got {type(result).__name__}."
        )
    return jsonable(result)


_KNOWN_EVALUATION_KEYS = {
    "name", "indicator", "design", "region", "result", "result_dict", "error", "status", "robustness", "role", "parent",
    "intervention", "region_estimates",
}


def _evaluation_row(item: Mapping[str, Any], run_id: int) -> tuple[dict[str, Any], list[dict], list[dict]]:
    result = _result_of(item)
    error = item.get("error")
    if isinstance(error, BaseException):
        error = f"{type(error).__name__}: {error}"
    if result is None and not error:
        raise SpecError(f"evaluation {item['name']!r} has neither a result ('result_dict') nor an 'error'.")
    details = jsonable({k: v for k, v in item.items() if k not in _KNOWN_EVALUATION_KEYS})
    row: dict[str, Any] = {
        "run_id": run_id,
        "name": str(item["name"]),
        "role": item["role"],
        "parent": item["parent"],
        "indicator_code": None if item.get("indicator") is None else str(item["indicator"]),
        "design": item.get("design") or (result or {}).get("design"),
        "region": None if item.get("region") is None else str(item["region"]),
        "intervention": None if item.get("intervention") is None else str(item["intervention"]),
        "status": "ok" if result is not None else "failed",
        "error": None if result is not None else str(error),
        "details": details or None,
    }
    estimates: list[dict] = []
    warnings: list[dict] = []
    if result is not None:
        headline = result.get("headline") or {}
        row.update(
            outcome=result.get("outcome"),
            estimand=result.get("estimand"),
            headline_term=headline.get("term"),
            inference=result.get("inference"),
            level=_float(headline.get("level")),
            n_obs=_int(result.get("n_obs")),
            n_units=_int(result.get("n_units")),
            n_treated=_int(result.get("n_treated")),
            n_clusters=_int(result.get("n_clusters")),
            settings=result.get("settings"),
            sample_flow=result.get("sample_flow"),
            diagnostics=result.get("diagnostics"),
        )
        for position, effect in enumerate(result.get("effects") or []):
            extra = {k: v for k, v in effect.items() if k not in _ESTIMATE_COLUMNS}
            df = _float(effect.get("df"))
            estimates.append(
                {
                    "position": position,
                    "term": str(effect["term"]),
                    "is_headline": str(effect["term"]) == headline.get("term"),
                    **{c: _float(effect.get(c)) for c in TIDY_COLUMNS if c != "term"},
                    "df": None if df is None or math.isinf(df) else df,
                    "extra": extra or None,
                }
            )
        for position, text in enumerate(result.get("warnings") or []):
            category, _, message = str(text).partition(": ")
            if not message or " " in category:
                category, message = None, str(text)
            warnings.append({"position": position, "category": category, "message": message})
    else:
        row.update(outcome=item.get("outcome"))
    return row, estimates, warnings


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------
class Registry:
    """A results registry in SQLite (default) or PostgreSQL.

    Parameters
    ----------
    url : str or path, optional
        SQLAlchemy URL (``sqlite:///reports/registry.sqlite``, ``postgresql://user:pw@host/db``) or a
        file path for SQLite. Default: ``$IMPACT_REGISTRY``, else ``reports/registry.sqlite``.

    Notes
    -----
    Opening a registry creates or upgrades its schema (see :mod:`impact.registry.migrations`).
    A run is keyed by programme id + spec hash + data hash, and an evaluation by its run + name, so
    the key of a stored evaluation is (programme id, evaluation name, spec hash, data hash): recording
    the same spec and data again updates that run in place (same rows, refreshed values and time),
    while a changed spec or data file creates a new run and leaves earlier runs untouched.
    Queries use the latest run of each programme (the one recorded most recently) unless
    ``history=True``.

    Examples
    --------
    >>> reg = Registry("sqlite://")  # in memory
    >>> reg.record_run({"id": "demo", "spec_hash": "s1", "data_hash": "d1"}, []).created
    True
    """

    def __init__(self, url: str | os.PathLike[str] | None = None, *, timeout: float = 60.0, attempts: int = 5) -> None:
        self.url = resolve_url(url)
        self.timeout = float(timeout)
        self.attempts = int(attempts)
        shown = _without_password(self.url)
        is_sqlite = self.url.startswith("sqlite")
        try:
            # SQLite: wait up to `timeout` seconds for another writer's lock (the driver's default is 5 s)
            self.engine = sa.create_engine(self.url, connect_args={"timeout": self.timeout} if is_sqlite else {})
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
            raise SpecError(f"cannot use registry URL {shown!r}: {exc}") from None
        except ImportError as exc:
            raise SpecError(
                f"the database driver for {shown!r} is not installed ({exc.name}); for PostgreSQL: pip install 'psycopg[binary]'"
            ) from None
        if self.engine.dialect.name == "sqlite":
            _sqlite_file_is_database(self.url)
            sa.event.listen(self.engine, "connect", _sqlite_connect)
            sa.event.listen(self.engine, "begin", _sqlite_begin_immediate)
        self.applied_migrations = self._retrying(lambda: migrate(self.engine), "open")

    def _retrying(self, action: Callable[[], Any], what: str) -> Any:
        """Run ``action`` (one transaction), retrying a bounded number of times when another process holds
        the database or won a race on a unique key; any database failure becomes a RegistryError."""
        shown = self.engine.url.render_as_string(hide_password=True)
        for attempt in range(1, self.attempts + 1):
            try:
                return action()
            except sa.exc.IntegrityError:
                # another process inserted the same programme, run or evaluation between our look-up and
                # our insert (the unique keys refused the duplicate); the next attempt updates that row
                if attempt == self.attempts:
                    raise RegistryError(f"cannot {what} the registry at {shown}: concurrent writers kept colliding "
                                        f"({self.attempts} attempts).") from None
            except sa.exc.DBAPIError as exc:
                if not _transient(exc) or attempt == self.attempts:
                    raise RegistryError(f"cannot {what} the registry at {shown}: {_describe_db_error(exc)}") from None
            time.sleep(min(0.05 * 2**attempt, 2.0) * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
        raise AssertionError("unreachable")  # pragma: no cover

    def __repr__(self) -> str:
        return f"Registry({self.engine.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    @property
    def schema_version(self) -> int:
        """The applied schema version."""
        with self.engine.connect() as conn:
            return current_version(conn)

    # -- writing ------------------------------------------------------------------------------
    def record_run(self, spec_metadata: Mapping[str, Any], evaluations: Sequence[Mapping[str, Any]]) -> RunRecord:
        """Store one programme run: programme, indicators, effect chain, evaluations, estimates,
        diagnostics, warnings and provenance, in one transaction.

        Parameters
        ----------
        spec_metadata : mapping
            ``id`` (programme id, required), ``name``, ``regions`` (list), ``effect_chain``
            (``{level: [item, ...]}`` with items an indicator code or ``{text, indicators, measured}``),
            ``indicators`` (list of codes or ``{code, name, unit, level, definition}``), and provenance,
            at the top level or under ``provenance``: ``spec_hash`` (or ``spec_sha256``), ``data_hash``
            (or ``data``: a list of ``{name, sha256}`` per data file), ``package_version`` (or
            ``versions["impact"]``; default this impact's version) and ``time`` (default now). Everything
            is also kept verbatim with the run.
        evaluations : sequence of mapping
            One per evaluation: ``name`` (unique within the run), ``indicator`` (code), ``design``,
            optional ``region``, and either ``result_dict`` / ``result`` (``Result.to_dict()`` output, or a
            Result) or ``error`` (text or exception). ``robustness``: a list of the same for its checks
            (stored as ``"NAME / CHECK"`` with role ``robustness``). Other keys (question, options, ...)
            are kept in ``details``. The programme runner's ``Outcome.to_dict()`` records fit as they are.

        Returns
        -------
        RunRecord
        """
        return self._retrying(lambda: self._record_run(spec_metadata, evaluations), "write to")

    def _record_run(self, spec_metadata: Mapping[str, Any], evaluations: Sequence[Mapping[str, Any]]) -> RunRecord:
        if not isinstance(spec_metadata, Mapping):
            raise SpecError(f"spec_metadata must be a mapping; got {type(spec_metadata).__name__}.")
        if isinstance(evaluations, Mapping | str) or not isinstance(evaluations, Sequence):
            raise SpecError("evaluations must be a list of mappings, one per evaluation.")
        prov = _provenance(spec_metadata)
        indicators = _indicator_rows(spec_metadata)
        chain = _chain_rows(spec_metadata)
        flat = _flatten_evaluations(evaluations, spec_metadata.get("intervention"))
        for row in chain:
            if row["indicator_code"]:
                indicators.setdefault(row["indicator_code"], {"code": row["indicator_code"]})
        for item in flat:
            if item.get("indicator") is not None:
                indicators.setdefault(str(item["indicator"]), {"code": str(item["indicator"])})
        regions = spec_metadata.get("regions")
        regions = None if regions is None else [str(r) for r in regions]
        now = _now()
        pid = prov["programme_id"]
        with self.engine.begin() as conn:
            # programme: latest name/regions win; first_recorded_at never changes
            existing = conn.execute(sa.select(T["programmes"].c.programme_id).where(T["programmes"].c.programme_id == pid)).first()
            values = {"name": spec_metadata.get("name"), "regions": regions, "last_recorded_at": now}
            if existing:
                conn.execute(T["programmes"].update().where(T["programmes"].c.programme_id == pid).values(**values))
            else:
                conn.execute(T["programmes"].insert().values(programme_id=pid, first_recorded_at=now, **values))
            self._upsert_indicators(conn, indicators.values())
            key = (
                (T["runs"].c.programme_id == pid)
                & (T["runs"].c.spec_hash == prov["spec_hash"])
                & (T["runs"].c.data_hash == prov["data_hash"])
            )
            run_id = conn.execute(sa.select(T["runs"].c.run_id).where(key)).scalar()
            run_values = {
                "package_version": prov["package_version"],
                "run_time": prov["run_time"],
                "last_recorded_at": now,
                "spec_metadata": jsonable(dict(spec_metadata)),
            }
            created = run_id is None
            if created:
                run_id = conn.execute(
                    T["runs"].insert().values(
                        programme_id=pid, spec_hash=prov["spec_hash"], data_hash=prov["data_hash"], first_recorded_at=now, **run_values
                    )
                ).inserted_primary_key[0]
            else:
                conn.execute(T["runs"].update().where(T["runs"].c.run_id == run_id).values(**run_values))
                conn.execute(T["effect_chain"].delete().where(T["effect_chain"].c.run_id == run_id))
            if chain:
                conn.execute(T["effect_chain"].insert(), [{**row, "run_id": run_id} for row in chain])
            n_failed = 0
            for item in flat:
                row, estimates, warnings = _evaluation_row(item, run_id)
                n_failed += row["status"] == "failed"
                self._write_evaluation(conn, row, estimates, warnings)
        return RunRecord(run_id=int(run_id), programme_id=pid, created=created, n_evaluations=len(flat), n_failed=n_failed)

    @staticmethod
    def _upsert_indicators(conn: sa.Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        table = T["indicators"]
        for row in rows:
            known = conn.execute(sa.select(table).where(table.c.code == row["code"])).mappings().first()
            if known is None:
                conn.execute(table.insert().values(**{k: row.get(k) for k in ("code", "name", "unit", "level", "definition")}))
                continue
            # fill in or update what is given; never blank out what an earlier run described
            changes = {k: row[k] for k in ("name", "unit", "level", "definition") if row.get(k) is not None and row[k] != known[k]}
            if changes:
                conn.execute(table.update().where(table.c.code == row["code"]).values(**changes))

    @staticmethod
    def _write_evaluation(conn: sa.Connection, row: dict[str, Any], estimates: list[dict], warnings: list[dict]) -> None:
        table = T["evaluations"]
        evaluation_id = conn.execute(
            sa.select(table.c.evaluation_id).where((table.c.run_id == row["run_id"]) & (table.c.name == row["name"]))
        ).scalar()
        full = {c.name: row.get(c.name) for c in table.columns if c.name != "evaluation_id"}
        if evaluation_id is None:
            evaluation_id = conn.execute(table.insert().values(**full)).inserted_primary_key[0]
        else:
            conn.execute(table.update().where(table.c.evaluation_id == evaluation_id).values(**full))
            conn.execute(T["estimates"].delete().where(T["estimates"].c.evaluation_id == evaluation_id))
            conn.execute(T["warnings"].delete().where(T["warnings"].c.evaluation_id == evaluation_id))
        if estimates:
            conn.execute(T["estimates"].insert(), [{**e, "evaluation_id": evaluation_id} for e in estimates])
        if warnings:
            conn.execute(T["warnings"].insert(), [{**w, "evaluation_id": evaluation_id} for w in warnings])

    # -- reading ------------------------------------------------------------------------------
    def _latest_runs(self) -> sa.Subquery:
        """run_id of the most recently recorded run of each programme."""
        runs = T["runs"]
        ranked = sa.select(
            runs.c.run_id,
            sa.func.row_number()
            .over(partition_by=runs.c.programme_id, order_by=(runs.c.last_recorded_at.desc(), runs.c.run_id.desc()))
            .label("rank"),
        ).subquery()
        return sa.select(ranked.c.run_id).where(ranked.c.rank == 1).subquery()

    def runs(self, programme: str | None = None) -> pd.DataFrame:
        """Every stored run (oldest first) with its provenance, evaluation counts and whether it is the
        programme's latest."""
        runs, progs, evals = T["runs"], T["programmes"], T["evaluations"]
        latest = self._latest_runs()
        counts = (
            sa.select(
                evals.c.run_id,
                sa.func.count().label("n_evaluations"),
                sa.func.sum(sa.case((evals.c.status == "failed", 1), else_=0)).label("n_failed"),
            )
            .group_by(evals.c.run_id)
            .subquery()
        )
        query = (
            sa.select(
                runs.c.run_id,
                runs.c.programme_id,
                progs.c.name.label("programme_name"),
                runs.c.spec_hash,
                runs.c.data_hash,
                runs.c.package_version,
                runs.c.run_time,
                runs.c.first_recorded_at,
                runs.c.last_recorded_at,
                sa.func.coalesce(counts.c.n_evaluations, 0).label("n_evaluations"),
                sa.func.coalesce(counts.c.n_failed, 0).label("n_failed"),
                sa.case((latest.c.run_id.is_not(None), True), else_=False).label("is_latest"),
            )
            .join(progs, progs.c.programme_id == runs.c.programme_id)
            .outerjoin(counts, counts.c.run_id == runs.c.run_id)
            .outerjoin(latest, latest.c.run_id == runs.c.run_id)
            .order_by(runs.c.run_id)
        )
        if programme is not None:
            query = query.where(runs.c.programme_id == programme)
        frame = self._frame(query)
        for column in ("n_evaluations", "n_failed"):
            frame[column] = frame[column].astype(int)
        frame["is_latest"] = frame["is_latest"].astype(bool)
        return frame

    def estimates(
        self,
        indicator: str | None = None,
        programme: str | None = None,
        *,
        history: bool = False,
        headline_only: bool = False,
        role: Literal["main", "robustness", "region", "all"] = "main",
        run_id: int | None = None,
    ) -> pd.DataFrame:
        """Stored estimates, one row per ``tidy()`` row of each successful evaluation.

        Parameters
        ----------
        indicator, programme : str, optional
            Keep one indicator code / one programme id.
        history : bool
            All runs, not only the latest run of each programme.
        headline_only : bool
            Only each evaluation's headline row.
        role : {"main", "robustness", "region", "all"}
            Main evaluations (default), robustness checks, region-level estimates, or all.
        run_id : int, optional
            One run (implies ``history=True``).
        """
        if role not in ("main", "robustness", "region", "all"):
            raise SpecError(f"role must be one of 'main', 'robustness', 'region', 'all'; got {role!r}.")
        runs, evals, est, progs = T["runs"], T["evaluations"], T["estimates"], T["programmes"]
        query = (
            sa.select(
                runs.c.run_id,
                runs.c.programme_id,
                progs.c.name.label("programme_name"),
                evals.c.name.label("evaluation"),
                evals.c.role,
                evals.c.indicator_code.label("indicator"),
                evals.c.design,
                evals.c.region,
                evals.c.intervention,
                evals.c.parent,
                evals.c.status,
                T["indicators"].c.unit.label("unit"),
                T["indicators"].c.level.label("indicator_level"),
                evals.c.outcome,
                evals.c.estimand,
                est.c.term,
                est.c.is_headline,
                est.c.estimate,
                est.c.std_error,
                est.c.statistic,
                est.c.p_value,
                est.c.conf_low,
                est.c.conf_high,
                est.c.df,
                evals.c.level,
                evals.c.n_obs,
                est.c.extra,
                runs.c.spec_hash,
                runs.c.data_hash,
                runs.c.package_version,
                runs.c.run_time,
            )
            .join(evals, evals.c.evaluation_id == est.c.evaluation_id)
            .join(runs, runs.c.run_id == evals.c.run_id)
            .join(progs, progs.c.programme_id == runs.c.programme_id)
            .outerjoin(T["indicators"], T["indicators"].c.code == evals.c.indicator_code)
            .order_by(runs.c.run_id, evals.c.evaluation_id, est.c.position)
        )
        if run_id is not None:
            query = query.where(runs.c.run_id == run_id)
        elif not history:
            query = query.where(runs.c.run_id.in_(sa.select(self._latest_runs().c.run_id)))
        if indicator is not None:
            query = query.where(evals.c.indicator_code == indicator)
        if programme is not None:
            query = query.where(runs.c.programme_id == programme)
        if headline_only:
            query = query.where(est.c.is_headline.is_(True))
        if role != "all":
            query = query.where(evals.c.role == role)
        frame = self._frame(query)
        frame["is_headline"] = frame["is_headline"].astype(bool)
        frame["df"] = frame["df"].astype(float).fillna(math.inf)  # NULL df = normal reference
        return frame

    def evaluations(self, run_id: int) -> pd.DataFrame:
        """The evaluations of one run: status, error, headline, warnings count."""
        evals, est, warn = T["evaluations"], T["estimates"], T["warnings"]
        n_warn = sa.select(warn.c.evaluation_id, sa.func.count().label("n_warnings")).group_by(warn.c.evaluation_id).subquery()
        query = (
            sa.select(
                evals.c.evaluation_id,
                evals.c.name,
                evals.c.role,
                evals.c.indicator_code.label("indicator"),
                evals.c.design,
                evals.c.region,
                evals.c.status,
                evals.c.error,
                est.c.term,
                est.c.estimate,
                est.c.std_error,
                est.c.p_value,
                est.c.conf_low,
                est.c.conf_high,
                sa.func.coalesce(n_warn.c.n_warnings, 0).label("n_warnings"),
            )
            .outerjoin(est, (est.c.evaluation_id == evals.c.evaluation_id) & est.c.is_headline.is_(True))
            .outerjoin(n_warn, n_warn.c.evaluation_id == evals.c.evaluation_id)
            .where(evals.c.run_id == run_id)
            .order_by(evals.c.evaluation_id)
        )
        return self._frame(query)

    def show(self, run_id: int) -> dict[str, Any]:
        """One run in full: provenance, programme, effect chain, evaluations with estimates,
        diagnostics and warnings (JSON-able)."""
        dump = self._dump(run_ids=[run_id])
        if not dump["runs"]:
            known = self.runs()["run_id"].tolist()
            raise DataError(f"no run with id {run_id} in the registry; stored run ids: {known[-20:] or 'none'}.")
        return dump["runs"][0]

    def export(self, path: str | os.PathLike[str], format: ExportFormat = "csv", *, times: bool = True) -> Path:
        """Write the whole registry (every run, history included) to ``path``.

        ``"csv"``: one row per stored estimate with its programme, run and evaluation columns, plus one
        row per failed evaluation (status ``failed``, its error, empty estimate columns).
        ``"json"``: programmes, indicators and runs, each run with its effect chain and evaluations,
        each evaluation with its estimates, diagnostics, settings, sample flow and warnings.
        Rows are ordered by their ids so that the same content gives the same file; with
        ``times=False`` the run and record times (which change on every re-run) are left out, so that
        re-running the same specs on the same data exports an identical file.
        """
        if format not in get_args(ExportFormat):
            raise SpecError(f"format must be one of 'csv', 'json'; got {format!r}.")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if format == "json":
            dump = self._dump()
            if not times:
                for record in (*dump["programmes"], *dump["runs"]):
                    for key in _TIME_COLUMNS:
                        record.pop(key, None)
                for run in dump["runs"]:  # the caller's own copy of the time, kept with the spec metadata
                    meta = run.get("spec_metadata") or {}
                    for holder in (meta, meta.get("provenance") or {}):
                        for key in ("time", "run_time"):
                            holder.pop(key, None)
            target.write_text(json.dumps(dump, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            return target
        estimates = self.estimates(history=True, role="all")
        estimates["status"] = "ok"
        estimates["error"] = None
        failed = self._frame(
            sa.select(
                T["runs"].c.run_id,
                T["runs"].c.programme_id,
                T["programmes"].c.name.label("programme_name"),
                T["evaluations"].c.name.label("evaluation"),
                T["evaluations"].c.role,
                T["evaluations"].c.indicator_code.label("indicator"),
                T["evaluations"].c.design,
                T["evaluations"].c.region,
                T["evaluations"].c.status,
                T["evaluations"].c.error,
                T["runs"].c.spec_hash,
                T["runs"].c.data_hash,
                T["runs"].c.package_version,
                T["runs"].c.run_time,
            )
            .join(T["runs"], T["runs"].c.run_id == T["evaluations"].c.run_id)
            .join(T["programmes"], T["programmes"].c.programme_id == T["runs"].c.programme_id)
            .where(T["evaluations"].c.status == "failed")
        )
        table = pd.concat([estimates, failed], ignore_index=True) if len(failed) else estimates
        table = table.sort_values(["run_id", "evaluation", "term"], kind="stable", na_position="first")
        table["extra"] = table["extra"].map(lambda v: None if v is None or v is pd.NA else json.dumps(v, sort_keys=True))
        if not times:
            table = table.drop(columns=[c for c in _TIME_COLUMNS if c in table.columns])
        table.to_csv(target, index=False)
        return target

    def import_runs(self, path: str | os.PathLike[str]) -> list[RunRecord]:
        """Record every run of a JSON export (:meth:`export` with ``format="json"``, e.g. from another
        agency's registry) in this registry.

        Runs are keyed as always by programme id + spec hash + data hash, so importing the same export
        twice, or a run this registry already holds, updates it instead of duplicating it. Returns what
        was done per run (``created`` False for runs that were already here)."""
        source = Path(path)
        try:
            dump = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{source}: not a readable registry export ({exc}); export one with `impact registry export FILE.json`.") from None
        if not isinstance(dump, Mapping) or not isinstance(dump.get("runs"), list):
            raise DataError(f"{source}: not a registry JSON export (no 'runs'); CSV exports cannot be imported, use JSON.")
        version = dump.get("schema_version")
        if isinstance(version, int) and version > self.schema_version:
            raise SpecError(f"{source} was written with registry schema {version}, newer than this impact's; upgrade impact.")
        indicators = {i["code"]: i for i in dump.get("indicators") or [] if isinstance(i, Mapping) and i.get("code")}
        names = {p["programme_id"]: p for p in dump.get("programmes") or [] if isinstance(p, Mapping)}
        records = []
        for run in dump["runs"]:
            meta = dict(run.get("spec_metadata") or {})
            programme = names.get(run["programme_id"], {})
            meta.update(
                id=run["programme_id"], spec_hash=run["spec_hash"], data_hash=run["data_hash"],
                package_version=run.get("package_version"), time=run.get("run_time") or meta.get("time"),
            )
            meta.setdefault("name", run.get("programme_name") or programme.get("name"))
            if meta.get("regions") is None and programme.get("regions") is not None:
                meta["regions"] = programme["regions"]
            meta["effect_chain"] = [
                {"level": c["level"], "text": c.get("text"), "indicator": c.get("indicator_code"), "measured": c.get("measured")}
                for c in run.get("effect_chain") or []
            ]
            codes = {c.get("indicator_code") for c in run.get("effect_chain") or []} | {
                e.get("indicator_code") for e in run.get("evaluations") or []
            }
            meta["indicators"] = [indicators.get(c, {"code": c}) for c in sorted(c for c in codes if c)]
            records.append(self.record_run(meta, _evaluations_from_dump(run.get("evaluations") or [])))
        return records

    def _dump(self, run_ids: Sequence[int] | None = None) -> dict[str, Any]:
        with self.engine.connect() as conn:

            def rows(table: sa.Table, *where: Any, order: Sequence[Any] = ()) -> list[dict[str, Any]]:
                query = sa.select(table).where(*where).order_by(*(order or table.primary_key.columns))
                return [dict(r) for r in conn.execute(query).mappings()]

            run_filter = () if run_ids is None else (T["runs"].c.run_id.in_(run_ids),)
            runs = rows(T["runs"], *run_filter)
            ids = [r["run_id"] for r in runs]
            chain = rows(T["effect_chain"], T["effect_chain"].c.run_id.in_(ids))
            evals = rows(T["evaluations"], T["evaluations"].c.run_id.in_(ids))
            eval_ids = [e["evaluation_id"] for e in evals]
            estimates = rows(T["estimates"], T["estimates"].c.evaluation_id.in_(eval_ids))
            warnings = rows(T["warnings"], T["warnings"].c.evaluation_id.in_(eval_ids))
            programmes = rows(T["programmes"], T["programmes"].c.programme_id.in_({r["programme_id"] for r in runs}))
            indicators = rows(T["indicators"]) if run_ids is None else []
            version = current_version(conn)
        by_eval: dict[int, dict[str, list]] = {i: {"estimates": [], "warnings": []} for i in eval_ids}
        for e in estimates:
            e["df"] = "inf" if e["df"] is None else e["df"]
            by_eval[e.pop("evaluation_id")]["estimates"].append(e)
        for w in warnings:
            by_eval[w.pop("evaluation_id")]["warnings"].append(w)
        by_run: dict[int, dict[str, list]] = {i: {"effect_chain": [], "evaluations": []} for i in ids}
        for c in chain:
            by_run[c.pop("run_id")]["effect_chain"].append(c)
        for e in evals:
            by_run[e.pop("run_id")]["evaluations"].append({**e, **by_eval[e["evaluation_id"]]})
        names = {p["programme_id"]: p["name"] for p in programmes}
        out_runs = [{**r, "programme_name": names.get(r["programme_id"]), **by_run[r["run_id"]]} for r in runs]
        return jsonable(
            {"schema_version": version, "programmes": programmes, "indicators": indicators, "runs": out_runs}
        )

    def _frame(self, query: sa.Select) -> pd.DataFrame:
        with self.engine.connect() as conn:
            result = conn.execute(query)
            columns = list(result.keys())
            # plain tuples: pandas probing SQLAlchemy Row objects for attributes is slow
            return pd.DataFrame([tuple(row) for row in result.fetchall()], columns=columns)

    # -- pooling ------------------------------------------------------------------------------
    def pool(
        self,
        indicator: str,
        *,
        by: PoolBy = "programme",
        method: Method = "REML",
        knha: bool = False,
        level: float = 0.95,
        design: str | None = None,
        programmes: Sequence[str] | None = None,
        comparable_only: bool = True,
        pm_solver: str = "exact",
    ) -> MetaResult:
        """Pool the stored headline estimates of one indicator across programmes, regions or intervention
        types, reading every programme recorded in the registry (latest run of each).

        ``by="programme"``: one estimate per programme (its main evaluation). ``by="region"``: one per
        (programme, region): the region-level estimates of evaluations run ``by_region``, else the main
        estimate of an evaluation that covers one region (its ``region``, or the programme's only
        region). ``by="intervention"``: one estimate per programme, grouped by intervention type, with
        the test of differences between types (:func:`impact.meta.pool` with ``by=``).

        Honest pooling: with ``comparable_only=True`` (default) only comparable estimates are pooled:
        the same indicator on its own scale (outcome column = the indicator, not a transformation),
        with a standard error, and the same kind of estimand (ATT, ATE, ITT, LATE: the most common one
        is kept). Everything left out is listed with the reason in ``settings["left_out"]``;
        ``comparable_only=False`` pools them anyway (the listing stays). Each study row carries its
        stored df and confidence interval, so the forest plot shows the intervals of the reports.

        Dependence: the region estimates of one evaluation share its comparison regions and years, so
        with ``by="region"`` the pooled row is cluster-robust by evaluation (CR2 with Satterthwaite df,
        :func:`impact.meta.pool` with ``cluster=``) whenever an evaluation contributes several regions;
        if they all come from one evaluation there is nothing independent to pool (``DataError``).

        Returns
        -------
        MetaResult
            From :func:`impact.meta.pool`; ``settings`` also record the indicator, grouping, the
            evaluations pooled and those left out.
        """
        from impact.meta import pool

        if by not in get_args(PoolBy):
            raise SpecError(f"by must be one of 'programme', 'region', 'intervention'; got {by!r}.")
        table = self.estimates(indicator=indicator, headline_only=True, role="all")
        table = table.loc[table["role"] != "robustness"]
        if design is not None:
            table = table.loc[table["design"] == design]
        if programmes is not None:
            table = table.loc[table["programme_id"].isin(list(programmes))]
        if table.empty:
            known = sorted(self.estimates(headline_only=True)["indicator"].dropna().unique())
            raise DataError(
                f"no stored estimates of indicator {indicator!r}"
                + (f" with design {design!r}" if design else "")
                + f"; indicators with estimates: {known or 'none'}."
            )
        left_out: list[dict[str, Any]] = []
        if by == "region":
            table = self._region_rows(table, left_out)
            unit = table["region"].astype(str)
            if table["programme_id"].nunique() > 1:
                unit = unit + " (" + table["programme_id"].astype(str) + ")"
        else:
            table = table.loc[table["role"] == "main"]
            unit = table["programme_name"].fillna(table["programme_id"]).astype(str)
        table = table.assign(study=unit.to_numpy())
        table = _comparable(table, indicator, left_out, comparable_only)
        repeated = table.loc[table["study"].duplicated(keep=False)]
        if len(repeated):
            listing = "; ".join(
                f"{u}: {', '.join(f'{e} ({d})' for e, d in zip(g['evaluation'], g['design'], strict=True))}"
                for u, g in repeated.groupby("study", sort=True)
            )
            raise DataError(
                f"several estimates of {indicator!r} for the same {by}: {listing}. Pool one design with design=..."
                + (" or pool by='region'." if by == "programme" else ".")
            )
        if len(table) < 2:
            reasons = "; ".join(f"{r['programme']}:{r['evaluation']}: {r['reason']}" for r in left_out) or "none left out"
            raise DataError(
                f"fewer than two comparable estimates of {indicator!r} to pool by {by} ({len(table)} found; left out: "
                f"{reasons}). Record more evaluations, or pass comparable_only=False (--all) to pool what is there."
            )
        cluster = None
        if by == "region":
            # the region estimates of one evaluation share its comparison regions and years: not independent
            source = table["parent"].where(table["role"] == "region", table["evaluation"]) if "parent" in table else table["evaluation"]
            labels = table["programme_id"].astype(str) + ": " + source.astype(str)
            if labels.duplicated().any():
                cluster = labels.tolist()
        same_level = np.isclose(table["level"].astype(float).to_numpy(), level)
        intervals = None
        if same_level.all():
            intervals = (table["conf_low"].to_numpy(dtype=float), table["conf_high"].to_numpy(dtype=float))
        groups = None
        if by == "intervention":
            groups = table["intervention"].fillna("not classified").astype(str).tolist()
            if len(set(groups)) < 2:
                groups = None
        result = pool(
            table["estimate"].to_numpy(dtype=float), table["std_error"].to_numpy(dtype=float), method=method, knha=knha,
            level=level, labels=list(table["study"]), study_df=table["df"].to_numpy(dtype=float),
            study_conf_int=intervals, by=groups, pm_solver=pm_solver,  # type: ignore[arg-type]
            units=[None if pd.isna(u) else u for u in table["unit"]], cluster=cluster,
        )
        settings = {
            **result.settings,
            "indicator": indicator,
            "by": by,
            "comparable_only": comparable_only,
            "evaluations": [
                {"programme": p, "evaluation": e, "run_id": int(r), "region": None if pd.isna(g) else g,
                 "intervention": None if pd.isna(i) else i, "design": d}
                for p, e, r, g, i, d in zip(table["programme_id"], table["evaluation"], table["run_id"], table["region"],
                                            table["intervention"], table["design"], strict=True)
            ],
            "left_out": left_out,
        }
        if by == "intervention" and groups is None:
            settings["note"] = "every pooled programme has the same intervention type: no comparison between types"
        return result.replace(settings=settings, outcome=indicator)

    def _region_rows(self, table: pd.DataFrame, left_out: list[dict[str, Any]]) -> pd.DataFrame:
        """Region-level estimates: region rows, and main estimates that cover one region."""
        regions = self._programme_regions()
        single = {pid: rs[0] for pid, rs in regions.items() if rs and len(rs) == 1}
        region_rows = table.loc[table["role"] == "region"]
        split = set(zip(region_rows["programme_id"], region_rows["parent"], strict=True))
        main = table.loc[table["role"] == "main"]
        main = main.loc[[(p, e) not in split for p, e in zip(main["programme_id"], main["evaluation"], strict=True)]]
        main = main.assign(region=main["region"].where(main["region"].notna(), main["programme_id"].map(single)))
        for row in main.loc[main["region"].isna()].itertuples():
            left_out.append(_left_out(row, "covers several regions and has no region-level estimates "
                                           "(run it with by_region in the spec, or record its region)"))
        return pd.concat([region_rows, main.loc[main["region"].notna()]], ignore_index=True)

    def _programme_regions(self) -> dict[str, list[str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(T["programmes"].c.programme_id, T["programmes"].c.regions)).all()
        return {pid: list(regions or []) for pid, regions in rows}


def _evaluations_from_dump(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The evaluation records of one exported run, nested again (robustness checks and region estimates
    under their main evaluation) as :meth:`Registry.record_run` takes them."""

    def record(row: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            **(row.get("details") or {}),
            "name": row["name"], "indicator": row.get("indicator_code"), "design": row.get("design"),
            "region": row.get("region"), "intervention": row.get("intervention"), "outcome": row.get("outcome"),
        }
        if row.get("status") != "ok":
            out["error"] = row.get("error") or "failed"
            return out
        headline = next((e["term"] for e in row.get("estimates") or [] if e.get("is_headline")), row.get("headline_term"))
        effects = []
        for e in sorted(row.get("estimates") or [], key=lambda e: e.get("position", 0)):
            effects.append({**(e.get("extra") or {}), **{c: e.get(c) for c in (*TIDY_COLUMNS, "df")}})
        warnings = [f"{w['category']}: {w['message']}" if w.get("category") else w["message"]
                    for w in sorted(row.get("warnings") or [], key=lambda w: w.get("position", 0))]
        out["result_dict"] = {
            "design": row.get("design"), "estimand": row.get("estimand"), "outcome": row.get("outcome"),
            "headline": {"term": headline, "level": row.get("level")}, "inference": row.get("inference"),
            "n_obs": row.get("n_obs"), "n_units": row.get("n_units"), "n_treated": row.get("n_treated"),
            "n_clusters": row.get("n_clusters"), "settings": row.get("settings"), "sample_flow": row.get("sample_flow"),
            "diagnostics": row.get("diagnostics"), "effects": effects, "warnings": warnings,
        }
        return out

    mains: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("role") == "main":
            mains[row["name"]] = record(row)
    for row in rows:
        role, parent = row.get("role"), row.get("parent")
        if role == "main" or parent not in mains:
            continue
        item = record(row)
        if role == "robustness":
            item["name"] = str(row["name"]).removeprefix(f"{parent} / ")
            mains[parent].setdefault("robustness", []).append(item)
        elif role == "region":
            mains[parent].setdefault("region_estimates", []).append(item)
    return list(mains.values())


_ESTIMAND_KINDS = ("ATT", "ATE", "ITT", "LATE")  # also the preference when two kinds are equally common


def _estimand_kind(estimand: Any) -> str:
    """The kind of causal estimand (ATT, ATE, ITT, LATE) from a Result's estimand text."""
    text = "" if estimand is None or (isinstance(estimand, float) and math.isnan(estimand)) else str(estimand)
    words = text.replace("(", " ").replace(",", " ").split()
    for kind in _ESTIMAND_KINDS:
        if kind in words:
            return kind
    return text or "unknown"


def _left_out(row: Any, reason: str) -> dict[str, Any]:
    region = getattr(row, "region", None)
    return {"programme": row.programme_id, "evaluation": row.evaluation, "design": row.design,
            "region": None if region is None or (isinstance(region, float) and math.isnan(region)) else region,
            "estimate": None if pd.isna(row.estimate) else float(row.estimate), "reason": reason}


def _comparable(table: pd.DataFrame, indicator: str, left_out: list[dict[str, Any]], comparable_only: bool) -> pd.DataFrame:
    """Keep what can be pooled; record the rest (or, with ``comparable_only=False``, keep them and record
    why they would have been left out, except those that cannot be pooled at all)."""
    se = table["std_error"].astype(float)
    no_se = ~(np.isfinite(se) & (se > 0)) | table["estimate"].isna()
    for row in table.loc[no_se].itertuples():
        left_out.append(_left_out(row, "no standard error (e.g. bounds, or a failed variance): cannot be weighted"))
    table = table.loc[~no_se]
    if table.empty:
        return table
    # an outcome column that contains the indicator's code but is not it (log_X, X_growth) is a transformation
    outcome = table["outcome"].fillna(indicator).astype(str)
    rescaled = outcome.str.contains(indicator, regex=False) & (outcome != indicator)
    kinds = table["estimand"].map(_estimand_kind)
    counts = kinds.loc[~rescaled].value_counts() if (~rescaled).any() else kinds.value_counts()
    preferred = sorted(counts.index, key=lambda k: (-counts[k], _ESTIMAND_KINDS.index(k) if k in _ESTIMAND_KINDS else 9))[0]
    other_kind = kinds != preferred
    for row, kind in zip(table.loc[rescaled].itertuples(), kinds.loc[rescaled], strict=True):
        left_out.append(_left_out(row, f"measured as {row.outcome!r}, not on the scale of {indicator} itself ({row.unit or 'its unit'})"))
        del kind
    for row, kind in zip(table.loc[other_kind & ~rescaled].itertuples(), kinds.loc[other_kind & ~rescaled], strict=True):
        left_out.append(_left_out(row, f"estimand {kind} ({row.estimand}) differs from the {preferred} of the others"))
    if not comparable_only:
        for entry in left_out:
            if not entry["reason"].startswith("no standard error") and "several regions" not in entry["reason"]:
                entry["reason"] += " [pooled anyway: comparable_only=False]"
        return table
    return table.loc[~rescaled & ~other_kind]


def _without_password(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy, not the sqlite3 module, starts transactions (see _sqlite_begin_immediate): the module's
    # own implicit BEGIN comes only before DML, so DDL of a migration would run outside any transaction
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin_immediate(conn: sa.Connection) -> None:
    """Take the write lock when a transaction starts: two processes that read, then both try to write,
    would otherwise deadlock and one fail at once instead of waiting (SQLite's busy timeout)."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_file_is_database(url: str) -> None:
    """Refuse a file at the registry path that is not an SQLite database (never opened for writing)."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:":
        return
    path = Path(database)
    if not path.exists() or path.stat().st_size == 0:
        return
    if path.is_dir():
        raise RegistryError(f"the registry path {path} is a folder; give a file path (e.g. {path / 'registry.sqlite'}).")
    with path.open("rb") as handle:
        header = handle.read(16)
    if header != b"SQLite format 3\x00":
        raise RegistryError(
            f"{path} is not an SQLite database (nor an impact registry) or it is damaged; impact will not change it. "
            "Choose another path with --registry, or restore the registry from a backup."
        )


def _transient(exc: sa.exc.DBAPIError) -> bool:
    """A failure that a later attempt can get past: a lock held by another process, a serialisation
    failure or deadlock on PostgreSQL, a dropped connection."""
    if exc.connection_invalidated:
        return True
    text = str(getattr(exc, "orig", exc)).lower()
    return any(s in text for s in ("database is locked", "database table is locked", "busy", "deadlock detected",
                                   "could not serialize", "already exists"))


def _describe_db_error(exc: sa.exc.DBAPIError) -> str:
    """The driver's message, first line only (no SQL statement or parameters, which can be long)."""
    text = str(getattr(exc, "orig", exc)).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    if "file is not a database" in message or "malformed" in message:
        return f"{message}: the file is damaged or not an impact registry; choose another path with --registry."
    if "locked" in message:
        return f"{message} (another process held it for longer than the retries allowed; try again)."
    return message


def record_run(
    spec_metadata: Mapping[str, Any],
    evaluations: Sequence[Mapping[str, Any]],
    *,
    url: str | os.PathLike[str] | None = None,
) -> RunRecord:
    """Open the registry at ``url`` (default ``$IMPACT_REGISTRY`` or ``reports/registry.sqlite``),
    record one programme run (see :meth:`Registry.record_run`) and close it."""
    with Registry(url) as registry:
        return registry.record_run(spec_metadata, evaluations)


def record_results(
    results: Mapping[str, Any],
    *,
    effect_chain: Any = None,
    indicators: Any = None,
    url: str | os.PathLike[str] | None = None,
) -> RunRecord:
    """Record a programme run given as the content of its ``results.json``.

    ``results`` has ``programme`` (the spec metadata: id, name, regions, spec_sha256, ...), ``data`` (one
    ``{name, sha256, ...}`` per data source), ``versions`` and ``evaluations`` (each evaluation's record
    with ``result`` = ``Result.to_dict()`` or ``error``, and its ``robustness`` checks), as the programme
    runner writes it. ``effect_chain`` and ``indicators`` (see :meth:`Registry.record_run`) are taken from
    the arguments or else from ``results`` itself when it carries them.
    """
    if not isinstance(results, Mapping) or not isinstance(results.get("programme"), Mapping):
        raise SpecError("results must be the content of a results.json: a mapping with 'programme' and 'evaluations'.")
    evaluations = results.get("evaluations")
    if not isinstance(evaluations, Sequence) or isinstance(evaluations, str):
        raise SpecError("results['evaluations'] must be a list of evaluation records.")
    meta: dict[str, Any] = dict(results["programme"])
    for key in ("data", "versions", "provenance"):
        if results.get(key) is not None and key not in meta:
            meta[key] = results[key]
    chain = effect_chain if effect_chain is not None else results.get("effect_chain", meta.get("effect_chain"))
    codes = indicators if indicators is not None else results.get("indicators", meta.get("indicators"))
    if chain is not None:
        meta["effect_chain"] = jsonable(chain)
    if codes is not None:
        meta["indicators"] = jsonable(codes)
    return record_run(meta, evaluations, url=url)
