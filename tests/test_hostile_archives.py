"""Moving runs between stores against a hostile sender, and runs arriving twice.

Every hostile archive is refused by ``fer-runs import`` with one line naming it, the store byte-for-byte as it was
and no temporary folder left; publish and export check their runs first; two importers, or an importer and a
trainer, leave one complete copy of a run. Fixture runs come from a tiny store in tmp_path (``_compute`` of
test_published.py); nothing is trained.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import multiprocessing
import tarfile
import time

import numpy as np
import pytest

from fer_lib.runs import RunStore
from fer_lib.runs.manifest import CorruptRunError
from fer_lib.runs.store import move_into_place
from fer_lib.runs.transfer import check_run, export_runs, import_archive, publish_run
from fer_lib.launch.plan import PlannedRun

from test_published import _compute, _exported, _snapshot

TMP_PREFIXES = (".tmp-", ".import-", ".old-")


def _source(tmp_path, n=2):
    """``n`` teacher runs (a kind that reads no other) in a tiny store, and their export."""
    return _exported(tmp_path, n, kind="teacher")


def _members(archive) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _info(name, size=0, **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def _write(path, files: dict[str, bytes], extra=(), fmt=tarfile.GNU_FORMAT):
    """A .tar.gz of ``files`` ({member: bytes}), then the members ``extra`` ([(TarInfo or a raw header, bytes)])."""
    with tarfile.open(path, "w:gz", format=fmt) as tar:
        for name, data in files.items():
            tar.addfile(_info(name, len(data)), io.BytesIO(data))
        for info, data in extra:
            if isinstance(info, bytes):  # a hand-made header tarfile would not write
                tar.fileobj.write(info + data)
                tar.offset += len(info) + len(data)
            else:
                tar.addfile(info, io.BytesIO(data))
    return path


def _remanifest(files: dict[str, bytes], prefix: str) -> None:
    """Recompute the manifest of the run ``prefix`` (``kind/key``) from its edited files, as a forger would."""
    entries = {n.rsplit("/", 1)[1]: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)}
               for n, d in files.items() if n.startswith(prefix + "/") and not n.endswith("/manifest.json")}
    files[f"{prefix}/manifest.json"] = json.dumps({"files": entries}, indent=2, sort_keys=True).encode()


def _edit_json(files, name, **changes):
    files[name] = json.dumps({**json.loads(files[name]), **changes}, indent=2, sort_keys=True).encode()


def _gnu_sparse(name: str, real_size: int) -> tuple[tarfile.TarInfo, bytes]:
    """An old-style GNU sparse member: a 512-byte payload whose header says it unpacks to ``real_size`` bytes."""
    info = _info(name, 512, type=tarfile.GNUTYPE_SPARSE)
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header[386:398] = tarfile.itn(real_size - 512, 12, tarfile.GNU_FORMAT)  # one data region at the end
    header[398:410] = tarfile.itn(512, 12, tarfile.GNU_FORMAT)
    header[483:495] = tarfile.itn(real_size, 12, tarfile.GNU_FORMAT)  # the size it unpacks to
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header), b"x" * 512


def _hostile(case: str, tmp_path) -> tuple[object, list[str], str]:
    """(the archive, extra command-line options, what the one-line error says) for each hostile ``case``."""
    runs, good = _source(tmp_path)
    a, b = (f"teacher/{r.key}" for r in runs)
    files = _members(good)
    bad = tmp_path / f"{case}.tar.gz"
    opts = []
    if case == "planted_renamed":  # run a's files under run b's key, untouched
        files = {n.replace(a, b): d for n, d in files.items() if not n.startswith(b)}
        expect = f"config of run teacher/{runs[0].key}, not of teacher/{runs[1].key}"
    elif case == "planted_forged":  # the same, its config.json and provenance.json told the new key, manifest redone
        files = {n.replace(a, b): d for n, d in files.items() if not n.startswith(b)}
        _edit_json(files, f"{b}/config.json", key=runs[1].key)
        _edit_json(files, f"{b}/provenance.json", key=runs[1].key)
        _remanifest(files, b)
        expect = f"config of run teacher/{runs[0].key}, not of teacher/{runs[1].key}"
    elif case in ("tampered_config", "tampered_fingerprint"):  # a file changed and the manifest recomputed to match
        change = {"config": {"i": 7}} if case == "tampered_config" else {"data_fingerprint": "other data"}
        _edit_json(files, f"{a}/config.json", **change)
        _remanifest(files, a)
        expect = f"run teacher/{runs[0].key}: its config.json is the config of run teacher/"
    elif case == "tampered_file":
        files[f"{a}/metrics.json"] = json.dumps({"test": {"accuracy": 0.99}}).encode()
        expect = "its file metrics.json does not match the hash its manifest records"
    elif case == "tampered_manifest_hash":
        manifest = json.loads(files[f"{a}/manifest.json"])
        manifest["files"]["outputs.npz"]["sha256"] = "0" * 64
        files[f"{a}/manifest.json"] = json.dumps(manifest).encode()
        expect = "its file outputs.npz does not match the hash"
    elif case == "tampered_manifest_type":
        manifest = json.loads(files[f"{a}/manifest.json"])
        manifest["files"]["outputs.npz"]["bytes"] = "many"
        files[f"{a}/manifest.json"] = json.dumps(manifest).encode()
        expect = "its manifest.json is unreadable (its entry for 'outputs.npz' is not"
    elif case == "tampered_manifest_list":
        manifest = json.loads(files[f"{a}/manifest.json"])
        del manifest["files"]["history.csv"]
        files[f"{a}/manifest.json"] = json.dumps(manifest).encode()
        expect = "are not those its manifest lists"
    elif case == "sparse_gnu":  # 512 bytes that unpack to a terabyte
        return _write(bad, files, [_gnu_sparse(f"{a}/big.npz", 10**12)]), opts, "is a sparse file"
    elif case == "sparse_pax":
        info = _info(f"{a}/big.npz", 512, pax_headers={"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                                       "GNU.sparse.name": f"{a}/big.npz",
                                                       "GNU.sparse.realsize": str(10**12)})
        sparse_map = b"1\n%d\n%d\n" % (10**12 - 512, 512)
        body = sparse_map + b"\0" * (-len(sparse_map) % 512) + b"x" * 512
        info.size = len(body)
        return _write(bad, files, [(info, body)], tarfile.PAX_FORMAT), opts, "is a sparse file"
    elif case == "symlink":
        extra = [(_info(f"{a}/weights2.safetensors", type=tarfile.SYMTYPE, linkname="/etc/passwd"), b"")]
        return _write(bad, files, extra), opts, "is a link"
    elif case == "hardlink":
        extra = [(_info(f"{a}/weights2.safetensors", type=tarfile.LNKTYPE, linkname=f"{a}/config.json"), b"")]
        return _write(bad, files, extra), opts, "is a link"
    elif case in ("truncated", "corrupt"):
        data = bytearray(good.read_bytes())
        if case == "truncated":
            data = data[:len(data) // 2]
        else:
            data[len(data) // 2:len(data) // 2 + 16] = b"\xff" * 16
        bad.write_bytes(bytes(data))
        return bad, opts, f"{bad} is truncated or corrupt"
    elif case == "oversized_file":
        files[f"{a}/history.csv"] = b"epoch,loss\n" + b"0,1.0\n" * 2000
        _remanifest(files, a)
        opts, expect = ["--max-file-mb", "0.005"], "is 0.012 MB, over the limit of 0.005 MB per file"
    elif case == "oversized_archive":
        opts, expect = ["--max-archive-mb", "0.004"], "unpacks to more than the limit of 0.004 MB per archive"
    elif case == "npz_bomb":  # a small npz whose arrays unpack to 4 MB
        buf = io.BytesIO()
        np.savez_compressed(buf, test_logits=np.zeros(4_000_000, np.uint8))
        files[f"{a}/outputs.npz"] = buf.getvalue()
        _remanifest(files, a)
        opts, expect = ["--max-file-mb", "1"], "unpacks to 4 MB of arrays, over the limit of 1 MB per file"
    elif case == "pax_header_bomb":  # a 3 MB extended header, which tarfile reads whole into memory
        info = _info(f"{a}/extra.json", 2, pax_headers={"comment": "x" * 3_000_000})
        return _write(bad, files, [(info, b"{}")], tarfile.PAX_FORMAT), ["--max-archive-mb", "1"], \
            "unpacks to more than the limit of 1 MB per archive"
    else:
        raise AssertionError(case)
    return _write(bad, files), opts, expect


HOSTILE = ["planted_renamed", "planted_forged", "tampered_config", "tampered_fingerprint", "tampered_file",
           "tampered_manifest_hash", "tampered_manifest_type", "tampered_manifest_list", "sparse_gnu", "sparse_pax",
           "symlink", "hardlink", "truncated", "corrupt", "oversized_file", "oversized_archive", "npz_bomb",
           "pax_header_bomb"]


def _fer_runs(argv, capsys) -> tuple[int, str, str]:
    from fer_lib.commands.runs import main

    with pytest.raises(SystemExit) as done:
        main(argv)
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


def _temporaries(root):
    return [p for p in root.rglob("*") if p.name.startswith(TMP_PREFIXES)]


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_archive_is_refused_in_one_line_and_the_store_is_unchanged(tmp_path, monkeypatch, capsys, case):
    bad, opts, expect = _hostile(case, tmp_path)
    dst = tmp_path / "dst"
    RunStore(dst).run("teacher", {"keep": 1}, "fp", _compute([]))  # the store already holds a run
    monkeypatch.setenv("FER_RUNS", str(dst))
    before = _snapshot(tmp_path)
    code, out, err = _fer_runs(["import", str(bad), *opts], capsys)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("fer-runs import: error: "), err
    assert expect in err, err
    assert _snapshot(tmp_path) == before, "nothing written: neither the store nor beside it"
    assert not _temporaries(tmp_path)


def test_the_good_archive_the_hostile_ones_are_made_from_is_imported(tmp_path, monkeypatch, capsys):
    runs, good = _source(tmp_path)
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "dst"))
    code, out, err = _fer_runs(["import", str(good)], capsys)
    assert code == 0 and "2 run(s) added" in out, err
    for r in runs:
        copy = tmp_path / "dst" / "teacher" / r.key
        check_run(copy)
        assert _snapshot(copy) == _snapshot(r.path)
    assert not _temporaries(tmp_path)


def test_a_distilled_student_is_keyed_with_the_teacher_version_it_reads(tmp_path, monkeypatch, capsys):
    """fer-runs gives the store's key rule the kinds a run reads (from the run-kind registry): a distilled student's
    key hashes the teacher version, and its import passes; the runs layer's default (reads nothing) refuses it."""
    store = RunStore(tmp_path / "src")
    cfg = {"teachers": [{"model": "t"}], "i": 1}
    run = store.run("student", cfg, "fp", _compute([]), reads=("teacher",))
    export_runs([run.path], tmp_path / "s.tar.gz", key_of=lambda k, c, f: store.key(k, c, f, ("teacher",)))
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "dst"))
    code, out, err = _fer_runs(["import", str(tmp_path / "s.tar.gz")], capsys)
    assert code == 0 and "1 run(s) added" in out, err
    with pytest.raises(CorruptRunError, match="config of run student/"):
        check_run(tmp_path / "dst" / "student" / run.key)


# ------------------------------------------------------------------------------------ publish, export, verify
def _fake_plan(monkeypatch, runs: dict[str, object]):
    """``fer-runs`` reads these runs as the profile's plan (no parameter file, no data)."""
    from fer_lib.commands import runs as runs_cli

    plan = {f"01/{name}": PlannedRun("01", name, r.kind, r.key) for name, r in runs.items()}
    monkeypatch.setattr(runs_cli, "plan_profile", lambda *a, **k: plan)
    monkeypatch.setattr(runs_cli, "weights_needed", lambda *a, **k: set())
    return plan


def test_publish_names_every_damaged_run_and_copies_none_of_them(tmp_path, monkeypatch, capsys):
    store = RunStore(tmp_path / "local")
    runs = {f"r{i}": store.run("teacher", {"i": i}, "fp", _compute([])) for i in range(4)}
    (runs["r1"].path / "outputs.npz").write_bytes(b"rot")  # bit rot
    planted = store.path("teacher", "f" * 20)  # r2's files filed under another key
    planted.mkdir()
    for p in runs["r2"].path.iterdir():
        (planted / p.name).write_bytes(p.read_bytes())
    runs["r2"] = store.find("teacher", "f" * 20)
    monkeypatch.setenv("FER_RUNS", str(store.root))
    _fake_plan(monkeypatch, runs)
    tier = tmp_path / "tier"
    code, out, err = _fer_runs(["publish", "--to", str(tier)], capsys)
    assert code == 1 and "2 run(s) written" in out
    assert "NOT published, damaged: 01/r1: run teacher/" in err and "outputs.npz does not match the hash" in err
    assert "NOT published, damaged: 01/r2: run teacher/ffff" in err and "config of run teacher/" in err
    assert sorted(p.name for p in (tier / "teacher").iterdir()) == sorted([runs["r0"].key, runs["r3"].key])


def test_already_published_compares_content_not_names(tmp_path):
    run = RunStore(tmp_path / "a").run("teacher", {"x": 1}, "fp", _compute([]))
    path, changed = publish_run(run.path, tmp_path / "tier")
    assert changed and publish_run(run.path, tmp_path / "tier") == (path, False)
    (path / "metrics.json").write_text('{"test": {"accuracy": 1.0}}')  # same names, other content
    assert publish_run(run.path, tmp_path / "tier") == (path, True)
    assert (path / "metrics.json").read_bytes() == (run.path / "metrics.json").read_bytes()
    check_run(path)
    assert not _temporaries(tmp_path)


def test_publish_drops_the_host_name_unless_asked(tmp_path):
    run = RunStore(tmp_path / "a").run("teacher", {"x": 1}, "fp", _compute([]))
    assert "host" in run.provenance
    path, _ = publish_run(run.path, tmp_path / "tier")
    pub = RunStore(tmp_path / "b", published=[tmp_path / "tier"]).find("teacher", run.key)
    assert "host" not in pub.provenance and pub.provenance["key"] == run.key  # read through its manifest
    path, changed = publish_run(run.path, tmp_path / "tier", keep_hostname=True)
    assert changed and json.loads((path / "provenance.json").read_text())["host"] == run.provenance["host"]


def test_export_only_reads_its_runs(tmp_path):
    store = RunStore(tmp_path / "src")
    run = store.run("teacher", {"x": 1}, "fp", _compute([]))
    (run.path / "manifest.json").unlink()  # a run from before manifests
    before = _snapshot(run.path)
    export_runs([run.path], tmp_path / "a.tar.gz")
    assert _snapshot(run.path) == before, "export wrote into its source run"
    added, _ = import_archive(tmp_path / "a.tar.gz", tmp_path / "dst")
    check_run(added[0])
    (run.path / "config.json").write_text(json.dumps({**run.config, "config": {"x": 2}}))
    with pytest.raises(CorruptRunError, match=f"nothing exported: 1 run.*teacher/{run.key}.*config of run"):
        export_runs([run.path], tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()


def test_import_replace_puts_a_good_copy_in_place_of_a_damaged_one(tmp_path, monkeypatch, capsys):
    runs, archive = _source(tmp_path, n=1)
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "dst"))
    assert _fer_runs(["import", str(archive)], capsys)[0] == 0
    local = RunStore(tmp_path / "dst").find("teacher", runs[0].key)
    (local.path / "outputs.npz").write_bytes(b"rot")
    with pytest.raises(CorruptRunError) as err:
        RunStore(tmp_path / "dst").find("teacher", runs[0].key).arrays()
    assert "`fer-runs import --replace ARCHIVE`" in str(err.value)  # the hint names the command that works
    code, out, _ = _fer_runs(["import", str(archive)], capsys)
    assert code == 0 and "1 already there" in out and "--replace" in out
    code, out, _ = _fer_runs(["import", "--replace", str(archive)], capsys)
    assert code == 0 and "1 run(s) added" in out
    fixed = RunStore(tmp_path / "dst").find("teacher", runs[0].key)
    assert fixed.arrays()["test_logits"].shape == (3, 3)
    code, out, _ = _fer_runs(["import", "--replace", str(archive)], capsys)  # the same content: left alone
    assert code == 0 and "0 run(s) added" in out and "1 already there" in out
    assert not _temporaries(tmp_path)


def test_verify_refuses_a_run_filed_under_another_key_before_retraining(tmp_path, monkeypatch, capsys):
    store = RunStore(tmp_path / "local")
    run = store.run("teacher", {"x": 1}, "fp", _compute([]))
    planted = store.path("teacher", "e" * 20)
    planted.mkdir()
    for p in run.path.iterdir():
        (planted / p.name).write_bytes(p.read_bytes())
    monkeypatch.setenv("FER_RUNS", str(store.root))
    _fake_plan(monkeypatch, {"planted": store.find("teacher", "e" * 20)})
    from fer_lib.tasks import sections
    monkeypatch.setattr(sections, "train_run", lambda *a, **k: pytest.fail("verify retrained a planted run"))
    code, _, err = _fer_runs(["verify", "e" * 20, "--profile", "smoke"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"config of run teacher/{run.key}" in err


@pytest.mark.parametrize("command", ["import", "publish"])
def test_a_full_disk_says_what_this_command_kept_and_that_it_is_run_again(tmp_path, monkeypatch, capsys, command):
    from fer_lib.commands import runs as runs_cli

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(runs_cli, "import_archive", full)
    monkeypatch.setattr(runs_cli, "publish_run", full)
    run = RunStore(tmp_path / "local").run("teacher", {"x": 1}, "fp", _compute([]))
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "local"))
    _fake_plan(monkeypatch, {"r": run})
    code, _, err = _fer_runs(["import", "a.tar.gz"] if command == "import" else ["publish", "--to", "t"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "the disk is full writing" in err and str(tmp_path / "x") in err
    assert "resume" not in err and f"{command} again" in err


# ------------------------------------------------------------------------------------ a run arriving twice
def test_a_rename_onto_a_run_already_there_keeps_that_copy(tmp_path):
    first, ours = tmp_path / "teacher" / ("a" * 20), tmp_path / "teacher" / ".tmp-x"
    for d, text in ((first, "first"), (ours, "ours")):
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(text)
    assert move_into_place(ours, first) is False
    assert (first / "metrics.json").read_text() == "first" and not ours.exists()


@contextlib.contextmanager
def _no_lock(self, kind, key, enabled=True, wait=True):
    yield True


def _importer(archive, root, barrier, results):
    barrier.wait()
    added, present = import_archive(archive, root)
    results.put(("import", len(added), len(present)))


def _trainer(root, barrier, results):
    barrier.wait()

    def slow(out, scratch):
        time.sleep(0.5)  # the importer lands meanwhile
        _compute([], value=0.9)(out, scratch)

    run = RunStore(root).run("teacher", {"i": 0}, "fp", slow)
    results.put(("train", run.key, 0))


def _race(tmp_path, monkeypatch, locks, targets):
    """Run ``targets`` ([(function, args)]) at once in processes; their results once all are done."""
    if not locks:  # no store lock at all: the renames themselves race
        monkeypatch.setattr(RunStore, "_lock", _no_lock)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(len(targets)), ctx.Queue()
    procs = [ctx.Process(target=f, args=(*args, barrier, results)) for f, args in targets]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(procs), "a racing process failed"
    return [results.get(timeout=5) for _ in procs]


@pytest.mark.parametrize("locks", [True, False], ids=["locked", "unlocked"])
def test_two_importers_at_once_leave_one_complete_copy(tmp_path, monkeypatch, locks):
    runs, archive = _source(tmp_path)
    dst = tmp_path / "dst"
    out = _race(tmp_path, monkeypatch, locks, [(_importer, (archive, dst)), (_importer, (archive, dst))])
    assert sum(r[1] for r in out) == 2 and sum(r[2] for r in out) == 2, out  # each run added once, found once
    assert sorted(p.name for p in (dst / "teacher").iterdir() if not p.name.startswith(".")) == \
        sorted(r.key for r in runs)
    for r in runs:
        check_run(dst / "teacher" / r.key)
    assert not _temporaries(dst)


@pytest.mark.parametrize("locks", [True, False], ids=["locked", "unlocked"])
def test_an_importer_and_a_trainer_at_once_leave_one_complete_copy(tmp_path, monkeypatch, locks):
    runs, archive = _source(tmp_path, n=1)
    dst = tmp_path / "dst"
    out = dict((r[0], r) for r in _race(tmp_path, monkeypatch, locks,
                                        [(_importer, (archive, dst)), (_trainer, (dst,))]))
    assert out["train"][1] == runs[0].key
    assert [p.name for p in (dst / "teacher").iterdir() if not p.name.startswith(".")] == [runs[0].key]
    check_run(dst / "teacher" / runs[0].key)
    value = json.loads((dst / "teacher" / runs[0].key / "metrics.json").read_text())["test"]["accuracy"]
    assert value == (0.0 if out["import"][1] else 0.9)  # the importer's copy if it added it, else the trainer's
    assert not _temporaries(dst) and not (dst / "teacher" / ".partial" / runs[0].key).exists()
