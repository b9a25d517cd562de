"""Sensitivity of event-study conclusions to violations of parallel trends (Rambachan & Roth 2023)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import optimize, special, stats

from impact.data import check_level  # shared option validation
from impact.data import check_option
from impact.did.pretrends import event_time_estimates
from impact.errors import EstimationError, SpecError, recording_warnings
from impact.results import Result, effects_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["HonestResult", "flci_smoothness", "honest", "rm_bonferroni"]

Method = Literal["relative_magnitude", "smoothness"]
ORIGINAL = "original"


@dataclass(frozen=True, kw_only=True)
class HonestResult(Result):
    """Robust confidence sets, one row per bound (``M`` or ``Mbar``), plus the original interval."""

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        return {"Sensitivity to violations of parallel trends": self.plot}

    def plot(self, ax: Axes | None = None) -> Axes:
        """Robust confidence intervals against the bound, with the original interval on the left."""
        from impact.report.plots import PALETTE, new_axes

        ax = new_axes(ax)
        t = self.tidy()
        rows = t.loc[t["term"] != ORIGINAL]
        bound = rows["bound"].to_numpy(dtype=float)
        orig = t.loc[t["term"] == ORIGINAL].iloc[0]
        x = np.arange(1, len(bound) + 1)  # evenly spaced: bounds are often on a log-like grid
        ax.vlines([0], [orig["conf_low"]], [orig["conf_high"]], colors=PALETTE["pre"], linewidth=3, label="original")
        ax.vlines(x, rows["conf_low"], rows["conf_high"], colors=PALETTE["post"], linewidth=3, label="robust")
        ax.axhline(0, color=PALETTE["zero"], linestyle="--", linewidth=1)
        name = self.settings.get("bound_name", "M")
        ax.set_xticks([0, *x], ["orig.", *[f"{b:.3g}" for b in bound]])
        ax.set_xlabel(name)
        ax.set_ylabel(f"{self.settings.get('target', '')} effect")
        br = self.diagnostics.get("breakdown")
        ax.set_title(f"Sensitivity ({self.settings.get('method')}); breakdown {name} = "
                     + (f"{br:.3g}" if isinstance(br, int | float) and math.isfinite(br) else str(br)))
        ax.legend(fontsize="small")
        return ax


def _critical_value_exact(bias_ratio: float, alpha: float) -> float:
    """1 - alpha quantile of |N(bias_ratio, 1)| by root finding."""
    t = abs(bias_ratio)
    f = lambda c: special.ndtr(c - t) - special.ndtr(-c - t) - (1 - alpha)
    return float(optimize.brentq(f, 0.0, t + 10.0, xtol=1e-13))


@functools.lru_cache(maxsize=8)
def _critical_value_spline(alpha: float):
    from scipy.interpolate import CubicSpline

    grid = np.concatenate([np.linspace(0, 5, 2001), np.linspace(5, 40, 701)[1:]])
    return CubicSpline(grid, [_critical_value_exact(t, alpha) for t in grid])


def _critical_value(bias_ratio: float, alpha: float) -> float:
    """1 - alpha quantile of |N(bias_ratio, 1)| (cubic spline of the exact root, error below 1e-9)."""
    t = abs(bias_ratio)
    if t >= 40:
        return t + stats.norm.ppf(1 - alpha)  # the lower tail is negligible
    return float(_critical_value_spline(round(alpha, 12))(t))


def _grid(e: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check the event times and return (pre, post, grid including the reference -1)."""
    e = np.asarray(e, dtype=float)
    if -1 in e:
        raise SpecError(
            f"{where}: the event-time coefficients must be normalised to zero at e=-1 (a reference period); this "
            "result estimates e=-1. Use event_study/sun_abraham (reference=-1) or att_gt(base_period='universal')."
        )
    pre, post = e[e < 0], e[e >= 0]
    if len(pre) == 0:
        raise EstimationError(f"{where}: there are no pre-period coefficients; sensitivity bounds need at least e=-2.")
    if len(post) == 0:
        raise EstimationError(f"{where}: there are no post-period coefficients to assess.")
    grid = np.arange(pre.min(), post.max() + 1)
    expected = grid[grid != -1]
    if len(expected) != len(e) or not np.allclose(np.sort(e), expected):
        raise SpecError(f"{where}: event times must be consecutive from {pre.min():g} to {post.max():g} (besides -1).")
    return pre, post, grid


def _target_vector(post: np.ndarray, target, where: str) -> tuple[np.ndarray, str]:
    if isinstance(target, str):
        check_option("target", target, ("average post",))
        return np.full(len(post), 1.0 / len(post)), "average post-period"
    if int(target) not in post.astype(int):
        raise SpecError(f"{where}: target={target!r} is not a post-period event time; choose one of {post.astype(int).tolist()}.")
    return (post == int(target)).astype(float), f"e={int(target)}"


def _smoothness_basis(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """delta on ``grid`` = A s + c * trend with delta(-1) = 0, s the second differences (A: n x n-2)."""
    n = len(grid)
    r = int(np.flatnonzero(grid == -1)[0])
    K = np.zeros((n, n))
    for j in range(n - 2):
        K[j, j : j + 3] = (1.0, -2.0, 1.0)
    K[n - 2, r] = 1.0
    K[n - 1, r] = -1.0
    K[n - 1, r + 1] = 1.0
    Kinv = np.linalg.inv(K)
    return Kinv[:, : n - 2], Kinv[:, n - 1]


def flci_smoothness(
    estimates: np.ndarray, vcov: np.ndarray, event_time: np.ndarray, l_post: np.ndarray, M: float, *, alpha: float
) -> dict[str, float]:
    """Fixed-length confidence interval of Rambachan & Roth (2023, Section 4.2) under Delta^SD(M).

    Minimises over affine estimators ``v'beta`` with ``v_post = l_post`` the half-length
    ``cv_alpha(bias / sd) * sd``, where ``bias = M * ||A'v||_1`` is the worst-case bias over
    ``{delta: |second differences| <= M, delta(-1) = 0}`` (finite only if ``v`` annihilates linear trends).
    """
    where = "honest"
    pre, _post, grid = _grid(event_time, where)
    A, trend = _smoothness_basis(grid)
    est_idx = np.flatnonzero(grid != -1)
    n_pre = len(pre)
    Sigma = np.asarray(vcov, dtype=float)
    At = A[est_idx].T  # (n-2) x k: A' v for v on the estimated coefficients
    tr = trend[est_idx]
    # v = (v_pre, l): the linear-trend constraint tr_pre' v_pre = -tr_post' l
    rhs = -float(tr[n_pre:] @ l_post)
    a = tr[:n_pre]
    v0 = a * rhs / float(a @ a)
    null = np.linalg.svd(a[None, :])[2][1:].T if n_pre > 1 else np.zeros((1, 0))

    def vec(z: np.ndarray) -> np.ndarray:
        return np.concatenate([v0 + null @ z, l_post])

    def half_length(z: np.ndarray) -> float:
        v = vec(z)
        sd = math.sqrt(max(float(v @ Sigma @ v), 1e-300))
        bias = M * float(np.abs(At @ v).sum())
        return _critical_value(bias / sd, alpha) * sd

    dim = null.shape[1]
    if dim == 0:
        z_best = np.zeros(0)
    else:
        # start from the minimum-variance trend-annihilating estimator and from the bias-minimising one
        S_nn = null.T @ Sigma[:n_pre, :n_pre] @ null
        cross = null.T @ (Sigma[:n_pre, :n_pre] @ v0 + Sigma[:n_pre, n_pre:] @ l_post)
        z_var = -np.linalg.solve(S_nn, cross)
        starts = [z_var, np.zeros(dim)]
        best = None
        for z0 in starts:
            scale = max(float(np.abs(z0).max()), 1.0)
            fit = optimize.minimize(half_length, z0, method="Nelder-Mead",
                                    options={"xatol": 1e-8 * scale, "fatol": 1e-12 * half_length(z0),
                                             "maxiter": 4000 * dim, "initial_simplex": _simplex(z0, scale)})
            if best is None or fit.fun < best.fun:
                best = fit
        z_best = best.x
    v = vec(z_best)
    sd = math.sqrt(float(v @ Sigma @ v))
    bias = M * float(np.abs(At @ v).sum())
    hl = _critical_value(bias / sd, alpha) * sd
    center = float(v @ np.asarray(estimates, dtype=float))
    return {"estimate": center, "std_error": sd, "max_bias": bias, "half_length": hl,
            "conf_low": center - hl, "conf_high": center + hl, "weights_pre": v[:n_pre].tolist()}


def _simplex(z0: np.ndarray, scale: float) -> np.ndarray:
    """A starting simplex around ``z0`` with steps of 10% of ``scale``."""
    return np.vstack([z0, z0 + 0.1 * scale * np.eye(len(z0))])


def rm_bonferroni(
    estimates: np.ndarray, vcov: np.ndarray, event_time: np.ndarray, l_post: np.ndarray, Mbar: float, *, alpha: float
) -> dict[str, float]:
    """Bonferroni confidence set under relative magnitudes Delta^RM(Mbar).

    The identified set of ``theta = l'tau_post`` given ``beta`` is ``l'beta_post +- Mbar * Dbar * sum_j |L_j|``
    with ``Dbar`` the largest absolute pre-period first difference of ``delta`` (including the step into
    e=-1) and ``L_j = sum_{t >= j} l_t``. The confidence set widens it by an upper (1 - alpha/2) bound on
    ``Dbar`` (Bonferroni over the pre-period differences) and a (1 - alpha/2) interval for ``l'beta_post``;
    for ``Mbar = 0`` it is the usual (1 - alpha) interval.
    """
    pre, _post, _grid_points = _grid(event_time, "honest")
    est = np.asarray(estimates, dtype=float)
    Sigma = np.asarray(vcov, dtype=float)
    n_pre = len(pre)
    # first differences over the pre grid ..., -2, -1 (delta(-1) = 0)
    D = np.zeros((n_pre, n_pre))
    for j in range(n_pre):
        D[j, j] = -1.0
        if j + 1 < n_pre:
            D[j, j + 1] = 1.0
    diffs = D @ est[:n_pre]
    diff_sd = np.sqrt(np.clip(np.diag(D @ Sigma[:n_pre, :n_pre] @ D.T), 0, None))
    L = np.cumsum(l_post[::-1])[::-1]
    scale = float(np.abs(L).sum())
    center = float(l_post @ est[n_pre:])
    sd = math.sqrt(float(l_post @ Sigma[n_pre:, n_pre:] @ l_post))
    dbar = float(np.abs(diffs).max())
    if Mbar == 0:
        z = stats.norm.ppf(1 - alpha / 2)
        bound_upper = 0.0
    else:
        z = stats.norm.ppf(1 - alpha / 4)
        c = stats.norm.ppf(1 - alpha / (4 * n_pre))
        bound_upper = float(np.max(np.abs(diffs) + c * diff_sd))
    half = Mbar * bound_upper * scale + z * sd
    return {"estimate": center, "std_error": sd, "conf_low": center - half, "conf_high": center + half,
            "identified_low": center - Mbar * dbar * scale, "identified_high": center + Mbar * dbar * scale,
            "max_pre_difference": dbar, "max_pre_difference_upper": bound_upper, "bias_scale": scale,
            "critical_value": z}


def honest(
    result: Result,
    *,
    method: Method = "relative_magnitude",
    Mbar: Sequence[float] = (0.0, 0.5, 1.0, 1.5, 2.0),
    M: Sequence[float] | None = None,
    target: str | int = "average post",
    level: float | None = None,
) -> HonestResult:
    """Robust confidence sets for an event study under bounded violations of parallel trends.

    Parameters
    ----------
    result : Result
        An event-study result: :func:`event_study`, :func:`sun_abraham`, or
        ``att_gt(..., base_period="universal").aggregate(kind="dynamic")``. Its event-time rows and
        ``vcov`` (the covariance of its effects) are used; coefficients must be normalised at e=-1.
    method : {"relative_magnitude", "smoothness"}
        ``relative_magnitude``: post-period changes in the trend violation are at most ``Mbar`` times the
        largest pre-period change. ``smoothness``: the slope of the violation changes by at most ``M``
        per period.
    Mbar, M : sequence of float
        Bounds to report (``M`` defaults to multiples of the post-period standard error for smoothness).
    target : "average post" or int
        The parameter: the average of the post-period effects, or the effect at one event time.
    level : float, optional
        Confidence level (default: the result's).

    Returns
    -------
    HonestResult
        Rows ``"original"`` (the unadjusted interval for the target; the headline) and one per bound
        (``"Mbar=1"`` / ``"M=0.01"``) with the robust interval in ``conf_low``/``conf_high`` and the bound in
        ``bound``. ``diagnostics["breakdown"]``: the smallest bound at which the robust interval includes 0.

    Notes
    -----
    Write :math:`\\hat\\beta = \\tau + \\delta + \\varepsilon` with :math:`\\tau_{pre} = 0`, :math:`\\delta` the
    violation of parallel trends (:math:`\\delta_{-1} = 0`) and :math:`\\theta = l'\\tau_{post}`.

    *Smoothness*, :math:`\\Delta^{SD}(M) = \\{\\delta: |(\\delta_{t+1}-\\delta_t) - (\\delta_t-\\delta_{t-1})| \\le M\\}`:
    the optimal fixed-length confidence interval (FLCI) of Rambachan & Roth (2023, Section 4.2), the
    HonestDiD default for this class: among affine estimators :math:`v'\\hat\\beta` with :math:`v_{post} = l`,
    minimise :math:`\\chi(v) = cv_\\alpha(\\bar b(v)/\\sigma_v)\\,\\sigma_v`, where
    :math:`\\bar b(v) = \\sup_{\\delta \\in \\Delta^{SD}(M)} |v'\\delta|` (closed form: :math:`M\\|A'v\\|_1` on the
    trend-annihilating set) and :math:`cv_\\alpha(t)` is the :math:`1-\\alpha` quantile of :math:`|N(t,1)|`.

    *Relative magnitudes*, :math:`\\Delta^{RM}(\\bar M)`: post-period first differences of :math:`\\delta` bounded
    by :math:`\\bar M` times the largest pre-period first difference. HonestDiD's default here is the
    conditional-least-favourable hybrid test of Andrews, Roth & Pakes; impact instead reports a simpler
    **Bonferroni** set (documented in :func:`rm_bonferroni`): the identified set
    :math:`l'\\beta_{post} \\pm \\bar M \\bar D \\sum_j |L_j|` with :math:`\\bar D` replaced by its upper
    :math:`1-\\alpha/2` confidence bound and :math:`l'\\hat\\beta_{post}` by its :math:`1-\\alpha/2` interval. It is
    valid but conservative (wider than HonestDiD's hybrid intervals); the breakdown value is therefore a
    lower bound on HonestDiD's.

    References
    ----------
    Rambachan, A. & Roth, J. (2023). A more credible approach to parallel trends. *Review of Economic Studies*
    90(5), 2555-2591. https://doi.org/10.1093/restud/rdad018

    Armstrong, T. B. & Kolesár, M. (2018). Optimal inference in a class of regression models. *Econometrica*
    86(2), 655-683. https://doi.org/10.3982/ECTA14434

    Examples
    --------
    >>> import impact as im
    >>> mpdta = im.datasets.load("mpdta")
    >>> es = im.did.event_study(mpdta, outcome="lemp", unit="countyreal", time="year", cohort="first.treat")
    >>> im.did.honest(es, method="smoothness").diagnostics["breakdown"]  # doctest: +SKIP
    """
    where = "honest"
    check_option("method", method, ("relative_magnitude", "smoothness"))
    if not isinstance(result, Result):
        raise SpecError(f"{where}: expected an event-study Result, got {type(result).__name__}.")
    level = result.level if level is None else level
    check_level(level, where)
    alpha = 1 - level
    with recording_warnings() as log:
        e, est, V, _ = event_time_estimates(result, where=where)
        pre, post, _grid_all = _grid(e, where)
        l_post, target_label = _target_vector(post, target, where)
        n_pre = len(pre)
        sd_target = math.sqrt(float(l_post @ V[n_pre:, n_pre:] @ l_post))
        if method == "smoothness":
            bounds = list(M) if M is not None else [0.0, *(sd_target * np.array([0.1, 0.25, 0.5, 1.0]))]
            name = "M"
            solve = lambda b: flci_smoothness(est, V, e, l_post, b, alpha=alpha)
        else:
            bounds = list(Mbar)
            name = "Mbar"
            solve = lambda b: rm_bonferroni(est, V, e, l_post, b, alpha=alpha)
        bounds = [float(b) for b in bounds]
        if not bounds or any((not math.isfinite(b)) or b < 0 for b in bounds):
            raise SpecError(f"{where}: {name} must be a non-empty sequence of non-negative numbers, got {bounds}.")
        bounds = sorted(set(bounds))
        fits = [solve(b) for b in bounds]
        center = float(l_post @ est[n_pre:])
        z = stats.norm.ppf(1 - alpha / 2)
        terms = [ORIGINAL] + [f"{name}={b:g}" for b in bounds]
        effects = effects_table(
            terms,
            [center] + [f["estimate"] for f in fits],
            [sd_target] + [f["std_error"] for f in fits],
            level=level,
            conf_low=[center - z * sd_target] + [f["conf_low"] for f in fits],
            conf_high=[center + z * sd_target] + [f["conf_high"] for f in fits],
            bound=[math.nan] + bounds,
        )
        effects.loc[1:, ["statistic", "p_value"]] = math.nan
        breakdown = _breakdown(solve, bounds, fits)
        diagnostics = {
            "breakdown": breakdown,
            "bounds": [{name: b, **{k: v for k, v in f.items() if not isinstance(v, list)}} for b, f in zip(bounds, fits)],
            "event_times_used": [int(x) for x in e],
        }
        method_text = ("fixed-length confidence interval (FLCI, Rambachan & Roth 2023 Sec. 4.2)" if method == "smoothness"
                       else "Bonferroni confidence set (conservative; not HonestDiD's conditional/hybrid test)")
        res = HonestResult(
            design="honest",
            estimand=f"{target_label} effect of {result.design}",
            effects=effects,
            headline=ORIGINAL,
            inference=f"{method_text} at level {level:g}; 'original' is the unadjusted normal interval",
            n_obs=result.n_obs, outcome=result.outcome, level=level, n_units=result.n_units,
            n_treated=result.n_treated, n_clusters=result.n_clusters,
            settings={"method": method, "bound_name": name, "bounds": bounds, "target": target_label,
                      "source_design": result.design,
                      "assumption": ("Violations of parallel trends after treatment are at most Mbar times the largest "
                                     "pre-treatment change" if method == "relative_magnitude" else
                                     "The slope of the violation of parallel trends changes by at most M per period")},
            sample_flow=result.sample_flow, diagnostics=diagnostics, warnings=tuple(result.warnings),
        )
        res = res.replace(warnings=tuple(result.warnings) + tuple(log))
    return res


def _breakdown(solve, bounds: list[float], fits: list[dict]) -> float | str:
    """Smallest bound at which the robust interval includes zero (bisection between reported bounds)."""
    def covers(f: dict) -> bool:
        return f["conf_low"] <= 0 <= f["conf_high"]

    if covers(solve(0.0)):
        return 0.0
    hi = next((b for b, f in zip(bounds, fits) if covers(f)), None)
    lo = max([0.0] + [b for b, f in zip(bounds, fits) if not covers(f) and (hi is None or b < hi)])
    if hi is None:
        hi = max(bounds[-1], 1e-8) * 2
        for _ in range(30):
            if covers(solve(hi)):
                break
            lo, hi = hi, hi * 2
        else:
            return "above the largest bound tried"
    for _ in range(40):
        mid = (lo + hi) / 2
        if covers(solve(mid)):
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-3 * max(hi, 1e-12):
            break
    return hi
