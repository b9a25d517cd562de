"""Simulated demonstration data: regional development money per capita that varies across the 21 län.

Run ``python data/make_sweden_funding.py`` to (re)write, deterministically,

* ``data/sweden_funding.csv``        one row per län and year, 2012-2024 (21 x 13 = 273 rows)
* ``data/sweden_funding_truth.json`` the true dose-response and its averages

Everything is simulated; the programme is fictitious. All randomness comes from one
``numpy.random.Generator`` seeded with ``SEED``.

Data-generating process
=======================
A regional development fund pays 15 of the 21 län; 8 start in 2016 and 7 in 2019, 6 län receive
nothing. Each funded län gets a fixed amount per inhabitant for the whole programme,
``funding_ksek_per_capita`` (thousand SEK per inhabitant, the dose), drawn uniformly on [0.3, 2.5];
less money goes to län with higher employment (a difference in levels, which differences remove).
Employment rate (percent of the population aged 20-64):

    NB_EMPRATE[r, t] = 78 + a_r + 0.25 (t - 2012) + c_t + u[r, t] + 1{t >= start_r} ATT(d_r)
    ATT(d) = 1.6 d - 0.3 d^2     (percentage points; concave: diminishing returns)
    ACRT(d) = 1.6 - 0.6 d        (points per extra thousand SEK per inhabitant)

with län effects a_r ~ N(0, 2^2), common year shocks c_t ~ N(0, 0.3^2) and AR(1) noise u (rho 0.5,
innovation sd 0.25). Untreated trends do not depend on the dose (strong parallel trends hold) and
the effect is constant from the start year on, so ATT(d) and ACRT(d) are the same in every
post-treatment year. The truth file gives ATT(d) and ACRT(d) at a grid of doses and the sample
averages over the funded län, ATT^o = mean ATT(d_r) and ACRT^o = mean ACRT(d_r).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

SEED = 20261130
YEARS = np.arange(2012, 2025)
HERE = Path(__file__).resolve().parent
SLOPE, CURVATURE = 1.6, -0.3  # ATT(d) = SLOPE d + CURVATURE d^2


def att(d: np.ndarray | float) -> np.ndarray | float:
    return SLOPE * d + CURVATURE * np.square(d)


def acrt(d: np.ndarray | float) -> np.ndarray | float:
    return SLOPE + 2 * CURVATURE * np.asarray(d)


def main() -> None:
    rng = np.random.default_rng(SEED)
    with open(HERE / "regions" / "sweden_lan.csv", encoding="utf-8") as f:
        lan = list(csv.DictReader(f))
    codes = [r["code"] for r in lan]
    names = {r["code"]: r["name"] for r in lan}
    n, T = len(codes), len(YEARS)
    level = rng.normal(0, 2, n)
    order = rng.permutation(n)
    start = np.zeros(n, int)
    start[order[:8]] = 2016
    start[order[8:15]] = 2019
    funded = start > 0
    # less money per inhabitant where employment is already high (a level difference)
    raw = rng.uniform(0.3, 2.5, n)
    rank_level = np.argsort(np.argsort(-level[funded]))
    dose = np.zeros(n)
    dose[funded] = np.sort(raw[funded])[rank_level]
    dose = np.round(dose, 3)
    population = np.round(np.exp(rng.normal(np.log(300_000), 0.6, n)), -2)
    year_shock = rng.normal(0, 0.3, T)
    u = np.zeros((n, T))
    u[:, 0] = rng.normal(0, 0.25 / np.sqrt(1 - 0.25), n)
    for t in range(1, T):
        u[:, t] = 0.5 * u[:, t - 1] + rng.normal(0, 0.25, n)
    post = funded[:, None] & (YEARS[None, :] >= start[:, None])
    y = 78 + level[:, None] + 0.25 * (YEARS - 2012)[None, :] + year_shock[None, :] + u + post * att(dose)[:, None]
    rows = []
    for i, code in enumerate(codes):
        for t, year in enumerate(YEARS):
            paid = dose[i] * population[i] / 1000 / (2024 - start[i] + 1) if post[i, t] else 0.0
            rows.append([code, names[code], int(year), int(population[i]), f"{dose[i]:.3f}", int(start[i]),
                         int(post[i, t]), f"{y[i, t]:.3f}", f"{paid:.2f}"])
    with open(HERE / "sweden_funding.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["region_code", "region_name", "year", "population", "funding_ksek_per_capita", "start_year",
                         "funded", "NB_EMPRATE", "NB_BUDGET"])
        writer.writerows(rows)
    grid = np.round(np.arange(0.25, 2.51, 0.25), 2)
    truth = {
        "generator": "data/make_sweden_funding.py",
        "seed": SEED,
        "dose": "funding_ksek_per_capita (thousand SEK per inhabitant, fixed per län)",
        "outcome": "NB_EMPRATE (percent)",
        "att_function": f"ATT(d) = {SLOPE} d + ({CURVATURE}) d^2 in every year from the start on",
        "acrt_function": f"ACRT(d) = {SLOPE} + {2 * CURVATURE} d",
        "att_d": {f"{d:g}": round(float(att(d)), 6) for d in grid},
        "acrt_d": {f"{d:g}": round(float(acrt(d)), 6) for d in grid},
        "att_overall": round(float(np.mean(att(dose[funded]))), 6),
        "acrt_overall": round(float(np.mean(acrt(dose[funded]))), 6),
        "definitions": {
            "att_overall": "ATT^o: mean of ATT(d) over the 15 funded län at their doses (every post year the same)",
            "acrt_overall": "ACRT^o: mean of ACRT(d) over the 15 funded län at their doses",
        },
        "regions": {code: {"start_year": int(start[i]), "funding_ksek_per_capita": float(dose[i])}
                    for i, code in enumerate(codes) if funded[i]},
    }
    (HERE / "sweden_funding_truth.json").write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n",
                                                    encoding="utf-8")


if __name__ == "__main__":
    main()
