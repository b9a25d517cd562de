"""The effect-chain diagram: a well-formed SVG with five levels, arrows, boxes and escaped text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from impact.programme.spec import ChainItem, EffectChain
from impact.report.chain import Measured, effect_chain_svg

NS = "{http://www.w3.org/2000/svg}"


def locate(code: str) -> Measured:
    return {"RCO01": Measured("measured", "in data: panel.csv"), "NB_EMPRATE": Measured("evaluated", "estimated: Jobs")}.get(
        code, Measured("none", "not in the data")
    )


def test_chain_svg_draws_levels_boxes_arrows_and_markers():
    chain = EffectChain(
        resources=(ChainItem("Funds & <staff>", ("NB_BUDGET",)),),
        outputs=(ChainItem("Enterprises supported", ("RCO01",)), ChainItem("Advice", ())),
        impacts=(ChainItem("Employment", ("NB_EMPRATE",)),),
    )
    svg = effect_chain_svg(chain.levels(), locate, title="A & B")
    root = ET.fromstring(svg)  # well-formed XML: user text is escaped
    texts = [t.text for t in root.iter(f"{NS}text")]
    for title in ("Resources", "Activities", "Outputs", "Outcomes", "Impacts"):
        assert title in texts
    assert "Funds & <staff>" in texts and "not specified" in texts  # empty levels are shown as such
    assert len(root.findall(f"{NS}polygon")) == 5  # the arrow-shaped level headers
    assert len(root.findall(f"{NS}line")) == 4  # arrows between the five columns
    assert {"NB_BUDGET", "RCO01", "NB_EMPRATE", "in data: panel.csv", "estimated: Jobs", "not in the data"} <= set(texts)
    filled = [c for c in root.findall(f"{NS}circle") if c.get("fill") != "#fff"]
    assert len(filled) == 2  # NB_EMPRATE in the chain and the legend's "estimated" marker
