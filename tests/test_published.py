"""The published tier of the run store, manifests, and moving runs between stores (fer-runs)."""
from __future__ import annotations

import io
import json
import os
import tarfile

import numpy as np
import pytest
from safetensors.numpy import save_file

from fer_lib.runs import RunStore
from fer_lib.runs.manifest import CorruptRunError
from fer_lib.runs.transfer import ArchiveError, export_runs, import_archive, publish_run


def _compute(calls: list, value: float = 0.5, weights: bool = True):
    def compute(out, scratch):
        calls.append(out)
        (out / "metrics.json").write_text(json.dumps({"test": {"accuracy": value}, "val": {"fscore": value}}))
        (out / "history.csv").write_text("epoch,loss\n0,1.0\n")
        np.savez(out / "outputs.npz", test_logits=np.eye(3, dtype=np.float32))
        if weights:
            save_file({"w": np.ones(4, dtype=np.float32)}, str(out / "weights.safetensors"))
    return compute


def _snapshot(root):
    return sorted((str(p.relative_to(root)), p.read_bytes() if p.is_file() else b"") for p in root.rglob("*"))


def test_a_run_is_looked_up_in_the_local_store_then_the_published_tier(tmp_path):
    local, tier, calls = RunStore(tmp_path / "a"), tmp_path / "results" / "real-cpu", []
    run = local.run("teacher", {"lr": 1}, "fp", _compute(calls))
    publish_run(run.path, tier)
    reader = RunStore(tmp_path / "empty", published=[tier])
    found = reader.run("teacher", {"lr": 1}, "fp", _compute(calls))
    assert len(calls) == 1, "a published run is read, not recomputed"
    assert found.published and found.hit and found.path == tier / "teacher" / run.key
    assert found.metrics["test"]["accuracy"] == 0.5 and found.arrays()["test_logits"].shape == (3, 3)
    assert not (tmp_path / "empty" / "teacher" / run.key).exists()
    # the local store comes first
    assert RunStore(tmp_path / "a", published=[tier]).get("teacher", {"lr": 1}, "fp").published is False
    # a store with an explicit root reads no published tier unless told to
    assert RunStore(tmp_path / "empty").get("teacher", {"lr": 1}, "fp") is None


def test_publish_keeps_what_the_book_reads_and_weights_only_when_asked(tmp_path):
    run = RunStore(tmp_path / "a").run("segmenter", {"x": 1}, "fp", _compute([]))
    tier = tmp_path / "tier"
    path, changed = publish_run(run.path, tier)
    assert changed and sorted(p.name for p in path.iterdir()) == [
        "config.json", "history.csv", "manifest.json", "metrics.json", "outputs.npz", "provenance.json"]
    assert publish_run(run.path, tier) == (path, False)  # idempotent
    path, changed = publish_run(run.path, tier, keep_weights=True)  # the file set changed: replaced
    assert changed and (path / "weights.safetensors").is_file()
    assert "weights.safetensors" in json.loads((path / "manifest.json").read_text())["files"]
    assert not [p for p in (tier / "segmenter").iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_reading_a_published_run_without_weights_says_what_to_do(tmp_path):
    run = RunStore(tmp_path / "a").run("teacher", {"x": 1}, "fp", _compute([]))
    publish_run(run.path, tmp_path / "tier")
    pub = RunStore(tmp_path / "b", published=[tmp_path / "tier"]).get("teacher", {"x": 1}, "fp")
    with pytest.raises(FileNotFoundError, match=f"published run {run.key}.*holds no weights.safetensors.*fer-runs"):
        pub.file("weights.safetensors")


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_a_damaged_published_file_is_named_with_the_way_to_recover(tmp_path, damage):
    run = RunStore(tmp_path / "a").run("teacher", {"x": 1}, "fp", _compute([]))
    path, _ = publish_run(run.path, tmp_path / "tier")
    target = path / "outputs.npz"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:40])
    elif damage == "flip":
        data = bytearray(target.read_bytes())
        data[-30] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        target.unlink()
    pub = RunStore(tmp_path / "b", published=[tmp_path / "tier"]).get("teacher", {"x": 1}, "fp")
    assert pub.metrics["test"]["accuracy"] == 0.5  # other files still read
    with pytest.raises(CorruptRunError) as err:
        pub.arrays()
    msg = str(err.value)
    assert run.key in msg and str(target) in msg and "git checkout" in msg and "fer-runs verify" in msg


def test_a_damaged_local_file_is_named_too(tmp_path):
    run = RunStore(tmp_path / "a").run("teacher", {"x": 1}, "fp", _compute([]))
    (run.path / "metrics.json").write_text('{"test": {"accuracy": 0.9}}')  # edited by hand
    again = RunStore(tmp_path / "a").get("teacher", {"x": 1}, "fp")
    with pytest.raises(CorruptRunError, match=f"run {run.key}: .*metrics.json is damaged.*Delete"):
        again.metrics


def test_a_published_run_without_a_manifest_is_refused(tmp_path):
    run = RunStore(tmp_path / "a").run("teacher", {"x": 1}, "fp", _compute([]))
    path, _ = publish_run(run.path, tmp_path / "tier")
    (path / "manifest.json").unlink()
    pub = RunStore(tmp_path / "b", published=[tmp_path / "tier"]).get("teacher", {"x": 1}, "fp")
    with pytest.raises(CorruptRunError, match="has no manifest.json"):
        pub.metrics


# ----------------------------------------------------------------------------------------------- export / import
def _exported(tmp_path, n=2, kind="student"):
    """``n`` runs of ``kind`` in a tiny store, and their export."""
    store = RunStore(tmp_path / "src")
    runs = [store.run(kind, {"i": i}, "fp", _compute([], value=i / 10)) for i in range(n)]
    archive = tmp_path / "runs.tar.gz"
    export_runs([r.path for r in runs], archive)
    return runs, archive


def test_export_then_import_reproduces_the_runs(tmp_path):
    runs, archive = _exported(tmp_path)
    added, present = import_archive(archive, tmp_path / "dst")
    assert len(added) == 2 and not present
    for r in runs:
        copy = RunStore(tmp_path / "dst").find("student", r.key)
        assert copy.metrics == r.metrics and _snapshot(copy.path) == _snapshot(r.path)
    added, present = import_archive(archive, tmp_path / "dst")  # again: nothing to add
    assert not added and len(present) == 2


def _tampered(tmp_path, mutate):
    """An archive whose members are the good export's, passed through ``mutate(name, data) -> [(TarInfo, bytes)]``."""
    _, good = _exported(tmp_path)
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(good) as src, tarfile.open(bad, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            for info, payload in mutate(m, data):
                dst.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return bad


def _member(name, data=b"{}", **kw):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data


@pytest.mark.parametrize("case, expect", [
    ("traversal", "'..'"), ("absolute", "absolute path"), ("symlink", "a link"), ("device", "a device"),
    ("pickle", "not an npz of plain arrays"), ("hash", "does not match the hash"), ("type", "holds only"),
    ("kind", "unknown run kind"), ("no_manifest", "no manifest.json"),
])
def test_import_refuses_a_bad_archive_and_leaves_the_store_unchanged(tmp_path, case, expect):
    def mutate(m, data):
        out = [(m, data)]
        kind_key = "/".join(m.name.split("/")[:2])
        first = m.name.endswith("config.json") and not getattr(mutate, "done", False)
        if not first:
            if case == "hash" and m.name.endswith("history.csv") and not getattr(mutate, "hashed", False):
                mutate.hashed = True
                info, _ = _member(m.name, b"epoch,loss\n0,9.0\n")
                return [(info, b"epoch,loss\n0,9.0\n")]
            if case == "no_manifest" and m.name.endswith("manifest.json"):
                return []
            return out
        mutate.done = True
        if case == "traversal":
            out.append(_member(f"{kind_key}/../../../evil.json"))
        elif case == "absolute":
            out.append(_member("/tmp/evil.json"))
        elif case == "symlink":
            out.append(_member(f"{kind_key}/link.json", b"", type=tarfile.SYMTYPE, linkname="/etc/passwd"))
        elif case == "device":
            out.append(_member(f"{kind_key}/dev.json", b"", type=tarfile.CHRTYPE))
        elif case == "pickle":
            buf = io.BytesIO()
            np.savez(buf, obj=np.array([{"a": 1}], dtype=object))
            out.append(_member(f"{kind_key}/outputs2.npz", buf.getvalue()))
        elif case == "type":
            out.append(_member(f"{kind_key}/run.py", b"import os"))
        elif case == "kind":
            out.append(_member(f"toy/{'a' * 20}/metrics.json"))
        return out

    bad = _tampered(tmp_path, mutate)
    dst = tmp_path / "dst"
    RunStore(dst).run("teacher", {"keep": 1}, "fp", _compute([]))  # the store already holds a run
    before = _snapshot(dst)
    with pytest.raises(ArchiveError, match=expect) as err:
        import_archive(bad, dst)
    assert "member" in str(err.value) or "run " in str(err.value)
    assert _snapshot(dst) == before, "a refused archive leaves the store exactly as it was"
    assert not (tmp_path / "evil.json").exists() and not os.path.exists("/tmp/evil.json")


@pytest.mark.slow(seconds=60)
def test_verify_retrains_one_run_of_each_kind_and_finds_its_published_metrics(tmp_path, monkeypatch, capsys):
    """fer-runs verify on a published teacher, distilled student (whose published teacher has no weights, so it
    is retrained too), face parser and audio-visual run: every metric comes back equal on this machine."""
    from fer_lib.launch.plan import plan_profile
    from fer_lib.commands.runs import main
    from fer_lib.tasks.sections import load_data, train_run

    plan = plan_profile("smoke")
    picks = ["01_teachers/resnet18", "04_kd_cifar/kd_resnet", "06_segmentation/dice_1_0", "07_asgml/baseline/seed0"]
    for label in picks:
        p = plan[label]
        train_run(p.kind, p.config, load_data(p.kind, p.data_params), progress=False)
    tier = tmp_path / "results" / "smoke"
    with pytest.raises(SystemExit) as done:
        main(["publish", "--profile", "smoke", "--to", str(tier)])
    assert done.value.code == 0
    assert {p.parent.name for p in tier.glob("*/*")} == {"teacher", "student", "segmenter", "av"}
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "empty"))
    monkeypatch.setenv("FER_RESULTS", str(tier))
    capsys.readouterr()
    for label in picks:
        with pytest.raises(SystemExit) as done:
            main(["verify", plan[label].key, "--profile", "smoke", "--scratch", str(tmp_path)])
        out = capsys.readouterr().out
        assert done.value.code == 0, out
        assert ", 0 differ" in out and "metrics compared" in out
    assert not list((tmp_path / "empty").glob("*/[0-9a-f]*")), "verify wrote into the local store"
    # each verification is in the ledger, and publish carries the ledger into the tier
    from fer_lib.runs import ledger
    entries = ledger.read(tmp_path / "empty" / ledger.LEDGER)
    assert set(picks) <= {e["run"] for e in entries} and all(e["bitwise"] and e["passed"] for e in entries)
    assert {e["kind"] for e in entries} == {"teacher", "student", "segmenter", "av"}
    # the student's teachers, published without weights, were recomputed for it: each is compared and recorded too
    teachers = [e for e in entries if e["kind"] == "teacher"]
    assert len(teachers) == 1 + len(plan["04_kd_cifar/kd_resnet"].reads), [e["run"] for e in teachers]


def test_critical_path_and_ideal_speed_up_on_a_hand_worked_graph():
    """Teachers A (10) and B (30); student S reads A and B (5); T reads A (50); C alone (20). Chains: A -> T = 60,
    B -> S = 35, C = 20; total 115, so the ideal speed-up is 115 / 60. Stored runs drop out of both."""
    from fer_lib.launch.plan import PlannedRun, critical_path

    runs = [PlannedRun("01", "A", "teacher", "a", work=10), PlannedRun("01", "B", "teacher", "b", work=30),
            PlannedRun("04", "S", "student", "s", reads=("a", "b"), work=5),
            PlannedRun("04", "T", "student", "t", reads=("a",), work=50),
            PlannedRun("06", "C", "segmenter", "c", work=20),
            PlannedRun("02", "E", "ensemble", "e", reads=("a", "b"))]
    plan = {r.label: r for r in runs}
    assert critical_path(plan) == (["01/A", "04/T"], 60, 115)
    assert critical_path(plan, done={"a"}) == (["04/T"], 50, 105)  # a stored teacher costs nothing
    assert critical_path(plan, done={"a", "t"}) == (["01/B", "04/S"], 35, 55)


def test_publish_keeps_another_training_of_a_published_key_unless_told(tmp_path):
    """A teacher trained again (for its weights) has the published key but other numbers: the published training
    stays, since ensembles and students were computed from it; --replace-training replaces it."""
    from fer_lib.runs.transfer import AnotherTrainingError

    tier = tmp_path / "tier"
    first = RunStore(tmp_path / "a").run("teacher", {"x": 1}, "fp", _compute([], 0.5))
    published, _ = publish_run(first.path, tier)
    again = RunStore(tmp_path / "b").run("teacher", {"x": 1}, "fp", _compute([], 0.51))
    assert again.key == first.key
    before = _snapshot(tier)
    with pytest.raises(AnotherTrainingError, match="another training of this key"):
        publish_run(again.path, tier)
    assert _snapshot(tier) == before
    _, changed = publish_run(again.path, tier, replace_training=True)
    assert changed and json.loads((published / "metrics.json").read_text())["test"]["accuracy"] == 0.51


def test_verify_local_compares_a_local_training_with_the_published_copy(tmp_path, monkeypatch, capsys):
    from fer_lib.commands import runs as runs_cli
    from fer_lib.launch.plan import PlannedRun
    from fer_lib.runs import ledger

    tier = tmp_path / "tier"
    first = RunStore(tmp_path / "elsewhere").run("teacher", {"x": 1}, "fp", _compute([], 0.5))
    publish_run(first.path, tier)
    local = RunStore(tmp_path / "local", published=[tier])
    plan = {"01/t": PlannedRun("01", "t", "teacher", first.key)}
    monkeypatch.setattr(runs_cli, "plan_profile", lambda *a, **k: plan)
    monkeypatch.setenv("FER_RUNS", str(local.root))
    monkeypatch.setenv("FER_RESULTS", str(tmp_path))
    monkeypatch.setattr(runs_cli.paths, "published_roots", lambda: [tier])

    def verify() -> tuple[int, str]:
        with pytest.raises(SystemExit) as done:
            runs_cli.main(["verify", first.key, "--profile", "smoke", "--local"])
        captured, code = capsys.readouterr(), done.value.code
        if isinstance(code, str):  # SystemExit(message): exit status 1 with the message on stderr
            return 1, captured.out + captured.err + code
        return code, captured.out + captured.err

    code, out = verify()  # only the published copy
    assert code != 0 and "needs a local copy and a published one" in out
    import shutil
    shutil.copytree(tier / "teacher" / first.key, local.path("teacher", first.key))  # an import: the same training
    code, out = verify()
    assert code != 0 and "the published training itself" in out
    shutil.rmtree(local.path("teacher", first.key))
    RunStore(tmp_path / "local", published=[]).run("teacher", {"x": 1}, "fp", _compute([], 0.5))  # trained here
    code, out = verify()
    assert code == 0 and "passed (bitwise on the machine that trained it" in out, out
    # on the machine that trained the published copy, any difference fails
    shutil.rmtree(local.path("teacher", first.key))
    RunStore(tmp_path / "local", published=[]).run("teacher", {"x": 1}, "fp", _compute([], 0.51))
    code, out = verify()
    assert code == 1 and "FAILED" in out
    entries = ledger.read(local.root / ledger.LEDGER)
    assert [e["bitwise"] for e in entries] == [True, False] and [e["passed"] for e in entries] == [True, False]
    assert entries[1]["headline"]["test.accuracy"]["abs_diff"] == pytest.approx(0.01)
