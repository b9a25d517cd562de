"""impact: counterfactual impact evaluation of public programmes.

Designs live in sub-modules named after what they estimate: ``impact.did`` (difference-in-differences),
``impact.matching`` (matching and weighting), ``impact.rct`` (randomised trials), ``impact.synth``
(synthetic control) and ``impact.meta`` (pooling across programmes and regions).
"""

from impact import datasets, did, errors, inference, matching, meta, monitoring, rct, rd, synth
from impact.results import Result, compare

__version__ = "0.1.0"
__all__ = ["did", "matching", "rct", "rd", "synth", "meta", "monitoring", "errors", "inference", "datasets", "Result", "compare", "__version__"]
