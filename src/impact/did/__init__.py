"""Difference-in-differences: 2x2, two-way fixed effects, event studies and staggered adoption."""

from impact.did.att_gt import ATTGTResult, att_gt
from impact.did.bacon import bacon
from impact.did.drdid import drdid
from impact.did.event_study import event_study
from impact.did.imputation import did2s, imputation
from impact.did.pretrends import pretrend_test
from impact.did.sun_abraham import sun_abraham
from impact.did.twfe import twfe

__all__ = ["ATTGTResult", "att_gt", "bacon", "did2s", "drdid", "event_study", "imputation", "pretrend_test",
           "sun_abraham", "twfe"]
