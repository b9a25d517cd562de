"""Synthetic control family: Abadie synthetic control with placebo inference and synthetic DiD."""

from impact.synth.control import SyntheticControlResult, augmented_synthetic_control, synthetic_control
from impact.synth.sdid import SyntheticDiDResult, sdid

__all__ = ["synthetic_control", "augmented_synthetic_control", "SyntheticControlResult", "sdid", "SyntheticDiDResult"]
