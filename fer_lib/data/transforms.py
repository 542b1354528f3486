"""Input pipeline: a cheap per-sample stage on the loader, the geometric/photometric work batched on the device.

Per-sample stage (``sample_transform``, DataLoader workers, uint8 CHW): only policies that
need it (torchvision's AutoAugment, timm RandAugment); otherwise images pass through as uint8,
so loading a 48x48 FER batch is a memcpy.

Batched stage (``BatchAugment``, on the training device, uint8 NCHW -> normalised float):
seed 000 §8.3's light augmentation, sampled independently per image --

- random resized crop (area ``crop_scale``, aspect 0.9..1.1) + horizontal flip + rotation,
  composed into one affine map and applied with ``grid_sample`` at the output size (so
  FER's 48 px images are upsampled to 224 px once, on the GPU, in ``paper``);
- brightness and contrast jitter (torchvision ColorJitter's definitions);
- normalisation and explicit grayscale handling: ``in_chans=3`` repeats the gray channel;
- random erasing (Zhong et al. 2020, timm's "pixel" mode).

The batched stage draws from its own generator (``reseed``), so an epoch's views do not depend on
how many random numbers the model consumed in between (dropout, drop-path): views can be replayed.

``BatchAugment(aug=None)`` is the evaluation transform: resize + normalise.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.transforms import v2

from ..config import AugmentConfig

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def normalize_stats(input_norm: str, in_chans: int, dataset_stats: tuple[float, float]):
    """(mean, std) per input channel: ImageNet's, or the training set's gray mean/std."""
    if input_norm == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        return (mean, std) if in_chans == 3 else ((sum(mean) / 3,), (sum(std) / 3,))
    return (dataset_stats[0],) * in_chans, (dataset_stats[1],) * in_chans


AUTO_AUGMENT = {"cifar10": v2.AutoAugmentPolicy.CIFAR10, "imagenet": v2.AutoAugmentPolicy.IMAGENET,
                "svhn": v2.AutoAugmentPolicy.SVHN}


def sample_transform(aug: AugmentConfig | None, img_size: int):
    """Per-sample policy on uint8 CHW tensors (torchvision AutoAugment, timm RandAugment), or None."""
    if aug is None:
        return None
    ops = []
    if aug.auto_augment:
        if aug.auto_augment not in AUTO_AUGMENT:
            raise ValueError(f"augment.auto_augment: expected one of {', '.join(AUTO_AUGMENT)}, got "
                             f"{aug.auto_augment!r}")
        ops.append(v2.AutoAugment(AUTO_AUGMENT[aug.auto_augment]))
    if aug.rand_augment:
        from timm.data.auto_augment import rand_augment_transform

        ra = rand_augment_transform(aug.rand_augment, {"translate_const": int(img_size * 0.45),
                                                       "img_mean": (128, 128, 128)})
        ops += [v2.ToPILImage(), ra, v2.PILToTensor()]
    return v2.Compose(ops) if ops else None


def luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) luma of RGB (N, 3, H, W) in [0, 1], torchvision's ``rgb_to_grayscale`` weights."""
    return 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def uniform(n: int, lo: float, hi: float, device, g: torch.Generator | None) -> torch.Tensor:
    """``n`` draws from U[lo, hi) on ``device`` from generator ``g``."""
    return torch.rand(n, device=device, generator=g) * (hi - lo) + lo


def random_affine(n: int, aug: AugmentConfig, device, g: torch.Generator | None = None) -> torch.Tensor:
    """(n, 2, 3) maps from output to input coordinates: resized crop, flip, rotation."""
    lo, hi = aug.crop_scale
    area = uniform(n, lo, hi, device, g)
    log_r = uniform(n, math.log(0.9), math.log(1.1), device, g)
    w, h = torch.sqrt(area * log_r.exp()), torch.sqrt(area / log_r.exp())
    misfit = (w > 1) | (h > 1)  # like torchvision's fallback: a crop that does not fit becomes square
    w, h = torch.where(misfit, area.sqrt(), w), torch.where(misfit, area.sqrt(), h)
    cx = uniform(n, -1, 1, device, g) * (1 - w)
    cy = uniform(n, -1, 1, device, g) * (1 - h)
    flip = torch.where(uniform(n, 0, 1, device, g) < aug.hflip, -1.0, 1.0)
    rot = uniform(n, -1, 1, device, g) * math.radians(aug.rotation)
    cos, sin = torch.cos(rot), torch.sin(rot)
    theta = torch.stack([torch.stack([w * flip * cos, -h * sin, cx], 1),
                         torch.stack([w * flip * sin, h * cos, cy], 1)], 1)
    return theta


class BatchAugment(nn.Module):
    """uint8 (N, C, h, w) -> normalised float (N, in_chans, size, size); random when ``aug`` is given."""

    def __init__(self, img_size: int, in_chans: int, mean, std, aug: AugmentConfig | None = None):
        super().__init__()
        self.size, self.in_chans, self.aug = img_size, in_chans, aug
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.generator: torch.Generator | None = None

    def reseed(self, seed: int, device) -> None:
        """Draw this transform's randomness from its own generator seeded by ``seed`` (replayable views)."""
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().div_(255.0)
        n, g = x.shape[0], self.generator
        if self.aug is None:
            if x.shape[-2:] != (self.size, self.size):
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                                  align_corners=False)
        else:
            grid = F.affine_grid(random_affine(n, self.aug, x.device, g), [n, x.shape[1], self.size, self.size],
                                 align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
            x = self._jitter(x)
        if x.shape[1] == 1 and self.in_chans == 3:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        if self.aug is not None and self.aug.random_erasing > 0:
            x = random_erasing(x, self.aug.random_erasing, g)
        return x

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        n, dev, g = x.shape[0], x.device, self.generator
        if self.aug.brightness > 0:
            b = self.aug.brightness
            x = x * uniform(n, 1 - b, 1 + b, dev, g).view(n, 1, 1, 1)
        if self.aug.contrast > 0:
            c = self.aug.contrast
            gray = x.mean(1, keepdim=True) if x.shape[1] == 1 else luma(x)
            m = gray.mean((2, 3), keepdim=True)
            x = (x - m) * uniform(n, 1 - c, 1 + c, dev, g).view(n, 1, 1, 1) + m
        return x.clamp_(0.0, 1.0)


def random_erasing(x: torch.Tensor, p: float, g: torch.Generator | None = None, scale=(0.02, 1 / 3),
                   ratio=(0.3, 3.3)) -> torch.Tensor:
    """Random Erasing (Zhong et al. 2020) on a normalised batch: with probability ``p`` per image, one
    rectangle of area ``scale`` and aspect ``ratio`` is replaced by standard-normal noise (timm's "pixel" mode)."""
    n, c, h, w = x.shape
    hit = uniform(n, 0, 1, x.device, g) < p
    area = uniform(n, *scale, x.device, g) * h * w
    r = torch.exp(uniform(n, math.log(ratio[0]), math.log(ratio[1]), x.device, g))
    eh = (area * r).sqrt().round().clamp(1, h).long()
    ew = (area / r).sqrt().round().clamp(1, w).long()
    top = (uniform(n, 0, 1, x.device, g) * (h - eh + 1)).long()
    left = (uniform(n, 0, 1, x.device, g) * (w - ew + 1)).long()
    noise = torch.randn(x.shape, device=x.device, generator=g, dtype=x.dtype)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    box = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1)) & (cols >= left.view(n, 1, 1))
           & (cols < (left + ew).view(n, 1, 1)) & hit.view(n, 1, 1)).unsqueeze(1)
    return torch.where(box, noise, x)
