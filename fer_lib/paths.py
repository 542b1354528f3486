"""Where things live: project root, run store, data cache, report artifacts.

Notebooks may be executed from any working directory (``papermill nb.ipynb OUT.ipynb``),
so relative paths in parameters are resolved against the project root, never the CWD.
Environment variables override the defaults:

- ``FER_PARAMS``          section parameters        (default ``<project>/params``: ``<profile>/<section>.yaml``)
- ``FER_RUNS``            run store root            (default ``<project>/runs``)
- ``FER_TEACHER_OUTPUTS`` teacher-output cache      (default ``<run store>/teacher_outputs``)
- ``FER_RESULTS``         published run tiers, read-only (default every ``<project>/results/<profile>/``;
                          several paths separated by ``os.pathsep``)
- ``FER_CACHE``           decoded-dataset cache     (default ``<project>/.cache``)
- ``FER_REPORT_DIR``      report artifacts          (default ``<project>/book/_artifacts``)
"""
from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def project_root() -> Path:
    """The repository root when fer_lib runs from a checkout, else the user's cache dir."""
    root = _PKG.parent
    if (root / "pyproject.toml").exists() and (root / "notebooks").is_dir():
        return root
    return Path.home() / ".cache" / "fer_lib"


def resolve(path: str | os.PathLike | None) -> Path | None:
    """Absolute path; relative ones are taken from the project root."""
    if path is None:
        return None
    p = Path(os.path.expanduser(str(path)))
    return p if p.is_absolute() else (project_root() / p).resolve()


def params_dir() -> Path:
    """Where each profile's section parameters live (``<profile>/<section>.yaml``)."""
    return Path(os.environ.get("FER_PARAMS") or project_root() / "params")


def runs_dir() -> Path:
    return Path(os.environ.get("FER_RUNS") or project_root() / "runs")


def results_dir() -> Path:
    """Where ``fer-runs publish`` writes the published results of each profile (``<project>/results``)."""
    return project_root() / "results"


def published_roots() -> list[Path]:
    """The published tiers the default store reads after the local one."""
    if os.environ.get("FER_RESULTS") is not None:
        return [Path(p) for p in os.environ["FER_RESULTS"].split(os.pathsep) if p]
    root = results_dir()
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def teacher_outputs_dir(runs_root: Path | None = None) -> Path:
    """Where distillation runs cache their teachers' logits (large in the paper profile: put it on a big disk)."""
    return Path(os.environ.get("FER_TEACHER_OUTPUTS") or Path(runs_root or runs_dir()) / "teacher_outputs")


def cache_dir() -> Path:
    return Path(os.environ.get("FER_CACHE") or project_root() / ".cache")


def report_dir() -> Path:
    return Path(os.environ.get("FER_REPORT_DIR") or project_root() / "book" / "_artifacts")
