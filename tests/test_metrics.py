"""Metrics in ``fer_lib.metrics`` checked against independent references.

Every metric is compared with scikit-learn, torchmetrics, scipy or a hand-worked case
(arithmetic in the comments), never with itself.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from scipy.special import log_softmax as sp_log_softmax
from scipy.special import softmax as sp_softmax
from sklearn import metrics as skm
from torchmetrics.functional.classification import multiclass_calibration_error

from fer_lib.metrics import (MINORITY, SEED_GRID, adaptive_ece, apply_vector_scaling, bootstrap_ci, brier,
                             calibration_metrics, classification_metrics, classwise_ece, confusion_matrix, ece,
                             fit_temperature, fit_vector_scaling, mce, nll, per_class_f1, reliability_bins,
                             select_temperature, softmax, temperature_sweep)

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")  # FER2013 order
C = len(CLASSES)


# ----------------------------------------------------------------------------- helpers
def _labels_and_preds(seed: int, n: int = 600, drop: int | None = None):
    """Random labels/predictions over 7 classes; ``drop`` is a class absent from both."""
    rng = np.random.default_rng(seed)
    allowed = [k for k in range(C) if k != drop]
    y_true = rng.choice(allowed, size=n)
    # predictions correct ~55% of the time, otherwise a random allowed class
    y_pred = np.where(rng.random(n) < 0.55, y_true, rng.choice(allowed, size=n))
    return y_true, y_pred


def _random_probs(seed: int, n: int = 3000, c: int = C, scale: float = 2.5, avoid_edges: int | None = 15):
    """Softmax probabilities and labels drawn from a slightly mis-calibrated model.

    Rows whose top-label confidence lies within 1e-6 of a bin edge (of ``avoid_edges`` bins)
    are dropped so float32 (torchmetrics) and float64 binning cannot disagree.
    """
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * scale
    true_p = sp_softmax(logits / 1.6, axis=1)  # the model is overconfident w.r.t. the truth
    labels = np.array([rng.choice(c, p=p) for p in true_p])
    probs = sp_softmax(logits, axis=1)
    if avoid_edges:
        x = probs.max(1) * avoid_edges
        keep = np.abs(x - np.round(x)) > 1e-6
        # also avoid argmax ties (never happens with continuous logits, but be explicit)
        top2 = np.sort(probs, 1)[:, -2:]
        keep &= (top2[:, 1] - top2[:, 0]) > 1e-9
        probs, labels, logits = probs[keep], labels[keep], logits[keep]
    return probs, labels, logits


def _nll_from_logits(logits, labels, t):
    return float(-sp_log_softmax(logits / t, axis=1)[np.arange(len(labels)), labels].mean())


# ----------------------------------------------------------------------------- classification
@pytest.mark.parametrize("seed,drop", [(0, None), (1, None), (2, 1), (3, 4)])
def test_confusion_matrix_matches_sklearn(seed, drop):
    y_true, y_pred = _labels_and_preds(seed, drop=drop)
    ours = confusion_matrix(y_true, y_pred, C)
    ref = skm.confusion_matrix(y_true, y_pred, labels=list(range(C)))
    assert ours.shape == (C, C)
    np.testing.assert_array_equal(ours, ref)
    if drop is not None:  # the absent class has an empty row and column
        assert ours[drop].sum() == 0 and ours[:, drop].sum() == 0


@pytest.mark.parametrize("seed,drop", [(0, None), (5, None), (2, 1), (3, 4), (7, 6)])
def test_per_class_f1_matches_sklearn(seed, drop):
    y_true, y_pred = _labels_and_preds(seed, drop=drop)
    ours = per_class_f1(confusion_matrix(y_true, y_pred, C))
    ref = skm.f1_score(y_true, y_pred, average=None, labels=list(range(C)), zero_division=0)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    if drop is not None:
        assert ours[drop] == 0.0


@pytest.mark.parametrize("seed,drop", [(0, None), (11, None), (2, 1), (3, 4), (9, 3)])
def test_classification_metrics_match_sklearn(seed, drop):
    y_true, y_pred = _labels_and_preds(seed, drop=drop)
    out = classification_metrics(y_true, y_pred, CLASSES)
    labels = list(range(C))
    f1 = skm.f1_score(y_true, y_pred, average=None, labels=labels, zero_division=0)
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    assert out["macro_f1"] == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0), abs=1e-12)
    minority_idx = [CLASSES.index(c) for c in ("disgust", "fear", "sad")]
    assert out["minority_f1"] == pytest.approx(float(np.mean(f1[minority_idx])), abs=1e-12)
    for k, c in enumerate(CLASSES):
        assert out[f"f1_{c}"] == pytest.approx(f1[k], abs=1e-12)
    assert set(out) == {"accuracy", "macro_f1", "minority_f1", *(f"f1_{c}" for c in CLASSES)}
    if drop is not None:
        assert out[f"f1_{CLASSES[drop]}"] == 0.0


def test_minority_f1_uses_class_names_not_positions():
    # Same data, classes listed in another order: the minority classes move, so the
    # minority-F1 must follow the names (disgust/fear/sad), not fixed indices 1, 2, 5.
    assert MINORITY == ("disgust", "fear", "sad")
    y_true, y_pred = _labels_and_preds(4)
    order = ("sad", "happy", "angry", "surprise", "fear", "neutral", "disgust")
    out = classification_metrics(y_true, y_pred, order)
    f1 = skm.f1_score(y_true, y_pred, average=None, labels=list(range(C)), zero_division=0)
    expected = np.mean([f1[order.index("disgust")], f1[order.index("fear")], f1[order.index("sad")]])
    assert out["minority_f1"] == pytest.approx(expected, abs=1e-12)


def test_classification_metrics_perfect_and_all_wrong():
    y = np.arange(C).repeat(3)
    perfect = classification_metrics(y, y, CLASSES)
    assert perfect["accuracy"] == 1.0 and perfect["macro_f1"] == 1.0 and perfect["minority_f1"] == 1.0
    wrong = classification_metrics(y, (y + 1) % C, CLASSES)
    assert wrong["accuracy"] == 0.0 and wrong["macro_f1"] == 0.0


# ----------------------------------------------------------------------------- ECE / MCE vs torchmetrics
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_matches_torchmetrics(seed):
    probs, labels, _ = _random_probs(seed)
    ref = multiclass_calibration_error(torch.as_tensor(probs), torch.as_tensor(labels), num_classes=C, n_bins=15,
                                       norm="l1").item()
    ours = ece(probs, labels, 15)
    assert ours > 0.01  # the data are mis-calibrated, so a trivial 0 would not pass
    assert ours == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mce_matches_torchmetrics(seed):
    probs, labels, _ = _random_probs(seed)
    ref = multiclass_calibration_error(torch.as_tensor(probs), torch.as_tensor(labels), num_classes=C, n_bins=15,
                                       norm="max").item()
    ours = mce(probs, labels, 15)
    assert ours >= ece(probs, labels, 15)
    assert ours == pytest.approx(ref, abs=1e-6)


def test_ece_mce_match_torchmetrics_other_bin_count():
    probs, labels, _ = _random_probs(3, n=1500, avoid_edges=10)
    p, y = torch.as_tensor(probs), torch.as_tensor(labels)
    assert ece(probs, labels, 10) == pytest.approx(
        multiclass_calibration_error(p, y, num_classes=C, n_bins=10, norm="l1").item(), abs=1e-6)
    assert mce(probs, labels, 10) == pytest.approx(
        multiclass_calibration_error(p, y, num_classes=C, n_bins=10, norm="max").item(), abs=1e-6)


def test_ece_hand_worked_and_last_bin_includes_one():
    # 3 bins of width 1/3. Binary rows [conf, 1 - conf]; label 0 = correct, 1 = wrong.
    #   conf 1.00 correct  -> last bin (1.0 belongs to the last bin)
    #   conf 0.90 wrong    -> last bin
    #   conf 0.50 correct  -> middle bin [1/3, 2/3)
    # last bin:   acc 1/2, conf 0.95 -> gap 0.45, weight 2/3
    # middle bin: acc 1,   conf 0.50 -> gap 0.50, weight 1/3
    # ECE = 2/3 * 0.45 + 1/3 * 0.5 = 0.3 + 0.16667 = 0.46667 ; MCE = 0.5
    conf = np.array([1.0, 0.9, 0.5])
    probs = np.stack([conf, 1 - conf], 1)
    probs[2] = [0.5 + 1e-9, 0.5 - 1e-9]  # make argmax unambiguous
    labels = np.array([0, 1, 0])
    assert ece(probs, labels, 3) == pytest.approx(0.3 + 0.5 / 3, abs=1e-8)
    assert mce(probs, labels, 3) == pytest.approx(0.5, abs=1e-8)


def test_confidence_one_shares_the_last_bin_here_but_has_its_own_bin_in_torchmetrics():
    # 15 bins; conf 1.00 wrong and conf 0.95 correct. Here both are in the last bin [14/15, 1]: acc 1/2, conf 0.975,
    # ECE = 0.475. torchmetrics 1.9 (bucketize right=True over 16 edges) gives 1.0 a bin of its own:
    # 1/2 * |1 - 0.95| + 1/2 * |0 - 1| = 0.525.
    probs, labels = np.array([[1.0, 0.0], [0.95, 0.05]]), np.array([1, 0])
    ref = multiclass_calibration_error(torch.as_tensor(probs), torch.as_tensor(labels), num_classes=2, n_bins=15,
                                       norm="l1").item()
    assert ece(probs, labels) == pytest.approx(0.475, abs=1e-12) and ref == pytest.approx(0.525, abs=1e-6)


def test_ece_bins_are_left_closed_at_exact_edges():
    # 4 bins: [0, .25), [.25, .5), [.5, .75), [.75, 1]. Confidences exactly on edges (exact in binary
    # floating point) belong to the bin on their right, as torchmetrics (bucketize right=True).
    #   conf 0.50 correct -> bin [.5, .75)   conf 0.75 wrong -> bin [.75, 1]   conf 0.90 correct -> [.75, 1]
    # bin [.5, .75): acc 1, conf 0.5 -> gap 0.5, weight 1/3
    # bin [.75, 1]:  acc 1/2, conf 0.825 -> gap 0.325, weight 2/3
    # ECE = 0.5/3 + 2 * 0.325/3 = (0.5 + 0.65) / 3 = 0.383333 ; MCE = 0.5
    # (right-closed bins would put 0.5 with nothing and 0.75 with 0.5: a different value)
    probs = np.array([[0.50, 0.30, 0.20], [0.75, 0.25, 0.0], [0.90, 0.05, 0.05]])
    labels = np.array([0, 1, 0])
    assert ece(probs, labels, 4) == pytest.approx(1.15 / 3, abs=1e-12)
    assert mce(probs, labels, 4) == pytest.approx(0.5, abs=1e-12)
    rb = reliability_bins(probs, labels, 4)
    assert rb["count"].tolist() == [0, 0, 1, 2]
    ref = multiclass_calibration_error(torch.as_tensor(probs), torch.as_tensor(labels), num_classes=3, n_bins=4,
                                       norm="l1").item()
    assert ece(probs, labels, 4) == pytest.approx(ref, abs=1e-6)


# ----------------------------------------------------------------------------- NLL / Brier
@pytest.mark.parametrize("seed", [0, 1])
def test_nll_matches_sklearn_log_loss(seed):
    probs, labels, _ = _random_probs(seed, n=800, avoid_edges=None)
    ref = skm.log_loss(labels, probs, labels=list(range(C)))
    assert nll(probs, labels) == pytest.approx(ref, rel=1e-10)


def test_nll_hand_worked_and_clipping():
    # -mean(log 0.5, log 0.25) = (0.693147 + 1.386294) / 2 = 1.039721
    probs = np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25]])
    assert nll(probs, [0, 2]) == pytest.approx((np.log(2) + np.log(4)) / 2, rel=1e-12)
    # a zero probability on the true class is clipped at eps, not inf
    assert nll(probs, [2, 2], eps=1e-12) == pytest.approx((-np.log(1e-12) + np.log(4)) / 2, rel=1e-12)


def test_brier_hand_worked():
    # sample 0: p=(0.7, 0.2, 0.1), y=0 -> 0.3^2 + 0.2^2 + 0.1^2 = 0.09 + 0.04 + 0.01 = 0.14
    # sample 1: p=(0.1, 0.5, 0.4), y=2 -> 0.1^2 + 0.5^2 + 0.6^2 = 0.01 + 0.25 + 0.36 = 0.62
    # two samples: (0.14 + 0.62) / 2 = 0.38
    p2 = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4]])
    assert brier(p2, [0, 2]) == pytest.approx(0.38, abs=1e-12)
    # sample 2: p=(1/3, 1/3, 1/3), y=1 -> 1/9 + 4/9 + 1/9 = 2/3
    # three samples: (0.14 + 0.62 + 2/3) / 3 = 0.475556
    p3 = np.vstack([p2, np.full(3, 1 / 3)])
    assert brier(p3, [0, 2, 1]) == pytest.approx((0.14 + 0.62 + 2 / 3) / 3, abs=1e-12)
    # range [0, 2]: perfect -> 0, confidently wrong -> 2
    assert brier(np.eye(3), [0, 1, 2]) == 0.0
    assert brier(np.eye(3), [1, 2, 0]) == pytest.approx(2.0)


def test_brier_matches_sklearn_multiclass():
    # scikit-learn >= 1.7 supports multiclass brier_score_loss; its scale_by_half="auto"
    # keeps the [0, 2] range (no 1/2) for more than 2 classes, which is our definition.
    # For 2 classes "auto" halves the score, so our value is twice sklearn's there.
    import inspect
    if "scale_by_half" not in inspect.signature(skm.brier_score_loss).parameters:
        pytest.skip("installed scikit-learn has no multiclass brier_score_loss (needs >= 1.7)")
    probs, labels, _ = _random_probs(4, n=500, avoid_edges=None)
    ours = brier(probs, labels)
    assert ours == pytest.approx(skm.brier_score_loss(labels, probs, labels=list(range(C)), scale_by_half=False),
                                 rel=1e-10)
    assert ours == pytest.approx(skm.brier_score_loss(labels, probs, labels=list(range(C))), rel=1e-10)
    # binary: sklearn's default halves the score
    p1 = np.random.default_rng(5).uniform(0.01, 0.99, 50)
    y = (np.random.default_rng(6).random(50) < p1).astype(int)
    probs2 = np.stack([1 - p1, p1], 1)
    assert brier(probs2, y) == pytest.approx(2 * skm.brier_score_loss(y, p1), rel=1e-10)
    assert brier(probs2, y) == pytest.approx(skm.brier_score_loss(y, probs2, labels=[0, 1], scale_by_half=False),
                                             rel=1e-10)


# ----------------------------------------------------------------------------- classwise / adaptive ECE
def _classwise_case():
    probs = np.array([[0.7, 0.2, 0.1],
                      [0.4, 0.4, 0.2],
                      [0.1, 0.3, 0.6],
                      [0.2, 0.7, 0.1]])
    labels = np.array([0, 1, 2, 2])
    return probs, labels


def test_classwise_ece_hand_worked():
    # 2 bins: [0, 0.5) and [0.5, 1].
    # class 0: p=(0.7, 0.4, 0.1, 0.2), y=(1, 0, 0, 0)
    #   bin0 {0.4, 0.1, 0.2}: mean y 0, mean p 0.7/3 -> 3 * 0.23333 = 0.7
    #   bin1 {0.7}:           y 1, p 0.7           -> 1 * 0.3     = 0.3   => (0.7 + 0.3) / 4 = 0.25
    # class 1: p=(0.2, 0.4, 0.3, 0.7), y=(0, 1, 0, 0)
    #   bin0 {0.2, 0.4, 0.3}: mean y 1/3, mean p 0.3 -> 3 * 0.03333 = 0.1
    #   bin1 {0.7}:           y 0, p 0.7             -> 1 * 0.7     = 0.7 => (0.1 + 0.7) / 4 = 0.2
    # class 2: p=(0.1, 0.2, 0.6, 0.1), y=(0, 0, 1, 1)
    #   bin0 {0.1, 0.2, 0.1}: mean y 1/3, mean p 0.4/3 -> 3 * 0.2 = 0.6
    #   bin1 {0.6}:           y 1, p 0.6               -> 1 * 0.4 = 0.4   => (0.6 + 0.4) / 4 = 0.25
    # classwise ECE = (0.25 + 0.2 + 0.25) / 3 = 0.233333
    probs, labels = _classwise_case()
    assert classwise_ece(probs, labels, 2) == pytest.approx(0.7 / 3, abs=1e-12)


def test_classwise_ece_hand_worked_three_bins():
    # 3 bins: [0, 1/3), [1/3, 2/3), [2/3, 1].
    # class 0: p=(0.7, 0.4, 0.1, 0.2), y=(1, 0, 0, 0)
    #   {0.1, 0.2}: y 0, p 0.15 -> 2 * 0.15 = 0.3 ; {0.4}: y 0 -> 0.4 ; {0.7}: y 1 -> 0.3   => 1.0 / 4 = 0.25
    # class 1: p=(0.2, 0.4, 0.3, 0.7), y=(0, 1, 0, 0)
    #   {0.2, 0.3}: y 0, p 0.25 -> 0.5 ; {0.4}: y 1 -> 0.6 ; {0.7}: y 0 -> 0.7             => 1.8 / 4 = 0.45
    # class 2: p=(0.1, 0.2, 0.6, 0.1), y=(0, 0, 1, 1)
    #   {0.1, 0.2, 0.1}: y 1/3, p 0.4/3 -> 0.6 ; {0.6}: y 1 -> 0.4                         => 1.0 / 4 = 0.25
    # classwise ECE = (0.25 + 0.45 + 0.25) / 3 = 0.316667
    probs, labels = _classwise_case()
    assert classwise_ece(probs, labels, 3) == pytest.approx(0.95 / 3, abs=1e-12)


def _adaptive_case():
    # (top-label confidence, correct?) for 6 samples, as binary rows [conf, 1 - conf]
    conf = np.array([0.95, 0.55, 0.80, 0.60, 0.90, 0.70])
    correct = np.array([1, 0, 1, 1, 0, 1])
    probs = np.stack([conf, 1 - conf], 1)
    labels = np.where(correct == 1, 0, 1)
    return probs, labels


def test_adaptive_ece_hand_worked():
    # 3 equal-mass bins of 2 samples after sorting by confidence:
    #   {0.55 wrong, 0.60 right}: acc 0.5, conf 0.575 -> gap 0.075 * 2 = 0.15
    #   {0.70 right, 0.80 right}: acc 1.0, conf 0.750 -> gap 0.250 * 2 = 0.50
    #   {0.90 wrong, 0.95 right}: acc 0.5, conf 0.925 -> gap 0.425 * 2 = 0.85
    # adaptive ECE = (0.15 + 0.5 + 0.85) / 6 = 0.25
    probs, labels = _adaptive_case()
    assert adaptive_ece(probs, labels, 3) == pytest.approx(0.25, abs=1e-12)
    # Equal-width bins on the same data differ (sanity: the two are not the same metric):
    #   [1/3, 2/3) {0.55 w, 0.60 r}: 0.15 ; [2/3, 1] {0.70 r, 0.80 r, 0.90 w, 0.95 r}: acc 0.75,
    #   conf 3.35/4 = 0.8375 -> 0.0875 * 4 = 0.35 ; ECE = 0.5 / 6 = 0.083333
    assert ece(probs, labels, 3) == pytest.approx(0.5 / 6, abs=1e-12)


def test_adaptive_ece_uneven_split():
    # 5 samples, 2 bins: np.array_split gives the 3 least confident, then the 2 most confident.
    # conf sorted: 0.55 w, 0.60 r, 0.70 r | 0.80 r, 0.95 r
    #   bin0: acc 2/3, conf 1.85/3 = 0.616667 -> |0.666667 - 0.616667| * 3 = 0.15
    #   bin1: acc 1,   conf 0.875             -> 0.125 * 2 = 0.25
    # adaptive ECE = 0.4 / 5 = 0.08
    conf = np.array([0.95, 0.55, 0.80, 0.60, 0.70])
    labels = np.array([0, 1, 0, 0, 0])
    probs = np.stack([conf, 1 - conf], 1)
    assert adaptive_ece(probs, labels, 2) == pytest.approx(0.08, abs=1e-12)


# ----------------------------------------------------------------------------- reliability bins
@pytest.mark.parametrize("seed", [0, 7])
def test_reliability_bins_manual(seed):
    probs, labels, _ = _random_probs(seed, n=1000)
    n_bins = 15
    rb = reliability_bins(probs, labels, n_bins)
    assert list(rb.columns) == ["lower", "upper", "count", "confidence", "accuracy"]
    assert len(rb) == n_bins
    assert rb["count"].sum() == len(labels)
    np.testing.assert_allclose(rb["lower"], np.arange(n_bins) / n_bins)
    np.testing.assert_allclose(rb["upper"], np.arange(1, n_bins + 1) / n_bins)
    conf, pred = probs.max(1), probs.argmax(1)
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        m = (conf >= lo) & ((conf < hi) if b < n_bins - 1 else (conf <= 1.0))
        row = rb.iloc[b]
        assert row["count"] == m.sum()
        if m.any():
            assert row["confidence"] == pytest.approx(conf[m].mean(), abs=1e-12)
            assert row["accuracy"] == pytest.approx((pred[m] == labels[m]).mean(), abs=1e-12)
        else:
            assert np.isnan(row["confidence"]) and np.isnan(row["accuracy"])
    ne = rb[rb["count"] > 0]
    gap = (ne["count"] * (ne["accuracy"] - ne["confidence"]).abs()).sum() / len(labels)
    assert gap == pytest.approx(ece(probs, labels, n_bins), abs=1e-12)
    assert (ne["accuracy"] - ne["confidence"]).abs().max() == pytest.approx(mce(probs, labels, n_bins), abs=1e-12)


def test_calibration_metrics_dict_consistent():
    probs, labels, _ = _random_probs(8, n=400)
    out = calibration_metrics(probs, labels, 15)
    assert set(out) == {"ece", "classwise_ece", "adaptive_ece", "mce", "brier", "nll"}
    assert out["ece"] == pytest.approx(multiclass_calibration_error(
        torch.as_tensor(probs), torch.as_tensor(labels), num_classes=C, n_bins=15, norm="l1").item(), abs=1e-6)
    assert out["nll"] == pytest.approx(skm.log_loss(labels, probs, labels=list(range(C))), rel=1e-10)
    assert out["brier"] == pytest.approx(
        skm.brier_score_loss(labels, probs, labels=list(range(C)), scale_by_half=False), rel=1e-10)


def test_softmax_matches_scipy():
    logits = np.random.default_rng(0).normal(size=(20, C)) * 10
    for t in (0.5, 1.0, 2.0):
        np.testing.assert_allclose(softmax(logits, t), sp_softmax(logits / t, axis=1), rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- temperature
def test_seed_grid():
    assert len(SEED_GRID) == 21
    assert SEED_GRID[0] == 0.80 and SEED_GRID[-1] == 1.20
    np.testing.assert_allclose(SEED_GRID, np.linspace(0.80, 1.20, 21), atol=1e-12)
    np.testing.assert_allclose(np.diff(SEED_GRID), 0.02, atol=1e-12)
    # rounded to 2 decimals, so the values print and compare as the seed writes them
    assert all(t == round(t, 2) for t in SEED_GRID)


def test_temperature_sweep_values():
    probs, labels, logits = _random_probs(1, n=500, avoid_edges=None)
    sweep = temperature_sweep(logits, labels)
    assert list(sweep.columns) == ["T", "nll", "ece", "brier"]
    np.testing.assert_allclose(sweep["T"], SEED_GRID)
    for _, row in sweep.iloc[[0, 10, 20]].iterrows():
        p = sp_softmax(logits / row["T"], axis=1)
        assert row["nll"] == pytest.approx(skm.log_loss(labels, p, labels=list(range(C))), rel=1e-10)
        assert row["brier"] == pytest.approx(
            skm.brier_score_loss(labels, p, labels=list(range(C)), scale_by_half=False), rel=1e-10)
        assert row["ece"] == pytest.approx(multiclass_calibration_error(
            torch.as_tensor(p), torch.as_tensor(labels), num_classes=C, n_bins=15, norm="l1").item(), abs=1e-5)


def test_select_temperature_tie_broken_by_lower_ece():
    sweep = pd.DataFrame({"T": [0.90, 1.00, 1.10, 1.20],
                          "nll": [0.50, 0.40, 0.40, 0.45],
                          "ece": [0.01, 0.05, 0.03, 0.001]})
    # 1.00 and 1.10 tie on NLL; 1.10 has the lower ECE. 1.20 has the lowest ECE but worse NLL.
    assert select_temperature(sweep) == 1.10
    # order of rows must not matter
    assert select_temperature(sweep.iloc[::-1].reset_index(drop=True)) == 1.10


def test_select_temperature_nll_dominates_and_tie_tol():
    sweep = pd.DataFrame({"T": [0.9, 1.0, 1.1], "nll": [0.41, 0.40, 0.40 + 1e-6], "ece": [0.0, 0.09, 0.02]})
    # with the default tolerance (1e-9) 1.1 is NOT a tie: the unique NLL minimum wins despite ECE
    assert select_temperature(sweep) == 1.0
    # a wider tolerance makes 1.0 and 1.1 tie, and 1.1 wins on ECE (0.9 stays outside it)
    assert select_temperature(sweep, tie_tol=1e-5) == 1.1
    # full tie on NLL and ECE: the lower T
    tie = pd.DataFrame({"T": [1.1, 0.9, 1.0], "nll": [0.4, 0.4, 0.5], "ece": [0.03, 0.03, 0.0]})
    assert select_temperature(tie) == 0.9


def test_select_temperature_on_real_sweep_is_grid_argmin():
    probs, labels, logits = _random_probs(2, n=800, avoid_edges=None)
    sweep = temperature_sweep(logits * 1.1, labels)
    nlls = [_nll_from_logits(logits * 1.1, labels, t) for t in SEED_GRID]
    assert select_temperature(sweep) == pytest.approx(SEED_GRID[int(np.argmin(nlls))])


def _overconfident(seed: int, n: int, c: int = C, factor: float = 3.0):
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(size=(n, c)) * 1.5
    p = sp_softmax(true_logits, axis=1)
    u = rng.random(n)[:, None]
    labels = (p.cumsum(1) < u).sum(1).clip(0, c - 1)  # one categorical draw per row
    return true_logits * factor, labels


def test_fit_temperature_matches_brute_force_grid():
    logits, labels = _overconfident(0, 1500)
    grid = np.linspace(0.2, 5.0, 4801)  # step 0.001
    nlls = np.array([_nll_from_logits(logits, labels, t) for t in grid])
    t_grid = grid[np.argmin(nlls)]
    t_fit = fit_temperature(logits, labels)
    assert 0.2 < t_grid < 5.0  # the minimum is interior, not on the grid's edge
    assert t_fit > 1.5  # overconfident logits need T* > 1 (truth is ~3)
    assert t_fit == pytest.approx(t_grid, abs=2e-3)
    assert _nll_from_logits(logits, labels, t_fit) <= nlls.min() + 1e-9


def test_fit_temperature_underconfident():
    logits, labels = _overconfident(1, 1500, factor=0.5)
    grid = np.linspace(0.2, 5.0, 4801)
    t_grid = grid[np.argmin([_nll_from_logits(logits, labels, t) for t in grid])]
    t_fit = fit_temperature(logits, labels)
    assert t_fit < 1.0
    assert t_fit == pytest.approx(t_grid, abs=2e-3)


def test_vector_scaling_improves_on_identity_and_temperature():
    logits, labels = _overconfident(2, 3000)
    w, b = fit_vector_scaling(logits, labels)
    assert w.shape == (C,) and b.shape == (C,)
    nll_vs = _nll_from_logits(apply_vector_scaling(logits, w, b), labels, 1.0)
    nll_id = _nll_from_logits(apply_vector_scaling(logits, np.ones(C), np.zeros(C)), labels, 1.0)
    nll_t = _nll_from_logits(logits, labels, fit_temperature(logits, labels))
    assert nll_vs <= nll_id
    assert nll_vs <= nll_t + 1e-9
    assert nll_id - nll_vs > 0.1  # a real improvement on strongly overconfident logits


def test_apply_vector_scaling_formula():
    z = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 0.5]])
    w, b = np.array([2.0, 0.5, 1.0]), np.array([0.1, 0.0, -1.0])
    expected = np.array([[2.1, 1.0, 2.0], [-1.9, 0.0, -0.5]])  # z_ij * w_j + b_j
    np.testing.assert_allclose(apply_vector_scaling(z, w, b), expected, atol=1e-12)


def test_vector_scaling_recovers_per_class_scale():
    rng = np.random.default_rng(3)
    n = 20000
    true_logits = rng.normal(size=(n, C)) * 1.5
    p = sp_softmax(true_logits, axis=1)
    labels = (p.cumsum(1) < rng.random(n)[:, None]).sum(1).clip(0, C - 1)
    w_true = np.array([0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 0.7])
    observed = true_logits / w_true  # the calibrated logits are observed * w_true
    w, b = fit_vector_scaling(observed, labels)
    np.testing.assert_allclose(w, w_true, rtol=0.1)
    # biases are identified up to a common shift; the true ones are all 0
    np.testing.assert_allclose(b - b.mean(), 0.0, atol=0.1)


# ----------------------------------------------------------------------------- bootstrap
def test_bootstrap_ci_matches_scipy_percentile():
    x = np.random.default_rng(0).exponential(size=300)
    value, lo, hi = bootstrap_ci(np.mean, x, n_boot=5000, seed=1)
    ref = scipy.stats.bootstrap((x,), np.mean, n_resamples=5000, method="percentile", confidence_level=0.95,
                                rng=np.random.default_rng(2))
    assert value == pytest.approx(x.mean(), rel=1e-12)
    assert lo < value < hi
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert lo == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)
    assert hi - lo == pytest.approx(width, rel=0.1)


def test_bootstrap_ci_other_level_matches_scipy():
    x = np.random.default_rng(4).normal(2.0, 1.0, size=200)
    _, lo, hi = bootstrap_ci(np.mean, x, n_boot=5000, ci=0.8, seed=3)
    ref = scipy.stats.bootstrap((x,), np.mean, n_resamples=5000, method="percentile", confidence_level=0.8,
                                rng=np.random.default_rng(5))
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert lo == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)


def test_bootstrap_ci_deterministic_and_paired():
    rng = np.random.default_rng(1)
    y = rng.integers(0, C, 200)
    pred = np.where(rng.random(200) < 0.6, y, rng.integers(0, C, 200))
    acc = lambda a, b: float(np.mean(a == b))  # noqa: E731
    r1 = bootstrap_ci(acc, y, pred, n_boot=300, seed=7)
    r2 = bootstrap_ci(acc, y, pred, n_boot=300, seed=7)
    r3 = bootstrap_ci(acc, y, pred, n_boot=300, seed=8)
    assert r1 == r2
    assert r1[1:] != r3[1:]
    assert r1[0] == pytest.approx(skm.accuracy_score(y, pred))
    # the same indices go to every array: the difference of an array with its copy is 0 in every resample
    v, lo, hi = bootstrap_ci(lambda a, b: float(np.mean(a - b)), y.astype(float), y.astype(float).copy(),
                             n_boot=200, seed=0)
    assert (v, lo, hi) == (0.0, 0.0, 0.0)
    # works with a (N, C) array and a metric of probabilities
    probs, labels, _ = _random_probs(0, n=300, avoid_edges=None)
    v, lo, hi = bootstrap_ci(lambda p, t: brier(p, t), probs, labels, n_boot=200, seed=0)
    assert v == pytest.approx(skm.brier_score_loss(labels, probs, labels=list(range(C)), scale_by_half=False))
    assert lo < v < hi


def test_bootstrap_resamples_have_size_n_with_replacement():
    x = np.arange(50, dtype=float)
    # every resample has N elements ...
    assert bootstrap_ci(len, x, n_boot=50, seed=0) == (50.0, 50.0, 50.0)
    # ... drawn with replacement: the number of distinct values is about N (1 - 1/e) ~ 31.6, never all 50
    v, lo, hi = bootstrap_ci(lambda a: float(len(np.unique(a))), x, n_boot=500, seed=0)
    assert v == 50.0 and 25 <= lo < hi <= 38


def test_confusion_matrix_rejects_out_of_range_classes():
    from fer_lib.metrics import confusion_matrix
    with pytest.raises(ValueError, match="y_pred: class indices must lie in 0..2"):
        confusion_matrix([0, 1], [1, 3], 3)
