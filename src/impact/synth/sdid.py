"""Synthetic difference-in-differences (Arkhangelsky, Athey, Hirshberg, Imbens & Wager 2021)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from impact.data import canonical_order, check_integer, check_level, check_seed  # shared option validation
from impact.data import check_absorbing, check_binary, check_option, check_treated_and_control, prepare
from impact.errors import DataError, EstimationError, FragileInferenceWarning, SmallComparisonWarning, recording_warnings, warn
from impact.inference.inversion import InvertedTest, invert_quadratic_permutation_test
from impact.results import Result, effects_table
from impact.synth import _plots
from impact.synth._frank_wolfe import frank_wolfe, sparsify
from impact.synth._panel import placebo_start, to_wide
from impact.synth._threads import single_threaded_blas

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["sdid", "SyntheticDiDResult"]

Estimator = Literal["sdid", "sc", "did"]
SeMethod = Literal["permutation", "placebo", "jackknife", "bootstrap", "none"]
SE_METHODS = ("permutation", "placebo", "jackknife", "bootstrap", "none")
WHERE = "sdid"
DEFAULT_PERMUTATIONS = 1000
MAX_ITER = 10_000
MAX_ITER_PRE_SPARSIFY = 100
ASSUMPTIONS = {
    "sdid": "Absent the programme, the treated units' outcomes would have moved in parallel with the "
    "unit-weighted controls, between the time-weighted pre-period and the post-period.",
    "sc": "Absent the programme, the treated units' outcomes would have equalled the weighted average of "
    "the controls that matches their pre-period path.",
    "did": "Absent the programme, treated and control units' average outcomes would have moved in parallel.",
}


@dataclass(frozen=True)
class _Config:
    estimator: str
    update_omega: bool
    update_lambda: bool
    omega_intercept: bool
    lambda_intercept: bool


def _config(estimator: str) -> _Config:
    if estimator == "sdid":
        return _Config("sdid", True, True, True, True)
    if estimator == "sc":
        return _Config("sc", True, False, False, True)
    return _Config("did", False, False, True, True)


@dataclass(frozen=True)
class _Zeta:
    omega: np.ndarray  # (B,)
    lam: np.ndarray
    min_decrease: np.ndarray


def _noise_level(Y: np.ndarray, N0: int, T0: int) -> np.ndarray:
    """sd of first differences of the controls' pre-period outcomes (per batch member)."""
    diffs = np.diff(Y[:, :N0, :T0], axis=2).reshape(Y.shape[0], -1)
    return diffs.std(axis=1, ddof=1) if diffs.shape[1] > 1 else np.zeros(Y.shape[0])


def _zetas(Y: np.ndarray, N0: int, T0: int, estimator: str) -> _Zeta:
    N, T = Y.shape[1], Y.shape[2]
    noise = _noise_level(Y, N0, T0)
    eta_omega = ((N - N0) * (T - T0)) ** 0.25 if estimator == "sdid" else 1e-6
    return _Zeta(eta_omega * noise, 1e-6 * noise, 1e-5 * noise)


def _block_weights(
    Y: np.ndarray, N0: int, T0: int, cfg: _Config, zeta: _Zeta, omega0: np.ndarray | None = None, lambda0: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Unit weights omega (B, N0) and time weights lambda (B, T0) for a batch of block designs."""
    B = Y.shape[0]
    pre_mean_treated = Y[:, N0:, :T0].mean(axis=1)  # (B, T0)
    post_mean_controls = Y[:, :N0, T0:].mean(axis=2)  # (B, N0)
    if cfg.update_lambda:
        start = np.full((B, T0), 1.0 / T0) if lambda0 is None else lambda0
        A, y = Y[:, :N0, :T0], post_mean_controls
        lam, _ = frank_wolfe(A, y, start, zeta=zeta.lam, intercept=cfg.lambda_intercept, min_decrease=zeta.min_decrease, max_iter=MAX_ITER_PRE_SPARSIFY)
        lam, _ = frank_wolfe(A, y, sparsify(lam), zeta=zeta.lam, intercept=cfg.lambda_intercept, min_decrease=zeta.min_decrease, max_iter=MAX_ITER)
    elif cfg.estimator == "sc":
        lam = np.zeros((B, T0))
    else:
        lam = np.full((B, T0), 1.0 / T0) if lambda0 is None else lambda0
    if cfg.update_omega:
        start = np.full((B, N0), 1.0 / N0) if omega0 is None else omega0
        A, y = np.transpose(Y[:, :N0, :T0], (0, 2, 1)), pre_mean_treated
        om, _ = frank_wolfe(A, y, start, zeta=zeta.omega, intercept=cfg.omega_intercept, min_decrease=zeta.min_decrease, max_iter=MAX_ITER_PRE_SPARSIFY)
        om, _ = frank_wolfe(A, y, sparsify(om), zeta=zeta.omega, intercept=cfg.omega_intercept, min_decrease=zeta.min_decrease, max_iter=MAX_ITER)
    else:
        om = np.full((B, N0), 1.0 / N0) if omega0 is None else omega0
    return om, lam


def _tau(Y: np.ndarray, N0: int, T0: int, omega: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """tau = (-omega, 1/N1)' Y (-lambda, 1/T1) for a batch."""
    diff = Y[:, :, T0:].mean(axis=2) - np.einsum("bnt,bt->bn", Y[:, :, :T0], lam)  # (B, N)
    return diff[:, N0:].mean(axis=1) - np.einsum("bn,bn->b", omega, diff[:, :N0])


def _sum_normalise(x: np.ndarray) -> np.ndarray:
    total = x.sum(axis=-1, keepdims=True)
    return np.where(total > 0, x / np.where(total > 0, total, 1.0), 1.0 / x.shape[-1])


@dataclass(frozen=True)
class _Cohort:
    """One adoption cohort's block design: never-treated controls first, then the cohort."""

    adoption: Any
    Y: np.ndarray  # (N0 + N1, T)
    N0: int
    T0: int
    control_units: pd.Index
    treated_units: pd.Index
    omega: np.ndarray
    lam: np.ndarray
    tau: float
    zeta: _Zeta

    @property
    def N1(self) -> int:
        return self.Y.shape[0] - self.N0

    @property
    def weight(self) -> float:
        return float(self.N1 * (self.Y.shape[1] - self.T0))


def _estimate_cohorts(
    Yfull: np.ndarray,
    controls: np.ndarray,
    cohorts: list[tuple[Any, np.ndarray, int]],
    cfg: _Config,
    warm: dict | None = None,
) -> list[tuple]:
    """Fit each cohort's block design. ``warm`` maps an adoption period to (zeta, omega over all
    never-treated units, lambda) of the original fit: the regularisation is then held fixed and the
    weights start from the original ones restricted to ``controls`` (synthdid's bootstrap_se)."""
    out = []
    for adoption, treated, T0 in cohorts:
        Y = Yfull[np.concatenate([controls, treated])][None]
        N0 = controls.size
        if warm is not None and adoption in warm:
            zeta, omega_all, lam_all = warm[adoption]
            omega0 = _sum_normalise(omega_all[controls][None])
            omega, lam = _block_weights(Y, N0, T0, cfg, zeta, omega0, lam_all[None] if cfg.estimator != "sc" else None)
        else:
            zeta = _zetas(Y, N0, T0, cfg.estimator)
            omega, lam = _block_weights(Y, N0, T0, cfg, zeta)
        out.append((adoption, Y[0], N0, T0, omega[0], lam[0], float(_tau(Y, N0, T0, omega, lam)[0]), zeta))
    return out


def _combine(taus: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted average over cohorts (last axis) with NaN-cohorts dropped."""
    w = np.where(np.isnan(taus), 0.0, weights)
    return np.nansum(taus * w, axis=-1) / w.sum(axis=-1)


@dataclass(frozen=True, kw_only=True)
class SyntheticDiDResult(Result):
    """Result of :func:`sdid`.

    Attributes
    ----------
    unit_weights : DataFrame
        ``cohort, unit, weight`` (control-unit weights omega per adoption cohort).
    time_weights : DataFrame
        ``cohort, time, weight`` (pre-period weights lambda per adoption cohort).
    replicates : ndarray or None
        Placebo / bootstrap / jackknife replicates of the overall estimate.
    """

    unit_weights: pd.DataFrame
    time_weights: pd.DataFrame
    replicates: np.ndarray | None = field(default=None, repr=False)
    cohort_paths: dict = field(default_factory=dict, repr=False)
    refit: dict = field(default_factory=dict, repr=False, compare=False)  # validated data and call, for placebos

    def pretrend_test(self, placebo_periods: int | None = None) -> dict[str, Any]:
        """:meth:`in_time_pretrend_test` (what :func:`impact.did.pretrend_test` runs on this result)."""
        return self.in_time_pretrend_test(placebo_periods)

    def in_time_pretrend_test(self, placebo_periods: int | None = None) -> dict[str, Any]:
        """In-time placebo test of parallel pre-trends, with the design's randomisation inference.

        The estimator is refitted on the periods before the earliest adoption only, as if every
        treated unit had adopted ``placebo_periods`` periods before it (default: half of those
        periods, rounded down, leaving at least two earlier ones), with the default inference
        (randomisation over which units are treated, studentised as the main test). No unit is
        treated in those periods under any assignment, so the p-value is exact under the sharp null
        that outcomes before the earliest start do not depend on which units are treated (parallel
        pre-trends, no anticipation), whatever the effects after it (Abadie, Diamond & Hainmueller
        2015, in-time placebos; Fisher's randomisation test).

        Returns the dict of :func:`impact.did.pretrend_test` (``statistic``, ``p_value``,
        ``method``, ``assumption``, ...) plus the placebo ``estimate`` and its interval."""
        if not self.refit:
            raise EstimationError(f"{WHERE}.pretrend_test: this result does not carry its data; refit with impact.synth.sdid.")
        frame, call = self.refit["frame"], dict(self.refit["call"])
        unit, time, treatment = call["unit"], call["time"], call["treatment"]
        periods = np.sort(frame[time].unique())
        treated_rows = frame[treatment].to_numpy() > 0
        earliest = int(np.searchsorted(periods, frame.loc[treated_rows, time].min()))
        fake, start = placebo_start(periods, earliest, placebo_periods, f"{WHERE}.pretrend_test",
                                    f"the earliest adoption ({periods[earliest]!r})")
        ever = frame.loc[treated_rows, unit].unique()
        window = frame.loc[frame[time] < periods[earliest]]
        placebo_treatment = (window[unit].isin(ever) & (window[time] >= periods[fake])).astype(int)
        placebo = sdid(window.assign(**{treatment: placebo_treatment}), **{**call, "se_method": "permutation"})
        diag = placebo.diagnostics
        low, high = placebo.conf_int()
        return {
            "statistic": float(diag["permutation_statistics"][0]), "df_num": 1.0, "df_denom": None,
            "p_value": placebo.p_value, "estimate": placebo.estimate, "conf_low": low, "conf_high": high,
            "method": (f"in-time placebo: {self.settings['estimator']} re-estimated on the {earliest} periods before the "
                       f"earliest adoption, as if the {len(ever)} treated unit(s) had adopted at {start!r}; "
                       + placebo.inference),
            "n_assignments": diag["permutation_assignments"], "exact": True,
            "smallest_p": diag["permutation_smallest_p_value"], "pre_periods": earliest,
            "placebo_start": start,
            "assumption": (f"sharp null: outcomes in the {earliest} periods before the earliest adoption do not depend on "
                           "which units are treated (parallel pre-trends, no anticipation); exact, since no unit is "
                           "treated in those periods under any assignment"),
            "warnings": placebo.warnings,
        }

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        """Treated vs weighted-control paths (per cohort), control-unit weights and the estimates."""
        figs: dict[str, Callable[[Axes | None], Axes]] = {}
        for cohort, info in self.cohort_paths.items():
            title = "Treated vs weighted controls" + (f" (cohort {cohort})" if len(self.cohort_paths) > 1 else "")
            figs[title] = lambda ax=None, info=info: _plots.sdid_plot(
                info["times"], info["treated"], info["control"], info["lambda"], treatment_time=info["adoption"], outcome=self.outcome or "outcome", ax=ax
            )
        if self.settings.get("estimator") != "did":
            weights = self.unit_weights.groupby("unit")["weight"].mean()
            figs["Control-unit weights"] = lambda ax=None: _plots.weights_plot(weights, ax=ax, title="Control-unit weights (omega)")
        figs["Estimates with confidence intervals"] = self.plot
        return figs


def sdid(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    treatment: str,
    estimator: Estimator = "sdid",
    se_method: SeMethod = "permutation",
    n_replications: int | None = None,
    seed: int | None = None,
    level: float = 0.95,
) -> SyntheticDiDResult:
    """Synthetic difference-in-differences, with synthetic control and DiD on the same footing.

    Parameters
    ----------
    df : DataFrame
        Balanced long panel.
    outcome, unit, time : str
        Column names.
    treatment : str
        0/1 column, 1 from a unit's first treated period on (absorbing). Units never treated are the
        controls; units treated in the first period are not allowed.
    estimator : {"sdid", "sc", "did"}
        Synthetic DiD (unit and time weights, regularised unit weights with intercept), synthetic
        control (unit weights without intercept, no time weights; synthdid's ``sc_estimate``) or
        plain DiD (uniform weights; ``did_estimate``).
    se_method : {"permutation", "placebo", "jackknife", "bootstrap", "none"}
        Permutation (default): randomisation inference over the assignment of the treated units'
        adoption periods to all units (see Notes); the p-value and the interval come from the
        test, the standard error is the sd of the permutation distribution. Placebo:
        pseudo-treated units drawn from the controls (needs more controls than treated units);
        jackknife: leave one unit out with the weights fixed (needs 2+ treated units); bootstrap:
        resample units and re-estimate the weights with the original regularisation, warm-started
        from the original weights (synthdid::bootstrap_se; needs 2+ treated units). These three
        give normal intervals ``tau +- z se`` (Arkhangelsky et al. 2021, Algorithms 2-4).
    n_replications : int, optional
        Placebo/bootstrap replications (default 200); for ``"permutation"`` the number of random
        assignments (default 1,000), used only when there are more distinct assignments than that
        (otherwise every assignment is enumerated).
    seed : int, optional
        Seed of numpy's default generator.
    level : float
        Confidence level.

    Returns
    -------
    SyntheticDiDResult
        ``ATT`` row (and, with staggered adoption, one row ``g=<adoption period>`` per cohort).

    Notes
    -----
    For a block design with N0 controls, N1 treated units, T0 pre- and T1 post-periods::

        tau = (1/N1 sum_{i tr} - sum_{i co} omega_i) (1/T1 sum_{t post} - sum_{t pre} lambda_t) Y_it

    omega minimises ``|omega_0 + omega' Y_co,pre - mean_tr Y_pre|^2 + zeta^2 T0 |omega|^2`` on the
    simplex with ``zeta = (N1 T1)^(1/4) sd(first differences of Y_co,pre)``; lambda minimises
    ``|lambda_0 + Y_co,pre lambda - mean_post Y_co|^2 + zeta_l^2 N0 |lambda|^2`` with
    ``zeta_l = 1e-6 sd(...)``. Both are solved by Frank-Wolfe (100 steps, sparsification of weights
    below a quarter of the maximum, then up to 10,000 steps; stop when the objective falls by less
    than ``(1e-5 sd)^2``), as R synthdid 0.0.9. With staggered adoption each adoption cohort is
    estimated against the never-treated units over all periods and the cohort effects are averaged
    with weights ``N1_g * T1_g`` (Clarke, Pailanir, Athey & Imbens 2023, Stata ``sdid``).

    Default inference (``se_method="permutation"``), chosen on the simulation in
    ``analyses/simulations/synth_size.py`` (20 units, 1-8 treated, homoskedastic and
    heteroskedastic AR(1) errors): every unit is equally likely to have been given the observed
    adoption pattern, so the estimator is recomputed, weights and regularisation included, for
    every assignment of the cohorts' sizes to the units (all of them when there are at most
    ``n_replications``, else a random sample plus the observed one). The statistic is the estimate
    studentised by the pre-period fit of the treated units, ``|tau| / s`` with ``s^2`` the mean over
    the N1 (pseudo-)treated units of each unit's mean squared pre-period gap to the weighted controls
    (net of the intercept), divided by N1: the variance of a mean of N1 units' noise. Studentising
    keeps the test close to its level when units differ in noise (the ratio idea of Abadie, Diamond &
    Hainmueller 2010; a raw ``|tau|`` permutation rejected 8-26% of true nulls when the treated
    regions were noisier). Pooling the treated units' own fits gives ``N1 (T0 - 1)`` degrees of
    freedom where the fit of their mean has ``T0 - 1``, which recovers most of the power that
    studentising by the mean's fit cost (20 units, 8 treated, block: 0.69 against 0.54 and 0.70 for
    raw ``|tau|``; ``analyses/simulations/sdid_statistic.py``); it uses pre-period outcomes only, so
    no effect path after the start can inflate it. With one treated unit it is the pre-period MSPE.
    The p-value is the share of assignments whose statistic is at least the observed one. The interval collects every constant effect
    ``tau0`` that the same test does not reject after subtracting ``tau0`` from the treated cells,
    with each assignment's weights held at their fit (exact at ``tau0 = 0``, so the interval
    excludes 0 exactly when ``p <= 1 - level``). The standard error is the one the interval
    implies, ``(high - low) / (2 z)`` (as the DiD designs' randomisation inference); the sd of the
    permutation distribution is in ``diagnostics["permutation_sd"]`` (and is the SE when the
    interval is unbounded). The placebo variance
    (Algorithm 4 of Arkhangelsky et al. 2021; Clarke et al. 2023 section 3) assumes homoskedastic
    units and the jackknife and bootstrap need many treated units (Arkhangelsky et al. 2021,
    section 5; Clarke et al. 2023 recommend placebo with one treated unit).

    References
    ----------
    Arkhangelsky, D., Athey, S., Hirshberg, D. A., Imbens, G. W. & Wager, S. (2021). Synthetic
    difference-in-differences. American Economic Review 111(12), 4088-4118.
    https://doi.org/10.1257/aer.20190159
    Clarke, D., Pailanir, D., Athey, S. & Imbens, G. (2023). On synthetic difference-in-differences
    and related estimation methods in Stata. IZA DP 16437. https://doi.org/10.2139/ssrn.4436443

    Examples
    --------
    >>> import impact as im
    >>> prop99 = im.datasets.load("prop99")
    >>> res = im.synth.sdid(prop99, outcome="PacksPerCapita", unit="State", time="Year",
    ...                     treatment="treated", se_method="none")
    >>> round(res.estimate, 2)
    -15.6
    """
    check_option("estimator", estimator, ("sdid", "sc", "did"))
    check_option("se_method", se_method, SE_METHODS)
    level = check_level(level, WHERE)
    seed = check_seed(seed, WHERE)
    if n_replications is None:
        n_replications = DEFAULT_PERMUTATIONS if se_method == "permutation" else 200
    n_replications = check_integer("n_replications", n_replications, WHERE, minimum=2)
    cfg = _config(estimator)
    with recording_warnings() as log, single_threaded_blas():
        prepared = prepare(
            df, where=WHERE, roles={"outcome": outcome, "unit": unit, "time": time, "treatment": treatment},
            numeric=[outcome, treatment], unique=[unit, time], missing="error", unit=unit,
        )
        frame = prepared.frame
        check_binary(frame, treatment, WHERE)
        check_treated_and_control(frame[treatment].to_numpy(), WHERE)
        check_absorbing(frame, unit=unit, time=time, treatment=treatment, where=WHERE)
        panel = to_wide(frame, column=outcome, unit=unit, time=time, where=WHERE)
        D = to_wide(frame, column=treatment, unit=unit, time=time, where=WHERE).Y
        Yfull, units, periods = panel.Y, panel.units, panel.periods
        ever = D.max(axis=1) > 0
        first = np.where(ever, np.argmax(D > 0, axis=1), -1)
        if (first == 0).any():
            bad = list(units[first == 0][:5])
            raise DataError(
                f"{WHERE}: unit(s) {bad} are treated from the first period of the panel, so they have no "
                "pre-period to weight. Drop them or extend the panel back in time."
            )
        controls = np.flatnonzero(~ever)
        if controls.size < 2:
            raise DataError(f"{WHERE}: {controls.size} never-treated unit(s); synthetic DiD needs at least 2 controls.")
        adoption_idx = sorted(set(first[ever].tolist()))
        cohorts = [(periods[a], np.flatnonzero(first == a), int(a)) for a in adoption_idx]
        n_treated = int(ever.sum())
        if controls.size < 10:
            warn(SmallComparisonWarning, f"{WHERE}: only {controls.size} never-treated control units.")
        if any(T0 < 2 for _, _, T0 in cohorts):
            raise DataError(f"{WHERE}: every adoption cohort needs at least 2 pre-periods; the first adopts at {periods[adoption_idx[0]]!r}.")

        fitted = _estimate_cohorts(Yfull, controls, cohorts, cfg)
        taus = np.array([f[6] for f in fitted])
        cw = np.array([len(c[1]) * (len(periods) - c[2]) for c in cohorts], dtype=float)
        att = float(_combine(taus, cw))

        replicates, cohort_reps, se_note = None, None, "no standard error requested"
        tests: list[InvertedTest] | None = None
        if se_method == "permutation":
            rng = np.random.default_rng(seed)
            D = np.where(np.arange(len(periods))[None, :] >= np.where(ever, first, len(periods))[:, None], 1.0, 0.0)
            # units in an order fixed by their data: the same draws whatever the row order or unit labels
            order = canonical_order(np.hstack([D, Yfull]), units)
            position = np.empty_like(order)
            position[order] = np.arange(len(order))
            cohorts_c = [(a, np.sort(position[tr]), T0) for a, tr, T0 in cohorts]
            draws = _randomisation(Yfull[order], D[order], first[order], cohorts_c, cfg, n_replications, rng)
            replicates, cohort_reps = draws.estimates, draws.cohort_estimates
            alpha = round(1.0 - level, 12)
            tests = [invert_quadratic_permutation_test(draws.estimates, -draws.loadings, draws.scales, alpha=alpha, estimate=att)]
            if len(cohorts) > 1:
                tests += [
                    invert_quadratic_permutation_test(
                        draws.cohort_estimates[:, k], -draws.cohort_loadings[:, k], draws.cohort_scales[:, k], alpha=alpha,
                        estimate=float(taus[k]),
                    )
                    for k in range(len(cohorts))
                ]
            how = "every" if draws.exact else f"{draws.n_draws - 1:,} random draws of the"
            se_note = (
                f"randomisation inference over {how} {draws.n_assignments:,} assignments of the adoption "
                f"period{'s' if len(cohorts) > 1 else ''} to the {len(units)} units (|estimate| / its pre-period "
                "scale: the treated units' mean squared pre-period gap to the weighted controls, over their number); "
                "interval by test inversion; std. error implied by the interval, (high - low) / (2 z) (the sd of the "
                "permutation distribution when the interval is unbounded)"
            )
            _warn_few_assignments(draws.n_assignments, alpha, tests[0])
        elif se_method == "placebo":
            if controls.size <= n_treated:
                raise DataError(
                    f"{WHERE}: the placebo standard error draws pseudo-treated units from the controls and needs "
                    f"more controls ({controls.size}) than treated units ({n_treated}); use se_method='bootstrap' or 'jackknife'."
                )
            rng = np.random.default_rng(seed)
            # draw from the controls in an order fixed by their data: the same SE under relabelled units
            order = canonical_order(Yfull[controls], units[controls])
            fitted_c = [tuple(x[order] if i == 4 else x for i, x in enumerate(f)) for f in fitted]
            replicates, cohort_reps = _placebo(Yfull, controls[order], cohorts, fitted_c, cfg, n_replications, rng)
            se_note = f"placebo standard error ({n_replications} replications, pseudo-treated units drawn from the controls)"
        elif se_method == "jackknife":
            if n_treated < 2:
                raise DataError(f"{WHERE}: the jackknife standard error needs at least 2 treated units (there is {n_treated}); use se_method='placebo'.")
            replicates, cohort_reps = _jackknife(fitted, cw)
            se_note = "jackknife standard error (leave one unit out, weights held fixed)"
        elif se_method == "bootstrap":
            if n_treated < 2:
                raise DataError(f"{WHERE}: the bootstrap standard error needs at least 2 treated units (there is {n_treated}); use se_method='placebo'.")
            rng = np.random.default_rng(seed)
            omega_full = {}
            for (adoption, _, _), f in zip(cohorts, fitted):
                full = np.zeros(len(units))
                full[controls] = f[4]
                omega_full[adoption] = (f[7], full, f[5])
            # resample units in an order fixed by their data: the same SE under relabelled units
            order = canonical_order(np.hstack([D, Yfull]), units)
            omega_c = {a: (z, full[order], lam) for a, (z, full, lam) in omega_full.items()}
            replicates, cohort_reps = _bootstrap(Yfull[order], ever[order], first[order], periods, cfg, n_replications,
                                                 rng, omega_c)
            se_note = f"unit bootstrap standard error ({n_replications} replications, weights re-estimated)"

        def _se(reps: np.ndarray | None) -> float:
            if reps is None:
                return math.nan
            reps = reps[~np.isnan(reps)]
            if se_method == "jackknife":
                n = reps.size
                return float(np.sqrt((n - 1) / n * np.sum((reps - reps.mean()) ** 2)))
            B = reps.size
            return float(np.sqrt((B - 1) / B) * reps.std(ddof=1))

        terms, estimates, ses = ["ATT"], [att], [_se(replicates)]
        if len(cohorts) > 1:
            for k, (adoption, _, _) in enumerate(cohorts):
                terms.append(f"g={adoption}")
                estimates.append(float(taus[k]))
                ses.append(_se(None if cohort_reps is None else cohort_reps[:, k]))
        groups = [None] + ([c[0] for c in cohorts] if len(cohorts) > 1 else [])
        if tests is None:
            effects = effects_table(terms, estimates, ses, level=level, group=groups)
        else:
            # As the randomisation inference of the DiD designs (impact.inference.randomization): the
            # SE is the one the interval implies, so SE, statistic, interval and p-value agree.
            permutation_sd = ses
            z = float(stats.norm.ppf(0.5 + level / 2))
            # (an unbounded or empty interval implies none: the sd of the permutation distribution then)
            ses = [(t.conf_high - t.conf_low) / (2 * z) if np.isfinite([t.conf_low, t.conf_high]).all() and not t.empty
                   else sd for t, sd in zip(tests, permutation_sd)]
            effects = effects_table(
                terms, estimates, ses, level=level, group=groups, p_values=[t.p_value for t in tests],
                conf_low=[t.conf_low for t in tests], conf_high=[t.conf_high for t in tests],
            )

        unit_rows, time_rows, cohort_paths, cohort_rows = [], [], {}, []
        for (adoption, treated_idx, T0), f in zip(cohorts, fitted):
            _, Y, N0, _, omega, lam, tau, zeta = f
            unit_rows += [{"cohort": adoption, "unit": units[c], "weight": float(w)} for c, w in zip(controls, omega)]
            time_rows += [{"cohort": adoption, "time": periods[t], "weight": float(w)} for t, w in enumerate(lam)]
            cohort_paths[adoption] = {
                "adoption": adoption, "times": np.asarray(periods), "treated": Y[N0:].mean(axis=0),
                "control": omega @ Y[:N0], "lambda": lam,
            }
            cohort_rows.append({
                "cohort": adoption, "n_treated": int(len(treated_idx)), "n_pre": T0, "n_post": len(periods) - T0,
                "estimate": tau, "weight": float(len(treated_idx) * (len(periods) - T0)),
                "zeta_omega": float(zeta.omega[0]), "zeta_lambda": float(zeta.lam[0]), "noise_level": float(zeta.min_decrease[0] / 1e-5),
            })
        unit_weights, time_weights = pd.DataFrame(unit_rows), pd.DataFrame(time_rows)
        diagnostics = {
            "cohorts": pd.DataFrame(cohort_rows),
            "unit_weights": unit_weights.loc[unit_weights["weight"] > 0].sort_values("weight", ascending=False),
            "time_weights": time_weights.loc[time_weights["weight"] > 0],
            "n_controls": int(controls.size),
            "effective_controls": float(1.0 / np.sum(np.asarray(fitted[0][4]) ** 2)) if estimator != "did" else float(controls.size),
            "replications_used": None if replicates is None else int(np.sum(~np.isnan(replicates))),
        }
        if tests is not None:
            diagnostics.update({
                "permutation_assignments": draws.n_assignments,
                "permutation_exact": draws.exact,
                "permutation_smallest_p_value": 1.0 / draws.n_draws,
                "permutation_interval_connected": tests[0].connected,
                "permutation_sd": permutation_sd,
                "permutation_statistics": np.abs(draws.estimates) / np.sqrt(draws.scales),
            })
    name = {"sdid": "synthetic DiD", "sc": "synthetic control (sdid framework)", "did": "difference-in-differences"}[estimator]
    return SyntheticDiDResult(
        design=f"sdid:{estimator}",
        estimand=f"ATT ({name})",
        effects=effects,
        headline="ATT",
        inference=se_note + ("; normal confidence interval" if replicates is not None and tests is None else ""),
        n_obs=int(Yfull.size),
        outcome=outcome,
        level=level,
        n_units=len(units),
        n_treated=n_treated,
        settings={"estimator": estimator, "se_method": se_method, "n_replications": n_replications, "seed": seed,
                  "staggered": len(cohorts) > 1, "assumption": ASSUMPTIONS[estimator]},
        warnings=tuple(log),
        sample_flow=prepared.flow,
        diagnostics=diagnostics,
        unit_weights=unit_weights,
        time_weights=time_weights,
        replicates=replicates,
        cohort_paths=cohort_paths,
        refit={"frame": frame[[unit, time, outcome, treatment]],
               "call": {"outcome": outcome, "unit": unit, "time": time, "treatment": treatment, "estimator": estimator,
                        "n_replications": n_replications if se_method == "permutation" else DEFAULT_PERMUTATIONS,
                        "seed": seed, "level": level}},
    )


def _placebo(Yfull, controls, cohorts, fitted, cfg, B, rng) -> tuple[np.ndarray, np.ndarray]:
    """Placebo replicates: the treated units' adoption pattern is given to randomly drawn controls and
    the estimate recomputed on the controls only; all replications of a cohort run as one batch.

    Block designs follow synthdid::placebo_se (regularisation fixed at the original fit, weights
    warm-started from it); with staggered adoption each cohort's regularisation is recomputed on the
    placebo data (Stata sdid)."""
    N0 = controls.size
    n_tr = sum(len(c[1]) for c in cohorts)
    perms = np.argsort(rng.random((B, N0)), axis=1)  # B permutations of the controls
    n_keep = N0 - n_tr
    keep = perms[:, :n_keep]
    taus = np.empty((B, len(cohorts)))
    offset = n_keep
    block = len(cohorts) == 1
    for k, ((adoption, treated, T0), f) in enumerate(zip(cohorts, fitted)):
        pseudo = perms[:, offset : offset + len(treated)]
        offset += len(treated)
        rows = controls[np.concatenate([keep, pseudo], axis=1)]  # (B, n_keep + N1)
        Y = Yfull[rows]
        if block:
            zeta = _Zeta(*(np.full(B, float(getattr(f[7], a)[0])) for a in ("omega", "lam", "min_decrease")))
            omega0 = _sum_normalise(f[4][keep])
            lambda0 = np.broadcast_to(f[5], (B, T0)).copy()
        else:
            zeta, omega0, lambda0 = _zetas(Y, n_keep, T0, cfg.estimator), None, None
        omega, lam = _block_weights(Y, n_keep, T0, cfg, zeta, omega0, lambda0 if cfg.estimator != "sc" else None)
        taus[:, k] = _tau(Y, n_keep, T0, omega, lam)
    weights = np.array([len(c[1]) * (Yfull.shape[1] - c[2]) for c in cohorts], dtype=float)
    return _combine(taus, weights), taus


def _jackknife(fitted, cohort_weights) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-unit-out estimates with every cohort's weights held fixed (synthdid::jackknife_se),
    in closed form: dropping a control renormalises omega, dropping a treated unit changes its
    cohort's treated mean (or removes the cohort)."""
    N0 = fitted[0][2]
    n_treated = [f[1].shape[0] - f[2] for f in fitted]
    n_units = N0 + sum(n_treated)
    taus = np.tile(np.array([f[6] for f in fitted]), (n_units, 1))
    weights = np.tile(np.asarray(cohort_weights, dtype=float), (n_units, 1))
    start = N0
    for k, f in enumerate(fitted):
        _, Y, N0k, T0, omega, lam, tau, _ = f
        diff = Y[:, T0:].mean(axis=1) - Y[:, :T0] @ lam
        treated_mean = diff[N0k:].mean()
        control_term = omega @ diff[:N0k]
        with np.errstate(divide="ignore", invalid="ignore"):
            loo_control = (control_term - omega * diff[:N0k]) / (1.0 - omega)
        loo_control = np.where(omega < 1.0 - 1e-12, loo_control, np.nan)
        taus[:N0, k] = treated_mean - loo_control
        n1 = n_treated[k]
        rows = np.arange(start, start + n1)
        if n1 > 1:
            taus[rows, k] = (diff[N0k:].sum() - diff[N0k:]) / (n1 - 1) - control_term
            weights[rows, k] = cohort_weights[k] * (n1 - 1) / n1
        else:
            taus[rows, k] = np.nan
        start += n1
    return _combine(taus, weights), taus


def _bootstrap(Yfull, ever, first, periods, cfg, B, rng, warm) -> tuple[np.ndarray, np.ndarray]:
    """Unit bootstrap (synthdid::bootstrap_se): resample units with replacement, skip draws without
    controls or treated units, re-estimate every weight with the original regularisation, starting
    from the original weights of the drawn controls (duplicates keep their weight each).
    Draws differ in shape, so they run in turn."""
    N = Yfull.shape[0]
    adoption_times = sorted(set(first[ever].tolist()))
    out = np.full(B, np.nan)
    per_cohort = np.full((B, len(adoption_times)), np.nan)
    b = 0
    attempts = 0
    while b < B and attempts < 20 * B:
        attempts += 1
        draw = np.sort(rng.integers(0, N, N))
        ctrl = draw[~ever[draw]]
        trt = draw[ever[draw]]
        if ctrl.size < 2 or trt.size == 0:
            continue
        cohorts = [(periods[a], trt[first[trt] == a], int(a)) for a in adoption_times if np.any(first[trt] == a)]
        fitted = _estimate_cohorts(Yfull, ctrl, cohorts, cfg, warm)
        taus = np.array([f[6] for f in fitted])
        w = np.array([len(c[1]) * (Yfull.shape[1] - c[2]) for c in cohorts], dtype=float)
        out[b] = _combine(taus, w)
        for (adoption, _, a), tau in zip(cohorts, taus):
            per_cohort[b, adoption_times.index(a)] = tau
        b += 1
    return out, per_cohort


@dataclass(frozen=True)
class _Draws:
    """Estimates under re-drawn assignments; row 0 is the observed assignment."""

    estimates: np.ndarray  # (K,) overall estimate
    loadings: np.ndarray  # (K,) the estimator applied to the real treatment indicator (1 in row 0)
    scales: np.ndarray  # (K,) variance scale from the treated units' pre-period fits (_unit_fit_variance)
    cohort_estimates: np.ndarray  # (K, cohorts)
    cohort_loadings: np.ndarray
    cohort_scales: np.ndarray
    n_assignments: int  # distinct assignments of the adoption pattern
    exact: bool  # every assignment enumerated
    n_draws: int
    labels: np.ndarray | None = None  # (K, N) cohort code of every unit under each assignment, -1 = control
    omegas: tuple[np.ndarray, ...] = ()  # per cohort, (K, N0) unit weights of each assignment's fit


def _count_assignments(n_units: int, sizes: list[int]) -> int:
    total, left = 1, n_units
    for size in sizes:
        total *= math.comb(left, size)
        left -= size
    return total


def _enumerate_assignments(n_units: int, sizes: list[int]) -> np.ndarray:
    """Every labelling of units with cohort codes 0..len(sizes)-1 (sizes fixed), -1 = control."""
    import itertools

    rows: list[np.ndarray] = [np.full(n_units, -1)]
    for k, size in enumerate(sizes):
        grown = []
        for row in rows:
            free = np.flatnonzero(row == -1)
            for pick in itertools.combinations(free, size):
                new = row.copy()
                new[list(pick)] = k
                grown.append(new)
        rows = grown
    return np.array(rows)


def _draw_assignments(n_units: int, sizes: list[int], n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random labellings: a random permutation of the units, cut into the cohorts' sizes."""
    order = np.argsort(rng.random((n_draws, n_units)), axis=1)
    labels = np.full((n_draws, n_units), -1)
    start = 0
    rows = np.arange(n_draws)[:, None]
    for k, size in enumerate(sizes):
        labels[rows, order[:, start : start + size]] = k
        start += size
    return labels


def _randomisation(Yfull, D, first, cohorts, cfg, n_draws, rng) -> _Draws:
    """Randomisation inference for synthetic DiD: recompute the estimator, weights and regularisation
    included, for assignments of the observed cohort sizes to all units (batched per cohort).

    Row 0 is the observed assignment; with exact enumeration the other rows are every other
    assignment, else ``n_draws`` uniform random assignments (the observed one may recur, which keeps
    ``p = (1 + #{stat >= observed}) / (n_draws + 1)`` exact)."""
    N, T = Yfull.shape
    sizes = [len(c[1]) for c in cohorts]
    observed = np.full(N, -1)
    for k, (_, treated, _) in enumerate(cohorts):
        observed[treated] = k
    total = _count_assignments(N, sizes)
    exact = total <= n_draws
    if exact:
        every = _enumerate_assignments(N, sizes)
        others = every[~np.all(every == observed, axis=1)]
    else:
        others = _draw_assignments(N, sizes, n_draws, rng)
    labels = np.vstack([observed[None], others])
    K = labels.shape[0]
    n_control = N - sum(sizes)
    control_rows = np.argsort(labels != -1, axis=1, kind="stable")[:, :n_control]
    taus, loads, scales = (np.empty((K, len(cohorts))) for _ in range(3))
    omegas = []
    for k, ((_, treated, T0), size) in enumerate(zip(cohorts, sizes)):
        treated_rows = np.argsort(labels != k, axis=1, kind="stable")[:, :size]
        rows = np.concatenate([control_rows, treated_rows], axis=1)
        Y = Yfull[rows]
        zeta = _zetas(Y, n_control, T0, cfg.estimator)
        omega, lam = _block_weights(Y, n_control, T0, cfg, zeta)
        taus[:, k] = _tau(Y, n_control, T0, omega, lam)
        loads[:, k] = _tau(D[rows], n_control, T0, omega, lam)
        scales[:, k] = _unit_fit_variance(Y, n_control, T0, omega, cfg.omega_intercept)
        omegas.append(omega)
    weights = np.array([size * (T - T0) for size, (_, _, T0) in zip(sizes, cohorts)], dtype=float)
    share = weights / weights.sum()
    return _Draws(
        estimates=taus @ share, loadings=loads @ share, scales=scales @ share,
        cohort_estimates=taus, cohort_loadings=loads, cohort_scales=scales,
        n_assignments=total, exact=exact, n_draws=K, labels=labels, omegas=tuple(omegas),
    )


def _unit_fit_variance(Y: np.ndarray, N0: int, T0: int, omega: np.ndarray, intercept: bool) -> np.ndarray:
    """Variance scale (B,) of the treated mean's estimate from each treated unit's own pre-period fit.

    Each (pseudo-)treated unit's pre-period gap to the weighted controls (net of its mean when the
    unit weights have an intercept) gives a mean squared error; their average over the N1 treated
    units, divided by N1, scales the estimate. Pooling N1 units gives ``N1 (T0 - 1)`` degrees of
    freedom where the fit of the treated mean alone has ``T0 - 1``, and only pre-period outcomes
    enter, so no effect after the start, whatever its path, can change it."""
    gaps = Y[:, N0:, :T0] - np.einsum("bn,bnt->bt", omega, Y[:, :N0, :T0])[:, None, :]  # (B, N1, T0)
    if intercept:
        gaps = gaps - gaps.mean(axis=2, keepdims=True)
    return np.maximum(np.mean(gaps**2, axis=(1, 2)) / gaps.shape[1], np.finfo(float).tiny)


def _warn_few_assignments(n_assignments: int, alpha: float, test: InvertedTest) -> None:
    if test.empty:
        warn(
            FragileInferenceWarning,
            f"{WHERE}: no constant effect is compatible with the randomisation test at the {alpha:.2g} level (the "
            "observed assignment stays the most extreme whatever effect is subtracted); the interval is reported as "
            "the single point with the largest p-value. Look at the cohort and period estimates.",
        )
    smallest = 1.0 / n_assignments
    if smallest > alpha * (1 + 1e-9):
        warn(
            SmallComparisonWarning,
            f"{WHERE}: there are only {n_assignments} distinct assignments of the adoption pattern to the units, "
            f"so the smallest attainable randomisation p-value is 1/{n_assignments} = {smallest:.3f} > {alpha:.2g}: "
            f"a test at that level cannot reject and the interval is [{test.conf_low:.4g}, {test.conf_high:.4g}]. "
            "Add comparison units, or report the estimate with the placebo distribution as description only.",
        )
    elif smallest >= alpha * (1 - 1e-9):
        warn(
            SmallComparisonWarning,
            f"{WHERE}: there are {n_assignments} distinct assignments of the adoption pattern to the units, so the "
            f"smallest attainable randomisation p-value is 1/{n_assignments} = {smallest:.3f}: a test at the "
            f"{alpha:.2g} level rejects only when the observed assignment is the most extreme of all.",
        )
