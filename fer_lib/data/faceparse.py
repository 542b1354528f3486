"""CelebAMask-HQ face-parsing mini set (the CE7454/AI6126 challenge layout).

    <root>/train/images/<id>.jpg   RGB images
    <root>/train/masks/<id>.png    single-channel masks, values 0..18 (``PART_CLASSES``)
    <root>/test/images/<id>.jpg    images without masks (challenge test phase)

Left/right pairs (eyes, brows, ears) swap under a horizontal flip (``FLIP_PAIRS``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .fer2013 import DatasetError
from .synthetic import PART_CLASSES

FLIP_PAIRS = (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear"))


def faceparse_pairs(root: str | Path, split: str = "train") -> list[tuple[Path, Path | None]]:
    """(image, mask or None) for every image of ``split``, sorted by id."""
    root = Path(root)
    img_dir = root / split / "images"
    if not img_dir.is_dir():
        raise DatasetError(f"face-parsing images not found: {img_dir} (expected <root>/{split}/images/*.jpg"
                           f" and <root>/{split}/masks/*.png)")
    pairs = []
    for img in sorted(img_dir.glob("*.jpg")):
        mask = root / split / "masks" / f"{img.stem}.png"
        pairs.append((img, mask if mask.is_file() else None))
    if not pairs:
        raise DatasetError(f"no *.jpg images in {img_dir}")
    return pairs


def load_faceparse_examples(root: str | Path, n: int = 6, size: int = 256, seed: int = 0):
    """``n`` random train (image, mask) pairs resized to ``size`` (masks with nearest neighbour)."""
    pairs = [p for p in faceparse_pairs(root, "train") if p[1] is not None]
    pick = np.random.default_rng(seed).choice(len(pairs), size=min(n, len(pairs)), replace=False)
    imgs, masks = [], []
    for i in sorted(pick):
        img, mask = pairs[i]
        imgs.append(np.asarray(Image.open(img).convert("RGB").resize((size, size), Image.BILINEAR)))
        m = np.asarray(Image.open(mask).resize((size, size), Image.NEAREST))
        if m.max() >= len(PART_CLASSES):
            raise DatasetError(f"{mask}: label {m.max()} outside 0..{len(PART_CLASSES) - 1}")
        masks.append(m)
    return np.stack(imgs), np.stack(masks)
