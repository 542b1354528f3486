"""Ensemble runs (section 02; seed 000 §6, §9.2-9.5): weights searched on val, stored like any other run.

An ensemble run is keyed by its members' run keys, the members' order, the grid step and the smallest
weight a member may get (``min_weight``; the search space is part of the key),
so sections 08 and 09 get the very ensemble section 02 chose by asking the store again.
It holds ``metrics.json`` (weights, val and test metrics), ``search.csv`` (every grid
point with its val metrics) and ``outputs.npz`` (fused val/test probabilities and labels).

Every parameter is checked before anything is computed, for all of a section's ensembles first: members must be
teachers; fixed weights finite, non-negative and not all zero (checked before normalising); ``step`` in (0, 1]
dividing 1 evenly; ``min_weight`` in [0, 1] and reachable by every member.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..models.ensemble import (ensemble_metrics, fuse_probs, grid_bounds, grid_size, member_probs,
                               normalised_weights, search_weights, select_best)
from ..runs import Run, RunStore, write_json_atomic

KIND = "ensemble"


def check_ensemble(members: list[str], teacher_runs: dict, step, weights=None, min_weight=None,
                   where: str = "") -> None:
    """Raise a ``ConfigError`` naming the parameter (``<where>.members``, ``<where>.weights``, ``step``,
    ``min_weight``) when one ensemble's parameters are invalid."""
    at = f"{where}." if where else ""
    missing = [m for m in members if m not in teacher_runs]
    if not members:
        raise ConfigError(f"{at}members: expected some of {', '.join(teacher_runs)}, got {members!r}")
    if missing:
        raise ConfigError(f"{at}members: {missing} are not teachers; expected some of {', '.join(teacher_runs)}")
    grid_size(step)
    if weights is None:
        grid_bounds(len(members), step, min_weight)
    else:
        normalised_weights(weights, len(members), f"{at}weights")


def ensemble_run(members: list[str], teacher_runs: dict[str, Run], step: float = 0.1,
                 weights: list[float] | None = None, store: RunStore | None = None,
                 min_weight: float | None = None) -> Run:
    """The fused ensemble of ``members`` (names in ``teacher_runs``): weights searched on val over the grid
    (``step``; every weight >= ``min_weight``, default ``step``), or fixed ``weights``."""
    check_ensemble(members, teacher_runs, step, weights, min_weight)
    store = store or RunStore()
    runs = [teacher_runs[m] for m in members]
    config, fingerprint = ensemble_key_parts(members, [r.key for r in runs], step, weights, min_weight)
    min_weight = config["min_weight"]
    classes = runs[0].metrics["classes"]

    def compute(out: Path, scratch: Path) -> None:
        arrays = [r.arrays() for r in runs]
        val = member_probs([a["val_logits"] for a in arrays])
        test = member_probs([a["test_logits"] for a in arrays])
        y_val, y_test = arrays[0]["val_labels"], arrays[0]["test_labels"]
        if weights is None:
            w, table = search_weights(val, y_val, classes, step, min_weight)
            table.to_csv(out / "search.csv", index=False)
        else:
            w = normalised_weights(weights, len(members))
        p_val, p_test = fuse_probs(val, w), fuse_probs(test, w)
        write_json_atomic(out / "metrics.json", {
            "members": members, "weights": [float(x) for x in w], "classes": classes,
            "val": ensemble_metrics(p_val, y_val, classes), "test": ensemble_metrics(p_test, y_test, classes)})
        np.savez(out / "outputs.npz", val_probs=p_val, val_labels=y_val, test_probs=p_test, test_labels=y_test)

    return store.run(KIND, config, fingerprint, compute, trains=False)


def ensemble_key_parts(members: list[str], member_keys: list[str], step: float, weights: list[float] | None = None,
                       min_weight: float | None = None) -> tuple[dict, str]:
    """(config, data fingerprint) that key the ensemble of the runs ``member_keys``: its members' keys stand in for
    data, so the ensemble follows its teachers."""
    config = {"members": members, "member_runs": list(member_keys), "step": step,
              "min_weight": step if min_weight is None else min_weight, "weights": weights}
    return config, "+".join(member_keys)


def ensemble_runs(ensembles: dict[str, dict], teacher_runs: dict[str, Run], step: float = 0.1,
                  store: RunStore | None = None) -> dict[str, Run]:
    """``ensembles``: name -> {members: [...], weights: optional fixed weights}; all checked before the first runs."""
    for name, spec in ensembles.items():
        unknown = set(spec) - {"members", "weights"}
        if unknown:
            raise ConfigError(f"ensembles.{name}: unknown key {sorted(unknown)[0]!r}; expected members, weights")
        check_ensemble(spec.get("members") or [], teacher_runs, step, spec.get("weights"), where=f"ensembles.{name}")
    return {name: ensemble_run(spec["members"], teacher_runs, step, spec.get("weights"), store)
            for name, spec in ensembles.items()}


def choose(runs: dict[str, Run]) -> str:
    """The ensemble the seed's selection order prefers on validation."""
    return select_best({name: r.metrics["val"] for name, r in runs.items()})
