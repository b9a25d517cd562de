"""Difference-in-differences with a continuous treatment (Callaway, Goodman-Bacon & Sant'Anna 2024).

Units receive the programme in different amounts (a dose: money per capita, hours of advice) and,
possibly, in different years. For every cohort g (first treated period) and period t, the change of
the outcome between t and the cohort's base period is compared with that of the untreated units
(dose 0), and among the cohort's treated units the adjusted change is regressed on a B-spline in the
dose. That gives, per cell, the dose-response ATT(d) (level) and its derivative ACRT(d) (the average
causal response: the effect of a marginal unit of dose among units at dose d), and their averages
over the treated units, ATT^o and ACRT^o. Post-treatment cells are averaged with cohort-size
weights (a cohort's weight split evenly over its post-treatment periods), and every cell's binarised
ATT also gives an event study.

The computation follows diff-diff 3.13's ``ContinuousDiD`` (itself a port of the authors' R package
``contdid``) so that estimates and influence-function standard errors agree with it; see
``tests/did/test_dose_response.py`` for the reference values and tolerances. With few treated units
the averages get randomisation inference (start years permuted across units for ATT^o and the event
study; doses permuted across treated units for ACRT^o), the design rule of ``inference="auto"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.interpolate import BSpline

from impact.data import canonical_order, check_column_arguments, check_integer, check_level, check_option, check_seed, prepare, show
from impact.errors import (
    DataError,
    EstimationError,
    FragileInferenceWarning,
    SmallTreatedGroupWarning,
    SpecError,
    recording_warnings,
    warn,
)
from impact.results import Result, effects_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["dose_response", "DoseResponseResult"]

INFERENCE_OPTIONS = ("auto", "analytic", "randomization")
_MAX_LISTED = 5

ASSUMPTION = (
    "Strong parallel trends: without the programme, the outcome of units at every dose would have changed as "
    "much as that of untreated units, and units at each dose would have responded to other doses as the units "
    "actually receiving them did (no selection on gains). Plain parallel trends identifies ATT(d) at each dose "
    "but not comparisons across doses (the ACRT)."
)


@dataclass(frozen=True, kw_only=True)
class DoseResponseResult(Result):
    """Result of :func:`dose_response`: the averages (and event study) in ``tidy()``, the curves in
    ``curve`` (one row per dose of the evaluation grid)."""

    curve: pd.DataFrame = field(default=None, repr=False)  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`Result.to_dict`, with the whole dose-response curve (every grid point)."""
        from impact.results import jsonable

        out = super().to_dict()
        out["dose_response_curve"] = jsonable(self.curve)
        return out

    def figures(self) -> dict:
        """The dose-response curves (and the event study of the binarised effects)."""
        figures = {
            "Dose-response: effect by dose, ATT(d)": lambda ax=None: self.plot(ax=ax),
            "Average causal response by dose, ACRT(d)": lambda ax=None: self.plot(ax=ax, which="acrt"),
        }
        if self.effects["event_time"].notna().any():
            from impact.report.plots import coefficient_plot

            figures["Event study of the binarised effect"] = lambda ax=None: coefficient_plot(
                self.tidy().loc[lambda t: t["event_time"].notna()], ax=ax)
        return figures

    def plot(self, ax: Axes | None = None, *, which: Literal["att", "acrt"] = "att") -> Axes:
        """The dose-response curve ATT(d) (or ACRT(d)) with pointwise intervals and uniform bands."""
        from impact.report.plots import dose_response_plot

        check_option("which", which, ("att", "acrt"))
        return dose_response_plot(self.curve, which=which, ax=ax, dose_label=str(self.settings.get("dose", "dose")),
                                  outcome=self.outcome or "", level=self.level)


# ---------------------------------------------------------------------------------------------
# B-spline basis of the dose (clamped at the range of the treated doses, as R contdid / diff-diff)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _DoseBasis:
    knots: np.ndarray
    degree: int

    @classmethod
    def from_doses(cls, doses: np.ndarray, degree: int, num_knots: int) -> _DoseBasis:
        interior = np.quantile(doses, np.linspace(0, 1, num_knots + 2)[1:-1]) if num_knots else np.array([])
        knots = np.concatenate([np.repeat(doses.min(), degree + 1), interior, np.repeat(doses.max(), degree + 1)])
        return cls(knots, degree)

    @property
    def size(self) -> int:
        return len(self.knots) - self.degree - 1

    def _spline(self, x: np.ndarray, derivative: bool) -> np.ndarray:
        # an intercept replaces the first B-spline (the basis sums to one), so it spans the same functions
        x = np.clip(np.asarray(x, dtype=float), self.knots[self.degree], self.knots[-self.degree - 1])
        spline = BSpline(self.knots, np.eye(self.size), self.degree, extrapolate=False)
        values = (spline.derivative() if derivative else spline)(x)
        values = np.nan_to_num(values)
        values[:, 0] = 0.0 if derivative else 1.0
        return values

    def design(self, x: np.ndarray) -> np.ndarray:
        return self._spline(x, derivative=False)

    def derivative(self, x: np.ndarray) -> np.ndarray:
        return self._spline(x, derivative=True)


def default_dose_grid(doses: np.ndarray) -> np.ndarray:
    """The 10th to 99th percentiles of the treated doses in steps of 1 (R contdid's default grid)."""
    return np.quantile(doses, np.arange(0.10, 0.99 + 0.005, 0.01))


# ---------------------------------------------------------------------------------------------
# Preparation: a balanced panel, one cohort and one dose per unit
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Panel:
    Y: np.ndarray  # (N, T) outcome
    periods: np.ndarray  # (T,)
    units: np.ndarray  # (N,) unit labels
    start: np.ndarray  # (N,) index of the first treated period, -1 = never treated
    dose: np.ndarray  # (N,)
    flow: tuple


def _listed(values) -> str:
    values = list(values)
    more = f" and {len(values) - _MAX_LISTED} more" if len(values) > _MAX_LISTED else ""
    return ", ".join(show(v) for v in values[:_MAX_LISTED]) + more


def _prepare(df, *, outcome, unit, time, dose, cohort, where) -> _Panel:
    check_column_arguments(where, outcome=outcome, unit=unit, time=time, dose=dose, cohort=cohort)
    if cohort is not None and isinstance(df, pd.DataFrame) and cohort in df.columns and df[cohort].isna().any():
        df = df.assign(**{cohort: df[cohort].fillna(0)})  # never-treated units may have a missing cohort
    roles = {"outcome": outcome, "unit": unit, "time": time, "dose": dose, "cohort": cohort}
    prepared = prepare(df, where=where, roles=roles, numeric=[outcome, dose] + ([cohort] if cohort else []),
                       unique=[unit, time], unit=unit)
    frame = prepared.frame
    unit_codes, units = pd.factorize(frame[unit], sort=True)
    time_codes, periods = pd.factorize(frame[time], sort=True)
    N, T = len(units), len(periods)
    if T < 2:
        raise DataError(f"{where}: needs at least two periods in {time!r}; found {T}.")
    counts = np.bincount(unit_codes, minlength=N)
    if np.any(counts < T):
        short = units[counts < T]
        raise DataError(f"{where}: the panel must be balanced (every unit observed in all {T} periods of {time!r}), "
                        f"but {len(short)} unit(s) miss periods: {_listed(short)}. Keep units observed throughout "
                        "or fill the gaps.")
    Y = np.empty((N, T))
    Y[unit_codes, time_codes] = frame[outcome].to_numpy(dtype=float)
    D = np.empty((N, T))
    D[unit_codes, time_codes] = frame[dose].to_numpy(dtype=float)
    negative = np.any(D < 0, axis=1)
    if negative.any():
        raise DataError(f"{where}: column {dose!r} must be zero (untreated) or positive, but it is negative for "
                        f"{int(negative.sum())} unit(s): {_listed(units[negative])}. Code untreated units 0 and give "
                        "treated units the amount they received (e.g. money per capita).")
    if cohort is not None:
        C = np.empty((N, T))
        C[unit_codes, time_codes] = frame[cohort].to_numpy(dtype=float)
        varying = np.any(C != C[:, :1], axis=1)
        if varying.any():
            raise DataError(f"{where}: column {cohort!r} must be constant within each {unit} but varies for "
                            f"{int(varying.sum())} unit(s): {_listed(units[varying])}. Give each unit its first "
                            "treated period (0 or empty for never treated).")
        varying = np.any(D != D[:, :1], axis=1)
        if varying.any():
            raise DataError(f"{where}: column {dose!r} must be constant within each {unit} (one dose per unit, e.g. "
                            f"the programme money per capita over the whole programme) but varies over {time!r} for "
                            f"{int(varying.sum())} unit(s): {_listed(units[varying])}. Use the unit's total or average "
                            "dose in every row, or pass cohort=None with a dose column that is 0 before the start.")
        g = C[:, 0]
        d = D[:, 0]
        period_values = pd.to_numeric(pd.Series(periods), errors="coerce").to_numpy(dtype=float)
        treated = g != 0
        on_grid = np.isin(g, period_values)
        if np.any(treated & ~on_grid):
            bad = treated & ~on_grid
            raise DataError(f"{where}: column {cohort!r} must be a period of {time!r} (the first treated period) or "
                            f"0 for never-treated units, but holds {_listed(np.unique(g[bad]))} for unit(s) "
                            f"{_listed(units[bad])}.")
        start = np.where(treated, np.searchsorted(period_values, g), -1)
        zero_dose = treated & (d == 0)
        if zero_dose.any():
            raise DataError(f"{where}: {int(zero_dose.sum())} unit(s) have a first treated period in {cohort!r} but "
                            f"dose 0 in {dose!r}: {_listed(units[zero_dose])}. Give them the dose they received, or "
                            "code them as never treated (cohort 0).")
        dosed = ~treated & (d != 0)
        if dosed.any():
            raise DataError(f"{where}: {int(dosed.sum())} never-treated unit(s) (cohort 0) have a positive dose in "
                            f"{dose!r}: {_listed(units[dosed])}. Untreated units must have dose 0; fix the cohort or "
                            "the dose.")
    else:
        positive = D > 0
        ever = positive.any(axis=1)
        start = np.where(ever, positive.argmax(axis=1), -1)
        after = np.arange(T)[None, :] >= np.where(ever, start, T)[:, None]
        d = np.where(ever, D[np.arange(N), np.maximum(start, 0)], 0.0)
        varying = ever & np.any(after & (D != d[:, None]), axis=1)
        if varying.any():
            raise DataError(f"{where}: with cohort=None the dose column {dose!r} must be 0 before a unit's start and "
                            f"the same positive amount from then on, but it changes after the start for "
                            f"{int(varying.sum())} unit(s): {_listed(units[varying])}. This design needs one dose per "
                            "unit: put the unit's total or average dose in every treated period.")
    if not np.any(start >= 0):
        raise DataError(f"{where}: the dose {dose!r} is zero for every unit, so no unit is treated and there is no "
                        "dose-response to estimate. Check the dose column (and the cohort column).")
    if not np.any(start < 0):
        raise DataError(f"{where}: every unit is treated (no unit has dose 0), so there are no untreated units to "
                        "compare with; the level of the dose-response is not identified. Add untreated (dose 0) "
                        "units.")
    if np.any(start == 0):
        early = units[start == 0]
        raise DataError(f"{where}: {len(early)} unit(s) are treated from the first period ({_listed(early)}), so "
                        "they have no pre-treatment period. Drop them or add earlier periods.")
    if np.unique(d[start >= 0]).size < 2:
        raise DataError(f"{where}: every treated unit has the same dose ({show(d[start >= 0][0])}), so the "
                        "dose-response cannot be traced; use im.did.att_gt for a binary treatment.")
    # bootstrap multipliers and drawn assignments follow the units' data, not row order or unit labels
    order = canonical_order(np.column_stack([start, d, Y]), units)
    return _Panel(Y[order], np.asarray(periods), np.asarray(units)[order], start.astype(int)[order], d[order],
                  prepared.flow)


# ---------------------------------------------------------------------------------------------
# Group-time cells
# ---------------------------------------------------------------------------------------------
def _cells(panel: _Panel, *, control_group: str, base_period: str, anticipation: int, cohorts: np.ndarray) -> list[dict]:
    """Every (cohort, period) comparison: indices, base period, post flag and comparison cohorts."""
    T = len(panel.periods)
    K = len(cohorts)
    cells = []
    for k, s in enumerate(cohorts):
        for ti in range(T):
            post = ti >= s - anticipation
            if base_period == "varying" and not post:
                base = ti - 1
            else:
                base = s - 1 - anticipation
            if base < 0:
                continue
            comparison = np.zeros(K + 1, bool)
            comparison[K] = True
            if control_group == "notyet":
                comparison[:K] = (cohorts > max(ti, base) + anticipation) & (np.arange(K) != k)
            cells.append({"k": k, "start": int(s), "ti": ti, "base": base, "post": bool(post), "reference": base == ti,
                          "e": ti - int(s), "comparison": comparison})
    return cells


@dataclass
class _Fit:
    """Estimates and influence functions (variance = sum of squares) of every reported quantity."""

    att_d: np.ndarray
    acrt_d: np.ndarray
    if_curve: np.ndarray  # (N, 2 * grid): ATT(d) then ACRT(d)
    binarised: np.ndarray  # (R,): ATT^o then event-time rows
    if_binarised: np.ndarray  # (N, R)
    acrt: float
    if_acrt: np.ndarray  # (N,)
    omega: np.ndarray  # (R, cells)
    cell_att: np.ndarray  # (cells,) binarised ATT of every cell
    ybar: dict  # cohort code -> weighted post-period adjusted changes of its treated units (for ACRT randomisation)
    weight_sum: dict  # cohort code -> total weight of its post cells


def _estimate(panel: _Panel, cells: list[dict], cohort_code: np.ndarray, basis: _DoseBasis, grid: np.ndarray,
              event_times: np.ndarray) -> _Fit:
    N = panel.Y.shape[0]
    K = cohort_code.max()
    n_grid = len(grid)
    Psi_eval, dPsi_eval = basis.design(grid), basis.derivative(grid)
    members = {k: np.flatnonzero(cohort_code == k) for k in range(K)}
    n_cohort = {k: len(v) for k, v in members.items()}
    post = [j for j, c in enumerate(cells) if c["post"]]
    # ATT^o: a cohort's weight (its share of treated units) split evenly over its post-treatment cells
    share = {k: n_cohort[k] for k in {cells[j]["k"] for j in post}}
    total = sum(share.values())
    n_post = {k: sum(cells[j]["k"] == k for j in post) for k in share}
    omega = np.zeros((1 + len(event_times), len(cells)))
    for j in post:
        k = cells[j]["k"]
        omega[0, j] = share[k] / total / n_post[k]
    for r, e in enumerate(event_times, start=1):
        in_bin = [j for j, c in enumerate(cells) if c["e"] == e]
        size = sum(n_cohort[cells[j]["k"]] for j in in_bin)
        for j in in_bin:
            omega[r, j] = n_cohort[cells[j]["k"]] / size
    spline = {}
    for k in share:
        Psi = basis.design(panel.dose[members[k]])
        Ginv = np.linalg.inv(Psi.T @ Psi)
        spline[k] = (Psi, Ginv, basis.derivative(panel.dose[members[k]]).mean(axis=0))
    att_glob = np.zeros(len(cells))
    if_binarised = np.zeros((N, omega.shape[0]))
    att_d = np.zeros(n_grid)
    acrt_d = np.zeros(n_grid)
    acrt = 0.0
    resid = {k: np.zeros(n_cohort[k]) for k in share}
    ybar = {k: np.zeros(n_cohort[k]) for k in share}
    control_part = {k: np.zeros(N) for k in share}
    for j, c in enumerate(cells):
        dy = panel.Y[:, c["ti"]] - panel.Y[:, c["base"]]
        controls = c["comparison"][cohort_code]
        mu0 = dy[controls].mean()
        treated = members[c["k"]]
        att_glob[j] = dy[treated].mean() - mu0
        influence = np.zeros(N)
        influence[treated] = (dy[treated] - dy[treated].mean()) / len(treated)
        influence[controls] = -(dy[controls] - mu0) / controls.sum()
        if_binarised += np.outer(influence, omega[:, j])
        w = omega[0, j]
        if w == 0:
            continue
        Psi, Ginv, dbar = spline[c["k"]]
        y = dy[treated] - mu0
        beta = Ginv @ (Psi.T @ y)
        att_d += w * (Psi_eval @ beta)
        acrt_d += w * (dPsi_eval @ beta)
        acrt += w * float(dbar @ beta)
        resid[c["k"]] += w * (y - Psi @ beta)
        ybar[c["k"]] += w * y
        control_part[c["k"]][controls] += w * (dy[controls] - mu0) / controls.sum()
    if_curve = np.zeros((N, 2 * n_grid))
    if_acrt = np.zeros(N)
    for k, (Psi, Ginv, dbar) in spline.items():
        treated = members[k]
        lever = Psi @ Ginv  # (n_k, K): the unit's pull on the coefficients
        intercept = Ginv @ Psi.sum(axis=0)  # the coefficient shift of a common change (the intercept, e_1)
        if_curve[treated, :n_grid] += (lever @ Psi_eval.T) * resid[k][:, None]
        if_curve[treated, n_grid:] += (lever @ dPsi_eval.T) * resid[k][:, None]
        if_curve[:, :n_grid] -= np.outer(control_part[k], Psi_eval @ intercept)
        if_curve[:, n_grid:] -= np.outer(control_part[k], dPsi_eval @ intercept)
        if_acrt[treated] += (lever @ dbar) * resid[k]
        if_acrt -= control_part[k] * float(dbar @ intercept)
    return _Fit(att_d, acrt_d, if_curve, omega @ att_glob, if_binarised, acrt, if_acrt, omega, att_glob, ybar,
                {k: float(omega[0, [j for j, c in enumerate(cells) if c["k"] == k]].sum()) for k in share})


# ---------------------------------------------------------------------------------------------
# Randomisation inference for the averages
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _DosePermutation:
    """Randomisation inference for ACRT^o: the observed doses re-assigned across the treated units.

    Under the sharp null that a unit's outcome path depends on its dose only through ``tau * dose`` in
    its post-treatment periods (ACRT(d) = tau everywhere), the dose-free outcomes ``ybar - tau W d`` do
    not depend on the doses, so every re-assignment of the observed doses is equally likely when
    doses were assigned at random among the treated. ACRT^o is linear in the outcomes for a given
    assignment, ``sum_i c_i(L) y_i``, so the statistic is affine in tau as the engine needs; the
    studentising variance is the influence-function variance of that assignment's fit.
    """

    basis_values: np.ndarray  # (arms, K) basis at each distinct dose
    derivative_values: np.ndarray  # (arms, K)
    positions: tuple  # per cohort: positions of its units among the treated
    y: tuple  # per cohort: weighted post-period adjusted changes
    z: tuple  # per cohort: W_g * observed dose

    def components(self, labels: np.ndarray):
        from impact.inference.randomization import LinearComponents

        P = labels.shape[0]
        a, b, v0, v1, v2 = (np.zeros(P) for _ in range(5))
        for pos, y, z in zip(self.positions, self.y, self.z, strict=True):
            arms = labels[:, pos].astype(np.intp)
            Psi = self.basis_values[arms]  # (P, n_k, K)
            dbar = self.derivative_values[arms].mean(axis=1)
            Ginv = np.linalg.pinv(np.einsum("pik,pil->pkl", Psi, Psi))
            c = np.einsum("pik,pk->pi", Psi, np.einsum("pkl,pl->pk", Ginv, dbar))
            ry = y - np.einsum("pik,pk->pi", Psi, np.einsum("pkl,pl->pk", Ginv, np.einsum("pik,i->pk", Psi, y)))
            rz = z - np.einsum("pik,pk->pi", Psi, np.einsum("pkl,pl->pk", Ginv, np.einsum("pik,i->pk", Psi, z)))
            a += np.einsum("pi,i->p", c, y)
            b += np.einsum("pi,i->p", c, z)
            c2 = c * c
            v0 += np.einsum("pi,pi->p", c2, ry * ry)
            v1 += np.einsum("pi,pi->p", c2, ry * rz)
            v2 += np.einsum("pi,pi->p", c2, rz * rz)
        return LinearComponents(a[:, None], b[:, None], v0[:, None], v1[:, None], v2[:, None])


def _dose_randomization(panel, fit, basis, cohort_code, n_permutations, seed, level, where):
    """ACRT^o by re-assigning doses across the treated units, or None with the reason it cannot be done."""
    from impact.inference.permutation import AssignmentScheme
    from impact.inference.randomization import adoption_randomization

    treated = np.flatnonzero(cohort_code < cohort_code.max())
    treated = treated[np.isin(cohort_code[treated], list(fit.ybar))]
    values, arms = np.unique(panel.dose[treated], return_inverse=True)
    if len(values) > 120:
        return None, f"{len(values)} distinct doses are too many to permute as arms"
    scheme = AssignmentScheme(arms, method="complete", n_arms=len(values))
    total = scheme.n_assignments()
    if total <= 2:
        return None, f"the {len(treated)} treated units allow only {int(total)} assignment(s) of their doses"
    smallest = 1.0 / total
    if smallest > (1 - level) / 5:
        warn(FragileInferenceWarning, f"{where}: only {int(total):,} distinct assignments of the doses across the "
             f"{len(treated)} treated units: the smallest attainable p-value of ACRT is {smallest:.3g}, so its "
             "p-value is coarse and its interval may be unbounded.")
    position = {u: i for i, u in enumerate(treated)}
    positions, ys, zs = [], [], []
    for k, y in fit.ybar.items():
        units = np.flatnonzero(cohort_code == k)
        positions.append(np.array([position[u] for u in units]))
        ys.append(y)
        zs.append(fit.weight_sum[k] * panel.dose[units])
    permutation = _DosePermutation(basis.design(values), basis.derivative(values), tuple(positions), tuple(ys),
                                   tuple(zs))
    ri = adoption_randomization(permutation.components, scheme, n_permutations=n_permutations, seed=seed,
                                level=level, studentize=True, unit_word=f"{len(treated)} treated units", chunk=500)
    how = (f"all {int(total):,} assignments" if ri.exact else
           f"{ri.n_draws:,} random draws of the {total:,.3g} assignments")
    description = (f"randomisation inference, studentised (t) over {how} of the doses across the {len(treated)} "
                   "treated units (sharp null: ACRT(d) = tau at every dose); interval by test inversion; std_error "
                   "implied by the interval")
    return ri, description


def _cohort_randomization(panel, cells, fit, cohort_code, n_permutations, seed, level, where):
    """ATT^o and the event study by re-assigning start years across all units (att_gt's engine)."""
    from impact.did._randomization import CohortLinear, cell_matrix, cell_onset
    from impact.inference.randomization import adoption_scheme

    K = int(cohort_code.max())
    word = f"{len(cohort_code)} units"
    adoption_scheme(cohort_code, never_code=K, where=where, unit_word=word)
    cohort_units = np.bincount(cohort_code, minlength=K + 1).astype(float)
    C = cell_matrix(cells, K, panel.Y.shape[1], cohort_units)
    alpha = np.einsum("rj,jkt->rkt", fit.omega, C)
    M = np.zeros_like(alpha)
    for r in range(fit.omega.shape[0]):
        for j in np.flatnonzero(fit.omega[r]):
            M[r, cells[j]["k"], cells[j]["ti"]] = 1.0
    engine = CohortLinear(Yb=panel.Y, labels=cohort_code.astype(np.int64), K=K, block_units=np.ones(len(cohort_code)),
                          unit_word=word, n_permutations=int(n_permutations), seed=seed,
                          onset=cell_onset(cells, K, panel.Y.shape[1]))  # the pre-trend test: exact window
    ri = engine.run(alpha, M, level)
    notes = ri.row_notes(engine.treated_blocks(M))
    how = ri.description()
    rows = [how if n is None else how + ("" if str(n).startswith("; ") else "; ") + str(n) for n in notes]
    return ri, rows, (engine, alpha)


# ---------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------
def dose_response(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    dose: str,
    cohort: str | None = None,
    control_group: Literal["never", "notyet"] = "never",
    base_period: Literal["varying", "universal"] = "varying",
    anticipation: int = 0,
    degree: int = 3,
    num_knots: int = 0,
    dose_grid: list[float] | None = None,
    inference: Literal["auto", "analytic", "randomization"] = "auto",
    n_bootstrap: int | None = 999,
    n_permutations: int = 9_999,
    seed: int | None = None,
    level: float = 0.95,
) -> DoseResponseResult:
    """Difference-in-differences with a continuous treatment: dose-response curves and their averages.

    Parameters
    ----------
    df : DataFrame
        Balanced long panel, one row per unit and period.
    outcome, unit, time : str
        Column names.
    dose : str
        The amount of treatment each unit received (e.g. programme money per capita): 0 for untreated
        units, positive for treated ones, one value per unit. With ``cohort=None`` it may instead be 0
        before a unit's start and its dose from then on (the first positive period is the start).
    cohort : str, optional
        First treated period of each unit (0 or missing for never treated), as in :func:`att_gt`.
    control_group : {"never", "notyet"}
        Compare each cohort with the untreated (dose 0) units, or also with units not yet treated.
    base_period : {"varying", "universal"}
        Pre-treatment cells compare adjacent periods ("varying") or every period with the period before
        the start ("universal"); post-treatment cells always use the period before the start.
    anticipation : int
        Periods before the start in which units may already react.
    degree, num_knots : int
        The B-spline in the dose: degree 3 and no interior knots (a cubic polynomial) by default, as R
        ``contdid`` and diff-diff; interior knots sit at quantiles of the treated doses. Each cohort
        needs more treated units than ``degree + num_knots + 1``; with few treated units use
        ``degree=1`` (a linear dose-response).
    dose_grid : list of float, optional
        Doses at which to evaluate the curves (default: the 10th to 99th percentiles of the treated doses).
    inference : {"auto", "analytic", "randomization"}
        For the averages ATT^o and ACRT^o and the event study. "auto" uses randomisation inference when
        fewer than 50 treated or untreated units exist (start years permuted across units for ATT^o and
        the event study; doses permuted across treated units for ACRT^o), else the analytic influence
        function. The curves always use the influence function (with a FragileInferenceWarning when
        treated units are few).
    n_bootstrap : int or None
        Multiplier-bootstrap draws for the uniform (sup-t) bands of ATT(d) and ACRT(d); None for none.
    n_permutations : int
        Assignments enumerated (when there are at most this many) or drawn for randomisation inference.
    seed : int, optional
        Seed of the bootstrap and of the drawn assignments.

    Returns
    -------
    DoseResponseResult
        ``tidy()`` rows ``"ATT"`` (ATT^o, the headline), ``"ACRT"`` (ACRT^o) and ``"e=..."`` (event study of
        the binarised effect); ``curve`` holds ``dose, att, att_std_error, att_conf_low, att_conf_high,
        att_band_low, att_band_high`` and the same for ``acrt``. ``diagnostics["pretrend_wald_event_time"]``
        is the joint test of the pre-treatment event-time effects (randomisation or Wald, as the averages).

    Notes
    -----
    For cohort g, period t and base period b, with :math:`\\Delta Y = Y_t - Y_b`, comparison units C and
    the cohort's treated units, :math:`\\widehat{ATT}_{g,t}(d) = \\psi(d)'\\hat\\beta_{g,t}` where
    :math:`\\hat\\beta_{g,t}` is the least-squares fit of :math:`\\Delta Y_i - \\overline{\\Delta Y}_C` on the
    B-spline basis :math:`\\psi(D_i)` (with intercept), :math:`ACRT_{g,t}(d) = \\psi'(d)'\\hat\\beta_{g,t}`,
    :math:`ATT^o_{g,t} = \\overline{\\Delta Y}_g - \\overline{\\Delta Y}_C` and :math:`ACRT^o_{g,t}` the mean of
    :math:`\\psi'(D_i)'\\hat\\beta_{g,t}` over the treated. Post-treatment cells are averaged with weights
    :math:`P(G=g \\mid G>0) / \\#\\{t \\ge g\\}`; event time e averages the cells with t - g = e by cohort
    size. Analytic standard errors are :math:`\\sqrt{\\sum_i \\psi_i^2}` of the influence functions
    (diff-diff's convention). ATT(d) needs parallel trends for units at dose d; comparing doses
    (ACRT) needs *strong* parallel trends (no selection on gains), Callaway et al. (2024) section 3.

    References
    ----------
    Callaway, B., Goodman-Bacon, A. and Sant'Anna, P. H. C. (2024). Difference-in-differences with a
    continuous treatment. NBER Working Paper 32117. doi:10.3386/w32117

    Examples
    --------
    >>> import impact as im
    >>> df = im.datasets.load("sweden_funding")
    >>> res = im.did.dose_response(df, outcome="emp_rate", unit="region_code", time="year",
    ...                            dose="funding_per_capita", cohort="start_year", degree=1)
    >>> res.tidy()          # ATT, ACRT and the event study
    >>> res.curve.head()    # ATT(d) and ACRT(d) on the dose grid
    """
    where = "dose_response"
    level = check_level(level, where)
    check_option("control_group", control_group, ("never", "notyet"))
    check_option("base_period", base_period, ("varying", "universal"))
    check_option("inference", inference, INFERENCE_OPTIONS)
    anticipation = check_integer("anticipation", anticipation, where, minimum=0)
    degree = check_integer("degree", degree, where, minimum=1)
    num_knots = check_integer("num_knots", num_knots, where, minimum=0)
    n_bootstrap = check_integer("n_bootstrap", n_bootstrap, where, minimum=99, allow_none=True)
    n_permutations = check_integer("n_permutations", n_permutations, where, minimum=99)
    seed = check_seed(seed, where)
    with recording_warnings() as log:
        panel = _prepare(df, outcome=outcome, unit=unit, time=time, dose=dose, cohort=cohort, where=where)
        result = _fit(panel, outcome=outcome, dose=dose, cohort=cohort, control_group=control_group,
                      base_period=base_period, anticipation=anticipation, degree=degree, num_knots=num_knots,
                      dose_grid=dose_grid, inference=inference, n_bootstrap=n_bootstrap,
                      n_permutations=n_permutations, seed=seed, level=level, where=where)
    return result.replace(warnings=tuple(log))


def _fit(panel, *, outcome, dose, cohort, control_group, base_period, anticipation, degree, num_knots, dose_grid,
         inference, n_bootstrap, n_permutations, seed, level, where) -> DoseResponseResult:
    from impact.inference.randomization import choose_randomization

    starts = np.unique(panel.start[panel.start >= 0])
    K = len(starts)
    cohort_code = np.where(panel.start >= 0, np.searchsorted(starts, panel.start), K)
    treated_doses = panel.dose[panel.start >= 0]
    basis = _DoseBasis.from_doses(treated_doses, degree, num_knots)
    grid = default_dose_grid(treated_doses) if dose_grid is None else _check_grid(dose_grid, where)
    # a cohort whose treated units cannot pin down the spline is left out (as R contdid and diff-diff do)
    sizes = np.bincount(cohort_code, minlength=K + 1)
    small = [k for k in range(K) if sizes[k] <= basis.size]
    if small:
        listed = ", ".join(f"{show(panel.periods[starts[k]])} ({sizes[k]} unit(s))" for k in small)
        if len(small) == K:
            raise EstimationError(
                f"{where}: every cohort has at most {basis.size} treated units, too few for a B-spline with "
                f"{basis.size} coefficients (degree={degree}, num_knots={num_knots}): cohorts {listed}. Use a "
                "smaller basis (degree=1 fits a linear dose-response and needs 3 units per cohort).")
        warn(SmallTreatedGroupWarning,
             f"{where}: cohorts {listed} have at most {basis.size} treated units, too few for the "
             f"{basis.size}-coefficient B-spline; they are left out of every estimate. Use degree=1 to keep them.")
    for k in range(K):
        if k in small:
            continue
        doses_k = panel.dose[cohort_code == k]
        if np.linalg.matrix_rank(basis.design(doses_k)) < basis.size:
            raise EstimationError(
                f"{where}: the treated units of cohort {show(panel.periods[starts[k]])} have only "
                f"{np.unique(doses_k).size} distinct doses, too few for a B-spline with {basis.size} coefficients. "
                "Lower degree (or num_knots).")
    kept = np.array([k for k in range(K) if k not in small])
    cells = [c for c in _cells(panel, control_group=control_group, base_period=base_period, anticipation=anticipation,
                               cohorts=starts) if c["k"] in kept]
    empty = [c for c in cells if not c["comparison"][cohort_code].any()]
    if empty:
        raise DataError(f"{where}: no comparison units for cohort {show(panel.periods[starts[empty[0]['k']]])} in "
                        f"period {show(panel.periods[empty[0]['ti']])}.")
    if not any(c["post"] for c in cells):
        raise DataError(f"{where}: no cohort is observed after its start, so there is no post-treatment period.")
    event_times = np.unique([c["e"] for c in cells])
    fit = _estimate(panel, cells, cohort_code, basis, grid, event_times)

    n_treated = int(np.isin(cohort_code, kept).sum())
    n_untreated = int((cohort_code == K).sum())
    se_bin = np.sqrt(np.sum(fit.if_binarised**2, axis=0))
    se_acrt = float(np.sqrt(np.sum(fit.if_acrt**2)))
    se_curve = np.sqrt(np.sum(fit.if_curve**2, axis=0))
    analytic = "analytic influence function (sqrt of the sum of squared influence values), normal critical values"
    terms = ["ATT", "ACRT"] + [f"e={e}" for e in event_times]
    estimates = np.r_[fit.binarised[0], fit.acrt, fit.binarised[1:]]
    ses = np.r_[se_bin[0], se_acrt, se_bin[1:]]
    table = effects_table(terms, estimates, ses, level=level,
                          event_time=[np.nan, np.nan, *event_times.astype(float)])
    table["inference"] = analytic
    use_ri = choose_randomization(inference, n_treated_units=n_treated, n_untreated_units=n_untreated,
                                  n_units=n_treated + n_untreated, supported=None, where=where)
    if use_ri:
        order = np.r_[0, 2:len(terms)]
        ri, how, (engine, alpha) = _cohort_randomization(panel, cells, fit, cohort_code, n_permutations, seed, level,
                                                          where)
        table.loc[order, "p_value"] = ri.p_value
        table.loc[order, "conf_low"] = ri.conf_low
        table.loc[order, "conf_high"] = ri.conf_high
        table.loc[order, "std_error"] = ri.std_error
        table.loc[order, "inference"] = how
        ri_dose, how_dose = _dose_randomization(panel, fit, basis, cohort_code, n_permutations, seed, level, where)
        if ri_dose is None:
            warn(FragileInferenceWarning, f"{where}: ACRT keeps its analytic standard error ({how_dose}); with "
                 f"{n_treated} treated units read its p-value and interval as optimistic.")
        else:
            table.loc[1, ["p_value", "conf_low", "conf_high", "std_error"]] = [
                ri_dose.p_value[0], ri_dose.conf_low[0], ri_dose.conf_high[0], ri_dose.std_error[0]]
            note = ri_dose.row_notes(np.array([float(n_treated)]))[0]
            table.loc[1, "inference"] = how_dose + ("" if note is None else str(note))
        with np.errstate(divide="ignore", invalid="ignore"):
            table["statistic"] = table["estimate"] / table["std_error"]
    pre = np.flatnonzero((event_times < 0) & (se_bin[1:] > 0))  # event-time rows before the start (not the reference)
    pretrend = None
    if len(pre):
        if use_ri:
            effects = np.zeros((K + 1, panel.Y.shape[1]))
            for j, c in enumerate(cells):
                if c["post"] and not c["reference"]:
                    effects[c["k"], c["ti"]] = fit.cell_att[j]
            pretrend = engine.joint_test(alpha[1 + pre], effects, "estimated ATT(g, t)")
        else:
            b = fit.binarised[1 + pre]
            V = fit.if_binarised[:, 1 + pre].T @ fit.if_binarised[:, 1 + pre]
            statistic = float(b @ np.linalg.pinv(V) @ b)
            pretrend = {"statistic": statistic, "df_num": float(len(pre)), "df_denom": None,
                        "p_value": float(stats.chi2.sf(statistic, len(pre))),
                        "method": "Wald test with the influence-function covariance, chi-squared reference"}
        pretrend["null"] = "all pre-treatment event-time effects = 0 (parallel pre-trends)"
        pretrend["n_pre_periods"] = int(len(pre))
    curve_inference = analytic
    if min(n_treated, n_untreated) < 50:
        warn(FragileInferenceWarning,
             f"{where}: the curves ATT(d) and ACRT(d) use the analytic influence function with only "
             f"{min(n_treated, n_untreated)} treated (or untreated) units; their pointwise intervals and bands may "
             "be too narrow (no randomisation inference exists for a whole curve). Rely on the averages ATT and ACRT.")
        curve_inference += " (fragile: few treated units)"
    curve = _curve_table(grid, fit, se_curve, level=level, n_bootstrap=n_bootstrap, seed=seed, inference=curve_inference)
    headline_inference = table.loc[0, "inference"]
    return DoseResponseResult(
        design="dose_response", estimand="ATT", effects=table, headline="ATT", inference=headline_inference,
        n_obs=int(panel.Y.size), outcome=outcome, level=level, n_units=len(panel.units), n_treated=n_treated,
        settings={"dose": dose, "cohort": cohort, "control_group": control_group, "base_period": base_period,
                  "anticipation": anticipation, "degree": degree, "num_knots": num_knots,
                  "n_basis": basis.size, "n_bootstrap": n_bootstrap, "n_permutations": n_permutations,
                  "seed": seed, "inference_option": inference, "assumption": ASSUMPTION},
        sample_flow=panel.flow, curve=curve,
        diagnostics={"cohorts": {str(show(panel.periods[s])): int(sizes[k]) for k, s in enumerate(starts)},
                     "cohorts_left_out": [str(show(panel.periods[starts[k]])) for k in small],
                     "untreated_units": n_untreated,
                     "dose_range": [float(treated_doses.min()), float(treated_doses.max())],
                     "dose_response": _curve_summary(curve),
                     **({"pretrend_wald_event_time": pretrend} if pretrend is not None else {})},
    )


def _curve_summary(curve: pd.DataFrame) -> pd.DataFrame:
    """At most nine rows of the curve (the deciles of the default grid) for reports; to_dict keeps all."""
    rows = np.arange(0, 81, 10) if len(curve) == 90 else np.unique(np.linspace(0, len(curve) - 1, min(len(curve), 9)).round())
    columns = ["dose", "att", "att_conf_low", "att_conf_high", "acrt", "acrt_conf_low", "acrt_conf_high"]
    return curve.iloc[rows.astype(int)][columns].reset_index(drop=True)


def _check_grid(dose_grid, where) -> np.ndarray:
    grid = np.asarray(dose_grid, dtype=float).ravel() if not isinstance(dose_grid, str) else np.array([np.nan])
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise SpecError(f"{where}: dose_grid must be a non-empty list of positive finite doses; got {dose_grid!r}.")
    return np.sort(grid)


def _curve_table(grid, fit, se, *, level, n_bootstrap, seed, inference) -> pd.DataFrame:
    n = len(grid)
    z = stats.norm.ppf(0.5 + level / 2)
    out = {"dose": grid}
    crit = {}
    if n_bootstrap is not None:
        from impact.inference.multiplier import multiplier_bootstrap

        N = fit.if_curve.shape[0]
        for name, cols in (("att", slice(0, n)), ("acrt", slice(n, 2 * n))):
            draws = multiplier_bootstrap(N * fit.if_curve[:, cols], n_draws=n_bootstrap, seed=seed, kind="mammen",
                                         level=level, scale="sd")
            crit[name] = max(float(draws.critical_value), z)
    for name, est, s in (("att", fit.att_d, se[:n]), ("acrt", fit.acrt_d, se[n:])):
        out[name] = est
        out[f"{name}_std_error"] = s
        out[f"{name}_conf_low"] = est - z * s
        out[f"{name}_conf_high"] = est + z * s
        c = crit.get(name, math.nan)
        out[f"{name}_band_low"] = est - c * s
        out[f"{name}_band_high"] = est + c * s
    table = pd.DataFrame(out)
    table["inference"] = inference + (f"; uniform bands: multiplier bootstrap (Mammen), sup-t over the grid, "
                                      f"{n_bootstrap} draws" if n_bootstrap is not None else "")
    return table
