"""Section 01 tables: teacher runs -> results, per-class F1, confusion matrices, curves."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import best_on_validation, confusion_matrix, describe
from ..runs import Run
from .compare import compare

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


def seed_table(rows: dict) -> pd.DataFrame:
    """A seed's per-model rows (``seed_results(...)[table]``) as a DataFrame of numbers (None -> NaN)."""
    df = pd.DataFrame(rows).T.drop(columns=["label"], errors="ignore")
    return df.apply(pd.to_numeric, errors="coerce")


def roles(runs: dict[str, Run]) -> list[str]:
    """The teacher roles among ``runs``: every run that is not another's head twin (``<role>_<head>``)."""
    return [n for n in runs if not any(head_twin(base, h, runs) == n for base in runs for h in HEAD_NAMES)]


def is_vit(run_name: str, configs: dict) -> bool:
    return configs[run_name].model.arch.startswith(("vit", "test_vit", "deit"))


def headline(runs: dict[str, Run], configs: dict, labels: dict[str, str]) -> dict:
    """Numbers the section's prose cites: the teacher validation picks (best validation macro-F1 among the roles)
    with its test numbers, and the best CNN against the best ViT (each picked on validation) on test macro-F1 with a
    per-sample paired bootstrap interval (one run each: test sampling only)."""
    names = roles(runs)
    val = {n: runs[n].metrics["val"]["macro_f1"] for n in names}
    best = best_on_validation(val)
    test = runs[best].metrics["test"]
    out = {"best": labels[best], "best_macro_f1": test["macro_f1"], "best_acc": test["accuracy"],
           "best_minority_f1": test["minority_f1"], "worst": labels[min(val, key=val.get)]}
    vit, cnn = [n for n in names if is_vit(n, configs)], [n for n in names if not is_vit(n, configs)]
    if vit and cnn:
        best_vit, best_cnn = best_on_validation({n: val[n] for n in vit}), best_on_validation({n: val[n] for n in cnn})
        diff = compare({0: runs[best_cnn]}, {0: runs[best_vit]}, "macro_f1")
        out["cnn_vs_vit"] = (f"{labels[best_cnn]} minus {labels[best_vit]}: "
                             f"{describe(diff, 'the CNN ahead', 'the ViT ahead')}")
    else:
        out["cnn_vs_vit"] = "not measured (this profile trains no ViT or no CNN)"
    return out


def seed_claims(runs: dict[str, Run], configs: dict, labels: dict[str, str]) -> list[dict]:
    """Seed 000's single-teacher claims (test macro-F1, A minus B, one run each: paired bootstrap): ResNet18 is the
    best single teacher (against each other CNN role); the best ViT trails the best CNN (each picked on validation)."""
    names = roles(runs)
    val = {n: runs[n].metrics["val"]["macro_f1"] for n in names}
    cnn = [n for n in names if not is_vit(n, configs)]
    vit = [n for n in names if is_vit(n, configs)]
    out = []
    if "resnet18" in cnn and len(cnn) > 1:
        others = [n for n in cnn if n != "resnet18"]
        out.append({"claim_id": "000-resnet18-best-single", "expects": "higher",
                    "diffs": [compare({0: runs["resnet18"]}, {0: runs[n]}, "macro_f1") for n in others],
                    "what": "ResNet18 minus " + ", ".join(labels[n] for n in others) + ", test macro-F1"})
    else:
        out.append({"claim_id": "000-resnet18-best-single", "why": "this profile trains no ResNet18 role and another CNN"})
    if vit and cnn:
        best_vit, best_cnn = best_on_validation({n: val[n] for n in vit}), best_on_validation({n: val[n] for n in cnn})
        out.append({"claim_id": "000-vit-below-cnn", "expects": "lower",
                    "diffs": compare({0: runs[best_vit]}, {0: runs[best_cnn]}, "macro_f1"),
                    "what": f"best ViT ({labels[best_vit]}) minus best CNN ({labels[best_cnn]}), test macro-F1"})
    else:
        out.append({"claim_id": "000-vit-below-cnn", "why": "this profile trains no ViT or no CNN"})
    return out


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
        picked = best_on_validation(val)
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
