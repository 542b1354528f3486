"""Weighted probability fusion of classifiers (seed 000 §6, §8.2, §9.2).

    p_ens(x) = sum_k w_k p_k(x) / sum_k w_k,   p_k = softmax(z_k)

The division makes the fused vector a probability distribution whatever the weights, so
confidence-based metrics (ECE) are computed on normalised probabilities. Weights must be finite, non-negative and
not all zero, checked before the division (so [-1, -1] is an error, not [0.5, 0.5]). Weights are
searched on validation over the simplex grid with step 0.1 (every member at least 0.1) and the best candidate is the
first under the seed's selection order (§7): higher macro-F1, then higher minority-F1,
then lower ECE, then higher accuracy (each compared at 4 decimals, so near-ties fall
through to the next criterion).
"""
from __future__ import annotations

import itertools
import math
import numbers

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from ..config import ConfigError
from ..metrics import classification_metrics, ece, softmax

SELECTION_ORDER = (("macro_f1", "max"), ("minority_f1", "max"), ("ece", "min"), ("accuracy", "max"))


def normalised_weights(weights, k: int, where: str = "weights") -> np.ndarray:
    """``weights / sum(weights)`` for ``k`` members, after checking they are finite, non-negative and not all zero."""
    try:
        w = np.asarray(weights, np.float64)
    except (TypeError, ValueError):
        w = None
    if w is None or w.shape != (k,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(f"{where}: expected {k} finite, non-negative numbers, not all zero, got {weights}")
    return w / w.sum()


def fuse_probs(probs: list[np.ndarray], weights) -> np.ndarray:
    return np.tensordot(normalised_weights(weights, len(probs)), np.stack(probs), axes=1)


def grid_size(step) -> int:
    """n = 1 / ``step``, the number of grid steps: ``step`` must be in (0, 1] and n a whole number (to 1e-6)."""
    ok = isinstance(step, numbers.Real) and not isinstance(step, bool) and 0 < step <= 1  # NaN fails here
    n = round(1 / step) if ok else 0
    if not ok or abs(n * step - 1) > 1e-6:
        raise ConfigError(f"step: expected a step in (0, 1] that divides 1 evenly (0.1, 0.2, 0.25, 0.5, ...), "
                          f"got {step!r}")
    return n


def grid_bounds(k: int, step, min_weight=None) -> tuple[int, int]:
    """(n, lo): the grid has n steps and every weight is at least lo steps (``min_weight`` rounded up to the grid;
    default ``step``). Raises when no weight vector of ``k`` members fits."""
    n = grid_size(step)
    if min_weight is None:
        min_weight = step
    if not (isinstance(min_weight, numbers.Real) and not isinstance(min_weight, bool) and 0 <= min_weight <= 1):
        raise ConfigError(f"min_weight: expected a finite number in [0, 1], got {min_weight!r}")
    lo = math.ceil(round(min_weight * n, 9))
    if lo * k > n:
        raise ConfigError(f"min_weight: no weights of {k} members on the grid of step {step} are all >= {min_weight}; "
                          f"expected min_weight <= {(n // k) / n:g}")
    return n, lo


def weight_grid(k: int, step: float = 0.1, min_weight: float | None = None) -> np.ndarray:
    """Weight vectors of length ``k`` on the simplex grid with the given step and every weight at least
    ``min_weight`` (default ``step``: a zero weight would drop a member, and that candidate is the smaller
    ensemble, listed on its own; ``min_weight=0`` gives the whole lattice)."""
    n, lo = grid_bounds(k, step, min_weight)
    pts = [c for c in itertools.product(range(lo, n + 1), repeat=k) if sum(c) == n]
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
        w = normalised_weights(weights, len(members))
        self.register_buffer("weights", torch.as_tensor(w, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([m(x).float().softmax(-1) for m in self.members])
        return torch.einsum("k,kbc->bc", self.weights, p)
