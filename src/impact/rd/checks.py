"""Falsification checks of an RD design: covariate balance at the cutoff and placebo cutoffs.

Both re-run :func:`impact.rd.rdd` and report, per row, the headline quantities (conventional
estimate, robust p-value and interval) with the bandwidth each one chose, as recommended by
Cattaneo, Idrobo and Titiunik (2020, sections 5.2 and 5.3): predetermined covariates should not
jump at the cutoff, and the outcome should not jump at cutoffs where nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from impact.data import as_list
from impact.errors import DataError, SpecError

__all__ = ["balance", "placebo_cutoffs"]

_COLUMNS = ["term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high", "bandwidth",
            "n_effective"]


def _row(term: str, res: Any) -> dict[str, Any]:
    low, high = res.conf_int()
    robust = res.tidy().set_index("term").loc["robust"]
    return {"term": term, "estimate": res.estimate, "std_error": res.std_error, "statistic": robust["statistic"],
            "p_value": res.p_value, "conf_low": low, "conf_high": high,
            "bandwidth": res.bandwidths["h_left"] if res.bandwidths["h_left"] == res.bandwidths["h_right"]
            else (res.bandwidths["h_left"] + res.bandwidths["h_right"]) / 2,
            "n_effective": res.diagnostics["n_h_left"] + res.diagnostics["n_h_right"]}


def balance(df: pd.DataFrame, *, running: str, covariates: Sequence[str], cutoff: float = 0.0,
            **options: Any) -> pd.DataFrame:
    """RD estimate of the jump in each predetermined covariate at the cutoff.

    Each covariate is treated as the outcome of a sharp RD with its own data-driven bandwidth;
    ``options`` (kernel, bandwidth, p, cluster, ...) are passed to :func:`impact.rd.rdd`. A
    covariate that jumps (small robust p-value) suggests sorting around the threshold.

    Returns
    -------
    DataFrame
        One row per covariate: ``term`` (the covariate), ``estimate`` (conventional), robust
        ``std_error``, ``statistic``, ``p_value``, ``conf_low``, ``conf_high``, ``bandwidth``
        (h; the mean of the two sides if they differ) and ``n_effective`` (observations within h).
    """
    from impact.rd.rdd import rdd

    covs = as_list(covariates)
    if not covs:
        raise SpecError("balance: name at least one covariate in covariates=.")
    if "treatment" in options:
        options = {k: v for k, v in options.items() if k != "treatment"}  # covariates jump as in a sharp design
    rows = [_row(cov, rdd(df, outcome=cov, running=running, cutoff=cutoff, **options)) for cov in covs]
    return pd.DataFrame(rows, columns=_COLUMNS)


def placebo_cutoffs(df: pd.DataFrame, *, outcome: str, running: str, cutoff: float = 0.0,
                    placebos: Sequence[float] | None = None, **options: Any) -> pd.DataFrame:
    """RD estimates at cutoffs where nothing changes.

    A placebo cutoff below the true one uses only the observations below the true cutoff (and vice
    versa), so the true effect cannot leak into the placebo estimate. By default the placebos are
    the terciles of the running variable on each side of the true cutoff (two per side).

    Returns
    -------
    DataFrame
        One row per placebo cutoff (``term`` "cutoff=..."), with the columns of :func:`balance`
        and ``cutoff``; placebos that cannot be estimated (too few observations) are listed with
        the reason in ``note`` rather than dropped.
    """
    from impact.rd.rdd import rdd

    if running not in df.columns:
        raise DataError(f"placebo_cutoffs: column running={running!r} not found in the data.")
    x = pd.to_numeric(df[running], errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(x)
    if placebos is None:
        lower, upper = x[finite & (x < cutoff)], x[finite & (x >= cutoff)]
        if lower.size == 0 or upper.size == 0:
            raise DataError(f"placebo_cutoffs: no observations on one side of the cutoff {cutoff!r}.")
        placebos = [*np.quantile(lower, [1 / 3, 2 / 3]), *np.quantile(upper, [1 / 3, 2 / 3])]
    rows = []
    for value in placebos:
        value = float(value)
        if value == cutoff:
            raise SpecError(f"placebo_cutoffs: the placebo {value!r} is the true cutoff; choose other values.")
        same_side = finite & ((x < cutoff) if value < cutoff else (x >= cutoff))
        sub = df.loc[same_side]
        term = f"cutoff={value:.6g}"
        try:
            row = _row(term, rdd(sub, outcome=outcome, running=running, cutoff=value, **options))
            row["note"] = ""
        except DataError as exc:
            row = {"term": term, **{c: np.nan for c in _COLUMNS[1:]}, "note": str(exc)}
        row["cutoff"] = value
        rows.append(row)
    return pd.DataFrame(rows, columns=[*_COLUMNS, "cutoff", "note"])
