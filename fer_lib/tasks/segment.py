"""Face-parsing runs (section 06; seed 001): config -> trained, evaluated, cached MicroSegFormer.

The run trains on the shared engine (``fer_lib.engine.fit``) through two task hooks -- ``prepare_batch`` (uint8
image and mask -> normalised image and label map) and ``evaluate`` (the challenge F-score on validation at the
masks' full resolution) -- so AMP, EMA, DDP, exact resume, early stopping and the run store are the classifiers'.

A run holds ``metrics.json`` (val and held-out test: challenge F-score, mIoU, pixel accuracy, per-class F1 and IoU,
each without test-time augmentation, with flip TTA, and with flip TTA that forgets the L/R swap; the pooled F-score
pitfall; parameter counts; the input size and normalisation), ``history.csv``, ``outputs.npz`` (per-image confusion
matrices for every variant) and ``weights.safetensors`` (best validation F-score).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


from .. import paths
from ..config import ConfigError
from ..config import (SegAugmentConfig, SegDataConfig, SegLossConfig, SegModelConfig, SegRunConfig, TrainConfig, build,
                      deep_merge, from_dict)
from ..data.faceparse import SegImages, flip_permutation, load_seg_dataset
from ..data.seg_transforms import SegArrayDataset, SegBatchAugment, joint_transform
from ..engine import DistEnv, FitData, Task, autocast, fit, load_weights, seed_everything
from ..engine.distributed import ShardSampler
from ..losses.segmentation import SegmentationLoss
from ..metrics.segmentation import confusion_per_image, image_fscores, pooled_fscore, segmentation_metrics
from ..models import count_parameters, create_model
from ..models.spec import ModelSpec
from ..runs import Run, RunStore

KIND = "segmenter"
TTA = ("none", "flip", "flip_noswap")


def resize_images(images: np.ndarray, size: int, chunk: int = 64) -> np.ndarray:
    """uint8 (N, H, W, 3) -> (N, size, size, 3), bilinear with antialiasing."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(images[i:i + chunk]).permute(0, 3, 1, 2).float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i:i + chunk] = y.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return out


def resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W) -> (N, size, size), nearest neighbour (labels are never blended)."""
    if masks.shape[1:] == (size, size):
        return masks
    x = torch.from_numpy(masks).unsqueeze(1)
    return F.interpolate(x, size=(size, size), mode="nearest-exact").squeeze(1).numpy()


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 RGB images, in [0, 1] units."""
    x = images.reshape(-1, 3).astype(np.float64) / 255.0
    return x.mean(0).tolist(), x.std(0).tolist()


class SegTask(Task):
    """MicroSegFormer + CE/focal + Dice, on uint8 batches normalised on the device; validated by the challenge's
    per-image F-score on ``val`` (images at the model's input size, masks at full resolution)."""

    builds_batches = True

    def __init__(self, model: nn.Module, loss: nn.Module, mean, std, val: tuple[np.ndarray, np.ndarray] | None = None,
                 classes: tuple[str, ...] = (), eval_batch_size: int = 16, amp: bool = True,
                 env: DistEnv | None = None, name: str = "segmenter", augment: SegBatchAugment | None = None):
        super().__init__(model, len(classes), name)
        self.loss, self.val, self.classes, self.augment = loss, val, tuple(classes), augment
        self.eval_batch_size, self.amp, self.env = eval_batch_size, amp, env
        self.mean_list, self.std_list = list(mean), list(std)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def validate(self, model: nn.Module, predict_val) -> dict:
        confusions = predict_confusions(model, *self.val, self.mean_list, self.std_list, len(self.classes),
                                        self.eval_batch_size, "none", self.env, self.amp)
        return segmentation_metrics(confusions, self.classes)

    def prepare_batch(self, batch, device):
        """(normalised images, int64 label maps) on ``device``; jointly augmented here when ``augment`` is set (the
        loader then hands over the pairs as stored)."""
        x, m = batch
        x, m = x.to(device, non_blocking=True), m.to(device, non_blocking=True)
        x, m = self.augment(x, m) if self.augment is not None else (x.float().div_(255.0), m.long())
        return (x - self.mean) / self.std, m

    def forward(self, x, t, epoch: float):
        logits = self.model(x)
        return logits, self.loss(logits, t)


@torch.inference_mode()
def full_resolution_logits(model: nn.Module, x: torch.Tensor, size: tuple[int, int], tta: str,
                           perm: torch.Tensor) -> torch.Tensor:
    """Logits at ``size`` (the masks' resolution): the model's 1/4-resolution output upsampled bilinearly; with
    ``tta='flip'`` averaged with the flipped image's prediction flipped back **and its L/R channels swapped**,
    ``'flip_noswap'`` the same without the swap (the pitfall)."""
    def run(inp):
        z = model.forward_logits(inp) if hasattr(model, "forward_logits") else model(inp)
        return F.interpolate(z.float(), size=size, mode="bilinear", align_corners=False)

    z = run(x)
    if tta == "none":
        return z
    zf = run(torch.flip(x, dims=[-1])).flip(-1)
    if tta == "flip":
        zf = zf[:, perm]
    return (z.softmax(1) + zf.softmax(1)).log()


def label_map(logits: torch.Tensor) -> torch.Tensor:
    """The per-pixel class of (N, C, H, W) scores: ``argmax`` over C, the same indices (first of ties), taken over the
    class dimension made contiguous first -- 3.4x faster on CPU than a reduction over the strided class dimension of
    a 19 x 512 x 512 map (2 AMD EPYC cores)."""
    return logits.permute(0, 2, 3, 1).contiguous().argmax(-1)


@torch.inference_mode()
def predict_confusions(model: nn.Module, images: np.ndarray, masks: np.ndarray, mean, std, num_classes: int,
                       batch_size: int = 16, tta: str = "none", env: DistEnv | None = None,
                       amp: bool = True) -> np.ndarray:
    """Per-image (N, C, C) confusion matrices of ``model`` on ``images`` (N, S, S, 3 uint8, the model's input size)
    against ``masks`` (N, H, W, full resolution); the images are sharded over ranks and the rows gathered."""
    if tta not in TTA:
        raise ValueError(f"tta: expected one of {', '.join(TTA)}, got {tta!r}")
    env = env or DistEnv(device=next(model.parameters()).device)
    dev = env.device
    mean_t, std_t = torch.tensor(mean, device=dev).view(1, -1, 1, 1), torch.tensor(std, device=dev).view(1, -1, 1, 1)
    perm = torch.as_tensor(flip_permutation(), device=dev)
    sampler = ShardSampler(len(images), env)
    was_training = model.training
    model.eval()
    rows = []
    idx = np.asarray(sampler.indices, dtype=np.int64)
    for i in range(0, len(idx), batch_size):
        sel = idx[i:i + batch_size]
        x = torch.from_numpy(images[sel]).to(dev).permute(0, 3, 1, 2).float().div_(255.0)
        with autocast(dev, amp):
            z = full_resolution_logits(model, (x - mean_t) / std_t, masks.shape[1:], tta, perm)
        rows.append(confusion_per_image(label_map(z).cpu().numpy(), masks[sel], num_classes))
    model.train(was_training)
    out = np.concatenate(rows) if rows else np.zeros((0, num_classes, num_classes), np.int64)
    return env.gather_rows(idx, out, len(images))


def prepared_splits(data: SegImages, size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per split: images at the model's input ``size``; masks at ``size`` for train, at full resolution otherwise."""
    out = {}
    for s in ("train", "val", "test"):
        part = data.subset(s)
        out[s] = (resize_images(part.images, size), resize_masks(part.masks, size) if s == "train" else part.masks)
    return out


def train_segmenter(cfg: SegRunConfig, store: RunStore | None = None, data: SegImages | None = None,
                    env: DistEnv | None = None, progress: bool = True) -> Run:
    """The face-parsing run for ``cfg`` from ``store``; trained and evaluated on a miss."""
    store = store or RunStore()
    data = data if data is not None else load_seg_dataset(cfg.data)

    def compute(out: Path, scratch: Path) -> None:
        e = env or DistEnv.from_env()
        seed_everything(cfg.train.seed)
        n_cls = len(data.classes)
        model = create_model(cfg.model, n_cls)
        splits = prepared_splits(data, cfg.train.img_size)
        mean, std = channel_stats(splits["train"][0])
        loss = SegmentationLoss(cfg.loss.ce_weight, cfg.loss.dice_weight, cfg.loss.focal, cfg.loss.focal_gamma)
        augment = SegBatchAugment(cfg.augment) if cfg.augment.batched else None
        task = SegTask(model, loss, mean, std, splits["val"], data.classes, cfg.train.eval_batch_size,
                       cfg.train.amp, e, f"{KIND} '{cfg.name}'", augment)
        train_set = SegArrayDataset(*splits["train"], None if augment is not None else joint_transform(cfg.augment))
        result = fit(task, FitData(train_set, np.zeros(len(train_set), np.int64), train_tf=augment), cfg.train, scratch,
                     e, progress)
        load_weights(model, result.best_weights)
        cms = {f"{s}_{t}": predict_confusions(model, *splits[s], mean, std, n_cls, cfg.train.eval_batch_size, t, e,
                                              cfg.train.amp)
               for s in ("val", "test") for t in TTA}
        if not e.is_main:
            return
        metrics = {k: segmentation_metrics(v, data.classes) for k, v in cms.items()}
        metrics["val"], metrics["test"] = metrics["val_none"], metrics["test_none"]
        pooled_batch = cfg.train.batch_size
        metrics.update(
            pooled_fscore={s: pooled_fscore(cms[f"{s}_none"], pooled_batch) for s in ("val", "test")},
            pooled_batch=pooled_batch, best_epoch=result.best_epoch, epochs_run=len(result.history),
            stopped_early=result.stopped_early, classes=list(data.classes), params=count_parameters(model),
            lmsa_params=count_parameters(model.lmsa), input={"size": cfg.train.img_size, "mean": mean, "std": std},
            mask_size=list(splits["val"][1].shape[1:]), n_images={s: len(splits[s][0]) for s in splits})
        task.write_run(out, result, metrics, {**{f"{k}_cm": v for k, v in cms.items()},
                                              **{f"{k}_fscore": image_fscores(v) for k, v in cms.items()},
                                              "val_ids": data.subset("val").ids.astype(str),
                                              "test_ids": data.subset("test").ids.astype(str)})

    return store.run(KIND, cfg.key_dict(), data.fingerprint, compute, env)


def seg_configs(data: dict, model: dict, train: dict, loss: dict, augment: dict,
                arms: dict[str, dict]) -> dict[str, SegRunConfig]:
    """One config per arm: ``{label, model, train, loss, augment}`` overrides of the section's shared settings."""
    out = {}
    data_cfg = from_dict(SegDataConfig, data, "data")
    for name, arm in arms.items():
        arm = dict(arm or {})
        unknown = set(arm) - {"label", "model", "train", "loss", "augment"}
        if unknown:
            raise ConfigError(f"arms.{name}: unknown key {sorted(unknown)[0]!r}; expected label, model, train, loss, "
                             "augment")
        out[name] = build(
            SegRunConfig, f"arms.{name}", name=arm.get("label", name), data=data_cfg,
            model=from_dict(SegModelConfig, deep_merge(model, arm.get("model")), f"arms.{name}.model"),
            train=from_dict(TrainConfig, deep_merge(train, arm.get("train")), f"arms.{name}.train"),
            loss=from_dict(SegLossConfig, deep_merge(loss, arm.get("loss")), f"arms.{name}.loss"),
            augment=from_dict(SegAugmentConfig, deep_merge(augment, arm.get("augment")), f"arms.{name}.augment"))
    return out


def selected_arm(runs: dict) -> str:
    """The run validation selects: the arm with the highest mean validation F-score over its seeds (``arm/seedN``
    runs join their arm), ties going to the earlier arm, at the arm's own run (section 06's ranking, and the run
    whose weights ``fer-runs publish`` keeps)."""
    from ..config.params import arm_means
    from ..metrics import best_on_validation

    return best_on_validation(arm_means({name: run.metrics["val"]["fscore"] for name, run in runs.items()}))


def selected_weights(runs: dict) -> set[str]:
    """Publish rule: of section 06's runs ({name: run}), the one whose weights the book loads -- the selected arm's
    own run (its prediction grid, its challenge masks, ``fer-parse``)."""
    return {selected_arm(runs)} if runs else set()


def load_segmenter(run: Run | str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(model with the run's best weights, its input convention) from a stored face-parsing run."""
    run = run if isinstance(run, Run) else Run(Path(run), published=paths.results_dir() in Path(run).resolve().parents)
    if not (run.path / "config.json").is_file():
        raise FileNotFoundError(f"{run.path} is not a run folder (expected config.json, metrics.json and "
                                "weights.safetensors; `fer-runs list` shows the store's runs)")
    stored = run.config
    if stored.get("kind") != KIND:
        raise ValueError(f"{run.path} is a '{stored.get('kind')}' run, not a face-parsing ('{KIND}') run")
    weights = run.file("weights.safetensors")
    if not weights.is_file():
        raise FileNotFoundError(f"{run.path} is not a complete run (expected weights.safetensors)")
    model_cfg = from_dict(SegModelConfig, stored["config"]["model"], "model")
    m = run.metrics
    model = load_weights(create_model(model_cfg, len(m["classes"])), weights)
    return model.to(device).eval(), m["input"]


def example_predictions(run: Run, data: SegImages, split: str = "val", n: int = 6, tta: bool = True):
    """(images, ground truth, predictions) of the first ``n`` images of ``split`` at full resolution."""
    model, inp = load_segmenter(run)
    part = data.subset(split)
    n = min(n, len(part))
    x = torch.from_numpy(resize_images(part.images[:n], inp["size"])).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(inp["mean"]).view(1, -1, 1, 1)) / torch.tensor(inp["std"]).view(1, -1, 1, 1)
    z = full_resolution_logits(model, x, part.masks.shape[1:], "flip" if tta else "none",
                               torch.as_tensor(flip_permutation()))
    return part.images[:n], part.masks[:n], label_map(z).byte().numpy()


def segmenter_models(cfg: SegRunConfig) -> list[ModelSpec]:
    """The face parser a segmenter run builds, at its input size, with the 19 part classes."""
    from ..data.synthetic import PART_CLASSES

    shape = (cfg.model.in_chans, cfg.train.img_size, cfg.train.img_size)
    return [ModelSpec("segmenter", cfg.model, shape, len(PART_CLASSES))]
