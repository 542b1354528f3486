"""The optimizer of a run, with timm's parameter groups: no weight decay on 1-d parameters nor on what the model's
``no_weight_decay()`` names (ViT position embeddings and class token), optional layer-wise LR decay.

``train.optimizer``: ``adamw`` (seed 000 and most runs) or ``sgd`` (SGD with momentum, no Nesterov: seed 004 and
OGM-GE; timm's name for it is ``momentum``).

Layer-wise decay (BEiT-style, seed 000 §9.7's ViT recommendation) scales the learning rate of
backbone layer i (0 = embeddings, L = the last block) by ``layer_decay ** (L + 1 - i)``; the
classifier head (and CBAM-lite) sit on top with scale 1.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.optim import create_optimizer_v2
from timm.optim import param_groups_layer_decay

from ..config import TrainConfig

TIMM_NAMES = {"adamw": "adamw", "sgd": "momentum"}


def _kwargs(cfg: TrainConfig) -> dict:
    kw = dict(lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        kw["momentum"] = cfg.momentum
    return kw


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    opt = TIMM_NAMES[cfg.optimizer]
    if not cfg.layer_decay:
        return create_optimizer_v2(model, opt, **_kwargs(cfg))
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        return create_optimizer_v2(model, opt, layer_decay=cfg.layer_decay, **_kwargs(cfg))
    skip = backbone.no_weight_decay() if hasattr(backbone, "no_weight_decay") else ()
    groups = param_groups_layer_decay(backbone, weight_decay=cfg.weight_decay, no_weight_decay_list=tuple(skip),
                                      layer_decay=cfg.layer_decay)
    for g in groups:  # the head is the top layer: the backbone's top layer sits one step below it
        g["lr_scale"] = g.get("lr_scale", 1.0) * cfg.layer_decay
    in_backbone = {id(p) for p in backbone.parameters()}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in in_backbone]
    groups += [{"params": [p for p in rest if p.ndim > 1], "weight_decay": cfg.weight_decay, "lr_scale": 1.0},
               {"params": [p for p in rest if p.ndim <= 1], "weight_decay": 0.0, "lr_scale": 1.0}]
    return create_optimizer_v2([g for g in groups if g["params"]], opt, **_kwargs(cfg))
