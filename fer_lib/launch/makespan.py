"""What a sweep costs before anyone books GPUs: GPU-hours, the critical path in hours, and the makespan on N GPUs.

Each run's time is its work (epochs x training samples, ``PlannedRun.work``) over its model's training rate
(samples per second for a forward and backward step), plus, for a student, one forward pass of each teacher per
sample (a third of a training step). The rates come from ``benchmarks/train_rates.py``, which measures each model
of the profile on this machine's CPU and scales the result to a GPU by ``gpu_over_cpu``: an assumed effective GPU
rate over the CPU's measured matmul rate (both in the file it writes, ``benchmarks/results/train_rates.json``),
until a GPU measures them. The makespan is a list schedule -- one GPU per run, a run starts once every run it reads
is done, the free GPU takes the ready run with the longest remaining chain -- simulated event by event.
"""
from __future__ import annotations

import heapq
import json
from pathlib import Path

from .. import paths
from ..models.spec import ModelSpec
from ..tasks.kinds import get_run_kind
from .plan import PlannedRun

RATES_FILE = Path("benchmarks") / "results" / "train_rates.json"
TEACHER_FORWARD_SHARE = 1 / 3  # a forward pass costs about a third of a forward + backward step


def load_rates(path: Path | None = None) -> dict:
    path = Path(path) if path else paths.project_root() / RATES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no measured training rates; run `python benchmarks/train_rates.py` first")
    return json.loads(path.read_text())


def gpu_rate(rates: dict, spec: ModelSpec) -> float:
    """Samples per second of a training step of this model on the assumed GPU."""
    entry = rates["models"].get(spec.signature())
    if entry is None:
        raise KeyError(f"no measured rate for {spec.arch} at {spec.input_shape}: run "
                       "`python benchmarks/train_rates.py` again (the profile's models changed)")
    return entry["cpu_samples_per_s"] * rates["gpu_over_cpu"]


def run_seconds(run: PlannedRun, rates: dict) -> float:
    """GPU seconds of one planned run: its own training steps and, for a student, its teachers' forward passes."""
    if not run.work:
        return 0.0
    own, *teachers = get_run_kind(run.kind).models(run.config)
    seconds = run.work / gpu_rate(rates, own)
    return seconds + sum(run.work * TEACHER_FORWARD_SHARE / gpu_rate(rates, t) for t in teachers)


def simulate(durations: dict[str, float], reads: dict[str, list[str]], gpus: int) -> float:
    """Makespan of a list schedule on ``gpus`` GPUs: ``durations`` per run, ``reads`` the runs each waits for (only
    those in ``durations`` count). The ready run with the longest chain still ahead of it goes first."""
    if gpus < 1:
        raise ValueError(f"gpus: expected at least 1, got {gpus}")
    waits = {r: [d for d in reads.get(r, []) if d in durations] for r in durations}
    readers: dict[str, list[str]] = {r: [] for r in durations}
    for r, deps in waits.items():
        for d in deps:
            readers[d].append(r)
    ahead: dict[str, float] = {}

    def chain(r: str) -> float:  # the run's time plus the longest chain of runs that wait for it
        if r not in ahead:
            ahead[r] = durations[r] + max((chain(n) for n in readers[r]), default=0.0)
        return ahead[r]

    pending = {r: len(deps) for r, deps in waits.items()}
    ready = [(-chain(r), r) for r, n in pending.items() if n == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []  # (finish time, run)
    now, free = 0.0, gpus
    while ready or running:
        while ready and free:
            _, r = heapq.heappop(ready)
            heapq.heappush(running, (now + durations[r], r))
            free -= 1
        now, done = heapq.heappop(running)
        free += 1
        for n in readers[done]:
            pending[n] -= 1
            if pending[n] == 0:
                heapq.heappush(ready, (-chain(n), n))
    return now


def estimate(plan: dict[str, PlannedRun], rates: dict, gpus: list[int], done: set[str] = frozenset()) -> dict:
    """GPU-hours, the critical path (hours) and the makespan (hours) on each of ``gpus`` of the runs still to train."""
    todo = {label: p for label, p in plan.items() if get_run_kind(p.kind).trains and (p.key is None or
                                                                                     p.key not in done)}
    by_ident = {p.ident: label for label, p in todo.items()}
    seconds = {label: run_seconds(p, rates) for label, p in todo.items()}
    reads = {label: [by_ident[i] for i in p.reads if i in by_ident] for label, p in todo.items()}
    return {"runs": len(todo), "gpu_hours": sum(seconds.values()) / 3600,
            "critical_path_hours": simulate(seconds, reads, max(len(todo), 1)) / 3600,
            "makespan_hours": {n: simulate(seconds, reads, n) / 3600 for n in gpus}}
