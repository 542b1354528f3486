"""Face-parsing metrics as pure numpy functions over per-image confusion matrices (seed 001).

Everything derives from ``cm[i]``, image i's (C, C) confusion matrix at the masks' full resolution (rows = true
class, columns = predicted class), so the challenge score, its pooled variant, per-class F1 and IoU all come from
one pass over the predictions.

**Challenge F-score** (the CE7454 face-parsing challenge, ``../shared/data/faceparse/README.md``): for each image,
over the classes present in *that image's* ground truth, background included,

    P_c = TP / (TP + FP + 1e-7),  R_c = TP / (TP + FN + 1e-7),  F1_c = 2 P_c R_c / (P_c + R_c + 1e-7),

the image's score is the mean of its F1_c, and the dataset's score is the mean over images.

**Pooled F-score** (a pitfall of code of this kind): the same formula on confusion matrices summed over a batch,
averaged over batches. A class absent from most images but present in one counts for the whole batch, and large
images' pixels dominate, so it differs from the challenge's score.

**Per-class F1 and IoU** pool all pixels of the split: F1_c = 2TP / (2TP + FP + FN), IoU_c = TP / (TP + FP + FN)
(torchmetrics' ``MulticlassF1Score`` / ``MulticlassJaccardIndex`` with ``average=None``); mIoU averages IoU over
the classes that occur in the ground truth or the predictions of the split.
"""
from __future__ import annotations

import numpy as np

from .classification import per_class_f1

EPS = 1e-7


def confusion_per_image(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, C, C) confusion matrices of label maps ``pred`` and ``target`` (N, H, W)."""
    pred, target = np.asarray(pred, np.int64), np.asarray(target, np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    n = pred.shape[0]
    idx = (np.arange(n)[:, None] * num_classes * num_classes
           + (target.reshape(n, -1) * num_classes + pred.reshape(n, -1)))
    return np.bincount(idx.ravel(), minlength=n * num_classes**2).reshape(n, num_classes, num_classes)


def _fscore_of(cm: np.ndarray) -> float:
    """The challenge's formula on one (C, C) matrix: mean F1 over the classes present in its ground truth."""
    tp = np.diag(cm).astype(np.float64)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    present = cm.sum(1) > 0
    p, r = tp / (tp + fp + EPS), tp / (tp + fn + EPS)
    f1 = 2 * p * r / (p + r + EPS)
    return float(f1[present].mean()) if present.any() else float("nan")


def image_fscores(cms: np.ndarray) -> np.ndarray:
    """The challenge F-score of each image, (N,)."""
    return np.array([_fscore_of(cm) for cm in cms])


def challenge_fscore(cms: np.ndarray) -> float:
    """Mean over images of the per-image F-score: the challenge's metric."""
    return float(np.mean(image_fscores(cms)))


def pooled_fscore(cms: np.ndarray, batch_size: int) -> float:
    """The pitfall: the formula on confusion matrices summed over consecutive batches, averaged over batches."""
    return float(np.mean([_fscore_of(cms[i:i + batch_size].sum(0)) for i in range(0, len(cms), batch_size)]))


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    return np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)


def segmentation_metrics(cms: np.ndarray, classes) -> dict:
    """Challenge F-score, mIoU, pixel accuracy, and per-class F1 (``f1_<class>``) and IoU (``iou_<class>``)."""
    total = cms.sum(0)
    f1, iou = per_class_f1(total), per_class_iou(total)
    occurs = (total.sum(0) + total.sum(1)) > 0
    out = {"fscore": challenge_fscore(cms), "miou": float(iou[occurs].mean()),
           "pixel_accuracy": float(np.trace(total) / max(total.sum(), 1))}
    out.update({f"f1_{c}": float(v) for c, v in zip(classes, f1)})
    out.update({f"iou_{c}": float(v) for c, v in zip(classes, iou)})
    return out
