"""The runs a section's parameters define, for every kind of run (teacher, student, segmenter, av).

Used by ``fer-train`` (train a section's runs into the store, e.g. under torchrun) and by the paper profile's check
(``fer-report --check``), so both build exactly the configurations the notebooks build.
"""
from __future__ import annotations

from ..config import ConfigError
from ..report.params import load_params

#: sections whose notebooks train runs, in report order
SECTIONS = ("01_teachers", "03_vit_revisit", "04_kd_cifar", "05_dkd_sweep", "06_segmentation", "07_asgml")


#: the blocks each training section's parameters must have
REQUIRED = {"01_teachers": ("data", "train", "teachers"), "03_vit_revisit": ("teachers_params", "vits", "arms"),
            "04_kd_cifar": ("data", "teacher_train", "teachers", "train", "student", "arms"),
            "05_dkd_sweep": ("data", "teacher_train", "teachers", "train", "student", "arms"),
            "06_segmentation": ("data", "model", "train", "loss", "augment", "arms"),
            "07_asgml": ("data", "model", "train", "balance", "probe", "arms", "seeds")}


def section_runs(section: str, p: dict, profile: str) -> tuple[dict, dict[str, tuple[str, object]]]:
    """(data params, {run name: (kind, config)}) of the runs ``section``'s parameters ``p`` define."""
    from .av import av_configs
    from .distill import student_configs
    from .segment import seg_configs
    from .teacher import teacher_configs

    need = getattr(p, "need", lambda *keys: None)  # Params name their file when a block is missing
    need(*REQUIRED.get(section, ()))
    if section == "01_teachers":
        return p["data"], {n: ("teacher", c) for n, c in teacher_configs(p["data"], p["train"], p["teachers"]).items()}
    if section == "03_vit_revisit":
        from ..report.vit_revisit import arm_configs

        tp = load_params(p["teachers_params"], profile)
        base = teacher_configs(tp["data"], tp["train"], tp["teachers"])
        return tp["data"], {f"{v}/{a}": ("teacher", c) for (v, a), c in arm_configs(base, p["vits"], p["arms"]).items()}
    if section in ("04_kd_cifar", "05_dkd_sweep"):  # the teachers first (as ``teacher:<role>``), then the students
        teachers = teacher_configs(p["data"], p["teacher_train"], p["teachers"], profile)
        students = student_configs(p["data"], p["train"], p["student"], teachers, p["arms"])
        return p["data"], {**{f"teacher:{n}": ("teacher", c) for n, c in teachers.items()},
                           **{n: ("student", c) for n, c in students.items()}}
    if section == "06_segmentation":
        return p["data"], {n: ("segmenter", c) for n, c in seg_configs(p["data"], p["model"], p["train"], p["loss"],
                                                                      p["augment"], p["arms"]).items()}
    if section == "07_asgml":
        cfgs = av_configs(p["data"], p["model"], p["train"], p["balance"], p["probe"], p["arms"], p["seeds"])
        return p["data"], {f"{a}/seed{s}": ("av", c) for (a, s), c in cfgs.items()}
    raise ConfigError(f"section: expected one of {', '.join(SECTIONS)}, got {section!r}")


def load_data(kind: str, data_params: dict):
    if kind in ("teacher", "student"):
        from ..data import load_dataset

        return load_dataset(data_params)
    if kind == "segmenter":
        from ..data.faceparse import load_seg_dataset

        return load_seg_dataset(data_params)
    from ..data.av_clips import load_av_dataset

    return load_av_dataset(data_params)


def train_run(kind: str, cfg, data, env=None, progress: bool = True, store=None):
    """The run for ``cfg`` from ``store`` (default: the project's), trained on a miss."""
    from .av import train_av
    from .distill import train_student
    from .segment import train_segmenter
    from .teacher import train_teacher

    fn = {"teacher": train_teacher, "student": train_student, "segmenter": train_segmenter, "av": train_av}[kind]
    return fn(cfg, store=store, data=data, env=env, progress=progress)
