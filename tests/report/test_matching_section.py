"""The matching report section says which standard error each matching estimate used: the text
comes from the result's ``inference`` (set by ``Matching.effect``), never from the report."""

from __future__ import annotations

import re


def test_matching_section_names_the_default_standard_error(job):
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (job / "dehejia_wahba" / "report.html").read_text(encoding="utf-8")))
    # nearest neighbour with replacement on an estimated logit score: Abadie-Imbens with the 2016 correction
    assert "Inference: Abadie-Imbens (2006) matching variance" in text
    assert "adjusted for the estimated logit propensity score (Abadie-Imbens 2016)" in text
    # the 1:1 robustness check without replacement clusters on matched pairs (MatchIt's vignette),
    # and its row in the robustness table says so
    assert re.search(r"replace = no, caliper = 0\.2; SE: cluster-robust CR1 [^;]*clustered on matched sets", text)
