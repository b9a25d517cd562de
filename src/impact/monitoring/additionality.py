"""Where follow-up meets evaluation: the net-to-gross ratio and the cost per net outcome.

A programme counts a *gross* outcome in the supported entities (RCR01: jobs created in supported
firms). An evaluation estimates the *net* effect, what the programme caused, in the same unit. Their
ratio is the additionality (net-to-gross) ratio; resources over the net effect is the cost per net
outcome. Both are ratios with an estimated quantity in them, so their intervals come from Fieller's
theorem, which inverts the test of ``a - rho * b = 0`` and is exact when (a, b) are jointly normal;
the delta-method interval is reported beside it. When the net effect's interval covers zero the cost
per net outcome has no finite upper bound, and the Fieller set says so instead of printing a number.

References
----------
Fieller, E. C. (1954). Some problems in interval estimation. *Journal of the Royal Statistical
Society B* 16(2), 175-185. doi:10.1111/j.2517-6161.1954.tb00159.x
Polsky, D., Glick, H. A., Willke, R. and Schulman, K. (1997). Confidence intervals for
cost-effectiveness ratios: a comparison of four methods. *Health Economics* 6(3), 243-252.
doi:10.1002/(SICI)1099-1050(199705)6:3<243::AID-HEC269>3.0.CO;2-Z
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

from impact.errors import DataError

__all__ = ["RatioInterval", "Additionality", "fieller", "delta_ratio", "additionality"]


@dataclass(frozen=True)
class RatioInterval:
    """An estimated ratio with its Fieller set and delta-method interval.

    ``shape`` is ``"bounded"`` (the Fieller set is ``[low, high]``), ``"unbounded"`` (it is the two
    rays ``(-inf, low] and [high, inf)``: the denominator is not distinguishable from zero) or
    ``"everything"`` (no information about the ratio at this level).
    """

    estimate: float
    low: float
    high: float
    shape: str
    delta_low: float
    delta_high: float
    delta_std_error: float
    level: float

    def describe(self, digits: int = 3) -> str:
        """The interval in words, e.g. ``0.41 (95% Fieller CI 0.30 to 0.52)``."""
        f = lambda x: f"{x:,.{digits}g}"  # noqa: E731
        pct = f"{self.level:.0%}"
        if self.shape == "bounded":
            return f"{f(self.estimate)} ({pct} Fieller CI {f(self.low)} to {f(self.high)})"
        if self.shape == "unbounded":
            return f"{f(self.estimate)} ({pct} Fieller set unbounded: below {f(self.low)} or above {f(self.high)})"
        return f"{f(self.estimate)} ({pct} Fieller set: every value; the data say nothing about it at this level)"


def _critical(level: float, df: float | None) -> float:
    if not 0 < level < 1:
        raise DataError(f"level={level!r} must lie strictly between 0 and 1 (e.g. 0.95).")
    tail = (1 + level) / 2
    return float(stats.t.ppf(tail, df)) if df is not None and math.isfinite(df) and df > 0 else float(stats.norm.ppf(tail))


def delta_ratio(a: float, b: float, var_a: float, var_b: float, cov: float = 0.0) -> float:
    """Delta-method standard error of a / b."""
    rho = a / b
    return math.sqrt(max(var_a - 2 * rho * cov + rho**2 * var_b, 0.0)) / abs(b)


def fieller(a: float, b: float, var_a: float, var_b: float, cov: float = 0.0, *, level: float = 0.95, df: float | None = None) -> RatioInterval:
    """Fieller's confidence set for rho = a / b (and the delta-method interval beside it).

    The set is every rho with (a - rho b)^2 <= q^2 (var_a - 2 rho cov + rho^2 var_b), q the normal
    (or t with ``df``) critical value.
    """
    for name, v in (("a", a), ("b", b), ("var_a", var_a), ("var_b", var_b), ("cov", cov)):
        if not math.isfinite(v):
            raise DataError(f"fieller(): {name} = {v!r} is not a finite number.")
    if var_a < 0 or var_b < 0:
        raise DataError("fieller(): variances cannot be negative.")
    if b == 0:
        raise DataError("fieller(): the denominator estimate is zero, so the ratio is undefined.")
    q = _critical(level, df)
    se = delta_ratio(a, b, var_a, var_b, cov)
    rho = a / b
    qa = b * b - q * q * var_b
    qb = a * b - q * q * cov
    qc = a * a - q * q * var_a
    disc = qb * qb - qa * qc
    if qa > 0:
        root = math.sqrt(max(disc, 0.0))
        low, high, shape = (qb - root) / qa, (qb + root) / qa, "bounded"
    elif disc > 0:
        root = math.sqrt(disc)
        r1, r2 = sorted(((qb - root) / qa, (qb + root) / qa))
        low, high, shape = r1, r2, "unbounded"
    else:
        low, high, shape = -math.inf, math.inf, "everything"
    return RatioInterval(rho, low, high, shape, rho - q * se, rho + q * se, se, level)


@dataclass(frozen=True)
class Additionality:
    """Net effect, gross outcome, their ratio and the cost per net outcome for one indicator pair."""

    gross_indicator: str
    net_evaluation: str
    unit: str
    gross: float
    net: float
    net_std_error: float
    net_to_gross: RatioInterval
    resources: float | None
    resources_unit: str | None
    cost_per_net: RatioInterval | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def additionality(
    *,
    gross: float,
    net: float,
    net_std_error: float,
    gross_indicator: str,
    net_evaluation: str,
    unit: str,
    gross_std_error: float = 0.0,
    resources: float | None = None,
    resources_unit: str | None = None,
    level: float = 0.95,
    df: float | None = None,
) -> Additionality:
    """Net-to-gross ratio net / gross and cost per net outcome resources / net, with Fieller intervals.

    ``gross`` is the monitored total (a count: ``gross_std_error`` 0 unless it comes from a sample);
    ``net`` the evaluated net effect in the same unit and over the same entities and period, with its
    standard error (and ``df`` when the evaluation's inference uses a t distribution).
    """
    if not math.isfinite(net_std_error) or net_std_error < 0:
        raise DataError(f"the net effect's standard error {net_std_error!r} must be a finite non-negative number.")
    if gross <= 0:
        raise DataError(f"the gross outcome {gross_indicator} totals {gross:g}; a net-to-gross ratio needs a positive gross figure.")
    ratio = fieller(net, gross, net_std_error**2, gross_std_error**2, level=level, df=df)
    cost = None
    if resources is not None:
        if not math.isfinite(resources) or resources < 0:
            raise DataError(f"resources {resources!r} must be a finite non-negative number.")
        if net == 0:
            raise DataError("the net effect is exactly zero: the cost per net outcome is undefined.")
        cost = fieller(resources, net, 0.0, net_std_error**2, level=level, df=df)
    return Additionality(gross_indicator, net_evaluation, unit, gross, net, net_std_error, ratio, resources, resources_unit, cost)
