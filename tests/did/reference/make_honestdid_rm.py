"""Reference values for im.did.honest's relative-magnitudes tests from the honestdid 0.1.1 port of HonestDiD.

    pip install honestdid==0.1.1   # imports torch, cvxpy and sympy
    python tests/did/reference/make_honestdid_rm.py

Event study: im.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year",
cohort="first.treat", leads=3) (event times -3, -2, 0..3; e = -1 the reference); its estimates and
covariance are stored in the JSON so that the test needs neither the peer nor a re-estimate.
For each case the peer's call is

    honestdid.computeConditionalCS_DeltaRM(betahat, sigma, numPrePeriods, numPostPeriods, l_vec=l,
        Mbar=Mbar, alpha=0.05, hybrid_flag=<"LF" | "ARP">)   # grid: 1,000 points on +-20 sd(l'beta_post)

and the JSON keeps the grid and the accepted points (the confidence set is their hull). The one-post-period
case (betahat[:3]: e = -3, -2, 0) exercises the peer's test without nuisance parameters.

honestdid 0.1.1 calls float() on 1x1 arrays in its ARP tests, which numpy 2 refuses; the script
re-compiles those three functions with float(x) replaced by float of the array's single element (no change
in any value) before calling them.
"""

import inspect
import json
import re
import warnings
from pathlib import Path

import honestdid
import honestdid.core as core
import numpy as np

import impact as im

warnings.simplefilter("ignore")
core._scalar = lambda x: float(np.asarray(x).reshape(-1)[0])
for name in ("_lp_conditional_test_fn", "_test_in_identified_set", "_test_in_identified_set_LF_hybrid"):
    source = re.sub(r"(?<![\w.])float\(", "_scalar(", inspect.getsource(getattr(core, name)))
    exec(compile(source, core.__file__, "exec"), core.__dict__)

mpdta = im.datasets.load("mpdta")
es = im.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", leads=3)
tidy = es.tidy()
idx = np.flatnonzero((tidy["event_time"].notna() & ~tidy["reference"]).to_numpy())
event_time = tidy["event_time"].to_numpy()[idx]
beta, sigma = tidy["estimate"].to_numpy()[idx], es.vcov[np.ix_(idx, idx)]

cases = []
average, first = np.full(4, 0.25), np.array([1.0, 0, 0, 0])
plan = [(average, Mbar, "LF", 4) for Mbar in (0.5, 1.0, 1.5, 2.0)]
plan += [(first, 1.0, "LF", 4), (average, 1.0, "ARP", 4), (np.array([1.0]), 0.5, "LF", 1), (np.array([1.0]), 1.0, "LF", 1),
         (np.array([1.0]), 1.0, "ARP", 1)]
for l_vec, Mbar, flag, n_post in plan:
    b, V = beta[: 2 + n_post], sigma[: 2 + n_post, : 2 + n_post]
    ci = honestdid.computeConditionalCS_DeltaRM(b, V, 2, n_post, l_vec=l_vec, Mbar=Mbar, alpha=0.05, hybrid_flag=flag)
    grid, accept = ci["grid"].to_numpy(), ci["accept"].to_numpy().astype(bool)
    cases.append({"l_vec": l_vec.tolist(), "Mbar": Mbar, "hybrid_flag": flag, "n_post": n_post,
                  "grid_low": float(grid[0]), "grid_high": float(grid[-1]), "grid_points": len(grid),
                  "accepted": np.flatnonzero(accept).tolist(),
                  "conf_low": float(grid[accept].min()), "conf_high": float(grid[accept].max())})
    print(flag, Mbar, l_vec, cases[-1]["conf_low"], cases[-1]["conf_high"])
out = {"source": f"honestdid {getattr(honestdid, '__version__', '0.1.1')} (PyPI)", "event_time": event_time.tolist(),
       "betahat": beta.tolist(), "sigma": sigma.tolist(), "cases": cases}
(Path(__file__).parent / "honestdid_rm.json").write_text(json.dumps(out, indent=1))
