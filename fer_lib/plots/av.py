"""Audio-visual figures: per-mode curves of macro-F1 and of the utilization gap, mean over seeds with their range."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def mode_curves(histories: dict[str, list[pd.DataFrame]], metrics: dict[str, str], title: str | None = None,
                chosen: dict[str, list[int]] | None = None):
    """One panel per ``metrics`` column (label as value); per mode the mean over seeds and a band from the
    seeds' minimum to maximum; ``chosen`` marks each seed's validation-chosen epoch on the first panel."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 3.6), squeeze=False)
    for ax, (col, label) in zip(axes[0], metrics.items()):
        for mode, hs in histories.items():
            df = pd.concat([h.set_index("epoch")[col] for h in hs if col in h], axis=1)
            if df.empty:
                continue
            line, = ax.plot(df.index, df.mean(1), marker="o", ms=2.5, label=mode)
            if df.shape[1] > 1:
                ax.fill_between(df.index, df.min(1), df.max(1), color=line.get_color(), alpha=0.15)
            if chosen and ax is axes[0, 0]:
                for e in chosen.get(mode, []):
                    ax.plot([e], [df.mean(1).get(e, float("nan"))], marker="*", ms=9, color=line.get_color())
        ax.set(xlabel="epoch", ylabel=label)
    axes[0, -1].legend(fontsize=7, ncols=2)
    if title:
        fig.suptitle(title)
    return fig
