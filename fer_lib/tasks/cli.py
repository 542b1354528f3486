"""``fer-train``: train a section's runs into the run store (under ``torchrun`` for DDP).

    fer-train --section 01_teachers --profile paper
    torchrun --nproc_per_node 4 -m fer_lib.tasks.cli --section 04_kd_cifar --profile paper --only m1 m2
    fer-train --section 06_segmentation --profile paper --only dice_1_5
    fer-train --section 01_teachers --params my_teachers.yaml

The notebooks then find the runs in the store (same configuration, same key) instead of training them.
``--only`` names teachers (01), (model, arm) pairs as ``vit_tiny/revisit`` (03), arms (04, 05, 06), or
``arm/seed<N>`` (07).
"""
from __future__ import annotations

import argparse
import sys

from ..engine import DistEnv
from ..config.params import PROFILES, load_params, params_file
from .errors import run_command
from .kinds import get_run_kind
from .sections import SECTIONS, load_data, section_runs, train_run


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="fer-train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", default="01_teachers", choices=SECTIONS)
    ap.add_argument("--profile", default="smoke", choices=PROFILES)
    ap.add_argument("--params", help="a parameter file to use instead of params/<profile>/<section>.yaml")
    ap.add_argument("--only", nargs="*", help="train only these runs")
    ap.add_argument("--plan", action="store_true", help="list every run the profile's notebooks ask for (with "
                    "--sections: those sections'), its dependencies, whether it is stored and its work; train nothing")
    ap.add_argument("--sections", nargs="*", help="with --plan: these sections (default: all)")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error")
    a = ap.parse_args(argv)
    sys.exit(run_command("fer-train", lambda: show_plan(a) if a.plan else train(a), debug=a.debug))


def show_plan(a) -> int:
    """Print the plan: one row per run, then the critical path and the ideal speed-up."""
    import pandas as pd

    from ..runs import RunStore
    from .plan import critical_path, plan_profile

    store = RunStore()
    plan = plan_profile(a.profile, a.sections, store)
    rows, done = [], set()
    for label, p in plan.items():
        run = store.find(p.kind, p.key) if p.key else None
        if run is not None:
            done.add(p.key)
        rows.append({"run": label, "kind": p.kind, "key": p.key or "-", "reads": len(p.reads),
                     "stored": "no data" if p.key is None else "published" if run and run.published else
                     "local" if run else "-", "work": p.work})
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(pd.DataFrame(rows).to_string(index=False))
    chain, path, total = critical_path(plan, done)
    print(f"\n{a.profile}: {len(plan)} runs, {len(done)} stored; still to train: {total:,} sample-epochs")
    if path:
        print(f"critical path ({path:,} sample-epochs): {' -> '.join(chain)}")
        print(f"ideal speed-up with unlimited GPUs: {total / path:.1f}x (total work / critical path)")
    missing = sorted({p.section for p in plan.values() if p.key is None})
    if missing:
        print(f"no data on this machine for {', '.join(missing)}: their runs are listed without keys")
    return 0


def train(a) -> int:
    data_params, runs = section_runs(a.section, load_params(a.params or params_file(a.section, a.profile)), a.profile)
    unknown = set(a.only or []) - set(runs)
    if unknown:
        raise SystemExit(f"--only: unknown run(s) {sorted(unknown)}; expected some of {', '.join(runs)}")
    env = DistEnv.from_env()
    data = load_data(next(iter(runs.values()))[0], data_params)
    for name, (kind, cfg) in runs.items():
        if a.only and name not in a.only:
            continue
        run = train_run(kind, cfg, data, env)
        if env.is_main:
            m = run.metrics["test"]
            metric = get_run_kind(kind).metric
            score = f"{metric} {m[metric]:.4f}" + (f"  macro-F1 {m['macro_f1']:.4f}" if "macro_f1" in m else "")
            print(f"{name}: {run.path}  test {score}  ({'from store' if run.hit else 'trained'})")
    return 0


if __name__ == "__main__":
    main()
