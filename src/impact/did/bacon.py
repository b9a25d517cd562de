"""Goodman-Bacon (2021) decomposition of the TWFE DiD coefficient into 2x2 comparisons."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from impact.data import (
    MissingPolicy,
    check_absorbing,
    check_binary,
    check_treated_and_control,
    prepare,
)
from impact.did._staggered import fe_regression
from impact.errors import DataError, SampleWarning, recording_warnings, warn
from impact.results import Result, effects_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["COMPARISON_TYPES", "BaconResult", "bacon"]

COMPARISON_TYPES = (
    "Treated vs never treated",
    "Earlier vs later treated",
    "Later vs earlier treated",
    "Later vs always treated",
)
_MARKERS = dict(zip(COMPARISON_TYPES, ("o", "^", "v", "s")))


@dataclass(frozen=True, kw_only=True)
class BaconResult(Result):
    """Result of :func:`bacon`: the TWFE coefficient, and every 2x2 comparison in ``comparisons``.

    ``comparisons`` has one row per 2x2 DiD: ``type``, ``treated`` and ``control`` (timing groups,
    named by their first treated period, ``"never"`` or ``"always"``), ``estimate`` and ``weight``.
    """

    comparisons: pd.DataFrame

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        return {"Goodman-Bacon decomposition": self.plot_decomposition, "Estimates by comparison type": self.plot}

    def plot_decomposition(self, ax: Axes | None = None) -> Axes:
        """Scatter of each 2x2 estimate against its weight, by comparison type; line at the TWFE estimate."""
        import seaborn as sns

        from impact.report.plots import PALETTE, new_axes

        ax = new_axes(ax)
        data = self.comparisons
        sns.scatterplot(data=data, x="weight", y="estimate", hue="type", style="type", markers=_MARKERS,
                        s=70, ax=ax, hue_order=[t for t in COMPARISON_TYPES if t in set(data["type"])])
        ax.axhline(self.estimate, color=PALETTE["estimate"], linestyle="-", linewidth=1,
                   label=f"TWFE = {self.estimate:.4g}")
        ax.axhline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
        ax.set_xlabel("Weight in the TWFE coefficient")
        ax.set_ylabel("2x2 DiD estimate")
        ax.set_title("Goodman-Bacon decomposition")
        ax.legend(fontsize="small")
        return ax


def bacon(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str,
    missing: MissingPolicy = "drop",
) -> BaconResult:
    """Decompose the TWFE coefficient of an absorbing binary treatment into 2x2 DiD comparisons.

    Parameters
    ----------
    df : DataFrame
        Balanced long panel, one row per unit and period.
    outcome, unit, time : str
        Column names; ``time`` is sortable (its order defines before and after).
    treatment : str
        0/1 treatment indicator, absorbing (once 1, always 1).
    missing : {"drop", "error"}
        Rows with missing values are dropped (the panel must still be balanced) or raise.

    Returns
    -------
    BaconResult
        Headline ``"TWFE"``: the coefficient of ``Y ~ D | unit + time`` with a unit-clustered (CR1)
        standard error; rows per comparison type with their total weight and weighted-average
        estimate (no standard errors: the decomposition is descriptive); ``comparisons`` lists every
        2x2 DiD; ``diagnostics`` holds the comparisons, the sum of weights and the reproduction error.

    Notes
    -----
    With timing groups :math:`k` (first treated at :math:`t_k`), never-treated :math:`U`, group
    shares :math:`n_k`, share of periods treated :math:`\\bar D_k`, and :math:`\\hat V^D` the variance of
    the two-way demeaned treatment, Goodman-Bacon (2021, Theorem 1) gives

    .. math:: \\hat\\beta^{TWFE} = \\sum_k s_{kU}\\hat\\beta_{kU} + \\sum_{k<l} \\left[s^k_{kl}\\hat\\beta^k_{kl}
              + s^l_{kl}\\hat\\beta^l_{kl}\\right],

    with :math:`s_{kU} \\propto (n_k+n_U)^2 n_{kU}(1-n_{kU})\\bar D_k(1-\\bar D_k)`,
    :math:`s^k_{kl} \\propto ((n_k+n_l)(1-\\bar D_l))^2 n_{kl}(1-n_{kl})\\frac{\\bar D_k-\\bar D_l}{1-\\bar D_l}
    \\frac{1-\\bar D_k}{1-\\bar D_l}` (early group treated, late group as control before it is treated) and
    :math:`s^l_{kl} \\propto ((n_k+n_l)\\bar D_k)^2 n_{kl}(1-n_{kl})\\frac{\\bar D_l}{\\bar D_k}
    \\frac{\\bar D_k-\\bar D_l}{\\bar D_k}` (late group treated, the already-treated early group as control),
    each divided by :math:`\\hat V^D`; the weights sum to one. Units treated from the first period form
    an "always treated" group that only serves as a control. Covariates are not supported.

    References
    ----------
    Goodman-Bacon, A. (2021). Difference-in-differences with variation in treatment timing.
    *Journal of Econometrics* 225(2), 254-277. https://doi.org/10.1016/j.jeconom.2021.03.014

    Examples
    --------
    >>> import impact as im
    >>> mpdta = im.datasets.load("mpdta")
    >>> mpdta["post"] = ((mpdta["first.treat"] > 0) & (mpdta["year"] >= mpdta["first.treat"])).astype(int)
    >>> res = im.did.bacon(mpdta, outcome="lemp", unit="countyreal", time="year", treatment="post")
    >>> res.comparisons  # doctest: +SKIP
    """
    where = "bacon"
    with recording_warnings() as log:
        prepared = prepare(
            df, where=where, roles={"outcome": outcome, "unit": unit, "time": time, "treatment": treatment},
            numeric=[outcome, treatment], unique=[unit, time], missing=missing, unit=unit,
        )
        frame = prepared.frame
        d = check_binary(frame, treatment, where)
        check_treated_and_control(d, where)
        check_absorbing(frame, unit=unit, time=time, treatment=treatment, where=where)
        unit_codes, units = pd.factorize(frame[unit].to_numpy(), sort=True)
        periods = np.sort(pd.unique(frame[time].to_numpy()))
        time_codes = np.searchsorted(periods, frame[time].to_numpy())
        N, T = len(units), len(periods)
        counts = np.bincount(unit_codes, minlength=N)
        if (counts != T).any():
            short = units[counts != T]
            raise DataError(
                f"{where}: the decomposition needs a balanced panel, but {len(short)} unit(s) are not observed in "
                f"all {T} periods (e.g. {', '.join(map(repr, short[:5]))}). Keep units observed in every period "
                "(the sample flow of the result will record it) or use event_study/imputation instead."
            )
        # first treated period index per unit (T = never treated)
        treated_idx = np.where(d == 1, time_codes, T)
        first = np.full(N, T)
        np.minimum.at(first, unit_codes, treated_idx)
        timings, group_of_unit = np.unique(first, return_inverse=True)
        G = len(timings)
        y = frame[outcome].to_numpy(dtype=float)
        cell = group_of_unit[unit_codes] * T + time_codes
        sums = np.bincount(cell, weights=y, minlength=G * T).reshape(G, T)
        n_units_g = np.bincount(group_of_unit, minlength=G)
        means = sums / n_units_g[:, None]
        share = n_units_g / N
        dbar = (T - timings) / T  # share of periods treated

        def label(g: int) -> str:
            if timings[g] == T:
                return "never"
            if timings[g] == 0:
                return "always"
            return str(periods[timings[g]])

        def did(treated: int, control: int, start: int, switch: int, stop: int) -> float:
            pre, post = slice(start, switch), slice(switch, stop)
            gap = means[treated] - means[control]
            return float(gap[post].mean() - gap[pre].mean())

        rows = []
        never = [g for g in range(G) if timings[g] == T]
        for k in range(G):
            tk = timings[k]
            if tk == T or tk == 0:
                continue
            for u in never:
                nku = share[k] / (share[k] + share[u])
                s = (share[k] + share[u]) ** 2 * nku * (1 - nku) * dbar[k] * (1 - dbar[k])
                rows.append((COMPARISON_TYPES[0], label(k), label(u), did(k, u, 0, tk, T), s))
        for k in range(G):  # k early, l late
            for l_ in range(k + 1, G):
                tk, tl = timings[k], timings[l_]
                if tl == T:
                    continue
                nkl = share[k] / (share[k] + share[l_])
                base = nkl * (1 - nkl) * (dbar[k] - dbar[l_])
                if tk > 0:  # early treated, late not yet treated as control (window before tl)
                    s_k = ((share[k] + share[l_]) * (1 - dbar[l_])) ** 2 * base / (1 - dbar[l_]) * (1 - dbar[k]) / (1 - dbar[l_])
                    rows.append((COMPARISON_TYPES[1], label(k), label(l_), did(k, l_, 0, tk, tl), s_k))
                s_l = ((share[k] + share[l_]) * dbar[k]) ** 2 * base / dbar[k] * dbar[l_] / dbar[k]
                kind = COMPARISON_TYPES[3] if tk == 0 else COMPARISON_TYPES[2]
                rows.append((kind, label(l_), label(k), did(l_, k, tk, tl, T), s_l))
        comparisons = pd.DataFrame(rows, columns=["type", "treated", "control", "estimate", "raw_weight"])
        total = float(comparisons["raw_weight"].sum())
        comparisons["weight"] = comparisons["raw_weight"] / total
        comparisons = comparisons.drop(columns="raw_weight")
        if len(never) == 0:
            warn(
                SampleWarning,
                f"{where}: there are no never-treated units; the TWFE coefficient rests only on timing "
                "comparisons, including already-treated units used as controls.",
            )
        fit = fe_regression(
            y, d.astype(float)[:, None], [treatment], unit_codes=unit_codes.astype(np.int64),
            time_codes=time_codes.astype(np.int64), n_periods=T, weights=None,
            cluster_values=frame[unit].to_numpy(), cluster_name=unit, vcov="cluster",
            treated=d, where=where,
        )
        beta = float(fit.coef[0])
        decomposed = float((comparisons["weight"] * comparisons["estimate"]).sum())
        # variance of the two-way demeaned treatment, the denominator of every weight
        v_d = float(fit.X[:, 0] @ fit.X[:, 0]) / len(y)
        by_type = comparisons.groupby("type", sort=False).apply(
            lambda g: pd.Series({"weight": g["weight"].sum(),
                                 "estimate": float(np.average(g["estimate"], weights=g["weight"])) if g["weight"].sum() > 0 else math.nan}),
            include_groups=False,
        ).reindex([t for t in COMPARISON_TYPES if t in set(comparisons["type"])])
        se = math.sqrt(fit.vcov[0, 0])
        effects = effects_table(
            ["TWFE", *by_type.index], [beta, *by_type["estimate"]], [se] + [math.nan] * len(by_type),
            df=[float(fit.df[0])] + [math.inf] * len(by_type), weight=[1.0, *by_type["weight"]],
        )
        effects.loc[1:, ["p_value", "conf_low", "conf_high"]] = math.nan
        diagnostics = {
            "comparisons": comparisons.to_dict(orient="records"),
            "weights_by_type": {t: float(w) for t, w in by_type["weight"].items()},
            "sum_of_weights": float(comparisons["weight"].sum()),
            "weighted_sum_of_2x2": decomposed,
            "reproduction_error": abs(decomposed - beta),
            "variance_of_demeaned_treatment": v_d,
            "sum_of_unnormalised_weights": total,
            "timing_groups": {label(g): int(n_units_g[g]) for g in range(G)},
        }
        res = BaconResult(
            design="bacon",
            estimand="TWFE DiD coefficient, decomposed into 2x2 comparisons",
            effects=effects,
            headline="TWFE",
            inference=f"TWFE coefficient: {fit.description}; comparison-type rows are descriptive weighted averages (no standard errors)",
            n_obs=len(y), outcome=outcome, n_units=N, n_treated=int(np.unique(unit_codes[d == 1]).size),
            n_clusters=fit.n_clusters,
            settings={"treatment": treatment, "assumption": "Each 2x2 comparison identifies an ATT only under parallel "
                      "trends; comparisons with already-treated controls are biased when effects change over time."},
            sample_flow=prepared.flow, diagnostics=diagnostics, comparisons=comparisons,
        )
        res = res.replace(warnings=tuple(log))
    return res
