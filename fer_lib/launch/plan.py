"""Every run a profile's notebooks ask for, with its key, built by the same code as the notebooks.

``plan_profile("real-cpu")`` walks the training sections (``sections.section_runs``) and section 02's ensembles,
computes each run's key from its config and its data fingerprint, and records the runs it reads (a student its
teachers, an ensemble its members). A run several sections share (01's ResNet18 is 04's and 05's teacher) is
listed once, with every section that asks for it. Nothing is trained. Where a section's data are not on this
machine (the paper profile on a laptop), its runs are listed without keys and ``missing_data`` says why.

Used by ``fer-runs`` (list, publish) and, through the same function, by anything that needs the profile's runs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..config import config_hash
from ..config.params import load_params, params_file
from ..runs import RunStore
from ..tasks.ensemble import ensemble_key_parts
from ..tasks.kinds import get_run_kind, weights_read_kinds
from ..tasks.sections import SECTION_BUILDERS, load_data, section_runs

#: training-set sizes the seeds state, for the work of a profile whose data are not on this machine (the paper
#: profile on a laptop): FER2013's Kaggle train split, CIFAR-100's 50k less seed 002's 5k validation images, and
#: CREMA-D's OGM-GE train list (seed 004); a face-parsing set's size is the user's, so it stays unknown
NOMINAL_TRAIN = {"fer2013": 28_709, "cifar100": 45_000, "crema_d": 6_697}

#: the sections that read runs without training any (02 fuses 01's teachers; 08 and 09 read 01 and 02)
READERS = {"02_ensembles": ("teacher", "ensemble"), "08_deployment": ("teacher", "ensemble"),
           "09_calibration": ("teacher", "ensemble")}


@dataclass
class PlannedRun:
    section: str                 # the first section (report order) that defines it
    name: str                    # its name there: a teacher role, an arm, ``vit_tiny/revisit``, ``baseline/seed0``
    kind: str
    key: str | None              # None when its data (or a run it reads) cannot be fingerprinted here
    config: object = None
    reads: tuple[str, ...] = ()  # idents of the runs it reads
    sections: list[str] = field(default_factory=list)  # every section that asks for it
    missing_data: str | None = None
    data_params: dict | None = None  # the parameters its data are loaded from (``sections.load_data``)
    work: int | None = None           # epochs x training samples (None: unknown here)
    ident: str = ""                   # its key, or without data a stand-in from its config ("~...")
    nominal_work: bool = False        # work from the dataset's nominal size, the data not being here

    def __post_init__(self):
        self.ident = self.ident or self.key or ""

    @property
    def label(self) -> str:
        return f"{self.section}/{self.name}"


def _data_facts(kind: str, data_params: dict, cache: dict) -> tuple[str | None, int | None, str | None]:
    """(fingerprint, training samples, None) of a section's data, or (None, None, why not) when they cannot be
    read here."""
    loader = get_run_kind(kind).load_data  # kinds with one loader (teachers and students) share the data
    ident = json.dumps([f"{loader.__module__}.{loader.__qualname__}", data_params], sort_keys=True, default=str)
    if ident not in cache:
        try:
            data = load_data(kind, data_params)
            cache[ident] = (data.fingerprint, int((np.asarray(data.split) == "train").sum()), None)
        except (OSError, ValueError) as exc:  # a missing root, a DatasetError naming the file
            cache[ident] = (None, None, f"{type(exc).__name__}: {exc}")
    return cache[ident]


def plan_profile(profile: str, sections: list[str] | None = None, store: RunStore | None = None,
                 params: dict[str, dict] | None = None) -> dict[str, PlannedRun]:
    """{label: planned run} of every run the profile's sections (default: all) ask for, teachers before the runs
    that read them. ``params``: section -> parameters to use instead of ``params/<profile>/<section>.yaml``."""
    store = store or RunStore()
    params = params or {}
    known = [*SECTION_BUILDERS, *READERS]
    wanted = list(sections or known)
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}: expected some of {', '.join(sorted(known))} "
                         f"(the names of notebooks/*.ipynb that plan runs)")
    plan: dict[str, PlannedRun] = {}
    by_ident: dict[str, PlannedRun] = {}
    data_cache: dict = {}

    def add(run: PlannedRun) -> PlannedRun:
        if run.ident in by_ident:
            known = by_ident[run.ident]
            if run.section not in known.sections:
                known.sections.append(run.section)
            return known
        run.sections = [run.section]
        plan[run.label] = run
        by_ident[run.ident] = run
        return run

    def section_params(section: str) -> dict:
        return params.get(section) or load_params(params_file(section, profile))

    def teacher_keys(section: str, p01: dict) -> dict[str, PlannedRun]:
        data_params, runs = section_runs("01_teachers", p01, profile)
        return {name: add(_planned(section, name, kind, cfg, data_params, data_cache, store))
                for name, (kind, cfg) in runs.items()}

    for section in [s for s in SECTION_BUILDERS if s in wanted]:
        data_params, runs = section_runs(section, section_params(section), profile)
        for name, (kind, cfg) in runs.items():
            add(_planned(section, name, kind, cfg, data_params, data_cache, store))
    for section in [s for s in READERS if s in wanted]:
        p02 = section_params("02_ensembles") if section != "02_ensembles" else section_params(section)
        members = teacher_keys(section, load_params(p02["teachers_params"], profile))
        for name, spec in p02["ensembles"].items():
            runs = [members[m] for m in spec["members"]]
            config, fp = ensemble_key_parts(spec["members"], [r.ident for r in runs], p02["step"], spec.get("weights"))
            key, missing, ident = store.key("ensemble", config, fp), None, ""
            if not all(r.key for r in runs):
                key, missing, ident = None, next(r.missing_data for r in runs if r.key is None), "~" + key[1:]
            add(PlannedRun(section, f"ensemble:{name}", "ensemble", key, spec, tuple(r.ident for r in runs),
                           missing_data=missing, ident=ident))
    return plan


def _planned(section: str, name: str, kind: str, cfg, data_params: dict, data_cache: dict,
             store: RunStore) -> PlannedRun:
    fingerprint, n_train, missing = _data_facts(kind, data_params, data_cache)
    stand_in = "~" + config_hash(data_params)[:12]  # a data fingerprint's stand-in: same data, same stand-in

    def ident(run_kind: str, config, reads: tuple[str, ...] = ()) -> str:
        if fingerprint:
            return store.key(run_kind, config.key_dict(), fingerprint, reads)
        return "~" + store.key(run_kind, config.key_dict(), stand_in, reads)[1:]

    run_kind = get_run_kind(kind)
    reads = tuple(ident(read_kind, read_cfg) for read_kind, read_cfg in run_kind.depends_on(cfg))
    own = ident(kind, cfg, run_kind.reads(cfg))
    nominal = n_train is None and NOMINAL_TRAIN.get((data_params or {}).get("source"))
    n = n_train if n_train is not None else nominal or None
    return PlannedRun(section, name, kind, own if fingerprint else None, cfg, reads, missing_data=missing,
                      data_params=data_params, work=cfg.train.epochs * n if n else None, ident=own,
                      nominal_work=bool(nominal))


def stored(planned: PlannedRun, store: RunStore):
    """(the stored run or None, where it is: 'local' | 'published' | 'missing' | 'no data')."""
    if planned.key is None:
        return None, "no data"
    run = store.find(planned.kind, planned.key)
    return run, "missing" if run is None else "published" if run.published else "local"


def trained_again_for_weights(plan: dict[str, PlannedRun], store: RunStore,
                              missing: list[PlannedRun]) -> dict[str, PlannedRun]:
    """{key: run} of the stored runs whose copy lacks the weights that a ``missing`` run loads (a published teacher
    of a student to train): they are trained again first (``RunStore.needing_weights``)."""
    needing, by_ident = store.needing_weights(weights_read_kinds()), {run.ident: run for run in plan.values()}
    missing_keys = {run.key for run in missing}
    return {dep.key: dep for run in missing for ident in run.reads
            if (dep := by_ident.get(ident)) is not None and dep.key and dep.key not in missing_keys
            and needing.find(dep.kind, dep.key) is None}


def critical_path(plan: dict[str, PlannedRun], done: set[str] = frozenset()) -> tuple[list[str], int, int]:
    """(labels of the longest chain of dependent runs by work, its work, the total work) over the runs still to
    train (keys not in ``done``). total / path is the speed-up with unlimited GPUs: runs wait only for the runs
    they read."""
    by_key = {p.ident: p for p in plan.values()}
    todo = {label: p for label, p in plan.items() if (p.key is None or p.key not in done) and get_run_kind(p.kind).trains}
    best: dict[str, tuple[int, list[str]]] = {}

    def longest(label: str) -> tuple[int, list[str]]:
        if label not in best:
            p = todo[label]
            before = [longest(by_key[k].label) for k in p.reads if k in by_key and by_key[k].label in todo]
            work, chain = max(before, default=(0, []))
            best[label] = (work + (p.work or 0), chain + [label])
        return best[label]

    paths = [longest(label) for label in todo]
    work, chain = max(paths, default=(0, []))
    return chain, work, sum(p.work or 0 for p in todo.values())
