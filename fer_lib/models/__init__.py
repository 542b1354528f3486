"""Models: ``create_model`` (timm-style registry), ArcFace head, CBAM-lite classifier, MicroSegFormer (+ LMSA),
the audio-visual classifier."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..config import ModelConfig
from .arcface import ArcFaceHead, LinearHead, arcface_logits, arcface_margin
from .classifier import FERClassifier, create_fer_classifier
from .segformer import LMSA, MicroSegFormer, create_segmenter
from .size import count_parameters

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


def is_model(arch: str) -> bool:
    """Whether ``create_model`` can build ``arch`` (registered here, or a timm model name)."""
    import timm

    return arch in _REGISTRY or timm.is_model(arch)


@register_model
def microsegformer(cfg, num_classes: int) -> nn.Module:
    """MicroSegFormer (+ LMSA when ``cfg.lmsa``), asserted under the face-parsing challenge's parameter limit."""
    return create_segmenter(cfg, num_classes)


__all__ = ["LMSA", "ArcFaceHead", "FERClassifier", "LinearHead", "MicroSegFormer", "arcface_logits", "arcface_margin",
           "count_parameters", "create_model", "create_segmenter", "is_model", "register_model"]
