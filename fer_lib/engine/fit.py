"""The training engine: one loop for every kind of run.

A *task* is an ``nn.Module`` in the style of mdistiller's distillers: ``task(x, t, epoch)``
returns ``(logits, {loss_name: loss})`` for a batch ``x`` with target distribution ``t``
(one-hot, or mixed by MixUp/CutMix) at fractional epoch ``epoch``; ``task.model`` is the
module that is optimised, averaged (EMA), evaluated and saved.

The loop (after torchvision's reference ``train.py``): AdamW (timm param groups, optional
layer-wise LR decay), linear warm-up into cosine decay per step, autocast fp16 +
GradScaler on CUDA, channels_last on CUDA, gradient clipping, EMA, per-epoch evaluation
with the best weights kept by a validation metric, early stopping, and an atomic
``last.pt`` after every epoch from which an interrupted run resumes exactly: each epoch's
randomness is drawn from ``(seed, epoch)`` alone, so resumed and uninterrupted runs match; the
training *views* (sample order, augmentation, MixUp/CutMix) come from generators of their own, so
runs that share a data pipeline see identical views whatever their models consume in between.
Under ``torchrun`` the task is wrapped in DDP and the data sharded across ranks.

Every kind of run -- classifier, distillation, face parsing, audio-visual -- goes through this one loop and differs
only in its ``Task`` (``fer_lib.engine.task``: the hooks, each with a no-op default). A non-finite loss stops the
run at once with a ``NonFiniteLossError`` naming the run, epoch, step and the last finite loss; nothing is stored.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from timm.data import Mixup
from timm.scheduler import CosineLRScheduler, StepLRScheduler
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data.dataset import EPOCH_PRIME, RANK_PRIME, SEED_PRIME
from ..data.sampler import train_sampler
from .checkpoint import load_state, save_state, save_weights
from .distributed import DistEnv, ShardSampler
from .optim import make_optimizer
from .task import FitData, Task, overrides


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss (or validation score); the run is not stored."""


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -math.inf
    stopped_early: bool = False
    best_weights: Path | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return (seed * SEED_PRIME + epoch * EPOCH_PRIME + rank * RANK_PRIME) % 2**31


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled and device.type == "cuda")


@torch.inference_mode()
def predict(model: nn.Module, dataset: Dataset, batch_size: int = 256, env: DistEnv | None = None,
            amp: bool = True, channels_last: bool | None = None, num_workers: int = 0,
            transform: nn.Module | None = None) -> np.ndarray:
    """Model outputs for every item of ``dataset`` in order (sharded over ranks, then gathered).

    ``transform`` is the batched, on-device input transform (e.g. resize + normalise); ``channels_last`` whether
    4-D inputs go in the channels-last layout (None: on CUDA only, as ``TrainConfig``'s default).
    """
    env = env or DistEnv(device=next(model.parameters()).device)
    if channels_last is None:
        channels_last = env.device.type == "cuda"
    if transform is not None:
        transform.to(env.device)
    sampler = ShardSampler(len(dataset), env)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                        pin_memory=env.device.type == "cuda")
    was_training = model.training
    model.eval()
    outs = []
    for x, _ in loader:
        x = _to_device(x, env.device, transform, channels_last)
        with autocast(env.device, amp):
            outs.append(model(x).float().cpu())
    model.train(was_training)
    rows = torch.cat(outs).numpy() if outs else np.zeros((0, 0), np.float32)
    return env.gather_rows(np.asarray(sampler.indices), rows, len(dataset))


def _to_device(x, device: torch.device, transform: nn.Module | None, channels_last: bool):
    """A tensor (or a tuple of tensors, e.g. audio and frames) on ``device``, transformed, and channels-last when
    ``channels_last`` (see ``channels_last_on``)."""
    if isinstance(x, (tuple, list)):
        return type(x)(_to_device(v, device, None, channels_last) for v in x)
    x = x.to(device, non_blocking=True)
    if transform is not None:
        x = transform(x)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def channels_last_on(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether a run's model and 4-D inputs use the channels-last layout: on CUDA with ``cfg.channels_last``; on CPU
    only with ``cfg.channels_last_cpu`` as well (1.25-2.4x faster training steps for the small ResNets and
    EfficientNets of the smoke profile on 2 AMD EPYC cores; not bitwise equal to the default layout, hence a field of
    the run's key)."""
    return cfg.channels_last and (device.type == "cuda" or cfg.channels_last_cpu)


def _replayable_views(train_set, train_tf, seed: int, epoch: int, env: DistEnv, dev) -> None:
    """Tie every random draw that shapes an epoch's training views to (seed, epoch, rank) only."""
    view_seed = epoch_seed(seed, epoch, env.rank) + 1
    if hasattr(train_set, "set_epoch"):
        train_set.set_epoch(seed + EPOCH_PRIME * env.rank, epoch)
    if train_tf is not None and hasattr(train_tf, "reseed"):
        train_tf.reseed(view_seed, dev)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Per-step LR schedule: linear warm-up, then cosine to ``min_lr`` or StepLR (``lr_step_gamma`` every
    ``lr_step_epochs`` epochs, counted from the start like ``torch.optim.lr_scheduler.StepLR``)."""
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.scheduler == "step":
        return StepLRScheduler(optimizer, decay_t=cfg.lr_step_epochs * steps_per_epoch, decay_rate=cfg.lr_step_gamma,
                               warmup_t=warmup, warmup_lr_init=cfg.lr * 1e-3 if warmup else 0, t_in_epochs=False)
    total = cfg.epochs * steps_per_epoch
    return CosineLRScheduler(optimizer, t_initial=max(1, total - warmup), lr_min=cfg.min_lr, warmup_t=warmup,
                             warmup_lr_init=cfg.lr * 1e-3, warmup_prefix=True, t_in_epochs=False)


@dataclass
class _Loop:
    """Everything one ``fit`` call trains with: built once by ``_build_loop``, read by the phases below."""

    task: Task
    data: FitData
    cfg: TrainConfig
    env: DistEnv
    dev: torch.device
    run_name: str
    use_cl: bool
    mixup: Mixup | None
    sampler: object
    loader_kw: dict
    steps_per_epoch: int
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    ema: ModelEmaV3 | None
    net: nn.Module
    last: Path
    frozen: list = field(default_factory=list)
    modifies_grads: bool = False
    last_finite: str = "none yet (the first step)"


def fit(task: Task, data: FitData, cfg: TrainConfig, workdir: Path, env: DistEnv | None = None,
        progress: bool = True) -> FitResult:
    """Train ``task`` on ``data``; keep ``workdir/best.safetensors`` by ``task.validate(model)[cfg.select_metric]``.

    ``task.frozen_parameters()`` (e.g. the backbone) get no update for ``cfg.freeze_backbone_epochs``.
    Re-running with the same ``workdir`` resumes from ``workdir/last.pt``. ``task.name`` (e.g. ``student 'm1'``)
    labels the progress bar and, with the workdir's name (the run's key), the errors. The phases: build the loop,
    resume, then per epoch train (``_train_epoch``), validate and keep the best (``_end_epoch``), checkpoint.
    """
    if not overrides(task, "validate") and data.val_set is None:
        raise ValueError(f"fit: {type(task).__name__} validates on data.val_set, which is None")
    env = env or DistEnv.from_env()
    loop = _build_loop(task, data, cfg, Path(workdir), env)
    res, start, bad_epochs = _resume(loop, FitResult(best_weights=Path(workdir) / "best.safetensors"))
    if res.stopped_early:
        return res
    loop.frozen, loop.modifies_grads = list(task.frozen_parameters()), overrides(task, "modify_grads")
    bar = tqdm(range(start, cfg.epochs), desc=task.name, disable=not (progress and env.is_main),
               initial=start, total=cfg.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        sums = _train_epoch(loop, epoch, progress)
        current, bad_epochs = _end_epoch(loop, res, epoch, sums, t0, bad_epochs)
        bar.set_postfix({cfg.select_metric: f"{current:.4f}", "best": f"{res.best_score:.4f}"})
        if res.stopped_early:
            break
    return res


def _build_loop(task: Task, data: FitData, cfg: TrainConfig, workdir: Path, env: DistEnv) -> _Loop:
    """Devices, MixUp/CutMix, the sampler and loader settings, optimizer, schedule, scaler, EMA and DDP."""
    dev = env.device
    use_cl = channels_last_on(cfg, dev)
    task.to(dev)
    for tf in (data.train_tf, data.eval_tf):
        if tf is not None:
            tf.to(dev)
    if use_cl:
        task.model.to(memory_format=torch.channels_last)
    mixing = cfg.mixup_alpha > 0 or cfg.cutmix_alpha > 0
    if mixing and task.builds_batches:
        raise ValueError(f"train.mixup_alpha / cutmix_alpha: {type(task).__name__} builds its own batches; "
                         "MixUp/CutMix apply to image classification only")
    mixup = Mixup(mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha, prob=cfg.mix_prob,
                  label_smoothing=0.0, num_classes=task.num_classes) if mixing else None
    sampler = train_sampler(np.asarray(data.train_labels), cfg.sampler == "class_balanced", env.world_size, env.rank,
                            cfg.seed)
    per_rank_batch = max(1, cfg.batch_size // env.world_size)
    if mixup is not None and per_rank_batch % 2:
        raise ValueError(f"train.batch_size: MixUp/CutMix pair images within a batch, so the batch per process "
                         f"must be even; got {per_rank_batch}")
    loader_kw = dict(batch_size=per_rank_batch, sampler=sampler, num_workers=cfg.num_workers,
                     pin_memory=dev.type == "cuda", drop_last=True)
    steps_per_epoch = len(DataLoader(data.train_set, **loader_kw))
    if steps_per_epoch == 0:
        raise ValueError(f"train.batch_size {cfg.batch_size} exceeds the {len(data.train_set)} training images")
    optimizer = make_optimizer(task.model, cfg)
    return _Loop(task, data, cfg, env, dev, f"{task.name} ({workdir.name})", use_cl, mixup, sampler, loader_kw,
                 steps_per_epoch, optimizer, make_scheduler(optimizer, cfg, steps_per_epoch),
                 torch.amp.GradScaler(dev.type, enabled=cfg.amp and dev.type == "cuda"),
                 ModelEmaV3(task.model, decay=cfg.ema_decay, use_warmup=True) if cfg.ema_decay else None,
                 DDP(task, device_ids=[dev] if dev.type == "cuda" else None) if env.distributed else task,
                 workdir / "last.pt")


def _resume(loop: _Loop, res: FitResult) -> tuple[FitResult, int, int]:
    """(result so far, first epoch to train, epochs without improvement) from ``last.pt`` if an attempt left one."""
    if not loop.last.exists():
        return res, 0, 0
    st = load_state(loop.last, map_location=loop.dev)
    loop.task.model.load_state_dict(st["model"])
    loop.optimizer.load_state_dict(st["optimizer"])
    loop.scheduler.load_state_dict(st["scheduler"])
    loop.scaler.load_state_dict(st["scaler"])
    if loop.ema is not None:
        loop.ema.module.load_state_dict(st["ema"])
    loop.task.load_extra_state(st.get("task", {}))
    res.history, res.best_epoch, res.best_score = st["history"], st["best_epoch"], st["best_score"]
    res.stopped_early = bool(st.get("stopped_early"))
    return res, st["epoch"], st["bad_epochs"]


def _train_epoch(loop: _Loop, epoch: int, progress: bool) -> dict[str, torch.Tensor]:
    """One epoch of training steps; the summed losses by name."""
    cfg, env, task = loop.cfg, loop.env, loop.task
    seed_everything(epoch_seed(cfg.seed, epoch, env.rank))
    _replayable_views(loop.data.train_set, loop.data.train_tf, cfg.seed, epoch, env, loop.dev)
    loop.sampler.set_epoch(epoch)
    loader = DataLoader(loop.data.train_set, **loop.loader_kw)
    task.train()
    sums: dict[str, torch.Tensor] = {}
    for i, batch in enumerate(tqdm(loader, desc=f"epoch {epoch + 1}", leave=False,
                                   disable=not (progress and env.is_main))):
        x, target = _batch(loop, batch)
        losses = _train_step(loop, x, target, epoch, i)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v.detach().float()
    return sums


def _batch(loop: _Loop, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs on the device, target distribution): the task's own batches, or images with one-hot or mixed
    targets."""
    if loop.task.builds_batches:
        return loop.task.prepare_batch(batch, loop.dev)
    x, y = batch
    x, y = _to_device(x, loop.dev, loop.data.train_tf, loop.use_cl), y.to(loop.dev, non_blocking=True)
    if loop.mixup is not None:
        return loop.mixup(x, y)
    return x, nn.functional.one_hot(y, loop.task.num_classes).float()


def _train_step(loop: _Loop, x, target, epoch: int, i: int) -> dict[str, torch.Tensor]:
    """Forward, a finite-loss check, backward (frozen parameters, clipping, the task's gradient hook), the
    optimizer, schedule and EMA updates; returns ``{"loss": total, **named losses}``."""
    cfg, task, optimizer, scaler = loop.cfg, loop.task, loop.optimizer, loop.scaler
    progress_epoch = epoch + i / loop.steps_per_epoch
    step = epoch * loop.steps_per_epoch + i + 1
    task.set_step(epoch, i, x)
    with autocast(loop.dev, cfg.amp):
        _, losses = loop.net(x, target, progress_epoch)
        loss = sum(losses.values())
    loss_value = float(loss.detach())  # one device sync per step (GradScaler on CUDA syncs anyway)
    if not math.isfinite(loss_value):
        raise NonFiniteLossError(
            f"run {loop.run_name}: non-finite training loss {loss_value:g} at epoch {epoch + 1}, step {i + 1} "
            f"(global step {step}; {', '.join(f'{k} {float(v.detach()):g}' for k, v in losses.items())}); last "
            f"finite loss {loop.last_finite}. Nothing was stored; lower train.lr, set train.grad_clip, or check "
            f"the inputs. Checkpoint of the last finished epoch: {loop.last}")
    loop.last_finite = f"{loss_value:.6g} (step {step})"
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if loop.frozen and progress_epoch < cfg.freeze_backbone_epochs:
        for p in loop.frozen:
            p.grad = None
    if cfg.grad_clip or loop.modifies_grads:
        scaler.unscale_(optimizer)
    task.modify_grads(step)
    if cfg.grad_clip:
        nn.utils.clip_grad_norm_(task.model.parameters(), cfg.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    loop.scheduler.step_update(step)
    if loop.ema is not None:
        loop.ema.update(task.model, step=step)
    task.after_step(step)
    return {"loss": loss, **losses}


def _end_epoch(loop: _Loop, res: FitResult, epoch: int, sums: dict, t0: float, bad_epochs: int) -> tuple[float, int]:
    """The task's end-of-epoch work, validation, the epoch's record, the best weights, early stopping, ``last.pt``;
    returns (the epoch's validation score, epochs without improvement)."""
    cfg, env, task = loop.cfg, loop.env, loop.task
    train_seconds = time.perf_counter() - t0  # the epoch's training steps, data loading included
    task.end_epoch(epoch)  # the task's own end-of-epoch work (probes, caches): timed with validation, not training
    eval_model = loop.ema.module if loop.ema is not None else task.model
    scores = task.validate(eval_model, lambda m: predict(m, loop.data.val_set, cfg.eval_batch_size, env, cfg.amp,
                                                         loop.use_cl, cfg.num_workers, loop.data.eval_tf))
    row = {"epoch": epoch + 1, "lr": loop.optimizer.param_groups[0]["lr"],
           **{f"train_{k}": float(v) / loop.steps_per_epoch for k, v in sums.items()},
           **{f"val_{k}": float(v) for k, v in scores.items() if np.isscalar(v)},
           "seconds": time.perf_counter() - t0, "train_seconds": train_seconds}
    row.update(task.epoch_extras(epoch + 1))
    res.history.append(row)
    if cfg.select_metric not in scores:
        raise KeyError(f"train.select_metric: {cfg.select_metric!r} is not among the validation metrics of run "
                       f"{loop.run_name} ({', '.join(k for k, v in scores.items() if np.isscalar(v))})")
    current = float(scores[cfg.select_metric])
    if not math.isfinite(current):
        raise NonFiniteLossError(f"run {loop.run_name}: validation {cfg.select_metric} is {current} after epoch "
                                 f"{epoch + 1}; nothing was stored")
    if current > res.best_score:
        res.best_score, res.best_epoch, bad_epochs = current, epoch + 1, 0
        if env.is_main:
            save_weights(eval_model, res.best_weights)
    else:
        bad_epochs += 1
    res.stopped_early = bool(cfg.early_stop_patience and bad_epochs >= cfg.early_stop_patience)
    if env.is_main:
        save_state({"epoch": epoch + 1, "model": task.model.state_dict(), "optimizer": loop.optimizer.state_dict(),
                    "scheduler": loop.scheduler.state_dict(), "scaler": loop.scaler.state_dict(),
                    "ema": loop.ema.module.state_dict() if loop.ema is not None else {}, "history": res.history,
                    "best_epoch": res.best_epoch, "best_score": res.best_score, "bad_epochs": bad_epochs,
                    "stopped_early": res.stopped_early, "task": task.extra_state()}, loop.last)
    env.barrier()
    return current, bad_epochs
