"""Section 00 helpers: the audit of one dataset and the pieces its figures need."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data import LabeledImages
from ..data.audit import class_distribution, duplicate_groups, integrity_summary, minority_share, near_blank
from .seeds import seed_results


@dataclass
class Audit:
    distribution: pd.DataFrame
    minority: pd.Series
    duplicates: pd.DataFrame
    blank: np.ndarray
    summary: pd.DataFrame


def audit(data: LabeledImages, near_blank_std: float = 2.0, expected_classes=None) -> Audit:
    dups = duplicate_groups(data)
    blank = near_blank(data, near_blank_std)
    return Audit(class_distribution(data), minority_share(data), dups, blank,
                 integrity_summary(data, dups, blank, expected_classes))


def shares_beside_seed(dist: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Class shares (%) of this dataset next to seed 000 §8.1.1's unified index."""
    seed = pd.DataFrame(seed_results("000")["class_distribution"]).T
    seed_share = 100 * seed.sum(1) / seed.values.sum()
    return pd.DataFrame({"share % (seed 000 index)": seed_share, f"share % (ours, {profile})": dist["share_%"]})


def samples_per_class(data: LabeledImages, per_class: int = 8, seed: int = 0, split: str = "train"):
    """(images, row labels): ``per_class`` random images per class, class by class; a class with fewer images is
    padded with blank tiles and a class without images in ``split`` is left out (the audit flags it)."""
    rng = np.random.default_rng(seed)
    part = data.subset(split)
    imgs, rows = [], []
    for k, name in enumerate(data.classes):  # a class with fewer images shows what it has (blank tiles after)
        idx = np.flatnonzero(part.labels == k)
        if len(idx):
            pick = part.images[rng.choice(idx, min(per_class, len(idx)), replace=False)]
            pad = np.zeros((per_class - len(pick),) + pick.shape[1:], pick.dtype)
            imgs.append(np.concatenate([pick, pad]))
            rows.append(name)
    return np.concatenate(imgs), rows


def cross_split_examples(data: LabeledImages, dups: pd.DataFrame, n: int = 6):
    """(images, titles) of duplicates that cross splits: each group shows two members side by side."""
    cross = dups[dups["cross_split"]].head(n)
    imgs, titles = [], []
    for _, g in cross.iterrows():
        for i in g["indices"][:2]:
            imgs.append(data.images[i])
            titles.append(f"{data.split[i]}: {data.classes[data.labels[i]]}")
    return (np.stack(imgs) if imgs else np.zeros((0, 8, 8), np.uint8)), titles


def faceparse_examples(root=None, n: int = 6, seed: int = 0):
    """(images, masks): from the CelebAMask-HQ mini set at ``root``, else from the synthetic generator."""
    if root:
        from .. import paths
        from ..data.faceparse import load_faceparse_examples

        return load_faceparse_examples(paths.resolve(root), n, seed=seed)
    from ..data.synthetic import synthetic_faces

    images, _, _, masks = synthetic_faces(n, seed=seed, size=128)
    return images, masks


def voice_of(emotion: str) -> dict:
    """Glue for the audio-visual example: the emotion and its synthetic voice's pitch and pitch slope."""
    from ..data.synthetic_av import VOICE

    if emotion not in VOICE:
        raise ValueError(f"av_emotion: expected one of {', '.join(VOICE)}, got {emotion!r}")
    f0, slope, _, _ = VOICE[emotion]
    return {"av_emotion": emotion, "av_f0": f0, "av_slope": slope}
