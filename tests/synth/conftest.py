"""Shared fixtures for the synthetic-control tests: bundled data and a factor-model simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import impact as im


@pytest.fixture(scope="session")
def prop99() -> pd.DataFrame:
    return im.datasets.load("prop99")


@pytest.fixture(scope="session")
def texas() -> pd.DataFrame:
    return im.datasets.load("texas")


def factor_panel(
    *, n_units: int = 30, n_periods: int = 30, n_treated: int = 1, adoption: int = 20, effect: float = 5.0,
    noise: float = 0.5, seed: int = 0, staggered: tuple[int, ...] | None = None,
) -> pd.DataFrame:
    """Interactive fixed-effects panel ``Y_it = a_i + d_t + l_i'F_t + tau D_it + e_it``.

    Treated units' loadings and levels are convex combinations of the controls' (so a synthetic
    control can reproduce them); the true effect is ``effect`` in every treated period.
    ``staggered`` gives one adoption period per treated unit (cycled) instead of ``adoption``.
    """
    rng = np.random.default_rng(seed)
    r = 2
    F = np.cumsum(rng.normal(size=(n_periods, r)), axis=0)
    delta = np.cumsum(rng.normal(0.3, 0.5, n_periods))
    n_co = n_units - n_treated
    load_co = rng.normal(1.0, 1.0, size=(n_co, r))
    alpha_co = rng.normal(10.0, 3.0, n_co)
    mix = rng.dirichlet(np.ones(4), size=n_treated)
    picks = np.array([rng.choice(n_co, 4, replace=False) for _ in range(n_treated)])
    load_tr = np.einsum("ik,ikr->ir", mix, load_co[picks])
    alpha_tr = np.einsum("ik,ik->i", mix, alpha_co[picks])
    loads = np.vstack([load_co, load_tr])
    alphas = np.concatenate([alpha_co, alpha_tr])
    Y = alphas[:, None] + delta[None, :] + loads @ F.T + rng.normal(0, noise, size=(n_units, n_periods))
    starts = np.full(n_units, np.inf)
    if staggered is None:
        starts[n_co:] = adoption
    else:
        starts[n_co:] = [staggered[i % len(staggered)] for i in range(n_treated)]
    periods = np.arange(n_periods)
    D = (periods[None, :] >= starts[:, None]).astype(int)
    Y = Y + effect * D
    units = [f"u{i:02d}" for i in range(n_units)]
    return pd.DataFrame(
        {
            "unit": np.repeat(units, n_periods),
            "time": np.tile(periods, n_units),
            "y": Y.ravel(),
            "treated": D.ravel(),
            "x": (alphas[:, None] + rng.normal(0, 0.1, size=(n_units, n_periods))).ravel(),
        }
    )


@pytest.fixture
def make_panel():
    return factor_panel


@pytest.fixture(scope="session")
def size_design():
    """The module ``analyses/simulations/synth_size.py``: its ``simulate`` draws the panels of the
    committed size-and-power tables (20 regions x 12 years), which the slow size tests re-check."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "analyses" / "simulations" / "synth_size.py"
    spec = importlib.util.spec_from_file_location("synth_size", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sdid_rejections(sim, rng, reps: int, n_treated: int, adoption: str, errors: str, test=None) -> float:
    """Share of ``reps`` panels of ``sim.simulate`` (no effect) in which the default sdid test (or
    ``test(result)``, a p-value) rejects at 5%, 100 randomisation draws per fit."""
    import warnings

    hits = []
    for rep in range(reps):
        frame, _ = sim.simulate(rng, n_treated, adoption, errors)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = im.synth.sdid(frame, outcome="y", unit="unit", time="year", treatment="treated",
                                n_replications=100, seed=rep)
            p = res.p_value if test is None else test(res)
        hits.append(p <= 0.05)
    return float(np.mean(hits))
