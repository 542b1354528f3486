"""The synthetic FER dataset: train/val/test drawn independently from ``synthetic.py``.

Like real FER2013 it contains a few exact duplicates (within train and across splits, some
with conflicting labels) and near-blank images; they are injected deterministically so
that section 00's audit has something real to find, and the notes say how many.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..config import config_hash
from .cache import cached
from .dataset import LabeledImages
from .synthetic import FER_CLASSES, synthetic_faces

_GENERATOR_SOURCE = Path(__file__).with_name("synthetic.py")


def load_synthetic_fer(n_train: int, n_val: int, n_test: int, seed: int = 0, size: int = 48,
                       label_noise: float = 0.06, cache_dir: Path | None = None) -> LabeledImages:
    code = hashlib.sha256(_GENERATOR_SOURCE.read_bytes() + Path(__file__).read_bytes()).hexdigest()
    key = config_hash(n_train, n_val, n_test, seed, size, label_noise, code)
    return cached("synthetic-fer", key,
                  lambda: make_synthetic_fer(n_train, n_val, n_test, seed, size, label_noise), cache_dir)


def make_synthetic_fer(n_train, n_val, n_test, seed=0, size=48, label_noise=0.06) -> LabeledImages:
    parts = [synthetic_faces(n, seed * 1000 + i, size, label_noise) for i, n in enumerate((n_train, n_val, n_test))]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts]).astype(np.int64)
    split = np.repeat(np.array(["train", "val", "test"]), [n_train, n_val, n_test])
    notes = inject_audit_artifacts(np.random.default_rng([seed, 99]), images, labels, split)
    return LabeledImages(
        name="SyntheticFER", images=images, labels=labels, split=split, classes=FER_CLASSES,
        ids=np.array([f"{s}/{i:06d}" for i, s in enumerate(split)]),
        notes=(f"synthetic faces, seed {seed}, {size}x{size}, label noise {label_noise:.0%}",) + notes)


def inject_audit_artifacts(rng, images, labels, split) -> tuple[str, ...]:
    """Copy some train images over others (in place) and blank a few; returns the notes."""
    train, other = np.flatnonzero(split == "train"), np.flatnonzero(split != "train")
    n_within, n_cross = max(2, len(train) // 100), max(2, len(other) // 100)
    n_blank = max(1, len(labels) // 500)
    pick = rng.choice(train, size=2 * n_within + n_cross, replace=False)
    src, dst = pick[:n_within], pick[n_within:2 * n_within]
    images[dst] = images[src]
    keep_label = rng.random(n_within) < 0.5  # half of the copies carry a conflicting label, as in FER2013
    labels[dst[keep_label]] = labels[src[keep_label]]
    cross_src, cross_dst = pick[2 * n_within:], rng.choice(other, size=n_cross, replace=False)
    images[cross_dst], labels[cross_dst] = images[cross_src], labels[cross_src]
    blank = rng.choice(np.setdiff1d(np.arange(len(labels)), np.concatenate([pick, cross_dst])), n_blank, replace=False)
    tone = rng.integers(0, 256, size=(n_blank, 1, 1))
    images[blank] = np.clip(tone + rng.integers(-1, 2, size=images[blank].shape), 0, 255).astype(np.uint8)
    return (f"injected for the audit: {n_within} within-train duplicates, {n_cross} train images copied "
            f"into val/test, {n_blank} near-blank images",)
