"""The audio-visual emotion classifier of seed 004 (and OGM-GE): two timm encoders, concatenation fusion.

- audio: a timm CNN on the 1-channel log spectrogram (B, 1, 257, 188) -> pooled features a (B, D_a);
- visual: a timm CNN on each of the T frames (B*T, C, S, S) -> pooled features averaged over the frames
  v (B, D_v) (OGM-GE pools its visual map over time and space together: the same average);
- fusion: one linear layer on [a, v] -> logits; its weight splits into halves W = [W_a, W_v], which give OGM-GE's
  unimodal logits ``a W_a^T + b / 2`` and ``v W_v^T + b / 2``;
- optional unimodal heads (linear on a, on v) for the unimodal loss ``gamma * (CE_a + CE_v)`` of seed 004.
Inputs arrive raw -- spectrograms in float16, frames in uint8 -- and are normalised inside with statistics of the
training split held as buffers, so a stored model is self-contained. ``audio_pool`` > 1 average-pools the
spectrogram first (a CPU budget option; 1 keeps the recipe's 257 x 188 input).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..config import AVModelConfig
from .weights import create_timm


class AVClassifier(nn.Module):
    def __init__(self, cfg: AVModelConfig, num_classes: int, unimodal_heads: bool = False):
        super().__init__()
        self.audio = create_timm(cfg.audio_arch, cfg.audio_pretrained, cfg.audio_pretrained_file, "model.audio",
                                 num_classes=0, in_chans=1, drop_rate=cfg.drop_rate, **cfg.audio_kwargs)
        self.visual = create_timm(cfg.visual_arch, cfg.visual_pretrained, cfg.visual_pretrained_file, "model.visual",
                                  num_classes=0, in_chans=cfg.visual_in_chans, drop_rate=cfg.drop_rate,
                                  **cfg.visual_kwargs)
        self.dims = (self.audio.num_features, self.visual.num_features)
        self.fusion = nn.Linear(sum(self.dims), num_classes)
        self.heads = nn.ModuleDict({"audio": nn.Linear(self.dims[0], num_classes),
                                    "visual": nn.Linear(self.dims[1], num_classes)}) if unimodal_heads else None
        self.visual_in_chans, self.audio_pool = cfg.visual_in_chans, cfg.audio_pool
        for name in ("audio_mean", "audio_std", "frame_mean", "frame_std"):
            self.register_buffer(name, torch.zeros(1) if "mean" in name else torch.ones(1))

    def set_input_stats(self, audio_mean: float, audio_std: float, frame_mean: float, frame_std: float) -> None:
        for name, v in zip(("audio_mean", "audio_std", "frame_mean", "frame_std"),
                           (audio_mean, audio_std, frame_mean, frame_std)):
            getattr(self, name).fill_(float(v))

    def encode(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """(audio features (B, D_a), visual features (B, D_v)) of raw inputs ``x = (spectrogram, frames)``."""
        spec, frames = x
        s = ((spec.float() - self.audio_mean) / self.audio_std).unsqueeze(1)
        if self.audio_pool > 1:
            s = nn.functional.avg_pool2d(s, self.audio_pool, ceil_mode=True)
        a = self.audio(s)
        b, t = frames.shape[:2]
        f = frames.float().div(255.0)
        f = f.permute(0, 1, 4, 2, 3) if f.ndim == 5 else f.unsqueeze(2)  # (B, T, C, S, S)
        if f.shape[2] == 1 and self.visual_in_chans == 3:
            f = f.expand(-1, -1, 3, -1, -1)
        f = (f - self.frame_mean) / self.frame_std
        v = self.visual(f.reshape(b * t, *f.shape[2:])).reshape(b, t, -1).mean(1)
        return a, v

    def halves(self, a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """OGM-GE's unimodal logits from the two halves of the fusion layer (each gets half the bias)."""
        w, bias = self.fusion.weight, self.fusion.bias
        return a @ w[:, :self.dims[0]].T + bias / 2, v @ w[:, self.dims[0]:].T + bias / 2

    def forward_all(self, x) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, v = self.encode(x)
        return self.fusion(torch.cat([a, v], 1)), a, v

    def forward(self, x) -> torch.Tensor:
        return self.forward_all(x)[0]


class WithHalves(nn.Module):
    """Inference view: the fused logits followed by both halves' logits, (B, 3 C) (for ``engine.predict``)."""

    def __init__(self, model: AVClassifier):
        super().__init__()
        self.model = model

    def forward(self, x):
        logits, a, v = self.model.forward_all(x)
        return torch.cat([logits, *self.model.halves(a, v)], 1)
