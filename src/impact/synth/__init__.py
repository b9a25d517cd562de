"""Synthetic control family: Abadie synthetic control with placebo inference and synthetic DiD."""

from impact.synth.control import SyntheticControlResult, synthetic_control
from impact.synth.sdid import SyntheticDiDResult, sdid

__all__ = ["synthetic_control", "SyntheticControlResult", "sdid", "SyntheticDiDResult"]
