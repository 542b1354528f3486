"""Configs of classification runs: FER teachers (section 01, 03) and students (04, 05), mirroring ``params/``.

Every field is checked when the dataclass is built (``check``): a value out of range raises a ``ConfigError``
that names the parameter, the value and the accepted range.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import (FINITE, NONNEG, POSITIVE, PROB, FieldError, added_field, at_least, between, check, key_fields,
                   check_range_pair, one_of, optional)

#: validation metrics a classifier run can select its checkpoint by (all: higher is better)
CLASSIFICATION_SELECT = ("macro_f1", "accuracy", "minority_f1")


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class DataConfig:
    """Which images a run trains and evaluates on (``data:`` in the YAML)."""

    source: str = "synthetic"  # synthetic | fer2013 | index_csv | cifar100 | synthetic_cifar
    root: str | None = None  # fer2013: folder or CSV of any accepted layout; index_csv: the CSV; cifar100: folder
    download: bool = False  # cifar100 only: fetch it with torchvision when missing (never otherwise)
    seed: int = 0  # synthetic generation, val carving, subsampling
    n_train: int = 2400  # synthetic only
    n_val: int = 600  # synthetic only
    n_test: int = 600  # synthetic only
    size: int = 48  # synthetic render size; index_csv decode size
    color: str = "gray"  # index_csv decode mode: gray | rgb
    label_noise: float = 0.06  # synthetic only: share of flipped labels
    val_fraction: float = 0.1  # carve val from train (stratified) when a layout has none
    limit: dict[str, int] = field(default_factory=dict)  # stratified cap per split, e.g. {train: 8000}

    def __post_init__(self):
        check(self, source=one_of("synthetic", "fer2013", "index_csv", "cifar100", "synthetic_cifar"),
              color=one_of("gray", "rgb"), seed=at_least(0), n_train=at_least(1), n_val=at_least(1),
              n_test=at_least(1), size=at_least(8), label_noise=between(0, 1, hi_open=True),
              val_fraction=between(0, 1, lo_open=True, hi_open=True))
        if self.source in ("fer2013", "index_csv", "cifar100") and not self.root:
            raise FieldError("root", f"required for source '{self.source}' (a path to the dataset)")
        for k, v in self.limit.items():
            if k not in ("train", "val", "test"):
                raise FieldError(f"limit.{k}", "unknown split; expected train, val or test")
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise FieldError(f"limit.{k}", f"expected a positive count, got {v!r}")


# ----------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelConfig:
    """A FER classifier: timm backbone + optional CBAM-lite + ArcFace or linear head (seed 000 §5, §8.2)."""

    arch: str = "resnet18"  # any timm model name
    pretrained: str | None = None  # timm pretrained tag, e.g. a1_in1k or resnet18.a1_in1k (fetched by timm with a network)
    pretrained_file: str | None = None  # local weights (.pth/.safetensors) for offline machines; takes precedence
    in_chans: int = 1  # 1: grayscale native; 3: gray replicated (ImageNet-pretrained stems)
    input_norm: str = "dataset"  # dataset (train mean/std) | imagenet
    head: str = "arcface"  # arcface | linear
    arcface_s: float = 30.0
    arcface_m: float = 0.35
    cbam: bool = False
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    tta: str = "none"  # none | flip: in eval mode, average the logits of the image and its mirror image
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra timm kwargs (e.g. img_size, depth)

    def __post_init__(self):
        check(self, in_chans=one_of(1, 3), input_norm=one_of("dataset", "imagenet"), head=one_of("arcface", "linear"),
              tta=one_of("none", "flip"),
              arcface_s=POSITIVE, arcface_m=between(0, 1.5), drop_rate=between(0, 1, hi_open=True),
              drop_path_rate=between(0, 1, hi_open=True))
        if not self.arch:
            raise FieldError("arch", "expected a model name, got an empty string")

    @property
    def logit_scale(self) -> float:
        """What the classifying logits are scaled by: ArcFace's s (logits = s cos theta), 1 for a linear head."""
        return self.arcface_s if self.head == "arcface" else 1.0


# ----------------------------------------------------------------------------- training
@dataclass(frozen=True)
class AugmentConfig:
    """Light FER augmentation (seed 000 §8.3): random resized crop, flip, low-magnitude jitter."""

    crop_scale: tuple[float, float] = (0.8, 1.0)
    hflip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    rotation: float = 0.0  # degrees
    rand_augment: str | None = None  # timm RandAugment string, e.g. "rand-m7-n2"
    auto_augment: str | None = None  # torchvision AutoAugment policy: cifar10 | imagenet | svhn
    random_erasing: float = 0.0

    def __post_init__(self):
        check_range_pair(self, "crop_scale", 0.01, 1.0)
        check(self, hflip=PROB, brightness=between(0, 1), contrast=between(0, 1), rotation=between(0, 180),
              random_erasing=PROB, auto_augment=optional(one_of("cifar10", "imagenet", "svhn")))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of one run (``train:`` in the YAML). Defaults: seed 000 §8.3."""

    epochs: int = 40
    batch_size: int = 128
    eval_batch_size: int = 256
    img_size: int = 224
    optimizer: str = "adamw"  # adamw | sgd (SGD with momentum, no Nesterov: seed 004)
    lr: float = 3e-4
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.05
    scheduler: str = "cosine"  # cosine (warm-up, then cosine to min_lr, per step) | step (StepLR, per epoch)
    min_lr: float = 1e-5
    warmup_epochs: float = 2
    lr_step_epochs: int = 40  # step: decay every this many epochs
    lr_step_gamma: float = 0.1  # step: by this factor
    layer_decay: float | None = None  # layer-wise LR decay (timm param groups)
    plain_logits_epochs: float = 3  # ArcFace: s*cos logits without margin
    arcface_warmup_epochs: float = 0  # ArcFace: linear margin ramp after the plain phase
    freeze_backbone_epochs: float = 0
    loss: str = "ce"  # ce | focal | balanced_softmax | logit_adjusted
    label_smoothing: float = 0.1
    focal_gamma: float = 2.0
    logit_adjust_tau: float = 1.0
    sampler: str = "uniform"  # uniform | class_balanced
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    ema_decay: float | None = None
    grad_clip: float | None = None
    early_stop_patience: int | None = None
    select_metric: str = "macro_f1"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    amp: bool = True  # autocast fp16 + GradScaler on CUDA; ignored on CPU
    channels_last: bool = True  # on CUDA only, unless channels_last_cpu
    # channels-last on CPU too: faster for small convnets on CPU, not bitwise equal to the default layout
    channels_last_cpu: bool = added_field(False, since="2026-12-07")
    num_workers: int = 4
    seed: int = 0

    def __post_init__(self):
        check(self, epochs=at_least(1), batch_size=at_least(1), eval_batch_size=at_least(1), img_size=at_least(8),
              optimizer=one_of("adamw", "sgd"), lr=POSITIVE, momentum=between(0, 1, hi_open=True),
              weight_decay=NONNEG, scheduler=one_of("cosine", "step"), min_lr=NONNEG, warmup_epochs=NONNEG,
              lr_step_epochs=at_least(1), lr_step_gamma=between(0, 1, lo_open=True),
              layer_decay=optional(between(0, 1, lo_open=True)), plain_logits_epochs=NONNEG,
              arcface_warmup_epochs=NONNEG, freeze_backbone_epochs=NONNEG,
              loss=one_of("ce", "focal", "balanced_softmax", "logit_adjusted"),
              label_smoothing=between(0, 1, hi_open=True), focal_gamma=NONNEG, logit_adjust_tau=FINITE,
              sampler=one_of("uniform", "class_balanced"), mixup_alpha=NONNEG, cutmix_alpha=NONNEG, mix_prob=PROB,
              ema_decay=optional(between(0, 1, lo_open=True, hi_open=True)), grad_clip=optional(POSITIVE),
              early_stop_patience=optional(at_least(1)), num_workers=at_least(0), seed=at_least(0))
        if self.min_lr > self.lr:
            raise FieldError("min_lr", f"expected <= lr ({self.lr}), got {self.min_lr}")
        if not isinstance(self.select_metric, str) or not self.select_metric:
            raise FieldError("select_metric", f"expected a metric name, got {self.select_metric!r}")


def check_select_metric(train: TrainConfig, allowed: tuple[str, ...]) -> None:
    """A run kind knows which validation metrics it computes: ``train.select_metric`` must be one of them."""
    if train.select_metric not in allowed:
        raise FieldError("train.select_metric", f"expected one of {', '.join(allowed)} (validation metrics of this "
                         f"kind of run, higher is better), got {train.select_metric!r}")


@dataclass(frozen=True)
class DistillConfig:
    """How a student learns from its teachers (``distill:`` of an arm; seeds 002 and 003)."""

    method: str = "none"  # a registered method (fer_lib.losses.methods): none | kd | dkd | ca_wkd | alpha_guided | ...
    temperature: float = 4.0
    alpha: float = 0.5  # KD / AVER / EBKD: weight of the KL term; DKD: weight of TCKD
    beta: float = 8.0  # DKD: weight of NCKD
    warmup_epochs: float = 0.0  # DKD: linear ramp of the distillation terms
    gamma: float = 2.0  # alpha-guided CA-WKD
    theta: float = 0.3  # alpha-guided CA-WKD
    with_ce: bool = True  # adaptive alpha: False trains on the KL term only
    cache_teacher_outputs: bool = True  # reuse teachers' logits across runs that share the views

    def __post_init__(self):
        from ..losses.methods import METHODS

        check(self, method=one_of(*METHODS), temperature=POSITIVE, warmup_epochs=NONNEG, gamma=FINITE, theta=PROB)
        # KD-style methods mix KL and CE with weights alpha and 1 - alpha; DKD weights TCKD by a non-negative alpha
        check(self, alpha=NONNEG if self.method == "dkd" else PROB, beta=NONNEG)


@dataclass(frozen=True)
class TeacherRunConfig:
    """One FER teacher run (section 01): data + model + training. ``name`` is a display label."""

    name: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig

    def __post_init__(self):
        check_select_metric(self.train, CLASSIFICATION_SELECT)

    @property
    def display_name(self) -> str:
        """The seed's role and the architecture that actually ran, e.g. ``EfficientNet-B3 [efficientnet_b0]``."""
        return f"{self.name} [{self.model.arch}]"

    def key_dict(self) -> dict:
        """What identifies the run's results (the display name does not)."""
        return key_fields(self, drop=("name",))


@dataclass(frozen=True)
class StudentRunConfig:
    """One student run (sections 04, 05): its own data/model/training, the method, and its teachers."""

    name: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    distill: DistillConfig
    teachers: tuple[TeacherRunConfig, ...] = ()
    teacher_roles: tuple[str, ...] = ()

    def __post_init__(self):
        check_select_metric(self.train, CLASSIFICATION_SELECT)

    def key_dict(self) -> dict:
        return key_fields(self, drop=("name", "teacher_roles"))
