"""Classification metrics as pure numpy functions over labels and predictions.

Everything derives from one confusion matrix, so a bootstrap can afford thousands of
evaluations. Definitions match scikit-learn (``f1_score(average=None/'macro',
zero_division=0)``); tests check them against it. Minority-F1 is the mean F1 of disgust,
fear and sad (seed 000 §7, §9.1 footnote).
"""
from __future__ import annotations

import numpy as np

MINORITY = ("disgust", "fear", "sad")


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(C, C) counts, rows = true class, columns = predicted class."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name}: class indices must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """F1 = 2 TP / (2 TP + FP + FN) per class; 0 where a class is neither present nor predicted."""
    tp = np.diag(cm).astype(float)
    denom = cm.sum(0) + cm.sum(1)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def minority_f1(f1: np.ndarray, classes, minority=MINORITY) -> float:
    idx = [list(classes).index(c) for c in minority if c in classes]
    return float(np.mean(f1[idx])) if idx else float("nan")


def classification_metrics(y_true, y_pred, classes, minority=MINORITY) -> dict:
    """Accuracy, macro-F1, minority-F1 and per-class F1 (``f1_<class>``)."""
    cm = confusion_matrix(y_true, y_pred, len(classes))
    f1 = per_class_f1(cm)
    out = {
        "accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "macro_f1": float(f1.mean()),
        "minority_f1": minority_f1(f1, classes, minority),
    }
    out.update({f"f1_{c}": float(v) for c, v in zip(classes, f1)})
    return out
