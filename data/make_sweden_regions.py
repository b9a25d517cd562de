"""Simulated demonstration data: Sweden's 21 regions (län) 2010-2024 and a firm-level voucher trial.

Run ``python data/make_sweden_regions.py`` to (re)write, deterministically,

* ``data/sweden_regions.csv``        region x year panel (21 x 15 = 315 rows)
* ``data/sweden_firms.csv``          randomised business-advice voucher trial (~3,000 firms)
* ``data/sweden_regions_truth.json`` the true effects built into both files
* ``data/sweden_monitoring.csv``     follow-up records (baselines, targets, actuals) of the four
                                     demonstration programmes, per project (one per län) and year

Everything is simulated. Region codes and names are the real ones and the population and
structural figures are of a realistic order of magnitude, but none of the numbers are official
statistics and the three programmes are fictitious. Only numpy (plus the standard library) is
used, and all randomness comes from one ``numpy.random.Generator`` seeded with ``SEED``.

Data-generating process
=======================

Notation: regions i = 1..21, years t = 2010..2024, X_i fixed pre-period characteristics
(``manuf_2010`` = manufacturing share of employment 2010 in %, ``tertiary_2010`` = share of
25-64 year olds with tertiary education 2010 in %, ``urban`` = 1 for Stockholm, Skåne and
Västra Götaland). Centred versions: m_i = manuf_2010 - 15, s_i = tertiary_2010 - 27.

Untreated potential outcomes
----------------------------
Employment rate 20-64 (%) and new firms per 1,000 inhabitants are additive two-way models, so
parallel trends hold *unconditionally*; the characteristics X_i shift levels only:

    NB_EMPRATE_it(0)  = 79.0 + 0.20 s_i + 0.05 m_i + u_i   + d_t   + e_it
    NB_NEWFIRMS_it(0) =  7.6 + 0.12 s_i - 0.08 m_i + v_i   + c_t   + n_it

with u_i ~ N(0, 1.0^2), v_i ~ N(0, 0.6^2) region effects, d_t, c_t common year effects (a
gentle trend plus a 2020 shock), and e_it, n_it stationary AR(1) errors,
x_it = 0.4 x_i,t-1 + w_it, with stationary s.d. 0.25 (EMPRATE) and 0.20 (NEWFIRMS) multiplied
by k_i = clip(sqrt(300,000 / population_i,2010), 0.6, 2) so that small regions are noisier.

Gross regional product per capita (thousand SEK, constant prices) follows a linear factor
model, the setting in which synthetic control is justified:

    NB_GRPPC_it(0) = mu_i + g_t + lambda_i1 f_1t + lambda_i2 f_2t + r_it,   r_it ~ N(0, 1.5^2)

g_t is a common path (1.4 % a year on a base of 400, with a 2020 dip), f_1t = (t - 2017) / 7 a
divergence factor, f_2t an AR(1) "commodity cycle" (coefficient 0.6, innovation s.d. 8).
mu_i is set by hand (Stockholm highest, Norrbotten high because of mining);
lambda_i1 ~ N(0, 10^2) + 20 urban_i, lambda_i2 ~ N(0.5 + 0.04 m_i, 0.3^2); the loadings are
drawn after programme selection and the skills regions' loadings are shifted so that their mean
equals that of their comparison regions (all others except 24), which keeps the 2x2 DiD
estimand of the skills programme's null effect on NB_GRPPC exactly zero.
For the synthetic-control region (24 Västerbotten) the triple (mu, lambda_1, lambda_2) is set
to an exact convex combination sum_j w_j (mu_j, lambda_j1, lambda_j2) of four donors with
w ~ Dirichlet(2, 2, 2, 2), so it lies inside the convex hull of the other 20 regions and a
synthetic control reproduces its untreated path up to the noise r_it. The weights are stored
in the truth file (other weight vectors can fit almost as well).

Population grows as P_it = P_i,2010 exp(rho_i (t - 2010)), rho_i ~ N(0.006, 0.004^2)
(+0.004 for urban regions); ``share_manufacturing`` = manuf_2010 - 0.12 (t - 2010) + N(0, 0.3^2).

Programmes and selection (on observables, not on trends)
---------------------------------------------------------
Region 24 is fixed as the innovation programme (``inno``) region. The business support
programme (``bsp``) draws 7 of the other 20 regions without replacement with probabilities
proportional to exp(0.25 m_i - 0.10 s_i) (Gumbel top-k); in draw order the first 2 start in
2014, the next 3 in 2016, the last 2 in 2019. The skills programme (``skills``) draws 5 of the
remaining 13 with probabilities proportional to exp(-0.25 s_i - 0.5 urban_i), all starting
2018. Selection depends only on X_i, which move levels, never trends, so DiD (with or without
matching on X_i) is valid. The three sets of regions are disjoint and treatment is absorbing.

Treatment effects (event time e = t - G_i, G_i = first treated year)
--------------------------------------------------------------------
    bsp,    NB_NEWFIRMS: tau_it = a_g * min(e + 1, 4),  a_2014 = 0.30, a_2016 = 0.20, a_2019 = 0.10
    bsp,    NB_EMPRATE:  tau_it = b_g * min(e + 1, 4),  b_2014 = 0.25, b_2016 = 0.20, b_2019 = 0.15
    inno,   NB_GRPPC:    tau_it = 5 * min(e + 1, 4)   (thousand SEK)
    skills, NB_EMPRATE:  tau_it = 0.8                  (percentage points, every post year)
    skills, NB_GRPPC:    tau_it = 0                    (a true null)

for e >= 0 and 0 before. All other programme/outcome combinations have no effect. Because the
bsp effects grow with exposure and differ by cohort, two-way fixed effects is biased (already
treated regions act as controls) while Callaway-Sant'Anna with never-treated controls is not.
Because bsp and skills both move NB_EMPRATE, regions of the *other* programme must be left out
of the comparison group for that outcome (``exclude_from_controls`` in the truth file).

Observed Y_it = Y_it(0) + tau_it; outcomes are rounded (EMPRATE, NEWFIRMS 2 d.p.; GRPPC 1 d.p.).

Monitoring (per region-year of the programme running there; zero otherwise)
---------------------------------------------------------------------------
NB_BUDGET (MSEK) = (base_p + share_p * P_it / 1,000) * q_it, q_it ~ U(0.8, 1.2), with a ramp-up
factor 0.5 in the first year; RCO01 ~ Poisson(firms_per_MSEK_p * NB_BUDGET); each supported
enterprise gets grant only / non-financial only / both with programme-specific probabilities
(multinomial), so RCO02 = grant + both, RCO04 = non-financial + both, and
RCO01 = RCO02 + RCO04 - both; RCR01 ~ Poisson(jobs_per_firm_p * RCO01_i,t-1). These gross
monitoring figures are not calibrated to the net impacts above (as in real programmes).

Firm-level voucher trial (``sweden_firms.csv``)
-----------------------------------------------
N firms spread over the 21 regions (at least 40 per region, otherwise in proportion to
population). Baseline: sector (6 categories), firm_age ~ 1 + Gamma(2, 5) years (integer),
employees_0 = max(1, round(LogNormal(log 6, 0.9))), turnover_0 (MSEK) =
employees_0 * LogNormal(log 1.4 + sector shift, 0.4).

Assignment Z_i: complete randomisation within each region (block), half of each block
(the odd unit to either arm with probability 1/2).
Compliance types: always-takers 5 %, never-takers 30 %, compliers 65 %, independent of
everything, so P(D = 1 | Z = 1) = 0.70 and P(D = 1 | Z = 0) = 0.05.

Potential outcomes two years on, with h_i = 1{employees_0 < 10}:

    growth_i(0) = 3 - 0.08 (firm_age_i - 10) + sector shift + 5 z1_i           (%, 2-year)
    growth_i(1) = growth_i(0) + delta_i,  delta_i = 4 + 2 h_i + N(0, 1.5^2)
    emp2_i(d)   = max(0, round(employees_0 exp(0.01 growth_i(0) + 0.15 z2_i) + d * 0.6))

with z1, z2 independent N(0, 1). Observed outcome Y_i = Y_i(D_i(Z_i)).
Attrition: with U_i ~ U(0, 1), response R_i(z) = 1{U_i > p_i(z)},
p_i(z) = logistic(-2.25 - 0.55 z - 0.35 std(growth_i(0))). Since p_i(1) < p_i(0) for every
firm, assignment can only prevent attrition (Lee's monotonicity); attrition is about 10 % in
the control arm and 6 % in the treatment arm, and low-growth firms drop out more. Outcomes of
non-responders are missing.

Finite-sample truths (computed from the simulated potential outcomes) are stored next to the
design values: ITT, complier effect (LATE), and the ITT among always-responders (the target of
Lee bounds).

Follow-up records (``sweden_monitoring.csv``)
---------------------------------------------
Long records ``programme, project, region, indicator, period, kind, value, unit, note`` (the format of
``impact.monitoring``), drawn after everything above from a second generator seeded with
``[SEED, 13]`` so that the other files do not change. Programmes are named by their spec ids; each
runs one project per län (``BSP-06``, ``INNO-24``, ``SKILLS-09``, ``TVV-01``, ...).

* Actual values are the simulated ones: NB_BUDGET, RCO01, RCO02, RCO04 and RCR01 from the region
  panel for every year from the programme's start; NB_ADVICEHRS = RCO04 x U(14, 18) hours;
  RCO10 (innovation) ~ Binomial(RCO01, 0.4). The regional context indicators the effect chains
  name (NB_EMPRATE, NB_NEWFIRMS for bsp; NB_EMPRATE for skills; NB_GRPPC for inno) are monitored
  as observed, with NB_POP (the population column) as their weight, and a baseline = the value in the
  year before the start.
* Targets were "set at the start": for programme counts, the project's mean actual over its full
  years times U(0.95, 1.25) per project and indicator (half of it in the start year); for the context
  indicators, baseline + the programme's planned contribution (bsp: 0.25 pp x min(e+1, 4) employment
  and 0.2 x min(e+1, 4) new firms per 1,000; skills: 0.8 pp; inno: 5 x min(e+1, 4) thousand SEK).
  These are gross regional figures: they move with the common trend, which is why monitoring against
  a target says nothing about what the programme caused.
* The voucher trial (se_vouchers, offer in 2022, follow-up in 2024): SE-TVV_OFFERS = firms offered a
  voucher, SE-TVV_VOUCHERS = RCO04 = firms that used one (2022, target 75 % of offers), NB_BUDGET =
  0.05 MSEK per voucher used, and SE-TVV_JOBS (2024) = the gross change in employees of responding
  firms that used a voucher, sum of employees_2 - employees_0, target 1 per voucher used. The
  evaluation's ITT on employees times the number of offers is the net figure in the same unit.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

SEED = 20240917
GENERATOR_VERSION = "1.0.0"

YEARS = np.arange(2010, 2025)
N_FIRMS = 3000
OUT_DIR = Path(__file__).resolve().parent

# code, name, population 2010 (approx.), manuf_2010 (%), tertiary_2010 (%), urban,
# mu for GRP per capita 2010 (thousand SEK, constant prices; None = built from donors)
REGIONS = [
    ("01", "Stockholm", 2_054_000, 6.0, 38.0, 1, 590.0),
    ("03", "Uppsala", 336_000, 9.0, 36.0, 0, 405.0),
    ("04", "Södermanland", 271_000, 17.0, 22.0, 0, 350.0),
    ("05", "Östergötland", 429_000, 15.0, 27.0, 0, 395.0),
    ("06", "Jönköping", 337_000, 23.0, 22.0, 0, 385.0),
    ("07", "Kronoberg", 184_000, 20.0, 24.0, 0, 395.0),
    ("08", "Kalmar", 233_000, 19.0, 21.0, 0, 360.0),
    ("09", "Gotland", 57_000, 8.0, 23.0, 0, 345.0),
    ("10", "Blekinge", 153_000, 19.0, 23.0, 0, 365.0),
    ("12", "Skåne", 1_243_000, 11.0, 30.0, 1, 400.0),
    ("13", "Halland", 302_000, 14.0, 25.0, 0, 370.0),
    ("14", "Västra Götaland", 1_580_000, 15.0, 28.0, 1, 445.0),
    ("17", "Värmland", 274_000, 17.0, 22.0, 0, 360.0),
    ("18", "Örebro", 281_000, 15.0, 24.0, 0, 375.0),
    ("19", "Västmanland", 252_000, 20.0, 23.0, 0, 380.0),
    ("20", "Dalarna", 277_000, 17.0, 21.0, 0, 370.0),
    ("21", "Gävleborg", 277_000, 17.0, 20.0, 0, 360.0),
    ("22", "Västernorrland", 242_000, 15.0, 22.0, 0, 385.0),
    ("23", "Jämtland", 127_000, 8.0, 23.0, 0, 355.0),
    ("24", "Västerbotten", 259_000, 13.0, 28.0, 0, None),
    ("25", "Norrbotten", 249_000, 12.0, 23.0, 0, 480.0),
]
INNO_REGION = "24"
INNO_START = 2017
INNO_DONORS = ["03", "05", "22", "25"]  # used to build region 24's factor loadings
BSP_COHORTS = [(2014, 2), (2016, 3), (2019, 2)]
SKILLS_START = 2018
N_SKILLS = 5

BSP_A = {2014: 0.30, 2016: 0.20, 2019: 0.10}  # NB_NEWFIRMS, per 1,000 inhabitants
BSP_B = {2014: 0.25, 2016: 0.20, 2019: 0.15}  # NB_EMPRATE, percentage points
INNO_C = 5.0  # NB_GRPPC, thousand SEK per exposure step
SKILLS_EMP = 0.8  # NB_EMPRATE, percentage points
GRP_NOISE_SD = 1.5  # idiosyncratic noise in NB_GRPPC
LAM1_SD, LAM1_URBAN = 10.0, 20.0  # loadings on the divergence factor
F2_SD = 8.0  # innovation s.d. of the commodity-cycle factor
RAMP_CAP = 4  # effects grow as min(e + 1, RAMP_CAP)

# monitoring parameters: base MSEK, MSEK per 1,000 inhabitants, firms per MSEK,
# P(grant only, non-financial only, both), jobs per supported firm (next year)
MONITORING = {
    "bsp": dict(base=8.0, per_kpop=0.06, firms_per_msek=2.5, mix=(0.35, 0.40, 0.25), jobs=0.8),
    "skills": dict(base=5.0, per_kpop=0.03, firms_per_msek=4.0, mix=(0.0, 1.0, 0.0), jobs=0.3),
    "inno": dict(base=45.0, per_kpop=0.0, firms_per_msek=1.2, mix=(0.50, 0.10, 0.40), jobs=0.5),
}

SECTORS = ["manufacturing", "construction", "retail", "ict", "business_services", "hospitality"]
SECTOR_PROB = [0.15, 0.17, 0.20, 0.10, 0.25, 0.13]
SECTOR_GROWTH = [0.0, 1.0, -1.0, 4.0, 2.0, -0.5]  # shift in 2-year turnover growth (%)
SECTOR_PROD = [0.25, 0.0, 0.10, 0.15, 0.0, -0.35]  # shift in log turnover per employee


def ramp(e: np.ndarray) -> np.ndarray:
    """Exposure profile min(e + 1, RAMP_CAP) for e >= 0, 0 before."""
    return np.where(e >= 0, np.minimum(e + 1, RAMP_CAP), 0).astype(float)


def ar1(rng: np.random.Generator, n: int, t: int, sd: np.ndarray, rho: float = 0.4) -> np.ndarray:
    """n stationary AR(1) series of length t with stationary s.d. ``sd`` (length n)."""
    out = np.empty((n, t))
    innov_sd = sd * np.sqrt(1 - rho**2)
    out[:, 0] = rng.normal(0.0, sd)
    for k in range(1, t):
        out[:, k] = rho * out[:, k - 1] + rng.normal(0.0, innov_sd)
    return out


def gumbel_top_k(rng: np.random.Generator, logits: np.ndarray, k: int) -> np.ndarray:
    """Indices of k draws without replacement, probabilities proportional to exp(logits), in draw order."""
    keys = logits + rng.gumbel(size=logits.shape)
    return np.argsort(-keys, kind="stable")[:k]


def aggregate(att: dict[tuple[int, int], float], sizes: dict[int, int]) -> dict:
    """Aggregations of post-period ATT(g, t), weighting cohorts by their number of regions."""
    post = {(g, t): v for (g, t), v in att.items() if t >= g}
    w = {gt: sizes[gt[0]] for gt in post}
    simple = sum(w[gt] * post[gt] for gt in post) / sum(w.values())
    ev: dict[int, float] = {}
    for e in sorted({t - g for g, t in post}):
        cells = [(g, t) for g, t in post if t - g == e]
        ev[e] = sum(sizes[g] * post[(g, t)] for g, t in cells) / sum(sizes[g] for g, _ in cells)
    coh = {}
    for g in sorted(sizes):
        vals = [v for (gg, t), v in post.items() if gg == g]
        coh[g] = sum(vals) / len(vals)
    cal = {}
    for t in sorted({t for _, t in post}):
        cells = [(g, tt) for g, tt in post if tt == t]
        cal[t] = sum(sizes[g] * post[(g, tt)] for g, tt in cells) / sum(sizes[g] for g, _ in cells)
    n = sum(sizes.values())
    return {
        "simple": simple,
        "event_time": {str(e): v for e, v in ev.items()},
        "dynamic_overall": float(np.mean(list(ev.values()))),
        "cohort": {str(g): v for g, v in coh.items()},
        "cohort_overall": sum(sizes[g] * coh[g] for g in coh) / n,
        "calendar": {str(t): v for t, v in cal.items()},
        "calendar_overall": float(np.mean(list(cal.values()))),
    }


def twfe_noise_free(d: np.ndarray, tau: np.ndarray) -> float:
    """Coefficient on D of a TWFE regression of tau * D on D with region and year effects (balanced)."""
    dd = d - d.mean(1, keepdims=True) - d.mean(0, keepdims=True) + d.mean()
    return float((dd * tau * d).sum() / (dd * d).sum())


def r(x: float, nd: int = 6) -> float:
    return float(round(float(x), nd))


def simulate_regions(rng: np.random.Generator):
    n, T = len(REGIONS), len(YEARS)
    codes = [x[0] for x in REGIONS]
    names = [x[1] for x in REGIONS]
    pop0 = np.array([x[2] for x in REGIONS], float)
    manuf = np.array([x[3] for x in REGIONS])
    tert = np.array([x[4] for x in REGIONS])
    urban = np.array([x[5] for x in REGIONS])
    m, s = manuf - 15.0, tert - 27.0
    tt = (YEARS - 2010)[None, :]
    idx = {c: k for k, c in enumerate(codes)}

    # population and time-varying manufacturing share
    rho = rng.normal(0.006, 0.004, n) + 0.004 * urban
    pop = np.round(pop0[:, None] * np.exp(rho[:, None] * tt), -2).astype(int)
    share_manuf = np.round(manuf[:, None] - 0.12 * tt + rng.normal(0, 0.3, (n, T)), 2)
    k_noise = np.clip(np.sqrt(300_000 / pop0), 0.6, 2.0)

    # untreated employment rate and new firm formation
    u = rng.normal(0, 1.0, n)
    v = rng.normal(0, 0.6, n)
    d_t = 0.22 * (YEARS - 2010) + np.where(YEARS == 2020, -1.3, 0) + np.where(YEARS == 2021, -0.6, 0)
    c_t = 0.04 * (YEARS - 2010) + np.where(YEARS == 2020, 0.4, 0) + np.where(YEARS == 2021, 0.6, 0)
    emp0 = (79.0 + 0.20 * s + 0.05 * m + u)[:, None] + d_t[None, :] + ar1(rng, n, T, 0.25 * k_noise)
    nf0 = (7.6 + 0.12 * s - 0.08 * m + v)[:, None] + c_t[None, :] + ar1(rng, n, T, 0.20 * k_noise)

    # programme selection on observables
    start = {"bsp": np.zeros(n, int), "inno": np.zeros(n, int), "skills": np.zeros(n, int)}
    j = idx[INNO_REGION]
    start["inno"][j] = INNO_START
    pool = np.array([k for k in range(n) if k != j])
    n_bsp = sum(c for _, c in BSP_COHORTS)
    drawn = pool[gumbel_top_k(rng, 0.25 * m[pool] - 0.10 * s[pool], n_bsp)]
    pos = 0
    for g, c in BSP_COHORTS:
        start["bsp"][drawn[pos : pos + c]] = g
        pos += c
    pool2 = np.array([k for k in pool if start["bsp"][k] == 0])
    drawn2 = pool2[gumbel_top_k(rng, -0.25 * s[pool2] - 0.5 * urban[pool2], N_SKILLS)]
    start["skills"][drawn2] = SKILLS_START

    # GRP per capita: factor model
    g_t = 400.0 * (1.014 ** (YEARS - 2010) - 1) + np.where(YEARS == 2020, -14.0, 0) + np.where(YEARS == 2021, -5.0, 0)
    f1 = (YEARS - 2017) / 7.0
    f2 = np.empty(T)
    f2[0] = rng.normal(0, F2_SD / np.sqrt(1 - 0.36))
    for k in range(1, T):
        f2[k] = 0.6 * f2[k - 1] + rng.normal(0, F2_SD)
    mu = np.array([np.nan if x[6] is None else x[6] for x in REGIONS])
    lam1 = rng.normal(0, LAM1_SD, n) + LAM1_URBAN * urban
    lam2 = rng.normal(0.5 + 0.04 * m, 0.3)
    # centre the skills regions' loadings on those of their comparison regions, so that the
    # skills programme's null effect on NB_GRPPC is not masked by diverging factor paths
    sk = start["skills"] > 0
    comp = ~sk & (np.arange(n) != j)
    lam1[sk] += lam1[comp].mean() - lam1[sk].mean()
    lam2[sk] += lam2[comp].mean() - lam2[sk].mean()
    donor_idx = [idx[c] for c in INNO_DONORS]
    w_true = rng.dirichlet(np.full(len(donor_idx), 2.0))
    mu[j] = w_true @ mu[donor_idx]
    lam1[j] = w_true @ lam1[donor_idx]
    lam2[j] = w_true @ lam2[donor_idx]
    grp0 = mu[:, None] + g_t[None, :] + lam1[:, None] * f1[None, :] + lam2[:, None] * f2[None, :]
    grp0 = grp0 + rng.normal(0, GRP_NOISE_SD, (n, T))

    # treatment effects
    def event(p):
        st = start[p][:, None]
        return np.where(st > 0, YEARS[None, :] - st, -999)

    e_bsp, e_inno, e_sk = event("bsp"), event("inno"), event("skills")
    a = np.array([BSP_A.get(g, 0.0) for g in start["bsp"]])[:, None]
    b = np.array([BSP_B.get(g, 0.0) for g in start["bsp"]])[:, None]
    tau = {
        ("bsp", "NB_NEWFIRMS"): a * ramp(e_bsp),
        ("bsp", "NB_EMPRATE"): b * ramp(e_bsp),
        ("inno", "NB_GRPPC"): INNO_C * ramp(e_inno),
        ("skills", "NB_EMPRATE"): SKILLS_EMP * (e_sk >= 0),
        ("skills", "NB_GRPPC"): 0.0 * (e_sk >= 0),
    }
    emp = emp0 + tau[("bsp", "NB_EMPRATE")] + tau[("skills", "NB_EMPRATE")]
    nf = nf0 + tau[("bsp", "NB_NEWFIRMS")]
    grp = grp0 + tau[("inno", "NB_GRPPC")] + tau[("skills", "NB_GRPPC")]

    # monitoring
    mon = {k: np.zeros((n, T), int) for k in ["RCO01", "RCO02", "RCO04", "RCR01"]}
    budget = np.zeros((n, T))
    for p, par in MONITORING.items():
        for i in np.flatnonzero(start[p]):
            for k, y in enumerate(YEARS):
                e = y - start[p][i]
                if e < 0:
                    continue
                bud = (par["base"] + par["per_kpop"] * pop[i, k] / 1000) * rng.uniform(0.8, 1.2)
                bud *= 0.5 if e == 0 else 1.0
                budget[i, k] = round(bud, 1)
                firms = rng.poisson(par["firms_per_msek"] * budget[i, k])
                g_only, nf_only, both = rng.multinomial(firms, par["mix"])
                mon["RCO01"][i, k] = firms
                mon["RCO02"][i, k] = g_only + both
                mon["RCO04"][i, k] = nf_only + both
                prev = mon["RCO01"][i, k - 1] if e > 0 else 0
                mon["RCR01"][i, k] = rng.poisson(par["jobs"] * prev)

    programme = np.array(
        ["bsp" if start["bsp"][i] else "inno" if start["inno"][i] else "skills" if start["skills"][i] else "none" for i in range(n)]
    )
    rows = []
    for i in range(n):
        for k, y in enumerate(YEARS):
            rows.append(
                [
                    codes[i], names[i], int(y), int(pop[i, k]), int(urban[i]), f"{share_manuf[i, k]:.2f}",
                    f"{manuf[i]:.1f}", f"{tert[i]:.1f}", programme[i],
                    int(start["bsp"][i]), int(start["bsp"][i] > 0 and y >= start["bsp"][i]),
                    int(start["inno"][i]), int(start["inno"][i] > 0 and y >= start["inno"][i]),
                    int(start["skills"][i]), int(start["skills"][i] > 0 and y >= start["skills"][i]),
                    f"{emp[i, k]:.2f}", f"{grp[i, k]:.1f}", f"{nf[i, k]:.2f}",
                    mon["RCO01"][i, k], mon["RCO02"][i, k], mon["RCO04"][i, k], mon["RCR01"][i, k],
                    f"{budget[i, k]:.1f}",
                ]
            )
    header = [
        "region_code", "region_name", "year", "population", "urban", "share_manufacturing",
        "manuf_2010", "tertiary_2010", "programme",
        "bsp_start", "bsp_treated", "inno_start", "inno_treated", "skills_start", "skills_treated",
        "NB_EMPRATE", "NB_GRPPC", "NB_NEWFIRMS", "RCO01", "RCO02", "RCO04", "RCR01", "NB_BUDGET",
    ]

    # truth
    truth_prog = {}
    labels = {"bsp": "Business support programme", "inno": "Regional innovation programme", "skills": "Skills programme"}
    formulas = {
        ("bsp", "NB_NEWFIRMS"): "a_g * min(e + 1, 4), a = " + json.dumps({str(k): v for k, v in BSP_A.items()}),
        ("bsp", "NB_EMPRATE"): "b_g * min(e + 1, 4), b = " + json.dumps({str(k): v for k, v in BSP_B.items()}),
        ("inno", "NB_GRPPC"): f"{INNO_C} * min(e + 1, 4)",
        ("skills", "NB_EMPRATE"): f"{SKILLS_EMP} for e >= 0",
        ("skills", "NB_GRPPC"): "0 (true null)",
    }
    units = {"NB_NEWFIRMS": "new firms per 1,000 inhabitants", "NB_EMPRATE": "percentage points", "NB_GRPPC": "thousand SEK per capita"}
    for p in ["bsp", "inno", "skills"]:
        treated = np.flatnonzero(start[p])
        cohorts = sorted({int(start[p][i]) for i in treated})
        sizes = {g: int((start[p] == g).sum()) for g in cohorts}
        other = [q for q in ["bsp", "inno", "skills"] if q != p]
        outs = {}
        for (pp, y), tmat in tau.items():
            if pp != p:
                continue
            tmat = np.broadcast_to(tmat, (n, T))
            att = {}
            for g in cohorts:
                members = np.flatnonzero(start[p] == g)
                for k, yr in enumerate(YEARS):
                    att[(g, int(yr))] = float(tmat[members, k].mean())
            agg = aggregate(att, sizes)
            entry = {
                "unit": units[y],
                "effect": formulas[(p, y)],
                "att_gt": [
                    {"cohort": g, "year": t, "event_time": t - g, "att": r(v)} for (g, t), v in sorted(att.items())
                ],
                "att_simple": r(agg["simple"]),
                "att_event_time": {e: r(x) for e, x in agg["event_time"].items()},
                "att_dynamic_overall": r(agg["dynamic_overall"]),
                "att_cohort": {g: r(x) for g, x in agg["cohort"].items()},
                "att_cohort_overall": r(agg["cohort_overall"]),
                "att_calendar": {t: r(x) for t, x in agg["calendar"].items()},
                "att_calendar_overall": r(agg["calendar_overall"]),
            }
            # regions of other programmes that move this outcome must not serve as controls
            excl = sorted(
                codes[i]
                for q in other
                if (q, y) in tau and np.any(np.broadcast_to(tau[(q, y)], (n, T)) != 0)
                for i in np.flatnonzero(start[q])
            )
            entry["exclude_from_controls"] = excl
            # noise-free TWFE estimand on the clean sample
            keep = np.array([c not in excl for c in codes])
            dmat = np.where(start[p][:, None] > 0, YEARS[None, :] >= start[p][:, None], False).astype(float)
            entry["twfe_noise_free_clean_sample"] = r(twfe_noise_free(dmat[keep], tmat[keep]))
            outs[y] = entry
        excl_all = sorted({c for o in outs.values() for c in o["exclude_from_controls"]})
        truth_prog[p] = {
            "label": labels[p],
            "start_column": f"{p}_start",
            "treated_column": f"{p}_treated",
            "regions": {codes[i]: int(start[p][i]) for i in treated},
            "cohort_sizes": {str(g): c for g, c in sizes.items()},
            "exclude_from_controls": excl_all,
            "outcomes": outs,
            "no_effect_on": sorted({"NB_EMPRATE", "NB_GRPPC", "NB_NEWFIRMS"} - set(outs)),
        }
    truth_prog["inno"]["true_donor_weights"] = {INNO_DONORS[k]: r(w_true[k]) for k in range(len(INNO_DONORS))}
    truth_prog["inno"]["note"] = (
        "Region 24's factor loadings and fixed effect are this convex combination of the donors'; "
        "other weight vectors can fit the pre-period almost equally well."
    )
    return header, rows, truth_prog, {"pop": pop, "codes": codes}


def simulate_firms(rng: np.random.Generator, pop: np.ndarray, codes: list[str]):
    n_reg = len(codes)
    p2010 = pop[:, 0].astype(float)
    base = 40
    extra = N_FIRMS - base * n_reg
    alloc = np.floor(extra * p2010 / p2010.sum()).astype(int)
    alloc[np.argsort(-(extra * p2010 / p2010.sum() - alloc))[: extra - alloc.sum()]] += 1
    counts = base + alloc
    region = np.repeat(np.arange(n_reg), counts)
    N = len(region)

    sector = rng.choice(len(SECTORS), size=N, p=SECTOR_PROB)
    age = (1 + rng.gamma(2.0, 5.0, N)).round().astype(int)
    emp0 = np.maximum(1, np.round(rng.lognormal(np.log(6), 0.9, N))).astype(int)
    turnover0 = np.round(emp0 * rng.lognormal(np.log(1.4) + np.array(SECTOR_PROD)[sector], 0.4), 2)

    # block randomisation within region
    z = np.zeros(N, int)
    for k in range(n_reg):
        members = np.flatnonzero(region == k)
        perm = rng.permutation(members)
        n_t = len(members) // 2 + (rng.random() < 0.5 if len(members) % 2 else 0)
        z[perm[:n_t]] = 1

    # compliance types: 0 never, 1 complier, 2 always
    ctype = rng.choice(3, size=N, p=[0.30, 0.65, 0.05])
    d0 = (ctype == 2).astype(int)
    d1 = (ctype >= 1).astype(int)
    d = np.where(z == 1, d1, d0)

    small = (emp0 < 10).astype(float)
    z1, z2 = rng.normal(size=N), rng.normal(size=N)
    g0 = 3.0 - 0.08 * (age - 10) + np.array(SECTOR_GROWTH)[sector] + 5.0 * z1
    delta = 4.0 + 2.0 * small + rng.normal(0, 1.5, N)
    g1 = g0 + delta
    latent = emp0 * np.exp(0.01 * g0 + 0.15 * z2)
    e0 = np.maximum(0, np.round(latent)).astype(int)
    e1 = np.maximum(0, np.round(latent + 0.6)).astype(int)
    g0r, g1r = np.round(g0, 2), np.round(g1, 2)

    # monotone attrition
    u = rng.random(N)
    gstd = (g0 - g0.mean()) / g0.std()
    p_att = lambda zz: 1 / (1 + np.exp(-(-2.25 - 0.55 * zz - 0.35 * gstd)))  # noqa: E731
    r0, r1 = (u > p_att(0)).astype(int), (u > p_att(1)).astype(int)
    resp = np.where(z == 1, r1, r0)

    y_g = np.where(d == 1, g1r, g0r)
    y_e = np.where(d == 1, e1, e0)
    header = [
        "firm_id", "region_code", "sector", "firm_age", "employees_0", "turnover_0",
        "assigned", "takeup", "responded", "turnover_growth", "employees_2",
    ]
    rows = []
    for i in range(N):
        rows.append(
            [
                f"F{i + 1:05d}", codes[region[i]], SECTORS[sector[i]], int(age[i]), int(emp0[i]), f"{turnover0[i]:.2f}",
                int(z[i]), int(d[i]), int(resp[i]),
                f"{y_g[i]:.2f}" if resp[i] else "", str(int(y_e[i])) if resp[i] else "",
            ]
        )

    # truths: Y_i(z) = Y_i(D_i(z))
    yg_z1, yg_z0 = np.where(d1 == 1, g1r, g0r), np.where(d0 == 1, g1r, g0r)
    ye_z1, ye_z0 = np.where(d1 == 1, e1, e0), np.where(d0 == 1, e1, e0)
    comp = ctype == 1
    always_resp = (r0 == 1) & (r1 == 1)
    truth = {
        "n_firms": int(N),
        "design": {
            "randomisation": "complete randomisation within region blocks, 50 %",
            "takeup_assigned": 0.70,
            "takeup_control": 0.05,
            "compliance_shares": {"never_takers": 0.30, "compliers": 0.65, "always_takers": 0.05},
            "effect_of_takeup_turnover_growth": "4 + 2 * 1{employees_0 < 10} + N(0, 1.5^2) percentage points",
            "effect_of_takeup_employees_2": "+0.6 employees before rounding",
            "itt_turnover_growth_expected": r(0.65 * (4.0 + 2.0 * float(np.mean(small)))),
            "attrition": "monotone: R(1) >= R(0); about 10 % control, 6 % assigned; low-growth firms attrite more",
        },
        "sample": {
            "takeup_rate_assigned": r(d[z == 1].mean()),
            "takeup_rate_control": r(d[z == 0].mean()),
            "complier_share": r(comp.mean()),
            "attrition_rate": r(1 - resp.mean()),
            "attrition_rate_assigned": r(1 - resp[z == 1].mean()),
            "attrition_rate_control": r(1 - resp[z == 0].mean()),
            "turnover_growth": {
                "itt": r(np.mean(yg_z1 - yg_z0)),
                "late_compliers": r(np.mean((g1r - g0r)[comp])),
                "itt_always_responders": r(np.mean((yg_z1 - yg_z0)[always_resp])),
                "itt_assigned_arm": r(np.mean((yg_z1 - yg_z0)[z == 1])),
            },
            "employees_2": {
                "itt": r(np.mean(ye_z1 - ye_z0)),
                "late_compliers": r(np.mean((e1 - e0)[comp])),
                "itt_always_responders": r(np.mean((ye_z1 - ye_z0)[always_resp])),
                "itt_assigned_arm": r(np.mean((ye_z1 - ye_z0)[z == 1])),
            },
        },
        "note": "Sample values are computed from the simulated potential outcomes of these firms; "
        "itt = mean over all firms of Y(D(1)) - Y(D(0)); late = mean effect of take-up among compliers; "
        "itt_always_responders = ITT among firms observed under either assignment (Lee bounds target).",
    }
    return header, rows, truth


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(",".join(header) + "\n")
        for row in rows:
            fh.write(",".join(str(x) for x in row) + "\n")


def _monitoring_rows(header, rows, fheader, frows) -> list[list]:
    rng = np.random.default_rng([SEED, 13])
    panel = {name: [r[k] for r in rows] for k, name in enumerate(header)}
    codes = np.asarray(panel["region_code"])
    years = np.asarray(panel["year"], dtype=int)
    out: list[list] = []
    units = {"NB_BUDGET": "MSEK", "RCO01": "enterprises", "RCO02": "enterprises", "RCO04": "enterprises",
             "RCO10": "enterprises", "RCR01": "annual FTEs", "NB_ADVICEHRS": "hours", "NB_POP": "inhabitants",
             "NB_EMPRATE": "%", "NB_NEWFIRMS": "new firms per 1,000 inhabitants",
             "NB_GRPPC": "thousand SEK per inhabitant, constant prices", "SE-TVV_OFFERS": "enterprises",
             "SE-TVV_VOUCHERS": "enterprises", "SE-TVV_JOBS": "employees"}

    def add(programme, project, region, indicator, period, kind, value, note=""):
        out.append([programme, project, region, indicator, int(period), kind, value, units[indicator], note])

    spec_id = {"bsp": "se_business_support", "inno": "se_innovation", "skills": "se_skills"}
    context = {"bsp": {"NB_EMPRATE": lambda e, g: BSP_B[g] * min(e + 1, 4), "NB_NEWFIRMS": lambda e, g: BSP_A[g] * min(e + 1, 4)},
               "skills": {"NB_EMPRATE": lambda e, g: SKILLS_EMP},
               "inno": {"NB_GRPPC": lambda e, g: INNO_C * min(e + 1, 4)}}
    digits = {"NB_EMPRATE": 2, "NB_NEWFIRMS": 2, "NB_GRPPC": 1}
    for p in ["bsp", "inno", "skills"]:
        start_col = np.asarray(panel[f"{p}_start"], dtype=int)
        for code in sorted(set(codes[start_col > 0])):
            here = codes == code
            g = int(start_col[here][0])
            project = f"{p.upper()}-{code}"
            post = here & (years >= g)
            counts = {c: np.asarray(panel[c], dtype=float)[post] for c in ("NB_BUDGET", "RCO01", "RCO02", "RCO04", "RCR01")}
            if p in ("bsp", "skills"):
                counts["NB_ADVICEHRS"] = np.round(counts["RCO04"] * rng.uniform(14, 18, post.sum()))
            if p == "inno":
                counts["RCO10"] = rng.binomial(counts["RCO01"].astype(int), 0.4).astype(float)
            yrs = years[post]
            for indicator, values in counts.items():
                full = values[yrs > g] if (yrs > g).any() else values
                planned = float(full.mean()) * rng.uniform(0.95, 1.25)
                for y, v in zip(yrs, values):
                    target = planned * (0.5 if y == g else 1.0)
                    target = round(target, 1) if indicator == "NB_BUDGET" else float(round(target))
                    add(spec_id[p], project, code, indicator, y, "target", target)
                    add(spec_id[p], project, code, indicator, y, "actual", round(float(v), 1) if indicator == "NB_BUDGET" else int(v))
            pop = np.asarray(panel["population"], dtype=float)
            for indicator, planned in context[p].items():
                observed = np.asarray(panel[indicator], dtype=float)
                base = float(observed[here & (years == g - 1)][0])
                add(spec_id[p], project, code, indicator, g - 1, "baseline", base, "value in the year before the start")
                for y in years[post]:
                    k = np.flatnonzero(here & (years == y))[0]
                    add(spec_id[p], project, code, indicator, y, "target", round(base + planned(int(y - g), g), digits[indicator]))
                    add(spec_id[p], project, code, indicator, y, "actual", float(observed[k]))
            for y in years[here & (years >= g - 1)]:
                k = np.flatnonzero(here & (years == y))[0]
                add(spec_id[p], project, code, "NB_POP", y, "actual", int(pop[k]))

    firms = {name: np.asarray([r[k] for r in frows]) for k, name in enumerate(fheader)}
    assigned = firms["assigned"].astype(int)
    takeup = firms["takeup"].astype(int)
    responded = firms["responded"].astype(int)
    emp0 = firms["employees_0"].astype(int)
    emp2 = np.asarray([int(x) if x != "" else 0 for x in firms["employees_2"]])
    for code in sorted(set(firms["region_code"])):
        here = firms["region_code"] == code
        project = f"TVV-{code}"
        offers, used = int(assigned[here].sum()), int(takeup[here].sum())
        gross = int(((emp2 - emp0) * (here & (takeup == 1) & (responded == 1))).sum())
        add("se_vouchers", project, code, "SE-TVV_OFFERS", 2022, "actual", offers)
        add("se_vouchers", project, code, "SE-TVV_VOUCHERS", 2022, "target", float(round(0.75 * offers)))
        add("se_vouchers", project, code, "SE-TVV_VOUCHERS", 2022, "actual", used)
        add("se_vouchers", project, code, "RCO04", 2022, "target", float(round(0.75 * offers)))
        add("se_vouchers", project, code, "RCO04", 2022, "actual", used)
        add("se_vouchers", project, code, "NB_BUDGET", 2022, "target", round(0.05 * round(0.75 * offers), 2))
        add("se_vouchers", project, code, "NB_BUDGET", 2022, "actual", round(0.05 * used, 2))
        add("se_vouchers", project, code, "SE-TVV_JOBS", 2024, "target", float(used))
        add("se_vouchers", project, code, "SE-TVV_JOBS", 2024, "actual", gross,
            "employees_2 - employees_0 of responding firms that used a voucher")
    return out


def main() -> None:
    rng = np.random.default_rng(SEED)
    header, rows, truth_prog, aux = simulate_regions(rng)
    fheader, frows, ftruth = simulate_firms(rng, aux["pop"], aux["codes"])
    write_csv(OUT_DIR / "sweden_regions.csv", header, rows)
    write_csv(OUT_DIR / "sweden_firms.csv", fheader, frows)
    monitoring_header = ["programme", "project", "region", "indicator", "period", "kind", "value", "unit", "note"]
    with open(OUT_DIR / "sweden_monitoring.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")  # units hold commas ("per 1,000 inhabitants")
        writer.writerow(monitoring_header)
        writer.writerows(_monitoring_rows(header, rows, fheader, frows))
    truth = {
        "generator": "data/make_sweden_regions.py",
        "generator_version": GENERATOR_VERSION,
        "seed": SEED,
        "years": [int(YEARS[0]), int(YEARS[-1])],
        "definitions": {
            "att_gt": "mean true effect in year t over regions first treated in year g (cohort)",
            "att_simple": "mean over all treated post-period region-years (t >= g)",
            "att_event_time": "by e = t - g, cohorts weighted by number of regions, all cohorts observed at e",
            "att_dynamic_overall": "unweighted mean of att_event_time over e >= 0",
            "att_cohort": "by cohort, mean over its post-period years",
            "att_cohort_overall": "att_cohort weighted by cohort size",
            "att_calendar": "by year, cohorts treated by then weighted by size",
            "twfe_noise_free_clean_sample": "what TWFE (region and year effects, one treatment dummy) "
            "converges to without noise, on this programme's regions plus regions in no programme",
        },
        "programmes": truth_prog,
        "firms_trial": ftruth,
    }
    with open(OUT_DIR / "sweden_regions_truth.json", "w", encoding="utf-8", newline="\n") as fh:
        json.dump(truth, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


if __name__ == "__main__":
    main()
