"""Hardening: a non-finite loss stops the run and nothing is stored; every parameter the issue listed is refused
with its dotted name, the value and the accepted range."""
from __future__ import annotations

import math

import pytest
import torch

from fer_lib.config import (ConfigError, DataConfig, DistillConfig, ModelConfig, TrainConfig, from_dict)
from fer_lib.engine import NonFiniteLossError
from fer_lib.runs import RunStore


def _teacher_cfg(**train):
    from fer_lib.tasks.teacher import teacher_configs

    base = dict(epochs=2, batch_size=16, img_size=32, lr=2e-3, warmup_epochs=0, num_workers=0, eval_batch_size=64,
                plain_logits_epochs=0)
    return teacher_configs({"n_train": 64, "n_val": 32, "n_test": 32, "seed": 3}, {**base, **train},
                           {"t": {"model": {"arch": "test_resnet", "head": "linear"}}})["t"]


def test_a_diverging_run_stops_at_the_first_non_finite_loss_and_is_not_stored(tmp_path):
    from fer_lib.tasks.teacher import train_teacher

    store = RunStore(tmp_path)
    cfg = _teacher_cfg(lr=1e6, min_lr=0.0)
    with pytest.raises(NonFiniteLossError) as e:
        train_teacher(cfg, store, progress=False)
    msg = str(e.value)
    assert "run teacher 't'" in msg and "non-finite training loss" in msg
    assert "at epoch 1, step" in msg and "last finite loss" in msg
    assert not store.runs("teacher")  # nothing stored under its key
    with pytest.raises(NonFiniteLossError):  # asked again: it trains again (and fails again), never returns NaN
        train_teacher(cfg, store, progress=False)


def test_one_infinite_input_batch_stops_the_run(tmp_path, monkeypatch):
    from fer_lib.data import ImageArrayDataset
    from fer_lib.tasks.teacher import train_teacher

    real = ImageArrayDataset.__getitem__

    def poisoned(self, i):
        x, y = real(self, i)
        return (torch.full(x.shape, float("inf")), y) if self.transform is None and i == 5 and len(self) == 64 else (x, y)

    monkeypatch.setattr(ImageArrayDataset, "__getitem__", poisoned)
    store = RunStore(tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, step \d+ .*last finite loss"):
        train_teacher(_teacher_cfg(), store, progress=False)
    assert not store.runs("teacher")


BAD = [  # (class, parameters, dotted name in the error)
    (DistillConfig, {"temperature": math.nan}, "distill.temperature"),
    (DistillConfig, {"temperature": math.inf}, "distill.temperature"),
    (DistillConfig, {"alpha": -1.0}, "distill.alpha"),
    (DistillConfig, {"alpha": 5.0}, "distill.alpha"),
    (DistillConfig, {"method": "dkd", "beta": -8.0}, "distill.beta"),
    (TrainConfig, {"lr": 0.0}, "train.lr"),
    (TrainConfig, {"lr": -1e-3}, "train.lr"),
    (TrainConfig, {"weight_decay": -0.1}, "train.weight_decay"),
    (TrainConfig, {"min_lr": -1e-6}, "train.min_lr"),
    (TrainConfig, {"warmup_epochs": -1}, "train.warmup_epochs"),
    (TrainConfig, {"eval_batch_size": 0}, "train.eval_batch_size"),
    (TrainConfig, {"img_size": 0}, "train.img_size"),
    (TrainConfig, {"grad_clip": -1.0}, "train.grad_clip"),
    (TrainConfig, {"ema_decay": 1.5}, "train.ema_decay"),
    (TrainConfig, {"mixup_alpha": -0.2}, "train.mixup_alpha"),
    (TrainConfig, {"num_workers": -1}, "train.num_workers"),
    (TrainConfig, {"augment": {"hflip": 2.0}}, "train.augment.hflip"),
    (TrainConfig, {"augment": {"crop_scale": [1.2, 0.5]}}, "train.augment.crop_scale"),
    (ModelConfig, {"arcface_s": -30.0}, "model.arcface_s"),
    (ModelConfig, {"drop_rate": 2.0}, "model.drop_rate"),
    (DataConfig, {"n_train": -5}, "data.n_train"),
    (DataConfig, {"label_noise": 1.5}, "data.label_noise"),
]


@pytest.mark.parametrize("cls, params, name", BAD, ids=[f"{n}={list(p.values())[-1]}" for _, p, n in BAD])
def test_out_of_range_parameters_are_refused_with_name_value_and_range(cls, params, name):
    where = name.rsplit(".", 1)[0] if name.count(".") == 1 else ".".join(name.split(".")[:1])
    with pytest.raises(ConfigError) as e:
        from_dict(cls, params, where)
    msg = str(e.value)
    assert msg.startswith(f"{name}: expected "), msg  # the parameter, then the accepted range ...
    assert ", got " in msg, msg  # ... then the value given


def test_select_metric_of_another_kind_is_refused_before_training():
    from fer_lib.tasks.teacher import teacher_configs

    with pytest.raises(ConfigError, match=r"teachers.t.train.select_metric: expected one of macro_f1, accuracy, "
                                          r"minority_f1 .*got 'acc'"):
        teacher_configs({"n_train": 8}, {"select_metric": "acc"}, {"t": {"model": {"arch": "test_resnet"}}})
