"""Difference-in-differences: 2x2, two-way fixed effects, event studies and staggered adoption."""

from impact.did.twfe import twfe
from impact.did.event_study import event_study
from impact.did.pretrends import pretrend_test
from impact.did.bacon import bacon
from impact.did.sun_abraham import sun_abraham
from impact.did.imputation import did2s, imputation
from impact.did.honest import honest

__all__ = ["twfe"]
__all__ += ["event_study"]
__all__ += ["pretrend_test"]
__all__ += ["bacon"]
__all__ += ["sun_abraham"]
__all__ += ["imputation", "did2s"]
__all__ += ["honest"]
