"""The result type family shared by every estimator.

A :class:`Result` is an immutable record of one estimation: a table of effects (one row per
reported effect, ``term`` naming it), which row is the headline, how inference was done, sample
sizes, the sample flow (rows in, dropped and why), diagnostics, and the warnings that were raised.
Designs that need more (group-time ATTs, donor weights, matched samples) subclass it and add fields;
they never re-implement ``tidy``/``summary``/``to_dict``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from impact.errors import SpecError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["TIDY_COLUMNS", "FlowStep", "Result", "compare", "effects_table", "jsonable"]

TIDY_COLUMNS = ("term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high")


@dataclass(frozen=True)
class FlowStep:
    """One step of the sample flow: how many rows (and units) remain after ``step`` and why."""

    step: str
    rows: int
    units: int | None = None
    note: str = ""


def effects_table(
    terms: Sequence[str],
    estimates: Sequence[float] | np.ndarray,
    std_errors: Sequence[float] | np.ndarray,
    *,
    df: float | Sequence[float] | np.ndarray = math.inf,
    level: float = 0.95,
    p_values: Sequence[float] | np.ndarray | None = None,
    conf_low: Sequence[float] | np.ndarray | None = None,
    conf_high: Sequence[float] | np.ndarray | None = None,
    **extra: Sequence[Any] | np.ndarray,
) -> pd.DataFrame:
    """Build the tidy effects table from estimates and standard errors.

    Statistics are ``estimate / std_error``; p-values and intervals use Student's t with ``df``
    degrees of freedom (``inf`` for the normal) unless given explicitly (bootstrap, permutation).
    Extra keyword arguments become extra columns (e.g. ``event_time=``, ``group=``).
    """
    est = np.asarray(estimates, dtype=float)
    se = np.asarray(std_errors, dtype=float)
    dof = np.broadcast_to(np.asarray(df, dtype=float), est.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(se > 0, est / se, np.nan)
    crit = np.where(np.isinf(dof), stats.norm.ppf(0.5 + level / 2), stats.t.ppf(0.5 + level / 2, np.where(np.isinf(dof), 1, dof)))
    if p_values is None:
        p = np.where(np.isinf(dof), 2 * stats.norm.sf(np.abs(stat)), 2 * stats.t.sf(np.abs(stat), np.where(np.isinf(dof), 1, dof)))
    else:
        p = np.asarray(p_values, dtype=float)
    low = est - crit * se if conf_low is None else np.asarray(conf_low, dtype=float)
    high = est + crit * se if conf_high is None else np.asarray(conf_high, dtype=float)
    table = pd.DataFrame(
        {
            "term": list(terms),
            "estimate": est,
            "std_error": se,
            "statistic": stat,
            "p_value": p,
            "conf_low": low,
            "conf_high": high,
            "df": dof,
        }
    )
    for name, values in extra.items():
        table[name] = list(values)
    return table


def jsonable(value: Any) -> Any:
    """Convert numpy/pandas values, dataclasses and containers into JSON-serialisable objects."""
    if isinstance(value, float | np.floating):
        v = float(value)
        return None if math.isnan(v) else (str(v) if math.isinf(v) else v)
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True, kw_only=True)
class Result:
    """Immutable result of one estimation.

    Attributes
    ----------
    design : str
        Short name of the estimator, e.g. ``"twfe"``, ``"att_gt"``, ``"difference_in_means"``.
    estimand : str
        What is estimated, e.g. ``"ATT"``, ``"ATE"``, ``"LATE"``.
    effects : DataFrame
        At least the columns of :data:`TIDY_COLUMNS` plus ``df``; one row per reported effect.
    headline : str
        The ``term`` of the headline effect.
    inference : str
        How standard errors, p-values and intervals were obtained, in words.
    """

    design: str
    estimand: str
    effects: pd.DataFrame
    headline: str
    inference: str
    n_obs: int
    outcome: str | None = None
    level: float = 0.95
    n_units: int | None = None
    n_treated: int | None = None
    n_clusters: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    sample_flow: tuple[FlowStep, ...] = ()
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    vcov: np.ndarray | None = field(default=None, repr=False)
    # the fitted linear model (impact.inference.htz.LinearFit) of designs fitted with vcov="CR2", so
    # that joint CR2 tests (htz_test) can be run later; never serialised
    linear_fit: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        missing = [c for c in TIDY_COLUMNS if c not in self.effects.columns]
        if missing:
            raise ValueError(f"effects table lacks columns {missing}")  # programming error, not user input
        if self.headline not in set(self.effects["term"]):
            raise ValueError(f"headline term {self.headline!r} is not among the effects")
        object.__setattr__(self, "effects", self.effects.reset_index(drop=True).copy())

    # -- headline ---------------------------------------------------------------------------
    def _headline_row(self) -> pd.Series:
        return self.effects.loc[self.effects["term"] == self.headline].iloc[0]

    @property
    def estimate(self) -> float:
        """The headline effect."""
        return float(self._headline_row()["estimate"])

    @property
    def std_error(self) -> float:
        """Standard error of the headline effect."""
        return float(self._headline_row()["std_error"])

    @property
    def p_value(self) -> float:
        """p-value of the headline effect (two-sided, null of no effect)."""
        return float(self._headline_row()["p_value"])

    def conf_int(self, level: float | None = None) -> tuple[float, float]:
        """Confidence interval of the headline effect.

        At the level the result was computed with, the stored interval is returned (it may come from a
        bootstrap or test inversion). At another level, a Wald interval with the stored degrees of
        freedom is computed.
        """
        row = self._headline_row()
        if level is None or math.isclose(level, self.level):
            return float(row["conf_low"]), float(row["conf_high"])
        if not 0 < level < 1:
            raise SpecError(f"level must be between 0 and 1, got {level}")
        dof = float(row["df"]) if "df" in row and pd.notna(row["df"]) else math.inf
        crit = stats.norm.ppf(0.5 + level / 2) if math.isinf(dof) else stats.t.ppf(0.5 + level / 2, dof)
        est, se = float(row["estimate"]), float(row["std_error"])
        return est - crit * se, est + crit * se

    # -- tables and text --------------------------------------------------------------------
    def tidy(self) -> pd.DataFrame:
        """One row per reported effect: term, estimate, std_error, statistic, p_value, conf_low,
        conf_high, followed by design-specific columns (df, event_time, group, ...)."""
        extra = [c for c in self.effects.columns if c not in (*TIDY_COLUMNS, "inference")]
        table = self.effects.loc[:, [*TIDY_COLUMNS, *extra]].copy()
        # Every row names the method behind its p-value and interval (API.md); designs whose rows
        # differ (e.g. a permutation p-value beside analytic ones) store a per-row column.
        if "inference" in self.effects.columns:
            rows = self.effects["inference"].astype(object)
            # a row text starting with "; " is a note on that row (e.g. why its interval is unbounded)
            table["inference"] = [self.inference if not isinstance(r, str) and pd.isna(r)
                                  else self.inference + r if str(r).startswith("; ") else r for r in rows]
        else:
            table["inference"] = self.inference
        return table

    def replace(self, **changes: Any) -> Result:
        """A copy with some fields changed (results are immutable)."""
        return dataclasses.replace(self, **changes)

    def summary(self) -> str:
        """Plain-text summary: design, sample, inference, effects table and warnings."""
        lines = [
            f"{self.design}: {self.estimand}" + (f" on {self.outcome}" if self.outcome else ""),
            f"Observations: {self.n_obs:,}"
            + (f"   Units: {self.n_units:,}" if self.n_units is not None else "")
            + (f"   Treated: {self.n_treated:,}" if self.n_treated is not None else "")
            + (f"   Clusters: {self.n_clusters:,}" if self.n_clusters is not None else ""),
            f"Inference: {self.inference}",
            "",
        ]
        table = self.tidy().loc[:, list(TIDY_COLUMNS)].set_index("term")
        pct = f"{self.level:.0%}"
        table.columns = ["Estimate", "Std. error", "Statistic", "p-value", f"{pct} low", f"{pct} high"]
        lines.append(table.to_string(float_format=lambda v: f"{v:.4g}"))
        if self.warnings:
            lines += ["", "Warnings:"] + [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record: estimates, settings, sample sizes, sample flow, warnings."""
        low, high = self.conf_int()
        out = {
            "design": self.design,
            "estimand": self.estimand,
            "outcome": self.outcome,
            "headline": {
                "term": self.headline,
                "estimate": self.estimate,
                "std_error": self.std_error,
                "p_value": self.p_value,
                "conf_low": low,
                "conf_high": high,
                "level": self.level,
            },
            "inference": self.inference,
            "effects": self.tidy(),
            "n_obs": self.n_obs,
            "n_units": self.n_units,
            "n_treated": self.n_treated,
            "n_clusters": self.n_clusters,
            "settings": self.settings,
            "sample_flow": list(self.sample_flow),
            "diagnostics": self.diagnostics,
            "warnings": list(self.warnings),
        }
        result = jsonable(out)
        json.dumps(result)  # fail here, not in the caller, if something slipped through
        return result

    # -- figures ----------------------------------------------------------------------------
    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        """Named drawing functions for reports: title -> ``draw(ax) -> Axes``.

        The base result offers its coefficient plot; designs add their diagnostics (event study with
        bands, balance love plot, placebo paths, ...). Reports call these and never estimate.
        """
        return {"Estimates with confidence intervals": self.plot}

    def plot(self, ax: Axes | None = None) -> Axes:
        """Coefficient plot of every reported effect with its confidence interval.

        Rows with an ``event_time`` column are drawn as an event-study path against event time.
        """
        from impact.report.plots import coefficient_plot

        return coefficient_plot(self.tidy(), ax=ax, title=f"{self.design}: {self.outcome or ''}".strip(": "))


def compare(results: Sequence[Result] | Mapping[str, Result], *, terms: str = "headline") -> pd.DataFrame:
    """Side-by-side table of several results.

    Parameters
    ----------
    results : sequence or mapping of Result
        With a mapping, its keys name the columns; otherwise ``design`` (numbered if repeated).
    terms : {"headline", "all"}
        Only the headline effect of each result, or every effect.
    """
    if terms not in ("headline", "all"):
        raise SpecError(f"terms must be one of 'headline', 'all'; got {terms!r}")
    items = list(results.items()) if isinstance(results, Mapping) else [(r.design, r) for r in results]
    rows = []
    seen: dict[str, int] = {}
    for name, res in items:
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name} ({seen[name]})"
        table = res.tidy()
        if terms == "headline":
            table = table.loc[table["term"] == res.headline]
        for _, row in table.iterrows():
            rows.append(
                {
                    "model": label,
                    "outcome": res.outcome,
                    **{c: row[c] for c in TIDY_COLUMNS},
                    "n_obs": res.n_obs,
                    "inference": res.inference,
                }
            )
    return pd.DataFrame(rows)
