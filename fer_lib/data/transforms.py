"""Input pipeline: a cheap per-sample stage on the loader, the geometric/photometric work batched on the device.

Per-sample stage (``sample_transform``, DataLoader workers, uint8 CHW): only policies that
need it (timm RandAugment, torchvision's AutoAugment); otherwise images pass through as uint8,
so loading a 48x48 FER batch is a memcpy.

Batched stage (``BatchAugment``, on the training device, uint8 NCHW -> normalised float):
seed 000 §8.3's light augmentation, sampled independently per image --

- random resized crop (area ``crop_scale``, aspect 0.9..1.1) + horizontal flip + rotation,
  composed into one affine map and applied with ``grid_sample`` at the output size (so
  FER's 48 px images are upsampled to 224 px once, on the GPU, in ``paper``);
- brightness and contrast jitter (torchvision ColorJitter's definitions);
- normalisation and explicit grayscale handling: ``in_chans=3`` repeats the gray channel;
- random erasing (timm).

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


def sample_transform(aug: AugmentConfig | None, img_size: int):
    """Per-sample policy on uint8 CHW tensors, or None when the config asks for none."""
    if aug is None or not aug.rand_augment:
        return None
    from timm.data.auto_augment import rand_augment_transform

    ra = rand_augment_transform(aug.rand_augment, {"translate_const": int(img_size * 0.45),
                                                   "img_mean": (128, 128, 128)})
    return v2.Compose([v2.ToPILImage(), ra, v2.PILToTensor()])


def random_affine(n: int, aug: AugmentConfig, device) -> torch.Tensor:
    """(n, 2, 3) maps from output to input coordinates: resized crop, flip, rotation."""
    lo, hi = aug.crop_scale
    area = torch.empty(n, device=device).uniform_(lo, hi)
    log_r = torch.empty(n, device=device).uniform_(math.log(0.9), math.log(1.1))
    w, h = torch.sqrt(area * log_r.exp()), torch.sqrt(area / log_r.exp())
    misfit = (w > 1) | (h > 1)  # like torchvision's fallback: a crop that does not fit becomes square
    w, h = torch.where(misfit, area.sqrt(), w), torch.where(misfit, area.sqrt(), h)
    cx = (torch.rand(n, device=device) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, device=device) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(n, device=device) < aug.hflip, -1.0, 1.0)
    rot = (torch.rand(n, device=device) * 2 - 1) * math.radians(aug.rotation)
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
        self.erase = None
        if aug is not None and aug.random_erasing > 0:
            from timm.data.random_erasing import RandomErasing

            self.erase = RandomErasing(aug.random_erasing, mode="pixel", device="cpu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().div_(255.0)
        n = x.shape[0]
        if self.aug is None:
            if x.shape[-2:] != (self.size, self.size):
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                                  align_corners=False)
        else:
            grid = F.affine_grid(random_affine(n, self.aug, x.device), [n, x.shape[1], self.size, self.size],
                                 align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
            x = self._jitter(x)
        if x.shape[1] == 1 and self.in_chans == 3:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        if self.erase is not None:
            self.erase.device = x.device
            x = self.erase(x)
        return x

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        n, dev = x.shape[0], x.device
        if self.aug.brightness > 0:
            b = self.aug.brightness
            x = x * torch.empty(n, 1, 1, 1, device=dev).uniform_(1 - b, 1 + b)
        if self.aug.contrast > 0:
            c = self.aug.contrast
            gray = x.mean(1, keepdim=True) if x.shape[1] == 1 else (
                0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
            m = gray.mean((2, 3), keepdim=True)
            x = (x - m) * torch.empty(n, 1, 1, 1, device=dev).uniform_(1 - c, 1 + c) + m
        return x.clamp_(0.0, 1.0)
