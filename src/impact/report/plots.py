"""Plots shared by results and reports. Every function takes ``ax=`` and returns the Axes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["coefficient_plot", "new_axes"]

PALETTE = {"estimate": "#1f4e79", "pre": "#7f7f7f", "post": "#1f4e79", "zero": "#b22222"}


def new_axes(ax: Axes | None, size: tuple[float, float] = (7.0, 4.0)) -> Axes:
    """Return ``ax`` or a fresh Axes in the package's seaborn style."""
    if ax is not None:
        return ax
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    _, ax = plt.subplots(figsize=size)
    return ax


def coefficient_plot(table: pd.DataFrame, *, ax: Axes | None = None, title: str = "") -> Axes:
    """Point estimates with confidence intervals.

    If ``table`` has an ``event_time`` column the effects are drawn against event time (pre-periods
    grey, post-periods blue, a dashed line at zero effect and one before treatment starts); otherwise
    one horizontal row per term.
    """
    ax = new_axes(ax)
    if "event_time" in table.columns and table["event_time"].notna().any():
        rows = table.loc[table["event_time"].notna()].sort_values("event_time")
        e = rows["event_time"].to_numpy(dtype=float)
        colours = np.where(e < 0, PALETTE["pre"], PALETTE["post"])
        ax.vlines(e, rows["conf_low"], rows["conf_high"], colors=colours, linewidth=2)
        ax.scatter(e, rows["estimate"], c=colours, zorder=3)
        ax.axhline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
        ax.axvline(-0.5, color="black", linestyle=":", linewidth=1)
        ax.set_xlabel("Periods relative to treatment start")
        ax.set_ylabel("Effect")
    else:
        rows = table.iloc[::-1]
        y = np.arange(len(rows))
        ax.hlines(y, rows["conf_low"], rows["conf_high"], color=PALETTE["estimate"], linewidth=2)
        ax.scatter(rows["estimate"], y, color=PALETTE["estimate"], zorder=3)
        ax.axvline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
        ax.set_yticks(y, rows["term"].astype(str))
        ax.set_xlabel("Effect (with confidence interval)")
    if title:
        ax.set_title(title)
    return ax
