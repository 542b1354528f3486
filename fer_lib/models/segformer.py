"""MicroSegFormer: a SegFormer-style face parser under the challenge's parameter limit (seed 001).

Encoder (Xie et al., 2021, "SegFormer"), four stages, each:

- an **overlapping patch embedding**: ``Conv2d(k, stride s, padding k // 2)`` + LayerNorm (k 7 / s 4 for stage 1,
  k 3 / s 2 after), so stage i sees the image at 1/4, 1/8, 1/16, 1/32;
- blocks of **efficient self-attention**: keys and values come from the tokens reduced by a strided
  ``Conv2d(R, stride R)`` + LayerNorm (sequence reduction ratio R), which cuts attention's cost by R^2, then a
  **Mix-FFN**: ``Linear -> depthwise 3x3 Conv -> GELU -> Linear`` (the 3x3 conv leaks position, so no position
  embedding is needed); pre-norm residuals with stochastic depth;
- a LayerNorm on the stage's output.

Decoder (all-MLP): each stage's map goes through a Linear to ``decoder_dim`` channels and is upsampled to 1/4; the
four are concatenated and fused by a 1x1 Conv + BN + ReLU, then dropout and a 1x1 Conv classifier. Logits come out
at 1/4 of the input size; ``forward`` upsamples them bilinearly to the input size.

**LMSA** (lightweight multi-scale attention, seed 001), on the fused ``decoder_dim`` map before the classifier:
``x + SE(BN(pointwise 1x1(depthwise 3x3(x))))`` -- convolutions without bias, squeeze-excite with reduction 4 and
no bias. With the seed repository's settings (widths 32/64/128/192, depths 1/2/2/2, one head, reductions 8/4/2/1,
MLP ratio 2, decoder 128, 19 classes) it adds 25,984 parameters to 1,721,939: 1,747,923 in all, under the
challenge's limit of 1,821,085, which ``create_segmenter`` asserts.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, SEModule, trunc_normal_

from .size import count_parameters
from ..config import PARAM_LIMIT, ConfigError, SegModelConfig


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int, patch: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, stride, padding=patch // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EfficientSelfAttention(nn.Module):
    """Multi-head attention whose keys/values come from a sequence reduced ``sr`` times along each axis."""

    def __init__(self, dim: int, heads: int, sr: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr = nn.Conv2d(dim, dim, sr, sr) if sr > 1 else None
        self.norm = nn.LayerNorm(dim) if sr > 1 else None

    def forward(self, x, h: int, w: int):
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, c // self.heads).transpose(1, 2)
        if self.sr is not None:
            x = self.norm(self.sr(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2))
        k, v = self.kv(x).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class MixFFN(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, h: int, w: int):
        x = self.fc1(x)
        b, n, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(self.act(x))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, sr: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), EfficientSelfAttention(dim, heads, sr)
        self.norm2, self.mlp = nn.LayerNorm(dim), MixFFN(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x, h: int, w: int):
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class LMSA(nn.Module):
    """Lightweight multi-scale attention: ``x + SE(BN(pw(dw(x))))`` (seed 001)."""

    def __init__(self, dim: int, se_ratio: int = 4):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False)
        self.pw = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim)
        self.se = SEModule(dim, rd_channels=dim // se_ratio, bias=False)

    def forward(self, x):
        return x + self.se(self.bn(self.pw(self.dw(x))))


class MicroSegFormer(nn.Module):
    def __init__(self, num_classes: int, in_chans: int = 3, widths=(32, 64, 128, 192), depths=(1, 2, 2, 2),
                 heads=(1, 1, 1, 1), sr_ratios=(8, 4, 2, 1), mlp_ratio: float = 2.0, decoder_dim: int = 128,
                 lmsa: bool = True, se_ratio: int = 4, drop_rate: float = 0.1, drop_path_rate: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.embeds, self.stages, self.norms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        prev, k = in_chans, 0
        for i, (w, d, h, sr) in enumerate(zip(widths, depths, heads, sr_ratios)):
            self.embeds.append(OverlapPatchEmbed(prev, w, 7 if i == 0 else 3, 4 if i == 0 else 2))
            self.stages.append(nn.ModuleList(Block(w, h, sr, mlp_ratio, rates[k + j]) for j in range(d)))
            self.norms.append(nn.LayerNorm(w))
            prev, k = w, k + d
        self.linear_c = nn.ModuleList(nn.Linear(w, decoder_dim) for w in widths)
        self.fuse = nn.Sequential(nn.Conv2d(len(widths) * decoder_dim, decoder_dim, 1, bias=False),
                                  nn.BatchNorm2d(decoder_dim), nn.ReLU(inplace=True))
        self.lmsa = LMSA(decoder_dim, se_ratio) if lmsa else nn.Identity()
        self.dropout = nn.Dropout2d(drop_rate)
        self.classifier = nn.Conv2d(decoder_dim, num_classes, 1)
        self.apply(_init)

    def features(self, x) -> list[torch.Tensor]:
        """The four stages' maps, (B, C_i, H / 2^(i+2), W / 2^(i+2))."""
        out = []
        for embed, blocks, norm in zip(self.embeds, self.stages, self.norms):
            x, h, w = embed(x)
            for blk in blocks:
                x = blk(x, h, w)
            x = norm(x).transpose(1, 2).reshape(x.shape[0], -1, h, w)
            out.append(x)
        return out

    def forward_logits(self, x) -> torch.Tensor:
        """Class logits at 1/4 of the input resolution."""
        feats = self.features(x)
        size = feats[0].shape[-2:]
        ups = []
        for lin, f in zip(self.linear_c, feats):
            b, _, h, w = f.shape
            y = lin(f.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)
            ups.append(y if (h, w) == size else F.interpolate(y, size=size, mode="bilinear", align_corners=False))
        y = self.lmsa(self.fuse(torch.cat(ups[::-1], 1)))  # SegFormer's order: deepest stage first
        return self.classifier(self.dropout(y))

    def forward(self, x) -> torch.Tensor:
        """Class logits at the input resolution (bilinear upsampling of the 1/4-resolution logits)."""
        return F.interpolate(self.forward_logits(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


def _init(m: nn.Module) -> None:
    """SegFormer's initialisation: truncated normal for Linear, fan-out normal for Conv, unit LayerNorm."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def create_segmenter(cfg: SegModelConfig, num_classes: int, limit: int | None = PARAM_LIMIT) -> MicroSegFormer:
    """The face parser ``cfg`` describes; raises when it has ``limit`` or more trainable parameters."""
    model = MicroSegFormer(num_classes, cfg.in_chans, cfg.widths, cfg.depths, cfg.heads, cfg.sr_ratios, cfg.mlp_ratio,
                           cfg.decoder_dim, cfg.lmsa, cfg.se_ratio, cfg.drop_rate, cfg.drop_path_rate)
    n = count_parameters(model)
    if limit is not None and n >= limit:
        raise ConfigError(f"model: {n:,} trainable parameters; the face-parsing challenge allows fewer than "
                          f"{limit:,} (reduce model.widths, depths or decoder_dim)")
    return model
