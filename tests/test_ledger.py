"""The verification ledger: append-only, hash-chained, merged into a tier; the machine identity that decides "same
machine"; and the cross-machine tolerance (the prediction interval over the arm's other seeds, else a fallback)."""
from __future__ import annotations

import json
import math

import pytest
from scipy import stats

from fer_lib import paths
from fer_lib.runs import ledger


def entry(key, machine="AMD EPYC", delta=0.0, bitwise=True, passed=True):
    return {"key": key, "machine": machine, "bitwise": bitwise, "passed": passed,
            "max_abs_delta": {"accuracy": delta, "loss": 0.5}}


def test_entries_chain_and_any_edit_drop_or_reorder_is_named(tmp_path):
    path = tmp_path / ledger.LEDGER
    for k in ("a", "b", "c"):
        ledger.append(path, entry(k))
    assert [e["key"] for e in ledger.read(path)] == ["a", "b", "c"]
    lines = path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["max_abs_delta"]["accuracy"] = 0.0001
    for damaged in ([lines[0], json.dumps(edited), lines[2]], [lines[0], lines[2]], [lines[1], lines[0], lines[2]]):
        path.write_text("\n".join(damaged) + "\n")
        with pytest.raises(ledger.CorruptLedgerError, match="line"):
            ledger.read(path)


def test_merge_carries_new_entries_once(tmp_path):
    local, tier = tmp_path / "local.jsonl", tmp_path / "tier.jsonl"
    ledger.append(local, entry("a"))
    ledger.append(local, entry("b"))
    assert ledger.merge(local, tier) == 2 and ledger.merge(local, tier) == 0
    ledger.append(local, entry("c"))
    assert ledger.merge(local, tier) == 1
    assert [e["key"] for e in ledger.read(tier)] == ["a", "b", "c"]


def test_prediction_half_width_on_five_hand_worked_seeds_and_against_scipy():
    """[0.50, 0.52, 0.48, 0.55, 0.51]: mean 0.512; squared deviations 0.000144 + 0.000064 + 0.001024 + 0.001444 +
    0.000004 = 0.00268, so sd = sqrt(0.00268 / 4) = 0.0258844; t_{0.975, 4} = 2.7764 (the table's); sqrt(1 + 1/5) =
    1.0954451; half-width 2.7764 * 0.0258844 * 1.0954451 = 0.078725."""
    values = [0.50, 0.52, 0.48, 0.55, 0.51]
    assert ledger.prediction_half_width(values) == pytest.approx(0.078725, abs=2e-5)
    sd = math.sqrt(0.00268 / 4)
    low, high = stats.t.interval(0.95, df=4, loc=0.512, scale=sd * math.sqrt(1 + 1 / 5))
    assert ledger.prediction_half_width(values) == pytest.approx((high - low) / 2, rel=1e-9)


def test_tolerance_is_the_prediction_interval_over_the_other_seeds_else_the_kinds_fallback():
    seeds = [{"test.accuracy": v, "val.macro_f1": 0.4} for v in (0.52, 0.48, 0.55, 0.51)]
    seeds[0]["val.macro_f1"] = math.nan  # a metric a seed could not compute is left out, not counted
    tol = ledger.tolerances("av", "07_asgml/baseline", ["test.accuracy", "val.macro_f1", "val.miou"], seeds)
    # others 0.52, 0.48, 0.55, 0.51: mean 0.515, squares sum 0.0025, sd = sqrt(0.0025 / 3); t_{0.975, 3} = 3.1824
    assert tol["test.accuracy"]["tolerance"] == pytest.approx(3.1824 * math.sqrt(0.0025 / 3) * math.sqrt(1.25),
                                                              abs=2e-5)
    assert tol["test.accuracy"]["from"] == "prediction interval over 4 seeds of arm 07_asgml/baseline"
    assert tol["val.macro_f1"]["tolerance"] == 0.0  # three equal seeds: no spread, so bitwise is all it accepts
    assert tol["val.miou"]["tolerance"] == ledger.DEFAULT_FALLBACK  # no seed has it
    assert tol["val.miou"]["from"].startswith("fallback for av (0 other seed(s)")
    two = ledger.tolerances("segmenter", "06/dice_2_0", ["val.fscore"], [{"val.fscore": 0.6}, {"val.fscore": 0.7}])
    assert two["val.fscore"] == {"tolerance": 0.03, "from": "fallback for segmenter (2 other seed(s) of arm "
                                                           "06/dice_2_0, fewer than 3)"}
    assert ledger.tolerances("new_kind", "a", ["accuracy"], [])["accuracy"]["tolerance"] == ledger.DEFAULT_FALLBACK
    assert ledger.tolerances("new_kind", "a", ["accuracy"], [], fallback=0.05)["accuracy"]["tolerance"] == 0.05


def test_passes_bitwise_on_the_same_machine_and_within_each_metrics_tolerance_elsewhere():
    assert ledger.passes(True, True, {"val.accuracy": 0.0}, {"val.accuracy": 0.03})
    assert not ledger.passes(True, False, {"val.accuracy": 1e-7}, {"val.accuracy": 0.03})  # same machine: exact
    tolerance = {"val.macro_f1": 0.1128, "test.macro_f1": 0.03}
    assert ledger.passes(False, False, {"val.macro_f1": 0.059, "test.macro_f1": 0.03}, tolerance)
    assert not ledger.passes(False, False, {"val.macro_f1": 0.059, "test.macro_f1": 0.031}, tolerance)
    assert not ledger.passes(False, False, {"val.macro_f1": 0.059}, tolerance)  # a headline metric gone: fails
    assert not ledger.passes(False, False, {"val.macro_f1": math.nan, "test.macro_f1": 0.0}, tolerance)
    assert [m for m in ("val.macro_f1", "final.test_macro_f1", "f1[2]", "fscore", "test.miou", "loss")
            if ledger.is_headline(m)] == ["val.macro_f1", "fscore", "test.miou"]


def test_same_machine_is_one_machine_id_never_the_cpu_name():
    here = {"cpu": "AMD EPYC", "machine_id": "95a644a01a75"}
    assert ledger.same_machine({"cpu": "AMD EPYC", "machine_id": "95a644a01a75"}, here)
    assert not ledger.same_machine({"cpu": "AMD EPYC", "machine_id": "0123456789ab"}, here)
    assert not ledger.same_machine({"cpu": "AMD EPYC"}, here)  # published before machine_id: unknown machine
    assert not ledger.same_machine({"cpu": "AMD EPYC"}, {"cpu": "AMD EPYC"})


def test_reproduced_sentence_counts_runs_machines_and_the_largest_headline_delta():
    entries = [entry("a", "AMD EPYC"), entry("a", "Intel Xeon", 0.012, False), entry("zz")]
    text = ledger.reproduced(entries, ["a", "b"])
    assert text.startswith("1 of its 2 runs recomputed") and "2 machine model(s)" in text
    assert "2 of 2 verification(s) passed their rule (1 bitwise equal)" in text and "0.012" in text
    assert ledger.reproduced([], ["a"]).startswith("none of its 1 runs")


def test_reproduced_reads_the_published_ledger_with_entries_written_before_the_headline_fields():
    entries = ledger.read(paths.results_dir() / "real-cpu" / ledger.LEDGER)
    old = [e for e in entries if "headline" not in e]
    assert old and len(old) < len(entries)  # history stays as written; later entries carry the headline fields
    for chosen in (old, entries):
        assert "recomputed by `fer-runs verify`" in ledger.reproduced(chosen, [e["key"] for e in chosen])


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
stepping\t: 1
microcode\t: 0x1000065
flags\t\t: fpu sse sse2 avx avx2 fma bmi2 avx512f

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
stepping\t: 2
flags\t\t: fpu sse amx_tile
"""


def test_cpuinfo_gives_the_first_processors_identity_and_kernel_flags():
    from fer_lib.runs.provenance import parse_cpuinfo

    assert parse_cpuinfo(CPUINFO) == {"vendor": "AuthenticAMD", "family": "25", "model": "1", "stepping": "1",
                                      "microcode": "0x1000065", "flags": ["avx2", "avx512f", "fma"]}
    arm = "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: 0xd0c\n"
    assert parse_cpuinfo(arm) == {"vendor": "0x41", "family": "8", "model": "0xd0c", "flags": []}
    assert parse_cpuinfo("") == {"flags": []}


def test_machine_id_hashes_what_decides_kernels_and_nothing_else():
    from fer_lib.runs.provenance import kernel_libraries, machine_id, parse_cpuinfo

    facts = {**parse_cpuinfo(CPUINFO), "capability": "AVX2", "cores": 2, "torch": "2.14.1", "onednn": "3.12.0",
             "gpu": None}
    assert len(machine_id(facts)) == 12 and machine_id(facts) == machine_id(dict(reversed(facts.items())))
    for same in ({"cores": 64}, {"microcode": "0x1000099"}, {"onednn": "3.13"}):
        assert machine_id({**facts, **same}) == machine_id(facts)
    for other in ({"stepping": "2"}, {"capability": "AVX512"}, {"flags": ["avx2"]}, {"torch": "2.15.0"},
                  {"gpu": "NVIDIA A100"}, {"vendor": "GenuineIntel"}):
        assert machine_id({**facts, **other}) != machine_id(facts)
    build = "  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build\n  - Intel(R) MKL-DNN v3.12.0 (Git"
    assert kernel_libraries(build) == {"onednn": "3.12.0", "mkl": "2024.2"} and kernel_libraries("") == {}


def test_environment_records_the_machine_and_its_id_without_the_hostname():
    import socket

    from fer_lib.runs.provenance import environment, machine_id

    env = environment("cpu")
    assert env["machine_id"] == machine_id(env["machine"]) and env["machine"]["gpu"] is None
    assert {"vendor", "capability", "flags", "cores", "torch"} <= set(env["machine"])
    assert socket.gethostname() not in json.dumps(env["machine"])


def test_verify_holds_a_run_of_unrecorded_machine_to_the_spread_of_its_arms_other_seeds(tmp_path, monkeypatch,
                                                                                          capsys):
    """Five seeds of one arm, published before machine_id (trained on a CPU named as this one is): seed 0 recomputed
    0.08 away passes on the prediction interval over seeds 1-4 (0.1027), which the 0.03 fallback would not."""
    from test_published import _compute

    from fer_lib.commands import runs as runs_cli
    from fer_lib.launch.plan import PlannedRun
    from fer_lib.runs import RunStore, store as store_module
    from fer_lib.runs.provenance import cpu_model
    from fer_lib.tasks import sections

    legacy = {"cpu": cpu_model(), "device": "cpu:x86_64 x2 threads", "torch": "2.14.1"}
    monkeypatch.setattr(store_module, "environment", lambda device=None: legacy)
    local = RunStore(tmp_path / "local")
    runs = {seed: local.run("teacher", {"seed": seed}, "fp", _compute([], value))
            for seed, value in enumerate([0.50, 0.52, 0.48, 0.55, 0.51])}
    plan = {f"01/base/seed{s}": PlannedRun("01", f"base/seed{s}", "teacher", r.key) for s, r in runs.items()}
    monkeypatch.setattr(runs_cli, "plan_profile", lambda *a, **k: plan)
    monkeypatch.setattr(sections, "load_data", lambda *a, **k: None)
    monkeypatch.setattr(sections, "train_run",
                        lambda kind, cfg, data, store: store.run("teacher", {"seed": 0}, "fp", _compute([], 0.58)))
    monkeypatch.setenv("FER_RUNS", str(local.root))
    with pytest.raises(SystemExit) as done:
        runs_cli.main(["verify", runs[0].key, "--profile", "smoke", "--scratch", str(tmp_path)])
    out = capsys.readouterr().out
    assert done.value.code == 0, out
    [entry] = ledger.read(local.root / ledger.LEDGER)
    assert entry["passed"] and not entry["bitwise"]
    assert entry["trained_on"] == f"{cpu_model()!r}, machine identity not recorded" and entry["trained_on"] in out
    assert set(entry["headline"]) == {"test.accuracy", "val.fscore"}
    accuracy = entry["headline"]["test.accuracy"]
    assert accuracy["abs_diff"] == pytest.approx(0.08)
    assert accuracy["tolerance"] == pytest.approx(0.102714, abs=2e-5)
    assert accuracy["from"] == "prediction interval over 4 seeds of arm 01/base"
