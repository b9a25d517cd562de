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

__all__ = ["CohortSums", "CrossSectionSums", "cell_matrix", "cell_onset"]


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


def cell_onset(cells: list[dict], K: int, T: int) -> np.ndarray:
    """(K+1,) per cohort code the first period whose outcome treatment may affect: the period after the
    base of its earliest post-treatment cell (its start, less any anticipation); T for cohorts without
    post cells (the never treated). :attr:`CohortLinear.onset` of designs built from ATT(g, t) cells."""
    onset = np.full(K + 1, T)
    for c in cells:
        if c["post"]:
            onset[c["k"]] = min(onset[c["k"]], c["base"] + 1)
    return onset


@dataclass(frozen=True)
class CohortLinear:
    """Randomisation inference for estimators that are fixed linear maps of cohort-period sums.

    ``Yb`` (B, T) are outcome sums of the randomisation units (units, or equal-sized clusters);
    ``labels`` (B,) their observed cohort codes (``K`` = never treated). A family of rows is given by
    ``alpha`` (R, K+1, T), the coefficient of each row on ``S[k, t]``, and ``M`` (R, K+1, T), the
    treated cohort-periods that the sharp null ``Y(0) = Y - tau D`` shifts for that row.
    """

    Yb: np.ndarray
    labels: np.ndarray
    K: int
    block_units: np.ndarray  # (B,) units per randomisation unit (all equal), or (B, T) units behind each column
    unit_word: str
    n_permutations: int
    seed: int | None
    studentize: bool = True
    strata: np.ndarray | None = None  # (B,) permute within strata (e.g. blocks of equal composition); None = one
    # (K+1,) per cohort code the first column whose outcome treatment may affect (its start year, less any
    # anticipation; T for the never treated). Given, the pre-trend test is exact (see ``joint_test``).
    onset: np.ndarray | None = None
    # (T',) the period and the partition of each column when the columns are not the periods one to one
    # (ddd_gt stacks the eligible periods, partition 0, before the ineligible ones, partition 1); None: column
    # j is period j, one partition
    column_period: np.ndarray | None = None
    column_part: np.ndarray | None = None

    @property
    def _periods(self) -> np.ndarray:
        return np.arange(self.Yb.shape[1]) if self.column_period is None else np.asarray(self.column_period)

    @property
    def _parts(self) -> np.ndarray:
        return np.zeros(self.Yb.shape[1], dtype=int) if self.column_part is None else np.asarray(self.column_part)

    @property
    def _units_per_column(self) -> np.ndarray:
        """(B, T) units behind each block's column (what the sharp null shifts by tau per unit)."""
        bu = np.asarray(self.block_units, dtype=float)
        return bu if bu.ndim == 2 else np.broadcast_to(bu[:, None], self.Yb.shape)

    @property
    def blocks_per_cohort(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.K + 1)

    def scheme(self):
        from impact.inference.permutation import AssignmentScheme

        return AssignmentScheme(self.labels, strata=self.strata, method="complete", n_arms=self.K + 1)

    def components(self, alpha: np.ndarray, M: np.ndarray, Y: np.ndarray | None = None):
        """The vectorised ``components(labels)`` of the rows ``alpha`` (R, K+1, T)."""
        Yb = self.Yb if Y is None else Y
        Z = np.einsum("bt,rkt->bkr", Yb, alpha)  # (B, K+1, R)
        D = M[:, self.labels, :] * self._units_per_column[None]  # (R, B, T): shifted cells, observed assignment
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

    def treated_blocks(self, M: np.ndarray) -> np.ndarray:
        """Treated randomisation units behind each row of the shifted-cell mask ``M`` (R, K+1, T)."""
        return M.any(axis=2).astype(float) @ self.blocks_per_cohort.astype(float)

    def run(self, alpha: np.ndarray, M: np.ndarray, level: float, Y: np.ndarray | None = None) -> AdoptionRandomization:
        return adoption_randomization(self.components(alpha, M, Y), self.scheme(), n_permutations=self.n_permutations,
                                      seed=self.seed, level=level, studentize=self.studentize, unit_word=self.unit_word)

    @property
    def pretreatment_columns(self) -> int:
        """Columns before the earliest onset of treatment: untreated for every unit under every
        assignment of the observed start years (0 when ``onset`` is not known)."""
        if self.onset is None:
            return 0
        onset = np.asarray(self.onset)[: self.K][self.blocks_per_cohort[: self.K] > 0]
        return int(min(onset.min(), self._periods.max() + 1)) if onset.size else 0

    def _in_window(self) -> np.ndarray:
        """(T',) the columns before the earliest onset."""
        return self._periods < self.pretreatment_columns

    def _cohort_units(self) -> np.ndarray:
        """(K+1, T') units per cohort code behind each column (the weights of the two-way centring)."""
        onehot = (self.labels[:, None] == np.arange(self.K + 1)[None, :]).astype(float)
        return onehot.T @ self._units_per_column

    def trend_row(self) -> np.ndarray | None:
        """(K+1, T) the linear pre-trend contrast of the window before the earliest start, or None.

        The least-squares coefficient of ``g x period`` in a regression of the unit outcomes of the window
        on unit and period effects, with ``g`` = 1 for the units of treated cohorts and 0 for the never
        treated (without never-treated units: ``g`` = the cohort's start column, so later starters are
        compared with earlier ones); with two partitions of the columns (ddd_gt) its difference between
        them, first minus second. It is linear in the outcome, so it is one more row of ``alpha``; as
        a function of the window's outcomes and the assignment it keeps the pre-trend test exact. Under a
        linear pre-trend of slope ``s`` in the treated units it estimates ``s`` with one degree of freedom,
        where the omnibus statistic spreads the same signal over all the pre-period effects."""
        window = self.pretreatment_columns
        if window < 2 or self.onset is None:
            return None
        inside, parts = self._in_window(), self._parts
        if len(np.unique(parts)) > 2:
            return None
        period = self._periods - (window - 1) / 2
        row = np.zeros((self.K + 1, self.Yb.shape[1]))
        for sign, part in zip((1.0, -1.0), np.unique(parts)):  # with two partitions: their difference (ddd_gt)
            cols = inside & (parts == part)
            units = self._cohort_units()[:, np.flatnonzero(cols)[0]]
            onset = np.asarray(self.onset, dtype=float)[: self.K + 1]
            g = np.r_[np.ones(self.K), 0.0] if units[self.K] > 0 else onset.copy()
            g -= np.dot(units, g) / units.sum()
            spread = np.dot(units, g * g)
            if spread <= 1e-12 * max(1.0, float(np.dot(units, np.abs(g)))):
                return None  # all units in one cohort: no contrast between cohorts
            row[:, cols] = sign * np.outer(g, period[cols]) / (spread * np.dot(period[cols], period[cols]))
        return row

    def confine(self, alpha: np.ndarray) -> np.ndarray:
        """The rows ``alpha`` (R, K+1, T) confined to the pre-treatment columns: cut at the earliest onset,
        then two-way centred (each cohort's weights sum to zero over the kept periods, and each period's
        unit-weighted sum over cohorts is zero) so that unit and period effects cancel, as in the rows
        themselves. A row that lies inside the window is unchanged; rows that vanish are dropped."""
        inside = self._in_window()
        cut = np.where(inside[None, None, :], alpha, 0.0)
        for part in np.unique(self._parts):  # cohort weights sum to zero over the kept periods of each partition
            cols = inside & (self._parts == part)
            cut[:, :, cols] -= cut[:, :, cols].mean(axis=2, keepdims=True)
        units = self._cohort_units()[:, inside]
        share = units / units.sum(axis=0, keepdims=True)
        cut[:, :, inside] -= np.einsum("kt,rkt->rt", share, cut[:, :, inside])[:, None, :]
        scale = np.abs(alpha).reshape(len(alpha), -1).max(axis=1)
        kept = np.abs(cut).reshape(len(cut), -1).max(axis=1) > 1e-9 * np.maximum(scale, 1e-300)
        return cut[kept]

    def joint_test(self, alpha: np.ndarray, effects: np.ndarray, what: str = "estimated effects") -> dict:
        """Randomisation test that all rows of ``alpha`` (e.g. the pre-treatment effects) are zero.

        Exact when ``onset`` is known: the rows are confined (:meth:`confine`) to the periods before the
        earliest start, in which no unit is treated under any assignment of the start years, so the
        statistic is a fixed function of untreated outcomes and its permutation distribution is the same
        whichever assignment was realised (Fisher's sharp null: those outcomes do not depend on who
        starts when, i.e. parallel pre-trends and no anticipation). Later pre-periods of later cohorts
        cannot enter an exact test: under some assignment an earlier-treated unit takes their place.

        Otherwise (or when no contrast is left in that window) the test permutes the imputed untreated
        outcomes ``Y - effects`` (``effects`` (K+1, T) per unit of each treated cohort-period): only
        approximately exact, since the removed effects are estimated from the same data."""
        from impact.inference.randomization import randomization_joint_test

        window = self.pretreatment_columns
        rows = self.confine(alpha) if window >= 2 else alpha[:0]
        exact = len(rows) > 0
        trend = self.trend_row() if exact else None
        if exact:
            stacked = rows if trend is None else np.concatenate([rows, trend[None]])
            components = self.components(stacked, np.zeros_like(stacked))
        else:
            Y0 = self.Yb - effects[self.labels] * self._units_per_column
            components = self.components(alpha, np.zeros_like(alpha), Y0)
            rows = alpha
        test = randomization_joint_test(components, self.scheme(), np.arange(rows.shape[0]),
                                        trend=None if trend is None else rows.shape[0],
                                        n_permutations=self.n_permutations, seed=self.seed,
                                        studentize=self.studentize, unit_word=self.unit_word)
        if exact:
            test["method"] += f", confined to the {window} periods before the earliest start"
            test["pre_periods"] = window
            test["assumption"] = (f"sharp null: outcomes in the {window} periods before the earliest start do not "
                                  "depend on which units start when (parallel pre-trends, no anticipation); exact, "
                                  "since no unit is treated in those periods under any assignment")
        else:
            test["assumption"] = (f"sharp null: no pre-trends, and post-treatment effects equal to the {what} "
                                  "(removed before permuting start years; approximately exact)")
        return test


@dataclass(frozen=True)
class CohortSums(CohortLinear):
    """:class:`CohortLinear` for att_gt: rows are weights ``omega`` (R, p) on the ATT(g, t) cells."""

    C: np.ndarray = None  # type: ignore[assignment]  # (p, K+1, T) cell matrix
    cell_cohort: np.ndarray = None  # type: ignore[assignment]
    cell_time: np.ndarray = None  # type: ignore[assignment]
    cell_post: np.ndarray = None  # type: ignore[assignment]
    cell_reference: np.ndarray = None  # type: ignore[assignment]

    def treated_mask(self, omega: np.ndarray) -> np.ndarray:
        """M (R, K+1, T): 1 where row r's cells put a treated cohort-period (the cells shifted by tau)."""
        M = np.zeros((omega.shape[0], self.K + 1, self.Yb.shape[1]))
        for j in np.flatnonzero(~self.cell_reference):
            rows = np.flatnonzero(omega[:, j] != 0)
            M[rows, self.cell_cohort[j], self.cell_time[j]] = 1.0
        return M

    def run_cells(self, omega: np.ndarray, level: float) -> AdoptionRandomization:
        alpha = np.einsum("rj,jkt->rkt", omega, self.C)
        return self.run(alpha, self.treated_mask(omega), level)

    def row_notes(self, ri: AdoptionRandomization, omega: np.ndarray) -> np.ndarray:
        """Per row of ``omega``, the note explaining an unbounded interval (None when bounded)."""
        return ri.row_notes(self.treated_blocks(self.treated_mask(omega)))

    def joint_test_cells(self, omega: np.ndarray, cell_att: np.ndarray) -> dict:
        effects = np.zeros((self.K + 1, self.Yb.shape[1]))
        for j in np.flatnonzero(self.cell_post & ~self.cell_reference):
            effects[self.cell_cohort[j], self.cell_time[j]] = cell_att[j]
        alpha = np.einsum("rj,jkt->rkt", omega, self.C)
        window = self.pretreatment_columns
        if window >= 2:  # the exact test keeps the cells wholly before the earliest start (a row: its share of them)
            inside = ~np.any(self.C[:, :, ~self._in_window()] != 0, axis=(1, 2))
            confined = np.einsum("rj,jkt->rkt", omega * inside[None, :], self.C)
            if np.any(confined != 0):
                alpha = confined
        return self.joint_test(alpha, effects, "estimated ATT(g, t)")


@dataclass(frozen=True)
class CrossSectionSums(CohortSums):
    """:class:`CohortSums` for att_gt on repeated cross-sections sampled within clusters (no covariates).

    The randomisation units are the clusters (cohort constant within each). ``Yb`` (B, T) holds the
    cluster-by-period sums ``S1 = sum w y`` and ``S0`` (B, T) the sums ``sum w``. Under an assignment
    every group mean of a cell is a ratio of cohort sums of ``S1`` and ``S0``, so the ATT(g, t) are
    linear in the outcome with coefficients that depend on the assignment (cohort sizes in observations
    change when clusters differ in size), and each cluster's sum of the influence function of a cell is
    ``+-(S1[b, t] - mean S0[b, t]) / (sum of S0 over the group)``: the cluster-robust variance of the
    analytic path, recomputed for every assignment from (assignments, clusters, cells) arrays. The
    weights ``omega`` of aggregated rows are held at their observed values (a fixed statistic).
    """

    S0: np.ndarray = None  # type: ignore[assignment]
    cell_base: np.ndarray = None  # type: ignore[assignment]
    cell_comparison: np.ndarray = None  # type: ignore[assignment]  # (p, K+1) comparison cohorts of each cell

    def _cells(self, labels: np.ndarray, S1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cell ATTs (P, p) and cluster sums of their influence functions (P, B, p) under ``labels``."""
        onehot = (labels[:, :, None] == np.arange(self.K + 1)[None, None, :]).astype(float)  # (P, B, K+1)
        roles = ((onehot[:, :, self.cell_cohort], 1.0), (onehot @ self.cell_comparison.T.astype(float), -1.0))
        active = (~self.cell_reference).astype(float)
        att = np.zeros((labels.shape[0], len(self.cell_cohort)))
        IF = np.zeros((labels.shape[0], labels.shape[1], len(self.cell_cohort)))
        for period, sign in ((self.cell_time, 1.0), (self.cell_base, -1.0)):
            x0, x1 = self.S0[:, period], S1[:, period]  # (B, p)
            for mask, role in roles:
                n0 = np.einsum("pbj,bj->pj", mask, x0)
                n0 = np.where(n0 > 0, n0, np.inf)  # reference cells (no comparison): contribute 0
                mean = np.einsum("pbj,bj->pj", mask, x1) / n0
                att += sign * role * active * mean
                IF += (sign * role) * active * mask * (x1[None] - mean[:, None, :] * x0[None]) / n0[:, None, :]
        return att, IF

    def components_rc(self, omega: np.ndarray, M: np.ndarray, S1: np.ndarray):
        """``components(labels)`` of the rows ``omega`` (R, p) under the sharp nulls that shift the
        observed treated cohort-periods ``M`` (R, K+1, T) of each row by tau."""
        omega = omega * (~self.cell_reference)[None, :]
        masks: dict[bytes, list[int]] = {}
        for r in range(omega.shape[0]):
            masks.setdefault(M[r].tobytes(), []).append(r)
        shifted = [(rows, self.S0 * M[rows[0]][self.labels]) for rows in masks.values()]  # (B, T) sums of w d

        def components(labels: np.ndarray) -> LinearComponents:
            att, IF = self._cells(labels, S1)
            a, e0 = att @ omega.T, IF @ omega.T  # (P, R), (P, B, R)
            b, e1 = np.zeros_like(a), np.zeros_like(e0)
            for rows, Sd in shifted:  # one pass per distinct shifted set (rows sharing it share the pass)
                att_d, IF_d = self._cells(labels, Sd)
                b[:, rows], e1[:, :, rows] = att_d @ omega[rows].T, IF_d @ omega[rows].T
            return LinearComponents(a, b, np.sum(e0 * e0, axis=1), np.sum(e0 * e1, axis=1), np.sum(e1 * e1, axis=1))

        return components

    def run(self, alpha, M, level, Y=None):  # noqa: D102  (rows come as omega, see run_cells)
        raise NotImplementedError("CrossSectionSums works on cell weights: use run_cells")

    def run_cells(self, omega: np.ndarray, level: float) -> AdoptionRandomization:
        return adoption_randomization(self.components_rc(omega, self.treated_mask(omega), self.Yb), self.scheme(),
                                      n_permutations=self.n_permutations, seed=self.seed, level=level,
                                      studentize=self.studentize, unit_word=self.unit_word, chunk=250)

    def joint_test_cells(self, omega: np.ndarray, cell_att: np.ndarray) -> dict:
        """Randomisation test that the rows ``omega`` of pre-period cells are zero.

        Exact when ``onset`` is known and at least two periods precede the earliest start: the test takes the
        cells that the rows weigh wholly in those periods, each as its own row, where no cluster is treated
        under any assignment, so the statistic is a fixed function of untreated outcomes. Its trend
        component is the least-squares slope through the origin of those cells' ATT(g, t) on their gap
        ``t - base`` (a linear pre-trend of slope s makes every such cell s (t - base)): one more row of
        cell weights, combined with the omnibus statistic by min-p as in :meth:`CohortLinear.joint_test`.
        Otherwise the estimated post-period ATT(g, t) are removed before permuting (approximately exact)."""
        from impact.inference.randomization import randomization_joint_test

        window = self.pretreatment_columns
        inside = (self.cell_time < window) & (self.cell_base < window) & ~self.cell_reference
        # each cell the rows weigh inside the window, as a row of its own: aggregated rows (e.g. the dynamic
        # leads) weigh cells by cohort shares of the realised assignment (sampling weights make them depend
        # on which clusters are treated), and a statistic that depends on the realised assignment is not exact
        used = inside & np.any(omega != 0, axis=0) if window >= 2 else np.zeros_like(inside)
        rows = np.eye(len(inside))[used]
        options = {"n_permutations": self.n_permutations, "seed": self.seed, "studentize": self.studentize,
                   "unit_word": self.unit_word, "chunk": 250}
        if len(rows):
            gap = np.where(used, self.cell_time - self.cell_base, 0).astype(float)
            trend = gap / np.dot(gap, gap)
            stacked = np.vstack([rows, trend])
            components = self.components_rc(stacked, np.zeros((len(stacked), self.K + 1, self.Yb.shape[1])), self.Yb)
            test = randomization_joint_test(components, self.scheme(), np.arange(len(rows)), trend=len(rows), **options)
            test["method"] += f", confined to the {window} periods before the earliest start"
            test["pre_periods"] = window
            test["assumption"] = (f"sharp null: outcomes in the {window} periods before the earliest start do not "
                                  "depend on which clusters start when (parallel pre-trends, no anticipation); exact, "
                                  "since no cluster is treated in those periods under any assignment")
            return test
        effects = np.zeros((self.K + 1, self.Yb.shape[1]))
        for j in np.flatnonzero(self.cell_post & ~self.cell_reference):
            effects[self.cell_cohort[j], self.cell_time[j]] = cell_att[j]
        S1_0 = self.Yb - effects[self.labels] * self.S0  # imputed untreated outcomes, as cluster-period sums
        components = self.components_rc(omega, np.zeros((omega.shape[0], self.K + 1, self.Yb.shape[1])), S1_0)
        test = randomization_joint_test(components, self.scheme(), np.arange(omega.shape[0]), **options)
        test["assumption"] = ("sharp null: no pre-trends, and post-treatment effects equal to the estimated "
                              "ATT(g, t) (removed before permuting start years; approximately exact)")
        return test


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


def rescaled_covariance(V: np.ndarray, se: np.ndarray) -> np.ndarray:
    """``V`` with its variances replaced by the reported squared standard errors (correlations kept).

    Under randomisation inference the reported SEs are those the intervals imply, so joint tests and
    ``honest()`` built on a result's ``vcov`` use the valid scale; rows without a finite SE get NaN
    rather than an optimistic analytic value."""
    analytic = np.sqrt(np.clip(np.diag(V), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(analytic > 0, se / analytic, np.nan)
    if np.allclose(ratio[np.isfinite(ratio)], 1.0):
        return V
    return V * np.outer(ratio, ratio)


def event_time_randomization(
    effects,
    V: np.ndarray,
    *,
    L: np.ndarray | None,
    fit,
    panel,
    obs: np.ndarray,
    obs_event_time: np.ndarray,
    inference: str,
    reason: str | None,
    n_permutations: int,
    seed: int | None,
    level: float,
    where: str,
    cluster_name: str,
    unit_name: str,
    W: np.ndarray | None = None,
    pretrend: tuple[np.ndarray, np.ndarray, list, np.ndarray] | None = None,
):
    """Randomisation inference for an event-study regression (event_study, sun_abraham).

    The reported rows are ``L @ coef`` with ``coef = (X'X)^-1 X'y`` on the absorbed design, so each row
    is a linear map of the outcome, ``W = L (X'X)^-1 X'``. In a balanced panel without covariates or
    weights, units of the same cohort have identical rows of the design, so ``W`` is constant within
    cohort-period and the estimator is a fixed map of cohort-period sums (:class:`CohortLinear`).

    ``W`` (R, n) may be given directly for other linear estimators (imputation: the BJS weights).
    ``pretrend = (W_leads (q, n2), obs2, lead event times, effect per obs)`` replaces the pre-trend
    test of the leads in the rows by a separate linear estimator of leads on a sub-sample (the BJS
    regression on untreated observations), permuted with ``effect`` removed from the outcome.

    Returns ``(effects, vcov, pretrend_test, description)`` with randomisation p-values, intervals and
    implied SEs, or None when ``inference="auto"`` keeps the analytic path.
    """
    from impact.inference.randomization import adoption_scheme, choose_randomization

    unit_codes = panel.unit_codes[obs]
    time_codes = panel.time_codes[obs]
    units, unit_idx = np.unique(unit_codes, return_inverse=True)
    periods, time_idx = np.unique(time_codes, return_inverse=True)
    N, T = len(units), len(periods)
    cohort_unit = np.zeros(N)
    cohort_unit[unit_idx] = panel.cohort[obs]
    if reason is None and (panel.covariates.shape[1] or panel.weights is not None):
        reason = "covariates or weights make the estimate depend on more than cohort-period sums (not implemented)"
    if reason is None and len(obs) != N * T:
        reason = "the estimation sample is not a balanced panel"
    starts, cohort_code = np.unique(cohort_unit, return_inverse=True)
    if starts[0] == 0:  # never treated: code K (last)
        cohort_code = np.where(cohort_code == 0, len(starts) - 1, cohort_code - 1)
        K = len(starts) - 1
    else:
        K = len(starts)
    labels, Yb, block_units, n_blocks = cohort_code, None, np.ones(N), N
    cluster_values = np.asarray(panel.cluster_values)[obs]
    if reason is None and cluster_name != unit_name:
        clusters_obs, _ = pd_factorize(cluster_values)
        cluster_of_unit = np.full(N, -1)
        cluster_of_unit[unit_idx] = clusters_obs
        if np.any(cluster_of_unit[unit_idx] != clusters_obs):
            reason = f"units move between clusters of {cluster_name!r}"
        else:
            G = int(cluster_of_unit.max()) + 1
            if G < N:
                first = np.full(G, -1)
                first[cluster_of_unit] = cohort_code
                size = np.bincount(cluster_of_unit, minlength=G)
                if np.any(first[cluster_of_unit] != cohort_code):
                    reason = f"start years differ within clusters of {cluster_name!r}, so they cannot be permuted across clusters"
                elif not np.all(size == size[0]):
                    reason = "clusters differ in size (not implemented)"
                else:
                    labels, block_units, n_blocks = first, size.astype(float), G
    n_treated = int(np.count_nonzero(labels != K))
    if not choose_randomization(inference, n_treated_units=n_treated, n_untreated_units=len(labels) - n_treated,
                                n_units=len(labels), supported=reason, where=where):
        return None
    Y = np.zeros((N, T))
    Y[unit_idx, time_idx] = panel.y[obs]
    if n_blocks < N:
        Yb = np.zeros((n_blocks, T))
        np.add.at(Yb, cluster_of_unit, Y)
    else:
        Yb = Y
    if W is None:  # W = L (X'X)^-1 X' on the absorbed design (its first columns are the reported coefficients)
        X = fit.X
        W = L @ np.linalg.solve(X.T @ X, X.T)[: L.shape[1]]  # (R, n)
    alpha = np.zeros((W.shape[0], K + 1, T))
    code_obs = cohort_code[unit_idx]
    alpha[:, code_obs, time_idx] = W  # every unit of a cohort writes the same value ...
    if not np.allclose(alpha[:, code_obs, time_idx], W, atol=1e-9 * max(1.0, float(np.abs(W).max()))):
        raise RuntimeError(f"{where}: estimator weights are not constant within cohort-period")  # ... checked here
    row_e = effects["event_time"].to_numpy(dtype=float)
    is_ref = effects["reference"].to_numpy(dtype=bool) if "reference" in effects.columns else np.zeros(len(row_e), bool)
    e_cell = np.full((K + 1, T), np.nan)
    e_cell[code_obs, time_idx] = obs_event_time
    M = np.zeros_like(alpha)
    for r, ev in enumerate(row_e):
        if is_ref[r]:
            continue
        M[r] = (e_cell >= 0) if np.isnan(ev) else (e_cell == ev)
    word = f"{n_blocks} {'clusters' if n_blocks < N else 'units'} ({cluster_name})"
    adoption_scheme(labels, never_code=K, where=where, unit_word=word)
    treated_from = np.where((e_cell >= 0).any(axis=1), np.argmax(e_cell >= 0, axis=1), T)  # NaN >= 0 is False
    ctx = CohortLinear(Yb=Yb, labels=labels.astype(np.int64), K=K, block_units=block_units, unit_word=word,
                       n_permutations=int(n_permutations), seed=seed, onset=treated_from)
    ri = ctx.run(alpha, M, level)
    out = effects.copy()
    keep = ~is_ref
    notes = np.where(keep, ri.row_notes(ctx.treated_blocks(M)), None)
    if any(n is not None for n in notes):  # tidy() appends the note to the method of the unbounded rows
        out["inference"] = notes
    out.loc[keep, "p_value"] = ri.p_value[keep]
    out.loc[keep, "conf_low"] = ri.conf_low[keep]
    out.loc[keep, "conf_high"] = ri.conf_high[keep]
    out.loc[keep, "std_error"] = ri.std_error[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        out.loc[keep, "statistic"] = out.loc[keep, "estimate"] / ri.std_error[keep]
    out.loc[keep, "df"] = np.inf
    se_all = out["std_error"].to_numpy(dtype=float)
    V_new = rescaled_covariance(V, np.where(keep, se_all, np.nan))
    # the pre-trend test: leads jointly zero, permuting Y with the estimated post-period effects removed
    estimate_by_e = {float(e): float(v) for e, v, ref in zip(row_e, out["estimate"], is_ref) if np.isfinite(e) and not ref}
    headline = float(out.loc[np.isnan(row_e), "estimate"].iloc[0]) if np.isnan(row_e).any() else 0.0
    effect_cells = np.where(e_cell >= 0, np.vectorize(lambda v: estimate_by_e.get(float(v), headline))(np.nan_to_num(e_cell, nan=-1.0)), 0.0)
    pre_rows = np.flatnonzero(keep & (row_e < 0))
    test = None
    if pretrend is not None:
        W2, obs2, lead_times, effect_obs = pretrend
        u2 = np.searchsorted(units, panel.unit_codes[obs2])
        t2 = np.searchsorted(periods, panel.time_codes[obs2])
        alpha2 = np.zeros((W2.shape[0], K + 1, T))
        alpha2[:, cohort_code[u2], t2] = W2
        if not np.allclose(alpha2[:, cohort_code[u2], t2], W2, atol=1e-9 * max(1.0, float(np.abs(W2).max()))):
            raise RuntimeError(f"{where}: pre-trend weights are not constant within cohort-period")
        total = np.zeros((K + 1, T))
        count = np.zeros((K + 1, T))
        np.add.at(total, (code_obs, time_idx), effect_obs)
        np.add.at(count, (code_obs, time_idx), 1.0)
        effect_cells = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        test = ctx.joint_test(alpha2, effect_cells, "imputed treatment effects")
        test["event_times"] = [int(v) for v in lead_times]
        test["null"] = "all pre-treatment event-time effects (leads) = 0"
    elif len(pre_rows):
        test = ctx.joint_test(alpha[pre_rows], effect_cells, "estimated event-time effects")
        test["event_times"] = [int(v) for v in row_e[pre_rows]]
        test["null"] = "all pre-treatment event-time effects = 0"
    return out, V_new, test, ri.description()


def pd_factorize(values):
    import pandas as pd

    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), len(uniques)


def pretrend_randomization(run, *, n_units: int):
    """The randomisation pre-trend test of an event-time design whose effects ``inference="auto"`` keeps
    analytic (at least 50 treated and untreated units), or None.

    Just above that threshold the analytic CR1 pre-trend F-tests of ``event_study`` and ``sun_abraham``
    rejected a true null 7.7-8.7% of the time at 5% (``analyses/simulations/few_treated_threshold.csv``,
    50 of 120 and 60 of 200 units), as ``att_gt``'s Wald tests did, so the pre-test permutes start years
    whenever the data can be permuted and at most :data:`impact.inference.randomization.RI_MAX_UNITS`
    units exist. ``run(mode)`` calls :func:`event_time_randomization` with ``inference=mode``.
    """
    import warnings

    from impact.errors import EstimationError, SpecError
    from impact.inference.randomization import RI_MAX_UNITS

    if n_units > RI_MAX_UNITS:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the effects' inference already warned about what it needed to
            out = run("randomization")
    except (SpecError, EstimationError):
        return None
    return None if out is None else out[2]
