"""Run store: hit, miss, keys, atomicity, concurrent callers."""
from __future__ import annotations

import json
import threading

import pytest

from fer_lib import __version__
from fer_lib.runs import RunStore


def _writer(calls: list, payload="ok"):
    def compute(out, scratch):
        calls.append((out, scratch))
        assert scratch.is_dir() and out.is_dir()
        (out / "metrics.json").write_text(json.dumps({"value": payload}))
    return compute


def test_miss_computes_then_hit_returns_without_computing(tmp_path):
    store, calls = RunStore(tmp_path), []
    run = store.run("teacher", {"lr": 1}, "fp", _writer(calls))
    assert len(calls) == 1 and not run.hit
    assert run.metrics == {"value": "ok"}
    assert run.config["config"] == {"lr": 1} and run.config["data_fingerprint"] == "fp"
    prov = run.provenance
    assert prov["fer_lib"] == __version__ and prov["wall_seconds"] >= 0 and prov["data_fingerprint"] == "fp"
    again = store.run("teacher", {"lr": 1}, "fp", _writer(calls))
    assert len(calls) == 1 and again.hit and again.path == run.path
    assert store.get("teacher", {"lr": 1}, "fp").path == run.path


def test_key_depends_on_kind_config_data_and_compute_version(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    k = store.key("teacher", {"lr": 1, "a": [1, 2]}, "fp")
    assert k == store.key("teacher", {"a": [1, 2], "lr": 1}, "fp")  # key order does not matter
    assert k != store.key("teacher", {"lr": 2, "a": [1, 2]}, "fp")
    assert k != store.key("teacher", {"lr": 1, "a": [1, 2]}, "fp2")
    assert k != store.key("student", {"lr": 1, "a": [1, 2]}, "fp")
    import fer_lib.runs.versions as versions
    monkeypatch.setitem(versions.COMPUTE_VERSIONS, "teacher", 99)
    assert k != store.key("teacher", {"lr": 1, "a": [1, 2]}, "fp")


def test_key_ignores_the_library_version(tmp_path, monkeypatch):
    """A release that changes nothing a run computes keeps every run's key (results survive version bumps)."""
    import fer_lib
    store = RunStore(tmp_path)
    k = store.key("teacher", {"lr": 1}, "fp")
    monkeypatch.setattr(fer_lib, "__version__", "99.0")
    assert store.key("teacher", {"lr": 1}, "fp") == k


def test_unknown_kind_has_no_compute_version(tmp_path):
    with pytest.raises(KeyError, match="COMPUTE_VERSIONS"):
        RunStore(tmp_path).key("toy", {}, "fp")


@pytest.mark.parametrize("bumped", ["teacher", "student", "segmenter", "av", "ensemble"])
def test_bumping_one_kind_changes_only_its_keys_and_its_readers(tmp_path, monkeypatch, bumped):
    """Each kind's keys move with its own compute version; a distilled student's also with the teacher version
    (it reads teachers), a scratch student's not."""
    import fer_lib.runs.versions as versions
    store = RunStore(tmp_path)
    runs = {"teacher": ("teacher", ()), "scratch student": ("student", ()),
            "distilled student": ("student", ("teacher",)), "segmenter": ("segmenter", ()), "av": ("av", ()),
            "ensemble": ("ensemble", ())}
    before = {name: store.key(kind, {"x": 1}, "fp", reads) for name, (kind, reads) in runs.items()}
    monkeypatch.setitem(versions.COMPUTE_VERSIONS, bumped, versions.COMPUTE_VERSIONS[bumped] + 1)
    after = {name: store.key(kind, {"x": 1}, "fp", reads) for name, (kind, reads) in runs.items()}
    changed = {name for name in runs if before[name] != after[name]}
    expected = {name for name, (kind, reads) in runs.items() if bumped == kind or bumped in reads}
    assert changed == expected and changed


def test_failed_compute_leaves_nothing_readable_and_keeps_scratch(tmp_path):
    store = RunStore(tmp_path)

    def crash(out, scratch):
        (out / "metrics.json").write_text("{half")
        (scratch / "last.pt").write_text("checkpoint")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.run("teacher", {"x": 1}, "fp", crash)
    key = store.key("teacher", {"x": 1}, "fp")
    assert store.get("teacher", {"x": 1}, "fp") is None
    assert not store.path("teacher", key).exists()
    assert not [p for p in (tmp_path / "teacher").iterdir() if p.name.startswith(".tmp-")]
    assert (tmp_path / "teacher" / ".partial" / key / "last.pt").exists()  # the next attempt resumes from it
    seen = []

    def resume(out, scratch):
        seen.append((scratch / "last.pt").read_text())
        (out / "metrics.json").write_text("{}")

    run = store.run("teacher", {"x": 1}, "fp", resume)
    assert seen == ["checkpoint"]
    assert run.provenance["resumed"] is True  # its wall time is the last attempt's only, and it says so
    assert store.run("teacher", {"x": 2}, "fp", _writer([])).provenance["resumed"] is False
    assert not (tmp_path / "teacher" / ".partial" / key).exists()  # cleaned once complete


def test_half_written_temporary_run_is_never_read(tmp_path):
    store = RunStore(tmp_path)
    key = store.key("teacher", {"x": 1}, "fp")
    (tmp_path / "teacher" / f".tmp-{key}-dead").mkdir(parents=True)  # a crashed writer's leftovers
    assert store.get("teacher", {"x": 1}, "fp") is None
    assert store.runs("teacher") == []


def test_concurrent_callers_compute_once(tmp_path):
    store, calls = RunStore(tmp_path), []
    gate = threading.Event()

    def slow(out, scratch):
        calls.append(1)
        gate.wait(5)
        (out / "metrics.json").write_text("{}")

    results = []
    threads = [threading.Thread(target=lambda: results.append(store.run("teacher", {"x": 1}, "fp", slow)))
               for _ in range(3)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len({r.path for r in results}) == 1 and sum(not r.hit for r in results) == 1


def test_the_lock_file_is_never_opened_through_a_symlink(tmp_path):
    """A symlink planted where a key's lock goes is refused, and what it points at is left as it was (open(.., "w")
    would have followed it and truncated it)."""
    store = RunStore(tmp_path / "store")
    key = store.key("teacher", {"x": 1}, "fp")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    locks = tmp_path / "store" / "teacher" / ".locks"
    locks.mkdir(parents=True)
    (locks / f"{key}.lock").symlink_to(victim)
    with pytest.raises(OSError, match=f"cannot lock .*{key}.lock: it is a symbolic link.*delete it"):
        store.run("teacher", {"x": 1}, "fp", _writer([]))
    assert victim.read_text() == "precious" and store.get("teacher", {"x": 1}, "fp") is None


def test_a_run_that_arrives_while_it_is_computed_is_kept_once(tmp_path, monkeypatch):
    """Another process (an import, here without the store's lock) puts the run in place while this one computes it:
    the final rename fails onto the complete copy, which is kept; ours is dropped, with a warning, and nothing
    temporary stays."""
    import contextlib
    import shutil

    @contextlib.contextmanager
    def no_lock(self, kind, key, enabled=True, wait=True):
        yield True

    monkeypatch.setattr(RunStore, "_lock", no_lock)
    other = RunStore(tmp_path / "other").run("teacher", {"x": 1}, "fp", _writer([], "theirs"))
    store = RunStore(tmp_path / "store")

    def compute(out, scratch):
        shutil.copytree(other.path, store.path("teacher", other.key))  # arrives meanwhile
        (out / "metrics.json").write_text(json.dumps({"value": "ours"}))

    with pytest.warns(UserWarning, match=f"run teacher/{other.key} arrived from another process"):
        run = store.run("teacher", {"x": 1}, "fp", compute)
    assert run.metrics == {"value": "theirs"}
    names = [p.name for p in (tmp_path / "store" / "teacher").iterdir()]
    assert [n for n in names if not n.startswith(".")] == [other.key] and not [n for n in names if ".tmp-" in n]


def test_git_ignores_every_temporary_folder_of_a_store_wherever_it_is(tmp_path):
    """A store's or a published tier's temporary folders (results/ included) never show up in `git status`; the
    published runs themselves do."""
    import shutil
    import subprocess

    from fer_lib import paths

    if shutil.which("git") is None:
        pytest.skip("no git")
    key = "0123456789abcdef0123"
    ignored = [f"runs/teacher/.tmp-{key}-ab12cd34/metrics.json",
               f"results/real-cpu/teacher/.tmp-{key}-42-ab12cd34/outputs.npz",
               f"results/real-cpu/segmenter/.old-{key}-42-ab12cd34/weights.safetensors",
               f"results/real-cpu/.import-42-ab12cd34/teacher/{key}/outputs.npz",
               f"results/real-cpu/teacher/.partial/{key}/last.pt", f"results/real-cpu/teacher/.locks/{key}.lock",
               "results/real-cpu/teacher/.metrics.json.42-ab12cd34.tmp", f"elsewhere/store/av/.locks/{key}.lock"]
    kept = [f"results/real-cpu/teacher/{key}/outputs.npz", f"results/real-cpu/segmenter/{key}/weights.safetensors",
            f"results/real-cpu/teacher/{key}/manifest.json"]

    def is_ignored(path: str) -> bool:
        done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=paths.project_root())
        return done.returncode == 0

    assert [p for p in ignored if not is_ignored(p)] == []
    assert [p for p in kept if is_ignored(p)] == []
