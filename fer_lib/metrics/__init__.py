"""Metrics: pure functions (classification, calibration, temperature scaling, bootstrap)."""
from .bootstrap import bootstrap_ci
from .calibration import (CALIBRATION_METRICS, adaptive_ece, brier, calibration_metrics, classwise_ece, ece, mce, nll,
                          reliability_bins, softmax)
from .classification import MINORITY, classification_metrics, confusion_matrix, minority_f1, per_class_f1
from .temperature import (SEED_GRID, apply_vector_scaling, fit_temperature, fit_vector_scaling, select_temperature,
                          temperature_sweep)

__all__ = ["CALIBRATION_METRICS", "MINORITY", "SEED_GRID", "adaptive_ece", "apply_vector_scaling", "bootstrap_ci",
           "brier", "calibration_metrics", "classification_metrics", "classwise_ece", "confusion_matrix", "ece",
           "fit_temperature", "fit_vector_scaling", "mce", "minority_f1", "nll", "per_class_f1", "reliability_bins",
           "select_temperature", "softmax", "temperature_sweep"]
