"""How sure a number is: intervals over seeds, paired comparisons, and the verdict words the book prints.

Every section states a difference through these functions (issue 34; the seeds' own comparisons rarely carry one):

- ``mean_ci(values)``: the mean over seeds and its 95% t-interval, ``mean +- t_{n-1, 0.975} * sd / sqrt(n)``;
- ``paired_seeds(a, b)``: arm A minus arm B over matched seeds (same seed = same initialisation and data order), the
  t-interval of the per-seed differences -- the training noise of both arms, with what they share cancelled;
- ``paired_bootstrap(labels, pred_a, pred_b, metric)``: one run each, A minus B resampled over the test samples
  (the same resample for both), percentile interval -- it covers test sampling only, not training noise;
- ``verdict(cmp)``: "higher" / "lower" when the interval excludes zero, else "no difference detectable at this
  budget"; ``describe(cmp)`` the sentence fragment the book glues, with n and the interval.

Nothing here picks a winner: selection is ``fer_lib.metrics.selection`` (validation scores only).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from scipy import stats as sps

from .calibration_boot import ece_rows

LEVEL = 0.95
NOT_DETECTABLE = "no difference detectable at this budget"


@dataclass(frozen=True)
class Interval:
    """An estimate with its ``level`` interval [low, high] from ``n`` units (seeds or bootstrap test sets)."""

    estimate: float
    low: float
    high: float
    n: int
    method: str  # "t over seeds" | "paired t over seeds" | "paired bootstrap over test samples" | "one run"
    level: float = LEVEL

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def mean_ci(values, level: float = LEVEL) -> Interval:
    """Mean of ``values`` (one per seed) with its t-interval; one value gives an unbounded interval (n = 1)."""
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        raise ValueError("mean_ci: no values")
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, -math.inf, math.inf, 1, "one run", level)
    half = float(sps.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Interval(mean, mean - half, mean + half, int(x.size), "t over seeds", level)


def paired_seeds(a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL) -> Interval:
    """A minus B over the seeds both arms ran (``{seed: score}``): mean difference and its paired t-interval."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"paired_seeds: the arms share no seed (A ran {sorted(a)}, B ran {sorted(b)})")
    diff = mean_ci([a[s] - b[s] for s in seeds], level)
    method = "paired t over seeds" if diff.n > 1 else "one run"
    return Interval(diff.estimate, diff.low, diff.high, diff.n, method, level)


# ----------------------------------------------------------------------------- per-sample paired bootstrap
@functools.lru_cache(maxsize=4)
def resample_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) counts: how often each sample is drawn in each bootstrap resample (multinomial = with replacement).
    The same (n, n_boot, seed) gives the same resamples, so every comparison on one test split shares them; the
    array is kept (read-only) for the next caller, drawing it being most of a bootstrap's cost."""
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    weights.flags.writeable = False
    return weights


def weighted_accuracy(weights: np.ndarray, labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy of each resample (rows of ``weights``): sum_i w_i [y_i = p_i] / sum_i w_i."""
    return weights @ (labels == pred).astype(np.float64) / weights.sum(1)


def weighted_macro_f1(weights: np.ndarray, labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Macro-F1 of each resample: per class F1 = 2 TP / (2 TP + FP + FN) from weighted counts, averaged over the
    classes present in the resample's labels or predictions (scikit-learn's ``f1_score(average="macro")`` with
    ``labels`` = the classes that occur; a class absent from both contributes nothing)."""
    classes = np.arange(num_classes)
    is_label = (labels[:, None] == classes).astype(np.float64)
    is_pred = (pred[:, None] == classes).astype(np.float64)
    tp = weights @ (is_label * is_pred)
    label_count, pred_count = weights @ is_label, weights @ is_pred
    denom = label_count + pred_count  # = 2 TP + FP + FN
    present = denom > 0
    f1 = np.where(present, 2 * tp / np.where(present, denom, 1), 0.0)
    return f1.sum(1) / present.sum(1)


WEIGHTED_METRICS: dict[str, Callable] = {"accuracy": weighted_accuracy, "macro_f1": weighted_macro_f1}


def _paired_interval(difference_rows: Callable[[np.ndarray], np.ndarray], n: int, n_boot: int, level: float,
                     seed: int) -> Interval:
    """The paired bootstrap every function below shares: ``difference_rows(weights)`` is metric(A) - metric(B) for
    each row of resample counts; a row of ones is the full test split (the estimate)."""
    estimate = float(difference_rows(np.ones((1, n)))[0])
    boots = difference_rows(resample_weights(n, n_boot, seed))
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return Interval(estimate, float(low), float(high), n, "paired bootstrap over test samples", level)


def paired_bootstrap(labels, pred_a, pred_b, metric: str = "macro_f1", num_classes: int | None = None,
                     n_boot: int = 2000, level: float = LEVEL, seed: int = 0) -> Interval:
    """metric(A) - metric(B) on the test split, with the percentile interval of that difference over ``n_boot``
    resamples of the test samples (the same resample for both arms: a paired bootstrap). The interval covers test
    sampling, not training noise: use it where only one run per arm exists."""
    labels, pred_a, pred_b = (np.asarray(v).astype(np.int64) for v in (labels, pred_a, pred_b))
    if not (labels.shape == pred_a.shape == pred_b.shape) or labels.ndim != 1:
        raise ValueError(f"paired_bootstrap: labels and predictions must be 1-D of one length, got "
                         f"{labels.shape}, {pred_a.shape}, {pred_b.shape}")
    score = WEIGHTED_METRICS[metric]
    k = int(num_classes or max(labels.max(), pred_a.max(), pred_b.max()) + 1)
    return _paired_interval(lambda w: score(w, labels, pred_a, k) - score(w, labels, pred_b, k), labels.size,
                            n_boot, level, seed)


def paired_bootstrap_ece(labels, probs_a, probs_b, n_bins: int = 15, n_boot: int = 2000, level: float = LEVEL,
                         seed: int = 0) -> Interval:
    """ECE(A) - ECE(B) on the test split with its paired bootstrap interval (one run each: test sampling only)."""
    labels = np.asarray(labels).astype(np.int64)
    probs_a, probs_b = np.asarray(probs_a, np.float64), np.asarray(probs_b, np.float64)
    return _paired_interval(lambda w: ece_rows(w, probs_a, labels, n_bins) - ece_rows(w, probs_b, labels, n_bins),
                            labels.size, n_boot, level, seed)


def paired_bootstrap_values(values_a, values_b, n_boot: int = 2000, level: float = LEVEL, seed: int = 0) -> Interval:
    """mean(A) - mean(B) of per-sample scores (e.g. each test image's F-score), paired bootstrap over samples."""
    a, b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_bootstrap_values: expected two 1-D arrays of one length, got {a.shape}, {b.shape}")
    return _paired_interval(lambda w: w @ (a - b) / a.size, a.size, n_boot, level, seed)


# ----------------------------------------------------------------------------- words
def verdict(diff: Interval, higher: str = "higher", lower: str = "lower") -> str:
    """``higher`` / ``lower`` when the interval of A - B excludes zero, else "no difference detectable at this
    budget". The only place the book's verdict words come from."""
    if not diff.excludes_zero:
        return NOT_DETECTABLE
    return higher if diff.estimate > 0 else lower


def units(diff: Interval) -> str:
    if diff.method.startswith("paired bootstrap"):
        return f"{diff.n} test samples"
    return f"{diff.n} seed{'s' if diff.n != 1 else ''}"


def fmt_interval(diff: Interval, digits: int = 3) -> str:
    """``+0.073 (95% CI +0.041 to +0.105, 3 seeds)``; a single run has no interval and says so."""
    if diff.method == "exact count":
        return f"{diff.estimate:+,.0f} (an exact count: no sampling)"
    if not math.isfinite(diff.low):
        return f"{diff.estimate:+.{digits}f} (one run: no interval)"
    return (f"{diff.estimate:+.{digits}f} ({diff.level:.0%} CI {diff.low:+.{digits}f} to {diff.high:+.{digits}f}, "
            f"{units(diff)})")


def describe(diff: Interval, higher: str = "higher", lower: str = "lower", digits: int = 3) -> str:
    """The verdict with its evidence, e.g. ``higher: +0.073 (95% CI +0.041 to +0.105, 3 seeds)`` or ``no difference
    detectable at this budget: +0.012 (95% CI -0.020 to +0.044, 3 seeds)``."""
    return f"{verdict(diff, higher, lower)}: {fmt_interval(diff, digits)}"


def fmt_mean_ci(ci: Interval, digits: int = 3) -> str:
    """``0.481 ± 0.032 (n = 5)``: the mean and the half-width of its interval."""
    if ci.n == 1:
        return f"{ci.estimate:.{digits}f} (n = 1)"
    return f"{ci.estimate:.{digits}f} ± {ci.half_width:.{digits}f} (n = {ci.n})"
