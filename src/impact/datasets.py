"""Bundled datasets (see data/README.md for source, licence and citation of each).

``load("mpdta")`` returns a fresh DataFrame. In a source checkout the files are read from the
repository's ``data/`` folder; an installed wheel carries them as package data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from impact.errors import DataError

__all__ = ["data_dir", "load", "available"]


def data_dir() -> Path:
    """The folder holding the bundled data."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data", here.parents[1] / "data"):
        if candidate.is_dir():
            return candidate
    raise DataError("the bundled data folder was not found; reinstall impact from a full checkout.")


def available() -> list[str]:
    """Names of the bundled datasets."""
    return sorted(p.stem for p in data_dir().glob("*.csv"))


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset by name (e.g. ``"mpdta"``, ``"organ_donations"``)."""
    path = data_dir() / f"{name}.csv"
    if not path.is_file():
        raise DataError(f"no bundled dataset named {name!r}; available: {', '.join(available())}.")
    return pd.read_csv(path)
