"""A distillation epoch's cost as a ratio to a plain student epoch, for one and for three teachers.

    python benchmarks/distill_epoch.py [--repeats 3]

Same data (synthetic 32x32 RGB), student (MobileNetV2-0.5), batch and augmentation for every variant.
The teachers are full-size seed 002 architectures (ResNet-50, DenseNet-121, ViT-S/4 at 32 px) with random
weights: their outputs' values do not matter for time.
  plain        student alone (method none)
  cold         teachers run in inference mode on every batch (the first arm over a data pipeline)
  cached       the same views replayed, teachers' logits read from the teacher-output cache (every later arm)
The cold runs (one epoch each) also fill the caches; plain and cached variants are then timed in
round-robin, ``--repeats`` one-epoch runs each, and the fastest is reported (robust to a shared machine's
slow phases). Prints seconds per epoch and the ratios to plain; the target is <= 1.25 for three teachers
with cached outputs.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import timm
import torch

from fer_lib.config import DistillConfig, ModelConfig, TrainConfig, from_dict
from fer_lib.data import load_dataset
from fer_lib.engine import DistEnv, FitData, fit, seed_everything
from fer_lib.losses import ClassificationLoss
from fer_lib.models import create_model
from fer_lib.tasks.distill import Distiller, TeacherOutputCache
from fer_lib.tasks.classifier import batch_transforms, datasets, evaluate_logits

DATA = {"source": "synthetic_cifar", "n_train": 3200, "n_val": 64, "n_test": 64, "size": 32, "seed": 5}
TRAIN = {"batch_size": 64, "img_size": 32, "num_workers": 0, "warmup_epochs": 0,
         "augment": {"crop_scale": [0.8, 1.0], "hflip": 0.5, "brightness": 0.1, "contrast": 0.1}}


def teachers(n_classes: int) -> list[torch.nn.Module]:
    return [timm.create_model("resnet50", num_classes=n_classes).eval(),
            timm.create_model("densenet121", num_classes=n_classes).eval(),
            timm.create_model("vit_small_patch16_224", img_size=32, patch_size=4, num_classes=n_classes).eval()]


def run_epochs(data, epochs, members, cache_dir) -> float:
    """Seconds per training epoch (the engine's own per-epoch timing, validation on 64 images included)."""
    seed_everything(0)
    tcfg = from_dict(TrainConfig, {**TRAIN, "epochs": epochs})
    mcfg = ModelConfig(arch="mobilenetv2_050", head="linear", in_chans=3)
    sets = datasets(data, tcfg)
    tf, etf = batch_transforms(data, mcfg, tcfg)
    method = "none" if not members else ("kd" if len(members) == 1 else "ca_wkd")
    steps = len(sets["train"]) // tcfg.batch_size
    caches = [TeacherOutputCache(cache_dir / f"teacher{i}") for i in range(len(members))] if cache_dir else None
    task = Distiller(create_model(mcfg, len(data.classes)), members, [torch.nn.Identity() for _ in members],
                     DistillConfig(method=method), ClassificationLoss("ce", 0.1), caches, steps, len(data.classes),
                     score=lambda z: evaluate_logits(z, sets["val"].labels, data.classes))
    with tempfile.TemporaryDirectory() as d:
        res = fit(task, FitData(sets["train"], sets["train"].labels, sets["val"], tf, etf), tcfg, Path(d), DistEnv(),
                  progress=False)
    return res.history[-1]["seconds"] if epochs == 1 else sum(h["seconds"] for h in res.history) / len(res.history)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3, help="timed one-epoch runs per variant (min is reported)")
    a = ap.parse_args()
    data = load_dataset(DATA)
    members = teachers(len(data.classes))
    with tempfile.TemporaryDirectory() as root:
        caches = {k: Path(root) / f"cache{k}" for k in (1, 3)}
        cold = {k: run_epochs(data, 1, members[:k], caches[k]) for k in (1, 3)}  # also fills the caches
        run_epochs(data, 1, [], None)  # untimed warm-up of the plain student
        timed = {"plain": [], 1: [], 3: []}
        for _ in range(a.repeats):  # round-robin, so slow phases of a shared machine hit every variant
            timed["plain"].append(run_epochs(data, 1, [], None))
            for k in (1, 3):
                timed[k].append(run_epochs(data, 1, members[:k], caches[k]))
    plain = min(timed["plain"])
    rows = [("plain student", plain), ("1 teacher, teachers run (cold)", cold[1]),
            ("1 teacher, cached outputs", min(timed[1])), ("3 teachers, teachers run (cold)", cold[3]),
            ("3 teachers, cached outputs", min(timed[3]))]
    print(f"distillation epoch: {len(data.subset('train'))} images 32x32, batch 64, student mobilenetv2_050 "
          f"(0.7M), teachers resnet50 / densenet121 / vit_small-p4; {torch.get_num_threads()} threads; "
          f"best of {a.repeats} one-epoch runs (cold: one run)")
    for name, sec in rows:
        print(f"{name:34s} {sec:6.2f} s/epoch   ratio to plain {sec / plain:5.2f}")


if __name__ == "__main__":
    main()
