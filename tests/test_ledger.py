"""The verification ledger: append-only, hash-chained, merged into a tier, and the cross-machine tolerance."""
from __future__ import annotations

import json

import pytest

from fer_lib.runs import ledger


def entry(key, machine="AMD EPYC", delta=0.0, bitwise=True):
    return {"key": key, "machine": machine, "bitwise": bitwise, "max_abs_delta": {"accuracy": delta, "loss": 0.5}}


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


def test_tolerance_bitwise_on_the_same_cpu_and_within_0_03_elsewhere():
    assert ledger.passes(True, {"accuracy": 0.0}, bitwise=True)
    assert not ledger.passes(True, {"accuracy": 1e-7}, bitwise=False)  # same CPU model: must be exact
    assert ledger.passes(False, {"accuracy": 0.029, "loss": 0.4}, bitwise=False)  # loss is not a headline metric
    assert not ledger.passes(False, {"macro_f1": 0.031}, bitwise=False)


def test_reproduced_sentence_counts_runs_machines_and_the_largest_headline_delta():
    entries = [entry("a", "AMD EPYC"), entry("a", "Intel Xeon", 0.012, False), entry("zz")]
    text = ledger.reproduced(entries, ["a", "b"])
    assert text.startswith("1 of its 2 runs reproduced") and "2 machine model(s)" in text
    assert "1 of 2 verification(s) bitwise equal" in text and "0.012" in text
    assert ledger.reproduced([], ["a"]).startswith("none of its 1 runs")
