"""Sections 04 and 05: student arms -> tables, curves, temperature and retention figures."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import NullLocator
import numpy as np
import pandas as pd

from ..config.params import arm_and_seed, arm_means
from ..metrics import best_on_validation, describe, fmt_mean_ci, mean_ci, verdict
from ..runs import Run
from .compare import arm_runs, budget_note, compare, test_value


def teacher_table(runs: dict[str, Run], configs: dict) -> pd.DataFrame:
    return pd.DataFrame({n: {"arch": configs[n].model.arch, "params (M)": r.metrics["params"] / 1e6,
                             "test accuracy": r.metrics["test"]["accuracy"],
                             "test macro-F1": r.metrics["test"]["macro_f1"]} for n, r in runs.items()}).T


def arms_table(runs: dict[str, Run], configs: dict) -> pd.DataFrame:
    rows = {}
    for n, r in runs.items():
        c, m = configs[n], r.metrics
        rows[n] = {"method": c.distill.method, "teachers": ", ".join(c.teacher_roles) or "—",
                   "T": c.distill.temperature if c.distill.method != "none" else np.nan,
                   "accuracy": m["test"]["accuracy"], "macro_f1": m["test"]["macro_f1"],
                   "val_accuracy": m["val"]["accuracy"],
                   "retention": m["retention"] if m.get("retention") is not None else np.nan,
                   "best epoch": m["best_epoch"], "epochs run": m["epochs_run"]}
    return pd.DataFrame(rows).T


def arm_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per arm from ``arms_table``'s one row per run (``v2``, ``v2/seed1``, ... join arm ``v2``): the mean over
    the arm's training seeds of every score (what the prose cites), ``seeds`` (n), ``± 95%`` (the half-width of the
    t-interval of the mean test accuracy, ``mean_ci``; missing for one seed) and each seed's best epoch and epochs run
    (one number where the seeds agree)."""
    rows = {}
    for arm, runs in table.groupby(lambda name: arm_and_seed(name)[0], sort=False):
        accuracy = mean_ci(runs["accuracy"].astype(float))
        row = {c: runs[c].iloc[0] for c in ("method", "teachers", "T")}
        row.update({c: float(runs[c].astype(float).mean()) for c in ("accuracy", "macro_f1", "val_accuracy",
                                                                      "retention")})
        row.update({"± 95%": accuracy.half_width if accuracy.n > 1 else np.nan, "seeds": accuracy.n})
        for c in ("best epoch", "epochs run"):
            values = [int(v) for v in runs[c]]
            row[c] = values[0] if len(set(values)) == 1 else ", ".join(map(str, values))
        rows[arm] = row
    return pd.DataFrame(rows).T


def seed_rows(table: dict, keys) -> pd.DataFrame:
    df = pd.DataFrame({k: v for k, v in table.items() if k in keys}).T.drop(columns=["label"], errors="ignore")
    return df.apply(pd.to_numeric, errors="coerce")


def cache_summary(runs: dict[str, Run]) -> dict:
    """How often the teachers ran versus were read back from the teacher-output cache."""
    hits = sum((r.metrics.get("teacher_cache") or {}).get("hits", 0) for r in runs.values())
    misses = sum((r.metrics.get("teacher_cache") or {}).get("misses", 0) for r in runs.values())
    return {"teacher_steps_read": hits, "teacher_steps_run": misses,
            "teacher_cache_share": hits / (hits + misses) if hits + misses else 0.0}


def val_curves(runs: dict[str, Run], labels: dict[str, str], metric: str = "val_accuracy", title: str = "",
               last: int | None = None, ax=None, mark: dict[str, int] | None = None):
    """Validation curves of several arms; ``last`` zooms on the final epochs; ``mark`` flags stop epochs."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.6))
    for n, r in runs.items():
        h = r.history if last is None else r.history.tail(last)
        line, = ax.plot(h["epoch"], h[metric], label=labels.get(n, n), lw=1.6)
        if mark and n in mark:
            ax.axvline(mark[n], color=line.get_color(), ls=":", lw=1)
    ax.set(xlabel="epoch", ylabel=metric.replace("val_", "validation ").replace("_", " "), title=title)
    ax.legend(fontsize=7)
    return ax.figure


def temperature_plot(runs: dict[str, Run], temps: dict[str, float], seed: dict[str, float] | None = None,
                     profile: str = ""):
    """Test accuracy against the distillation temperature (seed 002 Fig. 4)."""
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    order = sorted(temps, key=temps.get)
    xs, ys = [temps[n] for n in order], [runs[n].metrics["test"]["accuracy"] for n in order]
    ax.plot(xs, ys, marker="o", label=f"ours ({profile})")
    for x, y in zip(xs, ys):  # the seed's curve shares the axis: label ours so its small steps still read
        ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    if seed:
        pts = sorted((temps[n], v) for n, v in seed.items() if n in temps and v == v)
        if pts:
            ax.plot(*zip(*pts), marker="s", ls="--", label="seed 002")
    ax.set(xlabel="temperature T", ylabel="test accuracy", xscale="log", xticks=xs)
    ax.set_xticklabels([f"{t:g}" for t in xs])
    ax.xaxis.set_minor_locator(NullLocator())  # no "6x10^0" between the temperatures
    ax.legend(fontsize=8)
    return fig


def retention_bars(table: pd.DataFrame, seed: pd.Series | None, labels: dict[str, str], profile: str):
    """Student / teacher accuracy per distilled arm, ours beside the seed's (seed 003 Fig. 5). Horizontal bars, so
    the arms' long names read; arms without a teacher (retention undefined) are left out."""
    df = pd.DataFrame({f"ours ({profile})": table["retention"].astype(float)})
    if seed is not None:
        df["seed 003"] = seed.reindex(df.index).astype(float)
    df = df.dropna(how="all").iloc[::-1]  # first arm on top
    ax = df.rename(index=labels).plot.barh(figsize=(8, 1.2 + 0.3 * df.size), width=0.75)
    ax.set(xlabel="retention (student acc / teacher acc)", ylabel="")
    ax.axvline(1.0, color="grey", lw=1, ls="--")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=df.shape[1], frameon=False)
    ax.figure.tight_layout()
    return ax.figure


def scratch_comparison(table: pd.DataFrame, runs: dict[str, Run], configs: dict, labels: dict[str, str]) -> dict:
    """The students from scratch (method none, one run per training seed) against the distilled arms. The arm compared
    is the one with the best mean *validation* accuracy (``best_on_validation``); its test accuracy minus the scratch
    student's is compared over matched seeds or, with one run, by a paired bootstrap of the test split
    (``report.compare``). Also counts the distilled arms whose difference from scratch the interval calls a gain."""
    arms = arm_runs(runs, configs)
    method = {arm_and_seed(n)[0]: configs[n].distill.method for n in runs}
    scratch = [a for a in arms if method[a] == "none"]
    scratch_runs = {s: r for a in scratch for s, r in arms[a].items()}
    distilled = [a for a in arms if method[a] != "none"]
    val = arm_val_accuracy(runs)
    best = best_on_validation(val[distilled])
    diff = compare(arms[best], scratch_runs, "accuracy")
    diffs = {a: compare(arms[a], scratch_runs, "accuracy") for a in distilled}
    scratch_ci = mean_ci([test_value(r, "accuracy") for r in scratch_runs.values()])
    return {"scratch_acc": scratch_ci.estimate, "n_scratch": scratch_ci.n, "scratch_ci": fmt_mean_ci(scratch_ci),
            "best_kd": labels[best], "best_kd_val_acc": float(val[best]),
            "best_kd_acc": mean_test_accuracy(arms)[best],
            "kd_vs_scratch": describe(diff, "a gain over the student from scratch",
                                      "a loss against the student from scratch"),
            "kd_vs_scratch_budget": budget_note(diff), "n_kd": len(distilled),
            "n_kd_gain": sum(verdict(d) == "higher" for d in diffs.values()),
            "n_kd_loss": sum(verdict(d) == "lower" for d in diffs.values())}


def mean_test_accuracy(arms: dict[str, dict[int, Run]]) -> dict[str, float]:
    """Mean test accuracy over each arm's seeds (what the prose cites; never what selects)."""
    return {a: float(np.mean([test_value(r, "accuracy") for r in by_seed.values()])) for a, by_seed in arms.items()}


def mean_retention(by_seed: dict[int, Run]) -> float:
    """An arm's student / teacher test accuracy, averaged over its training seeds."""
    return float(np.mean([r.metrics["retention"] for r in by_seed.values()]))


def arm_val_accuracy(runs: dict[str, Run]) -> pd.Series:
    """Mean validation accuracy over each arm's seeds: what every selection in sections 04 and 05 reads."""
    return pd.Series(arm_means({name: run.metrics["val"]["accuracy"] for name, run in runs.items()}),
                     name="val_accuracy")


def kd_headline(table: pd.DataFrame, runs: dict[str, Run], configs: dict, labels: dict[str, str]) -> dict:
    """Numbers section 04's prose cites: the single- and the multi-teacher arm each picked on validation accuracy,
    and dropping CE from Method 3 (three ResNets) as a paired comparison."""
    arms = arm_runs(runs, configs)
    method = {arm_and_seed(n)[0]: configs[n].distill.method for n in runs}
    val = arm_val_accuracy(runs)
    single = [a for a in arms if method[a] == "kd"]
    multi = [a for a in arms if method[a] not in ("kd", "none")]
    best_single, best_multi = best_on_validation(val[single]), best_on_validation(val[multi])
    mean_acc = mean_test_accuracy(arms)
    out = {**scratch_comparison(table, runs, configs, labels), "best_single": labels[best_single],
           "best_single_acc": mean_acc[best_single], "best_multi": labels[best_multi],
           "best_multi_acc": mean_acc[best_multi]}
    if "m3_resnets_no_ce" in arms and "m3_resnets" in arms:
        out["no_ce_effect"] = describe(compare(arms["m3_resnets_no_ce"], arms["m3_resnets"], "accuracy"),
                                       "a gain", "a loss")
    else:
        out["no_ce_effect"] = "not run in this profile"
    return out


def still_improving(runs: dict[str, Run]) -> int:
    """How many runs picked their last epoch (validation still rising when training stopped)."""
    return sum(int(r.metrics["best_epoch"]) >= int(r.metrics["epochs_run"]) for r in runs.values())


def ordering_by_epoch(runs: dict[str, Run], names: list[str], metric: str = "val_accuracy") -> list[tuple[str, ...]]:
    """Per epoch, ``names`` ordered by ``metric`` (best first)."""
    curves = pd.DataFrame({n: runs[n].history.set_index("epoch")[metric] for n in names})
    return [tuple(curves.columns[np.argsort(-row.to_numpy(), kind="stable")]) for _, row in curves.iterrows()]


def dkd_headline(table: pd.DataFrame, sruns: dict[str, Run], truns: dict[str, Run], configs: dict,
                 labels: dict[str, str]) -> dict:
    """Numbers section 05's prose cites; every difference through ``report.compare`` with its verdict."""
    arms = arm_runs(sruns, configs)
    mean_acc = mean_test_accuracy(arms)

    def effect(a: str, b: str, up: str, down: str) -> str:
        return describe(compare(arms[a], arms[b], "accuracy"), up, down)

    order = ordering_by_epoch(sruns, ["v2", "v3", "v3_1"])
    return {**scratch_comparison(table, sruns, configs, labels), "v2_acc": mean_acc["v2"],
            "v2_ret": mean_retention(arms["v2"]), "v3_acc": mean_acc["v3"], "v3_1_acc": mean_acc["v3_1"],
            "v3_ret": mean_retention(arms["v3"]),
            "beta_effect": effect("v3_1", "v3", "β 2 above β 8", "β 2 below β 8"),
            "dkd_vs_kd": effect("v3", "v2", "DKD (β 8) above KD", "DKD (β 8) below KD"),
            "dkd2_vs_kd": effect("v3_1", "v2", "DKD (β 2) above KD", "DKD (β 2) below KD"),
            "v4_effect": effect("v4", "v2", "the stronger teacher helps", "the stronger teacher hurts"),
            "aug_effect": effect("v2", "v1", "AutoAugment+ helps", "AutoAugment+ hurts"),
            "n_still_improving": still_improving(sruns), "n_runs": len(sruns),
            "ordering_last": " > ".join(labels[n] for n in order[-1]),
            "ordering_settled": ("the same as one epoch before" if len(order) > 1 and order[-1] == order[-2]
                                 else "different from one epoch before: it is still changing"),
            "teacher_acc": truns["teacher"].metrics["test"]["accuracy"],
            "strong_teacher_acc": truns["teacher_strong"].metrics["test"]["accuracy"]}


def teachers_read(students: dict[str, Run], configs: dict, teachers: dict[str, Run]) -> str:
    """Whether the distilled students read the teachers the page's table shows, in words. A student trained after
    its teachers were published read a teacher trained again for its weights (same key and recipe; published runs
    carry none), which on another machine need not equal the published training: the student recorded the test
    accuracy of the teacher it read (``teacher_test_accuracy``), compared here with the table's."""
    gaps, unrecorded = {}, []
    for name, run in students.items():
        shown = [teachers[role].metrics["test"]["accuracy"] for role in configs[name].teacher_roles]
        if shown:
            read = run.metrics.get("teacher_test_accuracy") or []
            if len(read) != len(shown):  # not recorded (or not per teacher): cannot be compared
                unrecorded.append(name)
                continue
            gaps[name] = max(abs(a - b) for a, b in zip(read, shown))
    differing = {n: g for n, g in gaps.items() if g != 0}
    total = len(gaps) + len(unrecorded)
    unknown = (f"; {len(unrecorded)} did not record the teachers they read ({', '.join(sorted(unrecorded))})"
               if unrecorded else "")
    if not total:
        return "no student here reads a teacher"
    if not differing:
        lead = f"{len(gaps)} of the {total}" if unrecorded else f"all {total}"
        return f"{lead} distilled students read teachers with the test accuracy the table shows{unknown}"
    return (f"{len(differing)} of the {total} distilled students read a teacher trained again for its weights "
            "that is not the published training the table shows (same key and recipe, trained on another machine): "
            f"its test accuracy differs from the table's by up to {max(differing.values()):.3f}{unknown}")


def initialisation(configs: dict) -> str:
    """How the teachers of ``configs`` start, in words (the seed is silent for 002's teachers: the text says what
    this profile chose)."""
    from ..models.weights import weights_of

    return "; ".join(f"{c.name}: {weights_of(c.model).words}" for c in configs.values())


def _claim(claim_id: str, arms: dict, pairs: list[tuple[str, str]], expects: str, what: str) -> dict:
    """A claim comparing arm pairs (A minus B test accuracy), or why this profile cannot test it."""
    missing = sorted({a for pair in pairs for a in pair if a not in arms})
    if missing:
        return {"claim_id": claim_id, "why": f"this profile runs no {', '.join(missing)} arm"}
    return {"claim_id": claim_id, "diffs": [compare(arms[a], arms[b], "accuracy") for a, b in pairs],
            "expects": expects, "what": what}


def kd_claims(runs: dict[str, Run], configs: dict) -> list[dict]:
    """Seed 002's headline claims on this build's runs (test accuracy, A minus B): single-teacher KD beats scratch;
    DenseNet single-teacher KD beats the best multi-teacher method (picked on validation); Method 3 at T 8 beats T 4."""
    arms = arm_runs(runs, configs)
    method = {arm_and_seed(n)[0]: configs[n].distill.method for n in runs}
    val = arm_val_accuracy(runs)
    scratch = {s: r for a in arms if method[a] == "none" for s, r in arms[a].items()}
    single = [a for a in arms if method[a] == "kd"]
    multi = [a for a in arms if method[a] not in ("kd", "none")]
    out = [_claim("002-kd-beats-scratch", {**arms, "scratch": scratch}, [(best_on_validation(val[single]), "scratch")],
                  "higher", "best single-teacher KD (on validation) minus scratch, test accuracy")]
    out.append(_claim("002-densenet-single-beats-multi", arms, [("kd_densenet", best_on_validation(val[multi]))],
                      "higher", "DenseNet single-teacher KD minus the best multi-teacher arm (on validation)"))
    out.append(_claim("002-method3-temp8", arms, [("m3_t8", "m3_t4")], "higher", "Method 3 at T 8 minus T 4"))
    return out


def dkd_claims(runs: dict[str, Run], configs: dict) -> list[dict]:
    """Seed 003's headline claims on this build's runs (test accuracy, A minus B): KD (v2) beats both DKD arms; DKD
    at β 8 falls below β 2; the stronger teacher (v4) ties v2."""
    arms = arm_runs(runs, configs)
    return [_claim("003-kd-beats-dkd", arms, [("v2", "v3"), ("v2", "v3_1")], "higher",
                   "KD (v2) minus DKD β 8 (v3); minus DKD β 2 (v3.1)"),
            _claim("003-dkd-beta8-collapse", arms, [("v3", "v3_1")], "lower", "DKD β 8 minus β 2"),
            _claim("003-capacity-saturation", arms, [("v4", "v2")], "equal", "stronger teacher (v4) minus v2")]
