"""Holding back the dominant modality (seed 004's ASGML modes, OGM-GE) and measuring the imbalance (probes).

Pure pieces, used by the audio-visual task's engine hooks (``fer_lib.tasks.av``):

- **frequency k**: the dominant encoder is updated on steps k, 2k, 3k, ... only (1-based steps; on the others its
  gradients are dropped, so the optimizer skips it: no step, no momentum, no weight decay);
- **staleness tau** (``StaleGradients``): the dominant encoder's update at step s uses the gradient computed at
  step s - tau; during the first tau steps it is not updated;
- **OGM-GE** (Peng et al., CVPR 2022; their reference code's Eq. 10), with s_m = sum over the batch of
  softmax(logits_m)[y] for the unimodal logits m in {a, v} taken from the halves of the fusion layer,
      rho_v = s_v / s_a;  if rho_v > 1:  k_v = 1 - tanh(alpha * rho_v), k_a = 1
                          else:          k_a = 1 - tanh(alpha / rho_v), k_v = 1,
  every 4-d (convolution) gradient g of encoder m becomes k_m g + N(0, std(g)^2) -- the reference adds the
  generalisation-enhancement noise to both encoders' convolutions, the modulated and the other one;
- **adaptive** (this project's rule, stated in section 07): after every probe evaluation the dominant modality is
  the one whose probe is more accurate, and its update frequency becomes k = min(k_max, 1 + floor(gap / g0)) with
  gap the utilization gap and g0 = ``gap_per_step``: balanced modalities train every step, a gap of g0 halves the
  dominant one's updates, and so on;
- **utilization gap** (``probe_accuracies``): a linear probe per modality on detached encoder features, fitted
  on training clips and scored on validation clips it never trains on; gap = max - min probe accuracy.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def ogm_ge_coefficients(score_a: float, score_v: float, alpha: float) -> tuple[float, float]:
    """(k_a, k_v): OGM-GE's modulation coefficients from the summed true-class scores of the two modalities."""
    ratio_v = score_v / score_a
    if ratio_v > 1:
        return 1.0, 1.0 - math.tanh(alpha * max(ratio_v, 0.0))
    return 1.0 - math.tanh(alpha * max(1.0 / ratio_v, 0.0)), 1.0


def true_class_score(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """sum_i softmax(logits_i)[y_i] (a 0-d tensor)."""
    return F.softmax(logits.float(), dim=1).gather(1, labels.view(-1, 1)).sum()


def frequency_updates(step: int, k: int) -> bool:
    """Whether the dominant encoder is updated at (1-based) ``step`` with frequency ``k``."""
    return step % k == 0


def adaptive_k(gap: float, gap_per_step: float, k_max: int) -> int:
    return int(min(k_max, 1 + math.floor(max(gap, 0.0) / gap_per_step)))


class StaleGradients:
    """A queue of the dominant encoder's gradients: ``swap(params)`` stores this step's and puts the one from
    ``tau`` steps before in their place (None while fewer than tau are stored)."""

    def __init__(self, tau: int):
        self.tau, self.queue = tau, []

    def swap(self, params: list[nn.Parameter]) -> bool:
        """Returns whether an (old) gradient was applied."""
        self.queue.append([None if p.grad is None else p.grad.detach().clone() for p in params])
        old = self.queue.pop(0) if len(self.queue) > self.tau else None
        for i, p in enumerate(params):
            p.grad = None if old is None else old[i]
        return old is not None

    def state_dict(self) -> dict:
        return {"tau": self.tau, "queue": self.queue}

    def load_state_dict(self, st: dict) -> None:
        self.tau, self.queue = st["tau"], list(st["queue"])


@torch.no_grad()
def fit_probe(train_x: torch.Tensor, train_y: torch.Tensor, eval_x: torch.Tensor, eval_y: torch.Tensor,
              num_classes: int, steps: int = 50, lr: float = 1e-3) -> float:
    """Accuracy on ``eval`` of a linear probe fitted on ``train`` (features standardised with the training
    features' mean and std; zero-initialised; ``steps`` full-batch Adam steps): deterministic."""
    mu, sd = train_x.mean(0, keepdim=True), train_x.std(0, keepdim=True).clamp_min(1e-6)
    xt, xe = (train_x - mu) / sd, (eval_x - mu) / sd
    probe = nn.Linear(xt.shape[1], num_classes).to(xt.device)
    nn.init.zeros_(probe.weight), nn.init.zeros_(probe.bias)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(probe(xt), train_y).backward()
            opt.step()
    return float((probe(xe).argmax(1) == eval_y).float().mean())


@torch.no_grad()
def encoder_features(model, dataset, idx: np.ndarray, batch_size: int, device) -> tuple[torch.Tensor, ...]:
    """(audio features, visual features, labels) of ``dataset[idx]`` with the encoders in eval mode."""
    was = model.training
    model.eval()
    fa, fv, ys = [], [], []
    for i in range(0, len(idx), batch_size):
        items = [dataset[j] for j in idx[i:i + batch_size]]
        spec = torch.stack([it[0][0] for it in items]).to(device)
        frames = torch.stack([it[0][1] for it in items]).to(device)
        a, v = model.encode((spec, frames))
        fa.append(a.float()), fv.append(v.float()), ys.append(torch.tensor([it[1] for it in items], device=device))
    model.train(was)
    return torch.cat(fa), torch.cat(fv), torch.cat(ys)


def probe_accuracies(model, train_set, train_idx, eval_set, eval_idx, num_classes: int, steps: int, lr: float,
                     batch_size: int, device) -> dict:
    """Linear-probe accuracy per modality (fitted on ``train_set[train_idx]``, scored on ``eval_set[eval_idx]``)
    and the utilization gap."""
    ta, tv, ty = encoder_features(model, train_set, train_idx, batch_size, device)
    ea, ev, ey = encoder_features(model, eval_set, eval_idx, batch_size, device)
    acc = {"audio": fit_probe(ta, ty, ea, ey, num_classes, steps, lr),
           "visual": fit_probe(tv, ty, ev, ey, num_classes, steps, lr)}
    return {"probe_audio": acc["audio"], "probe_visual": acc["visual"],
            "util_gap": max(acc.values()) - min(acc.values()),
            "probe_leader": max(acc, key=acc.get)}
