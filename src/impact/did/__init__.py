"""Difference-in-differences: 2x2, two-way fixed effects, event studies and staggered adoption."""

from impact.did.twfe import twfe
from impact.did.att_gt import ATTGTResult, att_gt
from impact.did.drdid import drdid

__all__ = [
    "twfe",
    "att_gt",
    "ATTGTResult",
    "drdid",
]
