"""Simulated demonstration data: innovation grants awarded to firms scoring at least 70 of 100.

Run ``python data/make_innovation_grants.py`` to (re)write, deterministically,

* ``data/innovation_grants.csv``        one row per applicant firm (2,400 firms)
* ``data/innovation_grants_truth.json`` the true effects at the threshold

Everything is simulated; the programme is fictitious. All randomness comes from one
``numpy.random.Generator`` seeded with ``SEED``.

Data-generating process
=======================
A regional innovation-grant call receives 2,400 applications. Three assessors score each
application from 0 to 100 (whole points); the application ``score`` is their mean, so it moves in
steps of 1/3. Applications scoring at least 70 are awarded a grant (``grant`` = 1): a sharp
regression discontinuity. The score depends on firm characteristics, so firms far above and far
below the threshold differ; at the threshold they do not.

Pre-application characteristics: ``employees_2019`` (log-normal, median 12), ``rd_before``
(1 = did R&D in 2017-2019, probability rising with size), ``lan_code`` (21 län codes).
Quality q ~ N(0, 1); each assessor gives clip(round(60 + 9 q + 2 log(employees) + 4 rd_before +
N(0, 6^2)), 0, 100).

Outcomes three years after the decision:

    emp_growth = 1.5 + 0.10 (score - 70) + 0.002 (score - 70)^2 + 0.8 rd_before + 0.5 q
                 + 4.0 grant + N(0, 6^2)                                 (employment growth, %)
    P(innovation = 1) = clip(0.25 + 0.006 (score - 70) + 0.10 rd_before + 0.12 grant, 0.01, 0.99)

so the effect at the threshold is 4.0 percentage points of employment growth and 0.12 on the
probability of introducing a product or process innovation (RCR03 at firm level). The effects do
not vary with the score, so the effect at the threshold equals the effect for every awarded firm;
the design only identifies it at the threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SEED = 20261129
N_FIRMS = 2400
THRESHOLD = 70.0
EFFECT_EMP = 4.0
EFFECT_INNOVATION = 0.12
HERE = Path(__file__).resolve().parent
LAN = ["01", "03", "04", "05", "06", "07", "08", "09", "10", "12", "13", "14", "17", "18", "19", "20", "21", "22",
       "23", "24", "25"]


def main() -> None:
    rng = np.random.default_rng(SEED)
    employees = np.round(np.exp(rng.normal(np.log(12), 0.9, N_FIRMS))).clip(1, 2000).astype(int)
    rd_before = (rng.random(N_FIRMS) < 1 / (1 + np.exp(-(-1.2 + 0.35 * np.log(employees))))).astype(int)
    lan = rng.choice(LAN, N_FIRMS)
    quality = rng.normal(0, 1, N_FIRMS)
    assessors = np.clip(np.round(60 + 9 * quality[:, None] + 2 * np.log(employees)[:, None] + 4 * rd_before[:, None]
                                 + rng.normal(0, 6, (N_FIRMS, 3))), 0, 100)
    score = np.round(assessors.mean(axis=1), 4)
    grant = (score >= THRESHOLD).astype(int)
    centred = score - THRESHOLD
    emp_growth = (1.5 + 0.10 * centred + 0.002 * centred**2 + 0.8 * rd_before + 0.5 * quality
                  + EFFECT_EMP * grant + rng.normal(0, 6, N_FIRMS))
    p_innov = np.clip(0.25 + 0.006 * centred + 0.10 * rd_before + EFFECT_INNOVATION * grant, 0.01, 0.99)
    innovation = (rng.random(N_FIRMS) < p_innov).astype(int)
    ids = [f"F{i:05d}" for i in range(1, N_FIRMS + 1)]
    lines = ["firm_id,lan_code,employees_2019,rd_before,score,grant,emp_growth,innovation"]
    for row in zip(ids, lan, employees, rd_before, score, grant, np.round(emp_growth, 3), innovation):
        lines.append(",".join(str(v) for v in row))
    (HERE / "innovation_grants.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    truth = {
        "generator": "data/make_innovation_grants.py", "seed": SEED, "n_firms": N_FIRMS, "threshold": THRESHOLD,
        "effects_at_threshold": {"emp_growth": EFFECT_EMP, "innovation": EFFECT_INNOVATION},
        "note": "Effects are constant in the score: the RD estimand (effect at the threshold) equals them.",
        "awarded": int(grant.sum()),
    }
    (HERE / "innovation_grants_truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
