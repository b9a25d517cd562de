"""Fixtures for programme specs: a small panel and a spec writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BASE_SPEC = '''\
[programme]
id = "demo"
name = "Demo programme"
regions = ["A", "B"]
questions = ["Did it work?"]

[effect_chain]
outputs = [{ text = "Enterprises supported", indicators = ["RCO01"] }]
impacts = [{ text = "Employment", indicators = ["NB_EMPRATE"] }]

[[data]]
name = "panel"
path = "panel.csv"
description = "A small simulated panel."

[[evaluations]]
name = "Employment"
question = "Did employment rise?"
outcome = "NB_EMPRATE"
data = "panel"
design = "did.twfe"
options = { treatment = "treated", unit = "region", time = "year", vcov = "CR2" }
'''


def make_panel(n_units: int = 12, n_years: int = 6, effect: float = 2.0, seed: int = 1) -> pd.DataFrame:
    """Balanced panel: half the units treated from year 4, a known effect, unit and year effects."""
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_years)
    year = np.tile(np.arange(1, n_years + 1), n_units)
    treated = ((unit < n_units // 2) & (year >= 4)).astype(int)
    y = 70 + unit * 0.5 + year * 0.3 + effect * treated + rng.normal(0, 0.5, unit.size)
    return pd.DataFrame({"region": unit, "year": year, "treated": treated, "NB_EMPRATE": y, "RCO01": treated * 10})


@pytest.fixture
def spec_dir(tmp_path: Path):
    """Write ``panel.csv`` and a spec (BASE_SPEC, optionally edited) into tmp_path; return a writer."""
    make_panel().to_csv(tmp_path / "panel.csv", index=False)

    class Writer:
        base = BASE_SPEC
        folder = tmp_path

        def __call__(self, text: str = BASE_SPEC, name: str = "demo.toml") -> Path:
            path = tmp_path / name
            path.write_text(text, encoding="utf-8")
            return path

    return Writer()
