"""Abadie synthetic control with in-space, in-time and leave-one-out placebos."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from impact.data import check_column_arguments, check_integer, check_level, coerce_period  # shared option validation
from impact.data import as_list, check_option, prepare
from impact.errors import (
    DataError,
    FragileInferenceWarning,
    OverlapWarning,
    SmallComparisonWarning,
    SpecError,
    recording_warnings,
    warn,
)
from impact.inference.inversion import InvertedTest, invert_quadratic_permutation_test
from impact.results import Result, effects_table
from impact.synth import _plots
from impact.synth._panel import placebo_start, to_wide
from impact.synth._ridge import choose_lambda, ridge_adjustment
from impact.synth._threads import single_threaded_blas
from impact.synth._weights import Fit, fit_weights, standardise

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["synthetic_control", "augmented_synthetic_control", "SyntheticControlResult", "VMethod"]

VMethod = Literal["nested", "outcome_only", "equal", "regression"]
V_METHODS = ("nested", "outcome_only", "equal", "regression")
Inference = Literal["placebo", "none"]
INFERENCE = ("placebo", "none")
WHERE = "synthetic_control"
ASSUMPTION = (
    "Absent the programme, the treated unit's outcome would have followed the weighted average of "
    "the donor units that reproduces its pre-programme outcomes and predictors (no spillovers to donors)."
)


@dataclass(frozen=True)
class _Spec:
    """Everything needed to refit with another treated unit, donor pool or treatment time."""

    Y: np.ndarray  # units x periods outcome
    units: pd.Index
    periods: pd.Index
    X: np.ndarray | None  # units x k raw predictors
    predictor_names: tuple[str, ...]
    pre: np.ndarray  # bool over periods
    mspe: np.ndarray  # bool over periods
    v_method: str
    custom_v: np.ndarray | None
    max_iter: int
    call: dict[str, Any]
    frame: pd.DataFrame
    ridge: float | None = None  # ridge augmentation (ASCM) with this lambda

    def fit(self, treated: int, donors: np.ndarray) -> Fit:
        Z1 = self.Y[treated, self.mspe]
        Z0 = self.Y[np.ix_(donors, np.flatnonzero(self.mspe))].T
        if self.ridge is not None:
            base = fit_weights(None, None, Z1, Z0, v_method="outcome_only")
            w = base.weights + ridge_adjustment(Z1, Z0, base.weights, self.ridge)
            e = Z1 - Z0 @ w
            return Fit(w, None, float(e @ e) / Z1.size, f"ridge-augmented SC (lambda={self.ridge:.4g}) on the exact simplex fit", 1)
        if self.X is None:
            return fit_weights(None, None, Z1, Z0, v_method="outcome_only")
        rows = np.concatenate([[treated], donors])
        Xs = standardise(self.X[rows])
        return fit_weights(Xs[0], Xs[1:].T, Z1, Z0, v_method=self.v_method, custom_v=self.custom_v, max_iter=self.max_iter)

    def gaps(self, treated: int, donors: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return self.Y[treated] - weights @ self.Y[donors]


def _warn_coarse_placebo(n_kept: int, alpha: float, att_test: InvertedTest) -> None:
    """Say how coarse the permutation distribution is when it has few placebos."""
    smallest = 1.0 / n_kept
    if smallest > alpha * (1 + 1e-9):
        warn(
            SmallComparisonWarning,
            f"{WHERE}.placebo: only {n_kept - 1} placebo units, so the smallest attainable permutation p-value "
            f"is 1/{n_kept} = {smallest:.3f} > {alpha:.2g}: a test at that level cannot reject and the interval is "
            f"[{att_test.conf_low:.4g}, {att_test.conf_high:.4g}]. Widen the donor pool, or report the ratio rank and "
            "the placebo plot rather than 'significance'.",
        )
    elif smallest >= alpha * (1 - 1e-9):
        warn(
            SmallComparisonWarning,
            f"{WHERE}.placebo: {n_kept - 1} placebo units, so the smallest attainable permutation p-value is "
            f"1/{n_kept} = {smallest:.3f}: a test at the {alpha:.2g} level rejects only when the treated unit's "
            "ratio is the largest of all, and p-values move in steps of that size. More donors give a finer test.",
        )


def _rmspe(gap: np.ndarray) -> float:
    return float(np.sqrt(np.mean(gap**2))) if gap.size else math.nan


@dataclass(frozen=True, kw_only=True)
class SyntheticControlResult(Result):
    """Result of :func:`synthetic_control`.

    Attributes
    ----------
    weights : Series
        Donor weights (on the simplex), indexed by donor unit.
    v_weights : Series or None
        Predictor weights V (None for the outcome-only fit).
    paths : DataFrame
        ``time, treated, synthetic, gap`` for every period.
    balance : DataFrame
        Predictor balance: treated, synthetic, donor mean, V weight.
    placebo_table : DataFrame or None
        After :meth:`placebo`: one row per unit (treated first) with pre/post RMSPE and their ratio.
    """

    weights: pd.Series
    v_weights: pd.Series | None = None
    paths: pd.DataFrame
    balance: pd.DataFrame
    treated_unit: Any
    treatment_time: Any
    placebo_gaps: pd.DataFrame | None = field(default=None, repr=False)
    placebo_table: pd.DataFrame | None = None
    loo_paths: pd.DataFrame | None = field(default=None, repr=False)
    spec: _Spec = field(repr=False, compare=False)

    # -- inference ---------------------------------------------------------------------------
    def placebo(self, drop_poor_fit: float | None = None, *, include_treated_in_pool: bool = True) -> SyntheticControlResult:
        """In-space placebos: refit treating every donor as if it were treated.

        Parameters
        ----------
        drop_poor_fit : float, optional
            Leave out placebos whose pre-period MSPE exceeds ``drop_poor_fit`` times the treated
            unit's (Abadie, Diamond & Hainmueller 2010 use 20, 5 and 2).
        include_treated_in_pool : bool
            Whether the treated unit joins each placebo's donor pool (default yes, as Abadie,
            Diamond & Hainmueller 2010, p. 501: "shifting California to the donor pool", so that all
            J + 1 fits use the same construction; ``False`` follows SCtools' generate.placebos).

        Returns
        -------
        SyntheticControlResult
            A new result whose ATT row carries the permutation p-value: the share of units (treated
            included) whose post/pre RMSPE ratio is at least the treated unit's. Per-period rows get
            the share of units whose absolute gap relative to their pre-period RMSPE,
            ``|gap_t| / RMSPE_pre``, is at least the treated's. Every row's interval
            collects the effects ``tau`` that this test does not reject at ``1 - level``.

        Notes
        -----
        With J donors the smallest attainable p-value is ``1 / (J + 1)`` (a typed warning says so
        when it exceeds half the test level).

        Interval (test inversion, Firpo & Possebom 2018): under the sharp null that the effect is
        ``tau`` in every post-period, the treated unit's post-period gaps are ``gap_1t - tau`` and a
        placebo j's are ``gap_jt + w_j1 tau`` (``w_j1`` its weight on the treated unit, which is
        fixed because the weights use pre-period data only), so each ratio is a quadratic function
        of ``tau`` and the set ``{tau : p(tau) > 1 - level}`` is computed exactly
        (:mod:`impact.inference.inversion`). No standard error is reported: with one treated unit
        there is no sampling variance to estimate; the ``std_error`` column is empty by design.
        """
        if drop_poor_fit is not None and not (isinstance(drop_poor_fit, int | float) and drop_poor_fit > 0):
            raise SpecError(f"drop_poor_fit must be a positive number (e.g. 5) or None; got {drop_poor_fit!r}.")
        settings = {"drop_poor_fit": drop_poor_fit, "include_treated_in_pool": include_treated_in_pool}
        if self.placebo_table is not None and self.diagnostics.get("placebo_settings") == settings:
            return self  # already computed with these settings (synthetic_control runs it by default)
        spec = self.spec
        with recording_warnings() as log, single_threaded_blas():
            treated = int(spec.units.get_loc(self.treated_unit))
            donors = np.array([spec.units.get_loc(u) for u in self.weights.index])
            gaps = {self.treated_unit: self.paths["gap"].to_numpy()}
            # Loading of each unit's gap on the treated unit's outcome: -1 for the treated unit itself,
            # its weight in a placebo's synthetic control (0 when it is left out of the pools). Under the
            # null of a constant effect tau every post-period gap is then ``gap + loading * tau``.
            loading = [-1.0]
            for j in donors:
                pool = donors[donors != j]
                if include_treated_in_pool:
                    pool = np.concatenate([pool, [treated]])
                fit = spec.fit(int(j), pool)
                gaps[spec.units[j]] = spec.gaps(int(j), pool, fit.weights)
                loading.append(float(fit.weights[-1]) if include_treated_in_pool else 0.0)
            wide = pd.DataFrame(gaps, index=spec.periods)
            g = wide.to_numpy()
            post = ~spec.pre
            pre_mspe = np.mean(g[spec.pre] ** 2, axis=0)
            post_mspe = np.mean(g[post] ** 2, axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.sqrt(post_mspe) / np.sqrt(pre_mspe)
            kept = np.ones(len(wide.columns), dtype=bool)
            if drop_poor_fit is not None:
                kept = pre_mspe <= drop_poor_fit * pre_mspe[0]
                kept[0] = True
            table = pd.DataFrame(
                {
                    "unit": list(wide.columns),
                    "treated": [True] + [False] * (len(wide.columns) - 1),
                    "pre_rmspe": np.sqrt(pre_mspe),
                    "post_rmspe": np.sqrt(post_mspe),
                    "ratio": ratio,
                    "kept": kept,
                    "loading_on_treated": loading,
                }
            )
            n_kept = int(kept.sum())
            alpha = round(1.0 - self.level, 12)
            gaps_post = g[post][:, kept].T  # (kept units, post-periods), treated first
            slopes = np.broadcast_to(np.asarray(loading)[kept][:, None], gaps_post.shape)
            att_test = invert_quadratic_permutation_test(
                gaps_post, slopes, np.maximum(pre_mspe[kept], np.finfo(float).tiny), alpha=alpha,
                estimate=float(gaps_post[0].mean()),
            )
            # Each period's gap is studentised by the unit's pre-period fit, as the ATT's ratio is: the raw
            # |gap_t| rank rejected 22% of true nulls at 5% when the treated region's noise sd was twice
            # the donors' (analyses/simulations/synth_size.py, 'treated noisier'); the studentised rank
            # stays exact when units are exchangeable.
            period_tests = [
                invert_quadratic_permutation_test(gaps_post[:, t], slopes[:, t], np.maximum(pre_mspe[kept], np.finfo(float).tiny),
                                                  alpha=alpha, estimate=float(gaps_post[0, t]))
                for t in range(gaps_post.shape[1])
            ]
            if att_test.empty:
                warn(
                    FragileInferenceWarning,
                    f"{WHERE}.placebo: no constant effect is compatible with the placebo test at the {alpha:.2g} level: "
                    "whatever effect is subtracted, the treated unit's post/pre RMSPE ratio stays the most extreme, so "
                    "the effect varies over the post-period (or the pre-period fit is too close to be credible). The "
                    "interval is reported as the single point with the largest p-value; read the per-period gaps instead.",
                )
            rank = int(np.sum(ratio[kept] > ratio[0]) + 1)
            _warn_coarse_placebo(n_kept, alpha, att_test)
        tests = [att_test, *period_tests]
        effects = self.effects.copy()
        effects["p_value"] = [t.p_value for t in tests]
        effects["conf_low"] = [t.conf_low for t in tests]
        effects["conf_high"] = [t.conf_high for t in tests]
        over = f"placebo permutation over {n_kept - 1} donors"
        effects["inference"] = [
            f"{over}: rank of the post/pre RMSPE ratio; interval by test inversion (constant effect)"
        ] + [f"{over}: rank of the period's absolute gap / pre-period RMSPE; interval by test inversion"] * len(period_tests)
        diagnostics = dict(self.diagnostics)
        diagnostics.update(
            {
                "placebo_p_value": att_test.p_value,
                "placebo_rank": rank,
                "placebo_units": n_kept - 1,
                "placebo_smallest_p_value": 1.0 / n_kept,
                "placebo_dropped_poor_fit": int((~kept).sum()),
                "placebo_drop_poor_fit": drop_poor_fit,
                "placebo_settings": settings,
                "placebo_interval_connected": att_test.connected,
                "placebo_ratios": table,
            }
        )
        inference = (
            f"{over} (in-space placebos, Abadie, Diamond & Hainmueller 2010): the treated unit's post/pre "
            f"RMSPE ratio ranks {rank} of {n_kept}"
            + (f" (placebos with pre-MSPE > {drop_poor_fit}x the treated's dropped)" if drop_poor_fit else "")
            + f"; {self.level:.0%} interval by inverting that test under a constant effect (Firpo & Possebom 2018); "
            "no standard error (one treated unit)"
        )
        return dataclasses.replace(
            self,
            effects=effects,
            inference=inference,
            diagnostics=diagnostics,
            placebo_gaps=wide,
            placebo_table=table,
            warnings=self.warnings + tuple(log),
        )

    def in_time_placebo(self, fake_time: Any) -> SyntheticControlResult:
        """Refit as if the programme had started at ``fake_time`` (before the real start), using only
        periods before the real start. A sizeable 'effect' before the real start undermines the design."""
        call = dict(self.spec.call)
        time = call["time"]
        if not fake_time < self.treatment_time:
            raise SpecError(f"in_time_placebo: fake_time={fake_time!r} must be before the real treatment_time={self.treatment_time!r}.")
        frame = self.spec.frame
        before = frame.loc[frame[time] < self.treatment_time]
        call["treatment_time"] = fake_time
        call["mspe_periods"] = None
        periods = call.get("predictor_periods")
        if periods is not None and any(p >= fake_time for p in as_list(periods) if not isinstance(p, str)):
            call["predictor_periods"] = None
        if self.spec.ridge is not None:
            keep = ("outcome", "unit", "time", "treated_unit", "treatment_time", "donors", "level")
            return augmented_synthetic_control(before, ridge=self.spec.ridge, **{k: call[k] for k in keep})
        return synthetic_control(before, **call)

    def pretrend_test(self, placebo_periods: int | None = None) -> dict[str, Any]:
        """:meth:`in_time_pretrend_test` (what :func:`impact.did.pretrend_test` runs on this result)."""
        return self.in_time_pretrend_test(placebo_periods)

    def in_time_pretrend_test(self, placebo_periods: int | None = None) -> dict[str, Any]:
        """In-time placebo test of the pre-period fit, with the design's own placebo permutation test.

        :meth:`in_time_placebo` with the pretend start ``placebo_periods`` periods before the real one
        (default: half of the pre-periods, rounded down, leaving at least two earlier ones): only
        periods before the real start enter, so the in-space permutation of the post/pre RMSPE ratio
        is exact under the sharp null that those outcomes do not depend on which unit is treated
        (Abadie, Diamond & Hainmueller 2015, in-time placebos). Returns the dict of
        :func:`impact.did.pretrend_test` plus the placebo ``estimate`` and its interval."""
        where = f"{WHERE}.pretrend_test"
        pre_periods = self.spec.periods[self.spec.pre]
        n_pre = len(pre_periods)
        _, fake = placebo_start(pre_periods, n_pre, placebo_periods, where, repr(self.treatment_time))
        placebo = self.in_time_placebo(fake)
        diag = placebo.diagnostics
        low, high = placebo.conf_int()
        return {
            "statistic": float(diag.get("rmspe_ratio", math.nan)), "df_num": 1.0, "df_denom": None,
            "p_value": placebo.p_value, "estimate": placebo.estimate, "conf_low": low, "conf_high": high,
            "method": (f"in-time placebo: synthetic control refitted on the {n_pre} periods before {self.treatment_time!r} "
                       f"as if the programme had started at {fake!r}; " + placebo.inference),
            "n_assignments": None if diag.get("placebo_units") is None else diag["placebo_units"] + 1, "exact": True,
            "smallest_p": diag.get("placebo_smallest_p_value"), "pre_periods": n_pre, "placebo_start": fake,
            "assumption": (f"sharp null: outcomes in the {n_pre} periods before the start do not depend on which unit is "
                           "treated (no anticipation, a stable pre-period fit); exact, since no unit is treated in them"),
            "warnings": placebo.warnings,
        }

    def leave_one_out(self) -> SyntheticControlResult:
        """Refit once without each donor that has a positive weight; the new result holds the
        synthetic paths (``loo_paths``, one column per dropped donor) and the ATT range in diagnostics."""
        spec = self.spec
        treated = int(spec.units.get_loc(self.treated_unit))
        donors = np.array([spec.units.get_loc(u) for u in self.weights.index])
        positive = [u for u, w in self.weights.items() if abs(w) > 1e-8]
        if len(donors) - 1 < 2:
            raise DataError(f"{WHERE}.leave_one_out: needs at least 3 donors; there are {len(donors)}.")
        paths, rows = {}, []
        post = ~spec.pre
        with single_threaded_blas():
            fits = {u: spec.fit(treated, donors[donors != spec.units.get_loc(u)]) for u in positive}
        for u in positive:
            j = spec.units.get_loc(u)
            pool = donors[donors != j]
            synthetic = fits[u].weights @ spec.Y[pool]
            gap = spec.Y[treated] - synthetic
            paths[f"without {u}"] = synthetic
            rows.append({"dropped": u, "att": float(gap[post].mean()), "pre_rmspe": _rmspe(gap[spec.pre])})
        table = pd.DataFrame(rows)
        diagnostics = dict(self.diagnostics)
        diagnostics["leave_one_out"] = table
        diagnostics["leave_one_out_att_range"] = [float(table["att"].min()), float(table["att"].max())] if len(table) else None
        return dataclasses.replace(self, loo_paths=pd.DataFrame(paths, index=spec.periods), diagnostics=diagnostics)

    # -- figures -----------------------------------------------------------------------------
    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        """Paths, gap and weights; with placebos the spaghetti plot and the RMSPE-ratio histogram;
        with leave-one-out fits their paths."""
        outcome = self.outcome or "outcome"
        figs: dict[str, Callable[[Axes | None], Axes]] = {
            "Treated and synthetic paths": lambda ax=None: _plots.paths_plot(
                self.paths, treatment_time=self.treatment_time, treated_label=str(self.treated_unit), outcome=outcome, ax=ax
            ),
            "Gap between treated and synthetic": lambda ax=None: _plots.gap_plot(self.paths, treatment_time=self.treatment_time, ax=ax),
            "Donor weights": lambda ax=None: _plots.weights_plot(self.weights, ax=ax),
        }
        if self.placebo_gaps is not None and self.placebo_table is not None:
            kept = set(self.placebo_table.loc[self.placebo_table["kept"], "unit"])
            figs["In-space placebo gaps"] = lambda ax=None: _plots.placebo_plot(
                self.placebo_gaps, treated=self.treated_unit, kept=kept, treatment_time=self.treatment_time, ax=ax
            )
            figs["Post/pre RMSPE ratios"] = lambda ax=None: _plots.ratio_plot(self.placebo_table, treated=self.treated_unit, ax=ax)
        if self.loo_paths is not None:
            figs["Leave-one-out synthetic controls"] = lambda ax=None: _plots.loo_plot(
                self.paths, self.loo_paths, treatment_time=self.treatment_time, outcome=outcome, ax=ax
            )
        return figs


def _parse_special(special: Any, periods: pd.Index) -> list[tuple[str, list, str]]:
    """Normalise special predictors into (column, periods, label) triples."""
    if special is None:
        return []
    if isinstance(special, dict):
        special = list(special.items())
    out = []
    for item in special:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise SpecError(
                f"{WHERE}: each special predictor must be a (column, periods) pair, e.g. ('bmprison', 1990) "
                f"or ('income', [1985, 1986, 1987]); got {item!r}."
            )
        column, when = item
        when_list = list(when) if isinstance(when, list | tuple | range | np.ndarray | pd.Index) else [when]
        if not when_list:
            raise SpecError(f"{WHERE}: special predictor {column!r} has an empty list of periods.")
        label = f"{column}({when_list[0]})" if len(when_list) == 1 else f"{column}({when_list[0]}-{when_list[-1]})"
        out.append((str(column), when_list, label))
    return out


def synthetic_control(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    treated_unit: Any,
    treatment_time: Any,
    predictors: str | Sequence[str] | None = None,
    predictor_periods: Sequence[Any] | None = None,
    special_predictors: Sequence[tuple[str, Any]] | dict[str, Any] | None = None,
    v_method: VMethod = "nested",
    custom_v: Sequence[float] | None = None,
    donors: Sequence[Any] | None = None,
    mspe_periods: Sequence[Any] | None = None,
    max_iter: int = 1000,
    level: float = 0.95,
    inference: Inference = "placebo",
) -> SyntheticControlResult:
    """Abadie synthetic control for one treated unit.

    Parameters
    ----------
    df : DataFrame
        Balanced long panel (one row per unit and period).
    outcome, unit, time : str
        Column names.
    treated_unit : scalar
        Value of ``unit`` that is treated.
    treatment_time : scalar
        First treated period; periods before it are the pre-period.
    predictors : str or list of str, optional
        Variables averaged over ``predictor_periods`` (default: all pre-periods).
    predictor_periods : list, optional
        Periods over which ``predictors`` are averaged.
    special_predictors : list of (column, periods) pairs, optional
        A variable in one period (``("bmprison", 1990)``) or averaged over several
        (``("cigsale", [1980, 1981, 1982])``); R Synth's ``special.predictors``.
    v_method : {"nested", "outcome_only", "equal", "regression"}
        How the predictor weights V are chosen (see Notes). Without predictors, ``"outcome_only"``
        is used whatever is passed.
    custom_v : list of float, optional
        Fixed predictor weights (one per predictor, in the order of ``predictors`` then
        ``special_predictors``); overrides ``v_method``.
    donors : list, optional
        Donor units (default: every unit other than the treated one).
    mspe_periods : list, optional
        Periods whose outcome MSPE V minimises (default: every pre-period; Stata's
        ``mspeperiod()``, R Synth's ``time.optimize.ssr``).
    max_iter : int
        Iteration cap of the outer (V) optimisation.
    level : float
        Confidence level of the placebo-test intervals.
    inference : {"placebo", "none"}
        ``"placebo"`` (default): in-space placebo permutation inference, as :meth:`~SyntheticControlResult.placebo`
        with its defaults (one refit per donor). ``"none"``: estimates only (p-values and intervals
        empty), e.g. inside a simulation that runs its own placebos.

    Returns
    -------
    SyntheticControlResult
        Post-period gaps (rows ``t=<period>``) and the headline ``ATT`` (average post-period gap)
        with the placebo permutation p-value and the interval that inverts it; ``.weights``,
        ``.balance``, ``.paths``, ``.placebo_table``.

    Notes
    -----
    With outcome ``Y_it``, treated unit 1 and donors ``j = 2..J+1``, the synthetic control is
    ``Y*_1t = sum_j w_j Y_jt`` with ``w >= 0``, ``sum_j w_j = 1`` and
    ``w(V) = argmin (X_1 - X_0 w)' V (X_1 - X_0 w)``, predictors standardised by their standard
    deviation across units. The effect in post-period t is ``Y_1t - Y*_1t``; the headline is its
    average over post-periods, ``ATT = (1/T_1) sum_{t >= T_0} (Y_1t - Y*_1t)``.

    V (diagonal, on the simplex) is chosen by ``v_method``: ``"nested"`` minimises the outcome
    MSPE over ``mspe_periods`` (outer L-BFGS-B over ``log V`` with the exact gradient, starts at
    equal and regression-based V); ``"regression"`` is Stata synth's default; ``"equal"`` weights
    predictors equally; ``"outcome_only"`` ignores predictors and fits pre-period outcomes
    directly. The inner problem for W is solved exactly by an active-set quadratic programme
    (Lawson-Hanson NNLS with the sum-to-one constraint), so results are deterministic.

    References
    ----------
    Abadie, A., Diamond, A. & Hainmueller, J. (2010). Synthetic control methods for comparative case
    studies. JASA 105(490), 493-505. https://doi.org/10.1198/jasa.2009.ap08746
    Abadie, A. (2021). Using synthetic controls: feasibility, data requirements, and methodological
    aspects. Journal of Economic Literature 59(2), 391-425. https://doi.org/10.1257/jel.20191450

    Examples
    --------
    >>> import impact as im
    >>> prop99 = im.datasets.load("prop99")
    >>> sc = im.synth.synthetic_control(prop99, outcome="PacksPerCapita", unit="State", time="Year",
    ...                                 treated_unit="California", treatment_time=1989)
    >>> round(sc.estimate, 2)
    -19.51
    """
    call = {k: v for k, v in locals().items() if k not in ("df",)}
    check_option("v_method", v_method, V_METHODS)
    check_option("inference", inference, INFERENCE)
    level = check_level(level, WHERE)
    max_iter = check_integer("max_iter", max_iter, WHERE, minimum=1)
    check_column_arguments(WHERE, outcome=outcome, unit=unit, time=time)
    predictor_columns = as_list(predictors)
    special = _parse_special(special_predictors, pd.Index([]))
    with recording_warnings() as log:
        used = list(dict.fromkeys(predictor_columns + [c for c, _, _ in special if c != outcome]))
        # A missing pre-period outcome of the treated unit is fatal: say so before the generic checks.
        if isinstance(df, pd.DataFrame) and {outcome, unit, time} <= set(df.columns) and pd.api.types.is_numeric_dtype(df[time]):
            rows = df.loc[(df[unit] == treated_unit) & (df[time] < treatment_time)]
            bad = rows.loc[rows[outcome].isna(), time]
            if len(bad):
                raise DataError(
                    f"{WHERE}: the treated unit {treated_unit!r} has missing {outcome!r} in pre-period(s) "
                    f"{', '.join(str(t) for t in bad.tolist()[:8])}. Its pre-programme path is what the "
                    "synthetic control must reproduce: fill or impute those values, or start the panel later."
                )
        prepared = prepare(
            df,
            where=WHERE,
            roles={"outcome": outcome, "unit": unit, "time": time, "predictors": used or None},
            numeric=[outcome, *used],  # time needs an order only: numbers or datetimes
            unique=[unit, time],
            missing="error",
            unit=unit,
        )
        frame = prepared.frame
        treatment_time = coerce_period(treatment_time, frame[time], "treatment_time", WHERE)
        panel = to_wide(frame, column=outcome, unit=unit, time=time, where=WHERE)
        units, periods = panel.units, panel.periods
        if treated_unit not in units:
            raise DataError(f"{WHERE}: treated_unit={treated_unit!r} is not a value of {unit!r} (e.g. {', '.join(map(repr, units[:5]))}).")
        pre = np.asarray(periods < treatment_time)
        if pre.sum() < 2 or (~pre).sum() < 1:
            raise DataError(
                f"{WHERE}: treatment_time={treatment_time!r} leaves {int(pre.sum())} pre-period(s) and "
                f"{int((~pre).sum())} post-period(s) in {time!r} ({periods[0]}..{periods[-1]}); at least 2 pre "
                "and 1 post period are needed."
            )
        treated = int(units.get_loc(treated_unit))
        if donors is None:
            donor_idx = np.array([i for i in range(len(units)) if i != treated])
        else:
            unknown = [d for d in donors if d not in units]
            if unknown:
                raise DataError(f"{WHERE}: donors {unknown[:5]} are not values of {unit!r}.")
            donor_idx = np.array(sorted({int(units.get_loc(d)) for d in donors} - {treated}))
        if len(donor_idx) < 2:
            raise DataError(
                f"{WHERE}: the donor pool has {len(donor_idx)} unit(s); a synthetic control needs at least 2 "
                "donors (with one donor it is a simple comparison). Widen the pool (donors=None uses all "
                "other units)."
            )
        if len(donor_idx) < 10:
            warn(SmallComparisonWarning, f"{WHERE}: only {len(donor_idx)} donor units; the fit and the placebo inference rest on few comparisons.")

        if mspe_periods is None:
            mspe = pre.copy()
        else:
            wanted = [coerce_period(p, frame[time], "mspe_periods", WHERE) for p in mspe_periods]
            absent = [p for p in wanted if p not in set(periods)]
            if absent or not wanted:
                raise SpecError(f"{WHERE}: mspe_periods {absent[:5]} are not periods of {time!r}; give pre-treatment periods.")
            late = [p for p in wanted if p > treatment_time]
            if late:
                # fitting V to post-treatment periods absorbs the effect into the weights (Prop 99: -19.5 -> +6.5)
                raise SpecError(
                    f"{WHERE}: mspe_periods {late[:5]} are after treatment_time={treatment_time!r}; the weights "
                    "must be chosen on pre-treatment periods only, or the effect is fitted away."
                )
            if treatment_time in wanted:
                # tolerated because published replications do it (Mixtape's Texas: time.optimize.ssr 1985:1993)
                warn(
                    FragileInferenceWarning,
                    f"{WHERE}: mspe_periods include the first treated period {treatment_time!r}; an effect in that "
                    "period leaks into the choice of predictor weights. Prefer pre-treatment periods only.",
                )
            mspe = np.asarray(periods.isin(wanted))
        if predictor_periods is not None:
            if not (predictor_columns or special) or v_method == "outcome_only":
                raise SpecError(
                    f"{WHERE}: predictor_periods={list(predictor_periods)[:5]} has no effect without predictors= "
                    "(and with v_method='outcome_only'); pass predictors= to average over those periods, or drop it."
                )
            predictor_periods = [coerce_period(p, frame[time], "predictor_periods", WHERE) for p in predictor_periods]

        # Predictor matrix (units x k), each predictor a mean over its periods.
        pre_periods = list(periods[pre])
        average_over = pre_periods if predictor_periods is None else list(predictor_periods)
        items = [(c, average_over, c) for c in predictor_columns] + special
        X = None
        names: tuple[str, ...] = ()
        if items and v_method != "outcome_only":
            columns = []
            for column, when, label in items:
                absent = [p for p in when if p not in set(periods)]
                if absent:
                    raise SpecError(f"{WHERE}: predictor {label!r} uses period(s) {absent[:5]} not in {time!r}.")
                late = [p for p in when if p >= treatment_time]
                if late:
                    raise SpecError(
                        f"{WHERE}: predictor {label!r} uses period(s) {late[:5]} at or after treatment_time="
                        f"{treatment_time!r}; predictors must be measured before the programme starts (for an "
                        "in-time placebo, choose predictor periods before the fake start)."
                    )
                wide = to_wide(frame, column=column, unit=unit, time=time, where=WHERE) if column != outcome else panel
                cols = np.asarray(wide.periods.isin(when))
                columns.append(wide.Y[:, cols].mean(axis=1))
            X = np.column_stack(columns)
            names = tuple(label for _, _, label in items)
            if custom_v is not None and len(custom_v) != len(names):
                raise SpecError(f"{WHERE}: custom_v has {len(custom_v)} weights for {len(names)} predictors {list(names)}.")
            if len(names) > int(mspe.sum()) and v_method == "nested":
                warn(
                    FragileInferenceWarning,
                    f"{WHERE}: {len(names)} predictors but only {int(mspe.sum())} pre-periods to choose their weights "
                    "from: the nested V is not pinned down by the data (many V give the same fit). Use fewer "
                    "predictors, v_method='regression' or 'outcome_only'.",
                )
            method_used = "custom" if custom_v is not None else v_method
        else:
            method_used = "outcome_only"

        spec = _Spec(
            Y=panel.Y, units=units, periods=periods, X=X, predictor_names=names, pre=pre, mspe=mspe,
            v_method=method_used, custom_v=None if custom_v is None else np.asarray(custom_v, dtype=float),
            max_iter=max_iter, call=call, frame=frame,
        )
        with single_threaded_blas():
            fit = spec.fit(treated, donor_idx)
        donor_labels = units[donor_idx]
        weights = pd.Series(fit.weights, index=donor_labels, name="weight")
        synthetic = fit.weights @ panel.Y[donor_idx]
        gap = panel.Y[treated] - synthetic
        paths = pd.DataFrame({"time": periods, "treated": panel.Y[treated], "synthetic": synthetic, "gap": gap})

        # Balance and the convex-hull check.
        if X is not None:
            x1, x0 = X[treated], X[donor_idx]
            balance = pd.DataFrame(
                {"predictor": names, "treated": x1, "synthetic": fit.weights @ x0, "donor_mean": x0.mean(axis=0), "v_weight": fit.v}
            )
            outside_rows, outside_vals = names, (x1, x0)
        else:
            z1, z0 = panel.Y[treated, pre], panel.Y[np.ix_(donor_idx, np.flatnonzero(pre))]
            balance = pd.DataFrame(
                {"predictor": [f"{outcome}({p})" for p in pre_periods], "treated": z1, "synthetic": fit.weights @ z0, "donor_mean": z0.mean(axis=0)}
            )
            outside_rows, outside_vals = tuple(balance["predictor"]), (z1, z0)
        x1, x0 = outside_vals
        above, below = x1 > x0.max(axis=0), x1 < x0.min(axis=0)
        pre_rmspe = _rmspe(gap[pre])
        if above.any() or below.any():
            listed = [outside_rows[i] for i in np.flatnonzero(above | below)]
            warn(
                OverlapWarning,
                f"{WHERE}: the treated unit {treated_unit!r} lies outside the donors' convex hull: it is "
                f"{'above every donor' if above.any() else 'below every donor'} in {', '.join(listed[:6])}"
                f"{' and more' if len(listed) > 6 else ''}. No weighted average of donors can match it there; the "
                f"pre-period fit is RMSPE {pre_rmspe:.4g} (outcome sd across units {np.std(panel.Y[:, pre]):.4g}). "
                "Consider synthetic DiD (im.synth.sdid), which allows a level difference.",
            )

        post = ~pre
        post_periods = list(periods[post])
        att = float(gap[post].mean())
        event_time = np.arange(post.sum())
        terms = ["ATT"] + [f"t={p}" for p in post_periods]
        estimates = np.concatenate([[att], gap[post]])
        nan = np.full(len(terms), np.nan)
        effects = effects_table(
            terms, estimates, nan, level=level, p_values=nan, conf_low=nan, conf_high=nan,
            time=[None] + post_periods, event_time=[np.nan] + list(event_time.astype(float)),
        )
        post_rmspe = _rmspe(gap[post])
        note = None
        if X is not None and fit.v is not None:
            rows = np.concatenate([[treated], donor_idx])
            Xs = standardise(X[rows])
            resid = Xs[0] - fit.weights @ Xs[1:]
            predictor_loss = float(np.sum(fit.v * resid**2))
            if predictor_loss <= 1e-10 * max(1.0, float(np.sum(fit.v * Xs[0] ** 2))):
                note = (
                    "the donors reproduce the treated unit's predictors exactly, so many donor weightings "
                    "fit them equally well and V is not identified; the weights shown are the exact QP's "
                    "(sparsest-path) solution. Compare with v_method='outcome_only'."
                )
        else:
            predictor_loss = None
        diagnostics = {
            "pre_rmspe": pre_rmspe,
            "post_rmspe": post_rmspe,
            "rmspe_ratio": post_rmspe / pre_rmspe if pre_rmspe > 0 else None,
            "mspe_loss": fit.loss,
            "weights": weights[weights > 0].sort_values(ascending=False),
            "v_weights": None if fit.v is None else pd.Series(fit.v, index=list(names)),
            "balance": balance,
            "n_donors": int(len(donor_idx)),
            "n_pre_periods": int(pre.sum()),
            "n_post_periods": int(post.sum()),
            "optimiser": fit.optimiser,
            "optimiser_evaluations": fit.evaluations,
            "predictor_loss": predictor_loss,
            "note": note,
        }
    settings = {
        "treated_unit": treated_unit,
        "treatment_time": treatment_time,
        "v_method": method_used,
        "predictors": list(names),
        "donors": [str(d) for d in donor_labels],
        "mspe_periods": [p for p, m in zip(periods, mspe) if m],
        "assumption": ASSUMPTION,
    }
    result = SyntheticControlResult(
        design="synthetic_control",
        estimand="ATT (average post-period gap, treated minus synthetic)",
        effects=effects,
        headline="ATT",
        inference="none requested (inference=\"none\"): call .placebo() for the placebo permutation p-value and interval",
        n_obs=int(panel.Y.size),
        outcome=outcome,
        level=level,
        n_units=len(units),
        n_treated=1,
        settings=settings,
        warnings=tuple(log),
        sample_flow=prepared.flow,
        diagnostics=diagnostics,
        weights=weights,
        v_weights=None if fit.v is None else pd.Series(fit.v, index=list(names), name="v_weight"),
        paths=paths,
        balance=balance,
        treated_unit=treated_unit,
        treatment_time=treatment_time,
        spec=spec,
    )
    return result.placebo() if inference == "placebo" else result


def augmented_synthetic_control(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    treated_unit: Any,
    treatment_time: Any,
    ridge: float | None = None,
    ridge_rule: Literal["1se", "min"] = "1se",
    donors: Sequence[Any] | None = None,
    level: float = 0.95,
    inference: Inference = "placebo",
) -> SyntheticControlResult:
    """Ridge augmented synthetic control (ASCM) on pre-period outcomes.

    Parameters
    ----------
    df, outcome, unit, time, treated_unit, treatment_time, donors, level, inference
        As :func:`synthetic_control` (placebos refit with the same lambda).
    ridge : float, optional
        Ridge penalty lambda; by default chosen by leave-one-pre-period-out cross-validation over a
        geometric grid from the largest squared singular value of the centred pre-period outcomes
        down by a factor 1e-8 (20 values).
    ridge_rule : {"1se", "min"}
        Cross-validation rule: the largest lambda within one standard error of the minimum error
        (augsynth's default) or the minimiser.

    Returns
    -------
    SyntheticControlResult
        Weights may be negative (they still sum to one). ``.placebo()`` refits every placebo with
        the same lambda.

    Notes
    -----
    ``Y*_1t = sum_j w_j^aug Y_jt`` with ``w^aug = w^scm + Z0c' (Z0c Z0c' + lambda I)^{-1} (z1c -
    Z0c w^scm)``: the synthetic control (exact simplex fit of the pre-period outcomes) corrected by
    a ridge regression of outcomes on pre-period outcomes, which removes the bias left by an
    imperfect pre-period fit (Ben-Michael, Feller & Rothstein 2021, eq. 13). ATT as
    :func:`synthetic_control`.

    References
    ----------
    Ben-Michael, E., Feller, A. & Rothstein, J. (2021). The augmented synthetic control method.
    JASA 116(536), 1789-1803. https://doi.org/10.1080/01621459.2021.1929245
    """
    check_option("ridge_rule", ridge_rule, ("1se", "min"))
    check_option("inference", inference, INFERENCE)
    if ridge is not None and not (isinstance(ridge, int | float) and ridge > 0):
        raise SpecError(f"augmented_synthetic_control: ridge must be a positive number or None; got {ridge!r}.")
    base = synthetic_control(
        df, outcome=outcome, unit=unit, time=time, treated_unit=treated_unit, treatment_time=treatment_time,
        donors=donors, level=level, inference="none",
    )
    spec = base.spec
    treated = int(spec.units.get_loc(treated_unit))
    donor_idx = np.array([spec.units.get_loc(u) for u in base.weights.index])
    z1 = spec.Y[treated, spec.pre]
    Z0 = spec.Y[np.ix_(donor_idx, np.flatnonzero(spec.pre))].T
    cv_table = None
    with single_threaded_blas():
        if ridge is None:
            ridge, cv = choose_lambda(z1, Z0, rule=ridge_rule)
            cv_table = pd.DataFrame(cv)
        spec = dataclasses.replace(spec, ridge=float(ridge), mspe=spec.pre)
        fit = spec.fit(treated, donor_idx)
    weights = pd.Series(fit.weights, index=base.weights.index, name="weight")
    synthetic = fit.weights @ spec.Y[donor_idx]
    gap = spec.Y[treated] - synthetic
    paths = pd.DataFrame({"time": spec.periods, "treated": spec.Y[treated], "synthetic": synthetic, "gap": gap})
    post = ~spec.pre
    post_periods = list(spec.periods[post])
    terms = ["ATT"] + [f"t={p}" for p in post_periods]
    nan = np.full(len(terms), np.nan)
    effects = effects_table(
        terms, np.concatenate([[gap[post].mean()], gap[post]]), nan, level=level, p_values=nan, conf_low=nan, conf_high=nan,
        time=[None] + post_periods, event_time=[np.nan] + list(np.arange(post.sum(), dtype=float)),
    )
    balance = base.balance.assign(synthetic=fit.weights @ spec.Y[np.ix_(donor_idx, np.flatnonzero(spec.pre))])
    pre_rmspe, post_rmspe = _rmspe(gap[spec.pre]), _rmspe(gap[post])
    diagnostics = dict(base.diagnostics)
    diagnostics.update(
        {
            "pre_rmspe": pre_rmspe,
            "post_rmspe": post_rmspe,
            "rmspe_ratio": post_rmspe / pre_rmspe if pre_rmspe > 0 else None,
            "mspe_loss": fit.loss,
            "weights": weights[weights.abs() > 1e-8].sort_values(ascending=False),
            "scm_weights": base.weights[base.weights > 0].sort_values(ascending=False),
            "scm_pre_rmspe": base.diagnostics["pre_rmspe"],
            "ridge_lambda": float(ridge),
            "ridge_rule": ridge_rule if cv_table is not None else "given",
            "ridge_cross_validation": cv_table,
            "negative_weight_total": float(weights[weights < 0].sum()),
            "balance": balance,
            "optimiser": fit.optimiser,
        }
    )
    settings = dict(base.settings)
    settings.update({"v_method": "outcome_only", "ridge": float(ridge), "ridge_rule": ridge_rule})
    result = dataclasses.replace(
        base,
        design="augmented_synthetic_control",
        effects=effects,
        diagnostics=diagnostics,
        settings=settings,
        weights=weights,
        paths=paths,
        balance=balance,
        spec=spec,
    )
    return result.placebo() if inference == "placebo" else result
