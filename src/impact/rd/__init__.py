"""Regression discontinuity: local polynomial estimates with robust bias-corrected inference,
data-driven RD plots, a manipulation (density) test, covariate balance and placebo cutoffs."""

from impact.rd.checks import balance, placebo_cutoffs
from impact.rd.density import DensityTest, density_test
from impact.rd.plot import RDPlot, rdplot
from impact.rd.rdd import RDResult, rdd

__all__ = ["rdd", "RDResult", "rdplot", "RDPlot", "density_test", "DensityTest", "balance", "placebo_cutoffs"]
