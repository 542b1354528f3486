"""Face-parsing figures: a fixed 19-colour palette, image / ground truth / prediction grids."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

#: one fixed colour per CelebAMask-HQ class (index = label), the same in every figure
PALETTE = np.array([
    [0, 0, 0], [204, 153, 119], [255, 153, 51], [102, 51, 0], [0, 102, 255], [255, 51, 102], [0, 204, 204],
    [204, 0, 204], [102, 204, 0], [204, 204, 0], [255, 255, 255], [255, 0, 0], [153, 0, 51], [51, 51, 153],
    [0, 153, 76], [255, 204, 0], [153, 255, 255], [153, 102, 204], [128, 128, 128]], dtype=np.uint8)


def colorize(mask: np.ndarray) -> np.ndarray:
    """(H, W) labels -> (H, W, 3) uint8 colours of ``PALETTE``."""
    return PALETTE[np.asarray(mask, np.int64) % len(PALETTE)]


def prediction_grid(images: np.ndarray, truth: np.ndarray, pred: np.ndarray, classes, title: str | None = None):
    """Columns: image, ground truth, prediction (and where they disagree); one row per image; a class legend."""
    n = len(images)
    fig, axes = plt.subplots(n, 4, figsize=(8.4, 2.1 * n + 0.9), squeeze=False)
    for i in range(n):
        wrong = (truth[i] != pred[i])
        panels = (images[i], colorize(truth[i]), colorize(pred[i]), wrong)
        for j, (ax, im) in enumerate(zip(axes[i], panels)):
            ax.imshow(im, cmap="gray_r" if j == 3 else None, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(("image", "ground truth", "prediction", "disagreement")[j], fontsize=9)
        axes[i, 3].set_xlabel(f"{wrong.mean():.1%} of pixels", fontsize=8)
    handles = [Patch(color=PALETTE[k] / 255, label=c) for k, c in enumerate(classes)]
    fig.legend(handles=handles, loc="lower center", ncol=7, fontsize=7, frameon=False)
    fig.subplots_adjust(bottom=0.9 / (2.1 * n + 0.9) + 0.02)
    if title:
        fig.suptitle(title)
    return fig
