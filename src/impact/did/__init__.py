"""Difference-in-differences: 2x2, two-way fixed effects, event studies and staggered adoption."""

from impact.did.twfe import twfe
from impact.did.att_gt import ATTGTResult, att_gt
from impact.did.drdid import drdid
from impact.did.ddd import ddd
from impact.did.dose_response import DoseResponseResult, dose_response
from impact.did.ddd_gt import DDDGTResult, ddd_gt
from impact.did.event_study import event_study
from impact.did.pretrends import pretrend_test
from impact.did.bacon import bacon
from impact.did.sun_abraham import sun_abraham
from impact.did.imputation import imputation
from impact.did.imputation import did2s
from impact.did.honest import honest
from impact.did.out_of_core import att_gt_from_duckdb, twfe_from_duckdb

__all__ = [
    "twfe",
    "att_gt",
    "ATTGTResult",
    "drdid",
    "ddd",
    "dose_response",
    "DoseResponseResult",
    "ddd_gt",
    "DDDGTResult",
    "event_study",
    "pretrend_test",
    "bacon",
    "sun_abraham",
    "imputation",
    "did2s",
    "honest",
    "att_gt_from_duckdb",
    "twfe_from_duckdb",
]
