"""Dataset integrity audit (seed 000 §8.1.1, §8.1.2, §8.5).

Class distribution per split with shares and the minority share (disgust, fear, sad);
exact-duplicate groups by content hash within and across splits (and whether their
labels agree); near-blank images (pixel standard deviation below a threshold); split
integrity (no source id in two splits, every split non-empty, the expected class set, every
class present in every split).
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ..metrics.classification import MINORITY
from .dataset import SPLITS, LabeledImages


def class_distribution(data: LabeledImages) -> pd.DataFrame:
    """Counts per class and split, a total column, and the share (%) of each class overall."""
    df = data.counts()
    df.columns = [str(c) for c in df.columns]
    df["total"] = df.sum(1)
    df["share_%"] = 100 * df["total"] / df["total"].sum()
    return df


def minority_share(data: LabeledImages, minority=MINORITY) -> pd.Series:
    """Share of images whose class is a minority class, per split and overall."""
    is_min = np.isin(np.asarray(data.classes)[data.labels], minority)
    out = {s: float(is_min[data.split == s].mean()) for s in SPLITS if (data.split == s).any()}
    out["overall"] = float(is_min.mean())
    return pd.Series(out, name="minority_share")


def image_hashes(images: np.ndarray) -> np.ndarray:
    return np.array([hashlib.sha1(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images])


def duplicate_groups(data: LabeledImages) -> pd.DataFrame:
    """One row per group of >= 2 byte-identical images: members, splits, labels, flags."""
    h = image_hashes(data.images)
    df = pd.DataFrame({"hash": h, "index": np.arange(len(h)), "split": data.split, "label": data.labels})
    dup = df[df.duplicated("hash", keep=False)]
    rows = []
    for key, g in dup.groupby("hash", sort=False):
        rows.append({"hash": key[:12], "size": len(g), "indices": g["index"].tolist(),
                     "splits": sorted(set(g["split"])), "cross_split": g["split"].nunique() > 1,
                     "labels_agree": g["label"].nunique() == 1})
    return pd.DataFrame(rows, columns=["hash", "size", "indices", "splits", "cross_split", "labels_agree"])


def near_blank(data: LabeledImages, max_std: float = 2.0) -> np.ndarray:
    """Indices of images whose pixel standard deviation is below ``max_std`` (of 255)."""
    flat = data.images.reshape(len(data.images), -1).astype(np.float32)
    return np.flatnonzero(flat.std(1) < max_std)


def empty_classes(data: LabeledImages) -> list[tuple[str, str]]:
    """(split, class) for every class with no image in a (non-empty) split, e.g. an empty
    ``train/disgust/`` folder: such a class cannot be learnt, or scored, on that split."""
    return [(s, c) for s in SPLITS if (data.split == s).any()
            for k, c in enumerate(data.classes) if not (data.labels[data.split == s] == k).any()]


def integrity_summary(data: LabeledImages, dups: pd.DataFrame, blank: np.ndarray,
                      expected_classes: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The checks of seed 000 §8.1.2 as a table of (check, value)."""
    ids_per_split = {s: set(data.ids[data.split == s]) for s in SPLITS}
    shared_ids = sum(len(ids_per_split[a] & ids_per_split[b]) for i, a in enumerate(SPLITS) for b in SPLITS[i + 1:])
    rows = [
        ("images", len(data)),
        ("classes", len(data.classes)),
        ("class set as expected", expected_classes is None or tuple(data.classes) == tuple(expected_classes)),
        ("empty splits", sum(not (data.split == s).any() for s in SPLITS)),
        ("classes without images in a split", "; ".join(f"{c} in {s}" for s, c in empty_classes(data)) or "none"),
        ("source ids in more than one split", shared_ids),
        ("duplicate groups (exact pixels)", len(dups)),
        ("images in duplicate groups", int(dups["size"].sum()) if len(dups) else 0),
        ("groups within one split", int((~dups["cross_split"]).sum()) if len(dups) else 0),
        ("groups across splits", int(dups["cross_split"].sum()) if len(dups) else 0),
        ("groups with conflicting labels", int((~dups["labels_agree"]).sum()) if len(dups) else 0),
        ("near-blank images", len(blank)),
    ]
    return pd.DataFrame(rows, columns=["check", "value"]).set_index("check")
