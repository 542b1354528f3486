"""The calibration metrics of ``fer_lib.metrics.calibration`` on many bootstrap resamples at once.

A resample is a row of counts ``weights[r, i]`` (how often sample i was drawn); each metric below equals the plain
metric computed on the resampled arrays (``tests/test_calibration_boot.py`` checks each against it), but for all rows
in a few matrix products instead of one Python call per resample. Bins that depend on a sample's own confidence only
(ECE, MCE, classwise ECE) keep each sample's bin; the equal-mass bins of adaptive ECE are cut along the cumulative
counts of the confidence-sorted samples, a copy of a sample falling on either side of a cut as ``np.array_split``
would put it.
"""
from __future__ import annotations

import numpy as np

from .calibration import _bin_index


def _binned_gap_sums(weights: np.ndarray, score: np.ndarray, target: np.ndarray, bins: np.ndarray, n_bins: int):
    """(sum_i w_i (target_i - score_i) per bin, sum_i w_i per bin), each (rows, n_bins)."""
    in_bin = (bins[:, None] == np.arange(n_bins)).astype(np.float64)
    return weights @ (in_bin * (target - score)[:, None]), weights @ in_bin


def _top(probs, labels):
    probs = np.asarray(probs, np.float64)
    return probs.max(1), (probs.argmax(1) == np.asarray(labels)).astype(np.float64)


def ece_rows(weights, probs, labels, n_bins: int = 15) -> np.ndarray:
    conf, correct = _top(probs, labels)
    gaps, _ = _binned_gap_sums(weights, conf, correct, _bin_index(conf, n_bins), n_bins)
    return np.abs(gaps).sum(1) / weights.sum(1)


def mce_rows(weights, probs, labels, n_bins: int = 15) -> np.ndarray:
    conf, correct = _top(probs, labels)
    gaps, counts = _binned_gap_sums(weights, conf, correct, _bin_index(conf, n_bins), n_bins)
    per_bin = np.where(counts > 0, np.abs(gaps) / np.where(counts > 0, counts, 1), -np.inf)
    return per_bin.max(1)


def classwise_ece_rows(weights, probs, labels, n_bins: int = 15) -> np.ndarray:
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
    n, k = probs.shape
    # one column per (class, bin): sample i puts (1[y_i = c] - p_ic) into the column of its bin for class c
    columns = np.zeros((n, k * n_bins))
    rows = np.repeat(np.arange(n), k)
    cols = (np.arange(k) * n_bins + _bin_index(probs, n_bins)).ravel()
    columns[rows, cols] = ((labels[:, None] == np.arange(k)) - probs).ravel()
    return np.abs(weights @ columns).sum(1) / weights.sum(1) / k


def adaptive_ece_rows(weights, probs, labels, n_bins: int = 15) -> np.ndarray:
    conf, correct = _top(probs, labels)
    order = np.argsort(conf, kind="stable")
    w, diff = weights[:, order], (correct - conf)[order]
    n = int(round(w[0].sum()))
    sizes = np.full(n_bins, n // n_bins) + (np.arange(n_bins) < n % n_bins)
    cuts = np.concatenate([[0], np.cumsum(sizes)])  # position of each chunk boundary in the sorted resample
    ends = np.cumsum(w, 1)  # in row r, sample j occupies positions [ends[r, j] - w[r, j], ends[r, j])
    prefix = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(w * diff, 1)], 1)
    n_rows, n_samples = w.shape
    rows = np.arange(n_rows)[:, None]
    # per row, how many samples end at or before each cut: one searchsorted over the rows laid end to end (each row
    # shifted by (n + 1) * row keeps the whole array sorted)
    shift = (n + 1.0) * rows
    j = np.searchsorted((ends + shift).ravel(), (cuts[None, :] + shift).ravel(), side="right").reshape(n_rows, -1)
    j -= n_samples * rows  # samples wholly before the cut; sample j (if any) straddles or starts at it
    jj = np.minimum(j, n_samples - 1)
    start = ends[rows, jj] - w[rows, jj]
    below = prefix[rows, j] + np.where(j < n_samples, (cuts[None, :] - start) * diff[jj], 0.0)
    return np.abs(np.diff(below, axis=1)).sum(1) / n


def brier_rows(weights, probs, labels) -> np.ndarray:
    probs = np.asarray(probs, np.float64)
    per_sample = ((probs - np.eye(probs.shape[1])[np.asarray(labels)]) ** 2).sum(1)
    return weights @ per_sample / weights.sum(1)


def nll_rows(weights, probs, labels, eps: float = 1e-12) -> np.ndarray:
    probs = np.asarray(probs, np.float64)
    per_sample = -np.log(np.clip(probs[np.arange(len(probs)), np.asarray(labels)], eps, None))
    return weights @ per_sample / weights.sum(1)


CALIBRATION_ROWS = {"ece": ece_rows, "classwise_ece": classwise_ece_rows, "adaptive_ece": adaptive_ece_rows,
                    "mce": mce_rows, "brier": brier_rows, "nll": nll_rows}
