"""Randomised trials: assignment, design-based estimators, randomisation inference, non-compliance,
attrition, multiple outcomes and power (in the spirit of R's DeclareDesign stack: randomizr,
estimatr, ri2)."""

from impact.rct._common import RCTResult
from impact.rct.assignment import Assignment, assign
from impact.rct.attrition import attrition_test, lee_bounds
from impact.rct.estimators import difference_in_means, lin, regression
from impact.rct.multiple import multiple_outcomes
from impact.rct.noncompliance import late
from impact.rct.power import PowerAnalysis, PowerSimulation, power, simulate_power
from impact.rct.randomization import balance_table, randomization_test

__all__ = ["RCTResult", "Assignment", "assign", "difference_in_means", "lin", "regression", "randomization_test", "balance_table", "late", "lee_bounds", "attrition_test", "multiple_outcomes", "power", "simulate_power", "PowerAnalysis", "PowerSimulation"]
