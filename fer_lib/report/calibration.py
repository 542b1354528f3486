"""Section 09: calibration before/after post-hoc scaling, fitted on val and reported on test.

Methods per model: ``none`` (T = 1), ``grid T*`` (seed 000 §8.3: T in 0.80..1.20 step 0.02,
min NLL, tie-break ECE), ``fitted T`` (unconstrained NLL minimum), ``vector scaling``
(per-class scale and bias; seed §10.1 future work). Every test metric carries a percentile
bootstrap 95% interval, all resamples computed at once (``fer_lib.metrics.calibration_boot``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics.calibration_boot import CALIBRATION_ROWS
from ..metrics.stats import paired_bootstrap_ece, resample_weights, verdict
from ..metrics import (CALIBRATION_METRICS, SEED_GRID, apply_vector_scaling, fit_temperature,
                       fit_vector_scaling, reliability_bins, select_temperature, softmax, temperature_sweep)

METHODS = ("none", "grid T*", "fitted T", "vector scaling")


def calibrators(val_logits: np.ndarray, val_labels: np.ndarray, grid=SEED_GRID) -> dict:
    """Each method's map from logits to probabilities, fitted on val; and its T where it has one."""
    t_grid = select_temperature(temperature_sweep(val_logits, val_labels, grid))
    t_fit = fit_temperature(val_logits, val_labels)
    w, b = fit_vector_scaling(val_logits, val_labels)
    return {
        "none": (1.0, lambda z: softmax(z)),
        "grid T*": (t_grid, lambda z: softmax(z, t_grid)),
        "fitted T": (t_fit, lambda z: softmax(z, t_fit)),
        "vector scaling": (np.nan, lambda z: softmax(apply_vector_scaling(z, w, b))),
    }


def _metric(name):
    fn = CALIBRATION_METRICS[name]
    return (lambda p, y: fn(p, y)) if name in ("brier", "nll") else (lambda p, y: fn(p, y, 15))


def calibration_study(outputs: dict[str, dict], n_boot: int = 1000, seed: int = 0, grid=SEED_GRID) -> pd.DataFrame:
    """Long table: model, method, T, metric, value, lo, hi (test split; maps fitted on val)."""
    rows = []
    for model, a in outputs.items():
        counts = resample_weights(len(a["test_labels"]), n_boot, seed)  # one set of resamples per test split
        for method, (t, to_probs) in calibrators(a["val_logits"], a["val_labels"], grid).items():
            p, y = to_probs(a["test_logits"]), a["test_labels"]
            for metric in CALIBRATION_METRICS:
                lo, hi = np.quantile(CALIBRATION_ROWS[metric](counts, p, y), [0.025, 0.975])
                rows.append({"model": model, "method": method, "T": t, "metric": metric,
                             "value": _metric(metric)(p, y), "lo": float(lo), "hi": float(hi)})
    return pd.DataFrame(rows)


def wide(study: pd.DataFrame, with_ci: bool = True) -> pd.DataFrame:
    """Rows (model, method), columns = metrics; cells 'value [lo, hi]' when ``with_ci``."""
    s = study.copy()
    s["cell"] = (s["value"].map("{:.4f}".format) + " [" + s["lo"].map("{:.3f}".format) + ", "
                 + s["hi"].map("{:.3f}".format) + "]") if with_ci else s["value"]
    out = s.pivot_table(index=["model", "method"], columns="metric", values="cell", aggfunc="first", sort=False)
    t = s.drop_duplicates(["model", "method"]).set_index(["model", "method"])["T"]
    out.insert(0, "T", t.map(lambda x: "—" if np.isnan(x) else f"{x:.2f}"))
    return out[["T", *CALIBRATION_METRICS]]


def interval_facts(study: pd.DataFrame) -> dict:
    """How many bootstrap intervals of ``study`` lie wholly above (or below) their own estimate, and for which metrics.

    Binned calibration errors are biased upward (|accuracy - confidence| of a noisy bin is positive on average), and
    more so on a bootstrap resample, whose duplicated images leave fewer distinct ones per bin: the percentile
    interval of such a metric can sit entirely above the full-sample estimate. The section says so with these counts.
    """
    above, below = study["value"] < study["lo"], study["value"] > study["hi"]
    metrics = [m for m in CALIBRATION_METRICS if (above & (study["metric"] == m)).any()]
    return {"n_ci": int(len(study)), "n_ci_above": int(above.sum()), "n_ci_below": int(below.sum()),
            "ci_above_metrics": ", ".join(metrics) if metrics else "none"}


def value(study: pd.DataFrame, model: str, method: str, metric: str) -> float:
    q = study[(study.model == model) & (study.method == method) & (study.metric == metric)]
    return float(q["value"].iloc[0])


def reliability(outputs: dict[str, dict], model: str, grid=SEED_GRID, n_bins: int = 15) -> dict[str, pd.DataFrame]:
    """Reliability bins on test before and after the fitted temperature."""
    a = outputs[model]
    cal = calibrators(a["val_logits"], a["val_labels"], grid)
    t = cal["fitted T"][0]
    return {"T = 1": reliability_bins(softmax(a["test_logits"]), a["test_labels"], n_bins),
            f"T = {t:.2f} (fitted on val)": reliability_bins(softmax(a["test_logits"], t), a["test_labels"], n_bins)}


def sweeps(outputs: dict[str, dict], temperatures=np.round(np.arange(0.5, 3.01, 0.05), 2), split: str = "test"):
    """ECE/NLL against T on ``split`` for the ECE-vs-T figure."""
    return {m: temperature_sweep(a[f"{split}_logits"], a[f"{split}_labels"], temperatures) for m, a in outputs.items()}


def seed_rows(study: pd.DataFrame, runs: dict, method: str = "grid T*") -> pd.DataFrame:
    """Our rows for seed 000 Table 9.8: test accuracy and macro-F1, and ECE/Brier/NLL/T at ``method``."""
    rows = {}
    for model, r in runs.items():
        q = study[(study.model == model) & (study.method == method)].set_index("metric")["value"]
        rows[model] = {"accuracy": r.metrics["test"]["accuracy"], "macro_f1": r.metrics["test"]["macro_f1"],
                       "ece": q["ece"], "brier": q["brier"], "nll": q["nll"],
                       "T": study[(study.model == model) & (study.method == method)]["T"].iloc[0]}
    return pd.DataFrame(rows).T


def scaling_effects(outputs: dict[str, dict], n_boot: int = 1000, seed: int = 0, grid=SEED_GRID) -> pd.DataFrame:
    """Per model and scaling method: test ECE(method) - ECE(T = 1), its paired bootstrap interval over the test
    images (the map is fitted on val, so the interval covers test sampling only) and its verdict word."""
    rows = []
    for model, a in outputs.items():
        maps = calibrators(a["val_logits"], a["val_labels"], grid)
        unscaled = maps["none"][1](a["test_logits"])
        for method in METHODS[1:]:
            diff = paired_bootstrap_ece(a["test_labels"], maps[method][1](a["test_logits"]), unscaled,
                                        n_boot=n_boot, seed=seed)
            rows.append({"model": model, "method": method, "diff": diff, "verdict": verdict(diff)})
    return pd.DataFrame(rows)


def scaling_facts(effects: pd.DataFrame) -> dict:
    """``ece_change_<method>``: how many models' test ECE the method lowers, raises, or moves undetectably."""
    out = {}
    for method, rows in effects.groupby("method", sort=False):
        counts = rows["verdict"].value_counts()
        slug = method.replace(" ", "_").replace("*", "star")
        out[f"ece_change_{slug}"] = (f"lower for {counts.get('lower', 0)} of {len(rows)}, higher for "
                                     f"{counts.get('higher', 0)}, no difference detectable for the other "
                                     f"{len(rows) - counts.get('lower', 0) - counts.get('higher', 0)}")
    return out


def headline(study: pd.DataFrame, grid=SEED_GRID) -> dict:
    """Numbers the section's prose cites."""
    ece = study[study.metric == "ece"].pivot_table(index="model", columns="method", values="value")
    t = study.drop_duplicates(["model", "method"]).pivot_table(index="model", columns="method", values="T")
    at_edge = t["grid T*"].isin([min(grid), max(grid)])
    return {"n_models": len(ece), "ece_before": ece["none"].mean(), "ece_grid": ece["grid T*"].mean(),
            "ece_fitted": ece["fitted T"].mean(), "ece_vector": ece["vector scaling"].mean(),
            "n_grid_edge": int(at_edge.sum()), "t_fit_min": t["fitted T"].min(), "t_fit_max": t["fitted T"].max(),
            "best_method": str(ece.mean().idxmin())}
