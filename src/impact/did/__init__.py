"""did."""

from impact.did.att_gt import ATTGTResult as ATTGTResult
from impact.did.att_gt import att_gt as att_gt
from impact.did.drdid import drdid as drdid
