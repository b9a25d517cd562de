"""Follow-up records in the results registry (table ``monitoring_records``, schema version 3).

Importing is idempotent: a record is identified by programme, project, region, indicator, period and
kind; importing it again replaces its value and note, so re-importing a file changes nothing and a
corrected file updates exactly the records it holds. Records of other files are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from impact.monitoring.records import Monitoring
from impact.registry.schema import tables

__all__ = ["ImportSummary", "import_records", "load_records"]

_KEY = ("programme", "project", "region", "indicator", "period", "kind")
_CHUNK = 400


@dataclass(frozen=True)
class ImportSummary:
    """How many records were new, changed (value or note) and unchanged."""

    inserted: int
    updated: int
    unchanged: int

    def __str__(self) -> str:
        return f"{self.inserted:,} new, {self.updated:,} updated, {self.unchanged:,} unchanged"


def import_records(registry: Any, m: Monitoring, *, source: str = "") -> ImportSummary:
    """Store ``m``'s records in ``registry`` (an :class:`impact.registry.Registry`), replacing same-key records."""
    table = tables["monitoring_records"]
    rows = m.records
    rows["period"] = rows["period"].astype(int)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    keys = [tuple(x) for x in rows[list(_KEY)].itertuples(index=False, name=None)]
    new_values = dict(zip(keys, zip(rows["value"].astype(float), rows["note"].astype(str))))
    inserted = updated = unchanged = 0
    with registry.engine.begin() as conn:
        existing: dict[tuple, tuple[float, str]] = {}
        for programme in sorted(rows["programme"].unique()):
            query = sa.select(*[table.c[k] for k in _KEY], table.c.value, table.c.note).where(table.c.programme == programme)
            for r in conn.execute(query):
                existing[tuple(r[:6])] = (float(r[6]), r[7] or "")
        to_insert, to_update = [], []
        for key, (value, note) in new_values.items():
            old = existing.get(key)
            record = {**dict(zip(_KEY, key)), "value": value, "note": note, "source": source, "imported_at": now}
            if old is None:
                to_insert.append(record)
            elif old != (value, note):
                to_update.append(record)
            else:
                unchanged += 1
        for start in range(0, len(to_insert), _CHUNK):
            conn.execute(table.insert(), to_insert[start:start + _CHUNK])
        if to_update:
            where = sa.and_(*[table.c[k] == sa.bindparam(f"k_{k}") for k in _KEY])
            statement = table.update().where(where).values(value=sa.bindparam("new_value"), note=sa.bindparam("new_note"),
                                                            source=sa.bindparam("new_source"), imported_at=sa.bindparam("new_time"))
            conn.execute(statement, [{**{f"k_{k}": r[k] for k in _KEY}, "new_value": r["value"], "new_note": r["note"],
                                      "new_source": r["source"], "new_time": r["imported_at"]} for r in to_update])
        inserted, updated = len(to_insert), len(to_update)
    return ImportSummary(inserted, updated, unchanged)


def load_records(registry: Any, *, programme: str | None = None) -> pd.DataFrame:
    """The stored records (programme, project, region, indicator, period, kind, value, note)."""
    table = tables["monitoring_records"]
    query = sa.select(*[table.c[k] for k in _KEY], table.c.value, table.c.note).order_by(*[table.c[k] for k in _KEY])
    if programme is not None:
        query = query.where(table.c.programme == programme)
    with registry.engine.connect() as conn:
        result = conn.execute(query)
        return pd.DataFrame(result.fetchall(), columns=[*_KEY, "value", "note"])
