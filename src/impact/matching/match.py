"""Matching: nearest neighbour on a propensity score or Mahalanobis distance, exact and coarsened
exact matching, with MatchIt's conventions for weights, subclasses and balance."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from impact.data import as_list, check_not_outcome, check_integer, check_level, check_option, check_seed, cluster_codes, prepare, with_unique_index
from impact.errors import (
    DataError,
    EstimationError,
    OverlapWarning,
    SampleWarning,
    SmallComparisonWarning,
    SpecError,
    recording_warnings,
    warn,
)
from impact.inference.vcov import linear_vcov
from impact.matching import _nearest
from impact.matching._design import CovariateDesign, prepare_design
from impact.matching._results import BalanceResult, LazyDiagnostics
from impact.matching.balance import balance_table
from impact.matching.propensity import ScoreModel, fit_score
from impact.results import FlowStep, effects_table

__all__ = ["Matching", "match"]

Method = Literal["nearest", "mahalanobis", "exact", "cem"]
METHODS = ("nearest", "mahalanobis", "exact", "cem")
CALIPER_SCALES = ("sd", "logit")
ORDERS = ("largest", "smallest", "random", "data")
DISCARDS = ("none", "treated", "control", "both")
ESTIMANDS = ("ATT", "ATC", "ATE")
SE_KINDS = ("cluster", "robust", "abadie_imbens")
STRATUM_METHODS = ("exact", "cem")
ConditionalVariance = Literal["sample_variance", "abadie_imbens_2006"]
CONDITIONAL_VARIANCE = ("sample_variance", "abadie_imbens_2006")
OUTCOME_MODELS = ("additive", "interacted")


@dataclass(frozen=True, kw_only=True)
class Matching:
    """A matched sample (immutable). Build it with :func:`match`.

    Attributes
    ----------
    weights : Series
        Matching weight of every row of the estimation sample (index = the user's index);
        0 = not matched or discarded.
    subclass : Series
        Matched set (pair/stratum) of every matched row, ``<NA>`` otherwise (also for
        nearest-neighbour matching with replacement, where a control can sit in several sets).
    distance : Series or None
        The score the matching used (propensity score or user score), if any.
    pairs : DataFrame or None
        Nearest neighbour only: one row per treated (focal) unit, columns ``control_1..ratio``
        holding the index labels of its matched controls.
    """

    method: str
    estimand: str
    treatment: str
    covariates: list[str]
    data: pd.DataFrame = field(repr=False)
    design: CovariateDesign = field(repr=False)
    weights: pd.Series = field(repr=False)
    subclass: pd.Series = field(repr=False)
    distance: pd.Series | None = field(default=None, repr=False)
    pairs: pd.DataFrame | None = field(default=None, repr=False)
    score_model: ScoreModel | None = field(default=None, repr=False)
    settings: dict[str, Any] = field(default_factory=dict)
    sample_flow: tuple[FlowStep, ...] = ()
    warnings: tuple[str, ...] = ()
    diagnostics: dict[str, Any] = field(default_factory=dict)
    _match_positions: np.ndarray | None = field(default=None, repr=False)
    _match_metric: np.ndarray | None = field(default=None, repr=False)

    # -- the matched sample -----------------------------------------------------------------
    @property
    def n_matched(self) -> dict[str, int]:
        t = self.design.treated == 1
        w = self.weights.to_numpy() > 0
        return {"treated": int((w & t).sum()), "control": int((w & ~t).sum())}

    @property
    def matched_data(self) -> pd.DataFrame:
        """The matched rows of the user's data with ``weights`` and ``subclass`` columns added
        (a new frame; as MatchIt's ``match.data``)."""
        keep = self.weights.to_numpy() > 0
        idx = self.weights.index[keep]
        out = self.data.loc[idx].copy()
        out["weights"] = self.weights.loc[idx].to_numpy()
        out["subclass"] = self.subclass.loc[idx].to_numpy()
        if self.distance is not None:
            out["distance"] = self.distance.loc[idx].to_numpy()
        return out

    def balance(self) -> pd.DataFrame:
        """Balance before and after matching (see :mod:`impact.matching.balance`).

        Rows: the score (``distance``) if one was used, then every covariate (all levels of a
        categorical covariate). SMDs are standardised by the treated group's SD in the full sample
        for the ATT (MatchIt's default).
        """
        X, names = self.design.balance, list(self.design.balance_names)
        if self.distance is not None:
            X = np.column_stack([self.distance.to_numpy(), X])
            names = ["distance", *names]
        return balance_table(X, names, self.design.treated, self.weights.to_numpy(), estimand=self.estimand)

    def summary(self) -> str:
        n = self.n_matched
        t = self.design.treated == 1
        lines = [
            f"Matching ({self.method}), estimand {self.estimand}",
            f"Treated: {int(t.sum())} ({n['treated']} matched)   Controls: {int((~t).sum())} ({n['control']} matched)",
            "",
            self.balance().loc[:, ["covariate", "smd_before", "smd_after", "var_ratio_before", "var_ratio_after"]]
            .to_string(index=False, float_format=lambda v: f"{v:.3f}"),
        ]
        if self.warnings:
            lines += ["", "Warnings:"] + [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # -- the effect -------------------------------------------------------------------------
    @property
    def default_se(self) -> str:
        """The standard error :meth:`effect` uses when ``se`` is not given, after the peer that
        recommends it for this design (see :meth:`effect`)."""
        if self.method in STRATUM_METHODS:
            return "robust"
        if self.settings.get("replace", False):
            return "abadie_imbens"
        return "cluster"

    def effect(
        self,
        outcome: str | None = None,
        *,
        se: Literal["cluster", "robust", "abadie_imbens"] | None = None,
        covariates: str | list[str] | None = None,
        bias_adjust: bool = False,
        n_variance_matches: int = 2,
        conditional_variance: ConditionalVariance = "sample_variance",
        outcome_model: Literal["additive", "interacted"] = "additive",
        level: float = 0.95,
    ) -> BalanceResult:
        """Effect of treatment on ``outcome`` in the matched sample.

        Parameters
        ----------
        outcome : str, optional
            Outcome column of the data passed to :func:`match` (default: the ``outcome`` given
            there).
        se : {"cluster", "robust", "abadie_imbens"}, optional
            Default (None): the convention of the peer that recommends one for the design
            (:attr:`default_se`):

            - exact and coarsened exact matching (strata): ``"robust"``, the HC3
              heteroskedasticity-robust SE of the weighted regression of the outcome on treatment,
              as MatchIt's vignette "Estimating Effects After Matching" recommends for stratum
              designs (``marginaleffects::avg_comparisons(fit, vcov = "HC3")``; equal to
              ``sandwich::vcovHC(lm(y ~ treat, weights = weights), type = "HC3")``). Strata are not
              clusters there: a few large strata make clustered SEs unreliable.
            - nearest-neighbour matching without replacement (pairs or k:1 sets): ``"cluster"``,
              CR1 clustered on matched sets, the vignette's ``vcov = ~subclass`` for pair matching.
            - nearest-neighbour matching with replacement: ``"abadie_imbens"``, the Abadie-Imbens
              (2006) matching variance (R ``Matching``, Stata ``teffects``).

            Any other applicable choice may be named: ``"cluster"`` (CR1 on matched sets; needs every
            matched unit in one set), ``"robust"`` (HC3), ``"abadie_imbens"`` (nearest neighbour
            with replacement only).
        covariates : list of str, optional
            Covariates added to the regression for precision ("regression on the matched
            sample"); not with ``"abadie_imbens"``.
        outcome_model : {"additive", "interacted"}
            With ``covariates``: ``"additive"`` (default) regresses the outcome on treatment and
            the covariates; ``"interacted"`` adds treatment x covariate terms and reports the
            g-computation contrast over the target units (treated for the ATT, comparison units
            for the ATC, all for the ATE), with its delta-method SE, as the vignette's
            ``lm(Y ~ A * (X), weights)`` followed by ``avg_comparisons(..., newdata = target,
            wts = "weights")``.
        bias_adjust : bool
            Abadie-Imbens (2011) regression bias adjustment (``"abadie_imbens"`` only), with the
            score-model covariates, as Stata ``teffects nnmatch ..., biasadj()``.
        n_variance_matches : int
            Same-group matches J used to estimate the conditional variance in the Abadie-Imbens SE
            (J = 2 as Stata's ``vce(robust, nn(2))`` default).
        conditional_variance : {"sample_variance", "abadie_imbens_2006"}
            How each comparison unit's conditional variance is estimated from itself and its J
            nearest same-group units (the two agree for J = 1). ``"sample_variance"`` (default):
            the sample variance of those J + 1 outcomes (denominator J), the convention of R
            ``Matching`` (``Match(..., Var.calc = J)``) and Stata ``teffects nnmatch ...,
            vce(robust, nn(J))``, the most-used implementations. ``"abadie_imbens_2006"``:
            ``J/(J+1) (Y_j - mean of its J neighbours)^2``, eq. (14) of Abadie & Imbens (2006).

        Notes
        -----
        With weights w (treated 1, a control matched to k_i of treated unit i's slots gets the sum
        of 1/k_i, rescaled), the estimate is the weighted difference in means
        sum_t w y / sum_t w - sum_c w y / sum_c w, the ATT on the matched treated units.

        For ``"abadie_imbens"`` (ATT, M matches per treated unit, K_j = times control j is used):
        V = N_1^-2 [sum_{treated} (Y_i - Yhat_i(0) - tau)^2 + sum_{controls} K_j (K_j - 1) / M^2
        sigma_j^2] (Abadie & Imbens 2006, Theorem 7), with sigma_j^2 the sample variance of Y_j and
        its J nearest same-group outcomes, (1/J) sum_{m in {j} + N_J(j)} (Y_m - mean)^2 (R Matching,
        Stata teffects), or J/(J+1) (Y_j - mean of its J nearest controls)^2 (Abadie & Imbens 2006,
        eq. 14; ``conditional_variance="abadie_imbens_2006"``). The extra variance from estimating
        the propensity score (Abadie & Imbens 2016) is not included.

        References
        ----------
        Abadie, A. and Imbens, G. W. (2006). Large sample properties of matching estimators for
        average treatment effects. Econometrica 74(1), 235-267. doi:10.1111/j.1468-0262.2006.00655.x
        Abadie, A. and Imbens, G. W. (2011). Bias-corrected matching estimators for average
        treatment effects. JBES 29(1), 1-11. doi:10.1198/jbes.2009.07333
        Ho, Imai, King and Stuart (2011). MatchIt: nonparametric preprocessing for parametric causal
        inference. JSS 42(8). doi:10.18637/jss.v042.i08
        """
        where = "Matching.effect"
        level = check_level(level, where)
        n_variance_matches = check_integer("n_variance_matches", n_variance_matches, where, minimum=1)
        if outcome is None:
            outcome = self.settings.get("outcome")
            if outcome is None:
                raise SpecError(f"{where}: name the outcome column, e.g. .effect(outcome='earnings').")
        replace = bool(self.settings.get("replace", False))
        if se is None:
            se = self.default_se
        check_option("se", se, SE_KINDS)
        check_option("conditional_variance", conditional_variance, CONDITIONAL_VARIANCE)
        check_option("outcome_model", outcome_model, OUTCOME_MODELS)
        extra = as_list(covariates)
        if se == "abadie_imbens":
            if self.method not in ("nearest", "mahalanobis") or not replace:
                raise SpecError(
                    f"{where}: se='abadie_imbens' is for nearest-neighbour matching with replacement "
                    "(replace=True); use se='cluster' for matching without replacement or strata."
                )
            if extra:
                raise SpecError(f"{where}: covariates= is not used with se='abadie_imbens'; use bias_adjust=True.")
        elif bias_adjust:
            raise SpecError(f"{where}: bias_adjust=True needs se='abadie_imbens'.")
        if se == "cluster" and self.subclass.isna().loc[self.weights > 0].any():
            raise SpecError(
                f"{where}: se='cluster' needs every matched unit in one matched set, which is not the case "
                "with matching with replacement; use se='abadie_imbens' or se='robust'."
            )
        with recording_warnings() as log:
            if outcome in self.covariates or outcome == self.treatment:
                raise SpecError(f"{where}: the outcome {outcome!r} is also the treatment or a covariate.")
            rows = self.weights.index[self.weights.to_numpy() > 0]
            prepared = prepare(
                self.data.loc[rows], where=where, roles={"outcome": outcome, "covariates": extra},
                numeric=[outcome, *extra], missing="drop",
            )
            for cov in self.covariates:  # matching on the outcome itself makes the effect meaningless
                x = self.data.loc[prepared.frame.index, cov]
                if pd.api.types.is_numeric_dtype(x):
                    check_not_outcome(x.to_numpy(dtype=float), prepared.frame[outcome].to_numpy(dtype=float),
                                      covariate=cov, outcome=outcome, where=where)
            frame = prepared.frame
            y = frame[outcome].to_numpy(dtype=float)
            w = self.weights.loc[frame.index].to_numpy()
            d = (self.design.treated[self.weights.index.get_indexer(frame.index)] == 1).astype(float)
            if not d.any() or d.all():
                raise DataError(f"{where}: after dropping rows with a missing outcome, a group is empty.")
            n_clusters = None
            if se == "abadie_imbens":
                estimate, std_error, info = self._abadie_imbens(outcome, bias_adjust, n_variance_matches, conditional_variance)
                dof = math.inf
                convention = ("sample variance of each unit and its neighbours, as R Matching and Stata teffects"
                              if conditional_variance == "sample_variance" else "Abadie-Imbens 2006 eq. 14")
                inference = (
                    f"Abadie-Imbens (2006) matching variance, {n_variance_matches} same-group matches for "
                    f"the conditional variance ({convention})" + (", bias-adjusted (Abadie-Imbens 2011)" if bias_adjust else "")
                    + "; normal reference distribution"
                )
                n_obs = int(info["n_obs"])
            else:
                X = _outcome_design(y, d, w, [frame[c].to_numpy(dtype=float) for c in extra], self.estimand, outcome_model)
                sw = np.sqrt(w)
                coef, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
                resid = y - X @ coef
                if se == "cluster":
                    # matched sets as clusters; few sets (e.g. exact-matching strata) are warned about
                    codes, G = cluster_codes(self.subclass.loc[frame.index].to_numpy(dtype=np.int64), where=where,
                                             treated=d, name="matched sets")
                    cov = linear_vcov(X, resid, kind="cluster", weights=w, clusters=codes, n_clusters=G, where=where)
                    n_clusters = G
                    inference = f"{cov.description}, clustered on matched sets (MatchIt practice)"
                else:
                    cov = linear_vcov(X, resid, kind="HC3", weights=w, where=where)
                    inference = (f"{cov.description}, weighted regression on the matched sample "
                                 "(MatchIt 'Estimating Effects After Matching': vcov = \"HC3\")")
                estimate, std_error = float(coef[1]), float(cov.std_errors[1])
                dof = float(cov.df[1])
                n_obs = len(y)
            effects = effects_table([self.estimand], [estimate], [std_error], df=dof, level=level)
        scores = None
        if self.distance is not None:
            scores = pd.DataFrame({"score": self.distance.to_numpy(), "treated": self.design.treated.astype(int)})
        n = self.n_matched

        def balance_entries() -> dict:
            bal = self.balance()
            return {"balance": bal,
                    "max_abs_smd_before": float(np.nanmax(np.abs(bal["smd_before"]))),
                    "max_abs_smd_after": float(np.nanmax(np.abs(bal["smd_after"])))}

        # the balance table is computed when a report or the user first asks for it
        diagnostics = LazyDiagnostics(
            {**self.diagnostics, "n_matched_treated": n["treated"], "n_matched_control": n["control"]},
            balance_entries, ("max_abs_smd_before", "max_abs_smd_after", "balance"),
        )
        return BalanceResult(
            design=f"match ({self.method})",
            estimand=self.estimand,
            effects=effects,
            headline=self.estimand,
            inference=inference,
            n_obs=n_obs,
            outcome=outcome,
            level=level,
            n_units=n_obs,
            n_treated=int(d.sum()),
            n_clusters=n_clusters,
            settings={**self.settings, "se": se, "bias_adjust": bias_adjust, "regression_covariates": extra,
                      "outcome_model": outcome_model if extra else None,
                      "assumption": "no unmeasured confounding given the covariates (selection on observables) "
                      "and overlap of treated and comparison units"},
            warnings=tuple(self.warnings) + tuple(log),
            sample_flow=tuple(self.sample_flow) + tuple(prepared.flow[1:]),
            diagnostics=diagnostics,
            scores=scores,
        )

    def _abadie_imbens(self, outcome: str, bias_adjust: bool, J: int, convention: str = "sample_variance") -> tuple[float, float, dict]:
        """Abadie-Imbens ATT and variance from the stored matches (focal group = treated)."""
        where = "Matching.effect"
        idx = self.weights.index
        yall = pd.to_numeric(self.data.loc[idx, outcome], errors="coerce").to_numpy(dtype=float)
        t = self.design.treated == 1
        if self.estimand == "ATC":
            t = ~t
        focal = np.flatnonzero(t)
        other = np.flatnonzero(~t)
        pairs = self._match_positions  # (n_focal, M) positions into `other`, -1 none
        matched = (pairs >= 0).all(axis=1)
        bad = ~np.isfinite(yall)
        if bad[focal[matched]].any() or bad[other].any():
            rows = ", ".join(map(str, idx[bad][:5]))
            raise DataError(f"{where}: the outcome {outcome!r} has missing or infinite values (rows {rows}); the "
                            "Abadie-Imbens variance needs it for every unit. Fix those values or drop those units before match().")
        pairs = pairs[matched]
        M = pairs.shape[1]
        yf = yall[focal[matched]]
        yo = yall[other]
        y0hat = yo[pairs].mean(axis=1)
        if bias_adjust:
            Xo = self.design.model[other]
            Xf = self.design.model[focal[matched]]
            K = np.bincount(pairs.ravel(), minlength=len(other)).astype(float)
            used = K > 0
            A = np.column_stack([np.ones(used.sum()), Xo[used]])
            sw = np.sqrt(K[used])
            beta = np.linalg.lstsq(A * sw[:, None], yo[used] * sw, rcond=None)[0]
            mu_f = np.column_stack([np.ones(len(Xf)), Xf]) @ beta
            mu_o = np.column_stack([np.ones(len(Xo)), Xo]) @ beta
            y0hat = y0hat + mu_f - mu_o[pairs].mean(axis=1)
        diff = yf - y0hat
        tau = float(diff.mean())
        if self.estimand == "ATC":
            tau, diff = -tau, -diff
        K = np.bincount(pairs.ravel(), minlength=len(other)).astype(float)
        # conditional variance of the comparison units: J nearest units of the same group
        metric = self._match_metric[other].reshape(len(other), -1)
        need = np.flatnonzero(K > 1)
        sigma2 = np.zeros(len(other))
        if need.size:
            # J nearest other comparison units, ties to the unit first in the data (as the matches)
            k = min(J + 1, len(other))
            nb, _ = _nearest.candidate_lists(metric[need], metric, k)
            self_col = nb == need[:, None]
            keep = np.where(self_col.any(axis=1)[:, None], ~self_col, np.arange(k)[None, :] < k - 1)
            nb = nb[keep].reshape(len(need), k - 1)
            Jn = nb.shape[1]
            if convention == "sample_variance":
                group = np.column_stack([yo[need], yo[nb]])  # the unit and its Jn neighbours
                sigma2[need] = group.var(axis=1, ddof=1)
            else:
                sigma2[need] = Jn / (Jn + 1) * (yo[need] - yo[nb].mean(axis=1)) ** 2
        n1 = len(diff)
        var = (np.sum((diff - (tau if self.estimand != "ATC" else tau)) ** 2) + np.sum(K * (K - 1) / M**2 * sigma2)) / n1**2
        return tau, float(np.sqrt(var)), {"n_obs": n1 + int((K > 0).sum())}


def _outcome_design(y: np.ndarray, d: np.ndarray, w: np.ndarray, covariates: list[np.ndarray], estimand: str,
                    outcome_model: str) -> np.ndarray:
    """[1, d, covariates (, d x covariates)] for the weighted outcome regression.

    Additive: covariates centred at their weighted mean over the matched sample. Interacted: centred
    at their weighted mean over the target units (treated for the ATT, comparison units for the
    ATC, all matched units for the ATE), so that the coefficient on ``d`` is the g-computation
    contrast mean_target[yhat(1) - yhat(0)] and its SE the delta-method SE of that contrast (as
    ``marginaleffects::avg_comparisons(fit, variables = "treat", newdata = target, wts = "weights")``).
    """
    if outcome_model == "additive" or not covariates:
        centred = [x - np.average(x, weights=w) for x in covariates]
        return np.column_stack([np.ones_like(y), d, *centred])
    target = d == 1 if estimand == "ATT" else (d == 0 if estimand == "ATC" else np.ones(len(d), dtype=bool))
    centred = [x - np.average(x[target], weights=w[target]) for x in covariates]
    return np.column_stack([np.ones_like(y), d, *centred, *[d * x for x in centred]])


def _order(score: np.ndarray | None, n: int, m_order: str, seed: int | None) -> np.ndarray:
    pos = np.arange(n)
    if m_order == "data" or score is None:
        return pos
    if m_order == "random":
        return np.random.default_rng(seed).permutation(n)
    if m_order == "largest":
        return np.lexsort((pos, -score))
    return np.lexsort((pos, score))


def _nn_weights(pairs: np.ndarray, n_focal: int, n_other: int) -> tuple[np.ndarray, np.ndarray]:
    """MatchIt weights for nearest neighbour: focal 1 if matched; other units sum 1/k over the
    sets they are in, rescaled to sum to the number of matched other units."""
    k = (pairs >= 0).sum(axis=1)
    wf = (k > 0).astype(float)
    valid = pairs >= 0
    rows = np.broadcast_to(np.arange(n_focal)[:, None], pairs.shape)[valid]
    wo = np.bincount(pairs[valid], weights=1.0 / k[rows], minlength=n_other)
    used = wo > 0
    if used.any():
        wo *= used.sum() / wo.sum()
    return wf, wo


def _coarsen(x: np.ndarray, cut: Any, name: str, where: str) -> np.ndarray:
    """Bin index of ``x`` (R findInterval, left-closed): ``cut`` = number of equal-width bins
    between min and max (outer breaks at +-inf) or a list of interior cut points."""
    if isinstance(cut, int | np.integer) and not isinstance(cut, bool):
        if cut < 1:
            raise SpecError(f"{where}: cutpoints[{name!r}] must be a positive number of bins, got {cut}.")
        lo, hi = float(x.min()), float(x.max())
        by = (hi - lo) / cut
        interior = lo + by * np.arange(1, cut)
    else:
        try:
            interior = np.unique(np.asarray(cut, dtype=float))
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{where}: cutpoints[{name!r}] must be a number of bins or a list of cut points.") from exc
    return np.searchsorted(interior, x, side="right")


def match(
    df: pd.DataFrame,
    *,
    treatment: str,
    covariates: str | list[str],
    method: Method = "nearest",
    distance: str = "logit",
    ratio: int = 1,
    replace: bool = False,
    caliper: float | None = None,
    caliper_scale: Literal["sd", "logit"] = "sd",
    m_order: Literal["largest", "smallest", "random", "data"] | None = None,
    exact: str | list[str] | None = None,
    discard: Literal["none", "treated", "control", "both"] = "none",
    cutpoints: dict[str, int | list[float]] | None = None,
    estimand: Literal["ATT", "ATC", "ATE"] = "ATT",
    seed: int | None = None,
    outcome: str | None = None,
) -> Matching:
    """Match treated and comparison units on covariates.

    Parameters
    ----------
    df : DataFrame
        One row per unit (firm, region); never modified.
    treatment : str
        0/1 treatment column.
    covariates : list of str
        Matching covariates. Text or categorical columns are dummy coded (reference level: the
        first category, or the first in sorted order), all levels shown in balance tables.
    method : {"nearest", "mahalanobis", "exact", "cem"}
        Greedy nearest neighbour on a score; greedy nearest neighbour in Mahalanobis distance (on the
        pooled within-group covariance of the covariates); exact matching on all covariate values;
        coarsened exact matching.
    distance : {"logit", "probit"} or str
        Score for ``method="nearest"``: a logit or probit propensity score estimated on
        ``covariates``, or the name of a column holding a score of the user's.
    ratio : int
        Controls per treated unit (k:1).
    replace : bool
        Whether a control may be matched to several treated units.
    caliper : float, optional
        Largest allowed score distance, in standard deviations of the score over all units
        (MatchIt's convention). Treated units without a control inside the caliper stay unmatched.
    caliper_scale : {"sd", "logit"}
        ``"sd"``: match on the score, caliper x SD(score). ``"logit"``: match on the logit of the
        propensity score and use caliper x SD(logit score) (Austin 2011 recommends 0.2).
    m_order : {"largest", "smallest", "random", "data"}, optional
        Order in which treated units choose (greedy, without replacement). Default: "largest"
        score first for score matching (MatchIt), data order for Mahalanobis.
    exact : list of str, optional
        Columns on which matches must agree exactly (nearest/mahalanobis: matching runs within each
        cell).
    discard : {"none", "treated", "control", "both"}
        Drop units outside the common support of the propensity score before matching (MatchIt):
        treated units outside the control range, controls outside the treated range, or both.
    cutpoints : dict, optional
        CEM: column -> number of equal-width bins or a list of cut points. Default: Sturges' rule
        (ceil(log2(n) + 1) bins from min to max), MatchIt's default. Categorical covariates are
        always matched exactly.
    estimand : {"ATT", "ATC", "ATE"}
        ATE only for exact and CEM matching.
    seed : int, optional
        Seed for ``m_order="random"``.
    outcome : str, optional
        Outcome column for :meth:`Matching.effect` when it is called without one (programme specs
        pass the outcome to every design). It plays no part in matching.

    Returns
    -------
    Matching
        The matched sample with ``.balance()``, ``.effect(outcome=)`` and ``.matched_data``.

    Notes
    -----
    Greedy matching: treated units are taken in ``m_order``; each takes the nearest available
    control (every treated unit gets its first match before any gets its second). Ties between
    controls at the same distance go to the control that comes first in the data.

    Weights (ATT), as MatchIt: matched treated 1; a control gets sum over its matched sets of
    1/(number of controls in the set), rescaled to sum to the number of matched controls. Exact
    and CEM: a control in stratum s gets (n_t,s / n_c,s) (N_c / N_t) over matched units.

    References
    ----------
    Ho, D., Imai, K., King, G. and Stuart, E. A. (2011). MatchIt: nonparametric preprocessing for
    parametric causal inference. Journal of Statistical Software 42(8). doi:10.18637/jss.v042.i08
    Iacus, S. M., King, G. and Porro, G. (2012). Causal inference without balance checking:
    coarsened exact matching. Political Analysis 20(1), 1-24. doi:10.1093/pan/mpr013
    Austin, P. C. (2011). Optimal caliper widths for propensity-score matching. Pharmaceutical
    Statistics 10(2), 150-161. doi:10.1002/pst.433

    Examples
    --------
    >>> import impact as im
    >>> lalonde = im.datasets.load("lalonde")
    >>> m = im.matching.match(lalonde, treatment="treat",
    ...     covariates=["age", "educ", "race", "married", "nodegree", "re74", "re75"])
    >>> m.effect(outcome="re78").estimate  # doctest: +SKIP
    """
    where = "match"
    df = with_unique_index(df)
    seed = check_seed(seed, where)
    check_option("method", method, METHODS)
    check_option("caliper_scale", caliper_scale, CALIPER_SCALES)
    check_option("discard", discard, DISCARDS)
    check_option("estimand", estimand, ESTIMANDS)
    if m_order is not None:
        check_option("m_order", m_order, ORDERS)
    if not isinstance(ratio, int | np.integer) or isinstance(ratio, bool) or ratio < 1:
        raise SpecError(f"{where}: ratio must be a positive integer, got {ratio!r}.")
    if caliper is not None and (not np.isfinite(caliper) or caliper <= 0):
        raise SpecError(f"{where}: caliper must be a positive number of standard deviations, got {caliper!r}.")
    if method in ("nearest", "mahalanobis") and estimand == "ATE":
        raise SpecError(
            f"{where}: estimand='ATE' is available for exact and CEM matching; nearest-neighbour matching "
            "estimates the ATT (or ATC). For the ATE use ipw() or aipw()."
        )
    if method == "mahalanobis" and caliper is not None:
        raise SpecError(f"{where}: caliper= applies to score matching (method='nearest'), not to Mahalanobis matching.")
    if method in ("exact", "cem") and (caliper is not None or replace or ratio != 1):
        raise SpecError(f"{where}: caliper, replace and ratio apply to nearest-neighbour matching, not method={method!r}.")
    if cutpoints is not None and method != "cem":
        raise SpecError(f"{where}: cutpoints= is for method='cem'.")
    covs = as_list(covariates)
    exact_cols = as_list(exact)
    if outcome is not None:
        if not isinstance(df, pd.DataFrame) or outcome not in df.columns:
            raise DataError(f"{where}: outcome column {outcome!r} not found in the data.")
        if outcome in covs or outcome == treatment:
            raise SpecError(f"{where}: the outcome {outcome!r} cannot also be the treatment or a covariate.")
    user_score = distance not in ("logit", "probit")
    score_col = distance if (user_score and method == "nearest") else None
    extra_numeric = [score_col] if score_col else []

    with recording_warnings() as log:
        design = prepare_design(
            df, where=where, treatment=treatment, covariates=covs,
            extra={"distance": score_col, "exact": exact_cols or None}, numeric_extra=extra_numeric,
            # score models check collinearity themselves (cheaply, on the information matrix)
            check_collinear=method == "mahalanobis",
        )
        frame = design.prepared.frame
        n = len(frame)
        treated = design.treated == 1
        flow = list(design.prepared.flow)
        settings: dict[str, Any] = {
            "method": method, "distance": distance if method == "nearest" else None, "ratio": int(ratio),
            "replace": bool(replace), "caliper": caliper, "caliper_scale": caliper_scale,
            "exact": exact_cols, "discard": discard, "estimand": estimand, "seed": seed,
            "covariates": covs, "treatment": treatment, "outcome": outcome,
        }
        diagnostics: dict[str, Any] = {}

        # -- score ---------------------------------------------------------------------------
        score_model = None
        score = None
        if method == "nearest" or discard != "none":
            if score_col:
                score = frame[score_col].to_numpy(dtype=float)
            else:
                link = distance if distance in ("logit", "probit") else "logit"
                score_model = fit_score(design.model, design.treated, design.model_names, link=link, where=where)
                score = score_model.score
                diagnostics["score_model"] = {"link": score_model.link, "converged": score_model.converged,
                                              "iterations": score_model.iterations,
                                              "coefficients": dict(zip(score_model.names, score_model.coef.tolist()))}
        keep = np.ones(n, dtype=bool)
        if discard != "none":
            lo_t, hi_t = score[treated].min(), score[treated].max()
            lo_c, hi_c = score[~treated].min(), score[~treated].max()
            drop = np.zeros(n, dtype=bool)
            if discard in ("treated", "both"):
                drop |= treated & ((score < lo_c) | (score > hi_c))
            if discard in ("control", "both"):
                drop |= ~treated & ((score < lo_t) | (score > hi_t))
            keep &= ~drop
            n_dt, n_dc = int((drop & treated).sum()), int((drop & ~treated).sum())
            flow.append(FlowStep("common support", int(keep.sum()), None,
                                 f"discard={discard!r}: dropped {n_dt} treated and {n_dc} comparison unit(s) outside the "
                                 "other group's propensity-score range"))
            if n_dt + n_dc:
                warn(SampleWarning, f"{where}: discarded {n_dt} treated and {n_dc} comparison unit(s) outside common support.")
            if not (keep & treated).any() or not (keep & ~treated).any():
                raise EstimationError(f"{where}: no overlap: after discard={discard!r} a group is empty.")
            diagnostics["discarded"] = {"treated": n_dt, "control": n_dc}
        if score is not None and not user_score:
            _overlap_check(score, treated, where)

        weights = np.zeros(n)
        subclass = np.full(n, -1, dtype=np.int64)
        pairs_out = None
        match_positions = None
        metric = None

        # -- nearest neighbour -----------------------------------------------------------------
        if method in ("nearest", "mahalanobis"):
            focal_mask = treated if estimand == "ATT" else ~treated
            metric_score = None
            if method == "nearest":
                metric_score = score
                if caliper_scale == "logit":
                    if np.any((score <= 0) | (score >= 1)):
                        raise SpecError(f"{where}: caliper_scale='logit' needs scores strictly between 0 and 1.")
                    metric_score = special.logit(score)
                width = math.inf if caliper is None else caliper * float(np.std(metric_score[keep], ddof=1))
                settings["caliper_width"] = None if caliper is None else width
                metric = metric_score
            else:
                Xm = design.model
                cov = _pooled_cov(Xm[keep], treated[keep])
                try:
                    root = np.linalg.cholesky(np.linalg.inv(cov))
                except np.linalg.LinAlgError as exc:
                    raise EstimationError(f"{where}: the covariance matrix of the covariates is singular; drop collinear covariates.") from exc
                metric = Xm @ root
            order_kind = m_order or ("largest" if method == "nearest" else "data")
            settings["m_order"] = order_kind
            # cells for exact= constraints
            if exact_cols:
                cells = frame[exact_cols].astype(str).agg("\x1f".join, axis=1).to_numpy()
                cell_codes = pd.factorize(cells)[0]
            else:
                cell_codes = np.zeros(n, dtype=np.int64)
            focal_all = np.flatnonzero(focal_mask & keep)
            other_all = np.flatnonzero(~focal_mask & keep)
            pairs = -np.ones((len(focal_all), ratio), dtype=np.int64)
            for cell in np.unique(cell_codes[focal_all]):
                fsel = np.flatnonzero(cell_codes[focal_all] == cell)
                osel = np.flatnonzero(cell_codes[other_all] == cell)
                if osel.size == 0:
                    continue
                f_idx, o_idx = focal_all[fsel], other_all[osel]
                if method == "nearest":
                    order_t = _order(score[f_idx], len(f_idx), order_kind, seed)
                    if replace:
                        p = _nearest.nearest_score_with_replacement(metric[f_idx], metric[o_idx], ratio=ratio, caliper=width)
                    else:
                        p = _nearest.greedy_score(metric[f_idx], metric[o_idx], order_t, ratio=ratio, caliper=width)
                else:
                    order_t = _order(None, len(f_idx), order_kind, seed)
                    if replace:
                        p, _ = _nearest.candidate_lists(metric[f_idx], metric[o_idx], ratio)
                        if p.shape[1] < ratio:
                            p = np.pad(p, ((0, 0), (0, ratio - p.shape[1])), constant_values=-1)
                    else:
                        p = _nearest.greedy_vectors(metric[f_idx], metric[o_idx], order_t, ratio=ratio)
                # map positions within the cell to positions within other_all
                pairs[fsel] = np.where(p >= 0, osel[np.clip(p, 0, None)], -1)
            n_unmatched = int((pairs[:, 0] < 0).sum())
            if n_unmatched == len(focal_all):
                raise EstimationError(
                    f"{where}: no {'treated' if estimand == 'ATT' else 'comparison'} unit found a match"
                    + (f" within the caliper ({caliper} SD = {width:.4g} on the score)" if caliper is not None else "")
                    + ". Widen the caliper, drop exact= constraints, or check overlap."
                )
            if n_unmatched:
                reason = "within the caliper" if caliper is not None else "(no control left)"
                warn(SampleWarning, f"{where}: {n_unmatched} of {len(focal_all)} {'treated' if estimand == 'ATT' else 'comparison'} unit(s) have no match {reason} and are dropped; the estimand becomes the effect on the matched units.")
            wf, wo = _nn_weights(pairs, len(focal_all), len(other_all))
            weights[focal_all] = wf
            weights[other_all] = wo
            if not replace:
                matched_rows = np.flatnonzero(pairs[:, 0] >= 0)
                subclass[focal_all[matched_rows]] = np.arange(len(matched_rows))
                valid = pairs[matched_rows] >= 0
                sub_ids = np.broadcast_to(np.arange(len(matched_rows))[:, None], valid.shape)[valid]
                subclass[other_all[pairs[matched_rows][valid]]] = sub_ids
            labels = frame.index.to_numpy()
            other_labels = labels[other_all]
            pairs_out = pd.DataFrame(
                {f"control_{j + 1}": pd.Series(other_labels[np.clip(pairs[:, j], 0, None)], dtype=object).where(pairs[:, j] >= 0, None).to_numpy()
                 for j in range(ratio)},
                index=frame.index[focal_all],
            )
            # positions into the focal/other arrays of the whole sample for the Abadie-Imbens SE
            if replace:
                other_pos_all = np.flatnonzero(~focal_mask)
                remap = -np.ones(n, dtype=np.int64)
                remap[other_pos_all] = np.arange(len(other_pos_all))
                focal_pos_all = np.flatnonzero(focal_mask)
                full = -np.ones((len(focal_pos_all), ratio), dtype=np.int64)
                fmap = -np.ones(n, dtype=np.int64)
                fmap[focal_pos_all] = np.arange(len(focal_pos_all))
                full[fmap[focal_all]] = np.where(pairs >= 0, remap[other_all[np.clip(pairs, 0, None)]], -1)
                match_positions = full
            if len(other_all) < ratio * len(focal_all) and not replace:
                warn(SmallComparisonWarning, f"{where}: {len(other_all)} comparison units for {len(focal_all)} focal units at ratio {ratio}: some cannot be matched without replacement.")
            diagnostics["n_unmatched_focal"] = n_unmatched

        # -- exact and coarsened exact ---------------------------------------------------------
        else:
            cols = covs + [c for c in exact_cols if c not in covs]
            keys = []
            bins_used: dict[str, Any] = {}
            sturges = int(math.ceil(math.log2(n) + 1))
            for col in cols:
                if method == "exact" or col in design.categorical or col in exact_cols:
                    keys.append(pd.factorize(frame[col])[0])
                else:
                    x = frame[col].to_numpy(dtype=float)
                    cut = (cutpoints or {}).get(col, sturges)
                    keys.append(_coarsen(x, cut, col, where))
                    bins_used[col] = cut if isinstance(cut, int) else list(map(float, cut))
            if cutpoints:
                unknown = sorted(set(cutpoints) - set(covs))
                if unknown:
                    raise SpecError(f"{where}: cutpoints given for {unknown}, which are not covariates.")
            strata = pd.factorize(pd.MultiIndex.from_arrays(keys))[0] if len(keys) > 1 else pd.factorize(keys[0])[0]
            strata = np.where(keep, strata, -1)
            n_s = strata.max() + 1
            valid = strata >= 0
            nt = np.bincount(strata[valid & treated], minlength=n_s)
            nc = np.bincount(strata[valid & ~treated], minlength=n_s)
            both = (nt > 0) & (nc > 0)
            in_matched = valid & both[np.clip(strata, 0, None)]
            if not in_matched.any():
                raise EstimationError(f"{where}: no stratum holds both treated and comparison units; coarsen more (cutpoints=) or use fewer covariates.")
            if estimand == "ATE":
                lonely_t = int((treated & keep & ~in_matched).sum())
                lonely_c = int((~treated & keep & ~in_matched).sum())
                if lonely_t or lonely_c:
                    raise EstimationError(
                        f"{where}: estimand='ATE' needs treated and comparison units in every stratum, but "
                        f"{lonely_t} treated and {lonely_c} comparison unit(s) sit in {int(((nt > 0) ^ (nc > 0)).sum())} "
                        "strata without the other group, so their effect cannot be estimated and dropping them "
                        "would change the estimand. Use estimand='ATT' (or 'ATC'), coarsen the covariates "
                        "(cutpoints=), or restrict the sample to units with comparable units before matching."
                    )
            s = strata[in_matched]
            ids = pd.factorize(s, sort=True)[0]
            subclass[in_matched] = ids
            Nt, Nc = int((in_matched & treated).sum()), int((in_matched & ~treated).sum())
            mt, mc = in_matched & treated, in_matched & ~treated
            st, sc = strata[mt], strata[mc]
            if estimand == "ATT":
                weights[mt] = 1.0
                weights[mc] = nt[sc] / nc[sc] * Nc / Nt
            elif estimand == "ATC":
                weights[mc] = 1.0
                weights[mt] = nc[st] / nt[st] * Nt / Nc
            else:
                tot = nt + nc
                w_t = tot[st] / nt[st]
                w_c = tot[sc] / nc[sc]
                weights[mt] = w_t * Nt / w_t.sum()
                weights[mc] = w_c * Nc / w_c.sum()
            n_ut, n_uc = int((treated & ~in_matched & keep).sum()), int((~treated & ~in_matched & keep).sum())
            if n_ut:
                warn(SampleWarning, f"{where}: {n_ut} treated unit(s) fall in strata without comparison units and are dropped; the estimand becomes the effect on the matched treated units.")
            diagnostics.update({"n_strata": int(len(np.unique(ids))), "unmatched_treated": n_ut, "unmatched_control": n_uc})
            if method == "cem":
                diagnostics["cutpoints"] = bins_used
                settings["cutpoints"] = bins_used

        n_t_m, n_c_m = int(((weights > 0) & treated).sum()), int(((weights > 0) & ~treated).sum())
        flow.append(FlowStep("matched", n_t_m + n_c_m, None, f"{n_t_m} treated and {n_c_m} comparison unit(s) matched"))
    index = frame.index
    return Matching(
        method=method,
        estimand=estimand,
        treatment=treatment,
        covariates=covs,
        data=df,
        design=design,
        weights=pd.Series(weights, index=index, name="weights"),
        subclass=pd.Series(pd.array(np.where(subclass >= 0, subclass, pd.NA), dtype="Int64"), index=index, name="subclass"),
        distance=None if score is None else pd.Series(score, index=index, name="distance"),
        pairs=pairs_out,
        score_model=score_model,
        settings=settings,
        sample_flow=tuple(flow),
        warnings=tuple(log),
        diagnostics=diagnostics,
        _match_positions=match_positions,
        _match_metric=metric,
    )


def _pooled_cov(X: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Pooled within-group covariance matrix (MatchIt 4's Mahalanobis scaling)."""
    parts = []
    for g in (True, False):
        Z = X[treated == g]
        parts.append((Z - Z.mean(axis=0)).T @ (Z - Z.mean(axis=0)))
    return (parts[0] + parts[1]) / (len(X) - 2)


def _overlap_check(score: np.ndarray, treated: np.ndarray, where: str) -> None:
    """Raise when the groups' score ranges do not overlap; warn with counts when overlap is poor."""
    lo_c, hi_c = score[~treated].min(), score[~treated].max()
    lo_t, hi_t = score[treated].min(), score[treated].max()
    if hi_c < lo_t or hi_t < lo_c:
        raise EstimationError(
            f"{where}: no overlap: the propensity scores of treated units [{lo_t:.3g}, {hi_t:.3g}] and of "
            f"comparison units [{lo_c:.3g}, {hi_c:.3g}] do not intersect. No comparison is possible."
        )
    out_t = int((treated & ((score < lo_c) | (score > hi_c))).sum())
    extreme = int(((score > 0.99) | (score < 0.01)).sum())
    if out_t:
        warn(OverlapWarning, f"{where}: {out_t} treated unit(s) have propensity scores outside the comparison units' range [{lo_c:.3g}, {hi_c:.3g}]; consider discard='treated' or a caliper.")
    if extreme > 0.05 * len(score):
        warn(OverlapWarning, f"{where}: {extreme} unit(s) ({extreme / len(score):.0%}) have propensity scores below 0.01 or above 0.99; estimates lean on few comparable units.")
