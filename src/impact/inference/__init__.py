"""Inference written once: covariance matrices, fixed-effect absorption, bootstrap engines."""

from impact.inference.absorb import FixedEffects, absorb
from impact.inference.vcov import VCOV_KINDS, Covariance, linear_vcov, wald_test

__all__ = ["FixedEffects", "absorb", "Covariance", "linear_vcov", "wald_test", "VCOV_KINDS"]
