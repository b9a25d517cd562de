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
    "SmallTreatedGroupWarning",
    "BalanceWarning",
    "FewAssignmentsWarning",
    "SampleWarning",
    "MissingDataWarning",
    "OverlapWarning",
    "ConvergenceWarning",
    "ImpactDeprecationWarning",
    "warn",
    "warning_title",
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

    #: How a report titles the warning (a short phrase, no trailing full stop).
    title = "Note"


class FragileInferenceWarning(ImpactWarning):
    """Standard errors or p-values may be unreliable for this design and sample."""

    title = "Fragile inference"


class FewClustersWarning(FragileInferenceWarning):
    """Too few clusters for cluster-robust inference to be trusted at face value."""

    title = "Few clusters"


class FewTreatedClustersWarning(FragileInferenceWarning):
    """Very few treated clusters: even wild-bootstrap inference can over- or under-reject."""

    title = "Very few treated clusters"


class FewAssignmentsWarning(FragileInferenceWarning):
    """So few distinct treatment assignments exist that randomisation p-values are coarse or cannot
    reach the test level."""

    title = "Few possible assignments"


class SmallComparisonWarning(FragileInferenceWarning):
    """The comparison (control or donor) pool is small."""

    title = "Small comparison group"


class SmallTreatedGroupWarning(FragileInferenceWarning):
    """A treated cohort or group has very few units, so its own effects are estimated imprecisely."""

    title = "Small treated cohort"


class SampleWarning(ImpactWarning):
    """Rows or units were removed from the estimation sample (the result records how many and why)."""

    title = "Sample changed"


class MissingDataWarning(SampleWarning):
    """Rows with missing values in the variables used were dropped."""

    title = "Missing data"


class OverlapWarning(ImpactWarning):
    """Treated and comparison units overlap poorly in their covariates or scores."""

    title = "Poor overlap"


class BalanceWarning(OverlapWarning):
    """Matching or weighting left the covariates less balanced than before (or still badly balanced)."""

    title = "Balance not achieved"


class ConvergenceWarning(ImpactWarning):
    """An iterative solver stopped before meeting its tolerance."""

    title = "No convergence"


def warning_title(category: str) -> str | None:
    """The report title of the impact warning class named ``category``, or None if it is not one."""
    cls = globals().get(category)
    if isinstance(cls, type) and issubclass(cls, ImpactWarning):
        return cls.title
    return None


class ImpactDeprecationWarning(ImpactWarning, DeprecationWarning):
    """An argument was renamed or will be removed; the message names its replacement."""


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
