"""Section 09's report helpers: the bootstrap-interval facts its prose cites."""
import numpy as np
import pandas as pd

from fer_lib.metrics import bootstrap_ci, ece
from fer_lib.metrics.stats import NOT_DETECTABLE
from fer_lib.report.calibration import interval_facts, scaling_effects, scaling_facts


def test_interval_facts_counts_intervals_wholly_above_or_below_their_estimate():
    study = pd.DataFrame([
        {"metric": "ece", "value": 0.02, "lo": 0.025, "hi": 0.03},       # above
        {"metric": "ece", "value": 0.02, "lo": 0.015, "hi": 0.03},       # contains
        {"metric": "mce", "value": 0.20, "lo": 0.21, "hi": 0.40},        # above
        {"metric": "nll", "value": 1.00, "lo": 0.90, "hi": 0.99},        # below
        {"metric": "brier", "value": 0.50, "lo": 0.50, "hi": 0.52},      # on the edge: contains
    ])
    assert interval_facts(study) == {"n_ci": 5, "n_ci_above": 2, "n_ci_below": 1, "ci_above_metrics": "ece, mce"}
    assert interval_facts(study.iloc[[1, 4]])["ci_above_metrics"] == "none"


def test_binned_ece_is_biased_upward_on_bootstrap_resamples():
    """The reason interval_facts exists: on perfectly calibrated predictions (labels drawn from the predicted
    probabilities) the resamples' ECE sits above the full sample's, so the percentile interval can miss it."""
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7) * 0.5, size=600)
    y = np.array([rng.choice(7, p=row) for row in p])
    value, lo, hi = bootstrap_ci(lambda q, t: ece(q, t, 15), p, y, n_boot=300, seed=0)
    assert (lo + hi) / 2 > value


def _model(rng, n: int, sharpness: float) -> dict:
    """Logits whose labels are drawn from softmax(logits), then sharpened by ``sharpness`` (> 1: over-confident)."""
    logits = rng.normal(scale=2.0, size=(n, 7))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(7, p=row) for row in probs])
    return logits * sharpness, labels


def test_scaling_effects_say_lower_only_where_the_paired_interval_excludes_zero():
    """An over-confident model (logits x3, fitted T near 3) gets a lower test ECE from every fitted map; a
    calibrated one (T near 1) gets no detectable change from the temperatures. The counts are the glued words."""
    rng = np.random.default_rng(0)
    outputs = {}
    for name, sharpness in (("overconfident", 3.0), ("calibrated", 1.0)):
        val_logits, val_labels = _model(rng, 1500, sharpness)
        test_logits, test_labels = _model(rng, 1500, sharpness)
        outputs[name] = dict(val_logits=val_logits, val_labels=val_labels, test_logits=test_logits,
                             test_labels=test_labels)
    effects = scaling_effects(outputs, n_boot=300).set_index(["model", "method"])
    assert effects.loc[("overconfident", "fitted T"), "verdict"] == "lower"
    assert effects.loc[("overconfident", "fitted T"), "diff"].high < 0
    assert effects.loc[("calibrated", "fitted T"), "verdict"] == NOT_DETECTABLE
    facts = scaling_facts(effects.reset_index())
    assert facts["ece_change_fitted_T"] == "lower for 1 of 2, higher for 0, no difference detectable for the other 1"
    assert set(facts) == {"ece_change_grid_Tstar", "ece_change_fitted_T", "ece_change_vector_scaling"}
