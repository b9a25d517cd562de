"""Regression discontinuity: local polynomial estimates with robust bias-corrected inference."""

from impact.rd.rdd import RDResult, rdd

__all__ = ["rdd", "RDResult"]
