"""Pooling across programmes and regions (meta-analysis) and explaining their differences
(meta-regression).

:func:`pool` combines ``k`` independent estimates of one quantity (random or equal effects, optionally
by subgroup); :func:`regress` relates them to study characteristics (moderators). Numbers follow R
``metafor::rma`` so that they can be checked against it.
"""

from impact.meta._pool import POOLED_TERM, MetaResult, Method, forest_plot, pool

__all__ = ["MetaResult", "Method", "POOLED_TERM", "forest_plot", "pool"]
