"""Sweeps: the job plan, the Slurm scripts submitit writes (with sbatch, srun and squeue replaced by stand-ins on
PATH), the local launcher with a preempted and requeued run, and fer-report --no-train."""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from fer_lib.runs import RunStore
from fer_lib.runs.transfer import publish_run
from fer_lib.tasks.plan import plan_profile
from fer_lib.tasks.sweep import (JobPlan, SlurmOptions, launch_slurm, plan_jobs, read_record, record_path,
                                 run_local, warn_if_node_local)

STAND_INS = {
    "sbatch": '#!/usr/bin/env bash\nn=$(( $(ls "$FAKE_SLURM" | grep -c "^job") + 1001 ))\n'
              'cp "$1" "$FAKE_SLURM/job$n.sh"\necho "Submitted batch job $n"\n',
    "srun": '#!/usr/bin/env bash\nexec "$@"\n',
    "squeue": '#!/usr/bin/env bash\ncat "$FAKE_SLURM/squeue_state" 2>/dev/null\n',
}


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bin_dir, spool = tmp_path / "bin", tmp_path / "spool"
    bin_dir.mkdir()
    spool.mkdir()
    for name, text in STAND_INS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(spool))
    return spool


@pytest.fixture(scope="module")
def plan04():
    return plan_profile("smoke", ["04_kd_cifar"], RunStore("/nonexistent", published=[]))


def test_jobs_come_in_dependency_levels_and_stored_or_published_runs_are_done(tmp_path, plan04):
    store = RunStore(tmp_path / "runs", published=[tmp_path / "results"])
    jobs = plan_jobs("smoke", ["04_kd_cifar"], store, plan04)
    teachers = {p.key for p in plan04.values() if p.kind == "teacher"}
    assert {r.key for r in jobs.levels[0]} == teachers | {p.key for p in plan04.values()
                                                         if p.kind == "student" and not p.reads}
    assert all(r.kind == "student" and r.reads for r in jobs.levels[1]) and len(jobs.levels) == 2
    # a published teacher is done: its readers no longer wait for it
    resnet50 = plan04["04_kd_cifar/teacher:resnet50"]
    src = RunStore(tmp_path / "elsewhere").run("teacher", {"fake": 1}, "fp", lambda out, scratch: (
        out.joinpath("metrics.json").write_text("{}")))
    published = tmp_path / "results" / "teacher" / resnet50.key
    publish_run(src.path, tmp_path / "results")
    os.rename(tmp_path / "results" / "teacher" / src.key, published)
    again = plan_jobs("smoke", ["04_kd_cifar"], store, plan04)
    assert again.stored == 1 and resnet50.key not in {r.key for level in again.levels for r in level}
    kd_resnet = plan04["04_kd_cifar/kd_resnet"]
    assert kd_resnet.reads == (resnet50.key,) and kd_resnet.key in {r.key for r in again.levels[0]}


def test_slurm_sweep_writes_one_array_per_level_held_with_afterok(tmp_path, fake_slurm, plan04, capsys):
    store = RunStore(tmp_path / "runs", published=[])
    jobs = plan_jobs("smoke", ["04_kd_cifar"], store, plan04)
    options = SlurmOptions(partition="gpu", time_min=120, gpus_per_run=2, account="acc", qos="high",
                           constraint="a100", cpus_per_gpu=6)
    ids = launch_slurm("smoke", jobs, store, options)
    scripts = sorted(fake_slurm.glob("job*.sh"))
    assert [p.name for p in scripts] == ["job1001.sh", "job1002.sh"]  # one sbatch per dependency level
    level0, level1 = (p.read_text() for p in scripts)
    assert f"#SBATCH --array=0-{len(jobs.levels[0]) - 1}" in level0 and "--dependency" not in level0
    for line in ("--partition=gpu", "--time=120", "--gpus-per-node=2", "--ntasks-per-node=2", "--cpus-per-task=6",
                 "--account=acc", "--qos=high", "--constraint=a100", "--signal=USR2@120"):
        assert f"#SBATCH {line}" in level0, line
    deps = re.search(r"#SBATCH --dependency=afterok:(\S+)", level1).group(1).split(":")
    read = {k for r in jobs.levels[1] for k in r.reads}
    assert set(deps) == {ids[k] for k in read} and all(d.startswith("1001_") for d in deps)
    assert f"{store.root}/jobs/" in level0  # logs and submitit's folder next to the store
    # each run's job id is recorded beside its lock
    rec = read_record(store, jobs.levels[1][0])
    assert rec["job_id"].startswith("1002_") and rec["launcher"] == "slurm" and rec["commit"]

    # idempotent: while the jobs are pending nothing is submitted again ...
    (fake_slurm / "squeue_state").write_text("PENDING\n")
    again = plan_jobs("smoke", ["04_kd_cifar"], store, plan04)
    assert not again.levels and len(again.live) == len(ids)
    # ... and once they left the queue without storing their runs, the stale records are cleared and resubmitted
    (fake_slurm / "squeue_state").write_text("")
    stale = plan_jobs("smoke", ["04_kd_cifar"], store, plan04)
    assert sum(map(len, stale.levels)) == len(ids) and not record_path(store, jobs.levels[0][0]).exists()


def test_a_store_on_a_node_local_path_is_warned_about(tmp_path):
    assert "node-local" in warn_if_node_local(RunStore("/tmp/fer-runs"))
    assert warn_if_node_local(RunStore("/shared/project/runs")) is None


@pytest.mark.slow
def test_local_sweep_two_at_a_time_with_a_preempted_run_equals_inline_then_builds_with_no_train(
        tmp_path, monkeypatch, capsys):
    """Four face-parsing runs, two at a time, one sent a preemption signal after its first epoch: submitit requeues
    it and it resumes from its checkpoint; every run's metrics equal the inline run's. Section 06 then builds from
    the store with --no-train."""
    from fer_lib.tasks.sections import load_data, train_run

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    plan = plan_profile("smoke", ["06_segmentation"], RunStore(tmp_path / "plan", published=[]))
    runs = [plan[f"06_segmentation/{n}"] for n in ("dice_1_0", "dice_1_5", "focal", "no_lmsa")]
    store = RunStore(tmp_path / "sweep", published=[])
    status = run_local("smoke", JobPlan(levels=[runs]), store, max_parallel=2, interrupt={runs[0].label},
                       poll_s=0.2)
    assert status == {r.label: "done" for r in runs}
    out = capsys.readouterr().out
    assert f"{runs[0].label}: sent a preemption signal" in out
    logs = "".join(p.read_text() for p in (store.root / "jobs").rglob("*_log.*"))
    assert "Requeued job" in logs or "requeu" in logs.lower()
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two workers on two cores
    try:
        inline = RunStore(tmp_path / "inline", published=[])
        refs = {r.label: train_run(r.kind, r.config, load_data(r.kind, r.data_params), store=inline, progress=False)
                for r in runs}
    finally:
        torch.set_num_threads(threads)
    differ = [r.label for r in runs if store.find(r.kind, r.key).metrics != refs[r.label].metrics]
    assert not differ, f"metrics differ from the inline run's: {differ}"

    # the book after a sweep: --no-train names every missing run ...
    from fer_lib.report.pipeline import main as fer_report, missing_runs

    monkeypatch.setenv("FER_RUNS", str(tmp_path / "empty"))
    missing = missing_runs("smoke", ["06_segmentation"])
    assert len(missing) == 6 and all("fer-train --section 06_segmentation --profile smoke --only" in m
                                     for m in missing)
    with pytest.raises(SystemExit) as done:
        fer_report(["--profile", "smoke", "--sections", "06_segmentation", "--no-train", "--no-build",
                    "--book", str(tmp_path / "book")])
    assert "6 run(s) the sections read are in no store" in str(done.value.code)
    # ... and builds the section from the swept store once its runs are there (all six)
    monkeypatch.setenv("FER_RUNS", str(store.root))
    for r in plan.values():
        if r.kind == "segmenter" and store.find(r.kind, r.key) is None:
            train_run(r.kind, r.config, load_data(r.kind, r.data_params), store=store, progress=False)
    monkeypatch.setenv("FER_REPORT_DIR", str(tmp_path / "book" / "_artifacts"))
    with pytest.raises(SystemExit) as done:
        fer_report(["--profile", "smoke", "--sections", "06_segmentation", "--no-train", "--no-build",
                    "--book", str(tmp_path / "book")])
    assert done.value.code == 0
    prov = json.loads((tmp_path / "book" / "_artifacts" / "provenance" / "06_segmentation.json").read_text())
    assert prov["runs"] and all(r["cached"] for r in prov["runs"])
    monkeypatch.delenv("FER_NO_TRAIN", raising=False)


def test_no_train_refuses_to_compute_a_missing_run(tmp_path, monkeypatch):
    from fer_lib.runs import MissingRunError

    monkeypatch.setenv("FER_NO_TRAIN", "1")
    with pytest.raises(MissingRunError, match="FER_NO_TRAIN is set"):
        RunStore(tmp_path).run("teacher", {"x": 1}, "fp", lambda out, scratch: None)
    ran = []
    RunStore(tmp_path).run("ensemble", {"x": 1}, "fp", lambda out, scratch: ran.append(1), trains=False)
    assert ran == [1]  # an ensemble is computed from stored runs in seconds: allowed


def test_a_job_refuses_to_run_other_code_than_it_was_submitted_from(tmp_path, plan04):
    from fer_lib.tasks.sweep import CodeChangedError, TrainRun

    run = plan04["04_kd_cifar/scratch"]
    job = TrainRun("smoke", run.section, run.name, run.key, str(tmp_path), commit="0123456789ab")
    with pytest.raises(CodeChangedError, match="submitted from commit 0123456789ab"):
        job()
    assert job.checkpoint() is not None and job.requeues == 1
    job.requeues = job.max_requeues
    assert job.checkpoint() is None  # the cap: no further requeue


def test_jobs_folder_is_next_to_the_store(tmp_path):
    from fer_lib.tasks.sweep import jobs_folder

    assert jobs_folder(RunStore(tmp_path / "runs")) == Path(tmp_path / "runs" / "jobs")
