"""Regression discontinuity: local polynomial estimates with robust bias-corrected inference,
data-driven RD plots, covariate balance at the cutoff and placebo cutoffs."""

from impact.rd.checks import balance, placebo_cutoffs
from impact.rd.plot import RDPlot, rdplot
from impact.rd.rdd import RDResult, rdd

__all__ = ["rdd", "RDResult", "rdplot", "RDPlot", "balance", "placebo_cutoffs"]
