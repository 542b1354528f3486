"""How big a model is."""
from __future__ import annotations

import torch.nn as nn


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Parameters of ``model``: the trainable ones (the face-parsing challenge's count), or all of them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
