"""``FERClassifier``: timm backbone -> (CBAM-lite) -> embedding -> ArcFace or linear head."""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers.cbam import LightCbamModule

from ..config import ConfigError, ModelConfig
from .arcface import ArcFaceHead, LinearHead
from .weights import create_timm, pretrained_kwargs  # noqa: F401 - pretrained_kwargs re-exported


class FERClassifier(nn.Module):
    """``tta="flip"``: in eval mode the logits are the mean of the image's and its mirror image's (faces are
    left-right symmetric in meaning), so every evaluation, ensemble, teacher and latency measurement sees it."""

    def __init__(self, backbone: nn.Module, head: nn.Module, cbam: nn.Module | None = None, tta: str = "none"):
        super().__init__()
        self.backbone, self.cbam, self.head, self.tta = backbone, cbam, head, tta

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate (pooled) embedding."""
        if self.cbam is None:
            return self.backbone(x)
        return self.backbone.forward_head(self.cbam(self.backbone.forward_features(x)), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits the model classifies with (scaled cosines for ArcFace), flip-averaged in eval with TTA."""
        z = self.head(self.embed(x))
        if self.tta == "flip" and not self.training:
            z = (z + self.head(self.embed(torch.flip(x, dims=[-1])))) / 2
        return z

    def forward_train(self, x: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
        """Training logits: ArcFace margin applied to ``target`` (a class distribution)."""
        return self.head(self.embed(x), target, margin)

    def backbone_parameters(self):
        return self.backbone.parameters()

    def no_weight_decay(self) -> set[str]:
        """The backbone's own no-decay set (ViT position embedding, class token), under this wrapper's prefix, so
        ``timm.optim.create_optimizer_v2`` keeps weight decay off them as timm and the ViT recipes do."""
        nwd = getattr(self.backbone, "no_weight_decay", None)
        return {f"backbone.{n}" for n in nwd()} if nwd else set()


def create_backbone(cfg: ModelConfig) -> nn.Module:
    kwargs = dict(num_classes=0, in_chans=cfg.in_chans, drop_rate=cfg.drop_rate, **cfg.model_kwargs)
    if cfg.drop_path_rate:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    return create_timm(cfg.arch, cfg.pretrained, cfg.pretrained_file, "model", **kwargs)


def create_fer_classifier(cfg: ModelConfig, num_classes: int) -> FERClassifier:
    backbone = create_backbone(cfg)
    cbam = None
    if cfg.cbam:
        if not hasattr(backbone, "forward_head") or _is_token_model(backbone):
            raise ConfigError(f"model.cbam: CBAM-lite needs a convolutional feature map; {cfg.arch} outputs tokens")
        cbam = LightCbamModule(backbone.num_features)
    if cfg.head == "arcface":
        head = ArcFaceHead(backbone.num_features, num_classes, cfg.arcface_s, cfg.arcface_m)
    else:
        head = LinearHead(backbone.num_features, num_classes)
    return FERClassifier(backbone, head, cbam, cfg.tta)


def _is_token_model(backbone: nn.Module) -> bool:
    return hasattr(backbone, "patch_embed") or hasattr(backbone, "cls_token")
