"""Confusion matrices and per-class F1."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.ticker import FuncFormatter


def confusion_heatmap(cm: np.ndarray, classes, title: str = "", normalize: bool = True, ax=None, diff: bool = False):
    """Row-normalised (recall) confusion matrix; ``diff=True`` draws a signed difference map."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 4.0))
    data = cm / np.clip(cm.sum(1, keepdims=True), 1, None) if normalize and not diff else cm
    cmap, norm = centred_colormap("RdBu_r", data, 0.0) if diff else (
        plt.get_cmap("Blues"), Normalize(0, 1 if normalize else np.nanmax(data)))
    matrix_heatmap(ax, data, classes, cmap, norm)
    annotate_cells(ax, data, ".2f" if (normalize or diff) else "d")
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    return ax.figure


def centred_colormap(name: str, data: np.ndarray, center: float):
    """Seaborn's ``center``: the part of colormap ``name`` that ``data``'s range covers when ``center`` sits in the
    middle of a symmetric range, and the norm over ``data``'s own range."""
    low, high = float(np.nanmin(data)), float(np.nanmax(data))
    half = max(high - center, center - low) or 1.0
    cmin, cmax = Normalize(center - half, center + half)([low, high])
    return ListedColormap(plt.get_cmap(name)(np.linspace(cmin, cmax, 256))), Normalize(low, high)


def matrix_heatmap(ax, data: np.ndarray, labels, cmap, norm):
    """A labelled square matrix as ``sns.heatmap`` draws it (cells at integer coordinates, row 0 on top, no spines,
    ticks at the cell centres; x labels at 45 degrees, y labels level), without its tick-overlap check, which draws
    the whole figure on every call (17 s for 01's grid of ten matrices)."""
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.grid(False)
    ax.pcolormesh(data, cmap=cmap, norm=norm)
    ax.set(xlim=(0, data.shape[1]), ylim=(data.shape[0], 0))
    ax.set_xticks(np.arange(data.shape[1]) + 0.5, labels, rotation=45)
    ax.set_yticks(np.arange(data.shape[0]) + 0.5, labels, rotation=0, va="center")


def annotate_cells(ax, values: np.ndarray, fmt: str, fontsize: int = 7) -> None:
    """Write each cell's value on the heatmap just drawn on ``ax``: dark text on light cells, white on dark ones
    (seaborn's rule: relative luminance above 0.408); the cell colours come from the mesh's colormap and norm."""
    mesh = ax.collections[-1]
    colors = mesh.cmap(mesh.norm(np.ma.asarray(mesh.get_array()).ravel()))
    for (row, col), rgba in zip(np.ndindex(*values.shape), colors):
        ax.text(col + 0.5, row + 0.5, format(values[row, col], fmt), ha="center", va="center", fontsize=fontsize,
                color=".15" if sns.utils.relative_luminance(rgba) > 0.408 else "w")


def confusion_grid(cms: dict[str, np.ndarray], classes, ncols: int = 3):
    """One row-normalised confusion matrix per model (title -> counts), ``ncols`` to a row, so that a page-wide
    figure keeps every matrix readable however many models there are."""
    nrows = -(-len(cms) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 4.1 * nrows), squeeze=False)
    for ax, (title, cm) in zip(axes.flat, cms.items()):
        confusion_heatmap(cm, classes, title=title, ax=ax)
    for ax in axes.flat[len(cms):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def per_class_f1_bars(table: pd.DataFrame, title: str = "Per-class F1"):
    """``table``: rows = classes, columns = models/sources; grouped bars, the legend below the axes (never over a bar)."""
    long = table.reset_index().melt(id_vars=table.index.name or "index", var_name="model", value_name="F1")
    fig, ax = plt.subplots(figsize=(9.0, 3.6))
    sns.barplot(data=long, x=table.index.name or "index", y="F1", hue="model", ax=ax)
    ax.set(xlabel="class", ylabel="F1", ylim=(0, 1), title=title)
    sns.move_legend(ax, "upper center", bbox_to_anchor=(0.5, -0.2), ncols=min(3, table.shape[1]), fontsize=8,
                    frameon=False, title=None)
    return fig


def pareto_front(cost: pd.Series, value: pd.Series) -> list:
    """Index labels of the points no other point beats on both axes (lower cost, higher value), by cost. Of points
    at the same cost only the best can be on the front."""
    order = sorted(cost.index, key=lambda k: (cost[k], -value[k]))
    front, best = [], -np.inf
    for k in order:
        if value[k] > best:
            front.append(k)
            best = value[k]
    return front


def accuracy_vs_latency(table: pd.DataFrame, metric: str = "accuracy", title: str | None = None,
                        metric_label: str | None = None):
    """One point per model (``table`` rows: ``latency_ms`` and ``metric``), latency on a log axis, the Pareto front
    (models no other model beats on both speed and ``metric``) joined and labelled."""
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    lat, val = table["latency_ms"].astype(float), table[metric].astype(float)
    front = pareto_front(lat, val)
    ax.scatter(lat, val, s=36, color="tab:blue", zorder=3, label="model")
    ax.plot(lat[front], val[front], color="tab:red", lw=1.5, marker="o", ms=8, mfc="none", zorder=2,
            label="Pareto front")
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 2, 3, 4 ms rather than 2x10^0 on a short log axis
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set(xlabel="latency at batch 1 (ms, log scale)", ylabel=metric_label or metric.replace("_", " "), title=title)
    ax.margins(x=0.08, y=0.12)
    _label_points(ax, lat, val)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _label_points(ax, x: pd.Series, y: pd.Series, fontsize: int = 7) -> None:
    """Name every point without labels running off the axes or over each other: a label sits right of its point, or
    left of it in the right half of the axes, and moves up a line while it would overlap a label already placed."""
    ax.figure.canvas.draw()  # final limits and transforms
    to_px = ax.transData.transform
    x_mid = ax.transAxes.transform((0.5, 0))[0]
    line, char = fontsize * 1.5, fontsize * 0.62  # label height and mean character width, in points
    placed = []  # (x0, x1, y0, y1) in points of the display
    scale = ax.figure.dpi / 72
    for name in y.sort_values().index:
        px, py = to_px((x[name], y[name])) / scale
        width = char * len(str(name))
        left = px * scale > x_mid
        x0 = px - 4 - width if left else px + 4
        dy = 3.0
        while any(x0 < b1 and x0 + width > b0 and py + dy < c1 and py + dy + line > c0 for b0, b1, c0, c1 in placed):
            dy += line
        placed.append((x0, x0 + width, py + dy, py + dy + line))
        moved = dict(arrowprops=dict(arrowstyle="-", lw=0.5, color="grey", shrinkA=0, shrinkB=3)) if dy > 3 else {}
        ax.annotate(str(name), (x[name], y[name]), xytext=(-4 if left else 4, dy), textcoords="offset points",
                    fontsize=fontsize, ha="right" if left else "left", va="bottom", **moved)

