"""Inference written once: covariance matrices, fixed-effect absorption, bootstrap engines,
the permutation (randomisation-inference) engine and multiple-testing adjustments."""

from impact.inference.absorb import FixedEffects, absorb
from impact.inference.few_treated import RESIDUAL_METHODS, ResidualInference, residual_inference
from impact.inference.htz import CR2_WALD_TESTS, LinearFit, cr2_wald_test, htz_test
from impact.inference.multiplier import MultiplierDraws, multiplier_bootstrap
from impact.inference.multiple import benjamini_hochberg, holm, romano_wolf, westfall_young
from impact.inference.permutation import AssignmentScheme, null_distribution, permutation_p_values, permutation_test
from impact.inference.vcov import VCOV_KINDS, Covariance, SmallSampleCorrection, linear_vcov, ssc, wald_test

__all__ = [
    "FixedEffects", "absorb", "Covariance", "linear_vcov", "wald_test", "VCOV_KINDS", "SmallSampleCorrection", "ssc",
    "AssignmentScheme", "null_distribution", "permutation_p_values", "permutation_test",
    "holm", "benjamini_hochberg", "westfall_young", "romano_wolf",
    "multiplier_bootstrap", "MultiplierDraws",
    "cr2_wald_test", "htz_test", "LinearFit", "CR2_WALD_TESTS",
    "residual_inference", "ResidualInference", "RESIDUAL_METHODS",
]
