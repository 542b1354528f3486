"""Models: ``create_model`` (timm-style registry), ArcFace head, CBAM-lite classifier."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..config import ModelConfig
from .arcface import ArcFaceHead, LinearHead, arcface_logits, arcface_margin
from .classifier import FERClassifier, create_fer_classifier

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a non-timm architecture under its function name (timm's ``@register_model`` idiom)."""
    _REGISTRY[fn.__name__] = fn
    return fn


def create_model(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """A project architecture if ``cfg.arch`` is registered here, else a FER classifier on a timm backbone."""
    if cfg.arch in _REGISTRY:
        return _REGISTRY[cfg.arch](cfg, num_classes)
    return create_fer_classifier(cfg, num_classes)


__all__ = ["ArcFaceHead", "FERClassifier", "LinearHead", "arcface_logits", "arcface_margin", "create_model",
           "register_model"]
