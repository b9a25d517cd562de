"""Result type of matching and weighting estimators, with balance and overlap figures."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from impact.results import Result

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["BalanceResult", "LazyDiagnostics", "love_plot", "overlap_plot"]

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
    # right of the plot area, so that it never covers a point
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
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


class LazyDiagnostics(Mapping):
    """Read-only diagnostics whose costly entries (the balance table) are computed on first access.

    ``eager`` holds ready values; ``producer()`` returns a dict with the keys ``lazy_keys`` and is
    called at most once. Reports and ``to_dict()`` see an ordinary mapping.
    """

    def __init__(self, eager: Mapping, producer: Callable[[], dict], lazy_keys: tuple[str, ...]):
        self._eager = dict(eager)
        self._producer = producer
        self._lazy_keys = tuple(k for k in lazy_keys if k not in self._eager)
        self._cache: dict | None = None

    def __getitem__(self, key: str):
        if key in self._eager:
            return self._eager[key]
        if key in self._lazy_keys:
            if self._cache is None:
                self._cache = self._producer()
            return self._cache[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from self._eager
        yield from self._lazy_keys

    def __len__(self) -> int:
        return len(self._eager) + len(self._lazy_keys)

    def __repr__(self) -> str:
        return f"LazyDiagnostics({list(self)})"


@dataclass(frozen=True, kw_only=True)
class BalanceResult(Result):
    """A matching or weighting result: the effect plus the balance table and the scores.

    ``balance`` (= ``diagnostics["balance"]``) has the columns of
    :func:`impact.matching.balance.balance_table`; ``scores`` (may be None) has columns ``score``
    and ``treated`` for the overlap plot.
    """

    scores: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def balance(self) -> pd.DataFrame:
        """Covariate balance before and after matching or weighting."""
        return self.diagnostics.get("balance", pd.DataFrame())

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        figs = dict(super().figures())
        if len(self.balance):
            figs["Covariate balance (love plot)"] = lambda ax=None: love_plot(self.balance, ax=ax)
        if self.scores is not None and len(self.scores):
            figs["Propensity score overlap"] = lambda ax=None: overlap_plot(self.scores, ax=ax)
        return figs
