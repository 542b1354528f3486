"""Every "best of" in the report -- best epoch, arm, mode, temperature, ensemble weights -- picks on validation.

``best_on_validation({arm: validation score})`` is the one helper for it. It takes validation scores only: a
``pandas.Series`` or column whose name mentions the test split is refused, and ``tests/test_selection.py`` checks
that each section's selection is unchanged when every test metric of its runs is scrambled (000 selected on test;
this project never does).
"""
from __future__ import annotations

import math
from typing import Mapping

import pandas as pd


class SelectionError(ValueError):
    """A selection was asked to look at test scores, or had nothing to choose from."""


def best_on_validation(val_scores: Mapping[str, float] | pd.Series, lower_is_better: bool = False):
    """The key with the best validation score (the first one on a tie); NaN scores never win."""
    name = str(getattr(val_scores, "name", "") or "")
    if "test" in name.lower():
        raise SelectionError(f"best_on_validation: got scores named {name!r}; select on validation scores only")
    items = [(k, float(v)) for k, v in dict(val_scores).items() if v is not None and not math.isnan(float(v))]
    if not items:
        raise SelectionError("best_on_validation: no finite validation score to choose from")
    sign = -1.0 if lower_is_better else 1.0
    return max(items, key=lambda kv: sign * kv[1])[0]
