"""Figures for the report (matplotlib/seaborn): labelled axes, units and legends, readable in print."""
from .calibration import ece_vs_temperature, reliability_diagram
from .classification import confusion_heatmap, per_class_f1_bars
from .data import av_example, class_distribution_bars, image_grid, mask_overlay_grid
from .style import set_style
from .training import training_curves

__all__ = ["av_example", "class_distribution_bars", "confusion_heatmap", "ece_vs_temperature", "image_grid", "mask_overlay_grid",
           "per_class_f1_bars", "reliability_diagram", "set_style", "training_curves"]
