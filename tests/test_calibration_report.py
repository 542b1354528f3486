"""Section 09's report helpers: the bootstrap-interval facts its prose cites."""
import numpy as np
import pandas as pd

from fer_lib.metrics import bootstrap_ci, ece
from fer_lib.report.calibration import interval_facts


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
