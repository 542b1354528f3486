"""Losses: pure functions with thin ``nn.Module`` wrappers."""
from .classification import (ClassificationLoss, balanced_softmax_loss, focal_loss, logit_adjusted_cross_entropy,
                             one_hot, smooth_targets, soft_cross_entropy)

__all__ = ["ClassificationLoss", "balanced_softmax_loss", "focal_loss", "logit_adjusted_cross_entropy", "one_hot",
           "smooth_targets", "soft_cross_entropy"]
