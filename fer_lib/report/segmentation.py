"""Section 06 tables: face-parsing runs -> ranking beside seed 001, parameters, LMSA on/off, per-class F1, pitfalls."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..config import PARAM_LIMIT
from ..config.params import arm_and_seed
from ..data.synthetic import PART_CLASSES
from ..metrics import NOT_DETECTABLE, best_on_validation, describe, mean_ci, verdict
from ..metrics.segmentation import challenge_fscore, pooled_fscore
from ..metrics.stats import units
from ..runs import Run
from .compare import arm_runs, budget_note, compare


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


def ranking(runs: dict[str, Run], configs: dict | None = None) -> pd.DataFrame:
    """Per arm, best first by mean validation F-score over its seeds (the selection; ties keep the arms' order):
    validation and held-out test F-score (means), the test F-score's 95% interval over seeds, seeds, best epoch
    (of the arm's first seed). ``configs`` groups ``arm/seedN`` runs with their arm; without it each run is an arm."""
    arms = arm_runs(runs, configs) if configs is not None else {n: {0: r} for n, r in runs.items()}
    rows = {}
    for arm, by_seed in arms.items():
        test = mean_ci([r.metrics["test"]["fscore"] for r in by_seed.values()])
        first = by_seed[min(by_seed)]
        rows[arm] = {"val_fscore": float(np.mean([r.metrics["val"]["fscore"] for r in by_seed.values()])),
                     "test_fscore": test.estimate, "test ± 95% CI": test.half_width if test.n > 1 else np.nan,
                     "seeds": test.n, "val_miou": float(np.mean([r.metrics["val"]["miou"] for r in by_seed.values()])),
                     "best_epoch": first.metrics["best_epoch"]}
    df = pd.DataFrame(rows).T
    best = best_on_validation(df["val_fscore"])
    return df.loc[[best] + [a for a in df.sort_values("val_fscore", ascending=False, kind="stable").index
                            if a != best]]


def against_baseline(runs: dict[str, Run], configs: dict, base: str = "dice_1_0") -> pd.DataFrame:
    """Each arm's test F-score minus the baseline's: paired over matched seeds (or, with one run each, a per-image
    paired bootstrap of the test split), with the verdict its 95% interval allows."""
    arms = arm_runs(runs, configs)
    rows = {}
    for arm, by_seed in arms.items():
        if arm == base:
            continue
        diff = compare(by_seed, arms[base], "fscore")
        rows[arm] = {"minus baseline": diff.estimate, "CI low": diff.low, "CI high": diff.high, "n": diff.n,
                     "over": units(diff), "verdict": verdict(diff)}
    return pd.DataFrame(rows).T


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


def seeds_note(seeds: pd.Series, labels: dict[str, str]) -> str:
    """How many training seeds each arm ran: "3 per arm", or "3 for Dice 1.0 and Dice 2.0, 1 for the other arms"
    (the largest group of arms with one count is "the other arms")."""
    groups = {int(n): [labels.get(a, a) for a in seeds.index if seeds[a] == n] for n in sorted(set(seeds), reverse=True)}
    if len(groups) == 1:
        return f"{next(iter(groups))} per arm"
    rest = max(groups, key=lambda n: (len(groups[n]), -n))  # a tie: the arms with more seeds are named
    named = [f"{n} for {' and '.join(arms)}" for n, arms in groups.items() if n != rest]
    return ", ".join(named) + f", {rest} for the other arms"


def headline(runs: dict[str, Run], labels: dict[str, str], seed: dict, on: str, off: str,
             configs: dict | None = None) -> dict:
    """Numbers the section's prose cites: the arm with the best mean validation F-score, its test F-score and its
    difference from the Dice 1.0 baseline with its interval and verdict; LMSA on vs off the same way. The selected
    run (per-class tables, predictions, the submission) is the best arm's first seed (``selected_run``)."""
    rank = ranking(runs, configs)
    arms = arm_runs(runs, configs) if configs is not None else {n: {0: r} for n, r in runs.items()}
    best = rank.index[0]
    base = "dice_1_0" if "dice_1_0" in arms else rank.index[-1]
    run = arms[best][min(arms[best])]
    pit = pitfalls(run)
    m = run.metrics
    seed_best = max((r["val_fscore"], k) for k, r in seed["ranking"].items() if r["val_fscore"] is not None)
    vs_base = compare(arms[best], arms[base], "fscore") if best != base else None
    lmsa = compare(arms[on], arms[off], "fscore")
    detected = against_baseline(runs, configs, base) if configs is not None else pd.DataFrame()
    return {
        "best_arm": labels[best], "best_val_fscore": rank.loc[best, "val_fscore"],
        "best_test_fscore": rank.loc[best, "test_fscore"], "best_test_fscore_tta": m["test_flip"]["fscore"],
        "best_test_miou": m["test"]["miou"], "worst_arm": labels[rank.index[-1]],
        "worst_val_fscore": rank.loc[rank.index[-1], "val_fscore"], "seeds_note": seeds_note(rank["seeds"], labels),
        "base_val_fscore": rank.loc[base, "val_fscore"],
        "best_vs_base": (describe(vs_base, "higher than the Dice 1.0 baseline", "lower than the Dice 1.0 baseline")
                         if vs_base is not None else "the baseline itself"),
        "best_vs_base_budget": budget_note(vs_base) if vs_base is not None else "",
        "n_arms_differ": int((detected["verdict"] != NOT_DETECTABLE).sum()) if len(detected) else 0,
        "n_arms_compared": len(detected),
        "seed_best_arm": seed["ranking"][seed_best[1]]["label"], "seed_best_val": seed_best[0],
        "lmsa_effect": describe(lmsa, "LMSA raises the test F-score", "LMSA lowers the test F-score"),
        "lmsa_delta_val": float(np.mean([r.metrics["val"]["fscore"] for r in arms[on].values()])
                                - np.mean([r.metrics["val"]["fscore"] for r in arms[off].values()])),
        "lmsa_params": runs[on].metrics["lmsa_params"],
        "params": runs[on].metrics["params"],
        "params_share": runs[on].metrics["params"] / PARAM_LIMIT, "param_limit": PARAM_LIMIT,
        "pooled_gap": float(pit.loc[pit.index[1], "test"] - pit.loc[pit.index[0], "test"]),
        "noswap_gap": float(pit.loc["flip TTA, no swap", "test"] - pit.loc["flip TTA, L/R swapped back", "test"]),
        "pooled_batch": m["pooled_batch"], "input_px": m["input"]["size"],
        "mask_px": m["mask_size"][0],
    }


def selected_run(runs: dict[str, Run], configs: dict) -> str:
    """The run name of the arm validation selects (best mean validation F-score), at its first seed: the run whose
    per-class scores, predictions and submission the section shows, and whose weights a publish keeps."""
    best = ranking(runs, configs).index[0]
    return min((n for n in runs if arm_and_seed(n)[0] == best), key=lambda n: configs[n].train.seed)


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


def seed_claims(runs: dict[str, Run], configs: dict) -> list[dict]:
    """Seed 001's headline claims on this build's runs (test F-score, A minus B): Dice 1.5 beats Dice 1.0; strong
    augmentation falls below the baseline; LMSA helps (on minus off)."""
    arms = arm_runs(runs, configs)
    specs = [("001-dice15-best", "dice_1_5", "dice_1_0", "higher", "Dice 1.5 minus Dice 1.0"),
             ("001-strong-aug-hurts", "strong_aug", "dice_1_0", "lower", "strong augmentation minus baseline"),
             ("001-lmsa-critical", "dice_1_0", "no_lmsa", "higher", "LMSA on minus off")]
    out = []
    for claim_id, a, b, expects, what in specs:
        if a in arms and b in arms:
            out.append({"claim_id": claim_id, "diffs": compare(arms[a], arms[b], "fscore"), "expects": expects,
                        "what": f"{what}, test F-score"})
        else:
            out.append({"claim_id": claim_id, "why": f"this profile runs no {a if a not in arms else b} arm"})
    return out
