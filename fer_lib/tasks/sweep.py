"""Sweeps: every run of a profile that is not stored yet, launched with submitit -- on Slurm, or on this machine.

- ``plan_jobs``: the runs still to train (the plan of ``fer_lib.tasks.plan`` minus what the store -- local or
  published -- already holds, minus runs whose job is pending or running), grouped in dependency levels: a
  student waits for the teachers it distils, nothing else waits.
- ``TrainRun``: one run as a submitit job, checkpointable: on a timeout or preemption signal it asks to be
  requeued (at most ``max_requeues`` times) and the new process resumes the run exactly from its last epoch's
  checkpoint (the store's ``.partial``). It records the commit it was submitted from and refuses to run other
  code (submitit pickles functions by reference, so a changed checkout would silently mix versions).
- ``launch_slurm``: one job per run, one job array per dependency level, each level held with ``afterok`` on the
  jobs it reads; returns at once. Submission is idempotent: every job id is recorded beside its run's lock
  (``<store>/<kind>/.locks/<key>.job``), and a run whose job is pending or running is not submitted again.
- ``run_local``: one process per run on this machine, at most ``max_parallel`` at once, each pinned to its own
  GPU(s) (``CUDA_VISIBLE_DEVICES``) or, without GPUs, to its share of the cores; blocks until the sweep ends.

A job record is stale when its job is neither pending nor running and its run is not stored (the job failed or
was cancelled): the next launch clears it and submits the run again; ``fer-train --status`` shows it with its log.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import submitit

from ..runs import RunStore
from ..runs.provenance import git_commit, now
from .plan import PlannedRun, plan_profile

DEFAULT_MAX_REQUEUES = 3


class CodeChangedError(RuntimeError):
    """A job would run other code than the commit it was submitted from."""


class TrainRun(submitit.helpers.Checkpointable):
    """Train the run ``section/name`` of ``profile`` into the store at ``store_root`` (a submitit job)."""

    def __init__(self, profile: str, section: str, name: str, key: str, store_root: str, commit: str,
                 threads: int | None = None, cores: list[int] | None = None,
                 max_requeues: int = DEFAULT_MAX_REQUEUES):
        self.profile, self.section, self.name, self.key = profile, section, name, key
        self.store_root, self.commit, self.threads, self.cores = store_root, commit, threads, cores
        self.max_requeues, self.requeues = max_requeues, 0

    def __call__(self) -> dict:
        import torch

        from ..config.params import load_params, params_file
        from .kinds import get_run_kind
        from .sections import load_data, section_runs, train_run

        current = git_commit()
        if current != self.commit and not os.environ.get("FER_ALLOW_CODE_CHANGE"):
            raise CodeChangedError(
                f"run {self.section}/{self.name} ({self.key}) was submitted from commit {self.commit} but the "
                f"checkout is now at {current}: check out {self.commit} (or resubmit from the new code; "
                "FER_ALLOW_CODE_CHANGE=1 runs it anyway)")
        if self.cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, self.cores)
        if self.threads:
            torch.set_num_threads(self.threads)
        _export_distributed_env()
        data_params, runs = section_runs(self.section, load_params(params_file(self.section, self.profile)),
                                         self.profile)
        kind, cfg = runs[self.name]
        store, data = RunStore(self.store_root), load_data(kind, data_params)
        if store.key(kind, cfg.key_dict(), data.fingerprint, get_run_kind(kind).reads(cfg)) != self.key:
            raise CodeChangedError(f"run {self.section}/{self.name}: its key is no longer {self.key} (parameters or "
                                   "data changed since submission); plan and submit again")
        run = train_run(kind, cfg, data, store=store, progress=False)
        return {"key": run.key, "path": str(run.path), "requeues": self.requeues}

    def checkpoint(self, *args, **kwargs):
        """Requeue on timeout or preemption: the run resumes from its last epoch's checkpoint."""
        if self.requeues >= self.max_requeues:
            return None  # submitit then ends the job without requeueing it
        self.requeues += 1
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _export_distributed_env() -> None:
    """Inside a multi-task Slurm job (one task per GPU), the torch.distributed variables ``DistEnv.from_env`` reads
    (what torchrun would set), from submitit's job environment."""
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:
        return  # not in a submitit job
    if env.num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


# ----------------------------------------------------------------------------- job records
def record_path(store: RunStore, run: PlannedRun) -> Path:
    return store.root / run.kind / ".locks" / f"{run.key}.job"


def read_record(store: RunStore, run: PlannedRun) -> dict | None:
    path = record_path(store, run)
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None


def write_record(store: RunStore, run: PlannedRun, **record) -> None:
    from ..runs import write_json_atomic

    write_json_atomic(record_path(store, run), {"submitted": now(), **record})


def slurm_state(job_id: str) -> str | None:
    """The job's Slurm state (PENDING, RUNNING, ...) from squeue, or None once it has left the queue."""
    if shutil.which("squeue") is None:
        return None
    out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True)
    states = [s.strip() for s in out.stdout.splitlines() if s.strip()]
    return states[0] if out.returncode == 0 and states else None


def local_state(pid: str) -> str | None:
    try:
        os.kill(int(pid), 0)
        return "RUNNING"
    except (OSError, ValueError):
        return None


def live_state(record: dict | None) -> str | None:
    """PENDING / RUNNING when the recorded job is still queued or running; None when the record is stale."""
    if not record:
        return None
    state = (slurm_state if record.get("launcher") == "slurm" else local_state)(record["job_id"])
    return state if state in ("PENDING", "RUNNING", "CONFIGURING", "REQUEUED", "SUSPENDED") else None


def failure_line(record: dict) -> str:
    """The failed job's log and the last line of its error output."""
    folder = Path(record.get("log", ""))
    logs = sorted(folder.glob("*_log.err")) if folder.is_dir() else []
    last = ""
    for path in logs:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        last = lines[-1] if lines else last
    return f"{logs[0] if logs else folder}: {last}" if last else str(folder)


# ----------------------------------------------------------------------------- planning the jobs
@dataclass
class JobPlan:
    levels: list[list[PlannedRun]] = field(default_factory=list)  # runs to submit, by dependency level
    live: dict[str, str] = field(default_factory=dict)             # key -> job id of runs already pending/running
    stored: int = 0
    no_data: list[PlannedRun] = field(default_factory=list)


def plan_jobs(profile: str, sections: list[str] | None = None, store: RunStore | None = None,
              plan: dict[str, PlannedRun] | None = None) -> JobPlan:
    """The runs of ``profile`` to submit, in dependency levels; stored runs and runs with a live job are left out
    (a stale job record is removed)."""
    store = store or RunStore()
    plan = plan if plan is not None else plan_profile(profile, sections, store)
    out = JobPlan()
    todo: dict[str, PlannedRun] = {}
    for run in plan.values():
        if run.kind == "ensemble":
            continue  # section 02 fuses stored teachers in seconds, no job
        if run.key is None:
            out.no_data.append(run)
        elif store.find(run.kind, run.key) is not None:
            out.stored += 1
        elif (record := read_record(store, run)) and live_state(record):
            out.live[run.key] = record["job_id"]
        else:
            record_path(store, run).unlink(missing_ok=True)  # stale: the job ended without storing the run
            todo[run.key] = run
    level: dict[str, int] = {}

    def depth(key: str) -> int:
        if key not in level:
            level[key] = 1 + max((depth(k) for k in todo[key].reads if k in todo), default=-1)
        return level[key]

    for key in todo:
        depth(key)
    for key, lv in sorted(level.items(), key=lambda kv: kv[1]):
        while len(out.levels) <= lv:
            out.levels.append([])
        out.levels[lv].append(todo[key])
    return out


# ----------------------------------------------------------------------------- Slurm
@dataclass
class SlurmOptions:
    partition: str | None = None
    time_min: int = 24 * 60
    gpus_per_run: int = 1
    cpus_per_gpu: int = 8
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    max_requeues: int = DEFAULT_MAX_REQUEUES


def jobs_folder(store: RunStore) -> Path:
    """Where submitit keeps the jobs' pickles and logs: next to the store (a shared filesystem on a cluster)."""
    return store.root / "jobs"


def warn_if_node_local(store: RunStore) -> str | None:
    root = str(store.root.resolve())
    if root.startswith(("/tmp", "/var/tmp", "/dev/shm")) or root.startswith(os.environ.get("TMPDIR", "/nonexistent")):
        return (f"the run store {store.root} is on a node-local path: Slurm jobs on other nodes will not see it. "
                "Point FER_RUNS at a shared filesystem.")
    return None


def launch_slurm(profile: str, jobs: JobPlan, store: RunStore, options: SlurmOptions, log=print) -> dict[str, str]:
    """Submit every level of ``jobs`` as a job array, each held with afterok on the jobs its runs read; returns
    {run key: job id}. Returns at once."""
    commit = git_commit()
    folder = jobs_folder(store) / "%j"
    submitted: dict[str, str] = dict(jobs.live)
    for depth, runs in enumerate(jobs.levels):
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=options.max_requeues)
        deps = sorted({submitted[k] for run in runs for k in run.reads if k in submitted})
        extra = {k: v for k, v in (("account", options.account), ("qos", options.qos),
                                   ("constraint", options.constraint)) if v}
        executor.update_parameters(
            job_name=f"fer-{profile}-level{depth}", partition=options.partition, time=options.time_min,
            nodes=1, ntasks_per_node=options.gpus_per_run, gpus_per_node=options.gpus_per_run,
            cpus_per_task=options.cpus_per_gpu, mem=f"{options.mem_gb:g}GB" if options.mem_gb else None,
            signal_delay_s=120, dependency=f"afterok:{':'.join(deps)}" if deps else None, **extra)
        with executor.batch():
            handles = [(run, executor.submit(TrainRun(profile, run.section, run.name, run.key, str(store.root),
                                                      commit, max_requeues=options.max_requeues)))
                       for run in runs]
        for run, job in handles:
            submitted[run.key] = job.job_id
            write_record(store, run, job_id=job.job_id, launcher="slurm", commit=commit,
                         label=run.label, log=str(jobs_folder(store) / job.job_id))
        log(f"[sweep] level {depth}: {len(runs)} run(s) submitted as {handles[0][1].job_id.split('_')[0]}"
            + (f", after {', '.join(deps)}" if deps else ""))
    return submitted


# ----------------------------------------------------------------------------- this machine
def visible_gpus() -> list[int]:
    try:
        import torch

        return list(range(torch.cuda.device_count()))
    except Exception:  # noqa: BLE001 - no CUDA build
        return []


def run_local(profile: str, jobs: JobPlan, store: RunStore, max_parallel: int = 1, gpus_per_run: int = 1,
              max_requeues: int = DEFAULT_MAX_REQUEUES, interrupt: set[str] | None = None,
              poll_s: float = 1.0, log=print) -> dict[str, str]:
    """Run the jobs on this machine, at most ``max_parallel`` at once, a run starting when the runs it reads are
    stored; returns {label: 'done' | 'failed: ...'}. ``interrupt``: labels to send one preemption signal to once
    they have trained an epoch (testing the requeue path)."""
    commit = git_commit()
    gpus = visible_gpus()
    slots = (max(1, len(gpus) // gpus_per_run) if gpus else max(1, os.cpu_count() or 1))
    slots = min(max_parallel, slots)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    queue = [run for level in jobs.levels for run in level]
    running: dict[int, tuple[PlannedRun, submitit.Job]] = {}

    def can_start(run: PlannedRun) -> bool:
        """No run it reads is still queued or running (a dependency that failed is trained by its reader)."""
        waiting = {q.key for q in queue} | {r.key for r, _ in running.values()}
        return not waiting.intersection(run.reads)

    status: dict[str, str] = {}
    interrupted: set[str] = set()
    while queue or running:
        for slot, (run, job) in list(running.items()):
            if interrupt and run.label in interrupt and run.label not in interrupted and store.interrupted(run.kind, run.key):
                preempt(job)
                interrupted.add(run.label)
                log(f"[sweep] {run.label}: sent a preemption signal")
            if job.done():
                try:
                    job.result()
                    status[run.label] = "done"
                except Exception as exc:  # noqa: BLE001 - reported in the summary
                    status[run.label] = f"failed: {str(exc).strip().splitlines()[-1][:200]}"
                if status[run.label] == "done":
                    record_path(store, run).unlink(missing_ok=True)  # a failed job's record stays for --status
                log(f"[sweep] {run.label}: {status[run.label]}")
                del running[slot]
        free = [s for s in range(slots) if s not in running]
        for slot in free:
            ready = next((r for r in queue if can_start(r)), None)
            if ready is None:
                break
            queue.remove(ready)
            executor = submitit.LocalExecutor(folder=jobs_folder(store) / "%j", max_num_timeout=max_requeues)
            share = _cpu_share(cores, slot, slots)
            params = dict(timeout_min=7 * 24 * 60, signal_delay_s=5)
            if gpus:
                params.update(gpus_per_node=gpus_per_run,
                              visible_gpus=gpus[slot * gpus_per_run:(slot + 1) * gpus_per_run])
            executor.update_parameters(**params)
            job = executor.submit(TrainRun(profile, ready.section, ready.name, ready.key, str(store.root), commit,
                                           threads=None if gpus else len(share), cores=None if gpus else share,
                                           max_requeues=max_requeues))
            write_record(store, ready, job_id=job.job_id, launcher="local", commit=commit, label=ready.label,
                         log=str(jobs_folder(store) / job.job_id))
            running[slot] = (ready, job)
            log(f"[sweep] {ready.label}: started (slot {slot}, " +
                (f"GPU {params['visible_gpus']}" if gpus else f"cores {share}") + ")")
        time.sleep(poll_s)
    return status


def preempt(job) -> None:
    """Send a local job's task the signal Slurm sends before preempting or timing out a job (submitit's USR2): the
    task checkpoints, asks to be requeued, and the controller starts it again. (``LocalJob._interrupt`` signals
    the controller process, which does not forward USR2.)"""
    import signal

    children = subprocess.run(["pgrep", "-P", str(job.job_id)], capture_output=True, text=True).stdout.split()
    for pid in children:
        os.kill(int(pid), signal.SIGUSR2)


def _cpu_share(cores: list[int], slot: int, slots: int) -> list[int]:
    per = max(1, len(cores) // slots)
    return cores[slot * per:(slot + 1) * per] or cores[-per:]
