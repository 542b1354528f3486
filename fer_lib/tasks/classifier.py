"""The FER classifier pieces teachers (``tasks/teacher.py``) and students (``tasks/distill.py``) share: a labelled
image set's splits as datasets, the batched transforms of a model's input convention, the metrics of a split's
logits, and writing a classifier run's files. Both kinds import them from here (a student still calls
``train_teacher``, for the teachers it reads)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import ModelConfig, TrainConfig
from ..data import ImageArrayDataset, LabeledImages
from ..data.transforms import BatchAugment, normalize_stats, sample_transform
from ..engine import DistEnv, Task, channels_last_on, predict
from ..metrics import brier, classification_metrics, ece, nll, softmax
from ..models import count_parameters


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
    channels_last = channels_last_on(train_cfg, env.device)
    logits = {s: predict(model, sets[s], train_cfg.eval_batch_size, env, train_cfg.amp, channels_last,
                         transform=eval_tf)
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


def check_arch(arch: str, where: str) -> None:
    """Raise a ``ConfigError`` naming ``where`` when ``create_model`` cannot build ``arch``: found when the
    configs are built, before any run of the section trains."""
    from ..config import ConfigError
    from ..models import _REGISTRY, is_model

    if not is_model(arch):
        raise ConfigError(f"{where}: unknown model {arch!r}; expected a timm model name (timm.list_models) or one of "
                          f"{', '.join(sorted(_REGISTRY))}")
