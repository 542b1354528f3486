"""A many-class, CIFAR-sized synthetic stand-in (smoke profile of sections 04 and 05).

14 classes = 7 expressions x 2 colour casts, balanced, 32x32 RGB, expressions drawn at full intensity.
The colour cast is easy and the expression hard, so classes share structure (same expression, other
cast; same cast, confusable expression) -- the "dark knowledge" a teacher's soft targets carry and a
small student gains from.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..config import config_hash
from .cache import cached
from .dataset import LabeledImages
from .synthetic import FER_CLASSES, synthetic_faces

CASTS = {"warm": (1.0, 0.7, 0.55), "cool": (0.55, 0.75, 1.0)}
INTENSITY = (0.9, 1.2)
CLASSES = tuple(f"{e}/{c}" for e in FER_CLASSES for c in CASTS)


def load_synthetic_cifar(n_train: int, n_val: int, n_test: int, seed: int = 0, size: int = 32,
                         label_noise: float = 0.03, cache_dir: Path | None = None) -> LabeledImages:
    code = hashlib.sha256(Path(__file__).read_bytes() + Path(__file__).with_name("synthetic.py").read_bytes())
    key = config_hash(n_train, n_val, n_test, seed, size, label_noise, code.hexdigest())
    return cached("synthetic-cifar", key,
                  lambda: make_synthetic_cifar(n_train, n_val, n_test, seed, size, label_noise), cache_dir)


def make_synthetic_cifar(n_train, n_val, n_test, seed=0, size=32, label_noise=0.03) -> LabeledImages:
    imgs, labels = [], []
    for i, n in enumerate((n_train, n_val, n_test)):
        rng = np.random.default_rng([seed, 7, i])
        y = rng.integers(0, len(CLASSES), n)
        gray, expr_noisy, _, _ = synthetic_faces(n, seed * 1000 + 500 + i, size, label_noise,
                                                 labels=y // len(CASTS), intensity=INTENSITY)
        cast = np.array(list(CASTS.values()))[y % len(CASTS)] * rng.uniform(0.85, 1.15, (n, 3))
        rgb = gray[..., None].astype(np.float32) * cast[:, None, None, :]
        imgs.append(np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8))
        labels.append(expr_noisy * len(CASTS) + y % len(CASTS))  # label noise acts on the expression part
    split = np.repeat(np.array(["train", "val", "test"]), [n_train, n_val, n_test])
    return LabeledImages(
        name=f"SyntheticCIFAR-{len(CLASSES)}", images=np.concatenate(imgs), labels=np.concatenate(labels).astype(np.int64),
        split=split, classes=CLASSES, ids=np.array([f"{s}/{i:06d}" for i, s in enumerate(split)]),
        notes=(f"synthetic faces, 7 expressions x 3 colour casts = {len(CLASSES)} classes, {size}x{size} RGB, "
               f"seed {seed}, expression label noise {label_noise:.0%}",))
