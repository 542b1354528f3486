"""Audio-visual runs (section 07; seed 004): config -> trained, evaluated, cached two-encoder classifier.

The run trains on the shared engine through task hooks only: ``prepare_batch`` (clips to the device, frame flips),
``modify_grads`` (the balancing method of ``balance.mode``: frequency, staleness, adaptive, OGM-GE; see
``fer_lib.tasks.balance``), ``after_step`` and ``end_epoch`` (linear probes -> utilization gap; test metrics for the
curves), ``epoch_extras`` (columns of the history) and ``extra_state`` (the staleness queue, the probe log and the
adaptive state go into the checkpoint, so a resumed run equals an uninterrupted one).

The checkpoint is selected on **validation** macro-F1. Test metrics are computed after every epoch only to draw
the curves and the seed's "F1 every 5 epochs" table; no decision reads them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ..config import ConfigError
from ..config import (AVDataConfig, AVModelConfig, AVRunConfig, BalanceConfig, ProbeConfig, TrainConfig, build,
                      deep_merge, from_dict)
from ..data.av_clips import AVClips, AVDataset
from ..data.dataset import SEED_PRIME
from ..data.av_sources import load_av_dataset
from ..engine import DistEnv, FitData, Task, fit, load_weights, predict, seed_everything
from ..metrics import classification_metrics
from ..models import count_parameters
from ..models.av import AVClassifier, WithHalves
from ..models.spec import AVSpec
from ..runs import Run, RunStore
from .balance import (StaleGradients, adaptive_k, frequency_updates, ogm_ge_coefficients, probe_accuracies,
                      true_class_score)

KIND = "av"
MODALITIES = ("audio", "visual")


def av_metrics(out: np.ndarray, labels: np.ndarray, classes) -> dict:
    """Fused metrics (accuracy, macro-F1, per-class F1) and each half's accuracy from ``WithHalves`` outputs."""
    c = len(classes)
    m = {k: v for k, v in classification_metrics(labels, out[:, :c].argmax(1), classes, minority=()).items()
         if k != "minority_f1"}
    m["audio_accuracy"] = float((out[:, c:2 * c].argmax(1) == labels).mean())
    m["visual_accuracy"] = float((out[:, 2 * c:].argmax(1) == labels).mean())
    return m


class AVTask(Task):
    """Fused CE (+ gamma * unimodal CE) with the dominant modality held back by ``balance.mode``; validated on the
    fused and each modality's head (``av_metrics``)."""

    builds_batches = True

    def __init__(self, model: AVClassifier, cfg: AVRunConfig, train_set: AVDataset, val_set: AVDataset,
                 test_set: AVDataset | None, classes, env: DistEnv, name: str = "av"):
        super().__init__(model, len(classes), name)
        self.cfg, self.classes, self.env = cfg, tuple(classes), env
        self.sets = {"train": train_set, "val": val_set, "test": test_set}
        b, p = cfg.balance, cfg.probe
        rng = np.random.default_rng([cfg.train.seed, 77])
        self.probe_train = np.sort(rng.choice(len(train_set), min(p.n_train, len(train_set)), replace=False))
        self.probe_eval = np.sort(rng.choice(len(val_set), min(p.n_eval, len(val_set)), replace=False))
        self.dominant = b.dominant
        self.k = 1 if b.mode == "adaptive" else b.k
        self.stale = StaleGradients(b.tau) if b.mode == "staleness" else None
        self.probe_log: list[dict] = []
        self._epoch = 0
        self._reset_epoch_stats()

    # ------------------------------------------------------------------ engine hooks
    def prepare_batch(self, batch, device):
        (spec, frames), y = batch
        frames = frames.to(device, non_blocking=True)
        flip = torch.rand(frames.shape[0], device=device) < 0.5  # horizontal flip of a clip's frames (training)
        axis = -2 if frames.ndim == 5 else -1
        frames = torch.where(flip.view(-1, *[1] * (frames.ndim - 1)), frames.flip(axis), frames)
        return (spec.to(device, non_blocking=True), frames), y.to(device, non_blocking=True)

    def forward(self, x, t, epoch: float):
        self._epoch = int(epoch)
        logits, a, v = self.model.forward_all(x)
        losses = {"loss_ce": F.cross_entropy(logits.float(), t)}
        if self.cfg.balance.unimodal_weight > 0:
            losses["loss_unimodal"] = self.cfg.balance.unimodal_weight * (
                F.cross_entropy(self.model.heads["audio"](a).float(), t)
                + F.cross_entropy(self.model.heads["visual"](v).float(), t))
        if self.cfg.balance.mode == "ogm_ge":
            out_a, out_v = self.model.halves(a.detach(), v.detach())
            self._scores = torch.stack([true_class_score(out_a, t), true_class_score(out_v, t)])
        with torch.no_grad():
            self._stats["correct"] += float((logits.argmax(1) == t).sum())
            self._stats["seen"] += len(t)
        return logits, losses

    def modify_grads(self, step: int) -> None:
        mode = self.cfg.balance.mode
        dom = list(getattr(self.model, self.dominant).parameters())
        if mode in ("frequency", "adaptive"):
            if not frequency_updates(step, self.k):
                for p in dom:
                    p.grad = None
            else:
                self._stats["dominant_updates"] += 1
        elif mode == "staleness":
            self._stats["dominant_updates"] += int(self.stale.swap(dom))
        elif mode == "ogm_ge":
            self._ogm_ge(step)

    def _ogm_ge(self, step: int) -> None:
        scores = self._scores.detach().clone()
        if self.env.distributed:  # the coefficient must be the same on every rank
            dist.all_reduce(scores)
        coef = dict(zip(MODALITIES, ogm_ge_coefficients(float(scores[0]), float(scores[1]), self.cfg.balance.alpha)))
        dev = self.env.device
        g = torch.Generator(device=dev).manual_seed(self.cfg.train.seed * SEED_PRIME + step)  # same noise on all ranks
        for m in MODALITIES:
            for p in getattr(self.model, m).parameters():
                if p.grad is not None and p.grad.ndim == 4:
                    std = float(p.grad.std()) + 1e-8
                    p.grad = p.grad * coef[m] + torch.randn(p.grad.shape, generator=g, device=dev) * std
            self._stats[f"ogm_coef_{m}"] += coef[m]
        self._stats["ogm_steps"] += 1

    def validate(self, model: nn.Module, predict_val) -> dict:
        out = predict(WithHalves(model), self.sets["val"], self.cfg.train.eval_batch_size, self.env,
                      self.cfg.train.amp, False, 0)
        return av_metrics(out, self.sets["val"].labels, self.classes)

    def after_step(self, step: int) -> None:
        if self.cfg.probe.enabled and step % self.cfg.probe.every_steps == 0:
            self._probe(step)

    def end_epoch(self, epoch: int) -> None:
        if self.cfg.probe.enabled:
            self._probe(None)
        if self.sets["test"] is not None:
            out = predict(WithHalves(self.model), self.sets["test"], self.cfg.train.eval_batch_size, self.env,
                          self.cfg.train.amp, False, 0)
            self._test = av_metrics(out, self.sets["test"].labels, self.classes)

    def epoch_extras(self, epoch: int) -> dict:
        s = self._stats
        row = {"train_accuracy": s["correct"] / max(s["seen"], 1)}
        probes = [r for r in self.probe_log if r["epoch"] == epoch]
        if probes:
            last = probes[-1]
            row.update({k: last[k] for k in ("probe_audio", "probe_visual", "util_gap")},
                       util_gap_mean=float(np.mean([r["util_gap"] for r in probes])))
        if self.cfg.balance.mode in ("frequency", "staleness", "adaptive"):
            row.update(dominant_updates=s["dominant_updates"], dominant=self.dominant, k=self.k)
        if s["ogm_steps"]:
            row.update({f"ogm_coef_{m}": s[f"ogm_coef_{m}"] / s["ogm_steps"] for m in MODALITIES})
        if getattr(self, "_test", None):
            row.update({f"test_{k}": v for k, v in self._test.items() if not k.startswith("f1_")})
        self._reset_epoch_stats()
        return row

    def extra_state(self) -> dict:
        return {"probe_log": self.probe_log, "dominant": self.dominant, "k": self.k,
                "stale": self.stale.state_dict() if self.stale else {}}

    def load_extra_state(self, st: dict) -> None:
        self.probe_log, self.dominant, self.k = list(st.get("probe_log", [])), st.get("dominant", self.dominant), \
            st.get("k", self.k)
        if self.stale is not None and st.get("stale"):
            self.stale.load_state_dict(st["stale"])

    # ------------------------------------------------------------------ helpers
    def _reset_epoch_stats(self) -> None:
        self._stats = {"correct": 0.0, "seen": 0, "dominant_updates": 0, "ogm_steps": 0,
                       **{f"ogm_coef_{m}": 0.0 for m in MODALITIES}}

    def _probe(self, step: int | None) -> None:
        p = self.cfg.probe
        r = probe_accuracies(self.model, self.sets["train"], self.probe_train, self.sets["val"], self.probe_eval,
                             len(self.classes), p.train_steps, p.lr, self.cfg.train.eval_batch_size, self.env.device)
        r.update(epoch=self._epoch + 1, step=step if step is not None else -1)
        self.probe_log.append(r)
        if self.cfg.balance.mode == "adaptive":
            self.dominant = r["probe_leader"]
            self.k = adaptive_k(r["util_gap"], self.cfg.balance.gap_per_step, self.cfg.balance.k_max)


def input_stats(clips: AVClips) -> tuple[float, float, float, float]:
    """Spectrogram mean/std and frame mean/std (in [0, 1]) of the training split."""
    a = clips.audio.astype(np.float32)
    f = clips.frames.astype(np.float32) / 255.0
    return float(a.mean()), float(a.std()), float(f.mean()), float(f.std())


def train_av(cfg: AVRunConfig, store: RunStore | None = None, data: AVClips | None = None, env: DistEnv | None = None,
             progress: bool = True) -> Run:
    """The audio-visual run for ``cfg`` from ``store``; trained and evaluated on a miss."""
    store = store or RunStore()
    data = data if data is not None else load_av_dataset(cfg.data)

    def compute(out: Path, scratch: Path) -> None:
        e = env or DistEnv.from_env()
        seed_everything(cfg.train.seed)
        model = AVClassifier(cfg.model, len(data.classes), unimodal_heads=cfg.balance.unimodal_weight > 0)
        train = data.subset("train")
        model.set_input_stats(*input_stats(train))
        sets = {s: AVDataset(data.subset(s)) for s in ("train", "val", "test")}
        task = AVTask(model, cfg, sets["train"], sets["val"], sets["test"], data.classes, e, f"{KIND} '{cfg.name}'")
        halves = WithHalves(model)
        result = fit(task, FitData(sets["train"], sets["train"].labels), cfg.train, scratch, e, progress)
        load_weights(model, result.best_weights)
        outs = {s: predict(halves, sets[s], cfg.train.eval_batch_size, e, cfg.train.amp, False, 0)
                for s in ("val", "test")}
        if not e.is_main:
            return
        hist = pd.DataFrame(result.history)
        last = hist.iloc[-1]
        metrics = {s: av_metrics(outs[s], sets[s].labels, data.classes) for s in ("val", "test")}
        metrics.update(
            best_epoch=result.best_epoch, epochs_run=len(result.history), stopped_early=result.stopped_early,
            classes=list(data.classes), params=count_parameters(model, trainable_only=False),
            final={"test_macro_f1": float(last.get("test_macro_f1", np.nan)),
                   "test_accuracy": float(last.get("test_accuracy", np.nan))},
            n_clips={s: len(sets[s]) for s in sets}, dominant=cfg.balance.dominant, mode=cfg.balance.mode)
        task.write_run(out, result, metrics, {**{f"{s}_outputs": outs[s] for s in outs},
                                              **{f"{s}_labels": sets[s].labels for s in outs}},
                       tables={"probes": pd.DataFrame(task.probe_log)})

    return store.run(KIND, cfg.key_dict(), data.fingerprint, compute, env)


def av_configs(data: dict, model: dict, train: dict, balance: dict, probe: dict, arms: dict[str, dict],
               seeds: list[int]) -> dict[tuple[str, int], AVRunConfig]:
    """One config per (arm, seed): ``{label, model, train, balance, probe, seeds}`` overrides of the shared settings;
    ``train.seed`` is the seed (model initialisation and batch order; the data split stays fixed). An arm's own
    ``seeds`` list replaces the section's for that arm (the arms of a comparison are paired on their common seeds)."""
    out = {}
    data_cfg = from_dict(AVDataConfig, data, "data")
    if not seeds:
        raise ConfigError("seeds: expected at least one training seed")
    for name, arm in arms.items():
        arm = dict(arm or {})
        unknown = set(arm) - {"label", "model", "train", "balance", "probe", "seeds"}
        if unknown:
            raise ConfigError(f"arms.{name}: unknown key {sorted(unknown)[0]!r}; expected label, model, train, balance, "
                             "probe, seeds")
        arm_seeds = arm.get("seeds", seeds)
        if not arm_seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in arm_seeds):
            raise ConfigError(f"arms.{name}.seeds: expected a list of training seeds (integers >= 0), got {arm_seeds!r}")
        for seed in arm_seeds:
            where = f"arms.{name}"
            out[name, seed] = build(
                AVRunConfig, where, name=arm.get("label", name), data=data_cfg,
                model=from_dict(AVModelConfig, deep_merge(model, arm.get("model")), f"{where}.model"),
                train=from_dict(TrainConfig, deep_merge(deep_merge(train, arm.get("train")), {"seed": seed}),
                                f"{where}.train"),
                balance=from_dict(BalanceConfig, deep_merge(balance, arm.get("balance")), f"{where}.balance"),
                probe=from_dict(ProbeConfig, deep_merge(probe, arm.get("probe")), f"{where}.probe"))
    return out


def av_models(cfg) -> list[AVSpec]:
    """The audio-visual classifier (with its unimodal heads when they are trained); its input is (spectrogram shape,
    frames shape)."""
    d = cfg.data
    frames = (d.n_frames, d.frame_size, d.frame_size) + ((3,) if d.source == "crema_d" else ())
    spectrogram = (d.n_fft // 2 + 1, 1 + int(round(d.sample_rate * d.seconds)) // d.hop)
    return [AVSpec("audio-visual", cfg.model, (spectrogram, frames), 6,
                   unimodal_heads=cfg.balance.unimodal_weight > 0)]
