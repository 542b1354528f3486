"""Compute versions: one per kind of run, part of every run's key.

A run's key hashes its kind, its config, its data fingerprint and the compute version of its kind -- not
``fer_lib.__version__`` -- so a release that changes how students are trained orphans the student runs and
nothing else. Bump a kind's number when what that kind *computes* changes for an unchanged config (a new
default inside the training loop, a fixed bug in its metric); a new choice a user can make belongs in the
config instead, where it changes only the runs that make it.

A run that reads the runs of another kind (a student distils teachers it trains or reads first) declares so with
``reads``: its key then also hashes that kind's version, because a teacher computed differently teaches differently.
A student trained from scratch reads nothing, and keeps its key when the teacher version moves. An ensemble names
its members' keys in its fingerprint, so it follows them without a ``reads``.
"""
from __future__ import annotations

COMPUTE_VERSIONS: dict[str, int] = {
    "teacher": 1,    # fer_lib.tasks.teacher: FER teachers (sections 01, 03, and 04/05's own teachers)
    "student": 1,    # fer_lib.tasks.distill: students from scratch or distilled (04, 05)
    "segmenter": 1,  # fer_lib.tasks.segment: face parsers (06)
    "av": 1,         # fer_lib.tasks.av: audio-visual classifiers (07)
    "ensemble": 1,   # fer_lib.tasks.ensemble: weighted fusions of teachers (02)
}


def compute_version(kind: str, reads: tuple[str, ...] = (), versions: dict[str, int] | None = None) -> dict[str, int]:
    """The versions a run of ``kind`` that reads runs of the kinds ``reads`` is keyed on: ``{kind: n, ...}``."""
    versions = COMPUTE_VERSIONS if versions is None else versions
    missing = [k for k in (kind, *reads) if k not in versions]
    if missing:
        raise KeyError(f"no compute version for run kind(s) {missing}: add them to "
                       f"fer_lib.runs.versions.COMPUTE_VERSIONS (known: {', '.join(versions)})")
    return {k: versions[k] for k in sorted({kind, *reads})}
