"""``fer-train``: train a section's runs into the run store (under ``torchrun`` for DDP).

    fer-train --section 01_teachers --profile paper
    torchrun --nproc_per_node 4 -m fer_lib.tasks.cli --section 04_kd_cifar --profile paper --only m1 m2
    fer-train --section 01_teachers --params my_teachers.yaml

The notebooks then find the runs in the store (same configuration, same key) instead of training them.
``--only`` names teachers (01), (model, arm) pairs as ``vit_tiny/revisit`` (03), or arms (04, 05).
"""
from __future__ import annotations

import argparse

from ..data import load_dataset
from ..engine import DistEnv
from ..report.params import PROFILES, load_params, params_file
from .distill import student_configs, train_student
from .teacher import teacher_configs, train_teacher

SECTIONS = ("01_teachers", "03_vit_revisit", "04_kd_cifar", "05_dkd_sweep")


def runs_of(section: str, p: dict, profile: str):
    """(dataset params, {name: (kind, config)}) of the runs a section's parameters define."""
    if section == "01_teachers":
        return p["data"], {n: ("teacher", c) for n, c in teacher_configs(p["data"], p["train"], p["teachers"]).items()}
    if section == "03_vit_revisit":
        from ..report.vit_revisit import arm_configs

        tp = load_params(p["teachers_params"], profile)
        base = teacher_configs(tp["data"], tp["train"], tp["teachers"])
        return tp["data"], {f"{v}/{a}": ("teacher", c) for (v, a), c in arm_configs(base, p["vits"], p["arms"]).items()}
    teachers = teacher_configs(p["data"], p["teacher_train"], p["teachers"])
    return p["data"], {n: ("student", c) for n, c in student_configs(p["data"], p["train"], p["student"], teachers,
                                                                    p["arms"]).items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="fer-train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", default="01_teachers", choices=SECTIONS)
    ap.add_argument("--profile", default="smoke", choices=PROFILES)
    ap.add_argument("--params", help="a parameter file to use instead of params/<profile>/<section>.yaml")
    ap.add_argument("--only", nargs="*", help="train only these runs")
    a = ap.parse_args(argv)
    data_params, runs = runs_of(a.section, load_params(a.params or params_file(a.section, a.profile)), a.profile)
    unknown = set(a.only or []) - set(runs)
    if unknown:
        raise SystemExit(f"--only: unknown run(s) {sorted(unknown)}; expected some of {', '.join(runs)}")
    env, data = DistEnv.from_env(), load_dataset(data_params)
    for name, (kind, cfg) in runs.items():
        if a.only and name not in a.only:
            continue
        run = (train_teacher if kind == "teacher" else train_student)(cfg, data=data, env=env)
        if env.is_main:
            m = run.metrics["test"]
            print(f"{name}: {run.path}  test acc {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}"
                  f"  ({'from store' if run.hit else 'trained'})")


if __name__ == "__main__":
    main()
