"""Section 07 tables: audio-visual runs (arm x seed) -> seed 004's tables beside ours, with the spread over seeds.

``runs[arm][seed]`` is a ``Run``. "Chosen epoch" is the epoch with the best *validation* macro-F1; the seed's
"best" numbers were the maximum over epochs on *test*, which is shown too, clearly labelled, so the size of that
selection effect is visible.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..runs import Run

Runs = dict[str, dict[int, Run]]


def encoder_init(model_cfg) -> str:
    """How the two encoders start, in words: the weights named in the parameters, or random."""
    from ..models.weights import weights_of

    return "; ".join(f"{m}: {weights_of(model_cfg, f'{m}_').words}" for m in ("audio", "visual"))


def _agg(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def per_seed(runs: Runs) -> pd.DataFrame:
    """One row per (arm, seed): test F1/acc at the chosen epoch, final epoch, max over epochs, gap, dynamics."""
    rows = []
    for arm, by_seed in runs.items():
        for seed, r in by_seed.items():
            h, m = r.history, r.metrics
            gap = h["util_gap"] if "util_gap" in h else pd.Series(dtype=float)
            final_acc = float(h["train_accuracy"].iloc[-1])
            conv = int(h["epoch"][h["train_accuracy"] >= 0.99 * final_acc].iloc[0])
            rows.append({"arm": arm, "seed": seed, "chosen_epoch": m["best_epoch"], "test_f1": m["test"]["macro_f1"],
                         "test_acc": m["test"]["accuracy"], "val_f1": m["val"]["macro_f1"],
                         "final_f1": m["final"]["test_macro_f1"], "final_acc": m["final"]["test_accuracy"],
                         "max_test_f1": float(h["test_macro_f1"].max()), "max_test_f1_epoch": int(
                             h["epoch"][h["test_macro_f1"].idxmax()]),
                         "audio_acc": m["test"]["audio_accuracy"], "visual_acc": m["test"]["visual_accuracy"],
                         "gap_min": float(gap.min()), "gap_max": float(gap.max()),
                         "gap_mean_last10": float(gap.tail(10).mean()),
                         "final_train_acc": final_acc, "final_train_loss": float(h["train_loss"].iloc[-1]),
                         "convergence_epoch": conv})
    return pd.DataFrame(rows)


def mean_sd(table: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Mean over seeds per arm, with '± sd' columns when there is more than one seed."""
    out = {}
    for arm, g in table.groupby("arm", sort=False):
        row = {}
        for c in cols:
            mu, sd = _agg(g[c].tolist())
            row[c], row[f"{c} sd"] = mu, sd
        row["seeds"] = len(g)
        out[arm] = row
    df = pd.DataFrame(out).T
    return df.drop(columns=[c for c in df.columns if c.endswith(" sd") and df[c].isna().all()])


def final_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Seed 004's final summary: F1/acc at the chosen epoch, final F1/acc, chosen epoch (+ max over test epochs)."""
    return mean_sd(table, ["test_f1", "test_acc", "final_f1", "final_acc", "chosen_epoch", "max_test_f1"])


def seed_summary(seed: dict) -> pd.DataFrame:
    df = pd.DataFrame(seed["final_summary"]).T.drop(columns=["label"]).apply(pd.to_numeric)
    return df.rename(columns={"best_f1": "max_test_f1", "best_acc": "max_test_acc", "best_epoch": "max_test_f1_epoch",
                              "final_f1": "final_f1", "final_acc": "final_acc"})


def progression(runs: Runs, every: int = 5) -> pd.DataFrame:
    """Test macro-F1 every ``every`` epochs (mean over seeds), arms as columns."""
    cols = {}
    for arm, by_seed in runs.items():
        hs = [r.history.set_index("epoch")["test_macro_f1"] for r in by_seed.values()]
        cols[arm] = pd.concat(hs, axis=1).mean(1)
    df = pd.DataFrame(cols)
    keep = [e for e in df.index if e % every == 0] or list(df.index)
    return df.loc[keep].rename_axis("epoch")


def seed_progression(seed: dict) -> pd.DataFrame:
    p = seed["f1_progression"]
    return pd.DataFrame({k: v for k, v in p.items() if k != "epochs"}, index=pd.Index(p["epochs"], name="epoch"))


def progression_beside(ours: pd.DataFrame, seed: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Rows = epochs (both tables' epochs), columns = (arm, seed | ours (profile))."""
    epochs = sorted(set(ours.index) | set(seed.index))
    cols = {}
    for arm in dict.fromkeys(list(ours.columns) + list(seed.columns)):
        cols[arm, "seed"] = seed[arm].reindex(epochs) if arm in seed else np.nan
        cols[arm, f"ours ({profile})"] = ours[arm].reindex(epochs) if arm in ours else np.nan
    out = pd.DataFrame(cols, index=pd.Index(epochs, name="epoch"))
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["arm", "source"])
    return out


def gap_summary(table: pd.DataFrame) -> pd.DataFrame:
    return mean_sd(table, ["gap_min", "gap_max", "gap_mean_last10", "audio_acc", "visual_acc"])


def dynamics(table: pd.DataFrame) -> pd.DataFrame:
    return mean_sd(table, ["final_train_acc", "final_train_loss", "convergence_epoch"])


def seed_rows(seed: dict, key: str) -> pd.DataFrame:
    return pd.DataFrame(seed[key]).T.drop(columns=["label"]).apply(pd.to_numeric)


def against_baseline(table: pd.DataFrame, baseline: str = "baseline") -> pd.DataFrame:
    """Each arm's mean test F1 minus the baseline's, next to the spread over seeds (the noise level): a difference
    is called larger than the noise when it exceeds twice the larger of the two arms' seed standard deviations."""
    base = table[table.arm == baseline]["test_f1"]
    b_mu, b_sd = _agg(base.tolist())
    rows = {}
    for arm, g in table.groupby("arm", sort=False):
        mu, sd = _agg(g["test_f1"].tolist())
        noise = np.nanmax([b_sd, sd]) if len(g) > 1 and len(base) > 1 else float("nan")
        rows[arm] = {"test F1 (mean)": mu, "minus baseline": mu - b_mu, "seed sd (larger of the two)": noise,
                     "larger than the noise": (abs(mu - b_mu) > 2 * noise) if np.isfinite(noise) else None}
    return pd.DataFrame(rows).T


def headline(table: pd.DataFrame, labels: dict[str, str], baseline: str = "baseline") -> dict:
    s = final_summary(table)
    best = str(s["test_f1"].astype(float).idxmax())
    vs = against_baseline(table, baseline)
    gaps = gap_summary(table)
    base_sd = vs.loc[baseline, "seed sd (larger of the two)"]
    return {
        "best_mode": labels[best], "best_mode_f1": s.loc[best, "test_f1"], "best_mode_acc": s.loc[best, "test_acc"],
        "baseline_f1": s.loc[baseline, "test_f1"], "baseline_acc": s.loc[baseline, "test_acc"],
        "best_minus_baseline": s.loc[best, "test_f1"] - s.loc[baseline, "test_f1"],
        "seed_sd": base_sd if np.isfinite(base_sd) else 0.0,
        "n_beyond_noise": int(sum(bool(x) for x in vs["larger than the noise"].drop(baseline) if x is not None)),
        "n_arms": len(s), "selection_gain": float((s["max_test_f1"] - s["test_f1"]).mean()),
        "lowest_gap_mode": labels[str(gaps["gap_mean_last10"].astype(float).idxmin())],
        "lowest_gap": float(gaps["gap_mean_last10"].astype(float).min()),
        "baseline_gap": float(gaps.loc[baseline, "gap_mean_last10"]),
        "baseline_audio_acc": float(gaps.loc[baseline, "audio_acc"]),
        "baseline_visual_acc": float(gaps.loc[baseline, "visual_acc"]),
    }
