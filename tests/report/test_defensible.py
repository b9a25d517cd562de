"""Issue 12: every sentence, number and figure of a report an evaluator can stand behind.

One test (or a few) per numbered item, each reading the HTML the main job writes. The simulated
programmes have known true effects (data/sweden_regions_truth.json): skills on GRP per capita has a
true effect of 0, so its card must not claim an effect.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from report_job import parse

from impact.report.claims import headline_claim
from impact.report.evidence import assess


def card(page, text: str) -> str:
    hits = [c for c in page.cards if text in c]
    assert len(hits) == 1, (text, page.cards)
    return " ".join(hits[0].split())


# -- 1. headline sentences -----------------------------------------------------------------------
def test_1_no_finding_claimed_when_the_interval_includes_zero(job):
    page = parse(job / "se_skills" / "report.html")
    grp = card(page, "GRP per capita")
    assert "No detectable effect on Gross regional product per capita" in grp
    # the numbers are the report's own (results.json: default randomisation inference over start years;
    # the issue quoted the CR1 interval -21.3 to 9.1 and 0.48 to 1.03 before the default changed)
    assert "the estimated ATT is −6.1" in grp and "95% CI (−21.7 to 8.8) includes zero" in grp
    assert "lowered" not in grp and "raised" not in grp
    emp = card(page, "Employment rate, 20-64")
    assert "raised Employment rate, 20-64 by 0.76 percentage points (95% CI 0.47 to 1.03)" in emp


def test_1_sentences_use_indicator_names_not_columns(job):
    organ = card(parse(job / "organ_donations" / "report.html"), "Active choice")
    assert "Organ donor registration rate" in organ and "lowered Rate" not in organ
    for name in ("se_skills", "se_business_support", "se_innovation", "se_vouchers"):
        for c in parse(job / name / "report.html").cards:
            sentence = c.split("Maryland SMS")[0]
            assert not re.search(r"\b(NB_[A-Z]+|region_code|turnover_growth|employees_2)\b by", sentence), sentence


def test_1_a_binary_outcome_is_a_share_in_percentage_points(job):
    # innovation_grants: 'innovation' is a firm's 0/1 record; the indicator RCR03 counts enterprises, but
    # a regression-discontinuity effect on a 0/1 outcome is a change in the share innovating
    page = parse(job / "innovation_grants" / "report.html")
    text = card(page, "introducing product or process innovation")
    assert "share of small and medium-sized enterprises" in text and "percentage points" in text
    assert "enterprises (95% CI" not in text


def test_1_claim_rules():
    yes = headline_claim(estimand="ATT", estimate=0.758, std_error=0.126, conf_low=0.483, conf_high=1.033,
                         level=0.95, what="Employment rate", unit="%")
    assert yes.finding and yes.sentence == ("Estimated ATT: the programme raised Employment rate by 0.76 percentage "
                                            "points (95% CI 0.48 to 1.03).")
    no = headline_claim(estimand="ATT", estimate=-6.113, std_error=6.978, conf_low=-21.316, conf_high=9.089,
                        level=0.95, what="GRP", unit="")
    assert not no.finding
    assert no.sentence == "No detectable effect on GRP: the estimated ATT is −6.1 and the 95% CI (−21.3 to 9.1) includes zero."


# -- 2 (rendering part). synthetic control: placebo p-value and rank, never an interval it lacks ----
@pytest.mark.parametrize("name", ["prop99", "texas", "se_innovation"])
def test_2_synthetic_control_cards_are_nan_safe(job, name):
    page = parse(job / name / "report.html")
    text = page.plain()
    assert "CI - to -" not in text and "CI – to –" not in text and "[–, –]" not in text
    for c in page.cards:
        if "placebo" in c:
            assert "interval excludes zero" not in c and "rank" in c


def test_2_claim_without_interval_uses_the_placebo_test():
    claim = headline_claim(estimand="ATT (average post-period gap)", estimate=-19.5, std_error=float("nan"),
                           conf_low=float("nan"), conf_high=float("nan"), level=0.95, what="packs per capita",
                           diagnostics={"placebo_p_value": 3 / 39, "placebo_rank": 3, "placebo_units": 38})
    assert not claim.finding
    assert "ranks 3rd of 39 units" in claim.sentence and "p = 0.077" in claim.sentence
    assert "excludes zero" not in claim.sentence and "CI" not in claim.sentence


# -- 3. estimands ---------------------------------------------------------------------------------
def test_3_voucher_trial_names_the_itt_and_offered_vs_used(job):
    page = parse(job / "se_vouchers" / "report.html")
    offer = card(page, "Turnover growth (offer, ITT)")
    assert "ITT" in offer and "Estimated ATE" not in offer and "ATE ·" not in offer
    assert "assigned to treatment 1,499" in offer and "of whom used it 1,036" in offer
    late = card(page, "use of the voucher, LATE")
    assert "LATE" in late
    assert "Estimated ATE" not in page.plain()


def test_3_rct_estimators_name_the_itt_under_non_compliance():
    import impact as im

    rng = np.random.default_rng(3)
    n = 400
    z = rng.permutation(np.repeat([0, 1], n // 2))
    d = np.where(z == 1, rng.random(n) < 0.7, rng.random(n) < 0.05).astype(int)
    df = pd.DataFrame({"z": z, "d": d, "y": 1.0 * d + rng.normal(size=n), "x": rng.normal(size=n)})
    for fit in (im.rct.difference_in_means, im.rct.regression):
        assert fit(df, outcome="y", treatment="z", received="d").estimand.startswith("ITT")
        assert fit(df, outcome="y", treatment="z").estimand == "ATE"
        assert fit(df.assign(d=z), outcome="y", treatment="z", received="d").estimand == "ATE"  # full compliance
    assert im.rct.lin(df, outcome="y", treatment="z", covariates=["x"], received="d").estimand.startswith("ITT")
    assert im.rct.late(df, outcome="y", treatment="d", assignment="z").estimand.startswith("LATE / CACE")


# -- 4. SMS level as executed ---------------------------------------------------------------------
def test_4_attrition_and_failed_pretrends_lower_the_level(job):
    vouchers = parse(job / "se_vouchers" / "report.html")
    offer = card(vouchers, "Turnover growth (offer, ITT)")
    assert "Maryland SMS level 4 (design can reach 5)" in offer
    assert "differ by 3.6 percentage points" in offer and "p < 0.001" in offer
    # the demo regions' trends are parallel by construction (data/make_sweden_regions.py), and the default
    # (randomisation) pre-trend tests no longer reject them en masse, as the analytic ones did (issue 10).
    # They are exact (confined to 2010-2013, before the first start), so they reject 5% of true nulls: in
    # this realisation the 2016 and 2019 waves drift up against the others over 2010-2013 (by about 0.2 new
    # firms per 1,000): the sum of squares alone gave p = 0.03-0.04 with not-yet-treated comparisons; the
    # default statistic (min-p with the linear trend) gives a smallest p of 0.051 over the ten tests. Ten
    # pre-trend tests of one hypothesis are run on this evaluation and its checks, so one below 5% would be
    # judged after Holm's adjustment (named, with both p-values) and the level kept: either way, no lowering.
    support = card(parse(job / "se_business_support" / "report.html"), "New firm formation")
    assert "Maryland SMS level 3" in support and "Lowered" not in support
    assert (re.search(r"pre-trend tests do not reject parallel pre-trends in any of the \d+ run", support)
            or re.search(r"pre-trend test in '[^']+' \([^)]+\) has p = 0\.0\d+, which is not significant once adjusted "
                         r"for the \d+ pre-trend tests run on this evaluation and its checks \(Holm: p = 0\.\d+\)", support))
    employment = card(parse(job / "se_business_support" / "report.html"), "Employment rate, 20-64")
    # many checks: one summary sentence with the range of p-values, not a sentence per check
    assert re.search(r"pre-trend tests do not reject parallel pre-trends in any of the \d+ run on this evaluation "
                     r"and its robustness checks \(p = 0\.\d+ to 0\.\d+\)", employment)
    assert "does not reject parallel pre-trends in" not in employment
    # skills:
    # the default (randomisation) pre-trend test no longer rejects them, as the analytic one falsely did
    # (issue 10), so the level is not lowered there; a rejecting pre-trend test still lowers it
    skills = card(parse(job / "se_skills" / "report.html"), "Employment rate, 20-64")
    assert "does not reject parallel pre-trends" in skills
    rejecting = SimpleNamespace(name="Event study", design="did.event_study",
                                result=SimpleNamespace(design="event_study", diagnostics={"pretrend_test": {"p_value": 0.001}}))
    passing = SimpleNamespace(name="Event study", design="did.event_study",
                              result=SimpleNamespace(design="event_study", diagnostics={"pretrend_test": {"p_value": 0.4}}))
    main = SimpleNamespace(design="twfe", diagnostics={})
    low = assess(_outcome("did.twfe", main, [rejecting]))
    assert "rejects parallel pre-trends" in low.reason
    assert int(low.level) < int(assess(_outcome("did.twfe", main, [passing])).level)
    # ten tests of one hypothesis: p = 0.03 in one of them is chance-level (Holm 0.3), p = 0.001 is not (0.01)
    def checks(p_low):
        return [SimpleNamespace(name=f"check {i}", design="did.event_study", result=SimpleNamespace(
            design="event_study", diagnostics={"pretrend_test": {"p_value": p_low if i == 0 else 0.4}})) for i in range(10)]
    kept = assess(_outcome("did.twfe", main, checks(0.03)))
    assert int(kept.level) == int(assess(_outcome("did.twfe", main, [passing])).level)
    assert "not significant once adjusted for the 10 pre-trend tests" in kept.reason and "Holm: p = 0.300" in kept.reason
    lowered = assess(_outcome("did.twfe", main, checks(0.001)))
    assert int(lowered.level) == int(low.level) and "Holm-adjusted for the 10 pre-trend tests run: p = 0.010" in lowered.reason


def _outcome(design, result, checks=()):
    return SimpleNamespace(name="main", design=design, result=result, robustness=tuple(checks))


def test_4_poor_synthetic_fit_and_worse_balance_lower_the_level():
    times = np.arange(2000, 2010)
    treated = 100 + np.arange(10.0)
    poor = SimpleNamespace(design="synthetic_control", diagnostics={"pre_rmspe": 8.0},
                           paths=pd.DataFrame({"time": times, "treated": treated}), treatment_time=2006)
    good = SimpleNamespace(design="synthetic_control", diagnostics={"pre_rmspe": 0.2},
                           paths=pd.DataFrame({"time": times, "treated": treated}), treatment_time=2006)
    low = assess(_outcome("synth.synthetic_control", poor))
    assert low.level == "2" and "poor pre-period fit" in low.reason
    assert assess(_outcome("synth.synthetic_control", good)).level == "3"
    worse = SimpleNamespace(design="match", diagnostics={"max_abs_smd_before": 1.18, "max_abs_smd_after": 1.52})
    better = SimpleNamespace(design="match", diagnostics={"max_abs_smd_before": 1.18, "max_abs_smd_after": 0.05})
    assert assess(_outcome("matching.match", worse)).level == "2"
    assert "1.18 before and 1.52 after matching" in assess(_outcome("matching.match", worse)).reason
    assert assess(_outcome("matching.match", better)).level == "3"


# -- 5. sensitivity (Rambachan-Roth) --------------------------------------------------------------
def test_5_sensitivity_rows_show_breakdown_values_intervals_and_plot(job):
    import json

    page = parse(job / "se_business_support" / "report.html")
    text = page.plain()
    stored = json.loads((job / "se_business_support" / "results.json").read_text(encoding="utf-8"))
    sensitivity = {c["result"]["settings"]["bound_name"]: c["result"] for c in stored["evaluations"][0]["robustness"]
                   if c["result"] and "breakdown" in c["result"]["diagnostics"]}
    assert set(sensitivity) == {"M", "Mbar"}
    breakdown = sensitivity["Mbar"]["diagnostics"]["breakdown"]
    assert f"Breakdown value: M̄ = {breakdown:.2g}" in text and "Breakdown value: M = 0 " in text
    robust = [t for t in page.tables if t and t[0][:2] == ["M̄", "robust 95% CI"]]
    assert robust and [r[0] for r in robust[0][1:]] == ["0", "0.5", "1", "1.5", "2"]
    at_half = [b for b in sensitivity["Mbar"]["diagnostics"]["bounds"] if b["Mbar"] == 0.5][0]
    shown = robust[0][2][1].replace("−", "-").strip("[]").split(", ")
    assert float(shown[0]) == pytest.approx(at_half["conf_low"], abs=0.06)
    assert float(shown[1]) == pytest.approx(at_half["conf_high"], abs=0.06)
    assert float(shown[0]) < -1  # the robust interval, not the main estimate's
    alts = [a for a, _ in page.images]
    assert any("robust intervals by M̄" in a for a in alts) and any("robust intervals by M" in a for a in alts)
    for table in page.tables:
        for row in table:
            if row and row[0].startswith("Sensitivity to parallel-trend violations"):
                assert "breakdown" in " ".join(row) and not re.search(r"\[0\.\d+, 0\.\d+\]", " ".join(row))


# -- 6. warnings ----------------------------------------------------------------------------------
def test_6_warnings_of_robustness_checks_reach_the_warnings_section(job):
    page = parse(job / "se_innovation" / "report.html")
    assert "No warnings were raised" not in page.plain()
    assert any("Very few treated clusters" in n and "only 1 treated cluster" in n.lower() for n in page.notes)


def test_6_matched_did_that_worsens_balance_warns(job):
    import impact as im
    from impact.errors import BalanceWarning

    notes = parse(job / "se_skills" / "report.html").notes
    assert any(n.startswith("Balance not achieved.") and "from 1.18 to 1.52" in n for n in notes)
    assert issubclass(BalanceWarning, im.errors.OverlapWarning)


def test_6_few_clusters_warning_does_not_recommend_what_was_chosen(job):
    notes = parse(job / "se_skills" / "report.html").notes
    chosen = [n for n in notes if n.startswith("Few clusters.") and "CR2 (Bell-McCaffrey, Satterthwaite df)" in n]
    assert chosen and all("Prefer small-sample corrected" not in n for n in chosen)
    assert any("The inference chosen, the wild cluster bootstrap" in n for n in notes)


def test_6_small_cohorts_are_not_called_a_small_comparison_group(job):
    notes = parse(job / "se_business_support" / "report.html").notes
    cohort = [n for n in notes if "cohort(s) with fewer than 5 units" in n]
    assert cohort and all(n.startswith("Small treated cohort.") for n in cohort)


# -- 8. no raw program output ---------------------------------------------------------------------
def test_8_no_raw_program_output_in_any_report(job):
    for path in sorted(job.glob("*/report.html")):
        text = parse(path).plain()
        assert "dtype:" not in text and "Name: weight" not in text, path
        assert not re.search(r"\d\.\d{9,}", text), (path, re.search(r".{40}\d\.\d{9,}.{20}", text))
        assert not re.search(r"\[\s*\{", text), path  # no JSON list of records
        assert not re.search(r"\[\d+\.\d+, \d+\.\d+\]", text.replace("−", "-")) or "CI" in text, path


def test_8_lee_bounds_and_coefficients_are_tables(job):
    page = parse(job / "se_vouchers" / "report.html")
    text = page.plain()
    assert "2.810767" not in text and "bounds 2.811, 3.841" in text
    assert any(t and t[0][:3] == ["term", "estimate", "std error"] and any(r[0] == "(Intercept)" for r in t) for t in page.tables)


# -- 9. identifiers without thousands separators --------------------------------------------------
def test_9_years_seeds_codes_and_cohorts_are_not_separated(job):
    for path in sorted(job.glob("*/report.html")):
        text = parse(path).plain()
        assert "20,240,917" not in text, path
        assert not re.search(r"\b(19|20)\d,\d{3}\b(?! (rows|firms|units|observations))", text) or path.parent.name in (
            "kielmc", "texas", "dehejia_wahba", "rct_reproductions", "nsw_drdid", "injury", "se_vouchers"), path
    texas = parse(job / "texas" / "report.html").plain()
    assert "treatment_time 1993" in texas and not re.search(r"1,9\d\d", texas)
    assert "bmprison 1990; bmprison 1992" in texas  # special predictors: variable and year
    skills = parse(job / "se_skills" / "report.html")
    year_rows = [r for t in skills.tables for r in t if r and r[0] == "year"]
    assert year_rows and all("2,0" not in " ".join(r) for r in year_rows)


# -- 10. figures ----------------------------------------------------------------------------------
def test_10_rmspe_ratios_drawn_as_a_ranked_log_plot(job):
    for name in ("prop99", "texas"):
        alts = [a for a, _ in parse(job / name / "report.html").images]
        assert "Post/pre RMSPE ratios, ranked (log scale)" in alts and "Post/pre RMSPE ratios" not in alts


def test_10_rank_plot_shows_a_huge_ratio_and_every_unit():
    from impact.report.plots import rank_plot

    ratios = pd.DataFrame({"unit": list("abcdef"), "ratio": [739.0, 1.2, 2.0, 3.1, 1.5, 0.9],
                           "treated": [True] + [False] * 5, "kept": True})
    ax = rank_plot(ratios, names={"a": "Alpha"})
    assert ax.get_xscale() == "log" and len(ax.collections[0].get_offsets()) == 6
    assert ax.get_yticklabels()[-1].get_text() == "Alpha"


def test_10_event_time_axes_tick_at_integers():
    from impact.report.plots import coefficient_plot

    table = pd.DataFrame({"term": [f"e={e}" for e in range(-8, 7)], "event_time": np.arange(-8, 7.0), "estimate": 0.1,
                          "conf_low": -0.1, "conf_high": 0.3})
    ax = coefficient_plot(table)
    ax.figure.canvas.draw()
    ticks = ax.get_xticks()
    assert np.allclose(ticks, np.round(ticks))


def test_10_one_huge_interval_does_not_squash_the_forest_plot():
    from impact.report.plots import forest_plot

    table = pd.DataFrame({"term": ["main", "CR2", "wild"], "estimate": [20.6, 20.6, 20.6],
                          "conf_low": [7.5, 8.0, -178.0], "conf_high": [28.8, 33.0, 233.8], "main": [True, False, False]})
    ax = forest_plot(table)
    low, high = ax.get_xlim()
    assert low > -40 and high < 80  # the ordinary intervals take most of the width
    assert any(t.get_text() == "to 234" for t in ax.texts) and any(t.get_text() == "to -178" for t in ax.texts)


def test_10_love_plot_legend_covers_no_point():
    from impact.matching._results import love_plot

    balance = pd.DataFrame({"covariate": list("abcd"), "smd_before": [1.2, 0.1, 0.9, 1.4], "smd_after": [1.3, 0.05, 1.2, 1.5]})
    ax = love_plot(balance)
    fig = ax.figure
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    points = np.vstack([c.get_offsets() for c in ax.collections])
    pixels = ax.transData.transform(points)
    inside = (pixels[:, 0] >= legend.x0) & (pixels[:, 0] <= legend.x1) & (pixels[:, 1] >= legend.y0) & (pixels[:, 1] <= legend.y1)
    assert not inside.any()


def test_10_single_coefficient_plots_are_not_drawn_and_units_get_names(job):
    skills = [a for a, _ in parse(job / "se_skills" / "report.html").images]
    assert "Estimates with confidence intervals" not in skills  # one ATT: the table row says it all
    innovation = parse(job / "se_innovation" / "report.html")
    weights = [r for t in innovation.tables for r in t if r and "(" in r[0] and r[0].split(" (")[0].isalpha()]
    text = innovation.plain()
    assert "Norrbotten" in text or "Stockholm" in text
    assert weights or "Control-unit weights" in [a for a, _ in innovation.images]


def test_10_pool_plot_keeps_title_and_axis_label(job, tmp_path):
    from click.testing import CliRunner
    from matplotlib import image

    from impact.cli import main

    png = tmp_path / "pool.png"
    result = CliRunner().invoke(main, ["pool", "--indicator", "NB_EMPRATE", "--registry", str(job / "registry.sqlite"),
                                       "--plot", str(png)])
    assert result.exit_code == 0, result.output
    pixels = image.imread(png)[..., :3]
    ink = (pixels < 0.85).any(axis=2)
    # nothing is cut at the edges: the outermost rows and columns are background (title, axis label, y labels)
    assert not ink[:3].any() and not ink[-3:].any() and not ink[:, :3].any() and not ink[:, -3:].any()


# -- 11. length -----------------------------------------------------------------------------------
def test_11_shared_diagnostics_are_shown_once_and_long_tables_fold(job):
    for path in sorted(job.glob("*/report.html")):
        page = parse(path)
        # data tables (a design's option list may legitimately repeat for evaluations sharing options)
        big = [tuple(map(tuple, t)) for t in page.tables if len(t) > 4 and not t[0][0].startswith("option ")]
        assert len(big) == len(set(big)), f"{path.parent.name}: a table is repeated"
    dw = parse(job / "dehejia_wahba" / "report.html")
    assert "identical to the table shown above" in dw.plain()
    assert parse(job / "se_skills" / "report.html").details >= 2  # event-time counts, balance


# -- 12. print --------------------------------------------------------------------------------------
def test_12_print_css_is_a4_and_keeps_figures_and_rows_whole(job):
    html = (job / "se_skills" / "report.html").read_text(encoding="utf-8")
    assert re.search(r"@page\s*\{[^}]*size:\s*A4", html)
    print_css = html[html.index("@media print"):]
    assert "break-inside: avoid" in print_css and "figure" in print_css.split("break-inside: avoid")[0]
    assert "thead { display: table-header-group; }" in print_css


def test_12_pdf_is_a4_with_tables_unfolded(job, tmp_path):
    import shutil

    from impact.report.pdf import html_to_pdf

    if not any(shutil.which(c) for c in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("headless Chromium is not installed")
    source = tmp_path / "report.html"
    source.write_text((job / "se_skills" / "report.html").read_text(encoding="utf-8"), encoding="utf-8")
    pdf = html_to_pdf(source)
    media = set(re.findall(rb"/MediaBox\s*\[([^\]]*)\]", pdf.read_bytes()))
    assert media and all(abs(float(b.split()[2]) - 595) < 2 and abs(float(b.split()[3]) - 842) < 2 for b in media)
    assert not list(tmp_path.glob(".*print.html"))  # the unfolded copy is cleaned up


def test_10_synthetic_control_legends_name_units_not_codes():
    # the path, gap and RMSPE figures of synth label the treated unit by its code ("24"); the report
    # shows the unit's name where the data have one (was: "24" / "synthetic 24" in the innovation report)
    import matplotlib.pyplot as plt

    from impact.report.html import _legend_with_names

    def draw(ax):
        ax.plot([0, 1], [0, 1], label="24")
        ax.plot([0, 1], [1, 0], label="synthetic 24")
        ax.plot([0, 1], [1, 1], label="24: 3.10")
        ax.plot([0, 1], [0, 0], label="placebo")
        ax.legend()
        return ax

    fig, ax = plt.subplots()
    _legend_with_names(draw, {"24": "Västerbotten"})(ax)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
    assert labels == ["Västerbotten", "synthetic Västerbotten", "Västerbotten: 3.10", "placebo"]


def test_effects_table_shows_no_df_for_permutation_rows():
    # A randomisation or placebo-permutation p-value is not read off a t or normal reference: the df
    # (stored as inf for pooling and the registry) is left out of the report's effects table when
    # every row is permuted, and shown as "–" on such rows beside analytic ones.
    import pandas as pd

    from impact.report.html import _effects_rows

    class _Result:
        level = 0.95

        def __init__(self, inference):
            self._table = pd.DataFrame({
                "term": ["ATT", "g=2016"], "estimate": [1.0, 2.0], "std_error": [0.5, 0.7], "statistic": [2.0, 2.9],
                "p_value": [0.04, 0.01], "conf_low": [0.1, 0.6], "conf_high": [1.9, 3.4], "df": [float("inf"), 19.0],
                "inference": inference})

        def tidy(self):
            return self._table

    ri = "randomisation inference over every 1,140 assignments of start years"
    columns, rows, shared = _effects_rows(_Result([ri, ri]))
    assert "Df" not in columns and "df" not in columns and shared == ri
    columns, rows, _ = _effects_rows(_Result([ri, "CR2, Satterthwaite df"]))
    df_at = [c.lower() for c in columns].index("df")
    assert rows[0][df_at] == "–" and rows[1][df_at] == "19"
