"""The interface between a kind of run and the training loop: ``Task`` and the data it trains on.

A task is an ``nn.Module`` in the style of mdistiller's distillers: ``task(x, target, epoch)`` returns
``(logits, {loss_name: loss})`` for a batch ``x`` with target ``target`` (a one-hot or MixUp/CutMix-mixed
distribution for the default image batches; whatever ``prepare_batch`` builds otherwise) at fractional epoch
``epoch``. ``task.model`` is the module that is optimised, averaged (EMA), evaluated and saved. Every hook below
has a no-op default; a kind of run overrides the ones it needs (``fer_lib.tasks``: ``TeacherTask``,
``Distiller``, ``SegTask``, ``AVTask``).

Per step the loop calls ``prepare_batch`` (only when ``builds_batches``), ``set_step``, ``forward``, the backward
pass, ``modify_grads``, the optimizer step and ``after_step``; per epoch ``end_epoch``, ``validate`` and
``epoch_extras``; at every checkpoint ``extra_state``, and on resume ``load_extra_state``.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch.nn as nn
from torch.utils.data import Dataset


@dataclass
class FitData:
    """What ``fit`` trains on: the training set and its labels (for the sampler), the validation set, and the
    batched on-device input transforms (augmentation + normalisation for training, normalisation for evaluation).
    For a task that builds its batches, ``train_tf`` is the augmentation its ``prepare_batch`` draws from: ``fit``
    moves it to the device and reseeds it every epoch, and applies nothing itself."""

    train_set: Dataset
    train_labels: np.ndarray
    val_set: Dataset | None = None
    train_tf: nn.Module | None = None
    eval_tf: nn.Module | None = None


class Task(nn.Module):
    """One kind of training as the loop sees it. ``name`` labels the progress bar and errors; ``num_classes``
    sizes the one-hot targets and MixUp/CutMix of the default batches; ``score`` (validation outputs -> metrics)
    serves the default ``score`` hook."""

    #: True when the task builds its batches itself (``prepare_batch``); MixUp/CutMix apply only to the default
    #: image batches
    builds_batches: bool = False

    def __init__(self, model: nn.Module, num_classes: int = 0, name: str = "run",
                 score: Callable[[np.ndarray], dict] | None = None):
        super().__init__()
        self.model, self.num_classes, self.name, self._score = model, num_classes, name, score

    def forward(self, x, target, epoch: float):
        """(logits, {loss name: loss}) of a training batch; the loop sums the losses."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def prepare_batch(self, batch, device):
        """(x, target) on ``device`` from a loader batch; called instead of the default (``train_tf`` on the images,
        then MixUp/CutMix or one-hot labels) when ``builds_batches`` is True."""
        raise NotImplementedError(f"{type(self).__name__}.prepare_batch (builds_batches is True)")

    def frozen_parameters(self) -> list[nn.Parameter]:
        """Parameters that get no update for ``train.freeze_backbone_epochs`` (e.g. a backbone); none by default."""
        return []

    def set_step(self, epoch: int, step: int, x) -> None:
        """Before each step's forward (``step`` counts within the epoch)."""

    def modify_grads(self, step: int) -> None:
        """After backward, on unscaled gradients, before clipping and the optimizer step (gradient modulation,
        skipped or delayed updates). ``step`` is global, from 1."""

    def after_step(self, step: int) -> None:
        """After the optimizer step (e.g. probes every N steps)."""

    def end_epoch(self, epoch: int) -> None:
        """After the epoch's last step, before validation (``epoch`` from 0); its time counts in the epoch's
        ``seconds``, not in ``train_seconds`` (the training steps alone)."""

    def score(self, logits: np.ndarray) -> dict:
        """Validation metrics from the model's outputs on ``val_set`` (the default ``validate``): the ``score``
        function the task was built with."""
        if self._score is None:
            raise NotImplementedError(f"{type(self).__name__}: pass score= or override score / validate")
        return self._score(logits)

    def validate(self, model: nn.Module, predict_val) -> dict:
        """Validation metrics of ``model`` (the EMA copy when EMA is on); must include ``train.select_metric``.
        ``predict_val(model)`` gives its outputs on ``val_set``; the default scores them. Tasks whose validation is
        not a matrix of outputs (face parsing at full mask resolution) override this."""
        return self.score(predict_val(model))

    def epoch_extras(self, epoch: int) -> dict:
        """Extra columns of the history row of ``epoch`` (from 1)."""
        return {}

    def extra_state(self) -> dict:
        """Task state that must survive a resume (gradient queues, probe histories), stored in ``last.pt``."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what ``extra_state`` returned."""

    def write_run(self, out: Path, result, metrics: dict, outputs: dict[str, np.ndarray],
                  tables: dict[str, pd.DataFrame] | None = None) -> None:
        """The end every kind of run shares: ``metrics.json``, ``history.csv`` (the fit's history),
        ``outputs.npz`` (``outputs``), a CSV per extra table (``<name>.csv``) and ``weights.safetensors`` (the
        best checkpoint) written into the run folder ``out`` (rank 0 only: the caller returns on other ranks)."""
        from ..runs import write_json_atomic

        write_json_atomic(out / "metrics.json", metrics)
        pd.DataFrame(result.history).to_csv(out / "history.csv", index=False)
        for name, table in (tables or {}).items():
            table.to_csv(out / f"{name}.csv", index=False)
        np.savez(out / "outputs.npz", **outputs)
        shutil.copy(result.best_weights, out / "weights.safetensors")


def overrides(task: Task, hook: str) -> bool:
    """Whether ``task``'s class overrides ``hook`` (the loop skips work a no-op hook would not use)."""
    return getattr(type(task), hook) is not getattr(Task, hook)
