"""Post-hoc calibration maps fitted on validation logits, reported on test (seed 000 §8.3, §9.8, §10.1).

- Temperature grid (the seed's): T in {0.80, 0.82, ..., 1.20}; T* minimises NLL, ties
  (within ``tie_tol``) broken by the lower ECE.
- Unconstrained temperature: T* = argmin_T NLL(softmax(z / T)). NLL is convex in 1/T, so a
  bounded scalar search over 1/T finds the global minimum.
- Vector scaling (Guo et al. 2017): z' = w * z + b with per-class w, b, fitted by L-BFGS on NLL.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar

from .calibration import brier, ece, nll, softmax

SEED_GRID = tuple(np.round(np.arange(0.80, 1.2001, 0.02), 2))


def temperature_sweep(logits, labels, temperatures=SEED_GRID, n_bins: int = 15) -> pd.DataFrame:
    rows = []
    for t in temperatures:
        p = softmax(logits, t)
        rows.append({"T": float(t), "nll": nll(p, labels), "ece": ece(p, labels, n_bins), "brier": brier(p, labels)})
    return pd.DataFrame(rows)


def select_temperature(sweep: pd.DataFrame, tie_tol: float = 1e-9) -> float:
    """T with the lowest NLL; among those within ``tie_tol`` of it, the lowest ECE."""
    best = sweep[sweep["nll"] <= sweep["nll"].min() + tie_tol]
    return float(best.sort_values(["ece", "T"]).iloc[0]["T"])


def _nll_logits(logits: np.ndarray, labels: np.ndarray, inv_t: float) -> float:
    z = logits * inv_t
    z = z - z.max(1, keepdims=True)
    return float(-(z[np.arange(len(z)), labels] - np.log(np.exp(z).sum(1))).mean())


def fit_temperature(logits, labels, t_min: float = 0.05, t_max: float = 20.0) -> float:
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
    res = minimize_scalar(lambda b: _nll_logits(logits, labels, b), bounds=(1 / t_max, 1 / t_min),
                          method="bounded", options={"xatol": 1e-8})
    return float(1.0 / res.x)


def fit_vector_scaling(logits, labels, max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    w = torch.ones(z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z * w + b, y)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy()


def apply_vector_scaling(logits, w, b) -> np.ndarray:
    return np.asarray(logits, np.float64) * w + b
