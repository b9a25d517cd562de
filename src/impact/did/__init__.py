"""did."""

from impact.did.att_gt import ATTGTResult, att_gt
from impact.did.drdid import drdid
