"""Per-covariate balance between arms (means, differences, standardised differences)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["balance_rows"]


def balance_rows(
    frame: pd.DataFrame,
    treated: np.ndarray,
    covariates: Sequence[str],
    *,
    blocks: str | None = None,
    where: str = "balance",
) -> pd.DataFrame:
    """One row per covariate: mean by arm, difference, standardised difference, Welch p-value.

    The standardised difference divides the difference in means by the pooled standard deviation
    :math:`\\sqrt{(s_1^2 + s_0^2)/2}` (Imbens & Rubin 2015, ch. 14). With blocks the difference is the
    block-size-weighted average of within-block differences (what the blocked design compares).
    """
    if any(c not in frame.columns for c in covariates):
        raise KeyError("balance_rows: covariates must be columns of the prepared frame")
    t = np.asarray(treated, dtype=float)
    rows = []
    for cov in covariates:
        x = pd.to_numeric(frame[cov], errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(x)
        x1, x0 = x[ok & (t == 1)], x[ok & (t == 0)]
        m1, m0 = x1.mean(), x0.mean()
        s1, s0 = x1.var(ddof=1), x0.var(ddof=1)
        pooled = np.sqrt((s1 + s0) / 2)
        diff = m1 - m0
        if blocks is not None:
            b = frame[blocks].to_numpy()[ok]
            tt, xx = t[ok], x[ok]
            part = pd.DataFrame({"b": b, "t": tt, "x": xx}).groupby(["b", "t"])["x"].agg(["mean", "size"]).unstack()
            sizes = part["size"].sum(axis=1)
            within = part["mean"][1.0] - part["mean"][0.0]
            good = within.notna()
            diff = float((within[good] * sizes[good]).sum() / sizes[good].sum())
        se = np.sqrt(s1 / x1.size + s0 / x0.size)
        dof = (s1 / x1.size + s0 / x0.size) ** 2 / ((s1 / x1.size) ** 2 / (x1.size - 1) + (s0 / x0.size) ** 2 / (x0.size - 1))
        p = float(2 * stats.t.sf(abs(diff / se), dof)) if se > 0 else float("nan")
        rows.append({
            "covariate": cov, "mean_control": float(m0), "mean_treatment": float(m1), "difference": float(diff),
            "std_error": float(se),
            "std_difference": float(diff / pooled) if pooled > 0 else float("nan"),
            "variance_ratio": float(s1 / s0) if s0 > 0 else float("nan"), "p_value": p,
            "n_control": int(x0.size), "n_treatment": int(x1.size),
        })
    return pd.DataFrame(rows)

