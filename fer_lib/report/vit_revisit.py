"""Section 03: ViT teachers under the initial and the revisit schedules (seed 000 §9.7, §9.7.1)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import TeacherRunConfig
from ..metrics import Interval, describe, verdict
from ..runs import Run
from .compare import compare
from ..tasks.teacher import arm_configs  # noqa: F401 - the notebook builds its arms as vr.arm_configs

SCHEDULE_KEYS = ("epochs", "warmup_epochs", "plain_logits_epochs", "arcface_warmup_epochs", "freeze_backbone_epochs",
                 "layer_decay", "lr")


def schedule_table(configs: dict) -> pd.DataFrame:
    """One row per (model, arm); epoch counts that are whole numbers are shown as integers."""
    rows = {(v, arm): {k: getattr(c.train, k) for k in SCHEDULE_KEYS} for (v, arm), c in configs.items()}
    df = pd.DataFrame.from_dict(rows, orient="index")
    for col in df:
        x = pd.to_numeric(df[col], errors="coerce")
        if x.notna().all() and (x % 1 == 0).all():
            df[col] = x.astype(int)
    return df.rename_axis(["model", "arm"])


def comparison(runs: dict[tuple, Run], classes, split: str = "test") -> pd.DataFrame:
    rows = {}
    for key, r in runs.items():
        m = r.metrics[split]
        rows[key] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "minority_f1": m["minority_f1"],
                     "best_epoch": r.metrics["best_epoch"], **{f"f1_{c}": m[f"f1_{c}"] for c in classes}}
    return pd.DataFrame(rows).T.rename_axis(["model", "arm"])


def seed_comparison(seed_rows: dict, classes) -> pd.DataFrame:
    rows = {}
    for v, arms in seed_rows.items():
        for arm, m in arms.items():
            rows[v, arm] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "minority_f1": m["minority_f1"],
                            **{f"f1_{c}": m.get("per_class_f1", {}).get(c) for c in classes}}
    return pd.DataFrame(rows).T.rename_axis(["model", "arm"]).apply(pd.to_numeric, errors="coerce")


def margin_on_epoch(cfg: TeacherRunConfig) -> float:
    """Epoch at which the ArcFace margin starts to rise (end of the plain-logits phase)."""
    return cfg.train.plain_logits_epochs


def headline(table: pd.DataFrame, vits, labels, configs: dict | None = None, initial: str = "initial",
             revisit: str = "revisit", llrd: str = "revisit + LLRD", runs: dict | None = None) -> dict:
    """Glue for the prose: the revisit's macro-F1 change against the initial schedule per ViT and, when the
    table has the LLRD arm, its change against the plain revisit and how the ViTs were initialised (LLRD is a
    fine-tuning device: it keeps pretrained lower layers near their weights, and from random weights it only
    slows them down). With ``runs``, each change carries its per-sample paired bootstrap interval on test and the
    verdict it allows (one run per arm: the interval covers test sampling, not training noise); and the share of
    the majority class, the accuracy of always answering it, is given for scale."""
    def change(prefix, label, new, old, why=""):
        a, b = table.loc[new, "macro_f1"], table.loc[old, "macro_f1"]
        d = a - b
        if runs is not None:
            diff = compare({0: runs[new]}, {0: runs[old]}, "macro_f1")
            phrase = f"{label}, {describe(diff, 'it raises macro-F1', 'it lowers macro-F1')}{why}"
            return {f"{prefix}_delta": abs(d), f"{prefix}_direction": verdict(diff, "raises", "lowers"),
                    f"{prefix}_change": phrase}
        if round(abs(d), 3) == 0:
            direction, phrase = "leaves", f"leaves {label}'s macro-F1 unchanged at {a:.3f}{why}"
        else:
            direction = "raises" if d > 0 else "lowers"
            phrase = f"{direction} {label}'s macro-F1 by {abs(d):.3f}{why}"
        return {f"{prefix}_delta": abs(d), f"{prefix}_direction": direction, f"{prefix}_change": phrase}

    out = {}
    for v in vits:
        out.update(change(v, labels[v], (v, revisit), (v, initial)), **{f"{v}_label": labels[v]})
        if (v, llrd) in table.index:
            out.update(change(f"{v}_llrd", labels[v], (v, llrd), (v, revisit), _frozen_note(table, configs, v, revisit, llrd)))
    if runs is not None:
        labels_test = next(iter(runs.values())).arrays()["test_labels"]
        majority = float(np.bincount(labels_test).max() / labels_test.size)
        out.update({"majority_acc": majority, "n_arms": len(table),
                    "n_at_or_below_majority": int((table["accuracy"].astype(float) <= majority).sum())})
    if configs is not None:
        pretrained = [bool(c.model.pretrained_file or c.model.pretrained) for c in configs.values()]
        if all(pretrained):
            out["vit_init"] = "ImageNet-pretrained weights (the setting LLRD is made for)"
        elif not any(pretrained):
            out["vit_init"] = ("random weights (no pretrained weights in this profile), where LLRD can only slow "
                               "the lower layers down")
        else:
            out["vit_init"] = "pretrained weights for some arms only"
    return out


def _frozen_note(table: pd.DataFrame, configs: dict | None, v: str, revisit: str, llrd: str) -> str:
    """Why LLRD can leave a result untouched: when both arms' checkpoints (chosen on validation) come from the
    frozen-backbone epochs, only the head had trained, and LLRD scales only the backbone's learning rates."""
    if configs is None or "best_epoch" not in table.columns:
        return ""
    frozen = configs[v, llrd].train.freeze_backbone_epochs
    if all(table.loc[(v, a), "best_epoch"] <= frozen for a in (revisit, llrd)):
        return (" (both arms' best checkpoints on validation come from the frozen-backbone epochs, where only the "
                "head trains and LLRD, which scales the backbone's learning rates, has nothing to act on)")
    return ""


def seed_claims(runs: dict, configs: dict, vits, labels, initial: str = "initial", revisit: str = "revisit") -> list[dict]:
    """Seed 000's ViT-schedule claims on this build's runs: the revisit does not beat the initial schedule (test
    macro-F1, revisit minus initial per ViT, paired bootstrap); ViT Tiny collapses when the margin switches on
    (validation macro-F1 a few epochs after the switch minus at the switch: one run, no interval)."""
    out = [{"claim_id": "000-vit-revisit-no-gain", "expects": "lower",
            "diffs": [compare({0: runs[v, revisit]}, {0: runs[v, initial]}, "macro_f1") for v in vits],
            "what": "revisit minus initial, test macro-F1, " + " / ".join(labels[v] for v in vits)}]
    v = "vit_tiny" if "vit_tiny" in vits else vits[0]
    h = runs[v, initial].history.set_index("epoch")["val_macro_f1"]
    on = margin_on_epoch(configs[v, initial])
    before, after = h[h.index <= on], h[h.index > on]
    if len(before) and len(after):
        d = float(after.iloc[:3].min() - before.iloc[-1])
        out.append({"claim_id": "000-vit-margin-collapse", "expects": "lower",
                    "diffs": Interval(d, -np.inf, np.inf, 1, "one run"),
                    "what": f"{labels[v]}, initial schedule: lowest validation macro-F1 in the 3 epochs after the "
                            f"margin switches on minus the last before (one run, per-epoch predictions not kept)"})
    else:
        out.append({"claim_id": "000-vit-margin-collapse", "why": "the run ends before the margin switches on"})
    return out
