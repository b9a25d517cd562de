"""Randomisation inference for the Callaway-Sant'Anna estimator and its aggregations.

Without covariates and with equal-sized randomisation units, every ATT(g, t) and every aggregate of
them is a fixed linear combination of the cohort-by-period sums of the outcome, ``S[k, t]``, because
permuting adoption dates keeps the number of units per cohort (and so the aggregation weights,
which are cohort shares) fixed. With ``alpha[r, k, t]`` the coefficient of row ``r`` on ``S[k, t]``,
the estimate under an assignment ``L`` (cohort code of each randomisation unit ``b``) is

    theta_r(L) = sum_b z[b, L_b, r],          z[b, k, r] = alpha[r, k, :] . Y_b

a gather and a sum: no re-estimation per assignment. The studentising variance is the influence-
function variance of the estimator (within-cohort spread of ``z``), the same formula under every
assignment. The engine (:mod:`impact.inference.randomization`) turns these into p-values and
intervals by test inversion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impact.inference.randomization import AdoptionRandomization, LinearComponents, adoption_randomization

__all__ = ["CohortSums", "cell_matrix"]


def cell_matrix(cells: list[dict], K: int, T: int, cohort_units: np.ndarray) -> np.ndarray:
    """C (p, K+1, T): ATT(g, t) of cell j = sum_k C[j, k] . S[k] with S the cohort-period sums."""
    C = np.zeros((len(cells), K + 1, T))
    for j, c in enumerate(cells):
        if c["reference"]:
            continue
        k, t, b = c["k"], c["ti"], c["base"]
        C[j, k, t] += 1.0 / cohort_units[k]
        C[j, k, b] -= 1.0 / cohort_units[k]
        comp = np.flatnonzero(c["comparison"])
        n_comp = cohort_units[comp].sum()
        C[j, comp, t] -= 1.0 / n_comp
        C[j, comp, b] += 1.0 / n_comp
    return C


@dataclass(frozen=True)
class CohortSums:
    """What randomisation inference needs from an att_gt fit: block outcomes and cell structure.

    ``Yb`` (B, T) are outcome sums of the randomisation units (units, or equal-sized clusters);
    ``labels`` (B,) their observed cohort codes (K = never treated); ``C`` the cell matrix.
    """

    Yb: np.ndarray
    labels: np.ndarray
    K: int
    C: np.ndarray
    cell_cohort: np.ndarray  # (p,) cohort code of each cell
    cell_time: np.ndarray  # (p,) period index of each cell
    cell_post: np.ndarray  # (p,) bool
    cell_reference: np.ndarray  # (p,) bool
    block_units: np.ndarray  # (B,) units per randomisation unit (all equal)
    unit_word: str
    n_permutations: int
    seed: int | None
    studentize: bool = True

    @property
    def blocks_per_cohort(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.K + 1)

    def treated_mask(self, omega: np.ndarray) -> np.ndarray:
        """M (R, K+1, T): 1 where row r's cells put a treated cohort-period (the cells shifted by tau)."""
        R = omega.shape[0]
        M = np.zeros((R, self.K + 1, self.Yb.shape[1]))
        for j in np.flatnonzero(~self.cell_reference):
            rows = np.flatnonzero(omega[:, j] != 0)
            M[rows, self.cell_cohort[j], self.cell_time[j]] = 1.0
        return M

    def components(self, omega: np.ndarray, Y: np.ndarray | None = None):
        """The vectorised ``components(labels)`` of the rows ``omega @ cells`` (omega: R x p)."""
        Yb = self.Yb if Y is None else Y
        alpha = np.einsum("rj,jkt->rkt", omega, self.C)  # (R, K+1, T)
        Z = np.einsum("bt,rkt->bkr", Yb, alpha)  # (B, K+1, R)
        block_units = self.block_units
        M = self.treated_mask(omega)
        D = M[:, self.labels, :] * block_units[None, :, None]  # (R, B, T): treated cells of the observed assignment
        Zd = np.einsum("rbt,rkt->bkr", D, alpha)
        m = self.blocks_per_cohort.astype(float)
        K1 = self.K + 1

        R = Z.shape[2]
        # per cohort k, the five block-level quantities whose cohort sums the variance needs
        per_cohort = [np.concatenate([Z[:, k], Zd[:, k], Z[:, k] ** 2, Z[:, k] * Zd[:, k], Zd[:, k] ** 2], axis=1)
                      for k in range(K1)]  # each (B, 5R)

        def components(labels: np.ndarray) -> LinearComponents:
            P = labels.shape[0]
            a, b, v0, v1, v2 = (np.zeros((P, R)) for _ in range(5))
            for k in range(K1):  # cohorts are few; each is one BLAS product (P, B) @ (B, 5R)
                sums = (labels == k).astype(float) @ per_cohort[k]
                sy, sd = sums[:, :R], sums[:, R : 2 * R]
                a += sy
                b += sd
                v0 += sums[:, 2 * R : 3 * R] - sy * sy / m[k]
                v1 += sums[:, 3 * R : 4 * R] - sy * sd / m[k]
                v2 += sums[:, 4 * R :] - sd * sd / m[k]
            return LinearComponents(a, b, v0, v1, v2)

        return components

    def run(self, omega: np.ndarray, level: float, Y: np.ndarray | None = None) -> AdoptionRandomization:
        from impact.inference.permutation import AssignmentScheme

        scheme = AssignmentScheme(self.labels, method="complete", n_arms=self.K + 1)
        return adoption_randomization(self.components(omega, Y), scheme, n_permutations=self.n_permutations,
                                      seed=self.seed, level=level, studentize=self.studentize, unit_word=self.unit_word)

    def joint_test(self, omega: np.ndarray, cell_att: np.ndarray) -> dict:
        """Randomisation test that all rows of ``omega`` (e.g. the pre-treatment effects) are zero,
        permuting the imputed untreated outcomes (:meth:`untreated_outcomes`)."""
        from impact.inference.permutation import AssignmentScheme
        from impact.inference.randomization import randomization_joint_test

        scheme = AssignmentScheme(self.labels, method="complete", n_arms=self.K + 1)
        components = self.components(omega, self.untreated_outcomes(cell_att))
        test = randomization_joint_test(components, scheme, np.arange(omega.shape[0]), n_permutations=self.n_permutations,
                                        seed=self.seed, studentize=self.studentize, unit_word=self.unit_word)
        test["assumption"] = ("sharp null: no pre-trends, and post-treatment effects equal to the estimated "
                              "ATT(g, t) (removed before permuting start years)")
        return test

    def untreated_outcomes(self, cell_att: np.ndarray) -> np.ndarray:
        """Block outcomes with the estimated post-treatment effects removed (the imputed Y(0) that the
        pre-trend test permutes: its sharp null is parallel pre-trends with effects as estimated)."""
        Y0 = self.Yb.copy()
        units = self.block_units
        for j in np.flatnonzero(self.cell_post & ~self.cell_reference):
            rows = self.labels == self.cell_cohort[j]
            Y0[rows, self.cell_time[j]] -= cell_att[j] * units[rows]
        return Y0


@dataclass(frozen=True)
class TWFEPermutation:
    """Randomisation inference for the TWFE coefficient of a balanced panel without covariates.

    Under an assignment the treatment path of unit i is ``D_it = 1{t >= start_i}``; by Frisch-Waugh-
    Lovell the coefficient is ``<D~, Y~> / <D~, D~>`` with ``~`` the two-way within transformation
    (for a balanced panel: minus unit and period means, plus the grand mean), so every assignment
    costs a few array operations on (assignments, units, periods), no regression. The studentising
    variance is the cluster-robust (CR0) one of that assignment's fit.
    """

    Yt: np.ndarray  # (N, T) two-way demeaned outcome
    Dt: np.ndarray  # (N, T) two-way demeaned observed treatment
    labels: np.ndarray  # (B,) cohort code of each randomisation unit (K = never treated)
    start: np.ndarray  # (K+1,) first treated period index of each cohort code (T for never)
    block_of_unit: np.ndarray  # (N,) randomisation unit of each panel unit
    cluster_of_unit: np.ndarray  # (N,) cluster code of each panel unit
    n_clusters: int
    unit_word: str
    n_permutations: int
    seed: int | None

    def components(self, labels: np.ndarray) -> LinearComponents:
        N, T = self.Yt.shape
        starts = self.start[labels.astype(np.intp)][:, self.block_of_unit]  # (P, N)
        D = (np.arange(T)[None, None, :] >= starts[:, :, None]).astype(float)  # (P, N, T)
        D -= D.mean(axis=2, keepdims=True)
        D -= D.mean(axis=1, keepdims=True)  # the period means of unit-demeaned D: the two-way transformation
        sxx = np.einsum("pnt,pnt->p", D, D)
        sxx = np.where(sxx > 1e-12, sxx, np.nan)  # an assignment without variation in D (cannot happen with T >= 2)
        theta_y = np.einsum("pnt,nt->p", D, self.Yt) / sxx
        theta_d = np.einsum("pnt,nt->p", D, self.Dt) / sxx
        # unit scores of the residuals: sum_t D~ (Y~ - theta D~), linear in tau through Y~ - tau D~o
        dd = np.einsum("pnt,pnt->pn", D, D)
        score_y = np.einsum("pnt,nt->pn", D, self.Yt) - theta_y[:, None] * dd
        score_d = np.einsum("pnt,nt->pn", D, self.Dt) - theta_d[:, None] * dd
        if self.n_clusters < N:
            indicator = np.zeros((N, self.n_clusters))
            indicator[np.arange(N), self.cluster_of_unit] = 1.0
            score_y, score_d = score_y @ indicator, score_d @ indicator
        scale = (sxx**2)[:, None]
        v0 = np.sum(score_y**2, axis=1, keepdims=True) / scale
        v1 = np.sum(score_y * score_d, axis=1, keepdims=True) / scale
        v2 = np.sum(score_d**2, axis=1, keepdims=True) / scale
        return LinearComponents(theta_y[:, None], theta_d[:, None], v0, v1, v2)

    def run(self, level: float) -> AdoptionRandomization:
        from impact.inference.permutation import AssignmentScheme

        scheme = AssignmentScheme(self.labels, method="complete", n_arms=len(self.start))
        return adoption_randomization(self.components, scheme, n_permutations=self.n_permutations, seed=self.seed,
                                      level=level, studentize=True, unit_word=self.unit_word, chunk=500)
