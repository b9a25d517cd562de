"""Randomisation inference over the assignment of adoption dates, shared by every DiD design.

With few treated regions the analytic (influence-function or cluster-robust) variances are
estimated from one or two treated units per cohort and are far too small. Randomisation inference
does not estimate a variance: it re-assigns the observed adoption dates (cohorts) across the
randomisation units -- units, or clusters when treatment was assigned by cluster -- keeping the
number of units per cohort fixed, re-computes the statistic under each assignment and reports where
the observed statistic falls (Fisher 1935; for DiD with few treated groups MacKinnon & Webb 2020).
It is exact under random assignment of adoption dates whatever the number of treated units, and
the studentised version (RI-t: the t statistic, not the coefficient, is permuted) stays valid
asymptotically under heteroskedasticity when assignment is not random (MacKinnon & Webb 2020,
Wu & Ding 2021).

The engine is design-agnostic. A design supplies a vectorised ``components(labels)`` that, for a
chunk of assignments (an int8 matrix ``(P, m)`` of cohort codes of the ``m`` randomisation units),
returns a :class:`LinearComponents`: for every reported row ``r`` the statistic is *affine* in the
hypothesised constant effect ``tau`` (for estimators that are linear in the outcome, under the sharp
null ``Y(0) = Y - tau D`` with D the treated cells of the row):

    estimate(tau) = a - tau * b,        variance(tau) = v0 - 2 tau v1 + tau^2 v2

so the p-value at any ``tau`` costs one pass over arrays of shape (P, R), and whether one assignment is
at least as extreme as the observed one is the sign of a quartic in ``tau``: the interval (test
inversion, all rows at once) brackets each end with a few passes and then solves the quartics of the
few assignments that change inside the bracket, so its ends are exact to rounding. Assignments are enumerated exactly
when there are at most ``n_permutations`` distinct ones (multinomial count over the cohorts), drawn
uniformly otherwise (:class:`impact.inference.permutation.AssignmentScheme`).

Conventions. Two-sided p-value: the share of assignments (the observed one included) whose |t| is
at least the observed |t|; with Monte Carlo draws ``(1 + #) / (1 + draws)`` (Phipson & Smyth 2010).
A null is rejected at level alpha when p <= alpha, which with exact enumeration has size at most
alpha. The standard error reported beside such an interval is the one it implies,
``(conf_high - conf_low) / (2 z)``, so the row's SE, interval and p-value tell the same story.

References
----------
Fisher, R. A. (1935). *The Design of Experiments*. Oliver & Boyd.
MacKinnon, J. G., & Webb, M. D. (2020). Randomization inference for difference-in-differences with
few treated clusters. *Journal of Econometrics* 218(2), 435-450. doi:10.1016/j.jeconom.2020.04.024
Wu, J., & Ding, P. (2021). Randomization tests for weak null hypotheses in randomized experiments.
*Journal of the American Statistical Association* 116(536), 1898-1913. doi:10.1080/01621459.2020.1750415
Pesarin, F. (2001). *Multivariate Permutation Tests with Applications in Biostatistics*. Wiley (the
nonparametric combination of permutation tests; min-p is Tippett's combining function).
Westfall, P. H., & Young, S. S. (1993). *Resampling-Based Multiple Testing*. Wiley.
Phipson, B., & Smyth, G. K. (2010). Permutation p-values should never be zero. *Statistical
Applications in Genetics and Molecular Biology* 9(1). doi:10.2202/1544-6115.1585
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from impact.errors import EstimationError, FewAssignmentsWarning, SpecError, warn
from impact.inference.inversion import acceptance_sup, real_roots
from impact.inference.permutation import AssignmentScheme
from impact.inference.resampling import chunk_generators, chunk_starts, map_chunks, pieces

__all__ = [
    "LinearComponents",
    "AdoptionRandomization",
    "adoption_scheme",
    "adoption_randomization",
    "RI_TREATED_THRESHOLD",
    "RI_MAX_UNITS",
    "DEFAULT_PERMUTATIONS",
    "choose_randomization",
    "randomization_joint_test",
    "UNBOUNDED_NOTE",
    "unbounded_note",
]

#: ``inference="auto"`` uses randomisation inference when fewer treated (or fewer untreated)
#: randomisation units than this are available: below it the analytic variances over-reject in the
#: simulations of ``analyses/simulations/few_treated.py`` (at 5%: 8 treated of 20, att_gt 10-15%,
#: Sun-Abraham CR1 8%; 1 treated 56-63%). Just above it (50 treated of 120, 300 replications) the
#: analytic effects hold size (3-7%) but the analytic pre-trend Wald test of att_gt rejected 31%, so
#: att_gt keeps randomisation for its pre-trend tests there (see ``att_gt``'s ``inference``).
RI_TREATED_THRESHOLD = 50
#: ... and when the number of randomisation units is at most this (beyond, the cost of permuting is
#: not worth it: every cohort then has many units and the analytic path is used, with a warning).
RI_MAX_UNITS = 5_000
DEFAULT_PERMUTATIONS = 9_999
DEFAULT_SEED = 20_101  # used when no seed is given, so reports are reproducible
_TIE = 1e-9


@dataclass(frozen=True)
class LinearComponents:
    """Statistic of every row under a chunk of assignments, affine in the hypothesised effect tau.

    All arrays have shape (P, R): ``estimate(tau) = a - tau b``; ``variance(tau) = v0 - 2 tau v1 +
    tau^2 v2`` (the variance used to studentise; any consistent formula, the same for every
    assignment).
    """

    a: np.ndarray
    b: np.ndarray
    v0: np.ndarray
    v1: np.ndarray
    v2: np.ndarray

    @staticmethod
    def concatenate(parts: list[LinearComponents]) -> LinearComponents:
        return LinearComponents(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("a", "b", "v0", "v1", "v2")))

    def t2(self, tau: np.ndarray | float = 0.0) -> np.ndarray:
        """Squared t statistic (cheaper than |t| and ordered the same way)."""
        tau = np.asarray(tau, dtype=float)
        est = self.b * tau
        np.subtract(self.a, est, out=est)
        est *= est
        var = self.v2 * tau  # v0 - 2 tau v1 + tau^2 v2, built in place (this runs inside the bisection)
        var -= 2 * self.v1
        var *= tau
        var += self.v0
        np.maximum(var, 1e-300, out=var)
        est /= var
        return est

    def t(self, tau: np.ndarray | float = 0.0) -> np.ndarray:
        tau = np.asarray(tau, dtype=float)
        est = self.a - tau * self.b
        var = self.v0 - 2 * tau * self.v1 + tau**2 * self.v2
        scale = np.maximum(np.abs(self.v0), 1e-300) * 1e-12
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(var > scale, est / np.sqrt(np.clip(var, 0, None)), np.sign(est) * np.inf * (np.abs(est) > 0))


@dataclass(frozen=True)
class AdoptionRandomization:
    """Randomisation-inference results for R rows (p-values, intervals by test inversion)."""

    p_value: np.ndarray
    conf_low: np.ndarray
    conf_high: np.ndarray
    std_error: np.ndarray  # implied by the interval: width / (2 z)
    observed: LinearComponents  # shape (1, R)
    draws: LinearComponents  # shape (P, R), the observed assignment excluded
    exact: bool
    n_assignments: int | float
    n_draws: int
    studentized: bool
    level: float
    unit_word: str

    @property
    def smallest_p(self) -> float:
        """Smallest attainable two-sided p-value."""
        return 1.0 / (self.n_draws + 1)

    def row_notes(self, treated_units: np.ndarray | None = None) -> np.ndarray:
        """Per row, the sentence explaining an unbounded interval (:func:`unbounded_note`), else None.

        ``treated_units``: treated randomisation units behind each row. A design puts this array in
        its effects table's ``inference`` column; ``Result.tidy()`` appends it to the method text."""
        counts = np.full(len(self.conf_low), np.nan) if treated_units is None else np.asarray(treated_units, dtype=float)
        notes = [unbounded_note(lo, hi, n, self.level, self.smallest_p) or None
                 for lo, hi, n in zip(self.conf_low, self.conf_high, counts)]
        return np.array(notes, dtype=object)

    def description(self) -> str:
        stat = "studentised (t) " if self.studentized else ""
        if self.exact:
            how = f"all {self.n_assignments:,} assignments of start years across {self.unit_word}"
        else:
            total = f"{self.n_assignments:,.3g}" if self.n_assignments > 1e6 else f"{int(self.n_assignments):,}"
            how = f"{self.n_draws:,} random draws of the {total} assignments of start years across {self.unit_word}"
        return (f"randomisation inference, {stat}over {how}; interval by test inversion; "
                "std_error implied by the interval")

    def joint_p_value(self, rows: np.ndarray, components: LinearComponents | None = None,
                      observed: LinearComponents | None = None) -> float:
        """p-value of the joint null that the given rows are all zero: the statistic is the sum of
        squared (studentised) row statistics, compared over the same assignments."""
        draws = self.draws if components is None else components
        obs = self.observed if observed is None else observed
        stat_obs = _joint(obs, rows, self.studentized)[0]
        stat = _joint(draws, rows, self.studentized)
        return _p_from(stat_obs, stat, self.exact)


#: marks the sentence that explains an unbounded randomisation interval (the report shows it once)
UNBOUNDED_NOTE = "; interval unbounded"


def unbounded_note(low: float, high: float, n_treated: float, level: float, smallest_p: float) -> str:
    """The sentence that explains an unbounded test-inversion interval ("" when it is bounded or NaN).

    An interval ``{tau : p(tau) > alpha}`` is unbounded above when even an arbitrarily large assumed
    effect is not rejected: as ``tau`` grows, every studentised statistic tends to a limit, and the
    observed assignment's limit is not in the top ``alpha`` of all assignments. With one treated unit
    behind a row (a singleton cohort) this is the rule, not a failure: its own t statistic cannot be
    told apart from the re-assignments whatever the effect.
    """
    if np.isnan(low) or np.isnan(high) or (np.isfinite(low) and np.isfinite(high)):
        return ""
    side = "on both sides" if not (np.isfinite(low) or np.isfinite(high)) else ("above" if np.isfinite(low) else "below")
    which = {"on both sides": "any effect", "above": "any larger effect", "below": "any smaller effect"}[side]
    alpha = 1 - level
    who = (f"with {int(n_treated)} treated unit{'s' if n_treated != 1 else ''} behind this row"
           if np.isfinite(n_treated) else "with so few treated units behind this row")
    grid = (f"; the smallest attainable p-value is {smallest_p:.3g}, above {alpha:.0%}" if smallest_p > alpha + 1e-12 else "")
    return (f"{UNBOUNDED_NOTE} {side}: {who} the randomisation test cannot reject {which} at the {alpha:.0%} level "
            f"(for large assumed effects its studentised statistic is no more extreme than that of more than "
            f"{alpha:.0%} of the re-assignments{grid}); the p-value is valid, and rows that pool more treated "
            "units (e.g. the ATT) are more informative")


def _joint(c: LinearComponents, rows: np.ndarray, studentized: bool) -> np.ndarray:
    sub = LinearComponents(c.a[:, rows], c.b[:, rows], c.v0[:, rows], c.v1[:, rows], c.v2[:, rows])
    return np.sum(sub.t2(0.0) if studentized else sub.a**2, axis=1)


def _p_from(observed: float | np.ndarray, draws: np.ndarray, exact: bool) -> np.ndarray:
    """(1 + #draws at least as extreme) / (1 + draws): exact when the draws are every other assignment
    (the observed one is the "1 +"), Phipson-Smyth valid when they are random draws."""
    tol = _TIE * np.abs(observed) + 1e-12
    count = (draws >= observed - tol).sum(axis=0)
    return (1 + count) / (1 + draws.shape[0])


def adoption_scheme(
    labels: np.ndarray,
    *,
    never_code: int,
    where: str,
    unit_word: str = "units",
    level: float = 0.95,
) -> AssignmentScheme:
    """The assignment scheme of adoption dates: ``labels`` are cohort codes of the randomisation units
    (``never_code`` = never treated); every arrangement with the same number of units per cohort is
    equally likely under the null.

    Raises EstimationError when the assignment cannot be permuted (a single possible assignment, e.g.
    every unit treated at the same date, or one treated unit and no other unit). Warns
    (FewAssignmentsWarning) when so few assignments exist that the smallest attainable p-value is
    above ``1 - level``: then no test at that level can reject and the interval is unbounded.
    """
    labels = np.asarray(labels, dtype=np.int64)
    scheme = AssignmentScheme(labels, method="complete", n_arms=int(labels.max()) + 1)
    total = scheme.n_assignments()
    m = len(labels)
    treated = int(np.count_nonzero(labels != never_code))
    if total <= 2:
        # one assignment: nothing to permute; two (e.g. one treated of two units): the other is the mirror
        # image of the observed one, so the two-sided p-value is 1 whatever the data
        raise EstimationError(
            f"{where}: the adoption dates cannot be permuted: {unit_word} with {treated} treated allow only "
            f"{int(total)} assignment(s), so no randomisation test can reject. No inference is valid with so "
            "little variation: add comparison units, or pass inference='analytic' to get the analytic standard "
            "error with its assumption (many treated units) stated."
        )
    smallest = 1.0 / total
    alpha = 1 - level
    if smallest > alpha + 1e-12:
        warn(
            FewAssignmentsWarning,
            f"{where}: only {int(total):,} distinct assignments of start years across {unit_word} ({treated} "
            f"treated): the smallest attainable p-value is {smallest:.3g}, above {alpha:.3g}, so no test at the "
            f"{level:.0%} level can reject and the interval is unbounded. No method is valid at this level with "
            "so little variation: report the estimate with the randomisation p-value (or a synthetic control with "
            "its placebo distribution) and a lower confidence level.",
        )
    elif smallest > alpha / 5:
        warn(
            FewAssignmentsWarning,
            f"{where}: only {int(total):,} distinct assignments of start years across {unit_word} ({treated} "
            f"treated): the smallest attainable p-value is {smallest:.3g}, so p-values are coarse and the "
            f"{level:.0%} interval may be wide or unbounded on one side.",
        )
    return scheme


def adoption_randomization(
    components: Callable[[np.ndarray], LinearComponents],
    scheme: AssignmentScheme,
    *,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int | None = None,
    level: float = 0.95,
    studentize: bool = True,
    unit_word: str = "units",
    chunk: int = 2_000,
    n_jobs: int | None = None,
) -> AdoptionRandomization:
    """Randomisation p-values and test-inversion intervals for every row of ``components``.

    Parameters
    ----------
    components : callable
        ``components(labels)`` with ``labels`` an int8 ``(P, m)`` matrix of cohort codes, returning a
        :class:`LinearComponents` of shape (P, R). Vectorised over assignments.
    scheme : AssignmentScheme
        From :func:`adoption_scheme`.
    n_permutations : int
        Enumerate all assignments when there are at most this many (then the test is exact), else
        draw this many uniformly.
    studentize : bool
        Permute the t statistic (RI-t, default) rather than the coefficient (RI-beta).
    n_jobs : int, optional
        Split the chunks of assignments over this many workers of joblib's active backend (-1: one
        per core); default: the enclosing :func:`impact.inference.resampling.parallel_draws`, else 1.
        The draws are the same for a given seed whatever the number of workers.
    """
    total = scheme.n_assignments()
    observed = components(scheme.labels.astype(np.int8)[None, :])
    draws, exact, n_draws = _draws(components, scheme, n_permutations, seed, chunk, n_jobs)
    stat = (lambda c, tau: c.t2(tau)) if studentize else (lambda c, tau: (c.a - tau * c.b) ** 2)
    p0 = _p_from(stat(observed, 0.0)[0], stat(draws, 0.0), exact)
    low, high = _invert(observed, draws, studentize, level)
    z = stats.norm.ppf(0.5 + level / 2)
    with np.errstate(invalid="ignore"):
        se = np.where(np.isfinite(low) & np.isfinite(high), (high - low) / (2 * z), np.nan)
    return AdoptionRandomization(p0, low, high, se, observed, draws, exact, total, n_draws, studentize, level, unit_word)


def _draws(components: Callable[[np.ndarray], LinearComponents], scheme: AssignmentScheme, n_permutations: int,
           seed: int | None, chunk: int, n_jobs: int | None) -> tuple[LinearComponents, bool, int]:
    """The components under every other assignment (exact) when there are at most ``n_permutations``,
    else under uniform draws; in chunks of assignments, each drawn from its own random stream, so that
    they are the same here or on workers (:mod:`impact.inference.resampling`). Returns the components,
    whether they are exact, and the number of assignments."""
    if not isinstance(n_permutations, int | np.integer) or isinstance(n_permutations, bool) or n_permutations < 99:
        raise SpecError(f"n_permutations must be an integer of at least 99 (e.g. 9999); got {n_permutations!r}.")
    exact = scheme.n_assignments() <= n_permutations
    if exact:
        labels, _ = scheme.enumerate(limit=max(int(n_permutations), 1))
        # drop the observed assignment: it is counted once, as the "1 +" of the p-value
        same = np.all(labels == scheme.labels.astype(np.int8)[None, :], axis=1)
        labels = labels[~same]
        n = len(labels)
    else:
        n = int(n_permutations)
        # a fixed default seed: the same data give the same p-values and intervals in every report
        generators = chunk_generators(DEFAULT_SEED if seed is None else seed, len(chunk_starts(n)))
    starts = chunk_starts(n)
    ends = [*starts[1:], n]

    def work(i: int) -> LinearComponents:
        parts = [components(labels[a:b]) if exact else components(scheme.sample(b - a, generators[i]))
                 for a, b in pieces(starts[i], ends[i], chunk)]
        return parts[0] if len(parts) == 1 else LinearComponents.concatenate(parts)

    return LinearComponents.concatenate(map_chunks(work, len(starts), n_jobs=n_jobs)), exact, n


def randomization_joint_test(
    components: Callable[[np.ndarray], LinearComponents],
    scheme: AssignmentScheme,
    rows: np.ndarray,
    *,
    trend: int | None = None,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int | None = None,
    studentize: bool = True,
    unit_word: str = "units",
    chunk: int = 2_000,
    n_jobs: int | None = None,
) -> dict:
    """Randomisation test that the given rows are jointly zero (e.g. every pre-treatment effect).

    The omnibus statistic is the sum of squared studentised row statistics (no inverse covariance: with
    few treated units the estimated covariance of many pre-period effects is near singular, which is what
    makes the analytic Wald test explode); its null distribution comes from the same assignments.

    ``trend``: the column of ``components`` that holds a one-degree-of-freedom contrast aimed at the
    alternative of interest (the linear pre-trend, see :meth:`impact.did._randomization.CohortLinear.trend_row`).
    Then the statistic is the smaller of the two permutation p-values (omnibus, squared studentised
    trend; ties broken by the larger), referred to its own permutation distribution over the same
    assignments (:func:`_min_p`):
    a function of the assignment like any other, so the test stays exact, and it keeps most of the
    power of the one-degree-of-freedom test against a trend while the omnibus part still catches other
    departures. The result's ``trend_t`` is the signed studentised trend (positive: the treated units'
    outcomes rise relative to the others before the start).
    """
    observed = components(scheme.labels.astype(np.int8)[None, :])
    draws, exact, n_draws = _draws(components, scheme, n_permutations, seed, chunk, n_jobs)
    rows = np.asarray(rows, dtype=np.intp)
    stat_obs = float(_joint(observed, rows, studentize)[0])
    omnibus = np.concatenate([[stat_obs], _joint(draws, rows, studentize)])
    total = scheme.n_assignments()
    how = (f"all {int(total):,} assignments" if exact else f"{n_draws:,} random draws of the {total:,.3g} assignments")
    effects = f"{'studentised ' if studentize else ''}pre-period effects"
    out = {"statistic": stat_obs, "df_num": float(len(rows)), "df_denom": None}
    if trend is None:
        p = float(_p_from(stat_obs, omnibus[1:], exact))
        statistic = f"sum of squared {effects}"
    else:
        column = np.array([trend], dtype=np.intp)
        slope = np.concatenate([_joint(observed, column, studentize), _joint(draws, column, studentize)])
        p, (p_omnibus, p_trend) = _min_p(np.stack([omnibus, slope], axis=1))
        t_obs = (observed.t(0.0) if studentize else observed.a)[0, trend]
        out.update(trend_t=float(t_obs), p_value_sum_of_squares=p_omnibus, p_value_trend=p_trend)
        statistic = f"min-p of the sum of squared {effects} and their linear trend"
    method = f"randomisation test over {how} of start years across {unit_word}; statistic: {statistic}"
    out.update(p_value=float(p), method=method, n_assignments=total, exact=exact, smallest_p=1.0 / (n_draws + 1))
    return out


def _min_p(stats_: np.ndarray) -> tuple[float, tuple[float, ...]]:
    """Exact min-p combination of several statistics (columns of ``stats_`` (1 + P, S), S small; row 0
    the observed assignment, large values extreme) computed over the same assignments.

    Each assignment's p-value per statistic is its share among all 1 + P assignments of values at least
    as large (the tie rule of :func:`_p_from`; for the observed row this is :func:`_p_from`). The
    combined statistic is each assignment's smallest p-value, ties broken by the next smallest, and the
    combined p-value the share of assignments whose combination is at most the observed one (Tippett's
    combination in the nonparametric combination of Pesarin 2001; the min-p of Westfall & Young 1993).
    The tie-break matters with few assignments: with 20 (one treated unit of 20) the plain min-p can
    reject at 5% only when one assignment is the most extreme on both statistics. All assignments are
    treated alike, so whatever makes the single tests exact (or Phipson-Smyth valid) carries over.
    Ranks come from one sort per statistic. Returns the combined p-value and the observed p-value of
    each statistic."""
    n = stats_.shape[0]
    counts = np.empty(stats_.shape, dtype=np.int64)
    for j in range(stats_.shape[1]):  # a few statistics; each is one sort and one search over the assignments
        column = stats_[:, j]
        ordered = np.sort(column)
        counts[:, j] = n - np.searchsorted(ordered, column - (_TIE * np.abs(column) + 1e-12), side="left")
    key = np.zeros(n, dtype=np.int64)  # the counts in increasing order, as the digits of one number in base n + 1
    for digit in np.sort(counts, axis=1).T:
        key = key * (n + 1) + digit
    return float(np.count_nonzero(key <= key[0]) / n), tuple(float(c) / n for c in counts[0])


def _invert(observed: LinearComponents, draws: LinearComponents, studentize: bool,
            level: float) -> tuple[np.ndarray, np.ndarray]:
    """Interval {tau : p(tau) > alpha} of every row, with ends exact to rounding.

    In ``u = (tau - est) / S`` (``est`` where the observed estimate is 0, where p = 1; ``S`` the spread
    of the draws, so that coefficients are of order one) draw k is at least as extreme as the observed
    assignment where ``g_k(u) = N_k(u)^2 V_0(u) - N_0(u)^2 V_k(u) >= 0`` (``V = 1`` unstudentised), a
    polynomial of degree at most four. On each side of ``est`` the first rejected point is bracketed
    (expanding from three spreads, then 12 halvings over all draws, in place); inside the final bracket
    only the few draws whose indicator differs at its two ends change, so their roots, solved in closed
    form (:func:`impact.inference.inversion.real_roots`) and swept
    (:func:`impact.inference.inversion.acceptance_sup`), give the end exactly. (A draw that crosses
    twice inside a bracket 2^-12 of three spreads wide is not seen, as with plain bisection.) Rows with
    no treated cell (``b = 0``) get NaN; a side never rejected within 2^50 spreads is unbounded.
    """
    alpha = round(1 - level, 12)  # 1 - 0.9 is 0.09999999999999998: p = 0.1 must be rejected at 10%
    b_obs = observed.b[0]
    zero_b = b_obs == 0  # rows that carry no treated cell: no interval by shifting
    safe_b = np.where(zero_b, 1.0, b_obs)
    est = observed.a[0] / safe_b
    with np.errstate(invalid="ignore"):
        spread = np.nanstd(draws.a - est * draws.b, axis=0) / np.abs(safe_b)
    spread = np.where(np.isfinite(spread) & (spread > 0), spread, np.maximum(np.abs(est), 1.0))
    obs, drw = _in_u(observed, est, spread, studentize, True), _in_u(draws, est, spread, studentize, False)
    if studentize:  # variance coefficients that are rounding noise against the same coefficient of the draws
        for i in (3, 4):
            scale = 1e-10 * np.maximum(np.max(np.abs(drw[i]), axis=1, keepdims=True), np.abs(obs[i]))
            obs[i] = np.where(np.abs(obs[i]) <= scale, 0.0, obs[i])
            drw[i] = np.where(np.abs(drw[i]) <= scale, 0.0, drw[i])
    total = 1.0 + drw[0].shape[1]
    buffers = (np.empty_like(drw[0]), np.empty_like(drw[0]), np.empty(drw[0].shape, bool))

    def accepted(count: np.ndarray) -> np.ndarray:
        return (1.0 + count) / total > alpha

    ends = []
    for side in (1.0, -1.0):  # the upper end, then the lower one as the upper end in -u
        o = [obs[0], side * obs[1], obs[2], side * obs[3], obs[4]]
        k = [drw[0], side * drw[1], drw[2], side * drw[3], drw[4]]

        def on(u: np.ndarray, o=o, k=k) -> np.ndarray:
            return _counted_at(o, k, u, buffers).copy()

        inside, outside = np.zeros(len(est)), np.full(len(est), 3.0)
        on_inside, on_outside = on(inside), on(outside)
        found = ~accepted(on_outside.sum(axis=1))
        for _ in range(50):  # expand until rejected (most ends lie within three spreads)
            if found.all():
                break
            step = np.where(found, outside, 2 * outside)
            on_step = on(step)
            now = ~found & ~accepted(on_step.sum(axis=1))
            grow = ~found
            inside = np.where(grow, outside, inside)
            on_inside = np.where(grow[:, None], on_outside, on_inside)
            outside = np.where(grow, step, outside)
            on_outside = np.where(grow[:, None], on_step, on_outside)
            found |= now
        for _ in range(12):
            mid = (inside + outside) / 2
            on_mid = on(mid)
            rejected = ~accepted(on_mid.sum(axis=1))
            outside = np.where(rejected, mid, outside)
            on_outside = np.where(rejected[:, None], on_mid, on_outside)
            inside = np.where(rejected, inside, mid)
            on_inside = np.where(rejected[:, None], on_inside, on_mid)
        # inside the bracket only the draws that differ at its ends change: solve and sweep those
        changes = on_inside != on_outside
        base = 1.0 + np.sum(on_inside & ~changes, axis=1)
        width = max(int(changes.sum(axis=1).max()), 1)
        pick = np.argsort(~changes, axis=1, kind="stable")[:, :width]
        keep = np.take_along_axis(changes, pick, axis=1)
        sub = [np.take_along_axis(x, pick, axis=1) for x in k]
        coef = _comparison_polynomials(o, sub)
        roots = real_roots(np.stack([np.where(keep, c, 0.0) for c in coef], axis=-1))

        def counted(u: np.ndarray, o=o, sub=sub, keep=keep) -> np.ndarray:
            return _counted(o, sub, u) & keep[..., None]

        end = acceptance_sup(roots, counted, base=base, total=total, alpha=alpha, above=inside, below=outside)
        # no root found in the bracket (rounding at its ends): its midpoint, as bisection would give
        end = np.where(np.isfinite(end), end, (inside + outside) / 2)
        ends.append(np.where(found, end, np.inf))
    low = np.where(zero_b, np.nan, est - spread * ends[1])
    high = np.where(zero_b, np.nan, est + spread * ends[0])
    return low, high


def _in_u(c: LinearComponents, est: np.ndarray, spread: np.ndarray, studentize: bool,
          observed: bool) -> list[np.ndarray]:
    """[alpha, beta, w0, w1, w2], each (R, P): N(u) = alpha + beta u, V(u) = w0 + w1 u + w2 u^2 at
    tau = est + spread u. The observed estimate is 0 at est by construction; a draw's intercept that is
    zero to rounding is made exactly zero (its roots at est are then exact)."""
    a, b = np.ascontiguousarray(c.a.T), np.ascontiguousarray(c.b.T)
    e, s = est[:, None], spread[:, None]
    if observed:
        intercept = np.zeros_like(a)
    else:
        intercept = a - e * b
        intercept = np.where(np.abs(intercept) <= 1e-12 * (np.abs(a) + np.abs(e * b)), 0.0, intercept)
    if not studentize:
        return [intercept, -s * b, np.ones_like(a), np.zeros_like(a), np.zeros_like(a)]
    v0, v1, v2 = (np.ascontiguousarray(v.T) for v in (c.v0, c.v1, c.v2))
    return [intercept, -s * b, v0 - 2 * v1 * e + v2 * e * e, 2 * s * (v2 * e - v1), v2 * s * s]


def _comparison_polynomials(o: list[np.ndarray], k: list[np.ndarray]) -> list[np.ndarray]:
    """Ascending coefficients (five (R, P) arrays) of ``N_k^2 V_0 - N_0^2 V_k`` (N_0 = beta_0 u); a
    coefficient that cancels to rounding against the size of its terms is an exact zero."""
    n2 = (k[0] * k[0], 2 * k[0] * k[1], k[1] * k[1])
    o2 = o[1] * o[1]
    coef, size = [], []
    for degree in range(5):
        value = np.zeros_like(k[0])
        magnitude = np.zeros_like(k[0])
        for i in range(max(0, degree - 2), min(2, degree) + 1):
            term = n2[i] * o[2 + degree - i]
            value += term
            magnitude += np.abs(term)
        if degree >= 2:
            term = o2 * k[degree]
            value -= term
            magnitude += np.abs(term)
        value[np.abs(value) <= 1e-12 * magnitude] = 0.0
        coef.append(value)
    return coef


def _threshold(o: list[np.ndarray], u: np.ndarray) -> np.ndarray:
    """The observed squared t statistic at u, less the tie tolerance of :func:`_p_from`."""
    estimate = o[0] + o[1] * u
    t_obs = estimate * estimate / np.maximum(o[2] + u * (o[3] + u * o[4]), 1e-300)
    return t_obs - (_TIE * t_obs + 1e-12)


def _counted(o: list[np.ndarray], k: list[np.ndarray], u: np.ndarray) -> np.ndarray:
    """Whether each draw is at least as extreme as the observed assignment at u (R, P, m): the tie
    rule of :func:`_p_from` on squared t statistics, as ``N_k^2 >= max(V_k, tiny) * threshold``."""
    o = [x[..., None] for x in o]
    k = [x[..., None] for x in k]
    estimate = k[0] + k[1] * u
    return estimate * estimate >= np.maximum(k[2] + u * (k[3] + u * k[4]), 1e-300) * _threshold(o, u)


def _counted_at(o: list[np.ndarray], k: list[np.ndarray], u: np.ndarray,
                buffers: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """:func:`_counted` at one point per row (u of shape (R,)), in place: the same operations in the
    same order, so that both give the same answer at the same point."""
    u = u[:, None]
    estimate, variance, out = buffers
    np.multiply(k[1], u, out=estimate)
    np.add(k[0], estimate, out=estimate)
    np.multiply(estimate, estimate, out=estimate)
    np.multiply(u, k[4], out=variance)
    np.add(k[3], variance, out=variance)
    np.multiply(u, variance, out=variance)
    np.add(k[2], variance, out=variance)
    np.maximum(variance, 1e-300, out=variance)
    np.multiply(variance, _threshold(o, u), out=variance)
    return np.greater_equal(estimate, variance, out=out)


def choose_randomization(
    inference: str,
    *,
    n_treated_units: int,
    n_untreated_units: int,
    n_units: int,
    supported: str | None,
    where: str,
) -> bool:
    """The documented rule of ``inference="auto"``: randomisation inference when fewer than
    :data:`RI_TREATED_THRESHOLD` treated (or untreated) randomisation units exist and at most
    :data:`RI_MAX_UNITS` units are permuted; analytic otherwise. ``supported`` is None when the design
    can permute this fit, else the reason it cannot (then "auto" falls back to analytic with a
    FragileInferenceWarning, and "randomization" raises)."""
    from impact.errors import FragileInferenceWarning

    if inference == "analytic":
        return False
    few = min(n_treated_units, n_untreated_units) < RI_TREATED_THRESHOLD
    if inference == "randomization":
        if supported is not None:
            raise SpecError(f"{where}: inference='randomization' is not available here: {supported}.")
        return True
    if not few:
        return False
    if supported is not None or n_units > RI_MAX_UNITS:
        reason = supported or f"{n_units:,} units are too many to permute cheaply"
        warn(
            FragileInferenceWarning,
            f"{where}: only {min(n_treated_units, n_untreated_units)} treated (or untreated) units, so analytic "
            f"inference may over-reject, but randomisation inference is not used: {reason}. Read p-values and "
            "intervals as optimistic.",
        )
        return False
    return True
