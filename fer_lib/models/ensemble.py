"""Weighted probability fusion of classifiers (seed 000 §6, §8.2, §9.2).

    p_ens(x) = sum_k w_k p_k(x) / sum_k w_k,   p_k = softmax(z_k)

The division makes the fused vector a probability distribution whatever the weights, so
confidence-based metrics (ECE) are computed on normalised probabilities. Weights are
searched on validation over the simplex grid with step 0.1 (every member at least 0.1) and the best candidate is the
first under the seed's selection order (§7): higher macro-F1, then higher minority-F1,
then lower ECE, then higher accuracy (each compared at 4 decimals, so near-ties fall
through to the next criterion).
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from ..metrics import classification_metrics, ece, softmax

SELECTION_ORDER = (("macro_f1", "max"), ("minority_f1", "max"), ("ece", "min"), ("accuracy", "max"))


def fuse_probs(probs: list[np.ndarray], weights) -> np.ndarray:
    w = np.asarray(weights, np.float64)
    if w.ndim != 1 or len(w) != len(probs) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights: expected {len(probs)} non-negative numbers with a positive sum, got {weights}")
    return np.tensordot(w / w.sum(), np.stack(probs), axes=1)


def weight_grid(k: int, step: float = 0.1, min_weight: float | None = None) -> np.ndarray:
    """Weight vectors of length ``k`` on the simplex grid with the given step and every weight at least
    ``min_weight`` (default ``step``: a zero weight would drop a member, and that candidate is the smaller
    ensemble, listed on its own; ``min_weight=0`` gives the whole lattice)."""
    n = int(round(1 / step))
    lo = int(np.ceil(round((step if min_weight is None else min_weight) / step, 9)))
    pts = [c for c in itertools.product(range(lo, n + 1), repeat=k) if sum(c) == n]
    if not pts:
        raise ValueError(f"no weights of {k} members with step {step} are all >= {min_weight}")
    return np.array(pts, np.float64) / n


def ensemble_metrics(probs: np.ndarray, labels: np.ndarray, classes) -> dict:
    return {**classification_metrics(labels, probs.argmax(1), classes), "ece": ece(probs, labels)}


def selection_key(m: dict, decimals: int = 4) -> tuple:
    """Sort key implementing the seed's selection order (smaller is better)."""
    return tuple(-round(m[k], decimals) if how == "max" else round(m[k], decimals) for k, how in SELECTION_ORDER)


def search_weights(val_probs: list[np.ndarray], labels: np.ndarray, classes, step: float = 0.1,
                   min_weight: float | None = None):
    """(best weights, table of every grid point with its val metrics, sorted best first)."""
    rows = []
    for w in weight_grid(len(val_probs), step, min_weight):
        m = ensemble_metrics(fuse_probs(val_probs, w), labels, classes)
        rows.append({"weights": tuple(float(x) for x in np.round(w, 6)), **m})
    table = pd.DataFrame(rows)
    table = table.iloc[sorted(range(len(table)), key=lambda i: selection_key(table.iloc[i]))].reset_index(drop=True)
    return np.array(table.loc[0, "weights"]), table


def select_best(candidates: dict[str, dict]) -> str:
    """Name of the best candidate (name -> metrics) under the selection order."""
    return min(candidates, key=lambda n: selection_key(candidates[n]))


def member_probs(logits: list[np.ndarray]) -> list[np.ndarray]:
    return [softmax(z) for z in logits]


class ProbabilityEnsemble(nn.Module):
    """A deployable ensemble: runs every member on the input and returns the fused probabilities."""

    def __init__(self, members: list[nn.Module], weights):
        super().__init__()
        self.members = nn.ModuleList(members)
        w = torch.as_tensor(np.asarray(weights, np.float32))
        self.register_buffer("weights", w / w.sum())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([m(x).float().softmax(-1) for m in self.members])
        return torch.einsum("k,kbc->bc", self.weights, p)
