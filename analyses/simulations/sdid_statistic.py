"""Which studentisation for sdid's randomisation test? The candidates, side by side on the same fits.

A script, not a test: ``nice -n 19 .venv/bin/python analyses/simulations/sdid_statistic.py`` writes
``sdid_statistic.csv`` (about 45 minutes on a shared, loaded 2-core machine); ``--markdown`` prints the
README table from it.

Every candidate is a randomisation test over the same assignments of the adoption pattern, with the
estimator (weights and regularisation included) refitted for each assignment once; the candidates
differ only in the statistic ``|tau| / s`` computed from those fits (a randomisation p-value is exact
under random assignment for any statistic, so what separates them is power, and how far each drifts
when the treated regions are noisier than the rest, where no test is exact):

* ``raw``: ``s = 1`` (the unstudentised permutation of ``|tau|``);
* ``pre-period RMSPE``: ``s^2`` the mean squared pre-period gap between the treated mean and its
  weighted controls, net of the intercept (the default before 2026-11-29; ADH's ratio idea), with
  ``T0 - 1`` degrees of freedom;
* ``per-unit pre-period`` (**the default**, ``impact.synth.sdid``): each treated unit's mean squared
  pre-period gap to the weighted controls (net of its mean), averaged over the N1 treated units and
  divided by N1 (``N1 (T0 - 1)`` degrees of freedom); only pre-period outcomes enter. It leaves out
  the controls' noise, so it is conservative when the treated regions are noisier;
* ``pre + post net of a line``: the treated mean's pre-period fit pooled with its post-period gap net
  of its mean and a linear trend (``T0 - 1 + T1 - 2`` degrees of freedom); tried first, rejected: an
  effect that ramps up and levels off inflates it;
* ``pre + post net of the mean``: as the last, with the post-period gap net of its mean only.

Design: ``synth_size.simulate`` (20 regions x 12 years, region and year effects, a common factor with
region loadings, AR(1) errors; homoskedastic, heteroskedastic, or treated regions noisier). Targets
on the same panels: size (no effect), a constant effect ``--effect`` (1.5), and an effect that ramps
up and levels off, ``0.5 min(e + 1, 4)`` in event time ``e = 0, 1, ...`` (0.5, 1, 1.5, 2, 2: mean 1.4
over a block design's five post-years; the shape of the se_innovation demo). 100 random assignments
per test (every assignment with one treated region: 20).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import synth_size  # noqa: E402  (the same panels as the size table)

sdid_module = importlib.import_module("impact.synth.sdid")

CONFIGS = [(1, "block"), (3, "block"), (8, "block"), (3, "staggered"), (8, "staggered")]
ERRORS = ("homoskedastic", "heteroskedastic", "treated noisier")
STATISTICS = ("raw", "pre-period RMSPE", "per-unit pre-period", "pre + post net of a line", "pre + post net of the mean")
DEFAULT = "per-unit pre-period"


def _scales(Yfull: np.ndarray, draws, cohorts: list, intercept: bool) -> dict[str, np.ndarray]:
    """Each candidate's squared scale (K,) for every assignment, from the assignments' own fits."""
    labels, T = draws.labels, Yfull.shape[1]
    sizes = [len(c[1]) for c in cohorts]
    n_control = Yfull.shape[0] - sum(sizes)
    control_rows = np.argsort(labels != -1, axis=1, kind="stable")[:, :n_control]
    weights = np.array([size * (T - T0) for size, (_, _, T0) in zip(sizes, cohorts)], dtype=float)
    share = weights / weights.sum()
    out = {name: np.zeros(labels.shape[0]) for name in STATISTICS[1:]}
    for k, ((_, _, T0), size) in enumerate(zip(cohorts, sizes)):
        treated_rows = np.argsort(labels != k, axis=1, kind="stable")[:, :size]
        synthetic = np.einsum("bn,bnt->bt", draws.omegas[k], Yfull[control_rows])
        units = Yfull[treated_rows] - synthetic[:, None, :]  # (K, N1, T) each treated unit's gap
        gap = units.mean(axis=1)
        pre, post = gap[:, :T0], gap[:, T0:] - gap[:, T0:].mean(axis=1, keepdims=True)
        unit_pre = units[:, :, :T0]
        if intercept:
            pre = pre - pre.mean(axis=1, keepdims=True)
            unit_pre = unit_pre - unit_pre.mean(axis=2, keepdims=True)
        trend = np.arange(T - T0) - (T - T0 - 1) / 2
        off_line = post - np.outer(post @ trend / (trend @ trend), trend)
        out["pre-period RMSPE"] += share[k] * np.mean(pre**2, axis=1)
        out["per-unit pre-period"] += share[k] * np.mean(unit_pre**2, axis=(1, 2)) / size
        out["pre + post net of a line"] += share[k] * (np.sum(pre**2, axis=1) + np.sum(off_line**2, axis=1)) / (T - 3)
        out["pre + post net of the mean"] += share[k] * (np.sum(pre**2, axis=1) + np.sum(post**2, axis=1)) / (T - 2)
    # the package's own scale is the default candidate, recomputed here independently
    assert np.allclose(out[DEFAULT], draws.scales, rtol=1e-9), "per-unit scale differs from impact.synth.sdid's"
    return out


def p_values(frame: pd.DataFrame, D: np.ndarray, permutations: int, seed: int) -> dict[str, float]:
    """Randomisation p-value of every candidate statistic for one panel (the same fits for all)."""
    Y = frame.pivot(index="unit", columns="year", values="y").to_numpy()
    ever = D.max(axis=1) > 0
    first = np.where(ever, np.argmax(D > 0, axis=1), -1)
    cohorts = [(a, np.flatnonzero(first == a), int(a)) for a in sorted(set(first[ever].tolist()))]
    cfg = sdid_module._config("sdid")
    draws = sdid_module._randomisation(Y, D.astype(float), first, cohorts, cfg, permutations,
                                       np.random.default_rng(seed))
    size = np.abs(draws.estimates)
    stats = {"raw": size} | {name: size / np.sqrt(s) for name, s in _scales(Y, draws, cohorts, cfg.omega_intercept).items()}
    return {name: float(np.mean(s >= s[0] * (1 - 1e-12))) for name, s in stats.items()}


def run(reps: int, seed: int, effect: float, permutations: int, errors: tuple[str, ...], out: Path) -> pd.DataFrame:
    rows = []
    for kind in errors:
        for n_treated, adoption in CONFIGS:
            rng = np.random.default_rng([seed, n_treated, len(adoption), ERRORS.index(kind)])
            hits: dict[tuple[str, str], list[bool]] = {}
            started = time.perf_counter()
            for rep in range(reps):
                frame, D = synth_size.simulate(rng, n_treated, adoption, kind)
                event_time = np.arange(D.shape[1])[None, :] - np.argmax(D > 0, axis=1)[:, None]
                ramp = np.where(D > 0, 0.5 * np.minimum(event_time + 1, 4), 0.0).ravel()
                targets = {"size": frame, "power, constant effect": frame.assign(y=frame["y"] + effect * frame["treated"]),
                           "power, ramp then plateau": frame.assign(y=frame["y"] + ramp)}
                for target, data in targets.items():
                    for name, p in p_values(data, D, permutations, rep).items():
                        hits.setdefault((name, target), []).append(p <= synth_size.ALPHA)
            for (name, target), h in hits.items():
                rate = float(np.mean(h))
                rows.append({"errors": kind, "adoption": adoption, "treated": n_treated, "statistic": name,
                             "default": name == DEFAULT, "quantity": target, "replications": len(h),
                             "rejection_rate": rate, "mc_std_error": float(np.sqrt(rate * (1 - rate) / len(h)))})
            print(f"{kind}, {n_treated} treated ({adoption}): {reps} replications in {time.perf_counter() - started:.0f}s", flush=True)
            pd.DataFrame(rows).to_csv(out, index=False)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """One row per error design and statistic; cells 'size / constant / ramp' per configuration."""
    configs = [c for c in CONFIGS if ((table["treated"] == c[0]) & (table["adoption"] == c[1])).any()]
    head = ["errors", "statistic"] + [f"{t} {a}" for t, a in configs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind in ERRORS:
        for name in STATISTICS:
            part = table.loc[(table["errors"] == kind) & (table["statistic"] == name)]
            if part.empty:
                continue
            cells = []
            for n_treated, adoption in configs:
                cell = part.loc[(part["treated"] == n_treated) & (part["adoption"] == adoption)].set_index("quantity")["rejection_rate"]
                cells.append(" / ".join(f"{cell.get(q, np.nan):.3f}" for q in ("size", "power, constant effect", "power, ramp then plateau")))
            label = f"**{name}** (default)" if name == DEFAULT else name
            lines.append(f"| {kind} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--effect", type=float, default=1.5)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--errors", choices=ERRORS, action="append", help="error designs (default: all three)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("sdid_statistic.csv"))
    parser.add_argument("--markdown", action="store_true", help="print the README table from the CSV and stop")
    args = parser.parse_args()
    if not args.markdown:
        run(args.reps, args.seed, args.effect, args.permutations, tuple(args.errors or ERRORS), args.out)
    print(markdown(pd.read_csv(args.out)))


if __name__ == "__main__":
    main()
