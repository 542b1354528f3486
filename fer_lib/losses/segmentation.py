"""Face-parsing losses as pure functions over logits (N, C, H, W) and label maps (N, H, W) (seed 001).

- cross-entropy:  mean over pixels of -log softmax(z)_y
- focal (Lin et al. 2017):  mean over pixels of -(1 - p_y)^gamma log p_y  (the variant seed 001 tried and dropped)
- soft Dice over classes:  with p = softmax(z) and g the one-hot labels, per class c over the batch's pixels,
      D_c = (2 sum p_c g_c + s) / (sum p_c + sum g_c + s),  s = 1,
  and ``1 - mean D_c`` over the classes present in the batch's ground truth (classes absent from the batch would
  add a term that only pushes their probability to zero, which CE already does).
- seed 001's objective:  L = ce_weight * CE (or focal) + dice_weight * Dice, dice_weight in {1.0, 1.5, 2.0}.
All computed in float32 (safe under autocast).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    return _dice_from_probs(F.softmax(logits.float(), dim=1), target.long(), smooth)


def _dice_from_probs(p: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Dice over the classes present in ``target``, without a one-hot tensor: sum_c p_c g_c is the sum of each
    pixel's probability of its own class, grouped by that class; sum g_c is a class count."""
    c = p.shape[1]
    own = p.gather(1, target.unsqueeze(1)).flatten()
    inter = torch.zeros(c, device=p.device, dtype=p.dtype).index_add_(0, target.flatten(), own)
    count = torch.bincount(target.flatten(), minlength=c).to(p.dtype)
    dice = (2 * inter + smooth) / (p.sum((0, 2, 3)) + count + smooth)
    return 1.0 - dice[count > 0].mean()


def segmentation_loss(logits, target, ce_weight: float = 1.0, dice_weight: float = 1.0, focal: bool = False,
                      focal_gamma: float = 2.0) -> dict[str, torch.Tensor]:
    """Named, weighted terms of ``ce_weight * (CE or focal) + dice_weight * Dice`` (one shared log-softmax)."""
    target = target.long()
    logp = F.log_softmax(logits.float(), dim=1)
    out = {}
    if ce_weight:
        own = logp.gather(1, target.unsqueeze(1)).squeeze(1)
        term = -((1.0 - own.exp()).pow(focal_gamma) * own).mean() if focal else -own.mean()
        out["loss_focal" if focal else "loss_ce"] = ce_weight * term
    if dice_weight:
        out["loss_dice"] = dice_weight * _dice_from_probs(logp.exp(), target)
    return out


class SegmentationLoss(nn.Module):
    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 1.0, focal: bool = False, focal_gamma: float = 2.0):
        super().__init__()
        self.ce_weight, self.dice_weight, self.focal, self.focal_gamma = ce_weight, dice_weight, focal, focal_gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return segmentation_loss(logits, target, self.ce_weight, self.dice_weight, self.focal, self.focal_gamma)
