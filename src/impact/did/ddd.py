"""Triple differences for a two-period panel (Ortiz-Villavicencio & Sant'Anna 2025), doubly robust.

Treatment needs two conditions: the unit is in a treated group (e.g. a region with the programme,
``group = 1``) AND in an eligible partition (e.g. small firms, ``partition = 1``). Comparing the
eligible treated units with each of the other three cells gives three difference-in-differences;
the DDD is

    ATT = DiD(11 vs 10) + DiD(11 vs 01) - DiD(11 vs 00),

each DiD estimated by the doubly robust 2x2 backend of :mod:`impact.did.drdid` with its own
propensity score and outcome regression for the comparison cell. Ortiz-Villavicencio and Sant'Anna
(2025) show that this, and not the difference of two DiDs or a three-way fixed-effects regression,
is valid when covariates are needed for identification. Without covariates it equals the triple
difference of mean outcome changes (and the triple interaction of a saturated regression).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from impact.data import as_list, check_level, check_option, prepare
from impact.did.drdid import DRDID_METHODS, METHOD_NAMES, PanelComparison
from impact.errors import DataError, SmallComparisonWarning, recording_warnings, warn
from impact.results import Result, effects_table

__all__ = ["ddd"]

_CELLS = ((1, 0, 1.0, "eligible units in comparison groups (group=1, partition=0)"),
          (0, 1, 1.0, "ineligible units in treated groups (group=0, partition=1)"),
          (0, 0, -1.0, "ineligible units in comparison groups (group=0, partition=0)"))


def ddd(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    group: str,
    partition: str,
    covariates: str | list[str] | None = None,
    method: Literal["imp", "trad", "reg", "ipw", "std_ipw"] = "imp",
    weights: str | None = None,
    level: float = 0.95,
) -> Result:
    """Doubly robust triple differences (DDD) on a two-period panel.

    Parameters
    ----------
    df : DataFrame
        Long panel: one row per unit and period, exactly two periods.
    outcome, unit, time : str
        Column names.
    group : str
        1 for units in groups that receive the programme (e.g. treated regions), else 0.
    partition : str
        1 for units eligible for the programme (e.g. small firms), else 0. Treated = group x partition.
    covariates : list of str, optional
        Pre-treatment covariates (first-period values).
    method : {"imp", "trad", "reg", "ipw", "std_ipw"}
        The 2x2 estimator used for each of the three comparisons (see :func:`impact.did.drdid`).

    Returns
    -------
    Result
        Rows "ATT" (the DDD, headline) and one row per comparison cell ("DiD vs group=1,partition=0",
        ...). Standard errors from the combined influence function, sd(psi)/sqrt(n).

    Notes
    -----
    Identification: a DDD parallel-trends assumption, weaker than DiD's: the gap in untreated trends
    between eligible and ineligible units is the same in treated and comparison groups (conditional
    on covariates). With :math:`\\psi_c` the influence function of comparison c on its n_c units, the
    DDD influence function on all n units is :math:`\\sum_c s_c (n/n_c) \\psi_c`, s = (+1, +1, -1).

    References
    ----------
    Ortiz-Villavicencio, M. and Sant'Anna, P. H. C. (2025). Better understanding triple differences
    estimators. arXiv:2505.09942.
    Gruber, J. (1994). The incidence of mandated maternity benefits. *American Economic Review* 84(3),
    622-641.
    """
    where = "ddd"
    level = check_level(level, where)
    check_option("method", method, DRDID_METHODS)
    covs = as_list(covariates)
    with recording_warnings() as log:
        prepared = prepare(df, where=where,
                           roles={"outcome": outcome, "unit": unit, "time": time, "group": group,
                                  "partition": partition, "covariates": covs, "weights": weights},
                           numeric=[outcome, group, partition, *covs] + ([weights] if weights else []),
                           unique=[unit, time], unit=unit)
        frame = prepared.frame
        periods = np.sort(frame[time].unique())
        if len(periods) != 2:
            raise DataError(f"{where}: needs exactly two periods in {time!r}; found {len(periods)}.")
        pre = frame.loc[frame[time] == periods[0]].set_index(unit)
        post = frame.loc[frame[time] == periods[1]].set_index(unit)
        both = pre.index.intersection(post.index)
        if len(both) < len(pre.index.union(post.index)):
            raise DataError(f"{where}: {len(pre.index.union(post.index)) - len(both)} unit(s) are observed in only "
                            "one period; the panel DDD needs every unit in both periods.")
        pre, post = pre.loc[both], post.loc[both]
        s = pre[group].to_numpy(dtype=float)
        q = pre[partition].to_numpy(dtype=float)
        for name, values in ((group, s), (partition, q)):
            if not np.isin(values, (0, 1)).all():
                raise DataError(f"{where}: column {name!r} must be coded 0/1.")
        if not (np.array_equal(s, post[group].to_numpy(float)) and np.array_equal(q, post[partition].to_numpy(float))):
            raise DataError(f"{where}: {group!r} and {partition!r} must be constant within unit.")
        dy = post[outcome].to_numpy(dtype=float) - pre[outcome].to_numpy(dtype=float)
        X = pre[covs].to_numpy(dtype=float) if covs else None
        w = pre[weights].to_numpy(dtype=float) if weights else None
        treated = (s == 1) & (q == 1)
        n = len(dy)
        if not treated.any():
            raise DataError(f"{where}: no unit has {group}=1 and {partition}=1 (the treated cell).")
        psi = np.zeros(n)
        terms, estimates, ses = [], [], []
        for g_val, q_val, sign, label in _CELLS:
            cell = (s == g_val) & (q == q_val)
            if not cell.any():
                raise DataError(f"{where}: the comparison cell {group}={g_val}, {partition}={q_val} is empty ({label}).")
            if cell.sum() < 30:
                warn(SmallComparisonWarning, f"{where}: only {int(cell.sum())} {label}.")
            rows = treated | cell
            comparison = PanelComparison(treated[rows], None if X is None else X[rows], None if w is None else w[rows],
                                         names=tuple(covs), where=where)
            est = comparison.estimate(dy[rows], method)
            n_c = int(rows.sum())
            psi[rows] += sign * est.influence * n / n_c
            terms.append(f"DiD vs {group}={g_val},{partition}={q_val}")
            estimates.append(est.att)
            ses.append(float(np.std(est.influence, ddof=1) / np.sqrt(n_c)))
        att = estimates[0] + estimates[1] - estimates[2]
        se = float(np.std(psi, ddof=1) / np.sqrt(n))
    table = effects_table(["ATT", *terms], [att, *estimates], [se, *ses], level=level)
    return Result(
        design="ddd", estimand="ATT", effects=table, headline="ATT",
        inference="analytic standard error from the combined influence function (sd(psi)/sqrt(n)), normal critical values",
        n_obs=2 * n, outcome=outcome, level=level, n_units=n, n_treated=int(treated.sum()),
        settings={"method": method, "method_description": METHOD_NAMES[method], "covariates": covs,
                  "group": group, "partition": partition, "weights": weights,
                  "assumption": "DDD parallel trends: without the programme, the trend gap between eligible and "
                                "ineligible units would have been the same in treated and comparison groups."},
        warnings=tuple(log), sample_flow=prepared.flow,
        diagnostics={"cells": {f"{group}={a},{partition}={b}": int(((s == a) & (q == b)).sum())
                               for a in (1, 0) for b in (1, 0)}},
    )
