"""Training curves from run histories."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def training_curves(histories: dict[str, pd.DataFrame], metrics=("train_loss", "val_macro_f1"),
                    labels: dict[str, str] | None = None, title: str | None = None, mark=None):
    """One panel per metric, one line per run; ``mark`` adds vertical lines (e.g. margin switch-on)."""
    labels = labels or {}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for name, h in histories.items():
            if m in h:
                ax.plot(h["epoch"], h[m], marker="o", ms=3, label=name)
        for x in (mark or []):
            ax.axvline(x, color="grey", ls="--", lw=1)
        ax.set(xlabel="epoch", ylabel=labels.get(m, m.replace("_", " ")))
    axes[0, -1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
