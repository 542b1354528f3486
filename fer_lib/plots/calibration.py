"""Reliability diagrams with confidence histograms; ECE/NLL against temperature."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def reliability_diagram(bins: dict[str, pd.DataFrame], title: str = ""):
    """Accuracy vs confidence per bin (top) and the share of samples per bin (bottom), one series per label."""
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(4.2, 5.0), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    width = 1 / len(next(iter(bins.values())))
    for i, (name, b) in enumerate(bins.items()):
        mid = (b["lower"] + b["upper"]) / 2
        ok = b["count"] > 0
        ax.plot(b.loc[ok, "confidence"], b.loc[ok, "accuracy"], marker="o", ms=4, label=name)
        axh.bar(mid + (i - 0.5) * width / 2, b["count"] / b["count"].sum(), width=width / 2, label=name)
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(fontsize=7, loc="upper left")
    axh.set(xlabel="confidence (top-label probability)", ylabel="share")
    return fig


def ece_vs_temperature(sweeps: dict[str, pd.DataFrame], chosen: dict[str, float] | None = None):
    """ECE and NLL against T for each model; the chosen T* marked."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, s in sweeps.items():
        for ax, m in zip(axes, ("ece", "nll")):
            line, = ax.plot(s["T"], s[m], label=name)
            if chosen and name in chosen:
                row = s.iloc[(s["T"] - chosen[name]).abs().argmin()]
                ax.plot(row["T"], row[m], marker="*", ms=10, color=line.get_color())
    axes[0].set(xlabel="temperature T", ylabel="ECE (15 bins)")
    axes[1].set(xlabel="temperature T", ylabel="NLL (nats)")
    axes[1].legend(fontsize=7)
    return fig
