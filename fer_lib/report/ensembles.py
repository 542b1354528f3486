"""Section 02 tables and the ECE demonstration."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import Interval, confusion_matrix, describe, ece, paired_bootstrap, softmax
from ..metrics.stats import paired_bootstrap_ece
from ..models.ensemble import fuse_probs
from ..runs import Run
from .teachers import head_twin


COLUMN_NAMES = {"weights": "weights", "macro_f1": "Macro-F1", "delta_vs_best_single": "Δ Macro-F1 vs best single",
                "minority_f1": "Minority-F1", "ece": "ECE", "accuracy": "Acc"}
"""How the ensemble tables' columns read in the book."""


def ensemble_table(runs: dict[str, Run], best_single_f1: float, split: str = "test") -> pd.DataFrame:
    """Seed Table 9.2's columns: weights, macro-F1, delta vs the best single teacher, minority-F1, ECE, accuracy."""
    rows = {}
    for name, r in runs.items():
        m = r.metrics[split]
        rows[name] = {"weights": " / ".join(f"{w:.1f}" for w in r.metrics["weights"]), "macro_f1": m["macro_f1"],
                      "delta_vs_best_single": m["macro_f1"] - best_single_f1, "minority_f1": m["minority_f1"],
                      "ece": m["ece"], "accuracy": m["accuracy"]}
    return pd.DataFrame(rows).T


def seed_pairwise(seed_rows: dict, keys: dict[str, str]) -> pd.DataFrame:
    """The seed's pairwise rows renamed to our ensemble names (``keys``: our name -> seed key)."""
    rows = {}
    for ours, key in keys.items():
        if key in seed_rows:
            r = dict(seed_rows[key])
            r["weights"] = " / ".join(f"{w:.1f}" for w in r.pop("weights"))
            rows[ours] = r
    df = pd.DataFrame(rows).T
    num = [c for c in df.columns if c != "weights"]
    df[num] = df[num].apply(pd.to_numeric, errors="coerce")
    return df


def confusion_of(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    return confusion_matrix(labels, probs.argmax(1), num_classes)


def recall_confusion(cm: np.ndarray) -> np.ndarray:
    return cm / np.clip(cm.sum(1, keepdims=True), 1, None)


def ece_artefact_demo(member_runs: list[Run], weights, scales: list[float], split: str = "test") -> pd.DataFrame:
    """How a fused ensemble's ECE depends on which "probabilities" are averaged.

    Rows: (a) softmax of each member's classifying logits (s cos theta for an ArcFace head), fused and
    normalised (what this report uses); (b) the same weights applied to softmax(logits / scale), with
    ``scales[i]`` member i's ArcFace scale s (1 for a linear head, whose logits stay as they are): the
    ArcFace cosines *without* the scale -- near-uniform confidences, so ECE ~ accuracy minus the mean
    confidence, the pattern of the seed's 0.627 at 0.805 accuracy.
    """
    if len(scales) != len(member_runs):
        raise ValueError(f"scales: expected one per member ({len(member_runs)}), got {len(scales)}")
    arrays = [r.arrays() for r in member_runs]
    y = arrays[0][f"{split}_labels"]
    z = [a[f"{split}_logits"] for a in arrays]
    variants = {
        "(a) softmax(s·cos θ), fused, normalised": fuse_probs([softmax(x) for x in z], weights),
        "(b) softmax(cos θ) (ArcFace scale s dropped), fused": fuse_probs([softmax(x / s) for x, s in zip(z, scales)],
                                                                          weights),
    }
    rows = {}
    for name, p in variants.items():
        acc = float((p.argmax(1) == y).mean())
        conf = float(p.max(1).mean())
        rows[name] = {"accuracy": acc, "mean confidence": conf, "accuracy − mean confidence": acc - conf,
                      "ECE (15 bins)": ece(p, y)}
    return pd.DataFrame(rows).T


def arcface_versions(members: list[str], configs: dict) -> list[str]:
    """Each member's run with the seed's ArcFace head: the member itself when its head is ArcFace, else its
    section 01 twin ``<member>_arcface`` (same backbone and recipe), else the member itself (no ArcFace run).

    The ECE artefact of :func:`ece_artefact_demo` needs ArcFace members: where validation gave a role the linear
    head, the chosen ensemble's own members have no scale s to drop.
    """
    return [m if configs[m].model.head == "arcface" else head_twin(m, "arcface", configs) or m for m in members]


def seed_ece_facts(seed: dict) -> dict:
    """Seed 000's numbers around its ensemble ECE (Tables 9.1, 9.2, 9.8), for the prose."""
    pair = seed["pairwise"]["resnet18+efficientnet_b3"]
    members = [seed["single_teachers"][k]["ece"] for k in ("resnet18", "efficientnet_b3", "convnext_tiny")]
    return {"seed_ens_ece": pair["ece"], "seed_ens_acc": pair["accuracy"],
            "seed_acc_minus_ece": pair["accuracy"] - pair["ece"], "seed_cal_ece": seed["calibration"]["ensemble"]["ece"],
            "seed_member_ece_min": min(members), "seed_member_ece_max": max(members)}


def member_diversity(ensembles: dict[str, list[str]], member_runs: dict[str, Run], ens_runs: dict[str, Run],
                     split: str = "test") -> pd.DataFrame:
    """Why an ensemble can or cannot beat its best member (Kuncheva & Whitaker's diversity measures).

    Per ensemble, on ``split``: the best member's accuracy; the ensemble's; the mean pairwise *disagreement*
    (fraction of images where two members' argmax differ); the *shared errors*, the fraction of the best
    member's errors that every other member also gets wrong (no weighting can fix those); and the *oracle*
    accuracy, the fraction where at least one member is right (the ceiling of any fusion of argmaxes).
    """
    arrays = {m: member_runs[m].arrays() for m in {m for members in ensembles.values() for m in members}}
    rows = {}
    for name, members in ensembles.items():
        y = arrays[members[0]][f"{split}_labels"]
        pred = np.stack([arrays[m][f"{split}_logits"].argmax(1) for m in members])
        right = pred == y
        best = int(right.mean(1).argmax())
        pairs = [(i, j) for i in range(len(members)) for j in range(i + 1, len(members))]
        wrong_best = ~right[best]
        others_wrong = (~np.delete(right, best, axis=0)).all(0)
        rows[name] = {"best member acc": float(right[best].mean()), "ensemble acc": ens_runs[name].metrics[split]["accuracy"],
                      "disagreement": float(np.mean([(pred[i] != pred[j]).mean() for i, j in pairs])),
                      "shared errors": float((wrong_best & others_wrong).sum() / max(wrong_best.sum(), 1)),
                      "oracle acc": float(right.any(0).mean()), "weakest member acc": float(right.mean(1).min())}
    return pd.DataFrame(rows).T


def against_best_single(ensemble: Run, single: Run) -> dict:
    """The chosen ensemble against the best single teacher on test, one run each: macro-F1 and ECE differences with
    their per-sample paired bootstrap intervals (test sampling only; a teacher is one training run)."""
    e, t = ensemble.arrays(), single.arrays()
    if not np.array_equal(e["test_labels"], t["test_labels"]):
        raise ValueError(f"runs {ensemble.key} and {single.key} were tested on different samples")
    labels, probs_ens, probs_single = e["test_labels"], e["test_probs"], softmax(t["test_logits"])
    f1 = paired_bootstrap(labels, probs_ens.argmax(1), probs_single.argmax(1), "macro_f1")
    calib = paired_bootstrap_ece(labels, probs_ens, probs_single)
    gap_ens = float((probs_ens.argmax(1) == labels).mean() - probs_ens.max(1).mean())
    gap_single = float((probs_single.argmax(1) == labels).mean() - probs_single.max(1).mean())
    return {"ens_vs_single_f1": describe(f1, "a gain", "a loss"),
            "ens_conf_gap": abs(gap_ens), "ens_conf_side": "below" if gap_ens > 0 else "above",
            "single_conf_gap": abs(gap_single), "single_conf_side": "below" if gap_single > 0 else "above",
            "ens_ece": ece(probs_ens, labels), "single_ece": ece(probs_single, labels),
            "ens_vs_single_ece": describe(calib, "worse calibrated (higher ECE)", "better calibrated (lower ECE)")}


def seed_claims(ens_runs: dict[str, Run], teacher_runs: dict[str, Run], chosen: str, best_single: str,
                ensembles: dict[str, dict]) -> list[dict]:
    """Seed 000's ensemble claims on this build's runs, one run each (per-sample paired bootstrap of the test split):
    RN18 + B3 beats the other pairs (macro-F1); the chosen ensemble beats the best single teacher (macro-F1) and is
    better calibrated (ECE); the RN18 + B3 ensemble has fewer parameters than the CNN + ViT hybrid (an exact count)."""
    def predicted(run: Run) -> tuple[np.ndarray, np.ndarray]:
        a = run.arrays()
        return a["test_labels"], (a["test_probs"] if "test_probs" in a else softmax(a["test_logits"]))

    def f1_diff(a: Run, b: Run):
        (labels, pa), (_, pb) = predicted(a), predicted(b)
        return paired_bootstrap(labels, pa.argmax(1), pb.argmax(1), "macro_f1")

    out = []
    pair = next((n for n, s in ensembles.items() if sorted(s["members"]) == ["efficientnet_b3", "resnet18"]), None)
    others = [n for n, s in ensembles.items() if len(s["members"]) == 2 and n != pair]
    if pair and others:
        out.append({"claim_id": "000-rn18-b3-ensemble-chosen", "expects": "higher",
                     "diffs": [f1_diff(ens_runs[pair], ens_runs[n]) for n in others],
                     "what": f"{pair} minus " + ", ".join(others) + ", test macro-F1"})
    else:
        out.append({"claim_id": "000-rn18-b3-ensemble-chosen", "why": "this profile has no RN18 + B3 pair to rank"})
    out.append({"claim_id": "000-ensemble-beats-best-single", "expects": "higher",
                "diffs": f1_diff(ens_runs[chosen], teacher_runs[best_single]),
                "what": f"chosen ensemble ({chosen}) minus the best single teacher, test macro-F1"})
    (labels, pe), (_, ps) = predicted(ens_runs[chosen]), predicted(teacher_runs[best_single])
    out.append({"claim_id": "000-ensemble-calibration", "expects": "lower", "diffs": paired_bootstrap_ece(labels, pe, ps),
                "what": f"chosen ensemble ({chosen}) minus the best single teacher, test ECE (before temperature scaling)"})
    hybrid = next((n for n, s in ensembles.items() if any(m.startswith("vit") for m in s["members"])), None)
    if pair and hybrid:
        size = {n: sum(teacher_runs[m].metrics["params"] for m in ensembles[n]["members"]) for n in (pair, hybrid)}
        d = float(size[pair] - size[hybrid])
        out.append({"claim_id": "000-deployment-size", "expects": "lower",
                    "diffs": Interval(d, d, d, 1, "exact count"),
                    "what": f"parameters of {pair} minus {hybrid} (members' sum)"})
    else:
        out.append({"claim_id": "000-deployment-size", "why": "this profile has no RN18 + B3 pair or no hybrid"})
    return out
