"""Figures of the synthetic-control family. Every function takes ``ax=`` and returns the Axes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from impact.report.plots import PALETTE, new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def paths_plot(paths: pd.DataFrame, *, treatment_time, treated_label: str, outcome: str, ax: Axes | None = None) -> Axes:
    """Treated unit and its synthetic control over time."""
    ax = new_axes(ax)
    ax.plot(paths["time"], paths["treated"], color="black", linewidth=2, label=str(treated_label))
    ax.plot(paths["time"], paths["synthetic"], color=PALETTE["estimate"], linestyle="--", linewidth=2, label=f"synthetic {treated_label}")
    ax.axvline(treatment_time, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("Period")
    ax.set_ylabel(outcome)
    ax.legend(frameon=False)
    ax.set_title("Treated and synthetic paths")
    return ax


def gap_plot(paths: pd.DataFrame, *, treatment_time, ax: Axes | None = None) -> Axes:
    """Gap (treated minus synthetic) over time."""
    ax = new_axes(ax)
    ax.plot(paths["time"], paths["gap"], color="black", linewidth=2)
    ax.axhline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
    ax.axvline(treatment_time, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("Period")
    ax.set_ylabel("Treated minus synthetic")
    ax.set_title("Gap between treated and synthetic")
    return ax


def weights_plot(weights: pd.Series, *, ax: Axes | None = None, title: str = "Donor weights") -> Axes:
    """Horizontal bars of the positive weights, largest first."""
    ax = new_axes(ax)
    shown = weights[weights.abs() > 1e-6].sort_values()
    if shown.empty:
        shown = weights.sort_values().tail(10)
    y = np.arange(len(shown))
    values = shown.to_numpy()
    ax.barh(y, values, color=np.where(values < 0, PALETTE["zero"], PALETTE["estimate"]))
    ax.set_yticks(y, [str(u) for u in shown.index])
    ax.set_xlabel("Weight")
    ax.set_title(title)
    return ax


def placebo_plot(gaps: pd.DataFrame, *, treated, kept, treatment_time, ax: Axes | None = None) -> Axes:
    """Gaps of every in-space placebo (grey) and of the treated unit (black)."""
    ax = new_axes(ax)
    times = gaps.index.to_numpy()
    for unit in gaps.columns:
        if unit == treated or unit not in kept:
            continue
        ax.plot(times, gaps[unit].to_numpy(), color="#b0b0b0", linewidth=0.8)
    ax.plot(times, gaps[treated].to_numpy(), color="black", linewidth=2.2, label=str(treated))
    ax.axhline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
    ax.axvline(treatment_time, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("Period")
    ax.set_ylabel("Gap (unit minus its synthetic)")
    ax.set_title(f"In-space placebos ({len(kept) - 1} donors) and the treated unit")
    ax.legend(frameon=False)
    return ax


def ratio_plot(table: pd.DataFrame, *, treated, ax: Axes | None = None) -> Axes:
    """Histogram of post/pre RMSPE ratios with the treated unit marked."""
    ax = new_axes(ax)
    kept = table.loc[table["kept"]]
    ax.hist(kept.loc[~kept["treated"], "ratio"], bins=min(20, max(5, len(kept) // 2)), color="#b0b0b0", edgecolor="white")
    value = float(table.loc[table["treated"], "ratio"].iloc[0])
    ax.axvline(value, color="black", linewidth=2, label=f"{treated}: {value:.2f}")
    ax.set_xlabel("Post/pre-treatment RMSPE ratio")
    ax.set_ylabel("Units")
    ax.set_title("Post/pre RMSPE ratios")
    ax.legend(frameon=False)
    return ax


def loo_plot(paths: pd.DataFrame, loo: pd.DataFrame, *, treatment_time, outcome: str, ax: Axes | None = None) -> Axes:
    """Treated path, synthetic path and the synthetic paths that leave out one donor each."""
    ax = new_axes(ax)
    for i, column in enumerate(loo.columns):
        ax.plot(loo.index, loo[column], color="#b0b0b0", linewidth=0.9, label="leave one donor out" if i == 0 else None)
    ax.plot(paths["time"], paths["treated"], color="black", linewidth=2, label="treated")
    ax.plot(paths["time"], paths["synthetic"], color=PALETTE["estimate"], linestyle="--", linewidth=2, label="synthetic")
    ax.axvline(treatment_time, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("Period")
    ax.set_ylabel(outcome)
    ax.set_title("Leave-one-out synthetic controls")
    ax.legend(frameon=False)
    return ax


def sdid_plot(times, treated_path, control_path, time_weights, *, treatment_time, outcome: str, ax: Axes | None = None) -> Axes:
    """Treated average and the unit-weighted control average, with the time weights as a rug."""
    ax = new_axes(ax)
    ax.plot(times, treated_path, color="black", linewidth=2, label="treated (average)")
    ax.plot(times, control_path, color=PALETTE["estimate"], linestyle="--", linewidth=2, label="weighted controls")
    ax.axvline(treatment_time, color="grey", linestyle=":", linewidth=1)
    pre = np.asarray(time_weights)
    if pre.size and pre.max() > 0:
        low = float(np.nanmin([np.nanmin(treated_path), np.nanmin(control_path)]))
        span = float(np.nanmax([np.nanmax(treated_path), np.nanmax(control_path)])) - low
        ax.bar(times[: pre.size], pre / pre.max() * 0.15 * span, bottom=low - 0.2 * span, color="#b0b0b0", width=0.8, label="time weights (scaled)")
    ax.set_xlabel("Period")
    ax.set_ylabel(outcome)
    ax.set_title("Synthetic DiD: treated vs weighted controls")
    ax.legend(frameon=False)
    return ax
