"""The registry of run kinds: what each kind of run loads, trains and reads.

An entry names the kind (the run store's folder and the key's compute version, ``fer_lib.runs.versions``), the
function that loads its data from a section's ``data:`` parameters, the function that trains (or reads back) one
run, the runs a run of it reads (a distilled student reads teachers, so its key also hashes the teacher version),
the models it builds (``ModelSpec``: what the paper check steps and the makespan times), and its publish rules
(whose weights the published tier keeps; whether the runs that read it need its weights). ``fer-train``, the paper
check (``fer-report --check``), ``fer-runs`` (list, publish, export, import, verify) and the sweep planner all
dispatch through it and never ask which kind they hold. Adding a kind is one module with its task and trainer and
one ``register_run_kind`` call (CONTRIBUTING.md; ``tests/test_toy_kind.py`` registers one from inside a test).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..runs.versions import COMPUTE_VERSIONS


def reads_nothing(cfg) -> tuple[str, ...]:
    return ()


def depends_on_nothing(cfg) -> list[tuple[str, Any]]:
    return []


def keeps_no_weights(runs: dict) -> set[str]:
    return set()


@dataclass(frozen=True)
class RunKind:
    name: str
    load_data: Callable[[dict], Any]          # a section's data parameters -> the dataset its runs train on
    train: Callable[..., Any]                 # train(cfg, store=, data=, env=, progress=) -> Run
    reads: Callable[[Any], tuple[str, ...]] = reads_nothing  # the kinds of run a run with config cfg reads
    metric: str = "accuracy"                  # the test metric fer-train prints
    models: Callable[[Any], list] = lambda cfg: []  # the ModelSpec of every model a run builds
    trains: bool = True                       # False: computed in seconds from stored runs, never scheduled
    #: (kind, config) of every run a run with config cfg reads, in its config's order (a student's teachers)
    depends_on: Callable[[Any], list[tuple[str, Any]]] = depends_on_nothing
    #: publish rule: of one section's runs of this kind ({run name: stored run}), the names whose weights the
    #: published tier keeps (what the book loads: 06's selected face parser); the others publish without weights
    published_weights: Callable[[dict], set[str]] = keeps_no_weights
    #: the runs that read a run of this kind load its weights (a student its teachers'), so a copy without them
    #: cannot stand in for it when a reader is retrained
    weights_read: bool = False
    #: ``fer-runs verify`` on another machine: how far a headline metric may move when the run's arm has too few
    #: other seeds to give a tolerance from their spread (``fer_lib.runs.ledger``)
    cross_machine_fallback: float = 0.03


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


def weights_read_kinds() -> frozenset[str]:
    """The kinds whose readers load their weights (``RunKind.weights_read``): a store that trains readers needs them
    (``RunStore.needing_weights``)."""
    return frozenset(name for name, kind in RUN_KINDS.items() if kind.weights_read)


def _register_builtin() -> None:
    from ..data import load_dataset
    from ..data.av_sources import load_av_dataset
    from ..data.faceparse import load_seg_dataset
    from .av import av_models, train_av
    from .distill import reads_of, student_models, student_teachers, train_student
    from .segment import selected_weights, segmenter_models, train_segmenter
    from .teacher import teacher_models, train_teacher

    register_run_kind(RunKind("teacher", load_dataset, train_teacher, models=teacher_models, weights_read=True))
    register_run_kind(RunKind("student", load_dataset, train_student, reads_of, models=student_models,
                              depends_on=student_teachers))
    register_run_kind(RunKind("segmenter", load_seg_dataset, train_segmenter, metric="fscore",
                              models=segmenter_models, published_weights=selected_weights))
    register_run_kind(RunKind("av", load_av_dataset, train_av, models=av_models))
    register_run_kind(RunKind("ensemble", _no_data, _computed_by_its_section, trains=False))


def _no_data(data_params: dict):
    raise TypeError("an ensemble run loads no data: it fuses its members' stored outputs")


def _computed_by_its_section(cfg, **kwargs):
    raise TypeError("an ensemble run is computed by section 02 from its members (fer_lib.tasks.ensemble)")


_register_builtin()
