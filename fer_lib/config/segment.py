"""Config of a face-parsing run (section 06; seed 001), mirroring ``params/<profile>/06_segmentation.yaml``."""
from __future__ import annotations

from dataclasses import dataclass

from .base import (NONNEG, POSITIVE, PROB, FieldError, added_field, at_least, between, check, key_fields, check_range_pair,
                   one_of)
from .classify import AugmentConfig, TrainConfig, check_select_metric

#: validation metrics a face-parsing run can select its checkpoint by (higher is better)
SEGMENTATION_SELECT = ("fscore", "miou", "pixel_accuracy")
#: the challenge's limit: strictly fewer trainable parameters than this (19 classes)
PARAM_LIMIT = 1_821_085


@dataclass(frozen=True)
class SegDataConfig:
    """Face-parsing images and masks (``data:``): the CelebAMask-HQ challenge layout, or synthetic faces."""

    source: str = "synthetic"  # synthetic | faceparse
    root: str | None = None  # faceparse: <root>/train/{images,masks}, optional <root>/val, <root>/test/images
    seed: int = 0  # synthetic generation; carving val/test from train
    n_train: int = 160  # synthetic only
    n_val: int = 40  # synthetic only
    n_test: int = 40  # synthetic only
    size: int = 64  # synthetic render size (the masks' full resolution)
    val_fraction: float = 0.1  # of the labelled images, carved from train when there is no val/ folder
    test_fraction: float = 0.1  # held-out labelled test carved from train (the challenge's test has no masks)

    def __post_init__(self):
        check(self, source=one_of("synthetic", "faceparse"), seed=at_least(0), n_train=at_least(1), n_val=at_least(1),
              n_test=at_least(1), size=at_least(16), val_fraction=between(0, 1, lo_open=True, hi_open=True),
              test_fraction=between(0, 1, hi_open=True))
        if self.val_fraction + self.test_fraction >= 1:
            raise FieldError("test_fraction", f"val_fraction + test_fraction must stay below 1, got "
                             f"{self.val_fraction} + {self.test_fraction}")
        if self.source == "faceparse" and not self.root:
            raise FieldError("root", "required for source 'faceparse' (the folder holding train/images, train/masks)")


@dataclass(frozen=True)
class SegModelConfig:
    """MicroSegFormer (+ LMSA): a SegFormer-style encoder and all-MLP decoder (seed 001)."""

    arch: str = "microsegformer"
    lmsa: bool = True  # lightweight multi-scale attention on the decoder's fused map
    in_chans: int = 3
    widths: tuple[int, ...] = (32, 64, 128, 192)
    depths: tuple[int, ...] = (1, 2, 2, 2)
    heads: tuple[int, ...] = (1, 1, 1, 1)
    sr_ratios: tuple[int, ...] = (8, 4, 2, 1)
    mlp_ratio: float = 2.0
    decoder_dim: int = 128
    drop_rate: float = 0.1  # dropout before the classifier
    drop_path_rate: float = 0.1  # stochastic depth over the encoder blocks
    se_ratio: int = 4  # LMSA's squeeze-excite reduction

    def __post_init__(self):
        check(self, arch=one_of("microsegformer"), in_chans=one_of(1, 3), mlp_ratio=POSITIVE,
              decoder_dim=at_least(1), drop_rate=between(0, 1, hi_open=True),
              drop_path_rate=between(0, 1, hi_open=True), se_ratio=at_least(1))
        n = len(self.widths)
        for name in ("depths", "heads", "sr_ratios"):
            v = getattr(self, name)
            if len(v) != n or any(not isinstance(x, int) or x < 1 for x in v):
                raise FieldError(name, f"expected {n} positive integers (one per stage), got {list(v)}")
        if n < 1 or any(w < 1 for w in self.widths):
            raise FieldError("widths", f"expected positive integers, got {list(self.widths)}")
        for w, h in zip(self.widths, self.heads):
            if w % h:
                raise FieldError("heads", f"each stage's width must divide by its heads, got {w} / {h}")


@dataclass(frozen=True)
class SegAugmentConfig:
    """Joint image/mask augmentation (seed 001): flip with the L/R label swap, rotation, scale, colour jitter.

    ``batched``: draw it for the whole batch in one pass on the training device (``SegBatchAugment``) instead of per
    pair on the loader (torchvision v2, ``joint_transform``). Same policy, another random stream (and the jitter in a
    fixed order), so the field enters the run key when set."""

    hflip: float = 0.5
    rotation: float = 15.0  # degrees, uniform in [-rotation, rotation]
    scale: tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.1
    batched: bool = added_field(False, since="2026-12-07")

    def __post_init__(self):
        check(self, hflip=PROB, rotation=between(0, 180), brightness=between(0, 1), contrast=between(0, 1),
              saturation=between(0, 1))
        check_range_pair(self, "scale", 0.1, 10.0)


@dataclass(frozen=True)
class SegLossConfig:
    """L = ce_weight * CE (or focal) + dice_weight * Dice (seed 001: dice 1.0 / 1.5 / 2.0; focal tried and dropped)."""

    ce_weight: float = 1.0
    dice_weight: float = 1.0
    focal: bool = False  # focal loss in place of CE
    focal_gamma: float = 2.0

    def __post_init__(self):
        check(self, ce_weight=NONNEG, dice_weight=NONNEG, focal_gamma=NONNEG)
        if self.ce_weight == 0 and self.dice_weight == 0:
            raise FieldError("dice_weight", "ce_weight and dice_weight are both 0: nothing to train on")


@dataclass(frozen=True)
class SegRunConfig:
    """One face-parsing run: data + model + training + loss + augmentation. ``name`` is a display label.

    ``train.img_size`` is the resolution the model runs at; evaluation is always at the masks' full resolution.
    ``train.augment`` (the classifiers' policy) does not apply: the joint policy is ``augment``.
    """

    name: str
    data: SegDataConfig
    model: SegModelConfig
    train: TrainConfig
    loss: SegLossConfig
    augment: SegAugmentConfig

    def __post_init__(self):
        check_select_metric(self.train, SEGMENTATION_SELECT)
        if self.train.augment != AugmentConfig():
            raise FieldError("train.augment", "not used by face-parsing runs; the joint image/mask policy is "
                             "`augment:` (hflip, rotation, scale, brightness, contrast, saturation)")
        for f in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self.train, f):
                raise FieldError(f"train.{f}", "MixUp/CutMix do not apply to face parsing; expected 0")
        if self.train.sampler != "uniform":
            raise FieldError("train.sampler", "face parsing samples images uniformly; expected uniform")

    def key_dict(self) -> dict:
        return key_fields(self, drop=("name",))
