"""Sections 04 and 05: student arms -> tables, curves, temperature and retention figures."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import NullLocator
import numpy as np
import pandas as pd

from ..runs import Run


def teacher_table(runs: dict[str, Run], configs: dict) -> pd.DataFrame:
    return pd.DataFrame({n: {"arch": configs[n].model.arch, "params (M)": r.metrics["params"] / 1e6,
                             "test accuracy": r.metrics["test"]["accuracy"],
                             "test macro-F1": r.metrics["test"]["macro_f1"]} for n, r in runs.items()}).T


def arms_table(runs: dict[str, Run], configs: dict) -> pd.DataFrame:
    rows = {}
    for n, r in runs.items():
        c, m = configs[n], r.metrics
        rows[n] = {"method": c.distill.method, "teachers": ", ".join(c.teacher_roles) or "—",
                   "T": c.distill.temperature if c.distill.method != "none" else np.nan,
                   "accuracy": m["test"]["accuracy"], "macro_f1": m["test"]["macro_f1"],
                   "val_accuracy": m["val"]["accuracy"],
                   "retention": m["retention"] if m.get("retention") is not None else np.nan,
                   "best epoch": m["best_epoch"], "epochs run": m["epochs_run"]}
    return pd.DataFrame(rows).T


def seed_rows(table: dict, keys) -> pd.DataFrame:
    df = pd.DataFrame({k: v for k, v in table.items() if k in keys}).T.drop(columns=["label"], errors="ignore")
    return df.apply(pd.to_numeric, errors="coerce")


def cache_summary(runs: dict[str, Run]) -> dict:
    """How often the teachers ran versus were read back from the teacher-output cache."""
    hits = sum((r.metrics.get("teacher_cache") or {}).get("hits", 0) for r in runs.values())
    misses = sum((r.metrics.get("teacher_cache") or {}).get("misses", 0) for r in runs.values())
    return {"teacher_steps_read": hits, "teacher_steps_run": misses,
            "teacher_cache_share": hits / (hits + misses) if hits + misses else 0.0}


def val_curves(runs: dict[str, Run], labels: dict[str, str], metric: str = "val_accuracy", title: str = "",
               last: int | None = None, ax=None, mark: dict[str, int] | None = None):
    """Validation curves of several arms; ``last`` zooms on the final epochs; ``mark`` flags stop epochs."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.6))
    for n, r in runs.items():
        h = r.history if last is None else r.history.tail(last)
        line, = ax.plot(h["epoch"], h[metric], label=labels.get(n, n), lw=1.6)
        if mark and n in mark:
            ax.axvline(mark[n], color=line.get_color(), ls=":", lw=1)
    ax.set(xlabel="epoch", ylabel=metric.replace("val_", "validation ").replace("_", " "), title=title)
    ax.legend(fontsize=7)
    return ax.figure


def temperature_plot(runs: dict[str, Run], temps: dict[str, float], seed: dict[str, float] | None = None,
                     profile: str = ""):
    """Test accuracy against the distillation temperature (seed 002 Fig. 4)."""
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    order = sorted(temps, key=temps.get)
    xs, ys = [temps[n] for n in order], [runs[n].metrics["test"]["accuracy"] for n in order]
    ax.plot(xs, ys, marker="o", label=f"ours ({profile})")
    for x, y in zip(xs, ys):  # the seed's curve shares the axis: label ours so its small steps still read
        ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    if seed:
        pts = sorted((temps[n], v) for n, v in seed.items() if n in temps and v == v)
        if pts:
            ax.plot(*zip(*pts), marker="s", ls="--", label="seed 002")
    ax.set(xlabel="temperature T", ylabel="test accuracy", xscale="log", xticks=xs)
    ax.set_xticklabels([f"{t:g}" for t in xs])
    ax.xaxis.set_minor_locator(NullLocator())  # no "6x10^0" between the temperatures
    ax.legend(fontsize=8)
    return fig


def retention_bars(table: pd.DataFrame, seed: pd.Series | None, labels: dict[str, str], profile: str):
    """Student / teacher accuracy per distilled arm, ours beside the seed's (seed 003 Fig. 5). Horizontal bars, so
    the arms' long names read; arms without a teacher (retention undefined) are left out."""
    df = pd.DataFrame({f"ours ({profile})": table["retention"].astype(float)})
    if seed is not None:
        df["seed 003"] = seed.reindex(df.index).astype(float)
    df = df.dropna(how="all").iloc[::-1]  # first arm on top
    ax = df.rename(index=labels).plot.barh(figsize=(8, 1.2 + 0.3 * df.size), width=0.75)
    ax.set(xlabel="retention (student acc / teacher acc)", ylabel="")
    ax.axvline(1.0, color="grey", lw=1, ls="--")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=df.shape[1], frameon=False)
    ax.figure.tight_layout()
    return ax.figure


def against_spread(delta: float, spread: float, n_seeds: int) -> str:
    """How a difference between two arms reads against seed noise: "more than" when ``|delta|`` exceeds the spread
    (max - min) between the training seeds of the student from scratch, else "no more than"."""
    if n_seeds < 2:
        return "not comparable with (one seed only)"
    return "more than" if abs(delta) > spread else "no more than"


def scratch_comparison(table: pd.DataFrame, labels: dict[str, str]) -> dict:
    """The students from scratch (method none, one per training seed) against the distilled arms. The arm compared is
    the one with the best *validation* accuracy (picking the best test accuracy among many arms would flatter the
    gain); its test gain over the scratch mean is called larger than the noise when it exceeds the spread (max - min)
    between the scratch seeds. Also counts the distilled arms whose test accuracy beats every scratch seed."""
    acc, val = table["accuracy"].astype(float), table["val_accuracy"].astype(float)
    scratch = [n for n in table.index if table.loc[n, "method"] == "none"]
    distilled = [n for n in table.index if table.loc[n, "method"] != "none"]
    best = val[distilled].idxmax()
    mean, spread = float(acc[scratch].mean()), float(acc[scratch].max() - acc[scratch].min())
    gain = float(acc[best] - mean)
    return {"scratch_acc": mean, "n_scratch": len(scratch), "scratch_spread": spread, "best_kd": labels[best],
            "best_kd_acc": float(acc[best]), "kd_relation": "beats" if gain >= 0 else "trails", "kd_gain": abs(gain),
            "gain_vs_spread": against_spread(gain, spread, len(scratch)), "n_kd": len(distilled),
            "n_kd_above_scratch": int((acc[distilled] > acc[scratch].max()).sum())}


def kd_headline(table: pd.DataFrame, labels: dict[str, str]) -> dict:
    """Numbers section 04's prose cites: the single- and the multi-teacher arm each picked on validation accuracy."""
    acc, val = table["accuracy"].astype(float), table["val_accuracy"].astype(float)
    single = [n for n in table.index if table.loc[n, "method"] == "kd"]
    multi = [n for n in table.index if table.loc[n, "method"] not in ("kd", "none")]
    best_single, best_multi = val[single].idxmax(), val[multi].idxmax()
    no_ce = acc.get("m3_resnets_no_ce", np.nan) - acc.get("m3_resnets", np.nan)
    return {**scratch_comparison(table, labels), "best_single": labels[best_single],
            "best_single_acc": acc[best_single], "best_multi": labels[best_multi], "best_multi_acc": acc[best_multi],
            "no_ce_delta": no_ce}


def dkd_headline(table: pd.DataFrame, sruns: dict[str, Run], truns: dict[str, Run], labels: dict[str, str]) -> dict:
    """Numbers section 05's prose cites."""
    acc = table["accuracy"].astype(float)
    beta_gain = acc["v3_1"] - acc["v3"]
    scratch = scratch_comparison(table, labels)
    return {**scratch, "v2_acc": acc["v2"], "v2_ret": table.loc["v2", "retention"],
            "v3_acc": acc["v3"], "v3_1_acc": acc["v3_1"], "beta_relation": "raises" if beta_gain >= 0 else "lowers",
            "beta_gain": abs(beta_gain),
            "beta_vs_spread": against_spread(beta_gain, scratch["scratch_spread"], scratch["n_scratch"]),
            "v4_minus_v2": acc["v4"] - acc["v2"], "v2_minus_v1": acc["v2"] - acc["v1"],
            "teacher_acc": truns["teacher"].metrics["test"]["accuracy"],
            "strong_teacher_acc": truns["teacher_strong"].metrics["test"]["accuracy"]}


def initialisation(configs: dict) -> str:
    """How the teachers of ``configs`` start, in words (the seed is silent for 002's teachers: the text says what
    this profile chose)."""
    from ..models.weights import weights_of

    return "; ".join(f"{c.name}: {weights_of(c.model).words}" for c in configs.values())
