"""Numbers and recorded values as a report prints them.

Three rules a referee checks: estimates are rounded to the precision their standard error supports
(two significant digits of the SE); identifiers that happen to be numbers (years, seeds, cohorts,
codes, event times) are printed as they are, without thousands separators; and no value reaches the
page as program output (no Series repr, no JSON list of 17-digit floats): lists of numbers are
joined, tables become tables.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "decimals_for",
    "fmt_estimate",
    "fmt_number",
    "fmt_p",
    "fmt_value",
    "is_identifier",
]

#: Column and key names whose numeric values are labels, not quantities.
_IDENTIFIER = re.compile(
    r"(^|_)(year|years|seed|cohort|cohorts|code|time|times|period|periods|group|first_treat|first|id|"
    r"event_time|event_times|wave|quarter|month|date|treatment_time|start|unit|g|t|e)(_|$)|^first\.treat$",
    re.IGNORECASE,
)


def is_identifier(name: Any) -> bool:
    """True if a column or key named ``name`` holds labels (years, seeds, cohorts, codes, ...)."""
    text = str(name).strip().replace(" ", "_")
    return bool(text) and bool(_IDENTIFIER.search(text))


def _minus(text: str) -> str:
    return text.replace("-", "−")


def fmt_number(value: Any, digits: int = 3, *, trailing_zeros: bool = False) -> str:
    """A number as an evaluator reads it: thousands separators, about ``digits`` significant digits
    (with ``trailing_zeros``, a value below 1 keeps all of them: 0.10, not 0.1, for a column of
    standard errors; values a user wrote, such as options, keep their own form)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return _minus(f"{value:,}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    ax = abs(x)
    if x.is_integer() and ax < 1e15:
        return _minus(f"{int(x):,}")
    if ax >= 1000:
        text = f"{x:,.0f}"
    elif ax >= 100:
        text = f"{x:.1f}"
    elif ax >= 1:
        text = f"{x:.{max(digits - 1, 1)}f}"
    elif ax == 0:
        text = "0"
    else:
        text = f"{x:{'#' if trailing_zeros else ''}.{digits}g}"
        if "e" in text:
            text = f"{x:.2e}"
    return _minus(text)


def fmt_p(value: Any) -> str:
    """A p-value: three decimals, or ``< 0.001``."""
    if value is None:
        return "–"
    try:
        p = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def decimals_for(std_error: Any) -> int | None:
    """Decimals that keep two significant digits of ``std_error`` (None if it is not a positive number)."""
    try:
        se = float(std_error)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(se) or se <= 0:
        return None
    return int(min(max(1 - math.floor(math.log10(se)), 0), 8))


def fmt_estimate(value: Any, std_error: Any = None, *, digits: int = 3) -> str:
    """``value`` rounded to the precision ``std_error`` supports (SE 6.98 -> one decimal, 0.126 -> two);
    without a usable SE, about ``digits`` significant digits."""
    places = decimals_for(std_error)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return fmt_number(value, digits)
    if places is None or not math.isfinite(x):
        return fmt_number(value, digits)
    return _minus(f"{x:,.{places}f}")


def _plain(value: Any) -> str:
    """A numeric label without separators: 2017, 20240917, 2019.5."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "–"
    return _minus(str(int(x)) if x.is_integer() else f"{x:g}")


def fmt_value(value: Any, key: Any = "", *, digits: int = 4) -> str:
    """Any recorded value as text: numbers formatted (labels without separators), lists joined,
    mappings as ``key: value`` pairs; never a repr of a pandas or numpy object."""
    import numpy as np
    import pandas as pd

    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | float | np.integer | np.floating) and str(key).replace(" ", "_").lower().endswith("p_value"):
        return fmt_p(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return _plain(value) if is_identifier(key) else fmt_number(value.item() if hasattr(value, "item") else value, digits)
    if isinstance(value, pd.Series):
        value = value.to_dict()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Mapping):
        return "; ".join(f"{str(k).replace('_', ' ')}: {fmt_value(v, k, digits=digits)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if not items:
            return "none"
        if all(isinstance(v, list | tuple) for v in items):
            # pairs such as [variable, year]: "bmprison 1990; alcohol 1990"
            return "; ".join(" ".join(fmt_value(x, key if isinstance(x, str) or len(v) == 1 else "id", digits=digits)
                                      for x in v) for v in items)
        numbers = [float(v) for v in items if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(items) > 12 and len(numbers) == len(items) and not is_identifier(key):
            # a long vector (permutation draws, ...) is described, not dumped; results.json has every value
            middle = float(np.median(numbers))
            return (f"{len(items)} values: minimum {fmt_number(min(numbers), digits)}, median "
                    f"{fmt_number(middle, digits)}, maximum {fmt_number(max(numbers), digits)} (all in results.json)")
        return ", ".join(fmt_value(v, key, digits=digits) for v in items)
    if isinstance(value, pd.DataFrame):
        return f"table of {len(value)} rows"
    return str(value)
