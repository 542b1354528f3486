"""Re-keying stored runs after a loader's fingerprint rule was corrected (``fer_lib.runs.rekey``, ``fer-runs rekey``)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fer_lib.runs import RunStore, ledger
from fer_lib.runs.manifest import CorruptRunError
from fer_lib.runs.rekey import former_keys, rekey_run
from fer_lib.runs.transfer import check_run, key_reading_nothing, publish_run

CONFIG = {"data": {"root": "somewhere"}, "lr": 0.1}


def _published(tmp_path, fingerprint="old-fp", config=CONFIG):
    def compute(out, scratch):
        (out / "metrics.json").write_text(json.dumps({"test": {"macro_f1": 0.5}}))
        np.savez(out / "outputs.npz", test_logits=np.eye(3, dtype=np.float32))

    run = RunStore(tmp_path / "local").run("av", config, fingerprint, compute)
    path, _ = publish_run(run.path, tmp_path / "tier", profile="real-cpu", published="2026-12-07")
    return path


def test_a_run_moves_to_the_key_of_its_new_fingerprint_with_its_history(tmp_path):
    old = _published(tmp_path)
    outputs = (old / "outputs.npz").read_bytes()
    new = rekey_run(old, lambda config: "new-fp", key_reading_nothing, "fingerprint of the WAV files")
    assert new.name == RunStore(tmp_path / "x").key("av", CONFIG, "new-fp") != old.name
    assert not old.exists() and not [p for p in new.parent.iterdir() if p.name.startswith(".")]
    check_run(new, key_reading_nothing)  # whole, and keyed by its config under the new fingerprint
    stored = json.loads((new / "config.json").read_text())
    assert (stored["key"], stored["data_fingerprint"], stored["config"]) == (new.name, "new-fp", CONFIG)
    prov = json.loads((new / "provenance.json").read_text())
    assert (prov["key"], prov["data_fingerprint"]) == (new.name, "new-fp")
    assert former_keys(prov) == [old.name] and prov["rekeyed"][0]["from_data_fingerprint"] == "old-fp"
    assert prov["rekeyed"][0]["reason"] == "fingerprint of the WAV files"
    assert (new / "outputs.npz").read_bytes() == outputs  # the results are not touched
    manifest = json.loads((new / "manifest.json").read_text())
    assert (manifest["profile"], manifest["published"]) == ("real-cpu", "2026-12-07")  # publish metadata kept
    # the store now serves it under the new fingerprint, and no longer under the old one
    reader = RunStore(tmp_path / "empty", published=[tmp_path / "tier"])
    assert reader.get("av", CONFIG, "new-fp").path == new and reader.get("av", CONFIG, "old-fp") is None
    assert rekey_run(new, lambda config: "new-fp", key_reading_nothing, "again") is None  # already there: nothing to do


def test_a_second_rekeying_appends_to_the_history(tmp_path):
    first = rekey_run(_published(tmp_path), lambda config: "fp-2", key_reading_nothing, "one")
    second = rekey_run(first, lambda config: "fp-3", key_reading_nothing, "two")
    assert former_keys(json.loads((second / "provenance.json").read_text()))[-1] == first.name
    assert len(former_keys(json.loads((second / "provenance.json").read_text()))) == 2


def test_a_damaged_or_misfiled_run_is_refused_and_left_alone(tmp_path):
    old = _published(tmp_path)
    (old / "metrics.json").write_text("{}")
    with pytest.raises(CorruptRunError, match="does not match the hash"):
        rekey_run(old, lambda config: "new-fp", key_reading_nothing, "r")
    assert old.is_dir() and len(list(old.parent.iterdir())) == 1
    other = _published(tmp_path / "b", config={**CONFIG, "lr": 0.2})
    misfiled = other.parent / ("0" * 20)
    shutil.move(other, misfiled)
    with pytest.raises(CorruptRunError, match="is the config of run"):
        rekey_run(misfiled, lambda config: "new-fp", key_reading_nothing, "r")


def test_a_rerun_after_a_crash_between_rename_and_removal_finishes(tmp_path):
    old = _published(tmp_path)
    kept = tmp_path / "kept"
    shutil.copytree(old, kept)
    new = rekey_run(old, lambda config: "new-fp", key_reading_nothing, "r")
    shutil.copytree(kept, old)  # as if the old folder had not been removed yet
    assert rekey_run(old, lambda config: "new-fp", key_reading_nothing, "r") == new and not old.exists()


def test_a_new_key_taken_by_another_run_is_refused(tmp_path):
    old = _published(tmp_path)
    squatter = _published(tmp_path / "b", fingerprint="new-fp")  # the run the new key names, trained afresh
    shutil.move(squatter, old.parent / squatter.name)
    with pytest.raises(CorruptRunError, match="taken by another run"):
        rekey_run(old, lambda config: "new-fp", key_reading_nothing, "r")
    assert old.is_dir()


def test_verifications_under_a_former_key_count_for_the_run():
    entries = [{"key": "old", "machine": "AMD EPYC", "max_abs_delta": {"macro_f1": 0.02}, "bitwise": False,
                "passed": True}]
    assert ledger.reproduced(entries, ["new"]).startswith("none of its 1 runs")
    assert ledger.reproduced(entries, ["new"], {"old": "new"}).startswith("1 of its 1 runs recomputed")


def test_fer_runs_rekey_loads_each_runs_data_for_its_new_fingerprint(tmp_path, monkeypatch, capsys):
    """The command takes no fingerprint: it loads the data each run's config names with the kind's loader."""
    from fer_lib.commands.runs import main, run_key
    from fer_lib.data.av_sources import load_av_dataset

    monkeypatch.setenv("FER_CACHE", str(tmp_path / "cache"))
    data = {"source": "synthetic", "n_train": 12, "n_val": 6, "n_test": 6}
    old = _published(tmp_path, config={"data": data, "lr": 0.1})
    with pytest.raises(SystemExit) as exit_:
        main(["rekey", "--kind", "av", "--tier", str(tmp_path / "tier"), "--reason", "test"])
    assert exit_.value.code == 0 and "1 run(s) of av re-keyed" in capsys.readouterr().out
    fingerprint = load_av_dataset(data).fingerprint
    moved = tmp_path / "tier" / "av" / run_key("av", {"data": data, "lr": 0.1}, fingerprint)
    assert moved.is_dir() and not old.exists()
    with pytest.raises(SystemExit):
        main(["rekey", "--kind", "av", "--tier", str(tmp_path / "tier"), "--reason", "test"])
    assert "0 run(s) of av re-keyed, 1 already under" in capsys.readouterr().out
