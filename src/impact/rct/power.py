"""Power, minimum detectable effect and sample size for trials: analytic and by simulation."""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from impact.data import check_number  # shared option validation
from impact.errors import EstimationError, ImpactError, SpecError
from impact.results import Result, jsonable

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["power", "simulate_power", "PowerAnalysis", "PowerSimulation"]


@dataclass(frozen=True, kw_only=True)
class PowerAnalysis:
    """Analytic power calculation: the solved quantity and every input, with a power curve."""

    solved_for: str
    effect: float
    power: float
    n: float
    n_clusters: float | None
    cluster_size: float | None
    icc: float
    design_effect: float
    sd: float
    prob: float
    alpha: float
    r_squared: float
    df: float
    std_error: float

    def summary(self) -> str:
        unit = f"{self.n_clusters:,.1f} clusters of {self.cluster_size:g} ({self.n:,.0f} units)" if self.n_clusters else f"{self.n:,.1f} units"
        return "\n".join([
            f"Power analysis (solved for {self.solved_for})",
            f"  sample: {unit}, {self.prob:.0%} treated",
            f"  effect (MDE if solved): {self.effect:.4g}  = {self.effect / self.sd:.3f} SD",
            f"  power: {self.power:.3f} at two-sided alpha = {self.alpha:g} (t with {self.df:g} df)",
            f"  design effect: {self.design_effect:.3f} (ICC {self.icc:g}); covariates' R^2: {self.r_squared:g}",
            f"  standard error of the estimate: {self.std_error:.4g}",
        ])

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self)

    def curve(self, effects: np.ndarray | None = None) -> pd.DataFrame:
        """Power at a range of effect sizes (same sample and design)."""
        if effects is None:
            effects = np.linspace(0, 2 * self.effect, 41)
        values = [_power_at(e, self.std_error, self.df, self.alpha) for e in effects]
        return pd.DataFrame({"effect": effects, "power": values})

    def plot(self, ax: Axes | None = None) -> Axes:
        """Power curve against the effect size, with the target marked."""
        from impact.report.plots import new_axes

        ax = new_axes(ax)
        table = self.curve()
        ax.plot(table["effect"], table["power"], color="#1f4e79")
        ax.axhline(self.power, color="#7f7f7f", linestyle=":")
        ax.axvline(self.effect, color="#b22222", linestyle="--", label=f"effect {self.effect:.3g}, power {self.power:.2f}")
        ax.set_xlabel("True effect")
        ax.set_ylabel("Power")
        ax.set_ylim(0, 1)
        ax.legend(loc="lower right")
        ax.set_title("Power curve")
        return ax

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        return {"Power curve": self.plot}


def _power_at(effect: float, se: float, df: float, alpha: float) -> float:
    """Two-sided power of a t test: P(|T| > t_crit) with T noncentral t(df, effect/se)."""
    crit = stats.t.ppf(1 - alpha / 2, df)
    ncp = effect / se
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))


def power(
    *,
    effect: float | None = None,
    n: float | None = None,
    power: float | None = None,
    sd: float = 1.0,
    prob: float = 0.5,
    alpha: float = 0.05,
    icc: float = 0.0,
    cluster_size: float | None = None,
    n_clusters: float | None = None,
    r_squared: float = 0.0,
) -> PowerAnalysis:
    """Power, minimum detectable effect (MDE) or sample size of a two-arm trial.

    Give exactly two of ``effect``, ``power`` and the sample size (``n`` units, or ``n_clusters``
    with ``cluster_size`` for a cluster-randomised trial); the third is solved for.

    Parameters
    ----------
    effect : float, optional
        True effect in outcome units (``sd`` scales it).
    n : float, optional
        Total number of units (individually randomised).
    power : float, optional
        Target power (e.g. 0.8).
    sd : float
        Outcome standard deviation (total, individual level).
    prob : float
        Share of units (clusters) assigned to treatment.
    alpha : float
        Two-sided significance level.
    icc : float
        Intra-cluster correlation (cluster designs).
    cluster_size : float, optional
        Units per cluster (cluster designs; with ``n_clusters`` or solved for it).
    n_clusters : float, optional
        Total number of clusters.
    r_squared : float
        Share of outcome variance explained by baseline covariates used in the analysis (e.g. the
        lagged outcome); shrinks the variance by ``1 - r_squared``.

    Returns
    -------
    PowerAnalysis

    Notes
    -----
    :math:`SE = \\sigma\\sqrt{\\frac{(1-R^2)\\,\\mathrm{DEFF}}{P(1-P)N}}` with design effect
    :math:`\\mathrm{DEFF} = 1 + (m-1)\\rho` for clusters of size :math:`m` and ICC :math:`\\rho`; power is
    :math:`\\Pr(|T| > t_{1-\\alpha/2,\\nu})` for :math:`T` noncentral t with non-centrality
    :math:`\\tau/SE` and :math:`\\nu = N-2` (individual) or :math:`J-2` (J clusters) degrees of freedom.
    With :math:`P = 1/2`, no clusters and :math:`R^2 = 0` this is R's ``power.t.test`` (two-sample,
    ``strict = TRUE``). The MDE is the effect with the target power (approximately
    :math:`(t_{1-\\alpha/2} + t_{\\text{power}})\\,SE`, Bloom 1995).

    References
    ----------
    Bloom, H. S. (1995). Minimum detectable effects: a simple way to report the statistical power of
    experimental designs. *Evaluation Review* 19(5), 547-556. doi:10.1177/0193841X9501900504.
    Donner, A. and Klar, N. (2000). *Design and Analysis of Cluster Randomization Trials in Health
    Research*. Arnold.
    Duflo, E., Glennerster, R. and Kremer, M. (2007). Using randomization in development economics
    research: a toolkit. *Handbook of Development Economics* 4, 3895-3962.
    doi:10.1016/S1573-4471(07)04061-2.

    Examples
    --------
    >>> import impact as im
    >>> round(im.rct.power(effect=0.3, n=200).power, 3)   # power.t.test(n = 100, delta = 0.3)
    0.56
    """
    where = "power"
    # every number must be finite and of the right kind: NaN compares False and slipped through
    effect = check_number("effect", effect, where, allow_none=True)
    power = check_number("power", power, where, low=0, high=1, low_open=True, high_open=True, allow_none=True)
    n = check_number("n", n, where, low=0, low_open=True, allow_none=True)
    n_clusters = check_number("n_clusters", n_clusters, where, low=0, low_open=True, allow_none=True)
    cluster_size = check_number("cluster_size", cluster_size, where, low=1, allow_none=True)
    sd = check_number("sd", sd, where, low=0, low_open=True)
    for name, value in (("prob", prob), ("alpha", alpha), ("icc", icc), ("r_squared", r_squared)):
        check_number(name, value, where)
    clustered = cluster_size is not None or n_clusters is not None
    if clustered and cluster_size is None:
        raise SpecError("power: a cluster design needs cluster_size= (units per cluster).")
    if clustered and n is not None:
        raise SpecError("power: for a cluster design give n_clusters= (and cluster_size=), not n=.")
    size_given = (n_clusters if clustered else n) is not None
    given = [effect is not None, power is not None, size_given]
    if sum(given) != 2:
        raise SpecError("power: give exactly two of effect=, power= and the sample size (n=, or n_clusters= with "
                        "cluster_size=); the third is solved for.")
    for name, value, lo, hi in (("prob", prob, 0, 1), ("alpha", alpha, 0, 1), ("icc", icc, -1e-12, 1),
                                ("r_squared", r_squared, -1e-12, 1)):
        if not lo < value < hi and not (name in ("icc", "r_squared") and value == 0):
            raise SpecError(f"power: {name} must be in ({lo:g}, {hi:g}), got {value!r}.")
    if power is not None and not alpha < power < 1:
        raise SpecError(f"power: target power must be between alpha and 1, got {power!r}.")
    if sd <= 0:
        raise SpecError("power: sd must be positive.")
    m = float(cluster_size) if clustered else 1.0
    deff = 1 + (m - 1) * icc

    def se_for(units: float) -> float:
        return sd * math.sqrt((1 - r_squared) * deff / (prob * (1 - prob) * units))

    def df_for(units: float) -> float:
        return units / m - 2

    if size_given:
        units = float(n_clusters) * m if clustered else float(n)
        if df_for(units) <= 0:
            raise SpecError("power: the sample is too small (needs more than 2 units or clusters).")
        se, dof = se_for(units), df_for(units)
        if effect is None:
            solved = "effect"
            top = (stats.t.ppf(1 - alpha / 2, dof) + stats.t.ppf(power, dof) + 5) * se  # power ~ 1 there
            effect = optimize.brentq(lambda e: _power_at(e, se, dof, alpha) - power, 0, top)
        else:
            solved = "power"
            power = _power_at(effect, se, dof, alpha)
    else:
        solved = "n_clusters" if clustered else "n"
        if effect == 0:
            raise SpecError("power: a zero effect cannot reach the target power.")

        def gap(units: float) -> float:
            return _power_at(abs(effect), se_for(units), df_for(units), alpha) - power

        low = 3 * m  # one degree of freedom
        if gap(low) >= 0:
            units = low
        else:
            high = low * 2
            while gap(high) < 0:
                low, high = high, high * 2
                if high > 1e12:
                    raise EstimationError("power: no sample size below 1e12 reaches the target power.")
            units = optimize.brentq(gap, low, high, xtol=1e-10)
        se, dof = se_for(units), df_for(units)
    return PowerAnalysis(
        solved_for=solved, effect=float(effect), power=float(power), n=float(units),
        n_clusters=float(units / m) if clustered else None, cluster_size=float(m) if clustered else None,
        icc=float(icc), design_effect=float(deff), sd=float(sd), prob=float(prob), alpha=float(alpha),
        r_squared=float(r_squared), df=float(dof), std_error=float(se),
    )


@dataclass(frozen=True, kw_only=True)
class PowerSimulation:
    """Operating characteristics of an estimator on simulated trials."""

    estimator: str
    n_simulations: int
    alpha: float
    true_effect: float | None
    draws: pd.DataFrame = field(repr=False)

    @property
    def power(self) -> float:
        """Share of simulations rejecting no effect at ``alpha``."""
        return float((self.draws["p_value"] <= self.alpha).mean())

    @property
    def monte_carlo_error(self) -> float:
        """Standard error of the power estimate."""
        p = self.power
        return math.sqrt(p * (1 - p) / self.n_simulations)

    def summary_table(self) -> dict[str, float | None]:
        d = self.draws
        out: dict[str, float | None] = {
            "power": self.power,
            "power_mc_se": self.monte_carlo_error,
            "mean_estimate": float(d["estimate"].mean()),
            "sd_estimate": float(d["estimate"].std(ddof=1)),
            "mean_std_error": float(d["std_error"].mean()),
        }
        if self.true_effect is not None:
            out["bias"] = float(d["estimate"].mean() - self.true_effect)
            out["rmse"] = float(np.sqrt(((d["estimate"] - self.true_effect) ** 2).mean()))
            out["coverage"] = float(((d["conf_low"] <= self.true_effect) & (self.true_effect <= d["conf_high"])).mean())
        return out

    def summary(self) -> str:
        rows = [f"Simulated power of {self.estimator} ({self.n_simulations} trials, alpha = {self.alpha:g})"]
        rows += [f"  {k}: {v:.4g}" for k, v in self.summary_table().items() if v is not None]
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"estimator": self.estimator, "n_simulations": self.n_simulations, "alpha": self.alpha,
                         "true_effect": self.true_effect, **self.summary_table()})

    def plot(self, ax: Axes | None = None) -> Axes:
        """Distribution of the estimates across simulated trials, with the truth marked."""
        from impact.report.plots import new_axes

        ax = new_axes(ax)
        ax.hist(self.draws["estimate"], bins=40, color="#9db9d3", edgecolor="white")
        if self.true_effect is not None:
            ax.axvline(self.true_effect, color="#b22222", linewidth=2, label="true effect")
            ax.legend(loc="best")
        ax.set_xlabel("Estimate")
        ax.set_title(f"{self.estimator}: power {self.power:.2f}")
        return ax

    def figures(self) -> dict[str, Callable[[Axes | None], Axes]]:
        return {"Simulated sampling distribution": self.plot}


def _resolve(estimator: str | Callable[..., Result]) -> tuple[str, Callable[..., Result]]:
    if callable(estimator):
        return getattr(estimator, "__name__", "estimator"), estimator
    name = estimator if "." in estimator else f"rct.{estimator}"
    module, _, func = name.rpartition(".")
    try:
        target = getattr(importlib.import_module(f"impact.{module}"), func)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"simulate_power: no estimator named {estimator!r} (use e.g. 'difference_in_means', "
                        "'lin', 'rct.regression' or 'did.twfe').") from exc
    return name, target


def simulate_power(
    draw: Callable[[np.random.Generator], pd.DataFrame],
    estimator: str | Callable[..., Result] = "difference_in_means",
    *,
    n_simulations: int = 500,
    alpha: float = 0.05,
    seed: int | None = None,
    true_effect: float | None = None,
    options: Mapping[str, Any] | None = None,
) -> PowerSimulation:
    """Power (and bias, coverage) of any impact estimator on simulated trials.

    Parameters
    ----------
    draw : callable
        ``draw(rng)`` returns one simulated dataset (a DataFrame) using the numpy Generator it is
        given; it should include the random assignment (e.g. via :func:`assign`).
    estimator : str or callable
        Name of an impact estimator (``"difference_in_means"``, ``"lin"``, ``"rct.late"``,
        ``"did.twfe"``, ...) or a function returning a Result.
    n_simulations : int
        Number of simulated trials.
    alpha : float
        Significance level for power.
    seed : int, optional
        Seed: the simulations use independent child generators (``SeedSequence.spawn``), so each
        trial is reproducible on its own.
    true_effect : float, optional
        The effect built into ``draw``; adds bias, RMSE and interval coverage.
    options : mapping
        Keyword arguments for the estimator (``outcome=``, ``treatment=``, ``blocks=``, ...).

    Returns
    -------
    PowerSimulation
        ``power`` with its Monte Carlo error, and ``draws`` (estimate, std_error, p_value, interval per
        trial).

    Notes
    -----
    Each trial is estimated by the same public function a report would call, so any design the
    package estimates can be powered; the estimator's own arithmetic is vectorised, the loop is over
    simulated trials.

    Examples
    --------
    >>> import numpy as np, pandas as pd, impact as im
    >>> def draw(rng):
    ...     t = rng.permutation(np.repeat([0, 1], 50))
    ...     return pd.DataFrame({"y": 0.5 * t + rng.normal(size=100), "t": t})
    >>> sim = im.rct.simulate_power(draw, "difference_in_means", n_simulations=200, seed=1,
    ...                             options={"outcome": "y", "treatment": "t"}, true_effect=0.5)
    """
    if n_simulations < 2:
        raise SpecError("simulate_power: n_simulations must be at least 2.")
    if not callable(draw):
        raise SpecError("simulate_power: draw must be a function draw(rng) -> DataFrame.")
    name, fit = _resolve(estimator)
    kwargs = dict(options or {})
    children = np.random.SeedSequence(seed).spawn(n_simulations)
    rows = []
    failures = 0
    for child in children:
        data = draw(np.random.default_rng(child))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = fit(data, **kwargs)
        except ImpactError:
            failures += 1
            continue
        low, high = result.conf_int()
        rows.append((result.estimate, result.std_error, result.p_value, low, high))
    if failures > n_simulations / 2:
        raise EstimationError(f"simulate_power: the estimator failed on {failures} of {n_simulations} simulated trials.")
    draws = pd.DataFrame(rows, columns=["estimate", "std_error", "p_value", "conf_low", "conf_high"])
    return PowerSimulation(estimator=name, n_simulations=len(draws), alpha=alpha, true_effect=true_effect, draws=draws)
