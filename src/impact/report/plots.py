"""Plots shared by results and reports. Every function takes ``ax=`` and returns the Axes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["coefficient_plot", "new_axes", "rd_plot", "trends_plot"]

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


def trends_plot(table: pd.DataFrame, *, ax: Axes | None = None, outcome: str = "", time_label: str = "") -> Axes:
    """Mean outcome over time per treatment cohort (columns ``group``, ``time``, ``mean``, ``start``).

    Never-treated units are drawn in grey, each cohort in its own colour with a dotted line where it
    starts treatment. A description of the raw data that lets the reader judge parallel pre-trends.
    """
    import seaborn as sns

    ax = new_axes(ax)
    groups = sorted(table["group"].unique(), key=lambda g: (g != "never treated", str(g)))
    treated = [g for g in groups if g != "never treated"]
    colours = dict(zip(treated, sns.color_palette("deep", n_colors=max(len(treated), 1)), strict=False))
    colours["never treated"] = PALETTE["pre"]
    numeric_time = pd.api.types.is_numeric_dtype(table["time"])
    for group in groups:
        rows = table.loc[table["group"] == group].sort_values("time")
        style = "--" if group == "never treated" else "-"
        ax.plot(rows["time"], rows["mean"], style, marker="o", markersize=4, color=colours[group], label=str(group), linewidth=1.8)
        start = rows["start"].dropna()
        if numeric_time and group != "never treated" and not start.empty:
            ax.axvline(float(start.iloc[0]) - 0.5, color=colours[group], linestyle=":", linewidth=1)
    ax.set_xlabel(time_label or "Period")
    ax.set_ylabel(f"Mean {outcome}".strip())
    if numeric_time and table["time"].nunique() <= 20 and (table["time"] % 1 == 0).all():
        ax.set_xticks(sorted(table["time"].unique()))
        ax.tick_params(axis="x", labelrotation=45 if table["time"].nunique() > 8 else 0)
    ax.legend(frameon=False, fontsize=9, ncol=2 if len(groups) > 3 else 1)
    return ax


def rd_plot(bins: pd.DataFrame, fit: pd.DataFrame | None, *, cutoff: float, ax: Axes | None = None,
            outcome: str = "", running: str = "") -> Axes:
    """RD plot: binned outcome means (columns ``side``, ``x_mid``, ``y_mean``) on each side of the
    cutoff, with the polynomial ``fit`` (``side``, ``x``, ``fitted``) and a line at the cutoff."""
    ax = new_axes(ax)
    for side, colour in (("below", PALETTE["pre"]), ("above", PALETTE["post"])):
        rows = bins.loc[bins["side"] == side]
        ax.scatter(rows["x_mid"], rows["y_mean"], s=14, color=colour, zorder=3, label=f"bin means {side} the cutoff")
        if fit is not None:
            curve = fit.loc[fit["side"] == side]
            ax.plot(curve["x"], curve["fitted"], color=colour, linewidth=1.8)
    ax.axvline(cutoff, color=PALETTE["zero"], linestyle="--", linewidth=1)
    ax.set_xlabel(running or "Running variable")
    ax.set_ylabel(f"Mean {outcome}".strip())
    ax.legend(frameon=False, fontsize=9)
    return ax
