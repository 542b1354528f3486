"""Two arms compared the one way every section does: over matched seeds when both ran two or more, else by a
per-sample paired bootstrap of their test split (``fer_lib.metrics.stats``; the sentence then says that the
interval covers test sampling, not training noise).

An arm is ``{training seed: Run}``; ``arm_runs`` groups a section's runs that way.
"""
from __future__ import annotations

import numpy as np

from ..config.params import arm_and_seed
from ..metrics import Interval, paired_bootstrap, paired_bootstrap_values, paired_seeds
from ..runs import Run

Arm = dict[int, Run]


def arm_runs(runs: dict[str, Run], configs: dict) -> dict[str, Arm]:
    """``{"v2": Run, "v2/seed1": Run}`` -> ``{"v2": {0: Run, 1: Run}}``: the arm is the name before ``/seed``, the
    seed the run's training seed (``config.train.seed``)."""
    out: dict[str, Arm] = {}
    for name, run in runs.items():
        out.setdefault(arm_and_seed(name)[0], {})[int(configs[name].train.seed)] = run
    return out


def test_value(run: Run, metric: str) -> float:
    return float(run.metrics["test"][metric])


def _test_predictions(run: Run) -> tuple[np.ndarray, np.ndarray]:
    arrays = run.arrays()
    for scores in ("test_logits", "test_probs"):
        if scores in arrays:
            return arrays["test_labels"], arrays[scores].argmax(1)
    raise KeyError(f"run {run.key} stores no test logits or probabilities (has {sorted(arrays)})")


def compare(a: Arm, b: Arm, metric: str = "accuracy", n_boot: int = 2000) -> Interval:
    """Test ``metric`` of arm A minus arm B.

    - both ran >= 2 common seeds: the mean difference over those seeds and its paired t-interval (training noise);
    - else: the runs of their first common seed (or each arm's first run) by a per-sample paired bootstrap of the
      test split -- accuracy / macro-F1 from the stored predictions, a segmenter's F-score from its per-image
      scores (``test_none_fscore``)."""
    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        return paired_seeds({s: test_value(a[s], metric) for s in common},
                            {s: test_value(b[s], metric) for s in common})
    run_a, run_b = (a[common[0]], b[common[0]]) if common else (next(iter(a.values())), next(iter(b.values())))
    if metric == "fscore":
        return paired_bootstrap_values(run_a.arrays()["test_none_fscore"], run_b.arrays()["test_none_fscore"],
                                       n_boot=n_boot)
    labels_a, pred_a = _test_predictions(run_a)
    labels_b, pred_b = _test_predictions(run_b)
    if not np.array_equal(labels_a, labels_b):
        raise ValueError(f"runs {run_a.key} and {run_b.key} were tested on different samples: no paired comparison")
    return paired_bootstrap(labels_a, pred_a, pred_b, metric, n_boot=n_boot)


def budget_note(diff: Interval) -> str:
    """What the interval of ``compare`` covers, in words, for the sentence that cites it."""
    if diff.method.startswith("paired bootstrap"):
        return ("one run per arm: the interval is a paired bootstrap over the test samples, so it covers test "
                "sampling, not training noise")
    return f"paired over {diff.n} matched training seeds"
