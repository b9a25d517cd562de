"""Difference-in-differences: 2x2, two-way fixed effects, event studies and staggered adoption."""

from impact.did.twfe import twfe

__all__ = ["twfe"]
