"""Classification losses as pure functions over soft targets, with one thin module.

All take logits (N, C) and a target distribution t (N, C) (one-hot, smoothed, or mixed by
MixUp/CutMix) and return the batch mean.

- cross-entropy:            L = -sum_j t_j log softmax(z)_j
- label smoothing:          t' = (1 - eps) t + eps / C
- focal (Lin et al. 2017):  L = -sum_j t_j (1 - p_j)^gamma log p_j
- logit-adjusted CE (Menon et al. 2021): CE on z_j + tau log pi_j, pi the train class prior;
  Balanced Softmax (Ren et al. 2020) is the tau = 1 case.
Seed 000 §4 lists these as options of the teacher recipe.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(y, num_classes).float()


def smooth_targets(t: torch.Tensor, eps: float) -> torch.Tensor:
    return t * (1.0 - eps) + eps / t.shape[1]


def soft_cross_entropy(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -(t * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def focal_loss(logits: torch.Tensor, t: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    logp = F.log_softmax(logits.float(), dim=1)
    return -(t * (1.0 - logp.exp()).pow(gamma) * logp).sum(1).mean()


def logit_adjusted_cross_entropy(logits: torch.Tensor, t: torch.Tensor, log_prior: torch.Tensor,
                                 tau: float = 1.0) -> torch.Tensor:
    return soft_cross_entropy(logits.float() + tau * log_prior.to(logits.device), t)


def log_prior(class_counts) -> torch.Tensor:
    """log(count / total), with a pseudo-count of 1 for a class missing from training (finite, not -inf)."""
    counts = torch.as_tensor(np.asarray(class_counts, np.float64)).clamp_min(1.0).float()
    return (counts / counts.sum()).log()


def balanced_softmax_loss(logits: torch.Tensor, t: torch.Tensor, class_counts) -> torch.Tensor:
    return logit_adjusted_cross_entropy(logits, t, log_prior(class_counts), 1.0)


KINDS = ("ce", "focal", "balanced_softmax", "logit_adjusted")


class ClassificationLoss(nn.Module):
    """The teacher objective chosen by ``train.loss`` with ``train.label_smoothing`` applied to targets."""

    def __init__(self, kind: str = "ce", label_smoothing: float = 0.0, focal_gamma: float = 2.0,
                 class_counts: np.ndarray | None = None, tau: float = 1.0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"loss: expected one of {', '.join(KINDS)}, got {kind!r}")
        self.kind, self.eps, self.gamma, self.tau = kind, label_smoothing, focal_gamma, tau
        if kind in ("balanced_softmax", "logit_adjusted"):
            if class_counts is None:
                raise ValueError(f"loss '{kind}' needs the training class counts")
            if kind == "balanced_softmax":
                self.tau = 1.0
        self.register_buffer("log_prior", log_prior(np.ones(1) if class_counts is None else class_counts))

    def forward(self, logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = smooth_targets(t, self.eps) if self.eps > 0 else t
        if self.kind == "focal":
            return focal_loss(logits, t, self.gamma)
        if self.kind in ("balanced_softmax", "logit_adjusted"):
            return logit_adjusted_cross_entropy(logits, t, self.log_prior, self.tau)
        return soft_cross_entropy(logits, t)
