"""Section 06 tables: face-parsing runs -> ranking beside seed 001, parameters, LMSA on/off, per-class F1, pitfalls."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..config import PARAM_LIMIT
from ..data.synthetic import PART_CLASSES
from ..metrics.segmentation import challenge_fscore, pooled_fscore
from ..runs import Run


def run_summary(runs: dict[str, Run], configs: dict) -> pd.DataFrame:
    """What each arm changed and what its training took."""
    rows = {}
    for name, r in runs.items():
        c, h = configs[name], r.history
        rows[name] = {"dice weight": c.loss.dice_weight, "CE term": "focal" if c.loss.focal else "CE",
                      "LMSA": "on" if c.model.lmsa else "off", "rotation (deg)": c.augment.rotation,
                      "scale": "-".join(f"{v:g}" for v in c.augment.scale), "input px": c.train.img_size,
                      "epochs run": r.metrics["epochs_run"], "best epoch": r.metrics["best_epoch"],
                      "s / epoch": float(h["seconds"].median()) if "seconds" in h else np.nan}
    return pd.DataFrame(rows).T


def ranking(runs: dict[str, Run]) -> pd.DataFrame:
    """Validation F-score (selection) and held-out test F-score per arm, best first (ties keep the arms' order)."""
    df = pd.DataFrame({n: {"val_fscore": r.metrics["val"]["fscore"], "test_fscore": r.metrics["test"]["fscore"],
                           "val_miou": r.metrics["val"]["miou"], "best_epoch": r.metrics["best_epoch"]}
                       for n, r in runs.items()}).T
    return df.sort_values("val_fscore", ascending=False, kind="stable")


def seed_table(seed: dict) -> pd.DataFrame:
    df = pd.DataFrame(seed["ranking"]).T.drop(columns=["label"])
    return df.apply(pd.to_numeric, errors="coerce")


def params_table(runs: dict[str, Run], seed: dict, labels: dict[str, str]) -> pd.DataFrame:
    """Trainable parameters of each distinct model against the challenge's limit (and the seed repository's)."""
    rows = {}
    for name, r in runs.items():
        key = "MicroSegFormer + LMSA" if r.metrics["lmsa_params"] else "MicroSegFormer (LMSA off)"
        rows[key] = {"parameters": r.metrics["params"], "of which LMSA": r.metrics["lmsa_params"],
                     "limit (fewer than)": PARAM_LIMIT, "share of limit": r.metrics["params"] / PARAM_LIMIT,
                     "under the limit": r.metrics["params"] < PARAM_LIMIT}
    rows["seed 001 repository (MicroSegFormer + LMSA)"] = {
        "parameters": seed["params"]["total"], "of which LMSA": seed["params"]["lmsa"],
        "limit (fewer than)": seed["params"]["limit"], "share of limit": seed["params"]["total"] / seed["params"]["limit"],
        "under the limit": seed["params"]["total"] < seed["params"]["limit"]}
    return pd.DataFrame(rows).T


def lmsa_effect(runs: dict[str, Run], on: str, off: str) -> pd.DataFrame:
    """LMSA on vs off (otherwise identical arms): F-score, mIoU and the small parts' F1 on val and test."""
    small = ["l_eye", "r_eye", "l_brow", "r_brow", "nose", "u_lip", "l_lip", "mouth"]
    rows = {}
    for label, name in (("LMSA on", on), ("LMSA off", off)):
        m = runs[name].metrics
        rows[label] = {"val F-score": m["val"]["fscore"], "test F-score": m["test"]["fscore"],
                       "test mIoU": m["test"]["miou"],
                       "test F1, small parts (mean)": float(np.mean([m["test"][f"f1_{c}"] for c in small])),
                       "parameters": m["params"]}
    df = pd.DataFrame(rows).T
    df.loc["on - off"] = df.loc["LMSA on"] - df.loc["LMSA off"]
    return df


def per_class_f1(run: Run, split: str = "test") -> pd.DataFrame:
    """Per-class F1 and IoU (pixels pooled over the split), with and without flip TTA."""
    m = run.metrics
    return pd.DataFrame({"F1": {c: m[split][f"f1_{c}"] for c in m["classes"]},
                         "F1 (flip TTA)": {c: m[f"{split}_flip"][f"f1_{c}"] for c in m["classes"]},
                         "IoU": {c: m[split][f"iou_{c}"] for c in m["classes"]}}).rename_axis("class")


def pitfalls(run: Run) -> pd.DataFrame:
    """The two pitfalls on the same predictions: the F-score pooled over batches vs the per-image challenge score;
    flip TTA without the L/R swap vs with it."""
    a, m = run.arrays(), run.metrics
    b = m["pooled_batch"]
    rows = {}
    for s in ("val", "test"):
        cm = a[f"{s}_none_cm"]
        rows[s] = {"challenge F-score (per image)": challenge_fscore(cm),
                   f"pooled over batches of {b}": pooled_fscore(cm, b),
                   "flip TTA, L/R swapped back": m[f"{s}_flip"]["fscore"],
                   "flip TTA, no swap": m[f"{s}_flip_noswap"]["fscore"]}
    return pd.DataFrame(rows)


def lr_pairs_f1(run: Run, split: str = "test") -> pd.DataFrame:
    """F1 of the left/right classes with flip TTA that swaps them back and with one that does not."""
    m = run.metrics
    cls = ["l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear"]
    return pd.DataFrame({"swap": {c: m[f"{split}_flip"][f"f1_{c}"] for c in cls},
                         "no swap": {c: m[f"{split}_flip_noswap"][f"f1_{c}"] for c in cls}}).rename_axis("class")


def headline(runs: dict[str, Run], labels: dict[str, str], seed: dict, on: str, off: str) -> dict:
    """Numbers the section's prose cites."""
    rank = ranking(runs)
    best = rank.index[0]
    base = "dice_1_0" if "dice_1_0" in runs else rank.index[-1]
    pit = pitfalls(runs[best])
    m = runs[best].metrics
    seed_best = max((r["val_fscore"], k) for k, r in seed["ranking"].items() if r["val_fscore"] is not None)
    return {
        "best_arm": labels[best], "best_val_fscore": rank.loc[best, "val_fscore"],
        "best_test_fscore": rank.loc[best, "test_fscore"], "best_test_fscore_tta": m["test_flip"]["fscore"],
        "best_test_miou": m["test"]["miou"], "worst_arm": labels[rank.index[-1]],
        "worst_val_fscore": rank.loc[rank.index[-1], "val_fscore"],
        "base_val_fscore": rank.loc[base, "val_fscore"],
        "best_minus_base": rank.loc[best, "val_fscore"] - rank.loc[base, "val_fscore"],
        "seed_best_arm": seed["ranking"][seed_best[1]]["label"], "seed_best_val": seed_best[0],
        "lmsa_delta_val": runs[on].metrics["val"]["fscore"] - runs[off].metrics["val"]["fscore"],
        "lmsa_delta_test": runs[on].metrics["test"]["fscore"] - runs[off].metrics["test"]["fscore"],
        "lmsa_params": runs[on].metrics["lmsa_params"], "params": runs[on].metrics["params"],
        "params_share": runs[on].metrics["params"] / PARAM_LIMIT, "param_limit": PARAM_LIMIT,
        "pooled_gap": float(pit.loc[pit.index[1], "test"] - pit.loc[pit.index[0], "test"]),
        "noswap_gap": float(pit.loc["flip TTA, no swap", "test"] - pit.loc["flip TTA, L/R swapped back", "test"]),
        "pooled_batch": m["pooled_batch"], "input_px": m["input"]["size"],
        "mask_px": m["mask_size"][0],
    }


@dataclass
class Submission:
    """Masks written by ``fer-parse predict`` for a folder of unlabelled images."""

    source: str
    masks: list[Path]
    zip_path: Path

    @property
    def n_masks(self) -> int:
        return len(self.masks)

    def summary(self) -> pd.DataFrame:
        """Checks a reader can trust: every mask single-channel, same size as its image, values within 0..18."""
        modes, ok_values, sizes = set(), True, set()
        for p in self.masks:
            with Image.open(p) as im:
                modes.add(im.mode)
                a = np.asarray(im)
                ok_values &= bool(a.max() < len(PART_CLASSES))
                sizes.add(f"{im.size[0]}x{im.size[1]}")
        return pd.DataFrame({"value": {
            "images": self.source, "masks written": self.n_masks, "PNG modes": ", ".join(sorted(modes)),
            "mask sizes": ", ".join(sorted(sizes)), "values within 0..18": ok_values,
            "zip": f"{self.zip_path.name} ({self.zip_path.stat().st_size / 1024:.0f} KiB)"}})


def write_submission(run: Run, images_dir: str | None, data=None, n_synthetic: int = 8) -> Submission:
    """Predict ``images_dir`` (the challenge's test images) with ``run`` into the report's artifacts in the
    submission layout; without a folder, write ``n_synthetic`` synthetic test images first (smoke profile)."""
    from .. import paths
    from ..tasks.parse import predict_folder

    base = paths.report_dir() / "06_segmentation"
    if images_dir is None:
        src = base / "synthetic_test_images"
        src.mkdir(parents=True, exist_ok=True)
        part = data.subset("test")
        for i, im in enumerate(part.images[:n_synthetic]):
            Image.fromarray(im).save(src / f"synthetic_{i:03d}.jpg", quality=95)
        label = "synthetic test images (smoke)"
    else:
        src = paths.resolve(images_dir)
        label = str(images_dir)
    out = base / "submission"
    if out.exists():
        shutil.rmtree(out)
    result = predict_folder(run, src, out, tta=True, zip_path=base / "submission.zip", progress=False)
    if result.failed:
        raise ValueError(f"{len(result.failed)} of the images in {src} could not be predicted: " + "; ".join(
            f"{f.name}: {why}" for f, why in result.failed))
    return Submission(label, result.written, base / "submission.zip")
