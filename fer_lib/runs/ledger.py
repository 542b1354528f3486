"""The verification ledger: where each published run was reproduced, and how closely.

``fer-runs verify`` retrains a run and appends one entry here: the run, the machine (CPU or GPU model), the library
and torch versions, the date, the largest |difference| per metric group and whether every metric was bitwise equal.
The file is JSON lines and append-only; each entry carries the SHA-256 of the previous one (``prev``) and its own
(``hash``), so an edited, dropped or reordered line is detected (``read`` names it). The local store keeps
``<run store>/verifications.jsonl``; ``fer-runs publish`` carries its entries into ``results/<profile>/`` (``merge``),
and each section's provenance says where its runs were reproduced (``reproduced``).

Tolerance: a run recomputed on the CPU model that trained it must match bitwise (the engine is deterministic there);
on another CPU or GPU model, oneDNN/cuDNN pick other kernels, the last digits move and can move a best epoch, so a
verification passes when every headline metric (``HEADLINE``) is within ``CROSS_MACHINE_TOLERANCE``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

LEDGER = "verifications.jsonl"
GENESIS = "0" * 64
HEADLINE = ("accuracy", "macro_f1", "fscore", "miou")
CROSS_MACHINE_TOLERANCE = 0.03  # absolute, on metrics in [0, 1]


class CorruptLedgerError(ValueError):
    """A ledger line was edited, dropped or reordered."""


def _digest(entry: dict) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def read(path: Path) -> list[dict]:
    """Every entry of the ledger at ``path`` (none if it does not exist), its hash chain checked."""
    path = Path(path)
    if not path.is_file():
        return []
    entries, prev = [], GENESIS
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            raise CorruptLedgerError(f"{path}: line {n} is not JSON: the ledger was damaged; restore it with git "
                                     "(`git checkout -- <file>`)") from None
        if entry.get("prev") != prev or entry.get("hash") != _digest(entry):
            raise CorruptLedgerError(f"{path}: line {n} does not chain to the line before (edited, dropped or "
                                     "reordered); restore the file with git (`git checkout -- <file>`)")
        entries.append(entry)
        prev = entry["hash"]
    return entries


def append(path: Path, record: dict) -> dict:
    """Append ``record`` (chained to the last entry) and return the entry as written."""
    path = Path(path)
    entries = read(path)
    entry = {**{k: v for k, v in record.items() if k not in ("prev", "hash")},
             "prev": entries[-1]["hash"] if entries else GENESIS}
    entry["hash"] = _digest(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return entry


def merge(source: Path, target: Path) -> int:
    """Append to ``target`` every entry of ``source`` it lacks (same content, re-chained); how many were added."""
    def content(e: dict) -> str:
        return json.dumps({k: v for k, v in e.items() if k not in ("prev", "hash")}, sort_keys=True)

    have = {content(e) for e in read(target)}
    added = 0
    for entry in read(source):
        if content(entry) not in have:
            append(target, entry)
            have.add(content(entry))
            added += 1
    return added


def passes(same_machine: bool, max_abs_delta: dict[str, float], bitwise: bool) -> bool:
    """The tolerance rule above: bitwise on the machine model that trained the run, else every headline metric
    group within ``CROSS_MACHINE_TOLERANCE``."""
    if same_machine:
        return bitwise
    return all(v <= CROSS_MACHINE_TOLERANCE for k, v in max_abs_delta.items() if k in HEADLINE)


def reproduced(entries: list[dict], keys: list[str]) -> str:
    """One sentence: how many of ``keys`` were reproduced, on which machines, with the largest headline |delta|."""
    mine = [e for e in entries if e.get("key") in set(keys)]
    if not mine:
        return f"none of its {len(keys)} runs has been reproduced by `fer-runs verify` yet"
    machines = sorted({e["machine"] for e in mine})
    worst = max((v for e in mine for k, v in e["max_abs_delta"].items() if k in HEADLINE), default=0.0)
    runs = len({e["key"] for e in mine})
    exact = sum(e["bitwise"] for e in mine)
    return (f"{runs} of its {len(keys)} runs reproduced by `fer-runs verify` on {len(machines)} machine model(s) "
            f"({'; '.join(machines)}): {exact} of {len(mine)} verification(s) bitwise equal, largest headline "
            f"|difference| {worst:.3g}")
