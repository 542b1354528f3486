"""Section 07 tables: audio-visual runs (arm x seed) -> seed 004's tables beside ours, with intervals over seeds.

``runs[arm][seed]`` is a ``Run``. "Chosen epoch" is the epoch with the best *validation* macro-F1; the seed's
"best" numbers were the maximum over epochs on *test*, which is shown too, clearly labelled, so the size of that
selection effect is visible.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import Interval, best_on_validation, describe, mean_ci, paired_seeds, verdict
from ..runs import Run

Runs = dict[str, dict[int, Run]]


def encoder_init(model_cfg) -> str:
    """How the two encoders start, in words: the weights named in the parameters, or random."""
    from ..models.weights import weights_of

    return "; ".join(f"{m}: {weights_of(model_cfg, f'{m}_').words}" for m in ("audio", "visual"))




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
    """Mean over seeds per arm, with a '± 95% CI' column (half-width of the t-interval, ``mean_ci``) when there
    is more than one seed -- the one spread rule of every section."""
    out = {}
    for arm, g in table.groupby("arm", sort=False):
        row = {}
        for c in cols:
            ci = mean_ci(g[c].astype(float))
            row[c], row[f"{c} ± 95% CI"] = ci.estimate, ci.half_width if ci.n > 1 else np.nan
        row["seeds"] = len(g)
        out[arm] = row
    df = pd.DataFrame(out).T
    return df.drop(columns=[c for c in df.columns if c.endswith("CI") and df[c].isna().all()])


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


def progression_beside(ours: pd.DataFrame, seed: pd.DataFrame, profile: str, seed_data: str | None = None,
                       data: str | None = None) -> pd.DataFrame:
    """Rows = epochs (both tables' epochs), columns = (arm, seed (its data) | ours (profile, data))."""
    epochs = sorted(set(ours.index) | set(seed.index))
    cols = {}
    for arm in dict.fromkeys(list(ours.columns) + list(seed.columns)):
        cols[arm, f"seed ({seed_data})" if seed_data else "seed"] = seed[arm].reindex(epochs) if arm in seed else np.nan
        cols[arm, f"ours ({profile}, {data})" if data else f"ours ({profile})"] = (ours[arm].reindex(epochs) if arm in ours
                                                                                  else np.nan)
    out = pd.DataFrame(cols, index=pd.Index(epochs, name="epoch"))
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["arm", "source"])
    return out


def gap_summary(table: pd.DataFrame) -> pd.DataFrame:
    return mean_sd(table, ["gap_min", "gap_max", "gap_mean_last10", "audio_acc", "visual_acc"])


def dynamics(table: pd.DataFrame) -> pd.DataFrame:
    return mean_sd(table, ["final_train_acc", "final_train_loss", "convergence_epoch"])


def seed_rows(seed: dict, key: str) -> pd.DataFrame:
    return pd.DataFrame(seed[key]).T.drop(columns=["label"]).apply(pd.to_numeric)


METHOD_FIELDS = ("mode", "k", "tau", "k_max", "gap_per_step", "alpha")  # what a method sets; the rest must match


def matched_baseline(configs: dict, arm: str) -> str | None:
    """The arm that differs from ``arm`` only in its method: balance mode "baseline", the same unimodal heads
    (weight γ), dominant modality, data, model, training and probes; None when the profile runs no such arm.
    ``configs``: {arm: config of one seed}."""
    def rest(cfg) -> dict:
        d = cfg.key_dict()
        d["balance"] = {k: v for k, v in d["balance"].items() if k not in METHOD_FIELDS}
        return d

    target = rest(configs[arm])
    return next((other for other, cfg in configs.items()
                 if other != arm and cfg.balance.mode == "baseline" and rest(cfg) == target), None)


def _by_seed(table: pd.DataFrame, arm: str, col: str) -> dict[int, float]:
    rows = table[table.arm == arm]
    return dict(zip(rows["seed"].astype(int), rows[col].astype(float)))


def against_matched_baseline(table: pd.DataFrame, configs: dict, metric: str = "test_f1") -> pd.DataFrame:
    """Each method against its matched baseline (``matched_baseline``): mean test macro-F1 over seeds with its 95%
    t-interval, the paired difference over matched seeds with its interval, and the verdict the interval allows."""
    rows = {}
    for arm in dict.fromkeys(table.arm):
        ci = mean_ci(_by_seed(table, arm, metric).values())
        row = {"test F1": ci.estimate, "± 95% CI": ci.half_width, "seeds": ci.n}
        base = matched_baseline(configs, arm)
        if base is not None and base != arm:
            diff = paired_seeds(_by_seed(table, arm, metric), _by_seed(table, base, metric))
            row.update({"matched baseline": base, "minus baseline": diff.estimate, "CI low": diff.low,
                        "CI high": diff.high, "verdict": verdict(diff)})
        rows[arm] = row
    return pd.DataFrame(rows).T


def headline(table: pd.DataFrame, labels: dict[str, str], configs: dict) -> dict:
    """Numbers the section's prose cites. The best mode is the validation argmax (mean validation macro-F1 over
    seeds) among the arms that have a matched baseline; it is compared on test with that baseline over matched
    seeds, and so are the unimodal heads alone (baseline + heads against the plain baseline) where both run."""
    s = final_summary(table)
    gaps = gap_summary(table)
    val = table.groupby("arm", sort=False)["val_f1"].mean()
    methods = [a for a in val.index if configs[a].balance.mode != "baseline" and matched_baseline(configs, a)]
    out = {"n_arms": len(s), "selection_gain": float((s["max_test_f1"] - s["test_f1"]).mean()),
           "lowest_gap_mode": labels[str(gaps["gap_mean_last10"].astype(float).idxmin())],
           "lowest_gap": float(gaps["gap_mean_last10"].astype(float).min()),
           "n_seeds": int(table.groupby("arm").size().min())}
    vs = against_matched_baseline(table, configs)
    detected = vs[vs.get("verdict", pd.Series(dtype=object)).isin(["higher", "lower"])] if "verdict" in vs else vs[:0]
    out.update({"n_methods": len(methods), "n_detected": len(detected),
                "detected_arms": ", ".join(labels[a] for a in detected.index) or "none"})
    if methods:
        best = best_on_validation(val[methods])
        base = matched_baseline(configs, best)
        diff = paired_seeds(_by_seed(table, best, "test_f1"), _by_seed(table, base, "test_f1"))
        out.update({"best_mode": labels[best], "best_mode_val_f1": float(val[best]),
                    "best_mode_f1": float(s.loc[best, "test_f1"]), "best_mode_acc": float(s.loc[best, "test_acc"]),
                    "matched_baseline": labels[base], "matched_baseline_val_f1": float(val[base]),
                    "matched_baseline_f1": float(s.loc[base, "test_f1"]),
                    "best_vs_matched": describe(diff, "higher than its matched baseline",
                                                "lower than its matched baseline")})
    plain = [a for a in val.index if configs[a].balance.mode == "baseline" and configs[a].balance.unimodal_weight == 0]
    heads = [a for a in val.index if configs[a].balance.mode == "baseline" and configs[a].balance.unimodal_weight > 0]
    if plain and heads:
        diff = paired_seeds(_by_seed(table, heads[0], "test_f1"), _by_seed(table, plain[0], "test_f1"))
        out.update({"plain_baseline_f1": float(s.loc[plain[0], "test_f1"]),
                    "heads_baseline_f1": float(s.loc[heads[0], "test_f1"]),
                    "heads_effect": describe(diff, "the unimodal heads raise test macro-F1",
                                             "the unimodal heads lower test macro-F1")})
    else:
        out.update({"plain_baseline_f1": float("nan"), "heads_baseline_f1": float("nan"),
                    "heads_effect": "not measured in this profile (it runs no baseline with unimodal heads)"})
    base = plain[0] if plain else None
    out.update({"baseline_gap": float(gaps.loc[base, "gap_mean_last10"]) if base else float("nan"),
                "baseline_audio_acc": float(gaps.loc[base, "audio_acc"]) if base else float("nan"),
                "baseline_visual_acc": float(gaps.loc[base, "visual_acc"]) if base else float("nan")})
    return out


def seed_claims(table: pd.DataFrame, configs: dict) -> list[dict]:
    """Seed 004's headline claims (``claims.yaml``) as comparisons with each mode's matched baseline over seeds:
    staleness τ 2 has the best macro-F1; frequency k 2 has the lowest utilization gap, at a cost in accuracy."""
    def against(arm: str, col: str) -> Interval | None:
        base = matched_baseline(configs, arm) if arm in configs else None
        return None if base is None else paired_seeds(_by_seed(table, arm, col), _by_seed(table, base, col))

    specs = [("004-staleness-best-f1", "stale_t2", "test_f1", "higher", "staleness τ 2 minus its matched baseline, "
              "test macro-F1"),
             ("004-freq-k2-best-balance", "freq_k2", "gap_mean_last10", "lower", "frequency k 2 minus its matched "
              "baseline, utilization gap (last 10 epochs)"),
             ("004-freq-k2-accuracy-cost", "freq_k2", "test_acc", "lower", "frequency k 2 minus its matched "
              "baseline, test accuracy")]
    out = []
    for claim_id, arm, col, expects, what in specs:
        diff = against(arm, col)
        out.append({"claim_id": claim_id, "diffs": diff, "expects": expects, "what": what} if diff is not None else
                   {"claim_id": claim_id, "why": f"this profile runs no {arm} arm with a matched baseline"})
    return out
