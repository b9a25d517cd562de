"""Propensity-score models: logit and probit by Newton's method in numpy.

The score model is a binary GLM of treatment on an intercept and the covariates, fitted by
Fisher scoring (Newton's method for the canonical logit link), as R's ``glm`` does. Columns are
standardised internally for numerical stability and coefficients are reported on the original
scale. Separation (a covariate that predicts treatment perfectly) is detected before and after
fitting and raised as an :class:`~impact.errors.EstimationError` naming the covariate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special, stats

from impact.errors import ConvergenceWarning, EstimationError, warn

__all__ = ["ScoreModel", "fit_score", "crump_threshold"]

Link = Literal["logit", "probit"]
_EPS = 1e-10


@dataclass(frozen=True)
class ScoreModel:
    """A fitted propensity-score model.

    Attributes
    ----------
    coef : ndarray
        Intercept first, then one coefficient per column of the design.
    names : list of str
        ``"(Intercept)"`` followed by the covariate design names.
    score : ndarray
        Fitted probabilities of treatment.
    linear : ndarray
        Linear predictor (logit or probit index).
    """

    link: str
    coef: np.ndarray
    names: list[str]
    score: np.ndarray
    linear: np.ndarray
    deviance: float
    iterations: int
    converged: bool

    def scores_obs(self, X1: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Per-observation score vectors d loglik / d coef (n x k); X1 includes the intercept."""
        eta = X1 @ self.coef
        if self.link == "logit":
            return (d - special.expit(eta))[:, None] * X1
        p = np.clip(stats.norm.cdf(eta), _EPS, 1 - _EPS)
        dens = stats.norm.pdf(eta)
        return ((d - p) * dens / (p * (1 - p)))[:, None] * X1


def _check_univariate_separation(X: np.ndarray, d: np.ndarray, names: list[str], where: str) -> None:
    t = d == 1
    lo_t, hi_t = X[t].min(axis=0), X[t].max(axis=0)
    lo_c, hi_c = X[~t].min(axis=0), X[~t].max(axis=0)
    lo, hi = np.minimum(lo_t, lo_c), np.maximum(hi_t, hi_c)
    binary = ((X == lo) | (X == hi)).all(axis=0)
    for j in np.flatnonzero(binary):
        name, x = names[j], X[:, j]
        for v in (lo[j], hi[j]):
            at = x == v
            n_t = int((at & t).sum())
            n_c = int(at.sum()) - n_t
            if n_t == 0 or n_c == 0:
                group = "treated" if n_c == 0 else "untreated"
                raise EstimationError(
                    f"{where}: covariate {name!r} separates treatment perfectly: all {n_t + n_c} "
                    f"units with {name} = {v:g} are {group}, so the propensity score is 0 or 1 for "
                    "them and the score model has no finite estimate. Remove or recode the covariate, "
                    "or restrict the sample to units that could receive either treatment."
                )
    for j in np.flatnonzero(~binary & ((hi_t <= lo_c) | (hi_c <= lo_t))):
        raise EstimationError(
            f"{where}: covariate {names[j]!r} separates treatment perfectly (treated range "
            f"[{lo_t[j]:g}, {hi_t[j]:g}], untreated range [{lo_c[j]:g}, {hi_c[j]:g}] do not overlap), so the "
            "score model has no finite estimate and there is no common support. Restrict the "
            "sample to the overlapping range or drop the covariate."
        )


def fit_score(
    X: np.ndarray,
    d: np.ndarray,
    names: list[str],
    *,
    link: Link = "logit",
    where: str = "propensity score",
    max_iter: int = 100,
    tol: float = 1e-12,
) -> ScoreModel:
    """Fit P(D = 1 | X) by maximum likelihood (Fisher scoring) with an intercept.

    Parameters
    ----------
    X : ndarray (n, k)
        Covariates without the intercept.
    d : ndarray (n,)
        Treatment, 0/1.
    names : list of str
        Names of the columns of ``X`` (used in error messages and ``ScoreModel.names``).
    link : {"logit", "probit"}
    """
    d = np.asarray(d, dtype=float)
    _check_univariate_separation(X, d, names, where)
    center = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = np.empty((X.shape[0], X.shape[1] + 1))
    Z[:, 0] = 1.0
    np.subtract(X, center, out=Z[:, 1:])
    Z[:, 1:] /= scale
    k = Z.shape[1]
    pbar = d.mean()
    beta = np.zeros(k)
    beta[0] = np.log(pbar / (1 - pbar)) if link == "logit" else stats.norm.ppf(pbar)
    # matrix-vector products by einsum: OpenBLAS's threaded gemv can be ten times slower than a
    # single-threaded loop when the cores are busy
    eta = np.einsum("ij,j->i", Z, beta)
    dev_old = _deviance(eta, d, link)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        if link == "logit":
            p = special.expit(eta)
            w = p * (1 - p)
            grad = np.einsum("ij,i->j", Z, d - p)
        else:
            p = np.clip(special.ndtr(eta), _EPS, 1 - _EPS)
            dens = np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi)
            w = dens**2 / (p * (1 - p))
            grad = np.einsum("ij,i->j", Z, (d - p) * dens / (p * (1 - p)))
        info = _weighted_gram(Z, w)
        if it == 1:
            _check_collinear(info, X, names, where)
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(info, grad, rcond=None)[0]
        # step halving keeps the deviance from increasing (as glm.fit does)
        for _ in range(30):
            new = beta + step
            eta_new = np.einsum("ij,j->i", Z, new)
            dev = _deviance(eta_new, d, link)
            if np.isfinite(dev) and dev <= dev_old + 1e-9 * abs(dev_old):
                break
            step /= 2
        beta, eta = new, eta_new
        change = abs(dev_old - dev) / (abs(dev) + 0.1)
        dev_old = dev
        if change < tol or np.max(np.abs(step)) < 1e-10:
            converged = True
            break
    score = special.expit(eta) if link == "logit" else special.ndtr(eta)
    coef = np.empty(k)
    coef[1:] = beta[1:] / scale
    coef[0] = beta[0] - float(center @ coef[1:])
    all_names = ["(Intercept)", *names]
    extreme = (score < 1e-8) | (score > 1 - 1e-8)
    if extreme.any() and (not converged or np.abs(beta[1:]).max() > 15):
        j = int(np.argmax(np.abs(beta[1:])))
        raise EstimationError(
            f"{where}: the score model is (quasi-)perfectly separated: {int(extreme.sum())} unit(s) get a "
            f"propensity score of 0 or 1, driven mainly by covariate {names[j]!r} (standardised coefficient "
            f"{beta[1 + j]:.3g}). Treatment is predicted perfectly, so there is no common support. Remove "
            "or coarsen that covariate, or restrict the sample to comparable units."
        )
    if not converged:
        warn(ConvergenceWarning, f"{where}: the {link} score model did not converge in {max_iter} iterations.")
    return ScoreModel(
        link=link,
        coef=coef,
        names=all_names,
        score=score,
        linear=eta,
        deviance=float(dev_old),
        iterations=it,
        converged=converged,
    )


def _check_collinear(info: np.ndarray, X: np.ndarray, names: list[str], where: str) -> None:
    """Raise naming collinear covariates when the information matrix is (nearly) singular.

    A cheap screen on the k x k information matrix; the QR-based check that names the columns
    only runs when the screen fails."""
    from impact.data import check_rank

    scale = np.sqrt(np.clip(np.diag(info), 1e-300, None))
    eig = np.linalg.eigvalsh(info / np.outer(scale, scale))
    if eig.min() <= 1e-10 * eig.max():
        check_rank(np.column_stack([np.ones(len(X)), X]), ["(Intercept)", *names], where, context=" of the score model")


def _weighted_gram(Z: np.ndarray, w: np.ndarray, chunk: int = 16_384) -> np.ndarray:
    """Z' diag(w) Z in row chunks, so that no n x k temporary is allocated."""
    k = Z.shape[1]
    out = np.zeros((k, k))
    for start in range(0, Z.shape[0], chunk):
        Zc = Z[start:start + chunk]
        out += Zc.T @ (Zc * w[start:start + chunk, None])
    return out


def _deviance(eta: np.ndarray, d: np.ndarray, link: str) -> float:
    if link == "logit":
        # -2 loglik = 2 * sum(log(1 + exp(eta)) - d * eta), stable form
        return float(2 * np.sum(np.logaddexp(0, eta) - d * eta))
    logp = special.log_ndtr(eta)
    log1mp = special.log_ndtr(-eta)
    return float(-2 * np.sum(d * logp + (1 - d) * log1mp))


def crump_threshold(score: np.ndarray) -> float:
    """Crump, Hotz, Imbens & Mitnik (2009) optimal trimming threshold alpha.

    Units with alpha <= e(x) <= 1 - alpha are kept. alpha = 0 if
    sup 1/(e(1-e)) <= 2 E[1/(e(1-e))]; otherwise alpha solves
    1/(alpha(1-alpha)) = 2 E[1/(e(1-e)) | 1/(e(1-e)) <= 1/(alpha(1-alpha))].
    """
    g = 1.0 / (score * (1 - score))
    if g.max() <= 2 * g.mean():
        return 0.0
    gs = np.sort(g)
    cum_mean = np.cumsum(gs) / np.arange(1, gs.size + 1)
    # gamma = 1/(alpha(1-alpha)) is the smallest g_(k) with g_(k) >= 2 * mean of g_(1..k)
    ok = np.flatnonzero(gs >= 2 * cum_mean)
    gamma = gs[ok[0]] if ok.size else gs[-1]
    # alpha(1-alpha) = 1/gamma  ->  alpha = 1/2 - sqrt(1/4 - 1/gamma)
    return float(0.5 - np.sqrt(max(0.25 - 1.0 / gamma, 0.0)))
