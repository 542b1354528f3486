"""Engine throughput against a plain PyTorch loop on the same model, data and augmentation.

    python benchmarks/engine_throughput.py [--arch resnet18] [--epochs 3]

Baselines, all on the same synthetic 48x48 FER images, batch size and model:
  plain       a textbook loop: DataLoader -> batched augmentation -> forward -> CE -> AdamW step
  plain+tv    the same loop with per-sample torchvision v2 transforms in the DataLoader (the usual recipe)
  engine      fer_lib.engine.fit (ArcFace margin schedule, LR schedule, per-epoch val + atomic checkpoint)
Prints images/second of training and the ratio engine / baseline (>= 1.0 means the engine is not slower).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from fer_lib.config import ModelConfig, TrainConfig, from_dict, to_dict
from fer_lib.data import ImageArrayDataset, load_dataset
from fer_lib.engine import FitData, fit, seed_everything
from fer_lib.losses import ClassificationLoss
from fer_lib.models import create_model
from fer_lib.tasks.classifier import batch_transforms, datasets, evaluate_logits
from fer_lib.tasks.teacher import TeacherTask


def setup(arch: str, kwargs: dict):
    data = load_dataset({"n_train": 2400, "n_val": 64, "n_test": 64, "seed": 0})
    tcfg = from_dict(TrainConfig, {"epochs": 1, "batch_size": 64, "img_size": 48, "num_workers": 0,
                                   "warmup_epochs": 0, "lr": 1e-3})
    mcfg = ModelConfig(arch=arch, model_kwargs=kwargs)
    seed_everything(0)
    return data, tcfg, mcfg, create_model(mcfg, 7)


def plain_loop(model, loader, tf, epochs) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    model.train()
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            x = tf(x) if tf is not None else x
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args()
    kwargs = {"channels": [16, 32, 64, 128], "stem_width": 16} if a.arch == "resnet18" else {}
    torch.set_num_threads(torch.get_num_threads())

    data, tcfg, mcfg, model = setup(a.arch, kwargs)
    train_tf, eval_tf = batch_transforms(data, mcfg, tcfg)
    sets = datasets(data, tcfg)
    loader = DataLoader(sets["train"], batch_size=64, shuffle=True, drop_last=True)
    plain = plain_loop(model, loader, train_tf, a.epochs)

    _, _, _, model = setup(a.arch, kwargs)
    mean, std = train_tf.mean.flatten().tolist(), train_tf.std.flatten().tolist()
    tv = v2.Compose([v2.RandomResizedCrop(48, scale=(0.8, 1.0), ratio=(0.9, 1.1)), v2.RandomHorizontalFlip(),
                     v2.ColorJitter(0.2, 0.2), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
    tr = data.subset("train")
    tv_loader = DataLoader(ImageArrayDataset(tr.images, tr.labels, tv), batch_size=64, shuffle=True, drop_last=True)
    plain_tv = plain_loop(model, tv_loader, None, a.epochs)

    _, _, _, model = setup(a.arch, kwargs)
    tcfg = from_dict(TrainConfig, {**to_dict(tcfg), "epochs": a.epochs})
    task = TeacherTask(model, ClassificationLoss("ce", 0.1), mcfg, tcfg, 7,
                       score=lambda z: evaluate_logits(z, sets["val"].labels, data.classes))
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = fit(task, FitData(sets["train"], tr.labels, sets["val"], train_tf, eval_tf), tcfg, Path(d),
                  progress=False)
        elapsed = time.perf_counter() - t0
    engine = len(res.history) * (len(tr.labels) // 64) * 64 / elapsed

    print(f"model {a.arch} {kwargs or ''}, 48x48 gray, batch 64, {a.epochs} epochs of 2400 images, "
          f"{torch.get_num_threads()} threads, {sys.platform}")
    print(f"{'plain loop (batched aug)':28s} {plain:8.0f} img/s")
    print(f"{'plain loop (torchvision v2)':28s} {plain_tv:8.0f} img/s")
    print(f"{'fer_lib engine':28s} {engine:8.0f} img/s   (includes per-epoch val and checkpoint)")
    print(f"ratio engine / plain (batched aug)   = {engine / plain:.2f}")
    print(f"ratio engine / plain (torchvision v2) = {engine / plain_tv:.2f}")


if __name__ == "__main__":
    main()
