"""The Claims page's verdict rule, its table, and selections that cannot see test metrics (issue: findings that hold)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fer_lib.metrics import Interval
from fer_lib.report.claims import VERDICTS, claims_table, judge, load_claims, verdict_counts


def iv(est, low, high):
    return Interval(est, low, high, 3, "paired t over seeds")


def test_judge_follows_the_interval_and_the_direction_the_seed_asserts():
    assert judge(iv(0.05, 0.01, 0.09), "higher") == "confirmed"
    assert judge(iv(-0.05, -0.09, -0.01), "higher") == "contradicted"
    assert judge(iv(0.05, -0.01, 0.11), "higher") == "not detectable at this budget"
    assert judge(iv(-0.05, -0.09, -0.01), "lower") == "confirmed"
    # a claim about two models: one contradiction is enough, confirmation needs both
    assert judge([iv(0.05, 0.01, 0.09), iv(-0.05, -0.09, -0.01)], "higher") == "contradicted"
    assert judge([iv(0.05, 0.01, 0.09), iv(0.05, -0.01, 0.11)], "higher") == "not detectable at this budget"
    # a claimed tie can only be contradicted
    assert judge(iv(0.0, -0.01, 0.01), "equal") == "not detectable at this budget"
    assert judge(iv(0.02, 0.01, 0.03), "equal") == "contradicted"
    assert judge(Interval(0.3, -math.inf, math.inf, 1, "one run"), "higher") == "not detectable at this budget"
    with pytest.raises(ValueError):
        judge(iv(0.1, 0.0, 0.2), "bigger")


def test_claims_file_has_at_least_three_claims_per_seed_and_the_table_marks_unrecorded_ones():
    claims = load_claims()
    per_seed = pd.Series([c["seed"] for c in claims]).value_counts()
    assert set(per_seed.index) == {"000", "001", "002", "003", "004"} and per_seed.min() >= 3 and len(claims) >= 15
    assert len({c["id"] for c in claims}) == len(claims)
    first = claims[0]["id"]
    table = claims_table(claims, {first: {"id": first, "ours": "x", "setting": "s", "verdict": "confirmed"}})
    counts = verdict_counts(table)
    assert counts == {"confirmed": 1, "contradicted": 0, "not detectable at this budget": 0,
                      "not testable here": len(claims) - 1}
    assert set(counts) == set(VERDICTS)
    assert "did not record it" in table["verdict"].iloc[1]


# ----------------------------------------------------------------------------- selection is blind to test
class AVRun:
    def __init__(self, val_f1, test_f1):
        epochs = np.arange(1, 4)
        self.metrics = {"best_epoch": 3, "val": {"macro_f1": val_f1},
                        "test": {"macro_f1": test_f1, "accuracy": test_f1, "audio_accuracy": 0.3, "visual_accuracy": 0.2},
                        "final": {"test_macro_f1": test_f1, "test_accuracy": test_f1}}
        self.history = pd.DataFrame({"epoch": epochs, "test_macro_f1": [test_f1] * 3, "train_accuracy": [0.5, 0.6, 0.7],
                                     "train_loss": [1.0, 0.9, 0.8], "util_gap": [0.2, 0.1, 0.1]})


def _av_config(mode, weight, seed):
    balance = {"mode": mode, "k": 2, "tau": 2, "k_max": 4, "gap_per_step": 0.05, "alpha": 0.8,
               "unimodal_weight": weight, "dominant": "audio"}
    return SimpleNamespace(balance=SimpleNamespace(**balance),
                           key_dict=lambda: {"balance": dict(balance), "train": {"seed": seed}})


def test_07_best_mode_is_the_validation_argmax_and_test_scores_cannot_move_it():
    from fer_lib.report.av_balance import headline, per_seed

    spec = {"baseline": ("baseline", 0.0), "baseline_uni": ("baseline", 4.0), "freq_k2": ("frequency", 4.0),
            "stale_t2": ("staleness", 4.0)}
    configs = {a: _av_config(m, w, 0) for a, (m, w) in spec.items()}
    labels = {a: a for a in spec}
    val = {"baseline": 0.40, "baseline_uni": 0.50, "freq_k2": 0.48, "stale_t2": 0.52}
    rng = np.random.default_rng(0)
    for trial in range(4):  # any test numbers: the pick and its matched baseline stay
        runs = {a: {s: AVRun(val[a] + 0.01 * s, float(rng.random())) for s in range(3)} for a in spec}
        h = headline(per_seed(runs), labels, configs)
        assert h["best_mode"] == "stale_t2" and h["matched_baseline"] == "baseline_uni"


def test_06_ranking_and_publish_selection_read_validation_only():
    from fer_lib.report.segmentation import ranking
    from fer_lib.tasks.segment import selected_arm

    class SegRun:
        def __init__(self, val, test):
            self.metrics = {"val": {"fscore": val, "miou": 0.5}, "test": {"fscore": test}, "best_epoch": 3}

    configs = {n: SimpleNamespace(train=SimpleNamespace(seed=s)) for n, s in
               [("a", 0), ("a/seed1", 1), ("b", 0), ("b/seed1", 1)]}
    for test in ([0.9, 0.9, 0.1, 0.1], [0.1, 0.1, 0.9, 0.9]):
        runs = {n: SegRun(v, t) for n, v, t in zip(configs, [0.70, 0.72, 0.71, 0.69], test)}
        assert ranking(runs, configs).index[0] == "a"  # mean val 0.71 against 0.70
        assert selected_arm(runs) == "a"
