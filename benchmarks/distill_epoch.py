"""A distillation epoch's cost as a ratio to a plain student epoch, for one and for three teachers.

    python benchmarks/distill_epoch.py [--epochs 2]

Same data (synthetic 32x32 RGB, 21 classes), student (MobileNetV2-0.5), batch and augmentation for every
variant; the teachers are the smoke profile's ResNet / DenseNet / ViT stand-ins of section 04.
  plain        student alone (method none)
  cold         teachers run in inference mode on every batch (first arm over a data pipeline)
  cached       the same views replayed, teachers' logits read from the teacher-output cache (every later arm)
Prints seconds per epoch and the ratios to plain; the target is <= 1.25 with three cached teachers.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from fer_lib.config import DistillConfig, ModelConfig, TrainConfig, from_dict
from fer_lib.data import load_dataset
from fer_lib.engine import DistEnv, fit, load_weights, seed_everything
from fer_lib.losses import ClassificationLoss
from fer_lib.models import create_model
from fer_lib.runs import RunStore
from fer_lib.tasks import teacher_configs, train_teacher
from fer_lib.tasks.distill import Distiller, TeacherOutputCache
from fer_lib.tasks.teacher import batch_transforms, datasets, evaluate_logits

DATA = {"source": "synthetic_cifar", "n_train": 3200, "n_val": 64, "n_test": 64, "size": 32, "seed": 5}
AUG = {"crop_scale": [0.8, 1.0], "hflip": 0.5, "brightness": 0.1, "contrast": 0.1}
TEACHERS = {
    "resnet": {"model": {"arch": "resnet18", "head": "linear", "in_chans": 3,
                         "model_kwargs": {"channels": [16, 32, 64, 128], "stem_width": 16}}},
    "densenet": {"model": {"arch": "densenet121", "head": "linear", "in_chans": 3,
                           "model_kwargs": {"growth_rate": 12, "block_config": [2, 2, 2, 2]}}},
    "vit": {"model": {"arch": "test_vit", "head": "linear", "in_chans": 3,
                      "model_kwargs": {"img_size": 32, "patch_size": 4}}},
}


def epoch_seconds(data, tcfg, teachers, cache_dir, epochs):
    seed_everything(0)
    mcfg = ModelConfig(arch="mobilenetv2_050", head="linear", in_chans=3)
    student = create_model(mcfg, len(data.classes))
    sets = datasets(data, tcfg)
    tf, etf = batch_transforms(data, mcfg, tcfg)
    method = "none" if not teachers else ("kd" if len(teachers) == 1 else "ca_wkd")
    cache = TeacherOutputCache(cache_dir) if cache_dir else None
    steps = len(sets["train"]) // tcfg.batch_size
    task = Distiller(student, teachers, [torch.nn.Identity() for _ in teachers], DistillConfig(method=method),
                     ClassificationLoss("ce", 0.1), cache, steps)
    with tempfile.TemporaryDirectory() as d:
        res = fit(task, sets["train"], sets["train"].labels, sets["val"], tcfg, Path(d),
                  lambda z: evaluate_logits(z, sets["val"].labels, data.classes), len(data.classes), train_tf=tf,
                  eval_tf=etf, env=DistEnv(), progress=False)
    return sum(h["seconds"] for h in res.history) / len(res.history), (cache.hits if cache else 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    data = load_dataset(DATA)
    with tempfile.TemporaryDirectory() as root:
        store = RunStore(Path(root) / "runs")
        tt = {"epochs": 2, "batch_size": 64, "img_size": 32, "num_workers": 0, "augment": AUG}
        cfgs = teacher_configs(DATA, tt, TEACHERS)
        teachers = {}
        for n, c in cfgs.items():
            run = train_teacher(c, store, data, progress=False)
            teachers[n] = load_weights(create_model(c.model, len(data.classes)), run.file("weights.safetensors")).eval()
        tcfg = from_dict(TrainConfig, {**tt, "epochs": a.epochs})
        plain, _ = epoch_seconds(data, tcfg, [], None, a.epochs)
        rows = [("plain student", plain)]
        for k in (1, 3):
            members = list(teachers.values())[:k]
            cache_dir = Path(root) / f"cache{k}"
            cold, _ = epoch_seconds(data, tcfg, members, cache_dir, a.epochs)
            warm, hits = epoch_seconds(data, tcfg, members, cache_dir, a.epochs)
            rows += [(f"{k} teacher(s), teachers run (cold)", cold), (f"{k} teacher(s), cached outputs", warm)]
            assert hits == a.epochs * (len(data.subset("train")) // 64), "every step should read the cache"
    print(f"distillation epoch, {len(data.subset('train'))} images 32x32, batch 64, student mobilenetv2_050, "
          f"{torch.get_num_threads()} threads, mean of {a.epochs} epochs")
    for name, sec in rows:
        print(f"{name:38s} {sec:6.2f} s/epoch   ratio to plain {sec / plain:5.2f}")


if __name__ == "__main__":
    main()
