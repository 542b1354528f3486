"""Metrics: pure functions (classification, calibration, temperature scaling, bootstrap, intervals and verdicts,
selection on validation)."""
from .bootstrap import bootstrap_ci
from .calibration import (CALIBRATION_METRICS, adaptive_ece, brier, calibration_metrics, classwise_ece, ece, mce, nll,
                          reliability_bins, softmax)
from .selection import SelectionError, best_on_validation
from .stats import (NOT_DETECTABLE, Interval, describe, fmt_interval, fmt_mean_ci, mean_ci, paired_bootstrap,
                    paired_bootstrap_values, paired_seeds, verdict)
from .classification import MINORITY, classification_metrics, confusion_matrix, minority_f1, per_class_f1
from .temperature import (SEED_GRID, apply_vector_scaling, fit_temperature, fit_vector_scaling, select_temperature,
                          temperature_sweep)

__all__ = ["CALIBRATION_METRICS", "Interval", "NOT_DETECTABLE", "SelectionError", "best_on_validation", "describe",
           "fmt_interval", "fmt_mean_ci", "mean_ci", "paired_bootstrap", "paired_bootstrap_values", "paired_seeds",
           "verdict", "MINORITY", "SEED_GRID", "adaptive_ece", "apply_vector_scaling", "bootstrap_ci",
           "brier", "calibration_metrics", "classification_metrics", "classwise_ece", "confusion_matrix", "ece",
           "fit_temperature", "fit_vector_scaling", "mce", "minority_f1", "nll", "per_class_f1", "reliability_bins",
           "select_temperature", "softmax", "temperature_sweep"]
