"""Where the face-parsing (segmenter) training step's time goes, one addition at a time, against a plain step.

    python benchmarks/seg_step.py [--profile real-cpu] [--steps 20]

On the profile's first segmenter run (model, batch, input size, loss, optimizer and augmentation as its params say),
each row times ``--steps`` training steps after 3 warm-up steps and prints its rate over the first row's:

1. plain: forward, ``logsumexp`` of the logits, backward, SGD, on one random batch (``kind_efficiency.py``'s plain);
2. the run's optimizer (timm's, as ``make_optimizer`` builds it) in place of SGD;
3. the run's loss (CE + Dice, ``SegmentationLoss``) on a real, fixed batch;
4. real batches from the loader, jointly augmented per pair (torchvision v2, ``joint_transform``: the default);
5. real batches from the loader, jointly augmented on the device in one pass (``SegBatchAugment``,
   ``augment.batched: true``).

Rows 4 and 5 against row 3 are the input pipeline's cost; row 3 against row 1 is the seed's loss and optimizer,
which the plain step does not do.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

import torch
from torch.utils.data import DataLoader

from fer_lib.data.seg_transforms import SegArrayDataset, SegBatchAugment, joint_transform
from fer_lib.engine.optim import make_optimizer
from fer_lib.launch.plan import plan_profile
from fer_lib.losses.segmentation import SegmentationLoss
from fer_lib.models import create_model
from fer_lib.runs import RunStore
from fer_lib.runs.provenance import cpu_model
from fer_lib.tasks.sections import load_data
from fer_lib.tasks.segment import SegTask, channel_stats, prepared_splits


def endless(dataset, batch: int):
    """Loader batches forever, reshuffled every pass (the loop's ``drop_last`` batches)."""
    while True:
        yield from DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="real-cpu")
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    planned = next(p for p in plan_profile(a.profile, store=RunStore(published=[])).values() if p.kind == "segmenter")
    cfg = planned.config
    data = load_data("segmenter", dict(planned.data_params))
    images, masks = prepared_splits(data, cfg.train.img_size)["train"]
    mean, std = channel_stats(images)
    batch = cfg.train.batch_size
    torch.manual_seed(0)
    model = create_model(cfg.model, len(data.classes)).train()
    loss = SegmentationLoss(cfg.loss.ce_weight, cfg.loss.dice_weight, cfg.loss.focal, cfg.loss.focal_gamma)
    per_pair = SegTask(model, loss, mean, std, None, data.classes)
    batched = SegTask(model, loss, mean, std, None, data.classes,
                      augment=SegBatchAugment(dataclasses.replace(cfg.augment, batched=True)))
    batched.augment.reseed(0, "cpu")
    pairs = endless(SegArrayDataset(images, masks, joint_transform(cfg.augment)), batch)
    stored = endless(SegArrayDataset(images, masks), batch)
    x_fixed, y_fixed = per_pair.prepare_batch(next(pairs), "cpu")
    x_random = torch.randn_like(x_fixed)
    sgd, optimizer = torch.optim.SGD(model.parameters(), lr=1e-3), make_optimizer(model, cfg.train)

    def step(opt, x, objective):
        opt.zero_grad(set_to_none=True)
        objective(model(x)).backward()
        opt.step()

    def run_loss(y):
        return lambda z: sum(loss(z, y).values())

    def from_loader(task, source):
        x, y = task.prepare_batch(next(source), "cpu")
        step(optimizer, x, run_loss(y))

    rows = [("plain: SGD, logsumexp, one random batch", lambda: step(sgd, x_random, lambda z: z.logsumexp(1).mean())),
            (f"+ the run's optimizer ({type(optimizer).__name__})",
             lambda: step(optimizer, x_random, lambda z: z.logsumexp(1).mean())),
            ("+ the run's loss (CE + Dice), one real batch", lambda: step(optimizer, x_fixed, run_loss(y_fixed))),
            ("+ loader, joint augmentation per pair (default)", lambda: from_loader(per_pair, pairs)),
            ("+ loader, joint augmentation batched on the device", lambda: from_loader(batched, stored))]
    print(f"{cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}: {planned.label}, "
          f"batch {batch} at {cfg.train.img_size} px, {a.steps} steps per row")
    base = None
    for name, fn in rows:
        for _ in range(3):
            fn()
        t0 = time.perf_counter()
        for _ in itertools.repeat(None, a.steps):
            fn()
        ms = (time.perf_counter() - t0) / a.steps * 1e3
        base = base or ms
        print(f"{name:<52} {ms:7.1f} ms/step  {batch / ms * 1e3:6.1f} samples/s  {base / ms:5.2f} of plain")


if __name__ == "__main__":
    main()
