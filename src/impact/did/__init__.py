"""did."""
from impact.did.event_study import event_study
from impact.did.pretrends import pretrend_test
from impact.did.bacon import bacon
from impact.did.sun_abraham import sun_abraham
from impact.did.imputation import did2s, imputation
from impact.did.honest import honest
