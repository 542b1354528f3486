"""The statistics helper (fer_lib.metrics.stats) against scipy.stats and scikit-learn, and its verdict words."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import accuracy_score, f1_score

from fer_lib.metrics.selection import SelectionError, best_on_validation
from fer_lib.metrics.stats import (NOT_DETECTABLE, Interval, describe, mean_ci, paired_bootstrap,
                                   paired_bootstrap_values, paired_seeds, verdict, weighted_accuracy,
                                   weighted_macro_f1)


def test_mean_ci_is_scipys_t_interval():
    x = np.array([0.481, 0.512, 0.455, 0.498, 0.470])
    ci = mean_ci(x)
    low, high = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert ci.estimate == pytest.approx(x.mean())
    assert (ci.low, ci.high) == pytest.approx((low, high), abs=1e-12)
    assert ci.n == 5
    assert mean_ci([0.4]).n == 1 and math.isinf(mean_ci([0.4]).high)


def test_paired_seeds_is_scipys_paired_t_interval_on_matched_seeds():
    a = {0: 0.44, 1: 0.47, 2: 0.45, 3: 0.50}
    b = {0: 0.40, 1: 0.41, 2: 0.43, 7: 0.99}  # seed 3 / 7 unmatched: left out
    d = paired_seeds(a, b)
    ref = sps.ttest_rel([0.44, 0.47, 0.45], [0.40, 0.41, 0.43]).confidence_interval(0.95)
    assert (d.low, d.high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert d.n == 3 and d.estimate == pytest.approx(0.04)
    with pytest.raises(ValueError, match="share no seed"):
        paired_seeds({0: 1.0}, {1: 1.0})


def test_weighted_metrics_equal_sklearn_on_the_resampled_rows():
    rng = np.random.default_rng(0)
    labels, pred = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    pred[:120] = labels[:120]
    idx = rng.integers(0, 300, size=(6, 300))
    weights = np.stack([np.bincount(i, minlength=300) for i in idx]).astype(float)
    f1 = weighted_macro_f1(weights, labels, pred, 5)
    acc = weighted_accuracy(weights, labels, pred, 5)
    for row, i in enumerate(idx):
        present = np.union1d(labels[i], pred[i])
        assert f1[row] == pytest.approx(f1_score(labels[i], pred[i], average="macro", labels=present))
        assert acc[row] == pytest.approx(accuracy_score(labels[i], pred[i]))


def test_paired_bootstrap_agrees_with_scipys_paired_percentile_bootstrap():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 400)
    pred_a = np.where(rng.random(400) < 0.6, labels, rng.integers(0, 4, 400))
    pred_b = np.where(rng.random(400) < 0.5, labels, rng.integers(0, 4, 400))
    ours = paired_bootstrap(labels, pred_a, pred_b, "accuracy", 4, n_boot=4000)
    ref = sps.bootstrap((labels, pred_a, pred_b), lambda y, a, b: (a == y).mean() - (b == y).mean(), paired=True,
                        vectorized=False, n_resamples=4000, method="percentile", random_state=0).confidence_interval
    assert ours.estimate == pytest.approx((pred_a == labels).mean() - (pred_b == labels).mean())
    assert (ours.low, ours.high) == pytest.approx((ref.low, ref.high), abs=0.01)  # two random streams
    assert verdict(ours) == "higher"
    f1 = paired_bootstrap(labels, pred_a, pred_b, "macro_f1", 4, n_boot=500)
    assert f1.estimate == pytest.approx(f1_score(labels, pred_a, average="macro") - f1_score(labels, pred_b,
                                                                                            average="macro"))


def test_paired_bootstrap_values_matches_scipy_on_per_sample_scores():
    rng = np.random.default_rng(2)
    a, b = rng.random(150), rng.random(150)
    ours = paired_bootstrap_values(a, b, n_boot=4000)
    ref = sps.bootstrap((a, b), lambda x, y: (x - y).mean(), paired=True, vectorized=False, n_resamples=4000,
                        method="percentile", random_state=0).confidence_interval
    assert (ours.low, ours.high) == pytest.approx((ref.low, ref.high), abs=0.01)


def test_verdict_words_follow_the_interval_only():
    assert verdict(Interval(0.02, 0.001, 0.04, 3, "paired t over seeds")) == "higher"
    assert verdict(Interval(-0.02, -0.04, -0.001, 3, "paired t over seeds")) == "lower"
    assert verdict(Interval(0.09, -0.01, 0.19, 3, "paired t over seeds")) == NOT_DETECTABLE  # large, but noisy
    assert verdict(mean_ci([0.1])) == NOT_DETECTABLE  # one run: no interval, no finding
    text = describe(Interval(0.073, 0.041, 0.105, 3, "paired t over seeds"), "a gain", "a loss")
    assert text == "a gain: +0.073 (95% CI +0.041 to +0.105, 3 seeds)"


def test_best_on_validation_refuses_test_scores_and_ignores_nan():
    import pandas as pd

    assert best_on_validation({"a": 0.4, "b": float("nan"), "c": 0.5}) == "c"
    assert best_on_validation({"t1": 0.3, "t2": 0.2}, lower_is_better=True) == "t2"
    with pytest.raises(SelectionError, match="validation scores only"):
        best_on_validation(pd.Series({"a": 0.4}, name="test_f1"))


def test_resampled_ece_equals_ece_on_the_resampled_rows():
    from fer_lib.metrics import ece, softmax
    from fer_lib.metrics.calibration_boot import ece_rows
    from fer_lib.metrics.stats import paired_bootstrap_ece

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, 500)
    probs = softmax(rng.normal(size=(500, 7)) * 2)
    idx = rng.integers(0, 500, size=(5, 500))
    weights = np.stack([np.bincount(i, minlength=500) for i in idx]).astype(float)
    ours = ece_rows(weights, probs, labels)
    for row, i in enumerate(idx):
        assert ours[row] == pytest.approx(ece(probs[i], labels[i]))
    other = softmax(rng.normal(size=(500, 7)))
    d = paired_bootstrap_ece(labels, probs, other, n_boot=200)
    assert d.estimate == pytest.approx(ece(probs, labels) - ece(other, labels))
