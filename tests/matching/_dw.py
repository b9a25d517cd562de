"""Dehejia & Wahba (1999) samples: NSW treated against the CPS-1 and PSID-1 comparison groups,
with their propensity-score covariates."""

from __future__ import annotations

import pandas as pd

import impact as im

DW_COVARIATES = ["age", "age2", "educ", "educ2", "married", "nodegree", "black", "hisp", "re74", "re75",
                 "re74sq", "re75sq", "u74", "u75", "educ_re74"]


def _features(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["age2"] = out["age"] ** 2
    out["educ2"] = out["educ"] ** 2
    out["re74sq"] = out["re74"] ** 2
    out["re75sq"] = out["re75"] ** 2
    out["u74"] = (out["re74"] == 0).astype(float)
    out["u75"] = (out["re75"] == 0).astype(float)
    out["educ_re74"] = out["educ"] * out["re74"]
    return out


def nsw_cps() -> pd.DataFrame:
    """NSW treated (nsw_dw, treat == 1) + CPS-1 controls; earnings in dollars."""
    nsw = im.datasets.load("nsw_dw")
    cps = im.datasets.load("nsw_dw_cps")
    df = pd.concat([nsw.loc[nsw["treat"] == 1], cps], ignore_index=True).rename(columns={"marr": "married"})
    return _features(df)


def nsw_psid() -> pd.DataFrame:
    """NSW treated + PSID-1 controls (jtrain3; earnings converted from $1000s to dollars;
    nodegree = fewer than 12 years of schooling, as in the NSW data)."""
    psid = im.datasets.load("nsw_dw_psid")
    df = pd.DataFrame({
        "treat": psid["train"], "age": psid["age"], "educ": psid["educ"], "black": psid["black"],
        "hisp": psid["hisp"], "married": psid["married"], "nodegree": (psid["educ"] < 12).astype(int),
        "re74": psid["re74"] * 1000, "re75": psid["re75"] * 1000, "re78": psid["re78"] * 1000,
    })
    return _features(df)
