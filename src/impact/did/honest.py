"""Sensitivity of event-study conclusions to violations of parallel trends (Rambachan & Roth 2023)."""

from __future__ import annotations

import functools
import itertools
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

__all__ = ["HonestResult", "flci_smoothness", "honest", "rm_bonferroni", "rm_conditional"]

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


# -- relative magnitudes: the conditional and hybrid tests of Andrews, Roth & Pakes ----------------------

RMTest = Literal["hybrid", "conditional", "bonferroni"]
_MAX_BASES = 400_000  # candidate bases of the dual polytope enumerated at once (beyond: Bonferroni)


def _rm_polyhedra(n_pre: int, n_post: int, Mbar: float) -> list[np.ndarray]:
    """Delta^RM(Mbar) as a union of polyhedra {delta: A delta <= 0}, one per pre-period first difference s
    (the largest) and its sign, in the coordinates (delta_pre without e=-1, delta_post). Only the rows that
    involve post-period coordinates are kept (HonestDiD's ``postPeriodMomentsOnly``): the others restrict
    pre-period coefficients alone, which the test does not need to be valid."""
    n = n_pre + n_post
    # first differences over the full grid (pre, reference e=-1, post): n rows, n + 1 columns
    diff = np.zeros((n, n + 1))
    diff[np.arange(n), np.arange(n)] = -1.0
    diff[np.arange(n), np.arange(n) + 1] = 1.0
    out = []
    for s in range(n_pre):  # the s-th pre-period difference (the last one steps into e=-1)
        for sign in (1.0, -1.0):
            bound = sign * diff[s]
            scale = np.where(np.arange(n) < n_pre, 1.0, Mbar)[:, None]
            A = np.vstack([diff - scale * bound, -diff - scale * bound])
            A = np.delete(A, n_pre, axis=1)  # delta(-1) = 0
            keep = np.abs(A[:, n_pre:]).sum(axis=1) > 1e-12
            out.append(A[keep])
    return out


def _paired_rays(X: np.ndarray) -> np.ndarray | None:
    """Extreme rays of the cone {lambda >= 0: X'lambda = 0} when the rows of X come in pairs (x_i, -x_i)
    and the x_i have a one-dimensional dependency mu (sum mu_i x_i = 0), as for Delta^RM: the pairs
    e_i+ + e_i- and the dependency split by sign, (mu+, mu-) and (mu-, mu+). None if X is not of that form."""
    m, k = X.shape
    h = m // 2
    if m != 2 * h or not np.allclose(X[:h], -X[h:], atol=1e-12 * max(1.0, float(np.abs(X).max()))):
        return None
    _, sv, vt = np.linalg.svd(X[:h].T)  # k x h
    if h - int(np.sum(sv > 1e-10 * max(1.0, float(sv.max(initial=0.0))))) != 1:
        return None
    mu = vt[-1]
    rays = [np.concatenate([np.eye(h)[i], np.eye(h)[i]]) for i in range(h)]
    rays += [np.concatenate([np.clip(mu, 0, None), np.clip(-mu, 0, None)]),
             np.concatenate([np.clip(-mu, 0, None), np.clip(mu, 0, None)])]
    return np.array(rays).T  # m x (h + 2)


def _dual_vertices(sd: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Vertices of {lambda >= 0: lambda'sd = 1, X'lambda = 0} (columns): the extreme rays of the cone
    {lambda >= 0: X'lambda = 0}, scaled to lambda'sd = 1 (closed form for Delta^RM, else by enumerating bases).

    The ARP statistic ``eta(y) = min_gamma max_j (y_j - X_j gamma) / sd_j`` equals ``max over these vertices
    of lambda'y`` (LP duality), so once the vertices are known every grid point, every simulated draw and
    the truncation bounds are matrix products, not linear programmes."""
    m, k = X.shape
    if k == 0:
        return np.diag(1.0 / sd)
    rays = _paired_rays(X)
    if rays is not None:
        return rays / (sd @ rays)[None, :]
    if math.comb(m, k + 1) > _MAX_BASES:
        raise EstimationError("honest: the moment inequalities have too many constraints to enumerate the vertices "
                              "of the ARP test's dual; use test='bonferroni'.")
    W = np.column_stack([sd, X])  # m x (k + 1)
    bases = np.array(list(itertools.combinations(range(m), k + 1)))
    mats = np.transpose(W[bases], (0, 2, 1))  # (nb, k+1, k+1): W_B'
    scale = np.abs(mats).max(axis=(1, 2))
    ok = np.abs(np.linalg.det(mats / scale[:, None, None])) > 1e-10
    rhs = np.zeros(k + 1)
    rhs[0] = 1.0
    sol = np.linalg.solve(mats[ok], np.broadcast_to(rhs, (int(ok.sum()), k + 1))[..., None])[..., 0]
    feasible = (sol >= -1e-10).all(axis=1)
    lam = np.zeros((int(feasible.sum()), m))
    rows = np.repeat(np.arange(lam.shape[0]), k + 1)
    lam[rows, bases[ok][feasible].ravel()] = np.clip(sol[feasible], 0, None).ravel()
    lam = np.unique(np.round(lam, 12), axis=0)
    return lam.T  # m x n_vertices


def _lf_critical_value(vertices: np.ndarray, sigma: np.ndarray, kappa: float, sims: int, seed: int) -> float:
    """Least-favourable critical value: the 1 - kappa quantile of eta under y ~ N(0, sigma) (ARP Sec. 6.2)."""
    draws = np.random.RandomState(seed).multivariate_normal(np.zeros(len(sigma)), sigma, size=sims)
    return float(np.quantile((draws @ vertices).max(axis=1), 1 - kappa))


def _arp_accept(Y: np.ndarray, sigma: np.ndarray, vertices: np.ndarray, *, alpha: float, hybrid: bool,
                lf_cv: float, truncate_at_lf: bool) -> np.ndarray:
    """ARP conditional (or least-favourable hybrid) test of E[y - X gamma] <= 0 for some gamma, for every
    row of ``Y`` (G x m, one row per null value); True where the null is not rejected.

    Conditioning on the optimal dual vertex gamma~ and on s = y - c gamma~'y (c = Sigma gamma~ / gamma~'Sigma
    gamma~), eta = gamma~'y is N(gamma~'mu, gamma~'Sigma gamma~) truncated to [v_lo, v_up], the values for which
    gamma~ stays optimal: v_lo = max over vertices with lambda'c < 1 of lambda's / (1 - lambda'c), v_up the
    min over lambda'c > 1 (ARP 2023, Sec. 5; here over the enumerated vertices instead of by bisection)."""
    values = Y @ vertices  # G x V
    best = values.argmax(axis=1)
    eta = values[np.arange(len(Y)), best]
    g = vertices[:, best].T  # G x m
    Sg = g @ sigma
    var = np.einsum("gm,gm->g", Sg, g)
    c = Sg / var[:, None]
    s = Y - c * eta[:, None]
    num = s @ vertices
    den = 1.0 - c @ vertices
    tol = 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = num / den
        v_lo = np.where(den > tol, ratio, -np.inf).max(axis=1)
        v_up = np.where(den < -tol, ratio, np.inf).min(axis=1)
    size = (alpha - (alpha / 10)) / (1 - alpha / 10) if hybrid else alpha
    if hybrid and truncate_at_lf:
        v_up = np.minimum(v_up, lf_cv)
    sd = np.sqrt(var)
    z, z_lo, z_up = eta / sd, v_lo / sd, v_up / sd
    inside = (z >= z_lo) & (z <= z_up)
    crit = np.full(len(Y), np.inf)
    if inside.any():
        lo, up = z_lo[inside], z_up[inside]
        p_lo, p_up = special.ndtr(lo), special.ndtr(up)
        # the (1 - size) quantile of N(0, 1) truncated to [lo, up], from the upper tail for accuracy
        q = np.where(lo > 0, -special.ndtri(special.ndtr(-up) + size * (special.ndtr(-lo) - special.ndtr(-up))),
                     special.ndtri(p_lo + (1 - size) * (p_up - p_lo)))
        crit[inside] = np.maximum(0.0, q)
    reject = inside & (z > crit)
    if hybrid:
        reject |= eta > lf_cv
    return ~reject


def rm_conditional(
    estimates: np.ndarray, vcov: np.ndarray, event_time: np.ndarray, l_post: np.ndarray, Mbar: float, *,
    alpha: float, hybrid: bool = True, grid: np.ndarray | None = None, grid_points: int = 1000,
    sims: int = 1000, seed: int = 0,
) -> dict[str, float]:
    """Confidence set under Delta^RM(Mbar) by test inversion: ARP's conditional test or its
    least-favourable hybrid (Rambachan & Roth 2023, Sec. 5.3; HonestDiD's default for relative magnitudes).

    For each polyhedron of the union (which pre-period difference is largest, and its sign) and each null
    ``l'tau_post = theta`` on ``grid``, the moments ``A beta_hat - A_post c theta - A_post N gamma <= 0`` (``c``:
    ``l'c = 1``; ``N``: a basis of ``l``'s orthogonal complement, the nuisance) are tested; theta is in the set
    when some polyhedron accepts it. The hybrid (kappa = alpha / 10) first rejects when eta exceeds the
    least-favourable critical value (``sims`` draws, ``seed``), then runs the conditional test at level
    (alpha - kappa) / (1 - kappa) truncated at that value. The interval reported is the hull of the accepted
    grid points; ``grid`` defaults to ``grid_points`` values around the Bonferroni set, widened until no
    end point is accepted, then a second grid of ``grid_points`` over the accepted hull (so the ends are
    exact to a fraction of the first grid's step)."""
    pre, _post, _ = _grid(event_time, "honest")
    est = np.asarray(estimates, dtype=float)
    Sigma = np.asarray(vcov, dtype=float)
    n_pre, n_post = len(pre), len(l_post)
    l_post = np.asarray(l_post, dtype=float)
    c1 = l_post / float(l_post @ l_post)
    nuisance = np.linalg.svd(l_post[None, :])[2][1:].T  # n_post x (n_post - 1)
    tests = []
    for A in _rm_polyhedra(n_pre, n_post, float(Mbar)):
        A_post = A[:, n_pre:]
        X = A_post @ nuisance
        sigma_y = A @ Sigma @ A.T
        sd = np.sqrt(np.diag(sigma_y))
        V = _dual_vertices(sd, X)
        lf = _lf_critical_value(V, sigma_y, alpha / 10, sims, seed) if hybrid else np.inf
        tests.append((A @ est, A_post @ c1, sigma_y, V, lf))

    def accepted(thetas: np.ndarray) -> np.ndarray:
        ok = np.zeros(len(thetas), dtype=bool)
        for y0, slope, sigma_y, V, lf in tests:
            Y = y0[None, :] - np.outer(thetas, slope)
            ok |= _arp_accept(Y, sigma_y, V, alpha=alpha, hybrid=hybrid, lf_cv=lf, truncate_at_lf=n_post > 1)
        return ok

    center = float(l_post @ est[n_pre:])
    if grid is None:
        bonf = rm_bonferroni(est, Sigma, event_time, l_post, Mbar, alpha=alpha)
        half = max(center - bonf["conf_low"], bonf["conf_high"] - center)
        for _ in range(8):
            grid = np.linspace(center - 1.5 * half, center + 1.5 * half, grid_points)
            ok = accepted(grid)
            if not (ok[0] or ok[-1]):
                break
            half *= 2
        if ok.any() and not (ok[0] or ok[-1]):
            # a second grid over the accepted hull (plus a step either side) sharpens the end points
            step = grid[1] - grid[0]
            grid = np.linspace(grid[ok].min() - step, grid[ok].max() + step, grid_points)
            ok = accepted(grid)
    else:
        grid = np.asarray(grid, dtype=float)
        ok = accepted(grid)
    sd = math.sqrt(float(l_post @ Sigma[n_pre:, n_pre:] @ l_post))
    if not ok.any():
        low = high = math.nan
    else:
        low, high = float(grid[ok].min()), float(grid[ok].max())
    return {"estimate": center, "std_error": sd, "conf_low": low, "conf_high": high,
            "grid_low": float(grid[0]), "grid_high": float(grid[-1]), "grid_points": len(grid),
            "grid_step": float(grid[1] - grid[0]) if len(grid) > 1 else 0.0,
            "open_end": bool(ok[0] or ok[-1]), "accepted": ok.tolist()}


def honest(
    result: Result,
    *,
    method: Method = "relative_magnitude",
    Mbar: Sequence[float] = (0.0, 0.5, 1.0, 1.5, 2.0),
    M: Sequence[float] | None = None,
    target: str | int = "average post",
    level: float | None = None,
    test: RMTest = "hybrid",
    grid_points: int = 1000,
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
    test : {"hybrid", "conditional", "bonferroni"}
        Relative magnitudes only: the test inverted for the confidence set. "hybrid" (default, as
        HonestDiD): Andrews, Roth & Pakes's conditional-least-favourable hybrid; "conditional": their
        conditional test; "bonferroni": the simpler, conservative Bonferroni set (:func:`rm_bonferroni`).
    grid_points : int
        Relative magnitudes with an ARP test: number of grid points on which the test is inverted (HonestDiD's
        default 1,000); the interval is the hull of the accepted points, so its ends are exact to one grid step.

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
    by :math:`\\bar M` times the largest pre-period first difference. :math:`\\Delta^{RM}` is a union of
    polyhedra (which pre-period difference is the largest, and its sign); the confidence set is the union of
    the sets that invert, on a grid of :math:`\\theta`, the conditional-least-favourable hybrid test of
    Andrews, Roth & Pakes (2023) for each polyhedron (:func:`rm_conditional`; HonestDiD's default). The
    test's linear programme is solved once per polyhedron by enumerating the vertices of its dual, so the
    grid, the least-favourable draws and the truncation bounds are matrix products. ``test="bonferroni"``
    gives the simpler, conservative set of :func:`rm_bonferroni`.

    References
    ----------
    Rambachan, A. & Roth, J. (2023). A more credible approach to parallel trends. *Review of Economic Studies*
    90(5), 2555-2591. https://doi.org/10.1093/restud/rdad018

    Andrews, I., Roth, J. & Pakes, A. (2023). Inference for linear conditional moment inequalities. *Review of
    Economic Studies* 90(6), 2763-2791. https://doi.org/10.1093/restud/rdad004

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
    check_option("test", test, ("hybrid", "conditional", "bonferroni"))
    if isinstance(grid_points, bool) or not isinstance(grid_points, int | np.integer) or grid_points < 10:
        raise SpecError(f"{where}: grid_points must be an integer of at least 10; got {grid_points!r}.")
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
            if test == "bonferroni":
                solve = lambda b: rm_bonferroni(est, V, e, l_post, b, alpha=alpha)
            else:
                solve = lambda b: rm_conditional(est, V, e, l_post, b, alpha=alpha, hybrid=test == "hybrid",
                                                 grid_points=int(grid_points))
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
                       else "Bonferroni confidence set (conservative; not HonestDiD's conditional/hybrid test)"
                       if test == "bonferroni" else
                       f"Andrews-Roth-Pakes {'conditional-least-favourable hybrid' if test == 'hybrid' else 'conditional'} "
                       f"test inverted on a grid of {int(grid_points):,} points (HonestDiD's {'C-LF' if test == 'hybrid' else 'Conditional'})")
        res = HonestResult(
            design="honest",
            estimand=f"{target_label} effect of {result.design}",
            effects=effects,
            headline=ORIGINAL,
            inference=f"{method_text} at level {level:g}; 'original' is the unadjusted normal interval",
            n_obs=result.n_obs, outcome=result.outcome, level=level, n_units=result.n_units,
            n_treated=result.n_treated, n_clusters=result.n_clusters,
            settings={"method": method, "bound_name": name, "bounds": bounds, "target": target_label,
                      "test": test if method == "relative_magnitude" else None,
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
