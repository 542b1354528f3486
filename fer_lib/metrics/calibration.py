"""Calibration metrics as pure numpy functions over probabilities (N, C) and labels (N,).

- ECE (Guo et al. 2017), 15 equal-width bins over the top-label confidence:
  ECE = sum_b |B_b|/N * |acc(B_b) - conf(B_b)|;  MCE = max_b |acc(B_b) - conf(B_b)| over non-empty bins.
  Bin b holds confidences in [b/n, (b+1)/n) (left-closed, as torchmetrics), and the last bin is closed,
  [(n-1)/n, 1]: a confidence of exactly 1.0 joins it. torchmetrics 1.9 (``bucketize(right=True)`` over n + 1
  edges) instead puts 1.0 in an extra bin of its own, so the two can differ when confidences of exactly 1.0
  share the last bin with others (ECE when the two groups' accuracy - confidence gaps have opposite signs,
  MCE more often; tests/test_metrics.py has a case, 0.475 here against 0.525 in torchmetrics).
  Elsewhere they agree.
- adaptive ECE: the same with equal-mass bins (Mukhoti et al. 2020).
- classwise ECE (Kull et al. 2019): for every class k, equal-width bins over p_k with
  |mean(1[y=k]) - mean(p_k)| per bin, weighted by bin size; averaged over classes.
- Brier = mean_i sum_k (p_ik - 1[y_i=k])^2 (multiclass, range [0, 2]).
- NLL = -mean_i log p_{i, y_i}.
Seed 000 §8.3 and §9.8 report ECE (15 bins), Brier and NLL.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    return np.clip((conf * n_bins).astype(np.int64), 0, n_bins - 1)


def reliability_bins(probs, labels, n_bins: int = 15) -> pd.DataFrame:
    """Per equal-width bin of top-label confidence: edges, count, mean confidence, accuracy."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    conf, correct = probs.max(1), (probs.argmax(1) == labels).astype(float)
    b = _bin_index(conf, n_bins)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, conf, n_bins) / count
        acc = np.bincount(b, correct, n_bins) / count
    return pd.DataFrame({"lower": np.arange(n_bins) / n_bins, "upper": np.arange(1, n_bins + 1) / n_bins,
                         "count": count, "confidence": mean_conf, "accuracy": acc})


def _gaps(conf, correct, bins, n_bins):
    count = np.bincount(bins, minlength=n_bins)
    s_conf, s_acc = np.bincount(bins, conf, n_bins), np.bincount(bins, correct, n_bins)
    nz = count > 0
    return count[nz], np.abs(s_acc[nz] - s_conf[nz]) / count[nz]


def ece(probs, labels, n_bins: int = 15) -> float:
    probs = np.asarray(probs)
    conf, correct = probs.max(1), (probs.argmax(1) == np.asarray(labels)).astype(float)
    count, gap = _gaps(conf, correct, _bin_index(conf, n_bins), n_bins)
    return float((count * gap).sum() / len(conf))


def mce(probs, labels, n_bins: int = 15) -> float:
    probs = np.asarray(probs)
    conf, correct = probs.max(1), (probs.argmax(1) == np.asarray(labels)).astype(float)
    return float(_gaps(conf, correct, _bin_index(conf, n_bins), n_bins)[1].max())


def adaptive_ece(probs, labels, n_bins: int = 15) -> float:
    probs = np.asarray(probs)
    conf, correct = probs.max(1), (probs.argmax(1) == np.asarray(labels)).astype(float)
    order = np.argsort(conf, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, n_bins):
        if len(chunk):
            total += len(chunk) * abs(correct[chunk].mean() - conf[chunk].mean())
    return float(total / len(conf))


def classwise_ece(probs, labels, n_bins: int = 15) -> float:
    probs, labels = np.asarray(probs), np.asarray(labels)
    per_class = []
    for k in range(probs.shape[1]):
        pk, yk = probs[:, k], (labels == k).astype(float)
        count, gap = _gaps(pk, yk, _bin_index(pk, n_bins), n_bins)
        per_class.append((count * gap).sum() / len(pk))
    return float(np.mean(per_class))


def brier(probs, labels) -> float:
    probs = np.asarray(probs, np.float64)
    onehot = np.eye(probs.shape[1])[np.asarray(labels)]
    return float(((probs - onehot) ** 2).sum(1).mean())


def nll(probs, labels, eps: float = 1e-12) -> float:
    probs = np.asarray(probs, np.float64)
    return float(-np.log(np.clip(probs[np.arange(len(probs)), np.asarray(labels)], eps, None)).mean())


CALIBRATION_METRICS = {"ece": ece, "classwise_ece": classwise_ece, "adaptive_ece": adaptive_ece, "mce": mce,
                       "brier": brier, "nll": nll}


def calibration_metrics(probs, labels, n_bins: int = 15) -> dict:
    out = {}
    for name, fn in CALIBRATION_METRICS.items():
        out[name] = fn(probs, labels, n_bins) if name not in ("brier", "nll") else fn(probs, labels)
    return out
