"""Generated reports: every section and figure present, no empty figure, user text escaped,
failures rendered, and the whole job deterministic.

The main job (``impact run analyses/``) runs once per session (conftest.py) with the real estimators.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from report_job import ANALYSES, parse, run_job  # shared with the other report tests (conftest: the job fixture)

from impact.cli import main
from impact.programme.runner import run_spec
from impact.report.html import SECTIONS, fmt_number, fmt_p


def assert_png_not_empty(src: str, alt: str) -> None:
    from matplotlib import image

    assert src.startswith("data:image/png;base64,"), alt
    pixels = image.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100, alt
    # Not a blank canvas: a real plot has many distinct colours, and plenty of non-background pixels.
    flat = pixels[..., :3].reshape(-1, 3)[::5]
    codes = np.round(flat * 50).astype(np.int64) @ np.array([1, 64, 4096])
    assert np.unique(codes).size > 20, alt
    assert (np.abs(flat - flat[0]).sum(axis=1) > 0.1).mean() > 0.02, alt


def test_every_report_has_all_sections_and_non_empty_figures(job):
    reports = sorted(job.glob("*/report.html"))
    assert {p.parent.name for p in reports} == {p.stem for p in ANALYSES.glob("*.toml")}
    for path in reports:
        page = parse(path)
        assert page.sections == list(SECTIONS), path
        assert page.scripts == 0, path
        assert page.svgs == 1, f"{path}: the effect chain diagram is missing"
        assert page.images, f"{path}: no figures"
        assert page.figures == len(page.images), f"{path}: a figure could not be drawn"
        for alt, src in page.images:
            assert_png_not_empty(src, f"{path.parent.name}: {alt}")
        text = " ".join(page.text)
        # the level as executed: trials reach 4-5, regression discontinuity 3-4, comparison-group
        # designs (DiD, matching, SC) 2-3 (one step lower when their diagnostics put the assumption in doubt)
        levels = {"se_vouchers": ("5", "4"), "rct_reproductions": ("5", "4"), "innovation_grants": ("4", "3")}.get(
            path.parent.name, ("3", "2"))
        assert any(f"Maryland SMS level {level}" in text for level in levels) and "Identifying assumption" in text
        assert (path.parent / "results.json").is_file()


def test_report_content_for_a_regional_programme(job):
    path = job / "se_business_support" / "report.html"
    html = path.read_text(encoding="utf-8")
    page = parse(path)
    alts = [a for a, _ in page.images]
    assert any(a.startswith("Raw data: mean New firm formation (NB_NEWFIRMS)") for a in alts)
    assert any(a.startswith("Robustness:") for a in alts)
    for code in ("NB_BUDGET", "RCO01", "RCO02", "RCO04", "RCR01", "NB_NEWFIRMS", "NB_EMPRATE"):
        assert f">{code}</text>" in html, code  # drawn in the effect-chain SVG
    assert "estimated: New firm formation" in html
    assert "evaluation sample: programme in [&#39;bsp&#39;, &#39;none&#39;]" in html  # sample flow step, escaped
    assert "Few clusters." in html  # the FewClustersWarning in words
    # the 20-row effects table of each evaluation is folded away, its headline ATT row stays in view
    estimates = html.split('<section id="estimates">', 1)[1].split("</section>", 1)[0]
    for block in estimates.split('<div class="evaluation"')[1:]:
        before_fold = block.split("<details>", 1)[0]
        assert "<details><summary>All 20 estimated effects" in block
        assert "<td>ATT</td>" in before_fold, before_fold[-600:]


def test_portfolio_index(job):
    page = parse(job / "index.html")
    text = " ".join(page.text)
    assert page.sections == ["programmes", "matrix", "pooled", "evidence-map", "estimates", "appendix"]
    assert "Benjamini-Hochberg" in text
    # NB_EMPRATE (business support, skills) and NB_GRPPC (skills, innovation) are pooled across programmes
    alts = [a for a, _ in page.images]
    assert any(a.startswith("NB_EMPRATE: Forest plot") for a in alts) and any(a.startswith("NB_GRPPC: Forest plot") for a in alts)
    for alt, src in page.images:
        assert_png_not_empty(src, alt)
    for stem in (p.stem for p in ANALYSES.glob("*.toml")):
        assert f"{stem}/report.html" in (job / "index.html").read_text(encoding="utf-8")


def test_running_twice_gives_identical_outputs(job, tmp_path):
    from impact.registry import Registry

    result = run_job(tmp_path)
    assert result.exit_code == 0, result.output
    first = sorted(p.relative_to(job) for p in job.rglob("*") if p.is_file() and p.suffix != ".sqlite")
    second = sorted(
        p.relative_to(tmp_path / "reports") for p in (tmp_path / "reports").rglob("*") if p.is_file() and p.suffix != ".sqlite"
    )
    assert first == second
    for rel in first:
        assert (job / rel).read_bytes() == (tmp_path / "reports" / rel).read_bytes(), rel
    # The registry holds the same content (its record times aside).
    exports = []
    for folder in (job, tmp_path / "reports"):
        with Registry(str(folder / "registry.sqlite")) as registry:
            exports.append(registry.export(tmp_path / f"export-{len(exports)}.json", format="json", times=False).read_bytes())
    assert exports[0] == exports[1]


def test_every_run_is_recorded_in_the_registry(job):
    from impact.registry import Registry

    with Registry(str(job / "registry.sqlite")) as registry:
        runs = registry.runs()
    assert sorted(runs["programme_id"]) == sorted(p.stem for p in ANALYSES.glob("*.toml"))


def test_rerun_updates_the_registry_without_duplicates(tmp_path):
    from impact.registry import Registry

    for _ in range(2):
        result = CliRunner().invoke(main, ["run", str(ANALYSES / "injury.toml"), "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
    with Registry(str(tmp_path / "registry.sqlite")) as registry:
        assert list(registry.runs()["programme_id"]) == ["injury"]


def test_user_text_is_escaped(tmp_path):
    import pandas as pd

    pd.DataFrame(
        {"u": [1, 1, 2, 2, 3, 3, 4, 4], "t": [1, 2] * 4, "d": [0, 1, 0, 1, 0, 0, 0, 0], "y": [1.0, 3, 2, 4.5, 1, 1.2, 2, 2.1]}
    ).to_csv(tmp_path / "d.csv", index=False)
    evil = "<script>alert(1)</script>"
    (tmp_path / "evil.toml").write_text(
        f'''
[programme]
id = "evil"
name = "{evil} & Co"
summary = "<img src=x onerror=alert(2)>"
questions = ["<b>bold</b>?"]

[effect_chain]
activities = [{{ text = "<script>chain()</script>" }}]

[[data]]
name = "d<x>"
path = "d.csv"

[[evaluations]]
name = "<i>eval</i>"
outcome = "y"
design = "did.twfe"
options = {{ treatment = "d", unit = "u", time = "t", vcov = "HC1" }}
''',
        encoding="utf-8",
    )
    _, report = run_spec(tmp_path / "evil.toml", out=tmp_path / "out")
    html = report.read_text(encoding="utf-8")
    assert "<script" not in html and "<img src=x" not in html and "<b>bold" not in html and "<i>eval" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert "&lt;script&gt;chain()&lt;/script&gt;" in html  # inside the SVG too


def test_failed_evaluation_still_renders(tmp_path):
    import pandas as pd

    pd.DataFrame({"u": [1, 1, 2, 2], "t": [1, 2, 1, 2], "d": [0, 1, 0, 0], "y": [1.0, 3, 2, 2]}).to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "f.toml").write_text(
        '''
[programme]
id = "f"
name = "Fails"

[[data]]
name = "d"
path = "d.csv"

[[evaluations]]
name = "Wrong column"
outcome = "y"
design = "did.twfe"
options = { treatment = "y", unit = "u", time = "t" }
''',
        encoding="utf-8",
    )
    run, report = run_spec(tmp_path / "f.toml", out=tmp_path / "out")
    page = parse(report)
    assert page.sections == list(SECTIONS)
    text = " ".join(page.text)
    assert "1 evaluation failed." in text and "This evaluation failed." in text
    assert "column 'y' must be coded 0/1" in text


def test_number_formatting():
    assert fmt_number(-11863.9) == "−11,864"
    assert fmt_number(-0.0225) == "−0.0225"
    assert fmt_number(0.19060) == "0.191"
    assert fmt_number(float("nan")) == "–" and fmt_number(None) == "–"
    assert fmt_number(1.0, 4) == "1" and fmt_number(-2500.0) == "−2,500"
    assert fmt_number(0.1003, 2) == "0.1" and fmt_number(0.1003, 2, trailing_zeros=True) == "0.10"  # SE column
    assert fmt_p(0.0004) == "< 0.001" and fmt_p(0.0312) == "0.031"


def test_figures_name_the_outcome_instead_of_its_column_code():
    """A design's own plot titles it "event_study: NB_EMPRATE"; the report shows the indicator's name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from impact.report.html import _legend_with_names

    def draw(ax):
        ax.plot([0, 1], [0, 1], label="24")
        ax.set_title("event_study: NB_EMPRATE")
        ax.set_ylabel("Mean NB_EMPRATE")
        ax.set_xlabel("NB_EMPRATE_LAG")  # another column that merely starts with the code is left alone
        ax.legend()
        return ax

    fig, ax = plt.subplots()
    _legend_with_names(draw, {"24": "Västerbotten"}, ("NB_EMPRATE", "Employment rate, 20-64"))(ax)
    assert ax.get_title() == "event_study: Employment rate, 20-64"
    assert ax.get_ylabel() == "Mean Employment rate, 20-64" and ax.get_xlabel() == "NB_EMPRATE_LAG"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Västerbotten"]
    plt.close(fig)
