"""Notebook parameters (below ``tasks`` and ``report``, which both read them): ``params/<profile>/<section>.yaml``, resolved from the project root."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from .. import paths

PROFILES = ("smoke", "real-cpu", "paper")


def params_file(section: str, profile: str) -> Path:
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {', '.join(PROFILES)}, got {profile!r}")
    return paths.params_dir() / profile / f"{section}.yaml"


class Params(dict):
    """A section's parameters, remembering the file they came from: ``need`` names it when a key is missing."""

    source: Path | None = None

    def need(self, *keys: str) -> None:
        """Raise a ``ConfigError`` naming the file and the keys it lacks (e.g. a ``teachers:`` block)."""
        from .base import ConfigError

        missing = [k for k in keys if k not in self]
        if missing:
            where = str(self.source) if self.source else "the parameters"
            raise ConfigError(f"{where}: no {', '.join(f'`{k}:`' for k in missing)} "
                              f"{'entry' if len(missing) == 1 else 'entries'}; this section needs "
                              f"{', '.join(keys)} (see params/smoke/ for an example of each)")


def load_params(path: str | Path, profile: str | None = None) -> Params:
    """YAML parameters from ``path`` (``{profile}`` is substituted; relative to the project root). A YAML syntax
    error, or a file that is not a mapping, is a ``ConfigError`` naming the file, line and column."""
    from .base import ConfigError

    p = paths.resolve(str(path).format(profile=profile) if profile else str(path))
    if not p.is_file():
        raise FileNotFoundError(f"parameters file not found: {p}")
    try:
        loaded = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{p}: not valid YAML{at}: {problem}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: expected a mapping of parameter names to values, got a {type(loaded).__name__}")
    params = Params(loaded)
    params.source = p
    return params


def use_profile(section: str, namespace: dict) -> dict:
    """Make a notebook's ``profile`` parameter mean that profile's parameters.

    Every parameter still at its smoke default (the value in the notebook's parameters cell) takes the value
    ``params/<profile>/<section>.yaml`` gives it, so ``papermill NB OUT -p profile real-cpu`` alone -- or
    ``profile = 'real-cpu'`` typed into JupyterLab's parameters cell -- runs the real-cpu settings. A value set
    explicitly (``-p``/``-f``, or edited by hand) differs from the smoke default and is kept. Called at the top of
    each notebook with ``globals()``; returns the parameters it changed.

    ``FER_PROFILE`` (``FER_PROFILE=real-cpu make lab``) stands in for a ``profile`` left at its default 'smoke';
    ``fer-report`` sets it to the profile it builds."""
    profile = namespace.get("profile", "smoke")
    if profile == "smoke" and os.environ.get("FER_PROFILE"):
        profile = namespace["profile"] = os.environ["FER_PROFILE"]
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {', '.join(PROFILES)}, got {profile!r} (the notebook's "
                         "`profile` parameter)")
    if profile == "smoke":
        return {}
    smoke, target = load_params(params_file(section, "smoke")), load_params(params_file(section, profile))
    changed = {}
    for name, value in target.items():
        if name != "profile" and name in namespace and namespace[name] == smoke.get(name) and value != smoke.get(name):
            namespace[name] = changed[name] = value
    return changed


def differs_from_profile(section: str, profile: str, params: dict) -> list[str]:
    """The parameters in ``params`` whose values are not those ``params/<profile>/<section>.yaml`` gives (a section
    that claims a profile but ran other settings); [] when they all match."""
    pf = params_file(section, profile)
    if not pf.is_file():
        return []
    expected = load_params(pf)
    return sorted(k for k, v in params.items() if k in expected and expected[k] != v)


def with_seeds(arms: dict, seeds: dict | None, train: dict | None = None) -> dict:
    """``arms`` plus one arm per extra training seed (``seeds: {values: [0, 1, 2], arms: [scratch, v2]}``).

    Each listed arm runs at every seed in ``values``: itself at its own seed (``train.seed`` of the arm, else of
    ``train``, else 0), and ``<arm>/seed<N>`` -- the same arm with ``train.seed: N``, label ``"<label>, seed N"`` -- at
    each other one. Seeds are matched across arms: seed N of two arms starts from the same initialisation and sees the
    data in the same order, so ``fer_lib.metrics.paired_seeds`` compares them. Only names are added: a generated arm
    whose config equals an existing run is that run (one key)."""
    if not seeds:
        return dict(arms)
    from .base import ConfigError

    unknown = set(seeds) - {"values", "arms"}
    missing = [a for a in seeds.get("arms", []) if a not in arms]
    if unknown or missing or not seeds.get("values"):
        raise ConfigError(f"seeds: expected {{values: [seeds], arms: [arm names among {', '.join(arms)}]}}, got "
                          f"{seeds!r}")
    out = dict(arms)
    for name in seeds["arms"]:
        arm = dict(arms[name] or {})
        own = (arm.get("train") or {}).get("seed", (train or {}).get("seed", 0))
        for s in seeds["values"]:
            if s != own:
                out[f"{name}/seed{s}"] = {**arm, "label": f"{arm.get('label', name)}, seed {s}",
                                          "train": {**(arm.get("train") or {}), "seed": s}}
    return out


def arm_and_seed(run_name: str, default_seed: int = 0) -> tuple[str, int]:
    """``("v2", 1)`` for ``"v2/seed1"``; ``("v2", default_seed)`` for ``"v2"`` (the inverse of ``with_seeds``)."""
    arm, _, seed = run_name.rpartition("/seed")
    return (arm, int(seed)) if arm and seed.isdigit() else (run_name, default_seed)


def arm_means(scores: dict[str, float]) -> dict[str, float]:
    """{arm: the mean of its seeds' scores} from {run name: score} (``arm/seedN`` runs join their arm), arms in the
    order they first appear: what a selection among arms reads."""
    by_arm: dict[str, list[float]] = {}
    for name, score in scores.items():
        by_arm.setdefault(arm_and_seed(name)[0], []).append(float(score))
    return {arm: sum(values) / len(values) for arm, values in by_arm.items()}
