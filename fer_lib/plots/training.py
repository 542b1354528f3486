"""Training curves from run histories."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def training_curves(histories: dict[str, pd.DataFrame], metrics=("train_loss", "val_macro_f1"),
                    labels: dict[str, str] | None = None, title: str | None = None, mark=None, ncols: int = 2):
    """One panel per metric, one line per run, ``ncols`` panels to a row so that each stays readable on a page;
    ``mark`` adds vertical lines (e.g. margin switch-on). The legend takes a spare panel when the grid has one,
    else sits below the panels, so it never covers a curve."""
    labels = labels or {}
    ncols = min(ncols, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 3.6 * nrows), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        for name, h in histories.items():
            if m in h:
                ax.plot(h["epoch"], h[m], marker="o", ms=3, label=name)
        for x in (mark or []):
            ax.axvline(x, color="grey", ls="--", lw=1)
        ax.set(xlabel="epoch", ylabel=labels.get(m, m.replace("_", " ")))
    handles, names = axes.flat[0].get_legend_handles_labels()
    spare = list(axes.flat[len(metrics):])
    for ax in spare:
        ax.set_axis_off()
    if spare:
        spare[0].legend(handles, names, loc="center", fontsize=8, frameon=False)
    else:
        fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0), ncols=min(3, len(names)), fontsize=8,
                   frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
