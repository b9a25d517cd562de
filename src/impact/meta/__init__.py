"""Pooling across programmes and regions (meta-analysis) and explaining their differences
(meta-regression).

:func:`pool` combines ``k`` independent estimates of one quantity (random or equal effects, optionally
by subgroup); :func:`regress` relates them to study characteristics (moderators). Numbers follow R
``metafor::rma`` so that they can be checked against it.
"""

from impact.meta._pool import POOLED_TERM, MetaResult, Method, forest_plot, pool
from impact.meta._regress import MetaRegressionResult, PermutationTest, bubble_plot, regress

__all__ = [
    "POOLED_TERM", "MetaRegressionResult", "MetaResult", "Method", "PermutationTest", "bubble_plot", "forest_plot",
    "pool", "regress",
]
