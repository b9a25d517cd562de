"""Result type of matching and weighting estimators, with balance and overlap figures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from impact.results import Result

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["BalanceResult", "love_plot", "overlap_plot"]

SMD_THRESHOLD = 0.1


def love_plot(balance: pd.DataFrame, *, ax: Axes | None = None, threshold: float = SMD_THRESHOLD) -> Axes:
    """|SMD| of each covariate before and after matching/weighting, with the 0.1 threshold."""
    from impact.report.plots import new_axes

    ax = new_axes(ax, size=(7.0, max(3.0, 0.35 * len(balance) + 1.5)))
    rows = balance.iloc[::-1]
    y = np.arange(len(rows))
    ax.scatter(np.abs(rows["smd_before"]), y, marker="o", facecolors="none", edgecolors="#7f7f7f", label="before")
    if rows["smd_after"].notna().any():
        ax.scatter(np.abs(rows["smd_after"]), y, marker="o", color="#1f4e79", label="after")
    ax.axvline(threshold, color="#b22222", linestyle="--", linewidth=1)
    ax.set_yticks(y, rows["covariate"].astype(str))
    ax.set_xlabel("Absolute standardised mean difference")
    ax.set_title("Covariate balance")
    ax.legend(loc="lower right")
    return ax


def overlap_plot(scores: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Distribution of the propensity score (or distance) by treatment group."""
    from impact.report.plots import new_axes

    ax = new_axes(ax)
    bins = np.linspace(float(scores["score"].min()), float(scores["score"].max()), 31)
    for group, colour, label in ((1, "#1f4e79", "treated"), (0, "#7f7f7f", "comparison")):
        values = scores.loc[scores["treated"] == group, "score"]
        ax.hist(values, bins=bins, density=True, alpha=0.5, color=colour, label=label)
    ax.set_xlabel("Propensity score")
    ax.set_ylabel("Density")
    ax.set_title("Overlap of propensity scores")
    ax.legend()
    return ax


@dataclass(frozen=True, kw_only=True)
class BalanceResult(Result):
    """A matching or weighting result: the effect plus the balance table and the scores.

    ``balance`` has the columns of :func:`impact.matching.balance.balance_table`; ``scores`` (may be
    None) has columns ``score`` and ``treated`` for the overlap plot.
    """

    balance: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    scores: pd.DataFrame | None = field(default=None, repr=False)

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        figs = dict(super().figures())
        if len(self.balance):
            figs["Covariate balance (love plot)"] = lambda ax=None: love_plot(self.balance, ax=ax)
        if self.scores is not None and len(self.scores):
            figs["Propensity score overlap"] = lambda ax=None: overlap_plot(self.scores, ax=ax)
        return figs
