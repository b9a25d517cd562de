"""Matching and weighting designs: propensity-score and Mahalanobis nearest-neighbour matching,
exact and coarsened exact matching, inverse probability weighting, augmented IPW, entropy
balancing, balance diagnostics and matched difference-in-differences."""

from impact.matching._results import BalanceResult
from impact.matching.balance import balance_table
from impact.matching.did import MatchedDiDResult, matched_did
from impact.matching.match import Matching, match
from impact.matching.propensity import ScoreModel, crump_threshold, fit_score
from impact.matching.weighting import aipw, entropy_balance, ipw

__all__ = ["match", "ipw", "aipw", "entropy_balance", "matched_did", "MatchedDiDResult", "Matching", "BalanceResult", "balance_table", "fit_score", "ScoreModel", "crump_threshold"]
