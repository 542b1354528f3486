"""Re-keying a stored run when the rule that fingerprints its data changes, not the data.

A run's key hashes its data fingerprint (``RunStore.key``). When a loader's fingerprint rule is corrected -- 07's
hashed decoded float spectrograms, whose last bits differ between CPU families, and now hashes the WAV files and the
decoding recipe -- the same data gets a new fingerprint, and every stored run of it would be "missing" although
nothing it was computed from changed. ``rekey_run`` moves such a run to the key its stored config gives under the
new fingerprint and says so in its provenance::

    "rekeyed": [{"from_key", "from_data_fingerprint", "reason", "date", "commit"}]

What it refuses: a run that is not whole or not keyed by its config under the current rule (``check_run``), and a
new fingerprint that is not the one the caller computed from the run's own ``data`` config (``fer-runs rekey``
computes it by loading that data; it never takes a typed fingerprint). The new folder is written under a
per-process temporary name, checked, and renamed into place before the old one is removed; a rerun after a crash
between the two finds the new copy and only removes the old. The verification ledger keeps the old keys (it is a
hash chain); ``former_keys`` gives them back, and the sections' notes count them as the runs' own.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

from .manifest import CorruptRunError, read_manifest, write_manifest
from .provenance import git_commit, now
from .transfer import KeyOf, check_run


def former_keys(prov: dict) -> list[str]:
    """The keys a run was stored under before it was re-keyed (oldest first)."""
    return [entry["from_key"] for entry in prov.get("rekeyed", []) if isinstance(entry, dict) and "from_key" in entry]


def rekey_run(run_dir: Path, fingerprint_of: Callable[[dict], str], key_of: KeyOf, reason: str) -> Path | None:
    """Move the run at ``run_dir`` (``<store>/<kind>/<key>``) to the key ``key_of`` gives its stored config with the
    fingerprint ``fingerprint_of(stored config)`` gives its data now; the new folder, or None when its fingerprint
    is that already. The run is checked before its config is read."""
    run_dir = Path(run_dir)
    kind = run_dir.parent.name
    check_run(run_dir, key_of, "Restore it (git checkout for a published run) before re-keying it.",
              need_manifest=False)
    stored = json.loads((run_dir / "config.json").read_text())
    old_fingerprint, old_key = stored["data_fingerprint"], stored["key"]
    new_fingerprint = fingerprint_of(stored["config"])
    if old_fingerprint == new_fingerprint:
        return None
    new_key = key_of(kind, stored["config"], new_fingerprint)
    final = run_dir.parent / new_key
    if final.is_dir():
        prov = json.loads((final / "provenance.json").read_text())
        if old_key not in former_keys(prov):
            raise CorruptRunError(f"run {kind}/{old_key}: its new key {new_key} is taken by another run ({final}), "
                                  "not by an earlier re-keying of this one; remove one of the two by hand")
        check_run(final, key_of, "An earlier re-keying left it damaged: remove it and re-key again.")
        shutil.rmtree(run_dir)  # an earlier attempt renamed the new copy into place and stopped before this
        return final
    manifest = read_manifest(run_dir) or {}
    extra = {k: v for k, v in manifest.items() if k != "files"}
    tmp = run_dir.parent / f".rekey-{new_key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    shutil.copytree(run_dir, tmp)
    try:
        config = {**stored, "key": new_key, "data_fingerprint": new_fingerprint}
        (tmp / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True))
        prov_path = tmp / "provenance.json"
        prov = json.loads(prov_path.read_text()) if prov_path.is_file() else {}
        history = list(prov.get("rekeyed", [])) + [{"from_key": old_key, "from_data_fingerprint": old_fingerprint,
                                                   "reason": reason, "date": now(), "commit": git_commit()}]
        prov.update(key=new_key, data_fingerprint=new_fingerprint, rekeyed=history)
        prov_path.write_text(json.dumps(prov, indent=2, sort_keys=True))
        write_manifest(tmp, **extra)
        os.rename(tmp, final)  # fails if another process got there first: then nothing is removed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    check_run(final, key_of, "The re-keyed copy does not check: remove it; the original is kept.")
    shutil.rmtree(run_dir)
    return final
