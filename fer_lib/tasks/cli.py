"""``fer-train``: train a section's runs into the run store (under ``torchrun`` for DDP).

    fer-train --section 01_teachers --profile paper
    torchrun --nproc_per_node 4 -m fer_lib.tasks.cli --section 01_teachers --profile paper --only resnet18
    fer-train --params my_teachers.yaml

The notebooks then find the runs in the store (same configuration, same key) instead of training them.
"""
from __future__ import annotations

import argparse

from ..data import load_dataset
from ..engine import DistEnv
from ..report.params import PROFILES, load_params, params_file
from .teacher import teacher_configs, train_teacher

SECTIONS = {"01_teachers": "teachers"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="fer-train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", default="01_teachers", choices=sorted(SECTIONS))
    ap.add_argument("--profile", default="smoke", choices=PROFILES)
    ap.add_argument("--params", help="a parameter file to use instead of params/<profile>/<section>.yaml")
    ap.add_argument("--only", nargs="*", help="train only these runs (e.g. teacher names)")
    a = ap.parse_args(argv)
    p = load_params(a.params or params_file(a.section, a.profile))
    env = DistEnv.from_env()
    configs = teacher_configs(p["data"], p["train"], p["teachers"])
    unknown = set(a.only or []) - set(configs)
    if unknown:
        raise SystemExit(f"--only: unknown run(s) {sorted(unknown)}; expected some of {', '.join(configs)}")
    data = load_dataset(p["data"])
    for name, cfg in configs.items():
        if a.only and name not in a.only:
            continue
        run = train_teacher(cfg, data=data, env=env)
        if env.is_main:
            m = run.metrics["test"]
            print(f"{name}: {run.path}  test acc {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}"
                  f"  ({'from store' if run.hit else 'trained'})")


if __name__ == "__main__":
    main()
