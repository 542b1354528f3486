"""In-memory labelled image sets and their torch ``Dataset`` view.

Every loader returns a ``LabeledImages``: decoded uint8 pixels, integer labels, a split
name per image, the class names, a source id per image (path or CSV row), a content
fingerprint, and notes that say what the loader decided (e.g. "val carved from train").
"""
from __future__ import annotations

import hashlib
import random
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

SPLITS = ("train", "val", "test")


@dataclass
class LabeledImages:
    name: str
    images: np.ndarray  # uint8, (N, H, W) grayscale or (N, H, W, 3)
    labels: np.ndarray  # int64, (N,)
    split: np.ndarray  # str, (N,), values in SPLITS
    classes: tuple[str, ...]
    ids: np.ndarray  # str, (N,): file path or row id
    notes: tuple[str, ...] = ()
    fingerprint: str = field(default="")

    def __post_init__(self):
        if not self.fingerprint:
            self.fingerprint = content_fingerprint(self.images, self.labels, self.split, self.classes)

    def __len__(self):
        return len(self.labels)

    @property
    def channels(self) -> int:
        return 1 if self.images.ndim == 3 else self.images.shape[-1]

    def subset(self, split: str) -> "LabeledImages":
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        idx = np.flatnonzero(self.split == split)
        if len(idx) == 0:
            raise ValueError(f"{self.name}: split '{split}' is empty")
        return self.take(idx)

    def take(self, idx: np.ndarray) -> "LabeledImages":
        return replace(self, images=self.images[idx], labels=self.labels[idx], split=self.split[idx],
                       ids=self.ids[idx], fingerprint="")

    def counts(self) -> pd.DataFrame:
        """Images per class (rows) and split (columns), in class order."""
        df = pd.crosstab(pd.Categorical(np.asarray(self.classes)[self.labels], categories=self.classes),
                         pd.Categorical(self.split, categories=[s for s in SPLITS if (self.split == s).any()]),
                         dropna=False)
        df.index.name, df.columns.name = "class", "split"
        return df

    def pixel_stats(self, split: str = "train") -> tuple[float, float]:
        """Mean and std of pixel values in [0, 1] over a split (for input normalisation)."""
        x = self.images[self.split == split].astype(np.float64) / 255.0
        return float(x.mean()), float(x.std())


def content_fingerprint(images, labels, split, classes) -> str:
    """sha256 of pixels, labels, splits and class names: equal data, equal fingerprint."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images))  # the buffer itself: no copy of the pixels
    h.update(np.asarray(labels, np.int64).tobytes())
    h.update("|".join(map(str, split)).encode())
    h.update("|".join(classes).encode())
    return h.hexdigest()


def derived_fingerprint(fingerprint: str, split, ids) -> str:
    """The fingerprint of a set derived from one with ``fingerprint`` (a subset, new splits): what changed is
    hashed onto the old fingerprint instead of re-hashing the pixels."""
    h = hashlib.sha256(fingerprint.encode())
    h.update("|".join(map(str, split)).encode() + b"\0" + "|".join(map(str, ids)).encode())
    return h.hexdigest()


def stratified_pick(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a stratified random subset of size ``n`` (sorted; each class keeps its share)."""
    if n >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels, random_state=seed)
    return np.sort(idx)


def carve_val(data: LabeledImages, fraction: float, seed: int, into: str = "val") -> LabeledImages:
    """Move a stratified ``fraction`` of train into a new split ``into`` (fixed seed)."""
    train = np.flatnonzero(data.split == "train")
    n_val = int(round(fraction * len(train)))
    try:
        pick = train[stratified_pick(data.labels[train], n_val, seed)]
    except ValueError as e:  # sklearn: too few images for a stratified split
        raise ValueError(f"{data.name}: cannot carve a stratified {into} split of {fraction:.0%} (data.val_fraction) "
                         f"from {len(train)} train images: {e}") from None
    split = data.split.astype("<U5").copy()
    split[pick] = into
    note = (f"no {into} split in the source: {len(pick)} train images ({fraction:.0%}, stratified, "
            f"seed {seed}) became {into}")
    return replace(data, split=split, notes=data.notes + (note,), fingerprint="")


def limit_splits(data: LabeledImages, limit: dict[str, int], seed: int) -> LabeledImages:
    """Keep a stratified subset of at most ``limit[split]`` images per split (CPU budgets)."""
    if not limit:
        return data
    keep, notes = [], []
    for s in SPLITS:
        idx = np.flatnonzero(data.split == s)
        if s in limit and limit[s] < len(idx):
            idx = idx[stratified_pick(data.labels[idx], limit[s], seed)]
            notes.append(f"{s} limited to {len(idx)} of {int((data.split == s).sum())} images (stratified, seed {seed})")
        keep.append(idx)
    out = data.take(np.sort(np.concatenate(keep)))
    return replace(out, notes=data.notes + tuple(notes))


#: the primes that spread (training seed, epoch, rank, item, step) into distinct RNG seeds: the one home of every
#: seed derived from a run's training seed (engine.fit.epoch_seed, the datasets' views, the AV noise)
SEED_PRIME, EPOCH_PRIME, RANK_PRIME, ITEM_PRIME = 1_000_003, 7_919, 104_729, 10_000_019


def view_seed(seed: int, epoch: int) -> int:
    """The seed an epoch's augmented views are drawn from; item ``i`` uses ``item_seed(view_seed, i)``."""
    return (seed * SEED_PRIME + epoch) * ITEM_PRIME


def item_seed(epoch_view_seed: int, index: int) -> int:
    return (epoch_view_seed + int(index)) % 2**63


@contextmanager
def seeded(seed: int):
    """Run a block with torch's CPU generator, numpy and python RNGs seeded by ``seed``; restore them afterwards.

    Only the CPU generator is seeded (what CPU-side transforms draw from): ``torch.manual_seed`` would also queue
    a lazy CUDA/XPU/MTIA re-seed with a formatted stack trace on every call, about a tenth of a training step's
    time when called per sample."""
    state = (torch.random.get_rng_state(), np.random.get_state(), random.getstate())
    torch.default_generator.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state[0])
        np.random.set_state(state[1])
        random.setstate(state[2])


class ImageArrayDataset(Dataset):
    """``(image tensor, label)`` pairs from uint8 arrays; the transform sees a CHW uint8 tensor.

    After ``set_epoch(seed, epoch)`` the per-sample transform of image ``i`` draws its randomness
    from ``(seed, epoch, i)`` only, so an epoch's views can be replayed exactly (e.g. to reuse cached
    teacher outputs) whatever else consumed random numbers in between.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None):
        self.images, self.labels, self.transform = images, np.asarray(labels, np.int64), transform
        self.view_seed: int | None = None

    def set_epoch(self, seed: int, epoch: int) -> None:
        self.view_seed = view_seed(seed, epoch)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i])
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
        if self.transform is not None:
            if self.view_seed is None:
                x = self.transform(x)
            else:
                with seeded(item_seed(self.view_seed, i)):
                    x = self.transform(x)
        return x, int(self.labels[i])
