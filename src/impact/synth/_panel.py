"""Balanced wide panels for the synthetic-control family (units x periods matrices)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from impact.data import check_integer
from impact.errors import DataError

_MAX_LISTED = 5


@dataclass(frozen=True)
class WidePanel:
    """Outcome matrix ``Y`` (units x periods) with its unit and period labels."""

    Y: np.ndarray
    units: pd.Index
    periods: pd.Index


def _listing(items: list, limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def to_wide(frame: pd.DataFrame, *, column: str, unit: str, time: str, where: str) -> WidePanel:
    """Pivot ``column`` to units x periods and raise DataError naming the gaps of an unbalanced panel."""
    wide = frame.pivot(index=unit, columns=time, values=column).sort_index(axis=0).sort_index(axis=1)
    missing = wide.isna()
    if missing.to_numpy().any():
        counts = missing.sum(axis=1)
        bad_units = counts[counts > 0]
        details = []
        for u in bad_units.index[:_MAX_LISTED]:
            periods = list(wide.columns[missing.loc[u].to_numpy()])
            details.append(f"{u!r} lacks {time} {_listing(periods, 4)}")
        more = f" (and {len(bad_units) - _MAX_LISTED} more units)" if len(bad_units) > _MAX_LISTED else ""
        raise DataError(
            f"{where}: the panel is unbalanced: {len(bad_units)} of {len(wide)} units lack a row for some "
            f"periods of {column!r}: {'; '.join(details)}{more}. Synthetic-control methods need every unit "
            f"observed in every period: drop those units (or periods), or fill the gaps before estimating."
        )
    return WidePanel(wide.to_numpy(dtype=float), wide.index, wide.columns)


def placebo_start(periods: Sequence[Any], n_before: int, placebo_periods: int | None, where: str, before: str) -> tuple[int, Any]:
    """Position and label of an in-time placebo's pretend start among the ``n_before`` periods before
    the real (earliest) start: ``placebo_periods`` before it (default half of them, rounded down),
    leaving at least two earlier periods to fit on; a ``DataError`` says so when there are too few.
    ``before`` names the real start in the message."""
    if placebo_periods is None:
        placebo_periods = n_before // 2
    placebo_periods = check_integer("placebo_periods", placebo_periods, where, minimum=1)
    fake = n_before - placebo_periods
    if fake < 2:
        raise DataError(
            f"{where}: {n_before} period(s) precede {before}; an in-time placebo of {placebo_periods} period(s) "
            f"needs at least {placebo_periods + 2}. Use fewer placebo periods or a longer panel."
        )
    start = periods[fake]
    return fake, start.item() if hasattr(start, "item") else start
