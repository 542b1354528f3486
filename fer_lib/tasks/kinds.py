"""The registry of run kinds: what each kind of run loads, trains and reads.

An entry names the kind (the run store's folder and the key's compute version, ``fer_lib.runs.versions``), the
function that loads its data from a section's ``data:`` parameters, the function that trains (or reads back) one
run, and the kinds of run a run of it reads (a distilled student reads teachers, so its key also hashes the
teacher version). ``fer-train``, the paper check (``fer-report --check``), ``fer-runs`` and the sweep planner all
dispatch through it. Adding a kind is one module with its task and trainer and one ``register_run_kind`` call
(CONTRIBUTING.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..runs.versions import COMPUTE_VERSIONS


def reads_nothing(cfg) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class RunKind:
    name: str
    load_data: Callable[[dict], Any]          # a section's data parameters -> the dataset its runs train on
    train: Callable[..., Any]                 # train(cfg, store=, data=, env=, progress=) -> Run
    reads: Callable[[Any], tuple[str, ...]] = reads_nothing  # the kinds of run a run with config cfg reads
    metric: str = "accuracy"                  # the test metric fer-train prints
    models: Callable[[Any], list] = lambda cfg: []  # (role, model config, input shape, classes) of what a run builds
    trains: bool = True                       # False: computed in seconds from stored runs, never scheduled


RUN_KINDS: dict[str, RunKind] = {}


def register_run_kind(kind: RunKind, version: int | None = None) -> RunKind:
    """Register ``kind``; a new kind gives its compute version (1 to start), a built-in one has it in
    ``COMPUTE_VERSIONS`` already."""
    if kind.name in RUN_KINDS:
        raise ValueError(f"run kind {kind.name!r} is registered twice")
    if version is not None:
        if COMPUTE_VERSIONS.get(kind.name, version) != version:
            raise ValueError(f"run kind {kind.name!r}: version {version} disagrees with COMPUTE_VERSIONS")
        COMPUTE_VERSIONS[kind.name] = version
    elif kind.name not in COMPUTE_VERSIONS:
        raise ValueError(f"run kind {kind.name!r} has no compute version: pass version=1")
    RUN_KINDS[kind.name] = kind
    return kind


def get_run_kind(name: str) -> RunKind:
    if name not in RUN_KINDS:
        raise KeyError(f"unknown run kind {name!r}; expected one of {', '.join(RUN_KINDS)}")
    return RUN_KINDS[name]


def _register_builtin() -> None:
    from ..data import load_dataset
    from ..data.av_sources import load_av_dataset
    from ..data.faceparse import load_seg_dataset
    from .av import av_models, train_av
    from .distill import reads_of, student_models, train_student
    from .segment import segmenter_models, train_segmenter
    from .teacher import teacher_models, train_teacher

    register_run_kind(RunKind("teacher", load_dataset, train_teacher, models=teacher_models))
    register_run_kind(RunKind("student", load_dataset, train_student, reads_of, models=student_models))
    register_run_kind(RunKind("segmenter", load_seg_dataset, train_segmenter, metric="fscore",
                              models=segmenter_models))
    register_run_kind(RunKind("av", load_av_dataset, train_av, models=av_models))
    register_run_kind(RunKind("ensemble", _no_data, _computed_by_its_section, trains=False))


def _no_data(data_params: dict):
    raise TypeError("an ensemble run loads no data: it fuses its members' stored outputs")


def _computed_by_its_section(cfg, **kwargs):
    raise TypeError("an ensemble run is computed by section 02 from its members (fer_lib.tasks.ensemble)")


_register_builtin()
