"""Section 03: ViT teachers under the initial and the revisit schedules (seed 000 §9.7, §9.7.1)."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from ..config import TeacherRunConfig, TrainConfig, deep_merge, from_dict, to_dict
from ..runs import Run

SCHEDULE_KEYS = ("epochs", "warmup_epochs", "plain_logits_epochs", "arcface_warmup_epochs", "freeze_backbone_epochs",
                 "layer_decay", "lr")


def arm_configs(base: dict[str, TeacherRunConfig], vits: list[str], arms: dict[str, dict]) -> dict:
    """(vit, arm) -> config: the teacher's section-01 config with the arm's training overrides."""
    out = {}
    for v in vits:
        for arm, over in arms.items():
            train = from_dict(TrainConfig, deep_merge(to_dict(base[v].train), over), f"arms.{arm}")
            out[v, arm] = replace(base[v], train=train)
    return out


def schedule_table(configs: dict) -> pd.DataFrame:
    rows = {(v, arm): {k: getattr(c.train, k) for k in SCHEDULE_KEYS} for (v, arm), c in configs.items()}
    return pd.DataFrame(rows).T.rename_axis(["model", "arm"])


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
             revisit: str = "revisit", llrd: str = "revisit + LLRD") -> dict:
    """Glue for the prose: the revisit's macro-F1 change against the initial schedule per ViT and, when the
    table has the LLRD arm, its change against the plain revisit and how the ViTs were initialised (LLRD is a
    fine-tuning device: it keeps pretrained lower layers near their weights, and from random weights it only
    slows them down)."""
    def change(prefix, new, old):
        d = table.loc[new, "macro_f1"] - table.loc[old, "macro_f1"]
        return {f"{prefix}_delta": abs(d), f"{prefix}_direction": "raises" if d > 0 else "lowers"}

    out = {}
    for v in vits:
        out.update(change(v, (v, revisit), (v, initial)), **{f"{v}_label": labels[v]})
        if (v, llrd) in table.index:
            out.update(change(f"{v}_llrd", (v, llrd), (v, revisit)))
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
