"""Hardening of file I/O: untrusted pickles, the report's stamps and failed sections, stale run-store
folders, corrupt checkpoints, the FER2013 CSV's memory, and what the FER2013 folder loader and audit say.

Every fixture is written by the test into tmp_path.
"""
from __future__ import annotations

import json
import os
import pickle
import shlex
import subprocess
import sys
import tracemalloc
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from PIL import Image

from fer_lib import paths
from fer_lib.data import FER_CLASSES, DatasetError, LabeledImages, load_cifar100, load_fer2013
from fer_lib.data.audit import duplicate_groups, integrity_summary, near_blank
from fer_lib.engine.checkpoint import load_state, save_state
from fer_lib.report import pipeline
from fer_lib.runs import RunStore
from test_cifar import write_cifar


# ============================================================================ 1. CIFAR-100: restricted unpickling
class _RunsCode:
    """A pickle payload that, when unpickled with plain pickle.load, creates ``marker`` via os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_cifar_pickle_that_runs_code_is_refused_and_the_file_named(tmp_path):
    write_cifar(tmp_path)
    marker = tmp_path / "code-ran"
    train = tmp_path / "cifar-100-python" / "train"
    with open(train, "wb") as f:
        pickle.dump({b"data": _RunsCode(marker), b"fine_labels": [0]}, f)
    with pytest.raises(DatasetError) as exc:
        load_cifar100(tmp_path)
    print(exc.value)
    assert not marker.exists(), "the payload ran"
    msg = str(exc.value)
    assert str(train) in msg and "posix.system" in msg and "not allowed" in msg


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_real_format_pickles_load_under_the_restricted_unpickler(tmp_path, protocol, monkeypatch):
    """Python 2's CIFAR files reconstruct arrays via numpy.core.multiarray._reconstruct; newer protocols differ."""
    real_dump = pickle.dump
    monkeypatch.setattr(pickle, "dump", lambda obj, f: real_dump(obj, f, protocol=protocol))
    parts = write_cifar(tmp_path)
    d = load_cifar100(tmp_path)
    np.testing.assert_array_equal(d.subset("train").labels, parts["train"][1])
    assert d.images.shape == (80, 32, 32, 3)


def test_cifar_python2_spelling_numpy_core_is_admitted(tmp_path):
    """The real files name numpy.core.multiarray (numpy < 2); numpy 2 calls it numpy._core."""
    write_cifar(tmp_path)
    train = tmp_path / "cifar-100-python" / "train"
    raw = pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"fine_labels": [0, 1, 2]}, protocol=2)
    raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in raw
    train.write_bytes(raw)
    assert (load_cifar100(tmp_path).split == "train").sum() == 3


def test_cifar_file_that_is_not_a_dict_is_named(tmp_path):
    write_cifar(tmp_path)
    meta = tmp_path / "cifar-100-python" / "meta"
    meta.write_bytes(pickle.dumps([b"apple", b"bee"]))
    with pytest.raises(DatasetError, match=rf"CIFAR-100 file {meta}: expected a pickled dict, got list"):
        load_cifar100(tmp_path)


# ============================================================================ 2. report pipeline
def _quiet(*_):
    pass


def _fake_execute(spec, profile, out):
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        f.write("{}")


def test_truncated_stamps_file_warns_names_it_and_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "execute", _fake_execute)
    book = tmp_path / "book"
    stamps = book / "sections" / ".stamps.json"
    stamps.parent.mkdir(parents=True)
    stamps.write_text('{"intro": "3f2a')  # a write cut short
    with pytest.warns(UserWarning, match=str(stamps)) as rec:
        status = pipeline.run_sections("smoke", book, only=["intro"], log=_quiet)
    print(rec[0].message)
    assert status == {"intro": "ran"}
    assert set(json.loads(stamps.read_text())) == {"intro", "_profile"}  # the profile built, for jupyter-book build
    assert pipeline.run_sections("smoke", book, only=["intro"], log=_quiet) == {"intro": "skipped"}


def test_stamps_file_is_written_atomically(tmp_path, monkeypatch):
    """A write that dies half-way (disk full, kill) leaves the previous stamps readable."""
    monkeypatch.setattr(pipeline, "execute", _fake_execute)
    book = tmp_path / "book"
    pipeline.run_sections("smoke", book, only=["intro"], log=_quiet)
    stamps = book / "sections" / ".stamps.json"
    before = stamps.read_text()
    real_write_text = Path.write_text

    def dies_half_way(self, text, *a, **k):
        real_write_text(self, text[: len(text) // 2], *a, **k)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", dies_half_way)
    with pytest.raises(OSError, match="No space left"):
        pipeline.run_sections("smoke", book, only=["00_data"], force=True, log=_quiet)
    monkeypatch.undo()
    assert stamps.read_text() == before
    assert sorted(p.name for p in stamps.parent.iterdir()) == [".stamps.json", "00_data.ipynb", "intro.ipynb"]


def _failing_project(root: Path) -> Path:
    """A project layout with one notebook whose second code cell raises."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell('profile = "smoke"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell('raise ValueError("boom in the second cell")'),
                nbformat.v4.new_code_cell('print("never reached")')]
    (root / "notebooks").mkdir(parents=True)
    nbformat.write(nb, root / "notebooks" / "boom.ipynb")
    (root / "params" / "smoke").mkdir(parents=True)
    (root / "params" / "smoke" / "boom.yaml").write_text("{}\n")
    return root


def test_failed_section_keeps_its_executed_notebook_and_names_the_cell(tmp_path, monkeypatch):
    project = _failing_project(tmp_path / "project")
    monkeypatch.setattr(paths, "project_root", lambda: project)
    monkeypatch.setattr(pipeline, "SECTIONS", (pipeline.SectionSpec("boom"),))
    book = tmp_path / "book"
    with pytest.raises(SystemExit) as exc:
        pipeline.run_sections("smoke", book, log=_quiet)
    msg = str(exc.value)
    print(msg)
    kept = book / "_build" / "failed" / "boom.ipynb"
    assert "boom" in msg and "ValueError: boom in the second cell" in msg and str(kept) in msg
    # papermill injects its parameters cell after ours: the raising cell is cell 2, the 3rd to execute
    assert "cell 2 (In [3])" in msg
    failed = [c for c in nbformat.read(kept, as_version=4).cells if any(o.get("ename") for o in c.get("outputs", []))]
    assert len(failed) == 1 and failed[0].execution_count == 3 and failed[0].outputs[0]["ename"] == "ValueError"
    assert not (book / "sections" / "boom.ipynb").exists()
    assert [p.name for p in (book / "sections").iterdir()] == []  # no temp file, no stamp of a failed run
    assert [p.name for p in kept.parent.iterdir()] == ["boom.ipynb"]
    # once the section runs through, the kept copy of its failure goes
    nb = nbformat.read(project / "notebooks" / "boom.ipynb", as_version=4)
    nb.cells[1].source = "x = 1"
    nbformat.write(nb, project / "notebooks" / "boom.ipynb")
    assert pipeline.run_sections("smoke", book, log=_quiet) == {"boom": "ran"}
    assert (book / "sections" / "boom.ipynb").exists() and not kept.exists()


# ============================================================================ 3. run store
def _writes_metrics(out, scratch):
    (out / "metrics.json").write_text("{}")


def test_run_removes_stale_tmp_folders_of_its_key(tmp_path):
    store = RunStore(tmp_path)
    key = store.key("teacher", {"x": 1}, "fp")
    stale = tmp_path / "teacher" / f".tmp-{key}-0badc0de"  # a killed writer's leftovers
    stale.mkdir(parents=True)
    (stale / "weights.safetensors").write_bytes(b"half")
    store.run("teacher", {"x": 1}, "fp", _writes_metrics)
    assert not stale.exists()
    assert [p.name for p in (tmp_path / "teacher").iterdir() if p.name.startswith(".tmp-")] == []


_HOLD_LOCK = """
import fcntl, sys
f = open(sys.argv[1], "w")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_clean_removes_stale_tmp_folders_but_not_one_being_written(tmp_path):
    store = RunStore(tmp_path)
    dead, live = store.key("teacher", {"x": 1}, "fp"), store.key("teacher", {"x": 2}, "fp")
    stale = tmp_path / "teacher" / f".tmp-{dead}-11111111"
    writing = tmp_path / "teacher" / f".tmp-{live}-22222222"
    other_kind = tmp_path / "student" / f".tmp-{dead}-33333333"
    for d in (stale, writing, other_kind):
        d.mkdir(parents=True)
    lock = tmp_path / "teacher" / ".locks" / f"{live}.lock"
    lock.parent.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert store.clean("teacher") == [stale]
        assert not stale.exists() and writing.exists() and other_kind.exists()
    finally:
        holder.communicate("")
    assert sorted(store.clean()) == sorted([writing, other_kind])  # lock released, every kind
    assert not writing.exists() and not other_kind.exists()


def test_clean_during_a_run_keeps_that_runs_tmp_folder(tmp_path):
    store, seen = RunStore(tmp_path), []

    def compute(out, scratch):
        seen.append(store.clean())
        assert out.is_dir()
        _writes_metrics(out, scratch)

    run = store.run("teacher", {"x": 1}, "fp", compute)
    assert seen == [[]] and run.metrics == {}


def test_corrupt_checkpoint_names_the_file_and_how_to_recover(tmp_path):
    from fer_lib.engine.checkpoint import CheckpointError

    assert issubclass(CheckpointError, RuntimeError)
    good = tmp_path / ".partial" / "abc" / "last.pt"
    save_state({"epoch": 3, "w": torch.arange(4)}, good)
    assert load_state(good)["epoch"] == 3
    for name, content in (("garbage", b"not a checkpoint at all"), ("truncated", good.read_bytes()[:200])):
        bad = tmp_path / ".partial" / name / "last.pt"
        bad.parent.mkdir(parents=True)
        bad.write_bytes(content)
        with pytest.raises(CheckpointError) as exc:
            load_state(bad)
        msg = str(exc.value)
        print(msg)
        assert str(bad) in msg and "delete" in msg and str(bad.parent) in msg


def test_train_teacher_with_corrupt_resume_checkpoint_names_it(tmp_path):
    from fer_lib.data import load_dataset
    from fer_lib.engine.checkpoint import CheckpointError
    from fer_lib.tasks import teacher_configs, train_teacher
    from fer_lib.tasks.teacher import KIND

    data_cfg = {"source": "synthetic", "n_train": 64, "n_val": 28, "n_test": 28, "seed": 3}
    cfg = teacher_configs(data_cfg, {"epochs": 1, "batch_size": 16, "img_size": 32, "num_workers": 0},
                          {"a": {"model": {"arch": "test_resnet", "head": "linear"}}})["a"]
    store = RunStore(tmp_path / "runs")
    key = store.key(KIND, cfg.key_dict(), load_dataset(cfg.data).fingerprint)
    last = tmp_path / "runs" / KIND / ".partial" / key / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="delete") as exc:
        train_teacher(cfg, store, progress=False)
    print(exc.value)
    assert str(last) in str(exc.value)
    assert store.get(KIND, cfg.key_dict(), load_dataset(cfg.data).fingerprint) is None


# ============================================================================ 4. FER2013 CSV: streamed
def _fer_csv(path: Path, n: int, seed: int = 0) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, (n, 48 * 48), dtype=np.uint8)
    usage = ("Training", "PublicTest", "PrivateTest")
    lines = ["emotion,pixels,Usage"] + [f"{i % 7},{' '.join(map(str, row.tolist()))},{usage[i % 3]}"
                                        for i, row in enumerate(px)]
    path.write_text("\n".join(lines) + "\n")
    return path, px.reshape(n, 48, 48)


def test_fer_csv_decoding_peaks_near_the_size_of_the_images(tmp_path):
    """The list-of-strings parse peaked at ~50x the decoded images; the streamed one stays close to 1x."""
    from fer_lib.data.fer2013 import _decode_csv

    csv, px = _fer_csv(tmp_path / "fer2013.csv", 300)
    tracemalloc.start()
    try:
        data = _decode_csv(csv)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(data.images, px)
    assert data.images.dtype == np.uint8 and data.ids[0] == "fer2013.csv:2"
    assert peak < 4 * px.nbytes, f"peak {peak / 1e6:.1f} MB for {px.nbytes / 1e6:.1f} MB of images"


def test_fer_csv_row_with_wrong_field_count_names_file_and_row(tmp_path):
    csv, _ = _fer_csv(tmp_path / "fer2013.csv", 5)
    lines = csv.read_text().splitlines()
    lines[3] += ",extra"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"row 4\b.*3 fields.*4") as exc:
        load_fer2013(csv)
    print(exc.value)
    assert str(csv) in str(exc.value)


def test_fer_csv_blank_lines_and_crlf_are_read_like_before(tmp_path):
    csv, px = _fer_csv(tmp_path / "fer2013.csv", 4)
    lines = csv.read_text().splitlines()
    csv.write_bytes(("\r\n".join(lines[:3] + [""] + lines[3:]) + "\r\n").encode())
    data = load_fer2013(csv)
    np.testing.assert_array_equal(data.images, px)
    assert data.ids.tolist() == [f"fer2013.csv:{i}" for i in (2, 3, 4, 5)]  # blank lines are skipped


# ============================================================================ 5. FER2013 folders: notes, audit
def _kaggle(root: Path, names: dict[str, list[str]]) -> Path:
    """root/<top>/<class>/<name>.png, one tiny image per name; every class folder exists."""
    rng = np.random.default_rng(0)
    for top in ("train", "test"):
        for cls in FER_CLASSES:
            (root / top / cls).mkdir(parents=True, exist_ok=True)
    for rel, files in names.items():
        for name in files:
            Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(root / rel / f"{name}.png")
    return root


def _all_classes(top: str, stems: list[str]) -> dict[str, list[str]]:
    return {f"{top}/{c}": [f"{s}_{c}" for s in stems] for c in FER_CLASSES}


def test_folder_note_says_public_test_files_are_missing(tmp_path):
    root = _kaggle(tmp_path / "k", {**_all_classes("train", ["Training_1"]),
                                    **_all_classes("test", ["PrivateTest_1", "PrivateTest_2"])})
    d = load_fer2013(root)
    note = d.notes[0]
    print(note)
    assert (d.split == "val").sum() == 0 and (d.split == "test").sum() == 14
    assert "14 PrivateTest_* files but no PublicTest_* files" in note and "no val split" in note


def test_folder_note_says_private_test_files_are_missing(tmp_path):
    root = _kaggle(tmp_path / "k", {**_all_classes("train", ["Training_1"]), **_all_classes("test", ["PublicTest_1"])})
    _kaggle(root, {"test/happy": ["other_1"]})
    d = load_fer2013(root)
    note = d.notes[0]
    print(note)
    assert (d.split == "val").sum() == 7 and (d.split == "test").sum() == 1
    assert "7 PublicTest_* files (val) but no PrivateTest_* files" in note and "1 other" in note


def test_empty_class_folder_is_noted_and_flagged_by_the_audit(tmp_path):
    from fer_lib.data.audit import empty_classes

    names = {**_all_classes("train", ["Training_1"]), **_all_classes("test", ["PublicTest_1", "PrivateTest_1"])}
    del names["train/disgust"]
    root = _kaggle(tmp_path / "k", names)
    d = load_fer2013(root)
    print(d.notes)
    assert any("train/disgust/ is empty" in n and "no disgust images in train" in n for n in d.notes)
    assert empty_classes(d) == [("train", "disgust")]
    summary = integrity_summary(d, duplicate_groups(d), near_blank(d), FER_CLASSES)
    print(summary.loc["classes without images in a split", "value"])
    assert summary.loc["classes without images in a split", "value"] == "disgust in train"


def test_audit_of_complete_classes_flags_nothing():
    from fer_lib.data.audit import empty_classes

    labels = np.array([0, 1, 0, 1, 0, 1])
    d = LabeledImages("t", np.zeros((6, 4, 4), np.uint8) + np.arange(6)[:, None, None].astype(np.uint8) * 40,
                      labels, np.array(["train", "train", "val", "val", "test", "test"]), ("a", "b"),
                      np.arange(6).astype(str))
    assert empty_classes(d) == []
    assert integrity_summary(d, duplicate_groups(d), near_blank(d)).loc["classes without images in a split",
                                                                         "value"] == "none"
    only_a_in_val = LabeledImages("t", d.images, np.array([0, 1, 0, 0, 0, 1]), d.split, d.classes, d.ids)
    assert empty_classes(only_a_in_val) == [("val", "b")]


def test_every_entry_point_makes_openmp_threads_wait_passively_unless_the_user_chose(monkeypatch):
    from fer_lib.threads import share_cores

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    share_cores()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    share_cores()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def _policy_when_torch_loads(module: str, env: dict) -> str:
    """OMP_WAIT_POLICY as the environment holds it when ``import module`` (in a fresh interpreter) imports torch."""
    import subprocess
    import sys

    probe = ("import os, sys\n"
             "seen = {}\n"
             "class Spy:  # asked first for every module not imported yet; finds nothing itself\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name == 'torch': seen.setdefault('policy', os.environ.get('OMP_WAIT_POLICY'))\n"
             "sys.meta_path.insert(0, Spy())\n"
             f"import {module}\n"
             "print(seen.get('policy'))\n")
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize("command", ["fer-train", "fer-parse", "fer-runs", "fer-report"])
def test_a_command_line_tool_runs_with_the_policy_before_torch_loads(command):
    """The policy is in the environment by the time torch (and its OpenMP runtime) is imported, for each entry
    point's module; a user's own setting wins (checked once: the rule is one function, ``share_cores``)."""
    module = {"fer-train": "fer_lib.commands.train", "fer-parse": "fer_lib.commands.parse",
              "fer-runs": "fer_lib.commands.runs", "fer-report": "fer_lib.report.pipeline"}[command]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy_when_torch_loads(module, env) == "PASSIVE"
    if command == "fer-train":
        assert _policy_when_torch_loads(module, {**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
