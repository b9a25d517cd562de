"""Reference value for im.did.ddd without covariates from diff-diff 3.13.0 (PyPI).

    pip install diff-diff==3.13.0 && python tests/did/reference/make_diffdiff_ddd.py
Writes diffdiff_ddd.json: diff_diff.triple_difference(data, outcome="y", group="s", partition="q",
time="t") on the seeded simulated panel of tests/did/test_ddd.py (seed 0, 4,000 units, 2 periods).
Without covariates every DDD estimator is the triple difference of cell means, so the ATT must agree;
diff-diff's 2x2 treats rows as repeated cross-sections (R triplediff, panel = FALSE), so its
standard error is not the panel one and is stored for information only.
"""

import json
import sys
from pathlib import Path

import diff_diff

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_ddd import simulate  # noqa: E402

res = diff_diff.triple_difference(simulate(seed=0), outcome="y", group="s", partition="q", time="t")
out = {"source": f"diff-diff {diff_diff.__version__}",
       "call": 'triple_difference(data, outcome="y", group="s", partition="q", time="t")',
       "att": float(res.att), "se_repeated_cross_sections": float(res.se)}
(Path(__file__).parent / "diffdiff_ddd.json").write_text(json.dumps(out, indent=1))
