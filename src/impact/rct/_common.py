"""Pieces shared by the trial estimators: sample preparation, arms, the CONSORT flow, the result type."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from impact.data import as_list, check_binary, check_treated_and_control, show
from impact.errors import DataError, SpecError
from impact.results import Result

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["RCTResult", "Arms", "resolve_arms", "consort_flow", "ols", "treatment_within_clusters"]


@dataclass(frozen=True, kw_only=True)
class RCTResult(Result):
    """Result of a trial estimator: adds the balance table and the randomisation distribution.

    Attributes
    ----------
    balance : DataFrame or None
        One row per covariate (means by arm, difference, standardised difference, p-value), when
        covariates were given; also in ``diagnostics["balance"]``.
    null_distribution : ndarray or None
        Statistic under the re-drawn assignments of a randomisation test (for its histogram).
    """

    balance: pd.DataFrame | None = field(default=None, repr=False)
    null_distribution: np.ndarray | None = field(default=None, repr=False)

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        figs = dict(super().figures())
        if self.design == "balance_table":  # rows on different scales (differences and an F): no coefficient plot
            figs.pop("Estimates with confidence intervals", None)
        if self.balance is not None and len(self.balance):
            figs["Covariate balance between arms"] = self.plot_balance
        if self.null_distribution is not None:
            figs["Randomisation distribution of the statistic"] = self.plot_randomization
        if self.diagnostics.get("consort"):
            figs["Participant flow (CONSORT)"] = self.plot_flow
        return figs

    def plot_flow(self, ax: Axes | None = None) -> Axes:
        """Participant flow per arm: assigned, received the intervention, lost to follow-up, analysed."""
        from impact.report.plots import new_axes

        ax = new_axes(ax)
        flow = pd.DataFrame(self.diagnostics["consort"]).set_index("arm")
        stages = [c for c in ("assigned", "received", "lost_to_follow_up", "analysed") if c in flow.columns]
        table = flow[stages]
        y = np.arange(len(stages))
        height = 0.8 / max(1, len(table))
        colours = ["#7f7f7f", "#1f4e79", "#9db9d3", "#b22222"]
        for i, (arm, row) in enumerate(table.iterrows()):
            bars = ax.barh(y + i * height, row.to_numpy(dtype=float), height=height, label=str(arm), color=colours[i % 4])
            ax.bar_label(bars, fmt="%d", padding=2, fontsize=8)
        ax.set_yticks(y + height * (len(table) - 1) / 2, [s.replace("_", " ") for s in stages])
        ax.invert_yaxis()
        ax.set_xlabel("Units")
        ax.legend(title="arm", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        ax.set_title("Participant flow by arm")
        ax.figure.tight_layout()
        return ax

    def plot_balance(self, ax: Axes | None = None) -> Axes:
        """Standardised differences between arms per covariate (love plot) with +-0.1 guides."""
        from impact.report.plots import new_axes

        ax = new_axes(ax)
        table = self.balance.iloc[::-1]
        y = np.arange(len(table))
        smd = table["std_difference"].to_numpy(dtype=float)
        ax.scatter(smd, y, color="#1f4e79", zorder=3)
        for x in (-0.1, 0.1):
            ax.axvline(x, color="#7f7f7f", linestyle=":", linewidth=1)
        ax.axvline(0, color="#b22222", linestyle="--", linewidth=1)
        ax.set_yticks(y, table["covariate"].astype(str))
        ax.set_xlabel("Standardised difference (treatment - control) / pooled SD")
        ax.set_title("Balance of baseline covariates")
        ax.figure.tight_layout()
        return ax

    def plot_randomization(self, ax: Axes | None = None) -> Axes:
        """Histogram of the statistic under re-randomisation, with the observed value marked."""
        from impact.report.plots import new_axes

        ax = new_axes(ax)
        draws = np.asarray(self.null_distribution, dtype=float)
        draws = draws[np.isfinite(draws)]
        ax.hist(draws, bins=min(60, max(10, int(np.sqrt(draws.size)))), color="#9db9d3", edgecolor="white")
        observed = float(self.diagnostics.get("observed_statistic", self.estimate))
        ax.axvline(observed, color="#b22222", linewidth=2, label=f"observed = {observed:.4g}")
        if self.diagnostics.get("alternative") == "two-sided":
            ax.axvline(-observed, color="#b22222", linewidth=1, linestyle="--", label="- observed (two-sided)")
        ax.set_xlabel("Statistic under the sharp null (re-drawn assignments)")
        ax.set_ylabel("Draws")
        ax.legend(loc="best")
        ax.set_title(f"Randomisation test, p = {self.p_value:.3g}")
        ax.figure.tight_layout()
        return ax


@dataclass(frozen=True)
class Arms:
    """The two conditions compared: ``condition2`` (treatment) minus ``condition1`` (control)."""

    condition1: Any
    condition2: Any
    indicator: np.ndarray  # 1 where condition2, 0 where condition1 (rows of the other arms removed)
    keep: np.ndarray  # rows in one of the two conditions
    term: str


def resolve_arms(frame: pd.DataFrame, treatment: str, condition1: Any, condition2: Any, where: str) -> Arms:
    """Work out which arms are compared; 0/1 treatments need no conditions."""
    values = frame[treatment]
    levels = pd.unique(values)
    if condition1 is None and condition2 is None:
        numeric = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
        if numeric and set(np.asarray(levels, dtype=float)) <= {0.0, 1.0}:
            indicator = check_binary(frame, treatment, where)
            return Arms(0, 1, indicator.astype(float), np.ones(len(frame), bool), treatment)
        if set(map(str, levels)) == {"control", "treatment"}:  # labels written by assign()
            return Arms("control", "treatment", (values == "treatment").to_numpy(dtype=float),
                        np.ones(len(frame), bool), treatment)
        listed = ", ".join(show(v) for v in sorted(levels, key=str)[:8])
        raise SpecError(
            f"{where}: treatment column {treatment!r} has values {listed}; with more than two arms or "
            "non-0/1 codes, say which two to compare with condition1= (control) and condition2= (treatment)."
        )
    if condition1 is None or condition2 is None:
        raise SpecError(f"{where}: give both condition1= (control) and condition2= (treatment), or neither.")
    for name, cond in (("condition1", condition1), ("condition2", condition2)):
        if not (values == cond).any():
            listed = ", ".join(show(v) for v in sorted(levels, key=str)[:8])
            raise DataError(f"{where}: {name}={show(cond)} does not occur in {treatment!r} (values: {listed}).")
    keep = ((values == condition1) | (values == condition2)).to_numpy()
    indicator = (values[keep] == condition2).to_numpy(dtype=float)
    return Arms(condition1, condition2, indicator, keep, f"{condition2} vs {condition1}")


def ols(X: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and residuals of (weighted) least squares."""
    if weights is None:
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    else:
        root = np.sqrt(weights)
        beta, *_ = np.linalg.lstsq(X * root[:, None], y * root, rcond=None)
    return beta, y - X @ beta


def treatment_within_clusters(treated: np.ndarray, codes: np.ndarray, where: str, labels: np.ndarray) -> None:
    """Raise if treatment varies within a cluster (cluster-randomised designs assign whole clusters)."""
    n_clusters = int(codes.max()) + 1
    lo = np.full(n_clusters, np.inf)
    hi = np.full(n_clusters, -np.inf)
    np.minimum.at(lo, codes, treated)
    np.maximum.at(hi, codes, treated)
    mixed = np.flatnonzero(lo != hi)
    if mixed.size:
        names = ", ".join(show(labels[np.flatnonzero(codes == c)[0]]) for c in mixed[:5])
        more = f" and {mixed.size - 5} more" if mixed.size > 5 else ""
        raise DataError(
            f"{where}: treatment must be constant within each cluster in a cluster-randomised design, but "
            f"it varies within {mixed.size} cluster(s): {names}{more}. If units were randomised "
            "individually, drop clusters= (or use regression(..., clusters=) for clustered errors)."
        )


def consort_flow(
    df: pd.DataFrame,
    *,
    assignment: str,
    received: str | None = None,
    observed: str | None = None,
    outcome: str | None = None,
    analysed: pd.Index | None = None,
) -> list[dict[str, Any]]:
    """CONSORT-style participant flow per arm: assigned, received the intervention, lost, analysed.

    ``assignment`` is the randomised arm; ``received`` the treatment actually received (0/1);
    ``observed`` the follow-up response indicator (0/1; else a non-missing outcome counts as
    observed); ``analysed`` the index of the rows used in the estimate.
    """
    cols = [c for c in (assignment, received, observed, outcome) if c]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"CONSORT flow: column(s) {missing} not found in the data.")
    frame = df.loc[df[assignment].notna()]
    rows = []
    for arm, part in frame.groupby(assignment, sort=True):
        label = show(arm).strip("'")
        if label in ("0", "1", "0.0", "1.0", "False", "True"):
            label = f"{'treatment' if label in ('1', '1.0', 'True') else 'control'} ({label})"
        row: dict[str, Any] = {"arm": label, "assigned": int(len(part))}
        if received:
            got = pd.to_numeric(part[received], errors="coerce")
            row["received"] = int((got == 1).sum())
            row["not_received"] = int((got == 0).sum())
        if observed:
            seen = pd.to_numeric(part[observed], errors="coerce")
            row["lost_to_follow_up"] = int((seen != 1).sum())
        elif outcome:
            row["lost_to_follow_up"] = int(part[outcome].isna().sum())
        if analysed is not None:
            row["analysed"] = int(part.index.isin(analysed).sum())
        rows.append(row)
    return rows


def covariate_names(covariates: str | Sequence[str] | None) -> list[str]:
    return as_list(covariates)


def arm_summary(y: np.ndarray, t: np.ndarray) -> list[dict[str, float]]:
    """Mean, SD and n of the outcome per arm."""
    out = []
    for label, mask in (("control", t == 0), ("treatment", t == 1)):
        v = y[mask]
        out.append({"arm": label, "n": int(v.size), "mean": float(v.mean()) if v.size else float("nan"),
                    "sd": float(v.std(ddof=1)) if v.size > 1 else float("nan")})
    return out


def check_arms(t: np.ndarray, where: str) -> None:
    check_treated_and_control(t, where, what="units")


def merge_settings(base: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    out = dict(base)
    out.update({k: v for k, v in extra.items() if v is not None})
    return out
