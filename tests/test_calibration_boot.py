"""Each vectorised resample metric equals the plain metric on the resampled arrays."""
from __future__ import annotations

import numpy as np
import pytest

from fer_lib.metrics import CALIBRATION_METRICS, softmax
from fer_lib.metrics.calibration_boot import CALIBRATION_ROWS


@pytest.mark.parametrize("name", sorted(CALIBRATION_METRICS))
def test_rows_equal_the_metric_on_each_resample(name):
    rng = np.random.default_rng(4)
    n = 403  # not a multiple of the 15 bins: adaptive ECE's chunks differ in size
    labels = rng.integers(0, 7, n)
    probs = softmax(rng.normal(size=(n, 7)) * 2.5)
    idx = rng.integers(0, n, size=(6, n))
    weights = np.stack([np.bincount(i, minlength=n) for i in idx]).astype(float)
    rows = CALIBRATION_ROWS[name](weights, probs, labels)
    plain = CALIBRATION_METRICS[name]
    for r, i in enumerate(idx):
        ref = plain(probs[i], labels[i]) if name in ("brier", "nll") else plain(probs[i], labels[i], 15)
        assert rows[r] == pytest.approx(ref, abs=1e-10), (name, r)
