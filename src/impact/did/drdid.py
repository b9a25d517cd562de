"""Two-period difference-in-differences: the one 2x2 backend and the public ``drdid`` estimator.

The backend (:class:`PanelComparison`) takes one 2x2 comparison of a panel -- which units are treated,
their covariates and sampling weights -- and, for an outcome change ``delta_y = Y_post - Y_pre``,
returns the ATT and its influence function (:class:`TwoByTwo`). Everything that does not depend on the
outcome (propensity-score fits, regression breads) is computed once per comparison and reused, which
is what makes :func:`impact.did.att_gt` fast: many group-time cells share one comparison.

Contract of the backend: ``att = mean(psi) + att_true + o_p(n^-1/2)`` with ``psi`` the returned
influence function on the units of the comparison, so the analytic variance is ``sum(psi^2)/n^2``
(``att_gt`` rescales ``psi`` by ``n_all / n`` to place it in the full sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import linalg, special

from impact.data import check_level  # shared option validation
from impact.data import as_list, check_option, check_rank, prepare
from impact.errors import (
    ConvergenceWarning,
    DataError,
    EstimationError,
    OverlapWarning,
    SampleWarning,
    SmallComparisonWarning,
    SpecError,
    recording_warnings,
    warn,
)
from impact.results import Result, effects_table

__all__ = ["DRDIDMethod", "PanelComparison", "TwoByTwo", "drdid"]

DRDIDMethod = Literal["imp", "trad", "reg", "ipw", "std_ipw", "imp_local"]
DRDID_METHODS: tuple[str, ...] = ("imp", "trad", "reg", "ipw", "std_ipw")
METHOD_NAMES = {
    "imp": "improved doubly robust (Sant'Anna & Zhao 2020, inverse probability tilting + weighted OLS)",
    "trad": "traditional (locally efficient) doubly robust (Sant'Anna & Zhao 2020)",
    "reg": "outcome regression (Heckman, Ichimura & Todd 1997)",
    "ipw": "inverse probability weighting (Abadie 2005, unnormalised weights)",
    "std_ipw": "inverse probability weighting with normalised (Hajek) weights",
}
# Comparison units with a propensity score at or above this get zero weight (as R DRDID's trim.level).
TRIM_LEVEL = 0.995
_PS_CAP = 1 - 1e-6


@dataclass(frozen=True)
class TwoByTwo:
    """ATT of one 2x2 comparison and its influence function on the comparison's units."""

    att: float
    influence: np.ndarray
    n_treated: int
    n_control: int
    n_trimmed: int = 0
    ps_min: float | None = None
    ps_max: float | None = None

    @property
    def std_error(self) -> float:
        n = len(self.influence)
        return float(np.sqrt(np.sum(self.influence**2)) / n)


def _logit_mle(X: np.ndarray, D: np.ndarray, w: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Weighted logit MLE by Newton-Raphson with step halving; returns (coefficients, (X'WX)^-1).

    Columns are scaled internally (Newton steps are scale-invariant, the linear algebra is not).
    """
    scale = np.maximum(np.abs(X).max(axis=0), 1e-300)
    Z = X / scale
    k = Z.shape[1]
    beta = np.zeros(k)
    share = float(np.sum(w * D) / np.sum(w))
    beta[0] = np.log(share / (1 - share)) / scale[0]  # column 0 is the intercept

    def loglik(b: np.ndarray) -> float:
        index = Z @ b
        return float(np.sum(w * (D * index - np.logaddexp(0.0, index))))

    current = loglik(beta)
    for _ in range(100):
        p = special.expit(Z @ beta)
        H = (Z * (w * p * (1 - p))[:, None]).T @ Z
        grad = Z.T @ (w * (D - p))
        try:
            step = linalg.solve(H, grad, assume_a="pos", check_finite=False)
        except (linalg.LinAlgError, ValueError) as exc:
            raise EstimationError(
                f"{where}: the propensity-score logit is singular (covariates collinear within this "
                "comparison, or perfectly predicting treatment). Drop or coarsen covariates."
            ) from exc
        t = 1.0
        while True:
            trial = beta + t * step
            value = loglik(trial)
            if value >= current - 1e-12 * abs(current) or t < 1e-8:
                break
            t /= 2
        beta, current = trial, value
        if np.max(np.abs(t * step)) < 1e-10 * (1 + np.max(np.abs(beta))):
            break
    else:
        warn(ConvergenceWarning, f"{where}: the propensity-score logit did not converge in 100 Newton steps.")
    p = special.expit(Z @ beta)
    H = (Z * (w * p * (1 - p))[:, None]).T @ Z
    H_inv = linalg.inv(H, check_finite=False) / np.outer(scale, scale)
    return beta / scale, H_inv


def _tilting(X: np.ndarray, D: np.ndarray, w: np.ndarray, start: np.ndarray, where: str) -> np.ndarray:
    """Inverse probability tilting (Graham, Pinto & Egel 2012) for the ATT: the logit coefficients that
    make the weighted comparison units' covariate sums (weights p/(1-p)) equal the treated units'.

    Minimises the convex loss -mean(w * (D * X'g - (1 - D) * exp(X'g))) by Newton steps with halving.
    """
    C = 1 - D

    def loss(g: np.ndarray) -> float:
        index = X @ g
        return float(-np.mean(w * (D * index - C * np.exp(np.minimum(index, 700)))))

    gamma = start.copy()
    current = loss(gamma)
    for _ in range(200):
        e = np.exp(np.minimum(X @ gamma, 700))
        grad = -X.T @ (w * (D - C * e)) / len(D)
        H = (X * (w * C * e)[:, None]).T @ X / len(D)
        try:
            step = linalg.solve(H, grad, assume_a="pos", check_finite=False)
        except (linalg.LinAlgError, ValueError) as exc:
            raise EstimationError(
                f"{where}: the calibrated propensity score (inverse probability tilting) is singular; "
                "check the covariates for collinearity among the comparison units."
            ) from exc
        t = 1.0
        while t > 1e-8:
            trial = gamma - t * step
            value = loss(trial)
            if value <= current + 1e-14 * abs(current):
                break
            t /= 2
        gamma, current = trial, value
        if np.max(np.abs(t * step)) < 1e-10 * (1 + np.max(np.abs(gamma))):
            break
    else:
        warn(ConvergenceWarning, f"{where}: the calibrated propensity score did not converge in 200 steps.")
    return gamma


class PanelComparison:
    """One 2x2 panel comparison (treated vs comparison units) for the doubly robust DiD backend.

    Parameters
    ----------
    treated : ndarray (n,) of bool
        True for treated units, False for comparison units.
    covariates : ndarray (n, k) or None
        Covariates WITHOUT an intercept (one is added); None for the unconditional comparison.
    weights : ndarray (n,) or None
        Sampling weights (normalised to mean one here).
    names : sequence of str
        Covariate names, for error messages.
    where : str
        Name of the calling estimator, for error messages.

    Notes
    -----
    Fits that do not depend on the outcome are cached: the logit propensity score and its
    influence function, the inverse-probability-tilting score, and the regression breads. Calling
    :meth:`estimate` for several outcome changes (periods) re-uses them.
    """

    def __init__(
        self,
        treated: np.ndarray,
        covariates: np.ndarray | None,
        weights: np.ndarray | None,
        *,
        names: tuple[str, ...] = (),
        where: str = "drdid",
    ) -> None:
        self.D = np.asarray(treated, dtype=float)
        self.n = len(self.D)
        self.where = where
        self.n_treated = int(self.D.sum())
        self.n_control = self.n - self.n_treated
        if self.n_treated == 0 or self.n_control == 0:
            raise DataError(f"{where}: a 2x2 comparison needs treated and comparison units; got "
                            f"{self.n_treated} treated and {self.n_control} comparison units.")
        w = np.ones(self.n) if weights is None else np.asarray(weights, dtype=float)
        self.w = w / w.mean()
        if covariates is None or np.size(covariates) == 0:
            self.X = np.ones((self.n, 1))
        else:
            cov = np.asarray(covariates, dtype=float).reshape(self.n, -1)
            self.X = np.column_stack([np.ones(self.n), cov])
        self.names = ("(intercept)", *names)
        self.has_covariates = self.X.shape[1] > 1
        self._cache: dict[str, object] = {}

    # -- cached nuisance fits ---------------------------------------------------------------------
    def _full_rank(self, X: np.ndarray, w: np.ndarray | None, context: str) -> None:
        """Raise (naming the collinear columns) if X is rank deficient; a cheap k x k test first."""
        Z = X if w is None else X * np.sqrt(w)[:, None]
        gram = Z.T @ Z
        scale = np.sqrt(np.clip(np.diag(gram), 1e-300, None))
        smallest = np.linalg.eigvalsh(gram / np.outer(scale, scale))[0] if len(gram) else 1.0
        if not smallest > 1e-10:
            check_rank(Z, list(self.names), self.where, context=context)

    def _check_controls(self) -> None:
        if "rank" not in self._cache:
            control = self.D == 0
            self._full_rank(self.X[control], self.w[control], " among the comparison units")
            self._cache["rank"] = True

    def _propensity(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Logit propensity score (capped below one), the score weights w (D - ps) and (X'VX)^-1.

        The coefficients' influence function is ``n * (w (D - ps))_i * X_i' (X'VX)^-1``; it is only ever
        needed multiplied by a k-vector, so it is never formed as an n x k matrix.
        """
        if "ps" not in self._cache:
            self._full_rank(self.X, None, " in the propensity-score model")
            beta, H_inv = _logit_mle(self.X, self.D, self.w, self.where)
            ps = np.minimum(special.expit(self.X @ beta), _PS_CAP)
            self._cache["beta"] = beta
            self._cache["ps"] = (ps, self.w * (self.D - ps), H_inv)
            self._overlap_note(ps)
        return self._cache["ps"]  # type: ignore[return-value]

    def _linear_correction(self, score: np.ndarray, inverse: np.ndarray, moment: np.ndarray) -> np.ndarray:
        """``n * score_i * X_i' inverse @ moment``: an estimated-coefficient term of an influence function."""
        return self.n * score * (self.X @ (inverse @ moment))

    def _calibrated_propensity(self) -> np.ndarray:
        if "ps_cal" not in self._cache:
            self._propensity()
            gamma = _tilting(self.X, self.D, self.w, self._cache["beta"], self.where)  # type: ignore[arg-type]
            ps = np.minimum(special.expit(self.X @ gamma), _PS_CAP)
            self._cache["ps_cal"] = ps
            self._overlap_note(ps)
        return self._cache["ps_cal"]  # type: ignore[return-value]

    def _overlap_note(self, ps: np.ndarray) -> None:
        trimmed = int(np.count_nonzero((self.D == 0) & (ps >= TRIM_LEVEL)))
        if trimmed and not self._cache.get("warned_trim"):
            self._cache["warned_trim"] = True
            warn(OverlapWarning, f"{self.where}: {trimmed} comparison unit(s) have a propensity score of "
                 f"{TRIM_LEVEL} or more and get zero weight (trimmed, as R DRDID); overlap is poor.")

    def _trim(self, ps: np.ndarray) -> np.ndarray:
        keep = np.ones(self.n)
        keep[(self.D == 0) & (ps >= TRIM_LEVEL)] = 0.0
        return keep

    def _ols(self, delta_y: np.ndarray, extra_weight: np.ndarray | None = None, key: str = "ols"):
        """(Weighted) least squares of delta_y on X among comparison units: fitted values for all units,
        and the residual-score matrix needed for the coefficients' influence function."""
        if key not in self._cache:
            self._check_controls()
            c = (1 - self.D) * self.w * (1.0 if extra_weight is None else extra_weight)
            XtX = (self.X * c[:, None]).T @ self.X
            self._cache[key] = (c, linalg.inv(XtX, check_finite=False))
        c, inv = self._cache[key]  # type: ignore[misc]
        beta = inv @ ((c * delta_y) @ self.X)
        fitted = self.X @ beta
        return fitted, c, inv

    # -- the estimators -------------------------------------------------------------------------------
    def _weights(self, calibrated: bool) -> dict[str, object]:
        """Treated and comparison weights for the propensity-score methods, with their sums and
        covariate moments (none depends on the outcome, so they are cached)."""
        key = "weights_cal" if calibrated else "weights"
        if key not in self._cache:
            ps = self._calibrated_propensity() if calibrated else self._propensity()[0]
            keep = self._trim(ps)
            odds = ps / (1 - ps)
            w_treat = keep * self.w * self.D
            w_cont = keep * self.w * (1 - self.D) * odds
            self._cache[key] = {
                "ps": ps, "keep": keep, "odds": odds, "w_treat": w_treat, "w_cont": w_cont,
                "mean_treat": w_treat.mean(), "mean_cont": w_cont.mean(),
                "X_treat": (w_treat @ self.X) / self.n, "X_cont": (w_cont @ self.X) / self.n,
            }
        return self._cache[key]  # type: ignore[return-value]

    def estimate(self, delta_y: np.ndarray, method: str) -> TwoByTwo:
        """ATT and influence function for the outcome change ``delta_y`` (one value per unit)."""
        dy = np.asarray(delta_y, dtype=float)
        D, w, X, n = self.D, self.w, self.X, self.n
        if not self.has_covariates:
            # Without covariates every method is the difference of (weighted) mean changes.
            return self._unconditional(dy)
        if method == "reg":
            fitted, c, inv = self._ols(dy)
            w_treat = w * D
            mean_treat = w_treat.mean()
            eta_treat = (w_treat @ dy) / n / mean_treat
            eta_cont = (w_treat @ fitted) / n / mean_treat
            ols_term = self._linear_correction(c * (dy - fitted), inv, (w_treat @ X) / n)
            psi = (w_treat * (dy - eta_treat) - w_treat * (fitted - eta_cont) - ols_term) / mean_treat
            return TwoByTwo(float(eta_treat - eta_cont), psi, self.n_treated, self.n_control)

        if method == "imp":
            q = self._weights(calibrated=True)
            fitted, _, _ = self._ols(dy, extra_weight=q["odds"], key="ols_imp")
            resid = dy - fitted
            w_treat, w_cont = q["w_treat"], q["w_cont"]
            eta_treat = (w_treat @ resid) / n / q["mean_treat"]
            eta_cont = (w_cont @ resid) / n / q["mean_cont"]
            # the tilting and weighted-regression first-order conditions make the estimation effects vanish
            psi = w_treat * (resid - eta_treat) / q["mean_treat"] - w_cont * (resid - eta_cont) / q["mean_cont"]
            return self._out(eta_treat - eta_cont, psi, q)

        q = self._weights(calibrated=False)
        _, score, H_inv = self._propensity()
        w_treat, w_cont = q["w_treat"], q["w_cont"]
        if method == "ipw":
            p_treat = (w @ D) / n
            att_treat, att_cont = w_treat * dy, w_cont * dy
            att = (att_treat.sum() - att_cont.sum()) / n / p_treat
            correction = self._linear_correction(score, H_inv, (att_cont @ X) / n)
            psi = (att_treat - att_cont - correction - w * D * att) / p_treat
            return self._out(att, psi, q)
        if method == "std_ipw":
            eta_treat = (w_treat @ dy) / n / q["mean_treat"]
            eta_cont = (w_cont @ dy) / n / q["mean_cont"]
            centred = w_cont * (dy - eta_cont)
            inf_treat = w_treat * (dy - eta_treat) / q["mean_treat"]
            inf_cont = (centred + self._linear_correction(score, H_inv, (centred @ X) / n)) / q["mean_cont"]
            return self._out(eta_treat - eta_cont, inf_treat - inf_cont, q)
        if method == "trad":
            fitted, c, inv = self._ols(dy)
            resid = dy - fitted
            eta_treat = (w_treat @ resid) / n / q["mean_treat"]
            eta_cont = (w_cont @ resid) / n / q["mean_cont"]
            ols_score = c * resid
            centred = w_cont * (resid - eta_cont)
            inf_treat = (w_treat * (resid - eta_treat) - self._linear_correction(ols_score, inv, q["X_treat"])) / q["mean_treat"]
            inf_cont = (centred + self._linear_correction(score, H_inv, (centred @ X) / n)
                        - self._linear_correction(ols_score, inv, q["X_cont"])) / q["mean_cont"]
            return self._out(eta_treat - eta_cont, inf_treat - inf_cont, q)
        raise EstimationError(f"{self.where}: unknown 2x2 method {method!r}")  # guarded at the boundary

    def _out(self, att: float, psi: np.ndarray, q: dict[str, object]) -> TwoByTwo:
        control = self.D == 0
        ps, keep = q["ps"], q["keep"]
        return TwoByTwo(float(att), psi, self.n_treated, self.n_control, int(np.count_nonzero(keep[control] == 0)),  # type: ignore[index]
                        float(ps[control].min()), float(ps[control].max()))  # type: ignore[index]

    def _unconditional(self, dy: np.ndarray) -> TwoByTwo:
        wt = self.w * self.D
        wc = self.w * (1 - self.D)
        st, sc = wt.sum(), wc.sum()
        mt = float(wt @ dy) / st
        mc = float(wc @ dy) / sc
        psi = self.n * (wt * (dy - mt) / st - wc * (dy - mc) / sc)
        return TwoByTwo(mt - mc, psi, self.n_treated, self.n_control)


def drdid(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str | None = None,
    time: str,
    treatment: str,
    covariates: str | list[str] | None = None,
    method: DRDIDMethod = "imp",
    panel: bool = True,
    weights: str | None = None,
    level: float = 0.95,
    missing: Literal["drop", "error"] = "drop",
) -> Result:
    """Two-period difference-in-differences with covariates (Sant'Anna & Zhao 2020).

    Parameters
    ----------
    df : DataFrame
        Long panel: one row per unit and period, exactly two periods.
    outcome, unit, time : str
        Column names.
    treatment : str
        1 for units in the treated group: either a time-invariant group indicator, or the treatment
        status (0 in the first period, 1 in the second for treated units). Read from the second period.
    covariates : str or list of str, optional
        Pre-treatment covariates; values from the first period are used.
    method : {"imp", "trad", "reg", "ipw", "std_ipw"}
        "imp" improved (locally efficient, doubly robust for inference) DR with inverse probability
        tilting and weighted least squares; "trad" traditional DR (logit + OLS with their estimation
        effects in the influence function); "reg" outcome regression; "ipw" Abadie's IPW with
        unnormalised weights; "std_ipw" IPW with normalised (Hajek) weights.
    panel : bool
        True: a panel (the same units in both periods; ``unit`` required). False: two repeated
        cross-sections, one row per observation, with ``treatment`` the treated-group indicator in
        both periods; ``method`` then is "imp" (improved DR: inverse probability tilting and
        weighted least squares, R DRDID/did's default ``drdid_imp_rc``), "trad" (``drdid_rc``,
        locally efficient with logit and OLS), "imp_local" (improved and locally efficient),
        "reg" (``reg_did_rc``) or "std_ipw" (``std_ipw_did_rc``); equal to moderndid 0.2.
    weights : str, optional
        Sampling weights (constant within unit).
    level : float
        Confidence level.
    missing : {"drop", "error"}
        Rows with missing values: dropped (units then lacking a period are dropped too, with a
        SampleWarning) or an error.

    Returns
    -------
    Result
        Headline term "ATT"; ``diagnostics`` holds the propensity-score range and trimmed count.

    Notes
    -----
    The estimand is :math:`ATT = E[Y_1(1) - Y_1(0) | D = 1]`, identified under conditional parallel
    trends :math:`E[Y_1(0) - Y_0(0) | X, D=1] = E[Y_1(0) - Y_0(0) | X, D=0]` and overlap. The
    doubly robust estimators are consistent if either the propensity score or the outcome-change
    regression is correctly specified. Standard errors are ``sd(psi)/sqrt(n)`` from the influence
    function ``psi`` (as R DRDID). Comparison units with a propensity score of 0.995 or more are
    trimmed (weight zero), as R DRDID's default ``trim.level``.

    References
    ----------
    Sant'Anna, P. H. C., & Zhao, J. (2020). Doubly robust difference-in-differences estimators.
    *Journal of Econometrics* 219(1), 101-122. doi:10.1016/j.jeconom.2020.06.003

    Abadie, A. (2005). Semiparametric difference-in-differences estimators. *Review of Economic
    Studies* 72(1), 1-19. doi:10.1111/0034-6527.00321

    Examples
    --------
    >>> import impact as im
    >>> nsw = im.datasets.load("nsw_long")
    >>> nsw = nsw[(nsw["treated"] == 0) | (nsw["sample"] == 2)]
    >>> res = im.did.drdid(nsw, outcome="re", unit="id", time="year", treatment="experimental",
    ...                    covariates=["age", "educ", "black", "married", "nodegree", "hisp", "re74"])
    >>> round(res.estimate, 2)
    -901.27
    """
    where = "drdid"
    level = check_level(level, where)
    covs = as_list(covariates)
    if panel is False:
        from impact.did._rcs import drdid_cross_sections

        return drdid_cross_sections(df, outcome=outcome, time=time, treatment=treatment, covariates=covs,
                                    method=method, weights=weights, level=level, missing=missing, unit=unit)
    if panel is not True:
        raise SpecError(f"{where}: panel={panel!r} must be True (panel data) or False (repeated cross-sections).")
    check_option("method", method, DRDID_METHODS)
    if unit is None:
        raise SpecError(f"{where}: panel data need unit= (the column identifying units); for repeated "
                        "cross-sections pass panel=False.")
    with recording_warnings() as log:
        prepared = prepare(
            df, where=where,
            roles={"outcome": outcome, "unit": unit, "time": time, "treatment": treatment,
                   "covariates": covs, "weights": weights},
            numeric=[outcome, treatment, *covs] + ([weights] if weights else []),
            unique=[unit, time], missing=missing, unit=unit,
        )
        frame = prepared.frame
        periods = np.sort(frame[time].unique())
        if len(periods) != 2:
            raise DataError(f"{where}: needs exactly two periods in {time!r}; found {len(periods)} "
                            f"({', '.join(map(str, periods[:6]))}). Select the pre and post period "
                            "or use att_gt for more periods.")
        pre = frame.loc[frame[time] == periods[0]].set_index(unit)
        post = frame.loc[frame[time] == periods[1]].set_index(unit)
        both = pre.index.intersection(post.index)
        flow = prepared.flow
        if len(both) < len(pre.index.union(post.index)):
            dropped = len(pre.index.union(post.index)) - len(both)
            note = f"dropped {dropped} unit(s) observed in only one period (panel estimator)"
            warn(SampleWarning, f"{where}: {note}.")
            prepared = prepared.with_step(frame.loc[frame[unit].isin(both)], "balanced panel", note, unit)
            flow = prepared.flow
        pre, post = pre.loc[both], post.loc[both]
        d_pre = pre[treatment].to_numpy(dtype=float)
        d_post = post[treatment].to_numpy(dtype=float)
        bad = ~np.isin(d_post, (0, 1)) | ~np.isin(d_pre, (0, 1))
        if bad.any():
            raise DataError(f"{where}: column {treatment!r} must be coded 0/1; units "
                            f"{', '.join(map(str, both[bad][:5]))} hold other values.")
        switched_off = (d_pre == 1) & (d_post == 0)
        if switched_off.any():
            raise DataError(f"{where}: treatment must not switch off: {int(switched_off.sum())} unit(s) have "
                            f"{treatment}=1 in {periods[0]} and 0 in {periods[1]} (first: "
                            f"{', '.join(map(str, both[switched_off][:5]))}). Code the treated group as 1 in both "
                            "periods, or as 0 then 1.")
        D = d_post.astype(bool)
        if D.all() or not D.any():
            raise DataError(f"{where}: needs treated and comparison units; found {int(D.sum())} treated of "
                            f"{len(D)} units in {periods[1]}.")
        w = None
        if weights:
            w_pre, w_post = pre[weights].to_numpy(float), post[weights].to_numpy(float)
            if not np.allclose(w_pre, w_post):
                raise DataError(f"{where}: weights {weights!r} must be constant within unit.")
            if (w_pre < 0).any() or not np.isfinite(w_pre).all():
                raise DataError(f"{where}: weights {weights!r} must be finite and non-negative.")
            w = w_pre
        X = pre[covs].to_numpy(dtype=float) if covs else None
        if int((~D).sum()) < 30:
            warn(SmallComparisonWarning, f"{where}: only {int((~D).sum())} comparison units.")
        comparison = PanelComparison(D, X, w, names=tuple(covs), where=where)
        dy = post[outcome].to_numpy(dtype=float) - pre[outcome].to_numpy(dtype=float)
        est = comparison.estimate(dy, method)
        n = len(D)
        se = float(np.std(est.influence, ddof=1) / np.sqrt(n))
    table = effects_table(["ATT"], [est.att], [se], level=level)
    diagnostics = {
        "n_treated": est.n_treated,
        "n_comparison": est.n_control,
        "periods": f"{jsonable_period(periods[0])} (pre), {jsonable_period(periods[1])} (post)",
    }
    if est.ps_min is not None:
        diagnostics.update({"propensity_min_comparison": est.ps_min, "propensity_max_comparison": est.ps_max,
                            "comparison_units_trimmed": est.n_trimmed})
    return Result(
        design="drdid",
        estimand="ATT",
        effects=table,
        headline="ATT",
        inference="analytic standard error from the influence function (sd(psi)/sqrt(n)), normal critical values",
        n_obs=2 * n,
        outcome=outcome,
        level=level,
        n_units=n,
        n_treated=est.n_treated,
        settings={"method": method, "method_description": METHOD_NAMES[method], "covariates": covs,
                  "weights": weights, "panel": True, "trim_level": TRIM_LEVEL,
                  "assumption": "Conditional parallel trends: without treatment, treated and comparison units "
                                "with the same covariates would have had the same average outcome change."},
        warnings=tuple(log),
        sample_flow=flow,
        diagnostics=diagnostics,
    )


def jsonable_period(value: object) -> object:
    """A period label as a plain Python scalar."""
    return value.item() if isinstance(value, np.generic) else value
