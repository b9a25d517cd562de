"""What a design can claim: Maryland Scientific Methods Scale level, identifying assumption, limits.

The level is the highest the design can reach when its assumptions hold (Sherman et al. 1997;
What Works Centre for Local Economic Growth, 2016). A report states it with a one-line
justification; the evaluator may downgrade an application (attrition, poor pre-trends, poor
overlap), which the diagnostics sections are there to judge.

References
----------
Sherman, L. W. et al. (1997). Preventing crime: what works, what doesn't, what's promising.
Madaleno, M., Overman, H. and Waights, S. (2016). Guide to scoring evidence using the Maryland
Scientific Methods Scale. What Works Centre for Local Economic Growth.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DesignProfile", "profile"]


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
    return _PROFILES.get(module, _UNKNOWN)
