"""Follow-up (monitoring): indicators with baselines, targets and actual values, rolled up across regions.

``read(data, indicators=())`` validates long records (DataFrame, CSV/Parquet, IATI 2.03 activity XML)
against the indicator library and the region hierarchy and returns an immutable
:class:`Monitoring`; ``.rollup(by=[...], cumulative=False)`` aggregates each indicator by the rule
its library row states (``sum``, ``mean``, ``weighted_mean``, ``last``, ``none``).
"""

from impact.monitoring.additionality import additionality
from impact.monitoring.hierarchy import RegionHierarchy, sweden
from impact.monitoring.records import KINDS, RECORD_COLUMNS, Monitoring, read
from impact.monitoring.rollup import BY_LEVELS, ROLLUP_COLUMNS

__all__ = [
    "read",
    "Monitoring",
    "additionality",
    "RegionHierarchy",
    "sweden",
    "KINDS",
    "RECORD_COLUMNS",
    "ROLLUP_COLUMNS",
    "BY_LEVELS",
]
