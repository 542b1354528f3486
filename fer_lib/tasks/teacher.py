"""FER teacher runs (section 01; seed 000 §3, §5, §8.2, §8.3): config -> trained, evaluated, cached run.

``train_teacher(cfg)`` returns the run from the store, training it on a miss. A run holds
``metrics.json`` (val and test: accuracy, macro-/minority-/per-class F1, ECE, NLL, Brier at
T = 1, plus best epoch), ``history.csv`` (per-epoch losses, LR, margin, val metrics),
``outputs.npz`` (val/test logits and labels: the logits the model classifies with, i.e.
scaled cosines for ArcFace) and ``weights.safetensors`` (the best checkpoint by val macro-F1).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch.nn as nn

from ..config import DataConfig, ModelConfig, TeacherRunConfig, TrainConfig, deep_merge, from_dict, to_dict
from ..data import ImageArrayDataset, LabeledImages, load_dataset
from ..data.transforms import BatchAugment, normalize_stats, sample_transform
from ..engine import DistEnv, FitData, Task, fit, load_weights, predict, seed_everything
from ..losses import ClassificationLoss
from ..metrics import brier, classification_metrics, ece, nll, softmax
from ..models import arcface_margin, count_parameters, create_model
from ..models.spec import ModelSpec
from ..runs import Run, RunStore

KIND = "teacher"


class TeacherTask(Task):
    """ArcFace (or linear) classifier + classification loss, with the margin schedule of seed 000 §9.7; the
    backbone may be frozen for ``train.freeze_backbone_epochs``."""

    def __init__(self, model: nn.Module, loss: nn.Module, model_cfg: ModelConfig, train_cfg: TrainConfig,
                 num_classes: int = 0, name: str = "teacher", score=None):
        super().__init__(model, num_classes, name, score)
        self.loss = loss
        self.m = model_cfg.arcface_m if model_cfg.head == "arcface" else 0.0
        self.plain, self.ramp = train_cfg.plain_logits_epochs, train_cfg.arcface_warmup_epochs
        self.margin = 0.0

    def forward(self, x, t, epoch: float):
        self.margin = arcface_margin(epoch, self.m, self.plain, self.ramp)
        logits = self.model.forward_train(x, t, self.margin)
        return logits, {"cls": self.loss(logits, t)}

    def frozen_parameters(self) -> list:
        return list(self.model.backbone_parameters())

    def epoch_extras(self, epoch: int) -> dict:
        return {"margin": self.margin}


def evaluate_logits(logits: np.ndarray, labels: np.ndarray, classes) -> dict:
    """Classification metrics on argmax plus calibration (15-bin ECE, NLL, Brier) at T = 1."""
    p = softmax(logits)
    return {**classification_metrics(labels, logits.argmax(1), classes),
            "ece": ece(p, labels), "nll": nll(p, labels), "brier": brier(p, labels)}


def datasets(data: LabeledImages, train_cfg: TrainConfig) -> dict[str, ImageArrayDataset]:
    """uint8 datasets per split; only train gets the per-sample policy (if any)."""
    out = {}
    for s in ("train", "val", "test"):
        part = data.subset(s)
        tf = sample_transform(train_cfg.augment, train_cfg.img_size) if s == "train" else None
        out[s] = ImageArrayDataset(part.images, part.labels, tf)
    return out


def batch_transforms(data: LabeledImages, model_cfg: ModelConfig, train_cfg: TrainConfig):
    """(train, eval) batched on-device transforms for this model's input convention."""
    stats = normalize_stats(model_cfg.input_norm, model_cfg.in_chans, data.pixel_stats("train"))
    size, c = train_cfg.img_size, model_cfg.in_chans
    return BatchAugment(size, c, *stats, train_cfg.augment), BatchAugment(size, c, *stats)


def save_classifier_run(out: Path, task: Task, result, sets: dict, eval_tf, train_cfg: TrainConfig,
                        env: DistEnv, classes, extra=None) -> dict | None:
    """Evaluate the best weights on val and test and write a run's files (rank 0 only):
    ``metrics.json`` (plus ``extra(metrics)``), ``history.csv``, ``outputs.npz``, ``weights.safetensors``."""
    model = task.model
    logits = {s: predict(model, sets[s], train_cfg.eval_batch_size, env, train_cfg.amp, transform=eval_tf)
              for s in ("val", "test")}
    if not env.is_main:
        return None
    metrics = {s: evaluate_logits(logits[s], sets[s].labels, classes) for s in ("val", "test")}
    metrics.update(best_epoch=result.best_epoch, epochs_run=len(result.history), stopped_early=result.stopped_early,
                   classes=list(classes), params=count_parameters(model, trainable_only=False))
    if extra is not None:
        metrics.update(extra(metrics))
    task.write_run(out, result, metrics, dict(val_logits=logits["val"], val_labels=sets["val"].labels,
                                              test_logits=logits["test"], test_labels=sets["test"].labels))
    return metrics


def train_teacher(cfg: TeacherRunConfig, store: RunStore | None = None, data: LabeledImages | None = None,
                  env: DistEnv | None = None, progress: bool = True) -> Run:
    """The teacher run for ``cfg`` from ``store``; trained and evaluated on a miss."""
    store = store or RunStore()
    data = data if data is not None else load_dataset(cfg.data)

    def compute(out: Path, scratch: Path) -> None:
        e = env or DistEnv.from_env()
        seed_everything(cfg.train.seed)
        model = create_model(cfg.model, len(data.classes))
        sets = datasets(data, cfg.train)
        train_tf, eval_tf = batch_transforms(data, cfg.model, cfg.train)
        y_train = data.subset("train").labels
        loss = ClassificationLoss(cfg.train.loss, cfg.train.label_smoothing, cfg.train.focal_gamma,
                                  np.bincount(y_train, minlength=len(data.classes)), cfg.train.logit_adjust_tau)
        y_val = sets["val"].labels
        task = TeacherTask(model, loss, cfg.model, cfg.train, len(data.classes), f"{KIND} {cfg.name!r}",
                           score=lambda z: evaluate_logits(z, y_val, data.classes))
        result = fit(task, FitData(sets["train"], y_train, sets["val"], train_tf, eval_tf), cfg.train, scratch, e,
                     progress)
        load_weights(model, result.best_weights)
        save_classifier_run(out, task, result, sets, eval_tf, cfg.train, e, data.classes)

    return store.run(KIND, cfg.key_dict(), data.fingerprint, compute, env)


def arm_configs(base: dict[str, TeacherRunConfig], vits: list[str], arms: dict[str, dict]) -> dict:
    """Section 03's runs: (vit, arm) -> config: the teacher's section-01 config with the ArcFace head and the arm's training overrides.

    The schedules under study are the ArcFace margin's (seed 000 §9.7), so every arm trains the ArcFace head even
    where section 01 chose a linear head for the role: the arms then start from 01's ``<role>_arcface`` twin, name
    and all, so the initial arm is that twin's run in the store (not a second training of it)."""
    out = {}
    for v in vits:
        arcface = base[v] if base[v].model.head == "arcface" else base.get(f"{v}_arcface")
        if arcface is None:
            arcface = replace(base[v], model=replace(base[v].model, head="arcface"))
        for arm, over in arms.items():
            merged = from_dict(TrainConfig, deep_merge(to_dict(arcface.train), over), f"arms.{arm}")  # checks `over`
            # only the overridden fields are taken from the round trip: it turns an int default into a float
            # (0 -> 0.0), which equals it but hashes differently, and the initial arm would not be the twin's run
            out[v, arm] = replace(arcface, train=replace(arcface.train, **{k: getattr(merged, k) for k in over}))
    return out


def check_arch(arch: str, where: str) -> None:
    """Raise a ``ConfigError`` naming ``where`` when ``create_model`` cannot build ``arch``: found when the
    configs are built, before any run of the section trains."""
    from ..config import ConfigError
    from ..models import _REGISTRY, is_model

    if not is_model(arch):
        raise ConfigError(f"{where}: unknown model {arch!r}; expected a timm model name (timm.list_models) or one of "
                          f"{', '.join(sorted(_REGISTRY))}")


def teacher_configs(data: dict, train: dict, teachers: dict, profile: str | None = None) -> dict[str, TeacherRunConfig]:
    """One ``TeacherRunConfig`` per entry of ``teachers`` (name -> {model: ..., train: overrides}), every one
    checked (fields, ``model.arch``) before any is returned; errors name ``teachers.<name>.<field>``.

    An entry ``{from: params/{profile}/01_teachers.yaml, teacher: resnet18, label: ...}`` is that section's teacher,
    configuration and all, so both sections share one run in the store (``profile`` fills ``{profile}``)."""
    from ..config import ConfigError, build
    from ..config.params import load_params

    out = {}
    for name, spec in teachers.items():
        spec = dict(spec or {})
        if "from" in spec:
            unknown = set(spec) - {"from", "teacher", "label"}
            if unknown:
                raise ConfigError(f"teachers.{name}: unknown key {sorted(unknown)[0]!r} beside 'from'; expected from, "
                                  "teacher, label (the referenced teacher's own settings apply)")
            src = load_params(spec["from"], profile)
            key = spec.get("teacher", name)
            if key not in src.get("teachers", {}):
                raise ConfigError(f"teachers.{name}.teacher: {key!r} is not a teacher of {spec['from']}; expected one "
                                  f"of {', '.join(src.get('teachers', {}))}")
            ref = teacher_configs(src["data"], src["train"], {key: src["teachers"][key]})[key]
            out[name] = replace(ref, name=spec.get("label", ref.name))
            continue
        unknown = set(spec) - {"model", "train", "label"}
        if unknown:
            raise ConfigError(f"teachers.{name}: unknown key {sorted(unknown)[0]!r}; expected model, train, label "
                              "(or from, teacher, label)")
        model = from_dict(ModelConfig, spec.get("model"), f"teachers.{name}.model")
        check_arch(model.arch, f"teachers.{name}.model.arch")
        out[name] = build(TeacherRunConfig, f"teachers.{name}", name=spec.get("label", name),
                          data=from_dict(DataConfig, data, "data"), model=model,
                          train=from_dict(TrainConfig, deep_merge(train, spec.get("train")), f"teachers.{name}.train"))
    return out


def teacher_models(cfg: TeacherRunConfig) -> list[ModelSpec]:
    """The model a teacher run builds (the paper check steps it; the makespan estimate times it)."""
    from ..data import num_classes

    shape = (cfg.model.in_chans, cfg.train.img_size, cfg.train.img_size)
    return [ModelSpec("teacher", cfg.model, shape, num_classes(cfg.data))]
