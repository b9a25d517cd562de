"""Matching: nearest neighbour on a propensity score or Mahalanobis distance, exact and coarsened
exact matching, with MatchIt's conventions for weights, subclasses and balance."""

from __future__ import annotations

import math
from collections.abc import Iterator
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
from impact.matching._abadie_imbens import matching_variance, propensity_adjustment, set_counts
from impact.matching._design import CovariateDesign, prepare_design
from impact.matching._results import BalanceResult, LazyDiagnostics
from impact.matching.balance import balance_table
from impact.matching.propensity import ScoreModel, fit_score
from impact.results import FlowStep, effects_table

__all__ = ["Matching", "match"]

Method = Literal["nearest", "mahalanobis", "exact", "cem", "subclass"]
METHODS = ("nearest", "mahalanobis", "exact", "cem", "subclass")
CALIPER_SCALES = ("sd", "logit")
ORDERS = ("largest", "smallest", "random", "data")
DISCARDS = ("none", "treated", "control", "both")
ESTIMANDS = ("ATT", "ATC", "ATE")
SE_KINDS = ("cluster", "robust", "abadie_imbens", "abadie_imbens_2016")
STRATUM_METHODS = ("exact", "cem", "subclass")
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
        Nearest neighbour only: one row per focal unit (treated for the ATT, comparison units for
        the ATC, every unit for the ATE), columns ``control_1..ratio`` holding the index labels of
        its matches from the other group (more columns when ``ties=True`` keeps ties; None past
        the end of a smaller set).
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
    _match_sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = field(default=None, repr=False)
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
            return "abadie_imbens" if self._propensity_adjustment_unavailable() else "abadie_imbens_2016"
        return "cluster"

    def effect(
        self,
        outcome: str | None = None,
        *,
        se: Literal["cluster", "robust", "abadie_imbens", "abadie_imbens_2016"] | None = None,
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

            - exact, coarsened exact matching and subclassification (strata): ``"robust"``, the HC3
              heteroskedasticity-robust SE of the weighted regression of the outcome on treatment,
              as MatchIt's vignette "Estimating Effects After Matching" recommends for stratum
              designs (``marginaleffects::avg_comparisons(fit, vcov = "HC3")``; equal to
              ``sandwich::vcovHC(lm(y ~ treat, weights = weights), type = "HC3")``). Strata are not
              clusters there: a few large strata make clustered SEs unreliable.
            - nearest-neighbour matching without replacement (pairs or k:1 sets): ``"cluster"``,
              CR1 clustered on matched sets, the vignette's ``vcov = ~subclass`` for pair matching.
            - nearest-neighbour matching with replacement on a logit or probit score estimated by
              :func:`match`: ``"abadie_imbens_2016"``, the Abadie-Imbens (2006) variance with the
              Abadie-Imbens (2016) correction for the estimated score, as Stata's ``teffects
              psmatch`` does by default;
            - otherwise with replacement (a user-supplied score, Mahalanobis distance, caliper=,
              exact= or discard=, or ``bias_adjust=True``): ``"abadie_imbens"``, the Abadie-Imbens
              (2006) variance, which treats the score as known (R ``Matching``, Stata ``teffects
              nnmatch``).

            Any other applicable choice may be named: ``"cluster"`` (CR1 on matched sets; needs every
            matched unit in one set), ``"robust"`` (HC3), ``"abadie_imbens"`` and
            ``"abadie_imbens_2016"`` (nearest neighbour with replacement only).
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
        eq. 14; ``conditional_variance="abadie_imbens_2006"``). With ties kept (``match(ties=True)``)
        K_j counts 1/|set| per set and K_j (K_j - 1) / M^2 becomes K_j^2 - sum 1/|set|^2, as in R
        ``Matching``. The ATE (matches in both directions, K_i over both) uses
        N^-2 [sum_i (Yhat_i(1) - Yhat_i(0) - tau)^2 + sum_i (K_i^2 + 2 K_i - K'_i) sigma_i^2]
        (Theorem 7; (K/M)^2 + (2M - 1)/M K/M without ties).

        ``"abadie_imbens_2016"`` adds the change from estimating the score (Theorems 1-2):
        -c' I^-1 c / N for the ATE, (-c_t' I^-1 c_t + a' I^-1 a) / N for the ATT, with I the score
        model's information matrix, c and c_t built from cov(X, Y | p(X), W = w) over the J + 1
        nearest units of each group, and a = dATT/dtheta (see
        :func:`impact.matching._abadie_imbens.propensity_adjustment`). It is never positive for
        the ATE; for the ATT it can go either way.

        References
        ----------
        Abadie, A. and Imbens, G. W. (2006). Large sample properties of matching estimators for
        average treatment effects. Econometrica 74(1), 235-267. doi:10.1111/j.1468-0262.2006.00655.x
        Abadie, A. and Imbens, G. W. (2011). Bias-corrected matching estimators for average
        treatment effects. JBES 29(1), 1-11. doi:10.1198/jbes.2009.07333
        Abadie, A. and Imbens, G. W. (2016). Matching on the estimated propensity score.
        Econometrica 84(2), 781-807. doi:10.3982/ECTA11293
        Greifer, N. Estimating effects after matching. MatchIt vignette (MatchIt >= 4.0),
        https://kosukeimai.github.io/MatchIt/articles/estimating-effects.html
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
            if se == "abadie_imbens_2016" and bias_adjust:  # the 2016 correction is for the plain estimator
                se = "abadie_imbens"
        check_option("se", se, SE_KINDS)
        check_option("conditional_variance", conditional_variance, CONDITIONAL_VARIANCE)
        check_option("outcome_model", outcome_model, OUTCOME_MODELS)
        extra = as_list(covariates)
        matching_se = se in ("abadie_imbens", "abadie_imbens_2016")
        if matching_se:
            if self.method not in ("nearest", "mahalanobis") or not replace:
                raise SpecError(
                    f"{where}: se={se!r} is for nearest-neighbour matching with replacement "
                    "(replace=True); use se='cluster' for matching without replacement or se='robust' for strata."
                )
            if extra:
                raise SpecError(f"{where}: covariates= is not used with se={se!r}; use bias_adjust=True.")
            if se == "abadie_imbens_2016":
                why = self._propensity_adjustment_unavailable()
                if why:
                    raise SpecError(f"{where}: se='abadie_imbens_2016' corrects for a propensity score estimated by "
                                    f"match() itself, but {why}. Use se='abadie_imbens' (score treated as known).")
                if bias_adjust:
                    raise SpecError(f"{where}: bias_adjust=True is not combined with se='abadie_imbens_2016' "
                                    "(Abadie-Imbens 2016 derive the correction for the plain matching estimator); "
                                    "use se='abadie_imbens' with bias_adjust=True.")
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
            if matching_se:
                mv, extra_variance = self._abadie_imbens(outcome, bias_adjust, n_variance_matches, conditional_variance,
                                                         adjust_for_score=se == "abadie_imbens_2016")
                estimate, std_error = mv.estimate, math.sqrt(max(mv.variance + extra_variance, 0.0))
                dof = math.inf
                convention = ("sample variance of each unit and its neighbours, as R Matching and Stata teffects"
                              if conditional_variance == "sample_variance" else "Abadie-Imbens 2006 eq. 14")
                inference = (
                    f"Abadie-Imbens (2006) matching variance, {n_variance_matches} same-group matches for "
                    f"the conditional variance ({convention})" + (", bias-adjusted (Abadie-Imbens 2011)" if bias_adjust else "")
                    + (f", adjusted for the estimated {self.score_model.link} propensity score (Abadie-Imbens 2016)"
                       if se == "abadie_imbens_2016" else "")
                    + "; normal reference distribution"
                )
                n_obs = mv.n_used
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

    def _propensity_adjustment_unavailable(self) -> str | None:
        """Why the Abadie-Imbens (2016) correction cannot be computed for this matching, or None."""
        if self.score_model is None:
            return "the score was supplied by the user (distance=<column>), so its estimation error is unknown"
        if self.method != "nearest" or not self.settings.get("replace", False):
            return "it applies to score matching with replacement"
        if self.settings.get("caliper") is not None or self.settings.get("exact") or self.settings.get("discard", "none") != "none":
            return "caliper=, exact= or discard= change the matched sample the correction is derived for"
        return None

    def _abadie_imbens(self, outcome: str, bias_adjust: bool, J: int, convention: str,
                       adjust_for_score: bool = False):
        """Matching estimate with its Abadie-Imbens (2006) variance, and the Abadie-Imbens (2016)
        term for the estimated score when asked (0 otherwise)."""
        where = "Matching.effect"
        idx = self.weights.index
        y = pd.to_numeric(self.data.loc[idx, outcome], errors="coerce").to_numpy(dtype=float)
        treated = self.design.treated == 1
        # outcomes needed: the matched focal units and every unit of the groups matches come from
        # (their conditional variances use same-group neighbours); all units for the 2016 correction
        needed = np.ones(len(y), dtype=bool)
        if not adjust_for_score:
            for group, (focal, indptr, _) in self._match_sets.items():
                if len(self._match_sets) == 1:
                    needed[focal[np.diff(indptr) == 0]] = False
        bad = ~np.isfinite(y) & needed
        if bad.any():
            rows = ", ".join(map(str, idx[bad][:5]))
            raise DataError(f"{where}: the outcome {outcome!r} has missing or infinite values (rows {rows}); the "
                            "Abadie-Imbens variance needs it for every unit. Fix those values or drop those units before match().")
        ties = bool(self.settings.get("ties", False))
        metric = self._match_metric
        mv = matching_variance(y, treated, self._match_sets, self.estimand, metric, J=J, convention=convention,
                               ties=ties, bias_X=self.design.model if bias_adjust else None)
        if not adjust_for_score:
            return mv, 0.0
        effects = mv.unit_effects
        if self.estimand != "ATE":  # the ATT's correction needs every unit's imputed effect
            other = "control" if self.estimand == "ATT" else "treated"
            focal = np.flatnonzero(~treated if other == "control" else treated)
            pool = np.flatnonzero(treated if other == "control" else ~treated)
            indptr, local = _nearest.match_sets(metric[focal], metric[pool], ratio=int(self.settings["ratio"]), ties=ties)
            both = matching_variance(y, treated, {**self._match_sets, other: (focal, indptr, pool[local])}, "ATE", metric,
                                     J=J, convention=convention, ties=ties)
            effects = both.unit_effects
        sm = self.score_model
        X1 = np.column_stack([np.ones(len(y)), self.design.model])
        extra = propensity_adjustment(y, treated, X1, sm.score, sm.linear, sm.link, self.estimand, mv.estimate,
                                      effects, metric, L=J + 1, ties=ties)
        return mv, extra


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


def _check_unmatched(n_unmatched: int, n_focal: int, focal: str, caliper, width: float, where: str) -> None:
    """Raise when no focal unit found a match; warn (SampleWarning) when some did not."""
    group = {"ATT": "treated", "ATC": "comparison"}.get(focal, focal)
    if n_unmatched == n_focal:
        raise EstimationError(
            f"{where}: no {group} unit found a match"
            + (f" within the caliper ({caliper} SD = {width:.4g} on the score)" if caliper is not None else "")
            + ". Widen the caliper, drop exact= constraints, or check overlap."
        )
    if n_unmatched:
        reason = "within the caliper" if caliper is not None else "(no comparison unit left or none in the exact= cell)"
        warn(SampleWarning, f"{where}: {n_unmatched} of {n_focal} {group} unit(s) have no match {reason} and are dropped; the estimand becomes the effect on the matched units.")


def _cells(cell_codes: np.ndarray, focal_all: np.ndarray, other_all: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each exact-match cell of the focal units that has comparison units: the positions within
    ``focal_all`` and within ``other_all`` of the cell's units (nearest-neighbour matching runs per cell)."""
    focal_cells, other_cells = cell_codes[focal_all], cell_codes[other_all]
    for cell in np.unique(focal_cells):
        osel = np.flatnonzero(other_cells == cell)
        if osel.size:
            yield np.flatnonzero(focal_cells == cell), osel


def _replacement_sets(metric, treated, keep, cell_codes, *, estimand, ratio, width, ties, score_metric, index, caliper, where):
    """Matched sets with replacement in each direction the estimand needs.

    Returns ``({"treated" | "control": (focal positions, indptr, indices)}, pairs)``: positions
    index the estimation sample; the ATE matches treated units to comparison units and comparison
    units to treated units. ``pairs`` holds the index labels of each focal unit's matches
    (``control_1``, ... up to the largest set; None past a set's end).
    """
    directions = {"ATT": ("treated",), "ATC": ("control",), "ATE": ("treated", "control")}[estimand]
    sets = {}
    for group in directions:
        focal_mask = treated if group == "treated" else ~treated
        focal_all = np.flatnonzero(focal_mask & keep)
        other_all = np.flatnonzero(~focal_mask & keep)
        sizes = np.zeros(len(focal_all), dtype=np.int64)
        members = [np.empty(0, np.int64)] * len(focal_all)
        for fsel, osel in _cells(cell_codes, focal_all, other_all):
            f_idx, o_idx = focal_all[fsel], other_all[osel]
            if score_metric:
                ip, ix = _nearest.match_sets(metric[f_idx], metric[o_idx], ratio=ratio, caliper=width, ties=ties)
            else:
                dense, _ = _nearest.candidate_lists(metric[f_idx], metric[o_idx], ratio)
                ip, ix = _nearest.dense_to_sets(dense)
            found = o_idx[ix]
            for k, row in enumerate(fsel):
                members[row] = found[ip[k]:ip[k + 1]]
                sizes[row] = ip[k + 1] - ip[k]
        indptr = np.zeros(len(focal_all) + 1, dtype=np.int64)
        np.cumsum(sizes, out=indptr[1:])
        indices = np.concatenate(members) if len(members) else np.empty(0, np.int64)
        n_unmatched = int((sizes == 0).sum())
        if estimand == "ATE" and n_unmatched:
            raise EstimationError(
                f"{where}: estimand='ATE' needs a match for every unit, but {n_unmatched} {group} unit(s) have none"
                + (" within the caliper" if caliper is not None else " in their exact= cell")
                + "; dropping them would change the estimand. Use estimand='ATT' or 'ATC', widen or drop the "
                "caliper, or drop exact= constraints."
            )
        _check_unmatched(n_unmatched, len(focal_all), "ATT" if group == "treated" else "ATC", caliper, width, where)
        sets[group] = (focal_all, indptr, indices)
    frames = []
    for focal_all, indptr, indices in sets.values():
        size = np.diff(indptr)
        width_max = int(size.max()) if len(size) else 0
        labels = index.to_numpy()
        cols = {}
        for j in range(width_max):
            has = size > j
            col = np.full(len(size), None, dtype=object)
            col[has] = labels[indices[indptr[:-1][has] + j]]
            cols[f"control_{j + 1}"] = col
        frames.append(pd.DataFrame(cols, index=index[focal_all]))
    if len(frames) == 1:
        return sets, frames[0]
    # the ATE: one row per unit, in the data's order
    order = np.concatenate([focal_all for focal_all, _, _ in sets.values()])
    return sets, pd.concat(frames).iloc[np.argsort(order, kind="stable")]


def _replacement_weights(sets, treated: np.ndarray, estimand: str, n: int) -> np.ndarray:
    """Matching weights with replacement. ATT/ATC (MatchIt): matched focal units 1; a comparison unit
    the sum of 1/|set| over the sets it is in, rescaled to sum to the number of comparison units
    used. ATE: 1 + K for every unit, K summed over both directions, so that the weighted
    difference in means is the matching estimator (1/N) sum_i (2W_i - 1)(1 + K_i) Y_i."""
    w = np.zeros(n)
    if estimand == "ATE":
        w[:] = 1.0
        for _, indptr, indices in sets.values():
            w += set_counts(indptr, indices, n)[0]
        return w
    (focal_all, indptr, indices), = sets.values()
    w[focal_all] = (np.diff(indptr) > 0).astype(float)
    other = set_counts(indptr, indices, n)[0]
    used = other > 0
    if used.any():
        other *= used.sum() / other.sum()
    return w + other


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
    ties: bool = False,
    n_subclasses: int = 6,
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
    method : {"nearest", "mahalanobis", "exact", "cem", "subclass"}
        Greedy nearest neighbour on a score; greedy nearest neighbour in Mahalanobis distance (on the
        pooled within-group covariance of the covariates); exact matching on all covariate values;
        coarsened exact matching; subclassification on the score (``n_subclasses`` strata between
        quantiles of the score of the treated for the ATT, comparison units for the ATC, all units
        for the ATE, as MatchIt's ``method = "subclass"``; weights as for exact matching).
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
        Exact and CEM: every stratum must hold both groups for the ATE (else EstimationError).
        Nearest neighbour: the ATE matches treated units to comparison units and comparison units
        to treated units (R ``Matching``'s ``Match(estimand = "ATE")``, Stata ``teffects
        nnmatch``/``psmatch``), which needs ``replace=True`` and a match for every unit; the
        weights are then 1 + K_i (K_i = times unit i serves as a match, 1/|set| each), so that the
        weighted difference in means is the matching estimate.
    seed : int, optional
        Seed for ``m_order="random"``.
    outcome : str, optional
        Outcome column for :meth:`Matching.effect` when it is called without one (programme specs
        pass the outcome to every design). It plays no part in matching.
    n_subclasses : int
        Number of subclasses for ``method="subclass"`` (MatchIt's default 6).
    ties : bool
        Score matching with replacement only. False (default, MatchIt): exactly ``ratio`` matches,
        ties going to the unit first in the data. True: every comparison unit as near as the
        ``ratio``-th is a match, each weighted 1/|set| (R ``Matching``'s ``ties = TRUE`` and Stata
        ``teffects``, which report "max" matches), so results do not depend on the row order;
        the conditional-variance neighbours of the Abadie-Imbens SE keep ties too.

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
    if method in ("nearest", "mahalanobis") and estimand == "ATE" and not replace:
        raise SpecError(
            f"{where}: estimand='ATE' with nearest-neighbour matching matches treated units to comparison "
            "units and comparison units to treated units, which needs replace=True (as R Matching's "
            "Match(estimand = 'ATE') and Stata teffects nnmatch/psmatch)."
        )
    if not isinstance(ties, bool | np.bool_):
        raise SpecError(f"{where}: ties must be True or False, got {ties!r}.")
    if ties and not (method == "nearest" and replace):
        raise SpecError(
            f"{where}: ties=True keeps every comparison unit tied at the ratio-th distance on the score; it "
            "is for score matching with replacement (method='nearest', replace=True)."
        )
    if method == "mahalanobis" and caliper is not None:
        raise SpecError(f"{where}: caliper= applies to score matching (method='nearest'), not to Mahalanobis matching.")
    if method in STRATUM_METHODS and (caliper is not None or replace or ratio != 1):
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
    score_col = distance if (user_score and method in ("nearest", "subclass")) else None
    if not isinstance(n_subclasses, int | np.integer) or isinstance(n_subclasses, bool) or n_subclasses < 2:
        raise SpecError(f"{where}: n_subclasses must be an integer of at least 2, got {n_subclasses!r}.")
    if n_subclasses != 6 and method != "subclass":
        raise SpecError(f"{where}: n_subclasses= is for method='subclass'.")
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
            "covariates": covs, "treatment": treatment, "outcome": outcome, "ties": bool(ties),
        }
        diagnostics: dict[str, Any] = {}

        # -- score ---------------------------------------------------------------------------
        score_model = None
        score = None
        if method in ("nearest", "subclass") or discard != "none":
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
        match_sets = None
        metric = None

        # -- nearest neighbour -----------------------------------------------------------------
        if method in ("nearest", "mahalanobis"):
            focal_mask = treated if estimand == "ATT" else ~treated
            width = math.inf
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
            if replace:
                match_sets, pairs_out = _replacement_sets(
                    metric, treated, keep, cell_codes, estimand=estimand, ratio=ratio, width=width if method == "nearest" else math.inf,
                    ties=ties, score_metric=method == "nearest", index=frame.index, caliper=caliper, where=where,
                )
                weights[:] = _replacement_weights(match_sets, treated, estimand, n)
                diagnostics["n_unmatched_focal"] = sum(int((np.diff(ip) == 0).sum()) for _, ip, _ in match_sets.values())
                if ties:
                    diagnostics["max_matches"] = max(int(np.diff(ip).max()) for _, ip, _ in match_sets.values())
            else:
                focal_all = np.flatnonzero(focal_mask & keep)
                other_all = np.flatnonzero(~focal_mask & keep)
                pairs = -np.ones((len(focal_all), ratio), dtype=np.int64)
                for fsel, osel in _cells(cell_codes, focal_all, other_all):
                    f_idx, o_idx = focal_all[fsel], other_all[osel]
                    if method == "nearest":
                        order_t = _order(score[f_idx], len(f_idx), order_kind, seed)
                        p = _nearest.greedy_score(metric[f_idx], metric[o_idx], order_t, ratio=ratio, caliper=width)
                    else:
                        order_t = _order(None, len(f_idx), order_kind, seed)
                        p = _nearest.greedy_vectors(metric[f_idx], metric[o_idx], order_t, ratio=ratio)
                    # map positions within the cell to positions within other_all
                    pairs[fsel] = np.where(p >= 0, osel[np.clip(p, 0, None)], -1)
                n_unmatched = int((pairs[:, 0] < 0).sum())
                _check_unmatched(n_unmatched, len(focal_all), estimand, caliper, width, where)
                wf, wo = _nn_weights(pairs, len(focal_all), len(other_all))
                weights[focal_all] = wf
                weights[other_all] = wo
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
                if len(other_all) < ratio * len(focal_all):
                    warn(SmallComparisonWarning, f"{where}: {len(other_all)} comparison units for {len(focal_all)} focal units at ratio {ratio}: some cannot be matched without replacement.")
                diagnostics["n_unmatched_focal"] = n_unmatched

        # -- exact and coarsened exact ---------------------------------------------------------
        else:
            if method == "subclass":
                strata = _subclasses(score, treated, keep, n_subclasses, estimand)
                settings["n_subclasses"] = int(n_subclasses)
            cols = [] if method == "subclass" else covs + [c for c in exact_cols if c not in covs]
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
            if method != "subclass":
                strata = pd.factorize(pd.MultiIndex.from_arrays(keys))[0] if len(keys) > 1 else pd.factorize(keys[0])[0]
            strata = np.where(keep, strata, -1)
            n_s = strata.max() + 1
            valid = strata >= 0
            nt = np.bincount(strata[valid & treated], minlength=n_s)
            nc = np.bincount(strata[valid & ~treated], minlength=n_s)
            both = (nt > 0) & (nc > 0)
            in_matched = valid & both[np.clip(strata, 0, None)]
            one_sided = int(((nt > 0) ^ (nc > 0)).sum())
            if method == "subclass" and one_sided:
                raise EstimationError(
                    f"{where}: {one_sided} of {n_subclasses} propensity-score subclasses hold units of one group "
                    "only; use fewer subclasses (n_subclasses=) or discard units outside common support "
                    "(discard='both'). (MatchIt moves units between subclasses instead.)"
                )
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
        _match_sets=match_sets,
        _match_metric=metric,
    )


def _subclasses(score: np.ndarray, treated: np.ndarray, keep: np.ndarray, k: int, estimand: str) -> np.ndarray:
    """Propensity-score subclass of every unit (MatchIt ``method = "subclass"``): breaks at the
    quantiles 0, 1/k, ..., 1 (R's default type 7) of the score among the treated (ATT), the
    comparison units (ATC) or all units (ATE), intervals closed on the left with the outer ones
    extended (R ``findInterval(..., all.inside = TRUE)``)."""
    ref = {"ATT": treated, "ATC": ~treated}.get(estimand, np.ones_like(treated)) & keep
    breaks = np.quantile(score[ref], np.linspace(0.0, 1.0, k + 1))
    return np.clip(np.searchsorted(breaks, score, side="right"), 1, k) - 1


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
