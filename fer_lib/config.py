"""Config dataclasses, one per kind of run, mirroring the YAML files in ``params/``.

``from_dict`` builds a (nested) dataclass from plain dicts and rejects unknown keys and
wrong types with a message that names the parameter path, e.g.
``ConfigError: teachers.resnet18.train.lrr: unknown key; expected one of batch_size, epochs, ...``.
``to_dict`` is its inverse; ``config_hash`` is the stable digest the run store keys on.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A parameter is missing, unknown or of the wrong type/value."""


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
        _choice("data.source", self.source, ("synthetic", "fer2013", "index_csv", "cifar100", "synthetic_cifar"))
        _choice("data.color", self.color, ("gray", "rgb"))
        if self.source in ("fer2013", "index_csv", "cifar100") and not self.root:
            raise ConfigError(f"data.root: required for source '{self.source}' (a path to the dataset)")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction: expected a number in (0, 1), got {self.val_fraction}")
        for k, v in self.limit.items():
            _choice("data.limit key", k, ("train", "val", "test"))
            if int(v) <= 0:
                raise ConfigError(f"data.limit.{k}: expected a positive count, got {v}")


# ----------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelConfig:
    """A FER classifier: timm backbone + optional CBAM-lite + ArcFace or linear head (seed 000 §5, §8.2)."""

    arch: str = "resnet18"  # any timm model name
    pretrained_file: str | None = None  # local weights (.pth/.safetensors); never downloaded
    in_chans: int = 1  # 1: grayscale native; 3: gray replicated (ImageNet-pretrained stems)
    input_norm: str = "dataset"  # dataset (train mean/std) | imagenet
    head: str = "arcface"  # arcface | linear
    arcface_s: float = 30.0
    arcface_m: float = 0.35
    cbam: bool = False
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra timm kwargs (e.g. img_size, depth)

    def __post_init__(self):
        _choice("model.in_chans", self.in_chans, (1, 3))
        _choice("model.input_norm", self.input_norm, ("dataset", "imagenet"))
        _choice("model.head", self.head, ("arcface", "linear"))


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


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of one run (``train:`` in the YAML). Defaults: seed 000 §8.3."""

    epochs: int = 40
    batch_size: int = 128
    eval_batch_size: int = 256
    img_size: int = 224
    lr: float = 3e-4
    weight_decay: float = 0.05
    min_lr: float = 1e-5
    warmup_epochs: float = 2
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
    channels_last: bool = True  # on CUDA only
    num_workers: int = 4
    seed: int = 0

    def __post_init__(self):
        _choice("train.loss", self.loss, ("ce", "focal", "balanced_softmax", "logit_adjusted"))
        _choice("train.sampler", self.sampler, ("uniform", "class_balanced"))
        if self.epochs < 1:
            raise ConfigError(f"train.epochs: expected >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"train.batch_size: expected >= 1, got {self.batch_size}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"train.label_smoothing: expected a number in [0, 1), got {self.label_smoothing}")


@dataclass(frozen=True)
class DistillConfig:
    """How a student learns from its teachers (``distill:`` of an arm; seeds 002 and 003)."""

    method: str = "none"  # none | kd | dkd | ca_wkd | alpha_guided | adaptive_alpha | aver | ebkd
    temperature: float = 4.0
    alpha: float = 0.5  # KD / AVER / EBKD: weight of the KL term; DKD: weight of TCKD
    beta: float = 8.0  # DKD: weight of NCKD
    warmup_epochs: float = 0.0  # DKD: linear ramp of the distillation terms
    gamma: float = 2.0  # alpha-guided CA-WKD
    theta: float = 0.3  # alpha-guided CA-WKD
    with_ce: bool = True  # adaptive alpha: False trains on the KL term only
    cache_teacher_outputs: bool = True  # reuse teachers' logits across runs that share the views

    def __post_init__(self):
        _choice("distill.method", self.method,
                ("none", "kd", "dkd", "ca_wkd", "alpha_guided", "adaptive_alpha", "aver", "ebkd"))
        if self.temperature <= 0:
            raise ConfigError(f"distill.temperature: expected > 0, got {self.temperature}")


@dataclass(frozen=True)
class TeacherRunConfig:
    """One FER teacher run (section 01): data + model + training. ``name`` is a display label."""

    name: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig

    def key_dict(self) -> dict:
        """What identifies the run's results (the display name does not)."""
        d = to_dict(self)
        d.pop("name")
        return d


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

    def key_dict(self) -> dict:
        return {"data": to_dict(self.data), "model": to_dict(self.model), "train": to_dict(self.train),
                "distill": to_dict(self.distill), "teachers": [t.key_dict() for t in self.teachers]}


# ----------------------------------------------------------------------------- helpers
def _choice(name: str, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{name}: expected one of {', '.join(map(str, allowed))}; got {value!r}")


def deep_merge(base: dict, override: dict | None) -> dict:
    """``base`` updated recursively with ``override`` (dicts merge, everything else replaces)."""
    out = dict(base)
    for k, v in (override or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def from_dict(cls, d: dict | None, where: str = ""):
    """Build dataclass ``cls`` from ``d``; errors name the offending key path."""
    if d is None:
        d = {}
    if isinstance(d, cls):
        return d
    if not isinstance(d, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise ConfigError(
            f"{_join(where, sorted(unknown)[0])}: unknown key; expected one of {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(hints[k], v, _join(where, k)) for k, v in d.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(tp, value, where):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: must not be null")
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is Any:
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} numbers, got {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def to_dict(cfg) -> dict:
    """Plain-data view of a config (tuples become lists, as in YAML/JSON)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_hash(*parts: Any) -> str:
    """sha256 over the canonical JSON of ``parts`` (sorted keys), hex."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
