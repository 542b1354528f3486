"""``fer-train``: train a section's runs into the run store (under ``torchrun`` for DDP).

    fer-train --section 01_teachers --profile paper
    torchrun --nproc_per_node 4 -m fer_lib.commands.train --section 04_kd_cifar --profile paper --only m1 m2
    fer-train --section 06_segmentation --profile paper --only dice_1_5
    fer-train --section 01_teachers --params my_teachers.yaml

The notebooks then find the runs in the store (same configuration, same key) instead of training them.
``--only`` names teachers (01), (model, arm) pairs as ``vit_tiny/revisit`` (03), arms (04, 05, 06), or
``arm/seed<N>`` (07).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..engine import DistEnv
from ..config.params import PROFILES, load_params, params_file
from ..tasks.errors import run_command
from ..tasks.kinds import get_run_kind
from ..tasks.sections import SECTION_BUILDERS, load_data, section_runs, train_run


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="fer-train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", default="01_teachers", choices=list(SECTION_BUILDERS))
    ap.add_argument("--profile", default="smoke", choices=PROFILES)
    ap.add_argument("--params", help="a parameter file to use instead of params/<profile>/<section>.yaml")
    ap.add_argument("--only", nargs="*", help="train only these runs")
    ap.add_argument("--plan", action="store_true", help="list every run the profile's notebooks ask for (with "
                    "--sections: those sections'), its dependencies, whether it is stored and its work; train nothing")
    ap.add_argument("--gpus", nargs="+", type=_at_least(1), help="with --plan: the GPU-hours, the critical path and "
                    "the makespan on each of these numbers of GPUs (e.g. --gpus 1 8 64), from the training rates "
                    "benchmarks/train_rates.py measured")
    ap.add_argument("--sections", nargs="*", help="with --plan, --status or a launcher: these sections (default: all)")
    ap.add_argument("--status", action="store_true", help="per section, the runs done, running, pending and failed "
                    "(with a failed job's log and last error line)")
    sweep = ap.add_argument_group("sweeps (every run of the profile not stored yet, with submitit)")
    sweep.add_argument("--launcher", choices=("inline", "local", "slurm"), default="inline",
                       help="inline: train here, one run after another (default); local: one process per run on "
                            "this machine; slurm: one job per run")
    sweep.add_argument("--max-parallel", type=_at_least(1), default=1, help="local: runs at once (default 1)")
    sweep.add_argument("--gpus-per-run", type=_at_least(0), default=1, help="GPUs each run gets (slurm: tasks per "
                       "job); 0: CPU runs (slurm: one task with --cpus-per-run CPUs, no GPU request)")
    sweep.add_argument("--cpus-per-run", type=_at_least(1), default=2, help="slurm with --gpus-per-run 0: CPUs of "
                       "each job (--cpus-per-task; default 2); local runs share this machine's cores")
    sweep.add_argument("--wait", action="store_true", help="local: block until the sweep ends (else it runs on "
                       "in the background and its log is printed)")
    sweep.add_argument("--max-requeues", type=_at_least(0), default=3,
                       help="requeues per run after preemption or timeout")
    sweep.add_argument("--slurm-partition")
    sweep.add_argument("--slurm-time", type=_at_least(1), default=24 * 60, help="minutes per job (default 1440)")
    sweep.add_argument("--slurm-account")
    sweep.add_argument("--slurm-qos")
    sweep.add_argument("--slurm-constraint")
    sweep.add_argument("--slurm-cpus-per-gpu", type=_at_least(1), default=8)
    sweep.add_argument("--slurm-mem-gb", type=float)
    sweep.add_argument("--slurm-signal", type=_signal, default="USR2", help="the signal Slurm sends before a "
                       "timeout or preemption; the run checkpoints and is requeued (default USR2)")
    sweep.add_argument("--slurm-signal-delay-s", type=_at_least(0, 65535), default=120,
                       help="how long before the end that signal comes (seconds, default 120)")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error")
    a = ap.parse_args(argv)
    body = show_plan if a.plan else show_status if a.status else launch if a.launcher != "inline" else train
    sys.exit(run_command("fer-train", lambda: body(a), debug=a.debug))


def _at_least(low: int, high: int | None = None):
    """An argparse type: an integer within [low, high]; anything else is refused with one line."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be at least {low}" + (f" and at most {high}" if high is not None
                                                                           else "") + f", got {value}")
        return value
    return parse


def _signal(text: str) -> str:
    from ..launch.sweep import signal_name

    try:
        return signal_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def launch(a) -> int:
    """--launcher local|slurm: submit every run of the profile not stored yet."""
    import subprocess

    from ..runs import RunStore
    from ..launch.sweep import SlurmOptions, jobs_folder, launch_slurm, plan_jobs, run_local, warn_if_node_local

    store = RunStore()
    jobs = plan_jobs(a.profile, a.sections, store)
    n = sum(len(level) for level in jobs.levels)
    print(f"[sweep] {a.profile}: {n} run(s) to train in {len(jobs.levels)} dependency level(s); {jobs.stored} "
          f"stored, {len(jobs.live)} already pending or running" +
          (f"; {len(jobs.no_data)} without data here" if jobs.no_data else ""))
    for label, job_id in jobs.cancelled.items():
        print(f"[sweep] {label}: cancelled job {job_id}, blocked on a failed run; submitting it again")
    if jobs.for_weights:
        print(f"[sweep] trained again for the weights a run to train loads (stored without them, as published runs "
              f"are): {', '.join(jobs.for_weights)}")
    if not n:
        return 0
    if a.launcher == "slurm":
        if (warning := warn_if_node_local(store)):
            print(f"[sweep] warning: {warning}", file=sys.stderr)
        launch_slurm(a.profile, jobs, store, SlurmOptions(
            a.slurm_partition, a.slurm_time, a.gpus_per_run, a.slurm_cpus_per_gpu, a.slurm_mem_gb, a.slurm_account,
            a.slurm_qos, a.slurm_constraint, a.max_requeues, cpus_per_run=a.cpus_per_run, signal=a.slurm_signal,
            signal_delay_s=a.slurm_signal_delay_s))
        print(f"[sweep] submitted; `fer-train --profile {a.profile} --status` shows progress, logs in "
              f"{jobs_folder(store)}")
        return 0
    if not a.wait:  # the coordinator runs on, detached, and this command returns
        log = jobs_folder(store) / f"local-sweep-{os.getpid()}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "fer_lib.commands.train", *sys.argv[1:], "--wait"]
        with open(log, "w") as fh:
            subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        print(f"[sweep] running in the background; its log: {log}")
        return 0
    status = run_local(a.profile, jobs, store, a.max_parallel, a.gpus_per_run, a.max_requeues)
    failed = {k: v for k, v in status.items() if v != "done"}
    print(f"[sweep] {len(status) - len(failed)} run(s) done, {len(failed)} failed")
    for label, why in failed.items():
        print(f"  {label}: {why}")
    return 1 if failed else 0


def show_status(a) -> int:
    """Per section: runs done, running or pending, blocked (waiting on a failed run), failed (job ended without its
    run), and to do."""
    import pandas as pd

    from ..runs import RunStore
    from ..launch.plan import plan_profile
    from ..launch.sweep import job_state, job_states, read_record, why_not_done

    store = RunStore()
    plan = plan_profile(a.profile, a.sections, store)
    rows, records = [], {}
    for p in plan.values():
        if not get_run_kind(p.kind).trains:
            continue
        if p.key and store.find(p.kind, p.key) is None:
            records[p.label] = read_record(store, p)
    states = job_states(records.values())  # one squeue call; a failing squeue is an error, not "no jobs"
    for p in plan.values():
        if not get_run_kind(p.kind).trains:
            continue
        record = records.get(p.label)
        state = ("no data" if p.key is None else "done" if p.label not in records else
                 (job_state(record, states) or "failed").lower() if record else "to do")
        rows.append({"section": p.section, "run": p.name, "state": state,
                     "job": record.get("job_id", "") if record else "",
                     "log / last error": why_not_done(p, record, plan, store, states)
                     if state in ("failed", "blocked") else ""})
    table = pd.DataFrame(rows)
    with pd.option_context("display.max_rows", None, "display.width", 220, "display.max_colwidth", 160):
        print(table.pivot_table(index="section", columns="state", values="run", aggfunc="count", fill_value=0))
        blocked = table[table["state"] == "blocked"]
        if len(blocked):
            print("\nblocked jobs (a run they read failed; the next launch cancels them and submits them again):")
            print(blocked.to_string(index=False))
        failed = table[table["state"] == "failed"]
        if len(failed):
            print("\nfailed jobs (the next launch clears their records and submits them again):")
            print(failed.to_string(index=False))
    return 0


def show_plan(a) -> int:
    """Print the plan: one row per run, then the critical path and the ideal speed-up."""
    import pandas as pd

    from ..runs import RunStore
    from ..launch.plan import critical_path, plan_profile, stored, trained_again_for_weights

    store = RunStore()
    plan = plan_profile(a.profile, a.sections, store)
    rows, done = [], set()
    where_is = {label: stored(p, store) for label, p in plan.items()}
    again = trained_again_for_weights(plan, store, [p for label, p in plan.items() if where_is[label][1] == "missing"
                                                    and get_run_kind(p.kind).trains])
    for label, p in plan.items():
        run, where = where_is[label]
        if run is not None and p.key not in again:
            done.add(p.key)
        rows.append({"run": label, "kind": p.kind, "key": p.key or "-", "reads": len(p.reads),
                     "stored": "-" if where == "missing" else f"{where}, no weights: again" if p.key in again
                     else where, "work": p.work})
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(pd.DataFrame(rows).to_string(index=False))
    chain, path, total = critical_path(plan, done)
    per_section = pd.Series([p.section for p in plan.values() if get_run_kind(p.kind).trains]).value_counts().sort_index()
    print(f"\nruns to train per section: {', '.join(f'{k} {v}' for k, v in per_section.items())}")
    print(f"{a.profile}: {len(plan)} runs, {len(done)} stored; still to train: {total:,} sample-epochs")
    if any(p.nominal_work for p in plan.values()):
        print("(work of runs whose data are not here: from the datasets' nominal sizes, "
              "fer_lib.launch.plan.NOMINAL_TRAIN; a face-parsing set's size is unknown and counts 0)")
    if path:
        print(f"critical path ({path:,} sample-epochs): {' -> '.join(chain)}")
        print(f"ideal speed-up with unlimited GPUs: {total / path:.1f}x (total work / critical path)")
    missing = sorted({p.section for p in plan.values() if p.key is None})
    if missing:
        print(f"no data on this machine for {', '.join(missing)}: their runs are listed without keys")
    if a.gpus:
        from ..launch.makespan import estimate, load_rates

        rates = load_rates()
        est = estimate(plan, rates, a.gpus, done)
        print(f"\nGPU time ({rates['gpu_note']}): {est['gpu_hours']:,.1f} GPU-hours over {est['runs']} runs; critical "
              f"path {est['critical_path_hours']:,.1f} h")
        for n, hours in est["makespan_hours"].items():
            print(f"  makespan on {n:>3} GPU(s): {hours:,.1f} h  ({est['gpu_hours'] / max(hours, 1e-9) / n:.0%} of the "
                  f"GPUs busy)")
    return 0


def train(a) -> int:
    params = Path(a.params).absolute() if a.params else params_file(a.section, a.profile)  # --params: from the CWD
    data_params, runs = section_runs(a.section, load_params(params), a.profile)
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
