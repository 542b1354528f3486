"""Figures for the report (matplotlib/seaborn): labelled axes, units and legends, readable in print."""
from .av import mode_curves
from .calibration import ece_vs_temperature, reliability_diagram
from .classification import accuracy_vs_latency, confusion_grid, confusion_heatmap, pareto_front, per_class_f1_bars
from .data import av_example, class_distribution_bars, image_grid, mask_overlay_grid
from .segmentation import PALETTE, colorize, prediction_grid
from .style import set_style
from .training import training_curves

__all__ = ["PALETTE", "accuracy_vs_latency", "av_example", "class_distribution_bars", "colorize", "confusion_grid",
           "confusion_heatmap", "ece_vs_temperature",
           "image_grid", "mask_overlay_grid", "mode_curves", "pareto_front", "per_class_f1_bars", "prediction_grid", "reliability_diagram",
           "set_style", "training_curves"]
