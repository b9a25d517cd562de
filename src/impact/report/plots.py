"""Plots shared by results and reports. Every function takes ``ax=`` and returns the Axes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["coefficient_plot", "dose_response_plot", "forest_plot", "integer_ticks", "new_axes", "rank_plot", "rd_plot", "trends_plot", "weights_plot"]

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
        integer_ticks(ax.xaxis)
    else:
        rows = table.iloc[::-1]
        y = np.arange(len(rows))
        ax.hlines(y, rows["conf_low"], rows["conf_high"], color=PALETTE["estimate"], linewidth=2)
        ax.scatter(rows["estimate"], y, color=PALETTE["estimate"], zorder=3)
        ax.axvline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
        ax.set_yticks(y, rows["term"].astype(str))
        ax.set_ylim(-0.6, len(rows) - 0.4)
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


def integer_ticks(axis) -> None:
    """Ticks at whole numbers only (event times, periods): no tick at -7.5."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def forest_plot(table: pd.DataFrame, *, ax: Axes | None = None, clip: float = 4.0) -> Axes:
    """Estimates with intervals, one row per specification; the main row highlighted.

    An interval more than ``clip`` times as wide as the median interval would squash the others: the
    axis is limited to ``clip`` median widths around the estimates and such an interval is drawn up
    to the edge with an arrow and its bound written beside it.
    """
    ax = new_axes(ax)
    rows = table.iloc[::-1].reset_index(drop=True)
    y = np.arange(len(rows))
    est = rows["estimate"].to_numpy(dtype=float)
    low = rows["conf_low"].to_numpy(dtype=float)
    high = rows["conf_high"].to_numpy(dtype=float)
    width = np.median(high - low)
    lo_lim = min(np.min(est), 0.0, np.min(np.where(high - low <= clip * width, low, np.inf)))
    hi_lim = max(np.max(est), 0.0, np.max(np.where(high - low <= clip * width, high, -np.inf)))
    pad = 0.08 * (hi_lim - lo_lim or 1.0)
    lo_lim, hi_lim = lo_lim - pad, hi_lim + pad
    main = rows["main"].to_numpy(dtype=bool) if "main" in rows else np.zeros(len(rows), dtype=bool)
    colours = np.where(main, PALETTE["estimate"], "#4a6a8a")
    clipped = bool(np.any(low < lo_lim) or np.any(high > hi_lim))
    for i in range(len(rows)):
        a, b = max(low[i], lo_lim), min(high[i], hi_lim)
        ax.hlines(y[i], a, b, color=colours[i], linewidth=3 if main[i] else 2)
        for bound, edge, side in ((low[i], lo_lim, -1), (high[i], hi_lim, 1)):
            if (bound < edge) if side < 0 else (bound > edge):
                ax.annotate("", xy=(edge, y[i]), xytext=(edge - side * 0.06 * (hi_lim - lo_lim), y[i]),
                            arrowprops={"arrowstyle": "-|>", "color": colours[i], "lw": 2})
                ax.text(edge - side * 0.07 * (hi_lim - lo_lim), y[i] + 0.22, f"to {bound:.3g}", ha="right" if side > 0 else "left",
                        va="bottom", fontsize=8, color=colours[i])
    ax.scatter(est, y, color=colours, zorder=3, s=np.where(main, 48, 30))
    ax.axvline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
    ax.set_xlim(lo_lim, hi_lim)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(y, rows["term"].astype(str))
    ax.tick_params(axis="both", labelsize=9)
    ax.set_xlabel("Effect with 95% confidence interval" + (" (arrow: interval goes on)" if clipped else ""), fontsize=9)
    return ax


def rank_plot(ratios: pd.DataFrame, *, ax: Axes | None = None, names: dict[str, str] | None = None) -> Axes:
    """Post/pre RMSPE ratios of the treated unit and its placebos, ranked, on a log axis.

    A histogram is empty when one ratio is hundreds of times the others; a ranked dot plot on a log
    scale shows every unit and where the treated one stands.
    """
    ax = new_axes(ax)
    names = names or {}
    table = pd.DataFrame(ratios)
    if "kept" in table:
        table = table.loc[table["kept"].astype(bool)]
    table = table.sort_values("ratio", ascending=True).reset_index(drop=True)
    y = np.arange(len(table))
    treated = table["treated"].astype(bool).to_numpy() if "treated" in table else np.zeros(len(table), dtype=bool)
    ax.scatter(table["ratio"], y, c=np.where(treated, PALETTE["zero"], PALETTE["pre"]), s=np.where(treated, 60, 22), zorder=3)
    ax.set_xscale("log")
    labels = [names.get(str(u), str(u)) for u in table["unit"]] if "unit" in table else [""] * len(table)
    ax.set_yticks(y, labels, fontsize=7 if len(table) > 25 else 8)
    for i in np.flatnonzero(treated):
        ax.get_yticklabels()[i].set_color(PALETTE["zero"])
        ax.get_yticklabels()[i].set_fontweight("bold")
    ax.set_ylim(-0.8, len(table) - 0.2)
    ax.set_xlabel("Post/pre-period RMSPE ratio (log scale); treated unit in red")
    return ax


def weights_plot(weights: pd.Series, *, ax: Axes | None = None, names: dict[str, str] | None = None, top: int = 15) -> Axes:
    """The largest unit weights as horizontal bars, labelled with unit names where known."""
    ax = new_axes(ax)
    names = names or {}
    w = pd.Series(weights, dtype=float)
    w = w.loc[w > 1e-6].sort_values(ascending=False).head(top).iloc[::-1]
    labels = [names.get(str(u), str(u)) for u in w.index]
    ax.barh(np.arange(len(w)), w.to_numpy(), color=PALETTE["estimate"])
    ax.set_yticks(np.arange(len(w)), labels, fontsize=9)
    ax.set_xlabel("Weight" + (f" (largest {top})" if len(weights) > top else ""))


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


def dose_response_plot(curve: pd.DataFrame, *, which: str = "att", ax: Axes | None = None, dose_label: str = "dose",
                       outcome: str = "", level: float = 0.95) -> Axes:
    """A dose-response curve (``which`` = "att" for ATT(d), "acrt" for ACRT(d)) from the ``curve`` table of
    :func:`impact.did.dose_response`: the estimate, its pointwise interval (dark) and uniform band (light)."""
    ax = new_axes(ax)
    d = curve["dose"].to_numpy(dtype=float)
    est = curve[which].to_numpy(dtype=float)
    band_low, band_high = curve[f"{which}_band_low"].to_numpy(dtype=float), curve[f"{which}_band_high"].to_numpy(dtype=float)
    if np.isfinite(band_low).any():
        ax.fill_between(d, band_low, band_high, color=PALETTE["estimate"], alpha=0.15, linewidth=0,
                        label=f"{level:.0%} uniform band")
    ax.fill_between(d, curve[f"{which}_conf_low"], curve[f"{which}_conf_high"], color=PALETTE["estimate"], alpha=0.3,
                    linewidth=0, label=f"{level:.0%} pointwise interval")
    ax.plot(d, est, color=PALETTE["estimate"], linewidth=2, label="ATT(d)" if which == "att" else "ACRT(d)")
    ax.axhline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
    ax.set_xlabel(f"Dose ({dose_label})")
    if which == "att":
        ax.set_ylabel(f"Effect on {outcome}" if outcome else "Effect")
    else:
        ax.set_ylabel("ACRT: effect of one more unit of dose")
    ax.legend(loc="best", fontsize=8, frameon=False)
    return ax
