"""Errors and warnings raised by impact.

Every error names what is wrong, where (argument, column, unit, rows) and how to fix it. Warnings
flag inference that is fragile or data that was changed; they are also recorded on the result
(``Result.warnings``) so that reports can repeat them in words.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from collections.abc import Iterator

__all__ = [
    "ImpactError",
    "DataError",
    "SpecError",
    "EstimationError",
    "RegistryError",
    "ImpactWarning",
    "FragileInferenceWarning",
    "FewClustersWarning",
    "FewTreatedClustersWarning",
    "SmallComparisonWarning",
    "FewAssignmentsWarning",
    "SampleWarning",
    "MissingDataWarning",
    "OverlapWarning",
    "ConvergenceWarning",
    "warn",
    "recording_warnings",
]


class ImpactError(Exception):
    """Base class of every error raised by impact."""


class DataError(ImpactError, ValueError):
    """The data cannot be used as given: missing columns, wrong types, duplicates, empty groups."""


class SpecError(ImpactError, ValueError):
    """An option, argument or programme spec is invalid."""


class EstimationError(ImpactError, RuntimeError):
    """The estimator cannot give a trustworthy answer: singular design, no overlap, no convergence."""


class RegistryError(ImpactError, RuntimeError):
    """The results registry cannot be opened or written: not a registry, damaged, locked too long."""


class ImpactWarning(UserWarning):
    """Base class of every warning issued by impact."""


class FragileInferenceWarning(ImpactWarning):
    """Standard errors or p-values may be unreliable for this design and sample."""


class FewClustersWarning(FragileInferenceWarning):
    """Too few clusters for cluster-robust inference to be trusted at face value."""


class FewTreatedClustersWarning(FragileInferenceWarning):
    """Very few treated clusters: even wild-bootstrap inference can over- or under-reject."""


class FewAssignmentsWarning(FragileInferenceWarning):
    """So few distinct treatment assignments exist that randomisation p-values are coarse or cannot
    reach the test level."""


class SmallComparisonWarning(FragileInferenceWarning):
    """The comparison (control or donor) pool is small."""


class SampleWarning(ImpactWarning):
    """Rows or units were removed from the estimation sample (the result records how many and why)."""


class MissingDataWarning(SampleWarning):
    """Rows with missing values in the variables used were dropped."""


class OverlapWarning(ImpactWarning):
    """Treated and comparison units overlap poorly in their covariates or scores."""


class ConvergenceWarning(ImpactWarning):
    """An iterative solver stopped before meeting its tolerance."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_recorders: contextvars.ContextVar[tuple[list[str], ...]] = contextvars.ContextVar(
    "impact_warning_recorders", default=()
)


def _stacklevel_outside_package() -> int:
    """Stack level of the first frame outside the impact package (the user's call site)."""
    import sys

    frame = sys._getframe(2)  # the caller of warn()
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def warn(category: type[ImpactWarning], message: str) -> None:
    """Issue ``message`` as ``category`` at the user's call site and record it on active results."""
    for log in _recorders.get():
        log.append(f"{category.__name__}: {message}")
    warnings.warn(message, category, stacklevel=_stacklevel_outside_package())


@contextlib.contextmanager
def recording_warnings() -> Iterator[list[str]]:
    """Collect the impact warnings issued inside the block (they are still shown to the user)."""
    log: list[str] = []
    token = _recorders.set(_recorders.get() + (log,))
    try:
        yield log
    finally:
        _recorders.reset(token)
