"""Percentile bootstrap confidence intervals for any metric of paired arrays."""
from __future__ import annotations

from typing import Callable

import numpy as np


def bootstrap_ci(stat: Callable[..., float], *arrays, n_boot: int = 1000, ci: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """(statistic on the full sample, lower, upper) of the ``ci`` percentile interval.

    Each resample draws N indices with replacement and applies them to every array.
    """
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    boots = np.array([stat(*(a[idx] for a in arrays)) for idx in rng.integers(0, n, size=(n_boot, n))])
    lo, hi = np.quantile(boots, [(1 - ci) / 2, (1 + ci) / 2])
    return float(stat(*arrays)), float(lo), float(hi)
