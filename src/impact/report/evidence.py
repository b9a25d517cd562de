"""What a design can claim: Maryland Scientific Methods Scale level, identifying assumption, limits.

The level is the highest the design can reach when its assumptions hold (Sherman et al. 1997;
What Works Centre for Local Economic Growth, 2016). A report states the level the design
reached *as executed* (:func:`assess`): the profile's level, lowered by one step with the reason
when the evaluation's own diagnostics or its robustness checks show that the identifying
assumption is in doubt (differential attrition in a trial, a rejected pre-trend test, a poor
synthetic-control pre-period fit, matching that leaves covariates unbalanced).

References
----------
Sherman, L. W. et al. (1997). Preventing crime: what works, what doesn't, what's promising.
Madaleno, M., Overman, H. and Waights, S. (2016). Guide to scoring evidence using the Maryland
Scientific Methods Scale. What Works Centre for Local Economic Growth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Assessment", "DesignProfile", "assess", "profile"]


@dataclass(frozen=True)
class DesignProfile:
    """How a family of designs identifies an effect and what evidence level it can reach."""

    family: str
    sms_level: str
    sms_reason: str
    assumption: str
    limitations: tuple[str, ...]


_PROFILES = {
    "rct": DesignProfile(
        family="Randomised controlled trial",
        sms_level="5",
        sms_reason="Random assignment makes treated and control groups comparable in expectation, in observed and unobserved characteristics.",
        assumption=(
            "Assignment was random (within blocks where used), units do not affect each other's outcomes "
            "(no interference), and attrition does not differ between arms in a way related to outcomes."
        ),
        limitations=(
            "Results hold for the population that took part in the trial; scaling up may change effects.",
            "Differential attrition or non-compliance can bias the comparison; see the diagnostics.",
        ),
    ),
    "did": DesignProfile(
        family="Difference-in-differences",
        sms_level="3",
        sms_reason="Compares changes over time in treated and untreated units, removing fixed differences between them and common shocks.",
        assumption=(
            "Parallel trends: without the programme, the outcome of treated units would have changed as "
            "much as that of the comparison units; the programme had no effect before it started "
            "(no anticipation) and did not spill over to the comparison units."
        ),
        limitations=(
            "Parallel trends cannot be tested directly; pre-period trends (where shown) only make it more or less plausible.",
            "With staggered adoption and effects that change over time, a single two-way fixed-effects coefficient "
            "can weight cohorts badly; compare with a heterogeneity-robust estimator.",
            "Units chose or were chosen for the programme; a shock that coincides with the start would be attributed to it.",
        ),
    ),
    "ddd": DesignProfile(
        family="Triple differences",
        sms_level="3",
        sms_reason="Compares the change in the gap between eligible and ineligible units in groups where the "
                   "programme started with the same change in groups where it did not, removing group-specific "
                   "and eligibility-specific trends.",
        assumption=(
            "DDD parallel trends: without the programme, the gap between the outcome trends of eligible and "
            "ineligible units would have been the same in treated and comparison groups; no effect before the "
            "programme started and no spill-over to ineligible units."
        ),
        limitations=(
            "The assumption cannot be tested directly; pre-period effects (where shown) only make it more or less plausible.",
            "Effects on ineligible units in treated groups (spill-overs, displacement) are subtracted from the estimate.",
        ),
    ),
    "matching": DesignProfile(
        family="Matching / weighting on observed characteristics",
        sms_level="3",
        sms_reason="Compares participants with non-participants made similar on observed characteristics.",
        assumption=(
            "Selection on observables: once the matched characteristics are accounted for, participation is "
            "unrelated to the outcome the unit would have had without the programme; every participant has "
            "comparable non-participants (overlap)."
        ),
        limitations=(
            "Unobserved differences (motivation, management quality) between participants and non-participants are not removed.",
            "Results apply to the region of common support; participants without comparable non-participants are dropped.",
        ),
    ),
    "synth": DesignProfile(
        family="Synthetic control",
        sms_level="3",
        sms_reason="Builds the counterfactual path of the treated unit from a weighted combination of untreated units that matches its pre-programme path.",
        assumption=(
            "The treated unit's outcome without the programme follows the weighted combination of donor units "
            "that reproduces its pre-programme path; donors are unaffected by the programme and no other shock "
            "hits only the treated unit."
        ),
        limitations=(
            "Inference rests on placebo comparisons with few units; p-values are coarse.",
            "A poor pre-period fit means the synthetic comparison is not credible.",
        ),
    ),
    "rd": DesignProfile(
        family="Regression discontinuity",
        sms_level="4",
        sms_reason="Compares units just above and just below the score threshold that decided support; near the threshold, who is supported is as good as random.",
        assumption=(
            "Continuity at the threshold: without the programme, the outcome would change smoothly with the score "
            "across the cutoff; units cannot place themselves precisely on either side (no manipulation of the "
            "score), and nothing else changes at the same threshold."
        ),
        limitations=(
            "The effect is local: it holds for units with scores near the threshold, not for all participants.",
            "Precise manipulation of the score would invalidate the comparison; see the density test of the running variable.",
            "Estimates rest on the few observations near the cutoff; the bandwidth and polynomial order matter.",
        ),
    ),
    "before_after": DesignProfile(
        family="Before-after comparison",
        sms_level="1-2",
        sms_reason="Compares outcomes before and after the programme without an untreated comparison group.",
        assumption="Nothing but the programme changed the outcome between the two periods.",
        limitations=("Any trend or shock over the period is attributed to the programme.",),
    ),
}

_DOSE_RESPONSE = DesignProfile(
    family="Difference-in-differences with a continuous treatment (dose-response)",
    sms_level="3",
    sms_reason="Compares changes over time in units that received different amounts of the programme with untreated units, removing fixed differences between them and common shocks.",
    assumption=(
        "Strong parallel trends: without the programme, units at every dose would have changed as much as the "
        "untreated units, and units would have responded to other doses as the units receiving them did."
    ),
    limitations=(
        "The effect of each dose (ATT(d)) needs only parallel trends; comparing doses (the slope, ACRT) also needs "
        "units not to have been selected into doses by their expected gains.",
        "The curve is a smooth (B-spline) fit across the treated units; with few treated units its bands are fragile.",
    ),
)

_UNKNOWN = DesignProfile(
    family="Other design",
    sms_level="not rated",
    sms_reason="The design is not one of the families the package rates.",
    assumption="See the design's documentation.",
    limitations=(),
)


def profile(design: str) -> DesignProfile:
    """The profile of a design named ``module.function`` (``"did.twfe"`` -> difference-in-differences)."""
    name = design.removeprefix("impact.")
    module, _, function = name.partition(".")
    if "before_after" in function:
        return _PROFILES["before_after"]
    if module == "did" and function in ("ddd", "ddd_gt"):
        return _PROFILES["ddd"]
    if module == "did" and function == "dose_response":
        return _DOSE_RESPONSE
    return _PROFILES.get(module, _UNKNOWN)


# ---------------------------------------------------------------------------------------------
# The level as executed
# ---------------------------------------------------------------------------------------------
#: Significance level at which a diagnostic test counts as evidence against the design.
ALPHA = 0.05
#: A synthetic control fits poorly when its pre-period RMSPE exceeds half the treated unit's
#: pre-period standard deviation or 10% of its pre-period mean level (Abadie 2021, sec. 7: the
#: method should not be used when the fit is poor).
POOR_FIT_SD, POOR_FIT_MEAN = 0.5, 0.10
#: Standardised mean differences above 0.25 are the conventional threshold for poor balance
#: (Stuart 2010; Imbens and Rubin 2015, ch. 14).
POOR_BALANCE_SMD = 0.25
_LOWER = {"5": "4", "4": "3", "3": "2", "2": "1"}


@dataclass(frozen=True)
class Assessment:
    """The evidence level an evaluation reached as executed, and why.

    ``design_level`` is what the design can reach when its assumption holds; ``level`` is lower by
    one step when ``concerns`` is not empty. ``checks_passed`` lists the diagnostics that were run
    and did not raise a concern, so the justification names what supports the level too.
    """

    profile: DesignProfile
    level: str
    reason: str
    concerns: tuple[str, ...] = ()
    checks_passed: tuple[str, ...] = ()

    @property
    def design_level(self) -> str:
        return self.profile.sms_level

    @property
    def lowered(self) -> bool:
        return self.level != self.profile.sms_level


def _p(value: Any) -> float | None:
    try:
        p = float(value)
    except (TypeError, ValueError):
        return None
    return p if math.isfinite(p) else None


def _show_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


_PRETREND_TESTS = {
    "pretrend_test": "joint test of the pre-period coefficients",
    "pretrend_wald_event_time": "joint test of the pre-period event-time effects",
    "pretrend_wald": "joint test of the pre-period ATT(g, t)",
    "pretrend_wald_group_time": "joint test of the pre-period ATT(g, t)",
}


def _pretrend_tests(name: str, diagnostics: Mapping[str, Any]) -> Iterable[tuple[str, float]]:
    for key, words in _PRETREND_TESTS.items():
        test = diagnostics.get(key)
        if isinstance(test, Mapping) and _p(test.get("p_value")) is not None:
            yield f"'{name}' ({words})", _p(test["p_value"])


def _judge_pretrends(tests: list[tuple[str, float]], concerns: list[str], passed: list[str]) -> list[float]:
    """Sort the pre-trend tests of an evaluation and its robustness checks into concerns and passes.

    They all test one hypothesis (parallel pre-trends) with different estimators, so a single test
    below 5% among ten is expected by chance more often than one time in twenty: a test puts the
    assumption in doubt only when it rejects after Holm's adjustment for the number run. A test that
    rejects only before adjustment is reported as such. Returns the p-values of the tests that do not
    reject even before adjustment."""
    from impact.inference.multiple import holm

    if not tests:
        return []
    m = len(tests)
    adjusted = holm(np.array([p for _, p in tests])) if m > 1 else np.array([tests[0][1]])
    clear = []
    for (label, p), adj in zip(tests, adjusted, strict=True):
        if adj < ALPHA:
            concerns.append(f"pre-trend test rejects parallel pre-trends in {label}, {_show_p(p)}"
                            + (f" (Holm-adjusted for the {m} pre-trend tests run: {_show_p(adj)})" if m > 1 else ""))
        elif p < ALPHA:
            passed.append(f"pre-trend test in {label} has {_show_p(p)}, which is not significant once adjusted for the "
                          f"{m} pre-trend tests run on this evaluation and its checks (Holm: {_show_p(adj)})")
        else:
            clear.append(p)
            passed.append(f"pre-trend test does not reject parallel pre-trends in {label}, {_show_p(p)}")
    return clear


def _synth_fit(name: str, result: Any) -> tuple[str, bool] | None:
    paths, start = getattr(result, "paths", None), getattr(result, "treatment_time", None)
    rmspe = _p(result.diagnostics.get("pre_rmspe"))
    if paths is None or start is None or rmspe is None or "treated" not in paths:
        return None
    pre = paths.loc[paths["time"] < start, "treated"].astype(float)
    if len(pre) < 2:
        return None
    sd, level = float(pre.std()), float(pre.abs().mean())
    poor = (sd > 0 and rmspe > POOR_FIT_SD * sd) or (level > 0 and rmspe > POOR_FIT_MEAN * level)
    text = (f"{name}: pre-period RMSPE {rmspe:.3g} is {rmspe / sd:.2f} standard deviations"
            f" ({rmspe / level:.1%} of the mean level) of the treated unit's pre-period outcome")
    return text, poor


def _consort_attrition(consort: Any) -> tuple[float, float] | None:
    """Difference in follow-up loss between the last and first arm of a CONSORT flow, and the
    two-proportion z-test p-value (None if the flow does not record losses)."""
    if not isinstance(consort, list) or len(consort) < 2:
        return None
    first, last = consort[0], consort[-1]
    try:
        n0, n1 = float(first["assigned"]), float(last["assigned"])
        l0, l1 = float(first["lost_to_follow_up"]), float(last["lost_to_follow_up"])
    except (KeyError, TypeError, ValueError):
        return None
    if min(n0, n1) <= 0:
        return None
    r0, r1 = l0 / n0, l1 / n1
    pooled = (l0 + l1) / (n0 + n1)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
    if se == 0:
        return r0 - r1, 1.0
    return r0 - r1, math.erfc(abs(r0 - r1) / se / math.sqrt(2))


def _balance(name: str, diagnostics: Mapping[str, Any], design: str = "") -> tuple[str, bool] | None:
    before, after = _p(diagnostics.get("max_abs_smd_before")), _p(diagnostics.get("max_abs_smd_after"))
    if after is None:
        return None
    worse = before is not None and after > before
    how = "matching" if "match" in design else "weighting"
    text = f"{name}: largest absolute standardised mean difference " + (
        f"{before:.2f} before and {after:.2f} after {how}" if before is not None else f"{after:.2f} after {how}")
    return text, worse or after > POOR_BALANCE_SMD


def assess(outcome: Any) -> Assessment:
    """The SMS level of one evaluation as executed: its design's level, lowered when diagnostics fail.

    ``outcome`` is a runner Outcome (``design``, ``result``, ``robustness``): the evaluation's own
    diagnostics and those of its robustness checks are read (an event study run as a check is the
    pre-trend test of a two-way fixed-effects estimate). Reads recorded diagnostics only.
    """
    prof = profile(outcome.design)
    family = outcome.design.removeprefix("impact.").partition(".")[0]
    items = [(outcome.name, outcome)] + [(c.name, c) for c in getattr(outcome, "robustness", ())]
    concerns: list[str] = []
    passed: list[str] = []
    pretrend: list[tuple[str, float]] = []
    for name, item in items:
        res = getattr(item, "result", None)
        if res is None:
            continue
        diag = res.diagnostics
        check_family = item.design.removeprefix("impact.").partition(".")[0]
        if family in ("did", "matching") and check_family in ("did", "matching"):
            pretrend.extend(_pretrend_tests(name, diag))
        attrition = None
        if family == "rct" and res.design == "attrition_test":
            attrition = _p(res.p_value), _p(res.estimate)
        elif family == "rct" and item is outcome and not any(
                c.result is not None and c.result.design == "attrition_test" for _, c in items):
            attrition = _consort_attrition(diag.get("consort"))
            attrition = attrition and (attrition[1], attrition[0])
        if attrition:
            p, diff = attrition
            if p is not None and diff is not None:
                text = f"response rates differ by {abs(diff) * 100:.1f} percentage points between arms ({_show_p(p)})"
                if p < ALPHA:
                    bounds = next((c.result for _, c in items if c.result is not None and c.result.design == "lee_bounds"), None)
                    if bounds is not None:
                        low, high = bounds.conf_int()
                        text += (f"; Lee bounds ({low:.3g} to {high:.3g}) "
                                 + ("exclude zero, so the sign of the effect survives the attrition" if low > 0 or high < 0
                                    else "include zero"))
                    concerns.append("differential attrition: " + text)
                else:
                    passed.append("no significant differential attrition: " + text)
        if family == "synth" and check_family == "synth" and item is outcome:
            fit = _synth_fit(name, res)
            if fit:
                (concerns if fit[1] else passed).append(("poor pre-period fit: " if fit[1] else "good pre-period fit: ") + fit[0])
        if family == "matching" and item is outcome:
            bal = _balance(name, diag, item.design)
            if bal:
                (concerns if bal[1] else passed).append(("balance not achieved: " if bal[1] else "balance achieved: ") + bal[0])
    passed_pretrend_p = _judge_pretrends(pretrend, concerns, passed)
    level = prof.sms_level
    if concerns and level in _LOWER:
        level = _LOWER[level]
    if concerns:
        reason = (f"Lowered from level {prof.sms_level} (what a {prof.family.lower()} can reach) because the "
                  f"diagnostics put its identifying assumption in doubt: " + "; ".join(concerns) + ".")
    else:
        shown = passed
        if len(passed_pretrend_p) > 2:  # one summary instead of a sentence per check (the diagnostics section lists each)
            others = [text for text in passed if not text.startswith("pre-trend test does not reject")]
            count = (f"any of the {len(passed_pretrend_p)}" if len(passed_pretrend_p) == len(pretrend)
                     else f"{len(passed_pretrend_p)} of the {len(pretrend)}")
            shown = [f"pre-trend tests do not reject parallel pre-trends in {count} run on this "
                     f"evaluation and its robustness checks (p = {min(passed_pretrend_p):.3g} to "
                     f"{max(passed_pretrend_p):.3g})", *others]
        reason = prof.sms_reason + (" Diagnostics run: " + "; ".join(shown) + "." if shown else "")
    return Assessment(prof, level, reason, tuple(concerns), tuple(passed))
