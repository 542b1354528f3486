"""Sweeps on a real Slurm (``.ci/start_slurm`` sets up a one-node cluster on this machine).

Marked ``slurm``: they run when ``sinfo`` answers and are skipped where Slurm is not installed or does not answer --
except with ``FER_REQUIRE_SLURM=1`` (CI with a cluster), where a missing Slurm is a failure, not a skip:

    .ci/start_slurm && FER_REQUIRE_SLURM=1 .venv/bin/python -m pytest -q -m slurm tests/test_slurm_real.py

The jobs train tiny smoke runs into the tests' own store (a node-local tmp path: fine on one node).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from fer_lib.runs import RunStore
from fer_lib.launch.plan import plan_profile
from fer_lib.launch.sweep import (LIVE_STATES, SlurmOptions, failure_line, job_state, launch_slurm, plan_jobs,
                                 read_record, slurm_states)

pytestmark = pytest.mark.slurm(seconds=30)  # each, most of it waiting on the scheduler

FINISH_S = float(os.environ.get("FER_SLURM_TEST_TIMEOUT_S", 1800))  # a few tiny runs, one or two at a time


def _why_no_slurm() -> str | None:
    """None when sinfo answers with a node that is up, else why not."""
    if shutil.which("sinfo") is None:
        return "Slurm is not installed here (no sinfo on PATH)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s"
    if out.returncode != 0:
        return f"sinfo failed (exit status {out.returncode}): {' '.join((out.stderr or out.stdout).split())}"
    states = {s.strip().rstrip("*~#!%$@^-").lower() for s in out.stdout.split()}
    if not states & {"idle", "mixed", "allocated", "completing"}:
        return f"no Slurm node is up (sinfo: {', '.join(sorted(states)) or 'no nodes'})"
    return None


@pytest.fixture(scope="module")
def slurm():
    why = _why_no_slurm()
    if why:
        if os.environ.get("FER_REQUIRE_SLURM") == "1":
            pytest.fail(f"FER_REQUIRE_SLURM=1 but {why}: start one with .ci/start_slurm", pytrace=False)
        pytest.skip(why)


@pytest.fixture
def store(tmp_path, slurm):
    """The test's run store; every job it still has queued is cancelled at the end."""
    store = RunStore(tmp_path / "runs", published=[])
    yield store
    ids = [json.loads(p.read_text()).get("job_id") for p in store.root.glob("*/.locks/*.job")]
    live = [j for j, (state, _) in slurm_states([j for j in ids if j]).items() if state in LIVE_STATES]
    if live:
        subprocess.run(["scancel", *live], check=False)


def _has_gpu_gres() -> bool:
    out = subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True, timeout=30).stdout
    return "gpu" in out


def _wait_until_gone(job_ids, timeout_s: float = FINISH_S) -> dict:
    """Wait until none of ``job_ids`` is queued or running; returns those still live at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        live = {j: s for j, s in slurm_states(job_ids).items() if s[0] in LIVE_STATES}
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(3)


def _show_job(job_id: str) -> str:
    return subprocess.run(["scontrol", "-o", "show", "job", str(job_id)], capture_output=True, text=True,
                          timeout=30).stdout


def _subplan(section: str, names: list[str], store: RunStore) -> dict:
    plan = plan_profile("smoke", [section], store)
    return {f"{section}/{n}": plan[f"{section}/{n}"] for n in names}


def test_a_smoke_graph_runs_on_slurm_held_on_its_teacher(store):
    """A teacher, the student distilled from it and a student without teacher (section 04's graph, cut to three
    runs): two levels, the student's job held with afterok on the teacher's; all three end stored, the student
    started after its teacher finished, and a second launch submits nothing."""
    plan = _subplan("04_kd_cifar", ["teacher:resnet50", "kd_resnet", "scratch"], store)
    teacher, student = plan["04_kd_cifar/teacher:resnet50"], plan["04_kd_cifar/kd_resnet"]
    jobs = plan_jobs("smoke", None, store, plan)
    assert [sorted(r.name for r in level) for level in jobs.levels] == [["scratch", "teacher:resnet50"],
                                                                        ["kd_resnet"]]
    gpus = 1 if _has_gpu_gres() else 0  # .ci/start_slurm declares one (fake) GPU: the GPU request path
    ids = launch_slurm("smoke", jobs, store, SlurmOptions(gpus_per_run=gpus, cpus_per_gpu=1, cpus_per_run=1,
                                                          time_min=60), log=lambda *_: None)
    assert read_record(store, student)["after"] == [ids[teacher.key]]
    held = _show_job(ids[student.key])
    assert ids[teacher.key] in held or "Dependency=(null)" in held, held  # held on it (unless already released)

    live = _wait_until_gone(list(ids.values()))
    assert not live, f"still queued or running after {FINISH_S:g} s: {live}"
    for run in plan.values():
        assert store.find(run.kind, run.key) is not None, f"{run.label}: {failure_line(read_record(store, run))}"
    finished = json.loads((store.find(teacher.kind, teacher.key).path / "provenance.json").read_text())["finished"]
    started = json.loads((store.find(student.kind, student.key).path / "provenance.json").read_text())["started"]
    assert started >= finished
    again = plan_jobs("smoke", None, store, plan)
    assert not again.levels and again.stored == len(plan)


def test_cpu_only_runs_end_to_end_through_fer_train(store, monkeypatch, capsys):
    """``fer-train --launcher slurm --gpus-per-run 0``: CPU jobs (one task, --cpus-per-run CPUs, no GPU) that
    train section 06's smoke runs; --status then counts them done."""
    from fer_lib.commands.train import main

    monkeypatch.setenv("FER_RUNS", str(store.root))
    monkeypatch.setenv("FER_RESULTS", "")
    with pytest.raises(SystemExit) as done:
        main(["--profile", "smoke", "--sections", "06_segmentation", "--launcher", "slurm", "--gpus-per-run", "0",
              "--cpus-per-run", "1", "--slurm-time", "60"])
    assert done.value.code == 0, capsys.readouterr().err
    plan = plan_profile("smoke", ["06_segmentation"], store)
    ids = [read_record(store, run)["job_id"] for run in plan.values()]
    shown = _show_job(ids[0])
    assert "NumTasks=1" in shown and "gpu" not in shown.lower(), shown
    assert _wait_until_gone(ids) == {}
    missing = [f"{r.label}: {failure_line(read_record(store, r))}" for r in plan.values()
               if store.find(r.kind, r.key) is None]
    assert not missing, missing
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["--profile", "smoke", "--sections", "06_segmentation", "--status"])
    assert done.value.code == 0
    summary = capsys.readouterr().out.splitlines()
    assert summary[0].split()[1:] == ["done"] and summary[-1].split()[-1] == str(len(plan)), summary


@pytest.mark.parametrize("kill_on_invalid_dep", [True, False], ids=["slurm-cancels", "relaunch-cancels"])
def test_a_cancelled_teacher_does_not_leave_its_student_pending(store, monkeypatch, kill_on_invalid_dep):
    """The teacher's job is cancelled. Its student is not left pending: Slurm cancels it (the jobs are submitted
    with --kill-on-invalid-dep=yes) or -- submitted without it, as by an older fer-train -- it is shown blocked,
    never live, and the next launch cancels it; both runs are then submitted again."""
    import fer_lib.launch.sweep as sweep

    if not kill_on_invalid_dep:
        plain = sweep.slurm_parameters

        def without_kill(*args, **kwargs):
            params = plain(*args, **kwargs)
            params["additional_parameters"].pop("kill-on-invalid-dep")
            return params

        monkeypatch.setattr(sweep, "slurm_parameters", without_kill)
    plan = _subplan("04_kd_cifar", ["teacher:resnet50", "kd_resnet"], store)
    teacher, student = plan["04_kd_cifar/teacher:resnet50"], plan["04_kd_cifar/kd_resnet"]
    ids = launch_slurm("smoke", plan_jobs("smoke", None, store, plan), store,
                       SlurmOptions(gpus_per_run=0, cpus_per_run=1, time_min=60), log=lambda *_: None)
    subprocess.run(["scancel", ids[teacher.key]], check=True)

    deadline, state = time.monotonic() + 180, "PENDING"
    while time.monotonic() < deadline:
        state = job_state(read_record(store, student))
        if state not in LIVE_STATES:
            break
        time.sleep(2)
    assert state not in LIVE_STATES, f"the student's job {ids[student.key]} is still {state} after 180 s"
    assert state == (None if kill_on_invalid_dep else sweep.BLOCKED)

    again = plan_jobs("smoke", None, store, plan)
    assert {r.key for level in again.levels for r in level} == {teacher.key, student.key}
    assert list(again.cancelled.values()) == ([] if kill_on_invalid_dep else [ids[student.key]])
    assert _wait_until_gone([ids[student.key]], timeout_s=60) == {}
