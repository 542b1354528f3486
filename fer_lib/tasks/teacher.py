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
from ..data import LabeledImages, load_dataset
from ..engine import DistEnv, FitData, Task, fit, load_weights, seed_everything
from ..losses import ClassificationLoss
from ..models import arcface_margin, create_model
from ..models.spec import ModelSpec
from ..runs import Run, RunStore
from .classifier import batch_transforms, check_arch, datasets, evaluate_logits, save_classifier_run

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
