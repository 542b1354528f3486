"""Section 01 tables: teacher runs -> results, per-class F1, confusion matrices, curves."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import confusion_matrix
from ..runs import Run

HEADLINE = ["accuracy", "macro_f1", "minority_f1", "ece"]
HEAD_NAMES = {"arcface": "ArcFace", "linear": "linear"}


def head_twin(role: str, head: str, names) -> str | None:
    """The name of ``role``'s section 01 twin trained with ``head`` (``<role>_<head>``: same backbone and recipe,
    the other head), or None when ``names`` holds no such twin. The one place this naming convention lives."""
    twin = f"{role}_{head}"
    return twin if twin in names else None


def results_table(runs: dict[str, Run], split: str = "test", metrics=HEADLINE) -> pd.DataFrame:
    """One row per teacher: the headline metrics of ``split`` at the best-val-macro-F1 checkpoint."""
    return pd.DataFrame({name: {m: r.metrics[split][m] for m in metrics} for name, r in runs.items()}).T


def run_summary(runs: dict[str, Run], configs: dict) -> pd.DataFrame:
    """How each teacher was built and trained: timm overrides, head, starting weights, TTA, parameters, input size,
    epochs run and best epoch (the timm architecture itself is in every row label, ``Role [arch]``)."""
    from ..models.weights import weights_of

    rows = {}
    for name, r in runs.items():
        cfg = configs[name]
        rows[name] = {"timm overrides": _kw(cfg.model.model_kwargs), "head": cfg.model.head,
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


def head_choice(runs: dict[str, Run], configs: dict) -> pd.DataFrame:
    """Roles trained with two heads -- ``<role>`` and its twin ``<role>_arcface`` (or ``<role>_linear``), the same
    recipe with the other head: the validation macro-F1 of each, the head validation picks (the higher macro-F1) and
    the head the role plays in every later section (02-09). Test numbers play no part; rows are roles."""
    rows = {}
    for name in runs:
        twins = [t for t in (head_twin(name, h, runs) for h in HEAD_NAMES) if t is not None]
        if not twins or configs[name].model.head == configs[twins[0]].model.head:
            continue
        val = {configs[n].model.head: float(runs[n].metrics["val"]["macro_f1"]) for n in (name, twins[0])}
        picked = max(val, key=val.get)
        rows[name] = {**{f"val macro-F1, {HEAD_NAMES[h]} head": v for h, v in sorted(val.items())},
                      "validation picks": picked, "used in sections 02-09": configs[name].model.head,
                      "agrees": picked == configs[name].model.head}
    return pd.DataFrame(rows).T


def head_note(choice: pd.DataFrame, labels: dict[str, str]) -> str:
    """One sentence on ``head_choice``'s table for the prose."""
    if choice.empty:
        return "In this build every role trains with one head only, so there is no choice to make."
    against = [labels.get(n, n) for n in choice.index if not choice.loc[n, "agrees"]]
    n = len(choice)
    if not against:
        who = "The one role" if n == 1 else f"Each of the {n} roles"
        return f"{who} trained with both heads plays the head validation picks."
    return (f"Validation picks the other head for {', '.join(against)}: the parameter file should name that one "
            f"({n - len(against)} of {n} roles agree).")
