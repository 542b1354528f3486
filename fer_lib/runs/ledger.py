"""The verification ledger: where each published run was reproduced, and how closely.

``fer-runs verify`` retrains a run and appends one entry here: the run, the machine (CPU or GPU model and its
``machine_id``), the library and torch versions, the date, the largest |difference| per metric group, whether every
metric was bitwise equal, and each headline metric's |difference| with the tolerance it was held to and where that
came from. The file is JSON lines and append-only (an entry written under an older rule stays as written); each entry
carries the SHA-256 of the previous one (``prev``) and its own (``hash``), so an edited, dropped or reordered line is
detected (``read`` names it). The local store keeps ``<run store>/verifications.jsonl``; ``fer-runs publish`` carries
its entries into ``results/<profile>/`` (``merge``), and each section's provenance says where its runs were
reproduced (``reproduced``).

The rule (``passes``): a run recomputed on the machine that trained it -- the same ``machine_id`` in both
provenances (``provenance.machine_id``: CPU vendor/family/model/stepping, the ISA torch dispatches to, the kernel
flags, torch, the GPU) -- must match bitwise, the engine being deterministic there. Otherwise, or when the trained run
recorded no ``machine_id`` (a CPU name alone, such as "AMD EPYC", does not tell two hosts apart), the seeded run
followed another floating-point path and its outcome is one more draw from the run-to-run spread: it passes when every
headline metric (a flat metric whose last dotted part is in ``HEADLINE``) moved by at most the half-width of the 95%
prediction interval for one new draw, t_{0.975, n-1} * sd * sqrt(1 + 1/n), over that metric in the n other stored
seeds of its arm (the verified run's own value left out), when n >= ``MIN_SEEDS`` (3); with fewer, by at most its
kind's fallback (``RunKind.cross_machine_fallback``, 0.03 unless a kind says otherwise).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
from pathlib import Path


LEDGER = "verifications.jsonl"
GENESIS = "0" * 64
HEADLINE = ("accuracy", "macro_f1", "fscore", "miou")
MIN_SEEDS = 3  # other seeds of the arm whose spread gives the cross-machine tolerance
# The fallback where an arm has fewer than MIN_SEEDS other seeds: absolute, on metrics in [0, 1], and not derived
# from any measured spread; a run kind may declare its own (``RunKind.cross_machine_fallback``).
DEFAULT_FALLBACK = 0.03


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


def is_headline(metric: str) -> bool:
    """Whether a flat metric name (``val.macro_f1``) is a headline metric: its last dotted part is in ``HEADLINE``."""
    return metric.split(".")[-1] in HEADLINE


def prediction_half_width(values: list[float]) -> float:
    """Half-width of the 95% prediction interval for one new draw from the population ``values`` come from:
    t_{0.975, n-1} * sd * sqrt(1 + 1/n), with sd the sample standard deviation (n - 1 in its denominator)."""
    from scipy import stats  # here, not at the top: scipy.stats adds 1.2 s to every command's start

    n = len(values)
    return float(stats.t.ppf(0.975, n - 1) * statistics.stdev(values) * math.sqrt(1 + 1 / n))


def tolerances(kind: str, arm: str, metrics: list[str], seeds: list[dict[str, float]],
               fallback: float = DEFAULT_FALLBACK) -> dict[str, dict]:
    """{metric: {"tolerance", "from"}} for a run of ``kind`` in ``arm`` whose other seeds' flat metrics are
    ``seeds``: ``prediction_half_width`` of that metric's values in them when ``MIN_SEEDS`` or more have it, else
    the kind's fallback."""
    out = {}
    for name in metrics:
        values = [s[name] for s in seeds if name in s and math.isfinite(s[name])]
        if len(values) >= MIN_SEEDS:
            out[name] = {"tolerance": prediction_half_width(values),
                         "from": f"prediction interval over {len(values)} seeds of arm {arm}"}
        else:
            out[name] = {"tolerance": fallback,
                         "from": f"fallback for {kind} ({len(values)} other seed(s) of arm {arm}, "
                                 f"fewer than {MIN_SEEDS})"}
    return out


def same_machine(trained: dict, here: dict) -> bool:
    """Whether two provenances name one machine: both record a ``machine_id`` and it is the same. Never from the
    CPU's name: a run trained without a ``machine_id`` was trained on an unknown machine."""
    return bool(trained.get("machine_id")) and trained.get("machine_id") == here.get("machine_id")


def passes(same: bool, bitwise: bool, delta: dict[str, float], tolerance: dict[str, float]) -> bool:
    """The rule above: bitwise on the machine that trained the run; elsewhere the |difference| ``delta`` of every
    metric ``tolerance`` names within its tolerance (a metric missing from ``delta``, or NaN there, fails)."""
    if same:
        return bitwise
    return all(delta.get(name, math.nan) <= limit for name, limit in tolerance.items())


def reproduced(entries: list[dict], keys: list[str], former: dict[str, str] | None = None) -> str:
    """One sentence: how many of ``keys`` were recomputed, on which machines, how many verifications passed their
    rule (and were bitwise equal), with the largest headline |delta|. ``former`` maps a key a run had before it was
    re-keyed (``fer_lib.runs.rekey``) to its key now: entries under the old key count as the run's."""
    current = {**(former or {}), **{k: k for k in keys}}
    mine = [{**e, "key": current[e["key"]]} for e in entries if e.get("key") in current]
    if not mine:
        return f"none of its {len(keys)} runs has been recomputed by `fer-runs verify` yet"
    machines = sorted({e["machine"] for e in mine})
    worst = max((v for e in mine for k, v in e["max_abs_delta"].items() if k in HEADLINE), default=0.0)
    runs = len({e["key"] for e in mine})
    exact, passed = sum(e["bitwise"] for e in mine), sum(e["passed"] for e in mine)
    return (f"{runs} of its {len(keys)} runs recomputed by `fer-runs verify` on {len(machines)} machine model(s) "
            f"({'; '.join(machines)}): {passed} of {len(mine)} verification(s) passed their rule ({exact} bitwise "
            f"equal), largest headline |difference| {worst:.3g}")
