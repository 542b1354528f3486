"""Dataset figures: class distribution, image grids, mask overlays, an audio-visual clip."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def class_distribution_bars(counts: pd.DataFrame, title: str = "Class distribution"):
    """Grouped bars of images per class (rows of ``counts``) for each split (columns)."""
    long = counts.reset_index().melt(id_vars=counts.index.name or "index", var_name="split", value_name="images")
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    sns.barplot(data=long, x=counts.index.name or "index", y="images", hue="split", ax=ax)
    ax.set(xlabel="class", ylabel="images (count)", title=title)
    ax.legend(title="split")
    return fig


def image_grid(images: np.ndarray, titles: list[str] | None = None, ncols: int = 8, row_labels=None,
               title: str | None = None, size: float = 1.15):
    """Gray or RGB uint8 images in a grid; optional per-image titles and per-row labels."""
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray" if images[i].ndim == 2 else None, vmin=0, vmax=255)
            if titles:
                ax.set_title(titles[i], fontsize=7)
    if row_labels:
        for r, lab in enumerate(row_labels):
            axes[r, 0].text(-0.08, 0.5, lab, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def mask_overlay_grid(images: np.ndarray, masks: np.ndarray, num_classes: int, ncols: int = 6, alpha: float = 0.45,
                      title: str | None = None):
    """Images with their label masks overlaid (one colour per class)."""
    cmap = plt.get_cmap("tab20", num_classes)
    n = len(images)
    fig, axes = plt.subplots(2, ncols, figsize=(1.7 * ncols, 3.6), squeeze=False)
    for i in range(ncols):
        for r in range(2):
            axes[r, i].axis("off")
        if i < n:
            axes[0, i].imshow(images[i], cmap="gray" if images[i].ndim == 2 else None)
            axes[1, i].imshow(images[i], cmap="gray" if images[i].ndim == 2 else None)
            axes[1, i].imshow(np.ma.masked_equal(masks[i], 0), cmap=cmap, vmin=0, vmax=num_classes - 1,
                              alpha=alpha, interpolation="nearest")
    if title:
        fig.suptitle(title)
    return fig


def av_example(frames: np.ndarray, audio: np.ndarray, sample_rate: int, title: str | None = None,
               max_hz: float = 4000.0):
    """An audio-visual clip: its video frames in a row above the sound's log-power spectrogram."""
    from scipy.signal import spectrogram

    f, t, sxx = spectrogram(audio, fs=sample_rate, nperseg=512, noverlap=384)
    keep = f <= max_hz
    fig = plt.figure(figsize=(max(7.0, 1.2 * len(frames)), 4.4))
    grid = fig.add_gridspec(2, len(frames), height_ratios=[1, 1.5])
    for i, frame in enumerate(frames):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(frame, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"frame {i + 1}", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    mesh = ax.pcolormesh(t, f[keep], 10 * np.log10(sxx[keep] + 1e-10), shading="auto", cmap="magma")
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)")
    fig.colorbar(mesh, ax=ax, label="power (dB)")
    if title:
        fig.suptitle(title)
    return fig
