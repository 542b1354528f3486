"""Joint image/mask augmentation for face parsing with torchvision transforms v2 (seed 001's policies).

The image is a ``tv_tensors.Image`` and the mask a ``tv_tensors.Mask``, so one random draw moves both: geometric
transforms resample the mask with nearest-neighbour interpolation (labels are never blended) and fill it with
background (0); colour jitter touches the image only. The horizontal flip also **swaps the left/right labels**
(l_eye <-> r_eye, l_brow <-> r_brow, l_ear <-> r_ear): a subject's left eye appears on the image's right, and after a
flip it is still the subject's left eye that is drawn on the (new) right -- a flip that keeps the labels teaches
the model that left and right are interchangeable, a known pitfall of face-parsing code.

- baseline (seed 001): flip 0.5, rotation 15 deg, scale 0.9-1.1, jitter brightness 0.2 / contrast 0.2 / saturation 0.1
- strong (seed 001):   flip 0.5, rotation 20 deg, scale 0.85-1.15, jitter 0.3 / 0.3 / 0.15

Two implementations of one policy: ``joint_transform`` per pair on the loader (torchvision v2), and
``SegBatchAugment`` for the whole batch in one pass on the training device (``augment.batched``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..config import SegAugmentConfig
from .dataset import item_seed, seeded, view_seed
from .faceparse import flip_permutation
from .transforms import luma, uniform


class RandomHorizontalFlipSwapLR(v2.RandomHorizontalFlip):
    """Horizontal flip of image and mask that relabels the mask's left/right classes (``perm[c]``)."""

    def __init__(self, p: float, perm: np.ndarray):
        super().__init__(p)
        self.perm = torch.as_tensor(perm, dtype=torch.uint8)

    def transform(self, inpt, params):
        out = super().transform(inpt, params)
        if isinstance(out, tv_tensors.Mask):
            out = tv_tensors.wrap(self.perm[out.long()], like=out)
        return out


def joint_transform(aug: SegAugmentConfig, perm: np.ndarray | None = None) -> v2.Compose:
    """Flip (with the L/R swap) -> rotation + scale (one affine) -> colour jitter (image only)."""
    perm = flip_permutation() if perm is None else perm
    ops = []
    if aug.hflip > 0:
        ops.append(RandomHorizontalFlipSwapLR(aug.hflip, perm))
    if aug.rotation > 0 or tuple(aug.scale) != (1.0, 1.0):
        ops.append(v2.RandomAffine(degrees=aug.rotation, scale=tuple(aug.scale),
                                   interpolation=v2.InterpolationMode.BILINEAR, fill={tv_tensors.Mask: 0, "others": 0}))
    if aug.brightness or aug.contrast or aug.saturation:
        ops.append(v2.ColorJitter(brightness=aug.brightness or None, contrast=aug.contrast or None,
                                  saturation=aug.saturation or None))
    return v2.Compose(ops)


class SegArrayDataset(Dataset):
    """``(image uint8 (3, H, W), mask uint8 (H, W))`` pairs from arrays, jointly augmented by ``transform``.

    After ``set_epoch(seed, epoch)`` the transform of item ``i`` draws from ``(seed, epoch, i)`` only (replayable)."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, transform=None):
        self.images, self.masks, self.transform = images, masks, transform
        self.view_seed: int | None = None

    def set_epoch(self, seed: int, epoch: int) -> None:
        self.view_seed = view_seed(seed, epoch)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(self.images[i])).permute(2, 0, 1))
        m = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(self.masks[i])))
        if self.transform is not None:
            if self.view_seed is None:
                x, m = self.transform(x, m)
            else:
                with seeded(item_seed(self.view_seed, i)):
                    x, m = self.transform(x, m)
        return x.as_subclass(torch.Tensor), m.as_subclass(torch.Tensor)


JITTER = ("brightness", "contrast", "saturation")


class SegBatchAugment(nn.Module):
    """uint8 images (N, 3, S, S) and label maps (N, S, S) on the device -> each pair jointly augmented in one batched
    pass: ``joint_transform``'s policy, drawn per pair from the module's own generator (``reseed``: an epoch's views
    replay, whatever else consumed random numbers). Images come out as float in [0, 1], label maps as int64.

    - flip (probability ``hflip``) then rotation in [-rotation, rotation] degrees and scale in ``scale`` about the
      centre, composed into one output -> input map ``theta = F A^-1`` (F = diag(-1, 1) when flipped, A = s R(a))
      and sampled with ``grid_sample``: bilinear for the image, nearest for the labels (never blended), both 0 (black,
      background) outside the image; a flipped pair's labels are then relabelled ``perm[label]`` (left <-> right).
      The image equals ``v2.functional.affine`` without a fill (its ``fill=0``, as ``joint_transform`` passes, also
      scales the pixels along the border by their coverage a second time);
    - colour jitter with ``ColorJitter``'s definitions, factor f uniform in [max(0, 1 - v), 1 + v]: brightness
      ``f x``, contrast ``f x + (1 - f) mean(gray(x))``, saturation ``f x + (1 - f) gray(x)``, each clamped to
      [0, 1] -- in this fixed order, where ``ColorJitter`` draws an order per image.
    """

    def __init__(self, aug: SegAugmentConfig, perm: np.ndarray | None = None):
        super().__init__()
        self.aug = aug
        perm = flip_permutation() if perm is None else perm
        self.register_buffer("perm", torch.as_tensor(np.asarray(perm), dtype=torch.long), persistent=False)
        self.generator: torch.Generator | None = None

    def reseed(self, seed: int, device) -> None:
        """Draw from a generator of this module's own, seeded by ``seed`` (the engine calls it every epoch)."""
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def draw(self, n: int, device) -> dict[str, torch.Tensor]:
        """One batch's random parameters, per pair: ``flip`` (bool), ``angle`` (degrees, clockwise, as
        ``v2.functional.affine``), ``scale``, and a factor per enabled jitter (``brightness``, ...)."""
        aug = self.aug
        params = {"flip": uniform(n, 0, 1, device, self.generator) < aug.hflip,
                  "angle": uniform(n, -aug.rotation, aug.rotation, device, self.generator),
                  "scale": uniform(n, *aug.scale, device, self.generator)}
        for name in JITTER:
            if getattr(aug, name):
                params[name] = uniform(n, max(0.0, 1 - getattr(aug, name)), 1 + getattr(aug, name), device,
                                       self.generator)
        return params

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.apply(images, masks, self.draw(images.shape[0], images.device))

    def apply(self, images: torch.Tensor, masks: torch.Tensor, params: dict[str, torch.Tensor]):
        """(float images in [0, 1], int64 label maps) of ``draw``'s ``params`` applied to uint8 pairs."""
        n = images.shape[0]
        x = images.float().div_(255.0)
        flip, angle = params["flip"], torch.deg2rad(params["angle"])
        cos, sin = torch.cos(angle) / params["scale"], torch.sin(angle) / params["scale"]
        sign, zero = torch.where(flip, -1.0, 1.0), torch.zeros_like(cos)
        theta = torch.stack([torch.stack([sign * cos, sign * sin, zero], 1),
                             torch.stack([-sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, [n, 1, *x.shape[-2:]], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        labels = F.grid_sample(masks.unsqueeze(1).float(), grid, mode="nearest", padding_mode="zeros",
                               align_corners=False).squeeze(1).long()
        labels = torch.where(flip.view(n, 1, 1), self.perm[labels], labels)
        for name in JITTER:
            if name not in params:
                continue
            f = params[name].view(n, 1, 1, 1)
            if name == "brightness":
                x = x * f
            else:
                other = luma(x).mean((1, 2, 3), keepdim=True) if name == "contrast" else luma(x)
                x = f * x + (1 - f) * other
            x = x.clamp(0.0, 1.0)
        return x, labels
