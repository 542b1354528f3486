"""Datasets: synthetic faces and audio-visual clips, FER2013 (three layouts), generic index CSV; transforms; audit."""
from __future__ import annotations

from ..config import DataConfig, from_dict
from .. import paths
from .dataset import SPLITS, ImageArrayDataset, LabeledImages, carve_val, limit_splits
from .fer2013 import FER_CLASSES, DatasetError, load_fer2013
from .index_csv import load_index_csv
from .cifar import load_cifar100
from .synthetic_av import AVClip, synthetic_av_clip
from .synthetic_cifar import load_synthetic_cifar
from .synthetic_fer import load_synthetic_fer

__all__ = ["AVClip", "DataConfig", "DatasetError", "FER_CLASSES", "ImageArrayDataset", "LabeledImages", "SPLITS",
           "load_cifar100", "load_dataset", "load_fer2013", "load_index_csv", "load_synthetic_cifar",
           "load_synthetic_fer", "num_classes", "synthetic_av_clip"]


def num_classes(cfg: DataConfig | dict) -> int:
    """How many classes the dataset ``cfg`` names has, without loading its images (only an index CSV's labels are
    read)."""
    cfg = from_dict(DataConfig, cfg, "data")
    if cfg.source in ("synthetic", "fer2013"):
        return len(FER_CLASSES)
    if cfg.source == "cifar100":
        return 100
    if cfg.source == "synthetic_cifar":
        from .synthetic_cifar import CLASSES

        return len(CLASSES)
    from .index_csv import index_classes

    return len(index_classes(paths.resolve(cfg.root)))


def load_dataset(cfg: DataConfig | dict) -> LabeledImages:
    """The dataset ``cfg`` names, with a val split (carved from train if absent) and ``limit`` applied."""
    cfg = from_dict(DataConfig, cfg, "data")
    if cfg.source == "synthetic":
        data = load_synthetic_fer(cfg.n_train, cfg.n_val, cfg.n_test, seed=cfg.seed, size=cfg.size,
                                  label_noise=cfg.label_noise)
    elif cfg.source == "synthetic_cifar":
        data = load_synthetic_cifar(cfg.n_train, cfg.n_val, cfg.n_test, seed=cfg.seed, size=cfg.size,
                                    label_noise=cfg.label_noise)
    elif cfg.source == "cifar100":
        data = load_cifar100(paths.resolve(cfg.root), download=cfg.download)
    elif cfg.source == "fer2013":
        data = load_fer2013(paths.resolve(cfg.root))
    else:
        data = load_index_csv(paths.resolve(cfg.root), size=cfg.size, color=cfg.color)
    if not (data.split == "test").any():
        data = carve_val(data, cfg.val_fraction, cfg.seed, into="test")
    if not (data.split == "val").any():
        data = carve_val(data, cfg.val_fraction, cfg.seed, into="val")
    for s in SPLITS:
        if not (data.split == s).any():
            raise DatasetError(f"{data.name}: split '{s}' is empty")
    return limit_splits(data, cfg.limit, cfg.seed)
