"""Reference values for im.did.dose_response from diff-diff 3.13.0 (PyPI) ContinuousDiD.

    pip install diff-diff==3.13.0 && python tests/did/reference/make_diffdiff_dose.py

Data: diff-diff's own generator, written next to this script so the tests do not need diff-diff:
  dose_single.csv     generate_continuous_did_data(n_units=200, seed=42)   (the docstring example of
                      ContinuousDiD: one cohort, period 2 of 4, lognormal doses, ATT(d) = 1 + 2 d)
  dose_staggered.csv  generate_continuous_did_data(n_units=300, n_periods=5, cohort_periods=[2, 4],
                      att_function="quadratic", seed=42)
Each case below is ContinuousDiD(<options>).fit(data, outcome="outcome", unit="unit", time="period",
first_treat="first_treat", dose="dose", aggregate="eventstudy") with analytic standard errors
(n_bootstrap=0); the JSON keeps the overall ATT/ACRT with SEs, ATT(d) and ACRT(d) with SEs on the
default grid, and the event study.
"""

import json
import warnings
from pathlib import Path

import diff_diff
import numpy as np

HERE = Path(__file__).parent
warnings.simplefilter("ignore")  # the deprecation notice of fit(aggregate=)

single = diff_diff.generate_continuous_did_data(n_units=200, seed=42)
staggered = diff_diff.generate_continuous_did_data(n_units=300, n_periods=5, cohort_periods=[2, 4],
                                                   att_function="quadratic", seed=42)
single.to_csv(HERE / "dose_single.csv", index=False)
staggered.to_csv(HERE / "dose_staggered.csv", index=False)

CASES = {
    "single_default": ("dose_single.csv", {}),
    "staggered_default": ("dose_staggered.csv", {}),
    "staggered_notyet": ("dose_staggered.csv", {"control_group": "not_yet_treated"}),
    "staggered_universal_knots": ("dose_staggered.csv", {"base_period": "universal", "num_knots": 2}),
    "staggered_linear": ("dose_staggered.csv", {"degree": 1}),
    "staggered_anticipation": ("dose_staggered.csv", {"anticipation": 1, "degree": 2}),
}
out = {"source": f"diff-diff {diff_diff.__version__}", "cases": {}}
for name, (path, options) in CASES.items():
    import pandas as pd

    data = pd.read_csv(HERE / path)
    res = diff_diff.ContinuousDiD(**options).fit(data, outcome="outcome", unit="unit", time="period",
                                                  first_treat="first_treat", dose="dose", aggregate="eventstudy")
    out["cases"][name] = {
        "data": path,
        "call": f"ContinuousDiD(**{options}).fit(data, outcome='outcome', unit='unit', time='period', "
                "first_treat='first_treat', dose='dose', aggregate='eventstudy')",
        "options": options,
        "overall_att": res.overall_att, "overall_att_se": res.overall_att_se,
        "overall_acrt": res.overall_acrt, "overall_acrt_se": res.overall_acrt_se,
        "dose_grid": np.asarray(res.dose_grid).tolist(),
        "att_d": res.dose_response_att.effects.tolist(), "att_d_se": res.dose_response_att.se.tolist(),
        "acrt_d": res.dose_response_acrt.effects.tolist(), "acrt_d_se": res.dose_response_acrt.se.tolist(),
        "event_study": {str(int(e)): [v["effect"], v["se"]] for e, v in res.event_study_effects.items()},
    }
(HERE / "diffdiff_dose.json").write_text(json.dumps(out, indent=1))
