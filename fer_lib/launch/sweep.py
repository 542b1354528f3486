"""Sweeps: every run of a profile that is not stored yet, launched with submitit -- on Slurm, or on this machine.

- ``plan_jobs``: the runs still to train (the plan of ``fer_lib.launch.plan`` minus what the store -- local or
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
A Slurm job whose dependency can never be satisfied (a run it reads failed; squeue reason
``DependencyNeverSatisfied``) is *blocked*, not live: ``--status`` names the failed run it waited on, and the next
launch cancels it and submits what is missing. Jobs are submitted with ``--kill-on-invalid-dep=yes``, so Slurm
itself cancels the dependents of a failed run instead of leaving them pending forever.

The scheduler's answers are trusted only when its commands succeed: a failing ``squeue``, ``scontrol`` or
``scancel`` (controller unreachable, ...) is a ``SchedulerError`` naming the command and its output, never read as
"no jobs" (which would submit every run again). A local job is recorded with its process id and the process's
start time, so a reused process id is not taken for the run.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import submitit

from ..runs import RunStore
from ..runs.provenance import git_commit, now
from ..tasks.kinds import get_run_kind, weights_read_kinds
from .plan import PlannedRun, plan_profile, trained_again_for_weights

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
        from ..tasks.kinds import get_run_kind
        from ..tasks.sections import load_data, section_runs, train_run

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
        # the job exists because its run is missing, or is stored without the weights a run to train loads
        run = train_run(kind, cfg, data, store=store.needing_weights(weights_read_kinds()), progress=False)
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


#: Slurm states of a job that is still queued or running (its run may yet be stored)
LIVE_STATES = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
                         "SUSPENDED"})
#: a pending job whose dependency can never be satisfied (a run it reads failed)
BLOCKED = "BLOCKED"
SCHEDULER_TIMEOUT_S = 120


class SchedulerError(OSError):
    """A Slurm command failed or is missing: what it would have said about the jobs is unknown."""


def scheduler(cmd: list[str]) -> str:
    """The standard output of the Slurm command ``cmd``; a ``SchedulerError`` naming the command and its output when
    it is not on PATH, does not answer or exits non-zero (never an empty answer: "no jobs" would resubmit them)."""
    shown = shlex.join(cmd)
    if shutil.which(cmd[0]) is None:
        raise SchedulerError(f"`{cmd[0]}` is not on PATH: cannot ask Slurm about the jobs recorded in the store "
                             "(run this where the Slurm commands are installed)")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=SCHEDULER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SchedulerError(f"`{shown}` did not answer within {SCHEDULER_TIMEOUT_S} s (no job was taken for "
                             "ended); try again once the Slurm controller responds") from None
    if out.returncode != 0:
        said = " ".join((out.stderr.strip() + " " + out.stdout.strip()).split()) or "no output"
        raise SchedulerError(f"`{shown}` failed (exit status {out.returncode}): {said} (no job was taken for "
                             "ended); try again once the Slurm controller responds")
    return out.stdout


def slurm_states(job_ids) -> dict[str, tuple[str, str]]:
    """{job id: (state, reason)} of the jobs still known to Slurm (one squeue call per 200 ids); a job that has left
    the queue is absent. A failing squeue raises ``SchedulerError``."""
    ids = sorted({str(j) for j in job_ids})
    found: dict[str, tuple[str, str]] = {}
    for i in range(0, len(ids), 200):
        chunk = ids[i:i + 200]
        try:
            text = scheduler(["squeue", "-h", "-r", "-j", ",".join(chunk), "-o", "%i|%T|%r"])
        except SchedulerError as exc:
            if "Invalid job id specified" not in str(exc):
                raise
            if len(chunk) == 1:
                continue  # the controller has forgotten the job: it ended long ago
            for job_id in chunk:  # one forgotten id among several: ask about each alone
                found.update(slurm_states([job_id]))
            continue
        for line in text.splitlines():
            fields = [f.strip() for f in line.split("|")]
            if fields and fields[0] and len(fields) >= 2:
                found[fields[0]] = (fields[1], fields[2] if len(fields) > 2 else "")
    return found


def slurm_state(job_id: str) -> str | None:
    """The job's Slurm state (PENDING, RUNNING, ..., BLOCKED for a dependency never satisfied), or None once it has
    left the queue."""
    return _state_of(slurm_states([job_id]).get(str(job_id)))


def _state_of(found: tuple[str, str] | None) -> str | None:
    if found is None:
        return None
    state, reason = found
    return BLOCKED if state == "PENDING" and reason == "DependencyNeverSatisfied" else state


def process_start_time(pid: int | str) -> float | None:
    """The start time (seconds since the epoch) of process ``pid``, or None when there is no such process."""
    import psutil

    try:
        return psutil.Process(int(pid)).create_time()
    except (psutil.Error, ValueError):
        return None


def local_state(pid: str, started: float | None = None) -> str | None:
    """RUNNING while process ``pid`` lives and -- when ``started`` (its recorded start time) is given -- is the
    process that was recorded, not a later one that reuses its id."""
    import psutil

    try:
        proc = psutil.Process(int(pid))
        if started is not None and abs(proc.create_time() - float(started)) > 1.0:
            return None  # the id now belongs to another process
        return None if proc.status() == psutil.STATUS_ZOMBIE else "RUNNING"
    except (psutil.Error, ValueError, TypeError):
        return None


def job_states(records) -> dict[str, str | None]:
    """{job id: state} of the jobs of ``records`` (PENDING, RUNNING, ..., BLOCKED; None: no longer queued or
    running), with one squeue call for all the Slurm jobs."""
    records = [r for r in records if r and "job_id" in r]
    slurm = slurm_states(r["job_id"] for r in records if r.get("launcher") == "slurm") if any(
        r.get("launcher") == "slurm" for r in records) else {}
    return {str(r["job_id"]): _state_of(slurm.get(str(r["job_id"]))) if r.get("launcher") == "slurm"
            else local_state(r["job_id"], r.get("pid_started")) for r in records}


def job_state(record: dict | None, states: dict[str, str | None] | None = None) -> str | None:
    """PENDING / RUNNING / ... while the recorded job is queued or running, BLOCKED when it waits for a run that
    failed, None when the record is stale. ``states``: from ``job_states`` (else the scheduler is asked)."""
    if not record:
        return None
    states = states if states is not None else job_states([record])
    state = states.get(str(record["job_id"]))
    return state if state in LIVE_STATES or state == BLOCKED else None


def live_state(record: dict | None, states: dict[str, str | None] | None = None) -> str | None:
    """PENDING / RUNNING when the recorded job is still queued or running; None when the record is stale or the
    job is blocked for good."""
    state = job_state(record, states)
    return state if state in LIVE_STATES else None


def cancel_job(job_id: str) -> None:
    scheduler(["scancel", str(job_id)])


def failure_line(record: dict) -> str:
    """The failed job's log and the last line of its error output."""
    folder = Path(record.get("log", ""))
    logs = sorted(folder.glob("*_log.err")) if folder.is_dir() else []
    last = ""
    for path in logs:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        last = lines[-1] if lines else last
    return f"{logs[0] if logs else folder}: {last}" if last else str(folder)


def failed_reads(run: PlannedRun, plan: dict[str, PlannedRun], store: RunStore,
                 states: dict[str, str | None] | None = None, after: list[str] | None = None) -> list[str]:
    """The runs ``run`` waits on that failed (their job ended without storing them): label, job and log. It waits
    on the runs it reads and, on Slurm, on every job its array was held with (``after``: job ids)."""
    after = {str(j) for j in after or ()}
    out = []
    for dep in plan.values():
        if not dep.key or not get_run_kind(dep.kind).trains or store.find(dep.kind, dep.key) is not None:
            continue
        record = read_record(store, dep)
        if dep.key not in run.reads and not (record and str(record.get("job_id")) in after):
            continue
        if record is None:
            out.append(f"{dep.label} (not submitted)")
        elif live_state(record, states) is None:
            out.append(f"{dep.label} (job {record['job_id']}; log {failure_line(record)})")
    return out


def why_not_done(run: PlannedRun, record: dict, plan: dict[str, PlannedRun], store: RunStore,
                 states: dict[str, str | None] | None = None) -> str:
    """For ``--status``: a blocked job -- the failed run it waited on and that run's log; a failed job -- its log
    and last error line (or, when it never ran, the failed run it waited on)."""
    state = job_state(record, states)
    failed = failed_reads(run, plan, store, states, after=record.get("after"))
    if state == BLOCKED:
        return ("waits on a failed run: " + "; ".join(failed) if failed else
                "its dependency can never be satisfied") + " -- the next launch cancels it and submits it again"
    if not Path(record.get("log", "")).is_dir() and failed:
        return "never ran, a run it reads failed: " + "; ".join(failed)
    return failure_line(record)


# ----------------------------------------------------------------------------- planning the jobs
@dataclass
class JobPlan:
    levels: list[list[PlannedRun]] = field(default_factory=list)  # runs to submit, by dependency level
    live: dict[str, str] = field(default_factory=dict)             # key -> job id of runs already pending/running
    stored: int = 0
    no_data: list[PlannedRun] = field(default_factory=list)
    cancelled: dict[str, str] = field(default_factory=dict)        # label -> job id of blocked jobs cancelled
    for_weights: list[str] = field(default_factory=list)           # labels of stored runs trained again for weights


def plan_jobs(profile: str, sections: list[str] | None = None, store: RunStore | None = None,
              plan: dict[str, PlannedRun] | None = None) -> JobPlan:
    """The runs of ``profile`` to submit, in dependency levels; stored runs and runs with a live job are left out.
    A stale job record is removed; a blocked job (its dependency failed) is cancelled and its run submitted again.
    A failing squeue raises ``SchedulerError`` before anything is changed (a failing scancel: with that job's record
    kept)."""
    store = store or RunStore()
    plan = plan if plan is not None else plan_profile(profile, sections, store)
    out = JobPlan()
    todo: dict[str, PlannedRun] = {}
    missing: list[PlannedRun] = []
    for run in plan.values():
        if not get_run_kind(run.kind).trains:
            continue  # section 02 fuses stored teachers in seconds, no job
        if run.key is None:
            out.no_data.append(run)
        elif store.find(run.kind, run.key) is not None:
            out.stored += 1
        else:
            missing.append(run)
    # a stored run without the weights that a run to train loads (a published teacher) is trained again first
    retrain = trained_again_for_weights(plan, store, missing)
    out.stored -= len(retrain)
    out.for_weights = sorted(run.label for run in retrain.values())
    candidates = [(run, read_record(store, run)) for run in [*retrain.values(), *missing]]
    states = job_states(record for _, record in candidates)  # may raise: then nothing was changed
    for run, record in candidates:
        state = job_state(record, states)
        if state in LIVE_STATES:
            out.live[run.key] = record["job_id"]
            continue
        if state == BLOCKED:
            cancel_job(record["job_id"])
            out.cancelled[run.label] = record["job_id"]
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
    gpus_per_run: int = 1           # 0: a CPU job (no GPU request, one task with cpus_per_run CPUs)
    cpus_per_gpu: int = 8           # with GPUs: CPUs of each task (one task per GPU)
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    max_requeues: int = DEFAULT_MAX_REQUEUES
    cpus_per_run: int = 2
    signal: str = "USR2"            # sent signal_delay_s before a timeout or preemption: the run checkpoints
    signal_delay_s: int = 120

    def __post_init__(self):
        if self.gpus_per_run < 0:
            raise ValueError(f"gpus_per_run must be 0 (CPU jobs) or more, not {self.gpus_per_run}")
        if self.cpus_per_run < 1 or self.cpus_per_gpu < 1:
            raise ValueError(f"cpus_per_run and cpus_per_gpu must be at least 1 (got {self.cpus_per_run}, "
                             f"{self.cpus_per_gpu})")
        self.signal = signal_name(self.signal)
        if not 0 <= self.signal_delay_s <= 65535:
            raise ValueError(f"signal_delay_s must be within 0..65535 s (Slurm's --signal), not {self.signal_delay_s}")


def signal_name(name: str) -> str:
    """``USR2`` for ``usr2``, ``SIGUSR2`` or ``12``; a ValueError for a signal a job cannot catch or that does not
    exist."""
    import signal

    text = str(name).strip().upper()
    try:
        sig = signal.Signals(int(text)) if text.isdigit() else signal.Signals[text if text.startswith("SIG") else
                                                                             f"SIG{text}"]
    except (KeyError, ValueError):
        raise ValueError(f"unknown signal {name!r} (e.g. USR2, USR1)") from None
    if sig in (signal.SIGKILL, signal.SIGSTOP):
        raise ValueError(f"signal {name!r} cannot be caught: the run could not checkpoint (e.g. USR2)")
    return sig.name[3:]


def slurm_parameters(profile: str, depth: int, options: SlurmOptions, deps: list[str]) -> dict:
    """The ``SlurmExecutor.update_parameters`` of one level's jobs. With GPUs one task per GPU (DDP), each with
    ``cpus_per_gpu`` CPUs; with ``gpus_per_run=0`` one task with ``cpus_per_run`` CPUs and no GPU request. The
    pre-emption signal reaches submitit's handler through ``SUBMITIT_PREEMPT_SIGNAL``; ``kill-on-invalid-dep``
    cancels a job whose dependency failed instead of leaving it pending forever."""
    gpus = options.gpus_per_run
    params = dict(
        job_name=f"fer-{profile}-level{depth}", partition=options.partition, time=options.time_min, nodes=1,
        ntasks_per_node=gpus if gpus else 1, cpus_per_task=options.cpus_per_gpu if gpus else options.cpus_per_run,
        mem=f"{options.mem_gb:g}GB" if options.mem_gb else None, signal_delay_s=options.signal_delay_s,
        dependency=f"afterok:{':'.join(deps)}" if deps else None,
        setup=[f"export SUBMITIT_PREEMPT_SIGNAL={options.signal}"],
        additional_parameters={"signal": f"{options.signal}@{options.signal_delay_s}",
                               "kill-on-invalid-dep": "yes"})
    if gpus:
        params["gpus_per_node"] = gpus
    params.update({k: v for k, v in (("account", options.account), ("qos", options.qos),
                                     ("constraint", options.constraint)) if v})
    return {k: v for k, v in params.items() if v is not None}


def max_array_size() -> int:
    """The cluster's MaxArraySize (``scontrol show config``): a job array holds at most this many tasks (0: arrays
    are disabled, each run is its own job). Slurm's default, 1001, when the setting is not listed."""
    found = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", scheduler(["scontrol", "show", "config"]), re.MULTILINE)
    return int(found.group(1)) if found else 1001


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
    """Submit every level of ``jobs`` as job arrays (split at the cluster's MaxArraySize), each held with afterok
    on the jobs its runs read; returns {run key: job id}. Returns at once."""
    for command in ("sbatch", "srun"):
        if shutil.which(command) is None:
            raise SchedulerError(f"`{command}` is not on PATH: submit from a machine of the Slurm cluster")
    commit = git_commit()
    folder = jobs_folder(store) / "%j"
    submitted: dict[str, str] = dict(jobs.live)
    per_array = max(1, max_array_size())
    threads = None if options.gpus_per_run else options.cpus_per_run
    for depth, level in enumerate(jobs.levels):
        for start in range(0, len(level), per_array):
            runs = level[start:start + per_array]
            deps = sorted({submitted[k] for run in runs for k in run.reads if k in submitted})
            executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=options.max_requeues)
            executor.update_parameters(**slurm_parameters(profile, depth, options, deps))
            with executor.batch():
                handles = [(run, executor.submit(TrainRun(profile, run.section, run.name, run.key, str(store.root),
                                                          commit, threads=threads,
                                                          max_requeues=options.max_requeues)))
                           for run in runs]
            for run, job in handles:
                submitted[run.key] = job.job_id
                write_record(store, run, job_id=job.job_id, launcher="slurm", commit=commit, label=run.label,
                             log=str(jobs_folder(store) / job.job_id), after=deps)
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
    stored; returns {label: 'done' | 'failed: ...'}. ``gpus_per_run=0``: CPU runs, each pinned to its share of the
    cores. ``interrupt``: labels to send one preemption signal to once they have trained an epoch (testing the
    requeue path)."""
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be at least 1, not {max_parallel}")
    if gpus_per_run < 0:
        raise ValueError(f"gpus_per_run must be 0 (CPU runs) or more, not {gpus_per_run}")
    commit = git_commit()
    gpus = visible_gpus() if gpus_per_run else []
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
            started = process_start_time(job.job_id)  # with the pid: a reused pid is not this run
            write_record(store, ready, job_id=job.job_id, launcher="local", commit=commit, label=ready.label,
                         log=str(jobs_folder(store) / job.job_id), pid_started=-1.0 if started is None else started)
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
