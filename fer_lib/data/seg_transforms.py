"""Joint image/mask augmentation for face parsing with torchvision transforms v2 (seed 001's policies).

The image is a ``tv_tensors.Image`` and the mask a ``tv_tensors.Mask``, so one random draw moves both: geometric
transforms resample the mask with nearest-neighbour interpolation (labels are never blended) and fill it with
background (0); colour jitter touches the image only. The horizontal flip also **swaps the left/right labels**
(l_eye <-> r_eye, l_brow <-> r_brow, l_ear <-> r_ear): a subject's left eye appears on the image's right, and after a
flip it is still the subject's left eye that is drawn on the (new) right -- a flip that keeps the labels teaches
the model that left and right are interchangeable, a known pitfall of face-parsing code.

- baseline (seed 001): flip 0.5, rotation 15 deg, scale 0.9-1.1, jitter brightness 0.2 / contrast 0.2 / saturation 0.1
- strong (seed 001):   flip 0.5, rotation 20 deg, scale 0.85-1.15, jitter 0.3 / 0.3 / 0.15
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..config import SegAugmentConfig
from .dataset import item_seed, seeded, view_seed
from .faceparse import flip_permutation


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
