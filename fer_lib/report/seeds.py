"""The seeds' reported numbers, as data (``seed_results/*.yaml``), for seed-beside-ours tables."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

_DIR = Path(__file__).with_name("seed_results")


@lru_cache(maxsize=None)
def seed_results(seed: str) -> dict:
    """Numbers of seed ``seed`` (e.g. ``"000"``) keyed by table."""
    path = _DIR / f"{seed}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no transcribed results for seed {seed!r} in {_DIR}")
    return yaml.safe_load(path.read_text())
