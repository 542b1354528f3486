"""ArcFace head (seed 000 §5, §8.2): additive angular margin on the penultimate embedding.

With L2-normalised embedding x and class weights W_j, cos(theta_j) = <x, W_j>. Training logits

    z_j = s * cos(theta_j + m * t_j)

where t is the target distribution before label smoothing (one-hot for a hard label, the
two mixing weights under MixUp/CutMix, so each mixed class gets its share of the margin).
Where theta_j + m t_j would pass pi, the usual fallback cos(theta_j) - m t_j sin(m t_j)
keeps the logit monotone (insightface's ``easy_margin=False``). Inference logits, which
the model classifies and is calibrated with, are the plain scaled cosines s * cos(theta_j).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def arcface_logits(cos: torch.Tensor, target: torch.Tensor | None, s: float, m: float) -> torch.Tensor:
    """``s * cos(theta + m * target)`` with the monotone fallback; ``target`` is (N, C) or None."""
    if target is None or m == 0:
        return s * cos
    mt = m * target.to(cos.dtype)
    sin = torch.sqrt((1.0 - cos * cos).clamp_min(0.0))
    phi = cos * torch.cos(mt) - sin * torch.sin(mt)
    fallback = cos - mt * torch.sin(mt)
    phi = torch.where(cos > torch.cos(math.pi - mt), phi, fallback)
    return s * phi


def arcface_margin(epoch: float, m: float, plain_logits_epochs: float, warmup_epochs: float) -> float:
    """Margin schedule: 0 for ``plain_logits_epochs``, then a linear ramp over ``warmup_epochs`` to ``m``.

    ``epoch`` is fractional (epoch + step / steps_per_epoch), so the ramp is per step.
    With ``warmup_epochs = 0`` the full margin switches on at once (seed 000's initial schedule).
    """
    t = epoch - plain_logits_epochs
    if t < 0:
        return 0.0
    if warmup_epochs <= 0:
        return m
    return m * min(1.0, t / warmup_epochs)


class ArcFaceHead(nn.Module):
    def __init__(self, in_features: int, num_classes: int, s: float = 30.0, m: float = 0.35):
        super().__init__()
        self.s, self.m = s, m
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x.float(), dim=1), F.normalize(self.weight.float(), dim=1))

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None, margin: float | None = None):
        return arcface_logits(self.cosine(x), target, self.s, self.m if margin is None else margin)


class LinearHead(nn.Linear):
    """A plain linear classifier with the same call signature as ``ArcFaceHead``."""

    def forward(self, x, target=None, margin=None):  # noqa: ARG002 - signature shared with ArcFaceHead
        return super().forward(x)
