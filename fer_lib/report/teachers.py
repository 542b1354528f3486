"""Section 01 tables: teacher runs -> results, per-class F1, confusion matrices, curves."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import confusion_matrix
from ..runs import Run

HEADLINE = ["accuracy", "macro_f1", "minority_f1", "ece"]


def results_table(runs: dict[str, Run], split: str = "test", metrics=HEADLINE) -> pd.DataFrame:
    """One row per teacher: the headline metrics of ``split`` at the best-val-macro-F1 checkpoint."""
    return pd.DataFrame({name: {m: r.metrics[split][m] for m in metrics} for name, r in runs.items()}).T


def run_summary(runs: dict[str, Run], configs: dict) -> pd.DataFrame:
    """Architecture actually trained, parameters, epochs run and best epoch per teacher."""
    from ..models.weights import weights_of

    rows = {}
    for name, r in runs.items():
        cfg = configs[name]
        rows[name] = {"arch": cfg.model.arch, "timm overrides": _kw(cfg.model.model_kwargs), "head": cfg.model.head,
                      "weights": weights_of(cfg.model).tag, "TTA": cfg.model.tta,
                      "params (M)": r.metrics["params"] / 1e6, "img size": cfg.train.img_size,
                      "epochs run": r.metrics["epochs_run"], "best epoch (val macro-F1)": r.metrics["best_epoch"]}
    return pd.DataFrame(rows).T


def _kw(d: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items()) or "—"


def per_class_f1(runs: dict[str, Run], split: str = "test") -> pd.DataFrame:
    """Rows = classes, columns = teachers."""
    out = {}
    for name, r in runs.items():
        classes = r.metrics["classes"]
        out[name] = {c: r.metrics[split][f"f1_{c}"] for c in classes}
    df = pd.DataFrame(out)
    df.index.name = "class"
    return df


def confusion(run: Run, split: str = "test") -> np.ndarray:
    a = run.arrays()
    return confusion_matrix(a[f"{split}_labels"], a[f"{split}_logits"].argmax(1), len(run.metrics["classes"]))


def best_by(table: pd.DataFrame, metric: str = "macro_f1") -> str:
    return str(table[metric].astype(float).idxmax())


def seed_table(rows: dict) -> pd.DataFrame:
    """A seed's per-model rows (``seed_results(...)[table]``) as a DataFrame of numbers (None -> NaN)."""
    df = pd.DataFrame(rows).T.drop(columns=["label"], errors="ignore")
    return df.apply(pd.to_numeric, errors="coerce")


def headline(table: pd.DataFrame, labels: dict[str, str]) -> dict:
    """Numbers the section's prose cites: best/worst teacher, and the best CNN's macro-F1 lead over the best ViT."""
    best, worst = best_by(table), str(table["macro_f1"].astype(float).idxmin())
    vit = [n for n in table.index if n.startswith("vit")]
    cnn = [n for n in table.index if n not in vit]
    gap = float(table.loc[cnn, "macro_f1"].max() - table.loc[vit, "macro_f1"].max()) if cnn and vit else float("nan")
    return {"best": labels[best], "best_macro_f1": table.loc[best, "macro_f1"], "best_acc": table.loc[best, "accuracy"],
            "best_minority_f1": table.loc[best, "minority_f1"], "worst": labels[worst],
            "cnn_vit_relation": "exceeds" if gap >= 0 else "trails", "cnn_vit_gap": abs(gap)}
