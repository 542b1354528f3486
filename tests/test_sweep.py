"""Sweeps: the job plan, the Slurm scripts submitit writes (with sbatch, srun and squeue replaced by stand-ins on
PATH), the local launcher with a preempted and requeued run, and fer-report --no-train."""
from __future__ import annotations

import json
import os
import pickle
import re
import stat
from pathlib import Path

import pytest

from fer_lib.runs import RunStore
from fer_lib.runs.transfer import publish_run
from fer_lib.launch.plan import plan_profile
from fer_lib.launch.sweep import (JobPlan, SlurmOptions, launch_slurm, plan_jobs, read_record, record_path,
                                 run_local, warn_if_node_local)

STAND_INS = {
    "sbatch": '#!/usr/bin/env bash\nn=$(( $(ls "$FAKE_SLURM" | grep -c "^job") + 1001 ))\n'
              'cp "$1" "$FAKE_SLURM/job$n.sh"\necho "Submitted batch job $n"\n',
    "srun": '#!/usr/bin/env bash\nexec "$@"\n',
    # squeue -h -r -j ID,ID -o "%i|%T|%r": per job, spool/state_<id> or else spool/squeue_state ("STATE" or
    # "STATE|REASON"; empty: the job left the queue); spool/squeue_fail: its text on stderr, exit 1
    "squeue": '#!/usr/bin/env bash\necho "$*" >> "$FAKE_SLURM/squeue.log"\n'
              'if [ -f "$FAKE_SLURM/squeue_fail" ]; then cat "$FAKE_SLURM/squeue_fail" >&2; exit 1; fi\n'
              'ids=""\nwhile [ $# -gt 0 ]; do case "$1" in -j|--jobs) ids="$2"; shift;; esac; shift; done\n'
              'for id in ${ids//,/ }; do\n'
              '  if [ -f "$FAKE_SLURM/state_$id" ]; then st=$(cat "$FAKE_SLURM/state_$id")\n'
              '  else st=$(cat "$FAKE_SLURM/squeue_state" 2>/dev/null); fi\n'
              '  if [ -n "$st" ]; then echo "$id|$st"; fi\ndone\n',
    "scancel": '#!/usr/bin/env bash\n'
               'if [ -f "$FAKE_SLURM/scancel_fail" ]; then cat "$FAKE_SLURM/scancel_fail" >&2; exit 1; fi\n'
               'echo "$*" >> "$FAKE_SLURM/scancel.log"\n',
    "scontrol": '#!/usr/bin/env bash\n'
                'if [ -f "$FAKE_SLURM/scontrol_fail" ]; then cat "$FAKE_SLURM/scontrol_fail" >&2; exit 1; fi\n'
                'echo "Configuration data as of 2025-01-01T00:00:00"\necho "MaxArraySize            = '
                '$(cat "$FAKE_SLURM/max_array" 2>/dev/null || echo 1001)"\necho "MaxJobCount             = 10000"\n',
}
CONTROLLER_DOWN = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"


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
        out.joinpath("weights.safetensors").write_bytes(b"stand-in")))
    published = tmp_path / "results" / "teacher" / resnet50.key
    publish_run(src.path, tmp_path / "results", keep_weights=True)
    os.rename(tmp_path / "results" / "teacher" / src.key, published)
    again = plan_jobs("smoke", ["04_kd_cifar"], store, plan04)
    assert again.stored == 1 and resnet50.key not in {r.key for level in again.levels for r in level}
    kd_resnet = plan04["04_kd_cifar/kd_resnet"]
    assert kd_resnet.reads == (resnet50.key,) and kd_resnet.key in {r.key for r in again.levels[0]}
    assert again.for_weights == []


def test_a_stored_teacher_without_weights_is_trained_again_before_a_student_that_loads_it(tmp_path, plan04):
    """Published teachers carry no weights: a student still to train needs them, so the teacher's job comes first
    (named), and a student already stored asks for nothing."""
    store = RunStore(tmp_path / "runs", published=[tmp_path / "results"])
    resnet50 = plan04["04_kd_cifar/teacher:resnet50"]
    src = RunStore(tmp_path / "elsewhere").run("teacher", {"fake": 1}, "fp", lambda out, scratch: (
        out.joinpath("weights.safetensors").write_bytes(b"stand-in")))
    publish_run(src.path, tmp_path / "results")  # without its weights, as every published teacher
    os.rename(tmp_path / "results" / "teacher" / src.key, tmp_path / "results" / "teacher" / resnet50.key)
    jobs = plan_jobs("smoke", ["04_kd_cifar"], store, plan04)
    readers = [p for p in plan04.values() if resnet50.key in p.reads]
    assert jobs.for_weights == [resnet50.label] and jobs.stored == 0
    assert resnet50.key in {r.key for r in jobs.levels[0]}
    assert {r.key for r in readers} <= {r.key for r in jobs.levels[1]}
    # every reader stored: the teacher without weights is done again
    for reader in readers:
        fake = RunStore(tmp_path / "elsewhere").run("student", {"fake": reader.key}, "fp", lambda out, scratch: (
            out.joinpath("metrics.json").write_text("{}")))
        store.path("student", reader.key).parent.mkdir(parents=True, exist_ok=True)
        os.rename(fake.path, store.path("student", reader.key))
    again = plan_jobs("smoke", ["04_kd_cifar"], store, plan04)
    assert again.for_weights == [] and resnet50.key not in {r.key for level in again.levels for r in level}


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


@pytest.mark.slow(seconds=70)
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
    from fer_lib.launch.sweep import CodeChangedError, TrainRun

    run = plan04["04_kd_cifar/scratch"]
    job = TrainRun("smoke", run.section, run.name, run.key, str(tmp_path), commit="0123456789ab")
    with pytest.raises(CodeChangedError, match="submitted from commit 0123456789ab"):
        job()
    assert job.checkpoint() is not None and job.requeues == 1
    job.requeues = job.max_requeues
    assert job.checkpoint() is None  # the cap: no further requeue


def test_jobs_folder_is_next_to_the_store(tmp_path):
    from fer_lib.launch.sweep import jobs_folder

    assert jobs_folder(RunStore(tmp_path / "runs")) == Path(tmp_path / "runs" / "jobs")


# ----------------------------------------------------------------------------- issue 36: hardening the launchers
def _launch_cli(argv, monkeypatch, store_root):
    """fer-train with the store at ``store_root`` and no published tier; returns its exit status."""
    from fer_lib.commands.train import main

    monkeypatch.setenv("FER_RUNS", str(store_root))
    monkeypatch.setenv("FER_RESULTS", "")
    with pytest.raises(SystemExit) as done:
        main(argv)
    return done.value.code


def test_cpu_only_slurm_jobs_request_no_gpu_one_task_and_cpus_per_run(tmp_path, fake_slurm, monkeypatch, capsys):
    from fer_lib.launch.sweep import slurm_parameters

    cpu = slurm_parameters("smoke", 0, SlurmOptions(gpus_per_run=0, cpus_per_run=3), deps=[])
    assert "gpus_per_node" not in cpu and cpu["ntasks_per_node"] == 1 and cpu["cpus_per_task"] == 3
    gpu = slurm_parameters("smoke", 0, SlurmOptions(gpus_per_run=2, cpus_per_gpu=6), deps=["7_1"])
    assert gpu["gpus_per_node"] == 2 and gpu["ntasks_per_node"] == 2 and gpu["cpus_per_task"] == 6
    assert gpu["dependency"] == "afterok:7_1"
    # end to end through fer-train: the sbatch script asks for one task with --cpus-per-run CPUs and no GPU
    code = _launch_cli(["--profile", "smoke", "--sections", "06_segmentation", "--launcher", "slurm",
                        "--gpus-per-run", "0", "--cpus-per-run", "3"], monkeypatch, tmp_path / "runs")
    assert code == 0, capsys.readouterr().err
    script = (fake_slurm / "job1001.sh").read_text()
    assert "#SBATCH --ntasks-per-node=1" in script and "#SBATCH --cpus-per-task=3" in script
    assert "gpu" not in script.lower() and "--ntasks-per-node=0" not in script
    job = pickle.loads(next((tmp_path / "runs" / "jobs").rglob("*.pkl")).read_bytes())
    assert job.function.threads == 3  # the run uses the cores it was given


@pytest.mark.parametrize("option, value", [("--max-parallel", "0"), ("--max-parallel", "-2"),
                                           ("--gpus-per-run", "-1"), ("--cpus-per-run", "0"),
                                           ("--slurm-signal", "KILL"), ("--slurm-signal-delay-s", "-5")])
def test_impossible_sweep_options_are_refused_with_one_line(option, value, tmp_path, fake_slurm, monkeypatch,
                                                           capsys):
    # (the stand-in Slurm launcher: were an option accepted, nothing would train or loop here)
    code = _launch_cli(["--profile", "smoke", "--sections", "06_segmentation", "--launcher", "slurm",
                        option, value], monkeypatch, tmp_path / "runs")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and option in err[-1] and "error" in err[-1]
    assert not list(fake_slurm.glob("job*.sh"))


def test_run_local_refuses_max_parallel_below_one_instead_of_looping(tmp_path, plan04, monkeypatch):
    import fer_lib.launch.sweep as sweep

    def no_endless_loop(_):
        raise RuntimeError("run_local is looping without starting anything")

    monkeypatch.setattr(sweep.time, "sleep", no_endless_loop)
    jobs = JobPlan(levels=[[plan04["04_kd_cifar/scratch"]]])
    for kwargs in (dict(max_parallel=0), dict(max_parallel=1, gpus_per_run=-1)):
        with pytest.raises(ValueError, match="max_parallel|gpus_per_run"):
            run_local("smoke", jobs, RunStore(tmp_path / "runs", published=[]), **kwargs)


def test_a_failing_scheduler_query_is_an_error_not_no_jobs(tmp_path, fake_slurm, plan04, monkeypatch, capsys):
    store = RunStore(tmp_path / "runs", published=[])
    launch_slurm("smoke", plan_jobs("smoke", ["04_kd_cifar"], store, plan04), store, SlurmOptions())
    (fake_slurm / "squeue_state").write_text("RUNNING\n")
    (fake_slurm / "squeue_fail").write_text(CONTROLLER_DOWN)
    with pytest.raises(OSError, match=r"`squeue .*` failed \(exit status 1\): .*Unable to contact slurm "
                                             r"controller"):
        plan_jobs("smoke", ["04_kd_cifar"], store, plan04)
    assert all(read_record(store, r) for r in plan04.values() if r.kind != "ensemble")  # nothing cleared
    # a second launch while squeue fails: one line, exit 2, nothing submitted again
    code = _launch_cli(["--profile", "smoke", "--sections", "04_kd_cifar", "--launcher", "slurm"], monkeypatch,
                       store.root)
    err = capsys.readouterr().err
    assert code == 2 and "squeue" in err and "Unable to contact slurm controller" in err
    assert len(list(fake_slurm.glob("job*.sh"))) == 2
    # --status too: an error, not every job shown as failed
    assert _launch_cli(["--profile", "smoke", "--sections", "04_kd_cifar", "--status"], monkeypatch,
                       store.root) == 2
    # one squeue call answers for every job (not one per run)
    (fake_slurm / "squeue_fail").unlink()
    (fake_slurm / "squeue.log").unlink()
    assert not plan_jobs("smoke", ["04_kd_cifar"], store, plan04).levels
    assert len((fake_slurm / "squeue.log").read_text().splitlines()) == 1
    # scontrol (MaxArraySize) and scancel failures are errors naming the command as well
    from fer_lib.launch.sweep import SchedulerError

    (fake_slurm / "scontrol_fail").write_text("slurm_load_ctl_conf error: Unable to contact slurm controller\n")
    with pytest.raises(SchedulerError, match="scontrol show config"):
        launch_slurm("smoke", JobPlan(levels=[[plan04["04_kd_cifar/scratch"]]]), store, SlurmOptions())


def test_a_job_whose_dependency_failed_is_blocked_named_cancelled_and_resubmitted(
        tmp_path, fake_slurm, plan04, monkeypatch, capsys):
    store = RunStore(tmp_path / "runs", published=[])
    jobs = plan_jobs("smoke", ["04_kd_cifar"], store, plan04)
    ids = launch_slurm("smoke", jobs, store, SlurmOptions())
    teacher = plan04["04_kd_cifar/teacher:resnet50"]
    readers = {r.key for r in jobs.levels[1] if teacher.key in r.reads}
    # the teacher failed (left the queue, its log says why); the other level-0 jobs run; level 1 is blocked
    (fake_slurm / "squeue_state").write_text("RUNNING\n")
    (fake_slurm / f"state_{ids[teacher.key]}").write_text("")
    for run in jobs.levels[1]:
        (fake_slurm / f"state_{ids[run.key]}").write_text("PENDING|DependencyNeverSatisfied\n")
    log_dir = store.root / "jobs" / ids[teacher.key]
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"{ids[teacher.key]}_0_log.err").write_text("Traceback ...\nRuntimeError: CUDA out of memory\n")

    capsys.readouterr()
    assert _launch_cli(["--profile", "smoke", "--sections", "04_kd_cifar", "--status"], monkeypatch,
                       store.root) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert "blocked" in header and "pending" not in header  # blocked jobs are not shown as pending (live)
    blocked = out.split("blocked jobs")[1].split("failed jobs")[0]
    kd_resnet = plan04["04_kd_cifar/kd_resnet"]
    line = next(ln for ln in blocked.splitlines() if f" {kd_resnet.name} " in f" {ln} ")
    assert "blocked" in line and teacher.label in line and str(log_dir) in line and "CUDA out of memory" in line
    # a student of another teacher, held in the same array, names the failed run its array waited on
    kd_vit = next(ln for ln in blocked.splitlines() if " kd_vit " in f" {ln} ")
    assert teacher.label in kd_vit

    # a launch cancels the blocked jobs and submits exactly what is missing
    code = _launch_cli(["--profile", "smoke", "--sections", "04_kd_cifar", "--launcher", "slurm"], monkeypatch,
                       store.root)
    assert code == 0, capsys.readouterr().err
    cancelled = (fake_slurm / "scancel.log").read_text().split()
    assert sorted(cancelled) == sorted(ids[r.key] for r in jobs.levels[1])
    records = {r.key: read_record(store, r) for r in plan04.values() if r.kind != "ensemble"}
    new = {k: rec["job_id"] for k, rec in records.items() if rec and int(rec["job_id"].split("_")[0]) > 1002}
    assert set(new) == {teacher.key} | {r.key for r in jobs.levels[1]}
    for run in jobs.levels[1]:  # each waits on its teachers: the new job of the failed one, the running others
        assert {new.get(k, ids[k]) for k in run.reads} <= _deps(fake_slurm, new[run.key])
    assert readers and all(new[teacher.key] in _deps(fake_slurm, new[k]) for k in readers)
    # and Slurm itself cancels the dependents of a run that fails, instead of leaving them pending forever
    assert "#SBATCH --kill-on-invalid-dep=yes" in (fake_slurm / "job1002.sh").read_text()


def _deps(spool: Path, job_id: str) -> set[str]:
    """The jobs the sbatch script of ``job_id`` (stand-in numbering) waits on."""
    found = re.search(r"#SBATCH --dependency=afterok:(\S+)", (spool / f"job{job_id.split('_')[0]}.sh").read_text())
    return set(found.group(1).split(":")) if found else set()


def test_a_reused_pid_is_not_a_running_local_run():
    import psutil

    from fer_lib.launch.sweep import job_state, local_state

    me, started = os.getpid(), psutil.Process().create_time()
    assert local_state(str(me), started) == "RUNNING"
    assert local_state(str(me), started - 3600) is None  # the pid now belongs to another process
    assert job_state({"job_id": str(me), "launcher": "local", "pid_started": started - 3600}) is None
    assert job_state({"job_id": str(me), "launcher": "local"}) == "RUNNING"  # an old record: pid only


@pytest.mark.slow(seconds=5)
def test_run_local_records_the_process_start_time_beside_the_pid(tmp_path):
    """A run that fails at once keeps its record (for --status): with its job's pid and that process's start
    time, so the record reads as not running although the pid may be reused."""
    from fer_lib.launch.plan import PlannedRun
    from fer_lib.launch.sweep import job_state

    store = RunStore(tmp_path / "runs", published=[])
    bogus = PlannedRun(section="no_such_section", name="x", kind="teacher", key="0123456789abcdef0123")
    status = run_local("smoke", JobPlan(levels=[[bogus]]), store, poll_s=0.2, log=lambda *_: None)
    assert status[bogus.label].startswith("failed")
    record = read_record(store, bogus)
    assert record["launcher"] == "local" and record["pid_started"] > 1e9 and job_state(record) is None


def test_arrays_split_at_max_array_size_and_the_preemption_signal_is_an_option(tmp_path, fake_slurm, plan04):
    (fake_slurm / "max_array").write_text("3\n")
    store = RunStore(tmp_path / "runs", published=[])
    jobs = plan_jobs("smoke", ["04_kd_cifar"], store, plan04)
    options = SlurmOptions(gpus_per_run=0, signal="SIGUSR1", signal_delay_s=300)
    ids = launch_slurm("smoke", jobs, store, options)
    sizes = [len(level) for level in jobs.levels]
    expected = [min(3, n - i) for n in sizes for i in range(0, n, 3)]
    scripts = [p.read_text() for p in sorted(fake_slurm.glob("job*.sh"), key=lambda p: int(p.stem[3:]))]
    assert len(scripts) == len(expected)
    for script, n in zip(scripts, expected):
        array = re.search(r"#SBATCH --array=(\S+)", script)
        assert (array.group(1).startswith(f"0-{n - 1}%") if n > 1 else array is None), script
        assert script.count("#SBATCH --signal=") == 1 and "#SBATCH --signal=USR1@300" in script
        assert "export SUBMITIT_PREEMPT_SIGNAL=USR1" in script  # submitit's handler listens for that signal
    assert len(set(ids.values())) == sum(sizes)
    # each array waits on exactly the jobs its own runs read
    for array in {ids[r.key].split("_")[0] for r in jobs.levels[1]}:
        runs = [r for r in jobs.levels[1] if ids[r.key].split("_")[0] == array]
        assert _deps(fake_slurm, array) == {ids[k] for r in runs for k in r.reads}
    with pytest.raises(ValueError, match="cannot be caught"):
        SlurmOptions(signal="KILL")


_BARRIER_WORKER = """
import os, sys, time
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[2], RANK=sys.argv[1], WORLD_SIZE="2", LOCAL_RANK=sys.argv[1])
from fer_lib.engine.distributed import DistEnv
env = DistEnv.from_env("cpu")
if env.rank == 1:
    time.sleep(12)  # never reaches the barrier in time
    os._exit(0)
try:
    env.barrier(timeout_s=3)
except Exception as exc:
    print(type(exc).__name__, exc)
    os._exit(0)
print("no error")
"""


@pytest.mark.slow(seconds=30)
def test_a_rank_missing_at_the_barrier_times_out_with_an_error_naming_it():
    """Two gloo ranks (DDP on CPU): rank 1 never reaches the store's barrier; rank 0 ends with an error naming it."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _BARRIER_WORKER, str(rank), port], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env) for rank in (0, 1)]
    out = procs[0].communicate(timeout=120)[0]
    procs[1].wait(timeout=120)
    assert "BarrierTimeoutError" in out and "rank(s) 1 of 2 did not reach the barrier within 3 s" in out, out
