"""The runs each report section's parameters define: a registry of section builders.

A builder turns a section's parameters (``params/<profile>/<section>.yaml``) into ``(data parameters, {run name:
(kind, config)})`` with the same config builders the notebook uses, so ``fer-train`` (train a section's runs into
the store, e.g. under torchrun), the paper check (``fer-report --check``), ``fer-runs`` and the sweep planner build
exactly the configurations the notebooks build. A section that trains runs registers one builder with
``@section_builder(name, required=(...))`` (CONTRIBUTING.md); the blocks in ``required`` are checked first, and a
missing one names the parameter file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..config import ConfigError
from ..config.params import load_params, with_seeds

Builder = Callable[[dict, str], tuple[dict, dict]]


@dataclass(frozen=True)
class SectionBuilder:
    name: str
    build: Builder
    required: tuple[str, ...] = ()


#: the sections whose notebooks train runs, in report order (registration order)
SECTION_BUILDERS: dict[str, SectionBuilder] = {}


def section_builder(name: str, required: tuple[str, ...] = ()):
    """Decorator: register ``fn(params, profile) -> (data params, {run name: (kind, config)})`` for ``name``."""
    def add(fn: Builder) -> Builder:
        if name in SECTION_BUILDERS:
            raise ValueError(f"section {name!r} has two run builders")
        SECTION_BUILDERS[name] = SectionBuilder(name, fn, tuple(required))
        return fn
    return add


def section_runs(section: str, p: dict, profile: str) -> tuple[dict, dict[str, tuple[str, object]]]:
    """(data params, {run name: (kind, config)}) of the runs ``section``'s parameters ``p`` define."""
    if section not in SECTION_BUILDERS:
        raise ConfigError(f"section: expected one of {', '.join(SECTION_BUILDERS)}, got {section!r}")
    builder = SECTION_BUILDERS[section]
    need = getattr(p, "need", lambda *keys: None)  # Params name their file when a block is missing
    need(*builder.required)
    return builder.build(p, profile)


def load_data(kind: str, data_params: dict):
    """The dataset the runs of ``kind`` load from a section's ``data:`` parameters."""
    from .kinds import get_run_kind

    return get_run_kind(kind).load_data(data_params)


def train_run(kind: str, cfg, data, env=None, progress: bool = True, store=None):
    """The run for ``cfg`` from ``store`` (default: the project's), trained on a miss."""
    from .kinds import get_run_kind

    return get_run_kind(kind).train(cfg, store=store, data=data, env=env, progress=progress)


# ----------------------------------------------------------------------------- the report's training sections
@section_builder("01_teachers", required=("data", "train", "teachers"))
def teachers_section(p: dict, profile: str):
    from .teacher import teacher_configs

    return p["data"], {n: ("teacher", c) for n, c in teacher_configs(p["data"], p["train"], p["teachers"]).items()}


@section_builder("03_vit_revisit", required=("teachers_params", "vits", "arms"))
def vit_revisit_section(p: dict, profile: str):
    from .teacher import arm_configs, teacher_configs

    tp = load_params(p["teachers_params"], profile)
    base = teacher_configs(tp["data"], tp["train"], tp["teachers"])
    return tp["data"], {f"{v}/{a}": ("teacher", c) for (v, a), c in arm_configs(base, p["vits"], p["arms"]).items()}


def distillation_section(p: dict, profile: str):
    """The teachers first (as ``teacher:<role>``), then the students."""
    from .distill import student_configs
    from .teacher import teacher_configs

    teachers = teacher_configs(p["data"], p["teacher_train"], p["teachers"], profile)
    arms = with_seeds(p["arms"], p.get("seeds"), p["train"])
    students = student_configs(p["data"], p["train"], p["student"], teachers, arms)
    return p["data"], {**{f"teacher:{n}": ("teacher", c) for n, c in teachers.items()},
                       **{n: ("student", c) for n, c in students.items()}}


DISTILLATION_BLOCKS = ("data", "teacher_train", "teachers", "train", "student", "arms")
section_builder("04_kd_cifar", DISTILLATION_BLOCKS)(distillation_section)
section_builder("05_dkd_sweep", DISTILLATION_BLOCKS)(distillation_section)


@section_builder("06_segmentation", required=("data", "model", "train", "loss", "augment", "arms"))
def segmentation_section(p: dict, profile: str):
    from .segment import seg_configs

    arms = with_seeds(p["arms"], p.get("seeds"), p["train"])
    cfgs = seg_configs(p["data"], p["model"], p["train"], p["loss"], p["augment"], arms)
    return p["data"], {n: ("segmenter", c) for n, c in cfgs.items()}


@section_builder("07_asgml", required=("data", "model", "train", "balance", "probe", "arms", "seeds"))
def modality_balance_section(p: dict, profile: str):
    from .av import av_configs

    cfgs = av_configs(p["data"], p["model"], p["train"], p["balance"], p["probe"], p["arms"], p["seeds"])
    return p["data"], {f"{a}/seed{s}": ("av", c) for (a, s), c in cfgs.items()}
