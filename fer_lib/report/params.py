"""Notebook parameters: ``params/<profile>/<section>.yaml``, resolved from the project root."""
from __future__ import annotations

from pathlib import Path

import yaml

from .. import paths

PROFILES = ("smoke", "real-cpu", "paper")


def params_file(section: str, profile: str) -> Path:
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {', '.join(PROFILES)}, got {profile!r}")
    return paths.project_root() / "params" / profile / f"{section}.yaml"


def load_params(path: str | Path, profile: str | None = None) -> dict:
    """YAML parameters from ``path`` (``{profile}`` is substituted; relative to the project root)."""
    p = paths.resolve(str(path).format(profile=profile) if profile else str(path))
    if not p.is_file():
        raise FileNotFoundError(f"parameters file not found: {p}")
    return yaml.safe_load(p.read_text()) or {}
