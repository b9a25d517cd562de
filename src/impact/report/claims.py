"""What a report may claim about an estimate, in words.

A finding ("raised X by 0.76") is stated only when the interval excludes zero; otherwise the
sentence says that no effect was detected and gives the estimate and the interval that includes
zero. A design without an analytic interval (synthetic control with in-space placebos) is described
by its placebo p-value and rank, never by an interval it does not have. Estimands are named as the
literature names them (ATT, ATE, ITT, LATE/CACE).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from impact.report.format import fmt_estimate, fmt_p

__all__ = ["Claim", "estimand_short", "estimand_words", "headline_claim", "placebo_summary"]

_ESTIMAND_WORDS = {
    "ITT": "intention-to-treat effect: the effect of being assigned (offered) the programme, whether or not it was used",
    "LATE": "local average treatment effect (complier average causal effect): the effect on units that took part because they were assigned",
    "ATT": "average effect on the treated units",
    "ATE": "average effect over all units in the sample",
    "ATC": "average effect on the comparison units",
}


def estimand_short(estimand: str) -> str:
    """The estimand's acronym (``"ITT (intention-to-treat ...)"`` -> ``"ITT"``), or the text itself."""
    head = str(estimand).split("(")[0].split("/")[0].strip()
    return head if head.isupper() and len(head) <= 6 else str(estimand)


def estimand_words(estimand: str) -> str:
    """What the estimand means, in a phrase (empty if the package does not know it)."""
    return _ESTIMAND_WORDS.get(estimand_short(estimand), "")


@dataclass(frozen=True)
class PlaceboSummary:
    p_value: float
    rank: int | None
    units: int | None


def placebo_summary(diagnostics: Mapping[str, Any]) -> PlaceboSummary | None:
    """The in-space placebo p-value and rank recorded by a synthetic control, if any."""
    p = diagnostics.get("placebo_p_value")
    if p is None or not isinstance(p, int | float) or math.isnan(float(p)):
        return None
    rank, units = diagnostics.get("placebo_rank"), diagnostics.get("placebo_units")
    return PlaceboSummary(float(p), int(rank) if isinstance(rank, int | float) else None,
                          int(units) if isinstance(units, int | float) else None)


@dataclass(frozen=True)
class Claim:
    """A headline in words: ``sentence``, and whether the evidence supports a finding."""

    sentence: str
    finding: bool
    interval: str


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def headline_claim(
    *,
    estimand: str,
    estimate: float,
    std_error: float,
    conf_low: float,
    conf_high: float,
    level: float,
    what: str,
    unit: str = "",
    diagnostics: Mapping[str, Any] | None = None,
) -> Claim:
    """The headline sentence of one evaluation.

    ``what`` is the indicator's name (never a column name if a name is known) and ``unit`` its unit
    ("%" is read as percentage points of a share).
    """
    unit_text = str(unit or "")
    if unit_text.startswith("%"):
        unit_text = "percentage points" + unit_text[1:]
    unit_part = f" {unit_text}" if unit_text else ""
    short = estimand_short(estimand)
    se = std_error
    if not (isinstance(se, int | float) and math.isfinite(se) and se > 0):
        # bootstrap or test-inversion intervals: round to the precision the interval supports
        width = conf_high - conf_low
        se = width / (2 * 1.96) if math.isfinite(width) and width > 0 else None
    est = fmt_estimate(estimate, se)
    size = fmt_estimate(abs(estimate), se)
    subject = "being offered the programme" if short == "ITT" else "the programme"
    pct = f"{level:.0%}"
    if not (math.isfinite(conf_low) and math.isfinite(conf_high)):
        placebo = placebo_summary(diagnostics or {})
        direction = "above" if estimate > 0 else "below"
        gap = f"{what} was on average {size}{unit_part} {direction} its synthetic comparison after the start"
        if placebo is None:
            return Claim(f"Estimated {short}: {gap}; no interval or placebo test was computed, so the data "
                         "cannot say whether a gap this size is unusual.", False, "no interval")
        # placebo_units counts the placebos; the ranking is among them and the treated unit
        rank = (f"its post/pre RMSPE ratio ranks {_ordinal(placebo.rank)} of {placebo.units + 1} units "
                f"(the treated unit and {placebo.units} placebos)"
                if placebo.rank and placebo.units else "in the in-space placebo test")
        p_text = fmt_p(placebo.p_value)
        p_text = f"p {p_text}" if p_text.startswith("<") else f"p = {p_text}"
        unusual = placebo.p_value <= 1 - level
        verdict = ("a gap this large is rare among the placebo units" if unusual
                   else "placebo units show gaps this large often enough that it could be chance")
        return Claim(f"Estimated {short}: {gap}; {rank} ({p_text}), so {verdict}.", unusual, f"placebo {p_text}")
    interval = f"{pct} CI {fmt_estimate(conf_low, se)} to {fmt_estimate(conf_high, se)}"
    placebo = placebo_summary(diagnostics or {})
    ranked = ""
    if placebo is not None and placebo.rank and placebo.units:
        p_text = fmt_p(placebo.p_value)
        ranked = (f" In the in-space placebo test its post/pre RMSPE ratio ranks {_ordinal(placebo.rank)} of "
                  f"{placebo.units + 1} units (p {p_text if p_text.startswith('<') else '= ' + p_text}).")
    if conf_low > 0 or conf_high < 0:
        verb = "raised" if estimate > 0 else "lowered"
        return Claim(f"Estimated {short}: {subject} {verb} {what} by {size}{unit_part} ({interval}).{ranked}", True, interval)
    return Claim(
        f"No detectable effect on {what}: the estimated {short} is {est}{unit_part} and the {pct} CI "
        f"({fmt_estimate(conf_low, se)} to {fmt_estimate(conf_high, se)}) includes zero.{ranked}",
        False,
        interval,
    )
