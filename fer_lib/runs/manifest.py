"""A run's manifest: the sha256 and size of each of its files, written when the run completes or is published.

Every file read through a ``Run`` is checked against it (once per ``Run`` object), so bit rot, a truncated copy or
a hand-edited published result is an error naming the run, the file and how to recover -- never read silently.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"


class CorruptRunError(RuntimeError):
    """A run's file is missing, or its content no longer matches the hash recorded for it."""


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(run_dir: Path, **extra) -> dict:
    """``{"files": {name: {"sha256", "bytes"}}, **extra}`` over every file of ``run_dir`` but the manifest."""
    files = {p.name: {"sha256": file_sha256(p), "bytes": p.stat().st_size}
             for p in sorted(Path(run_dir).iterdir()) if p.is_file() and p.name != MANIFEST}
    return {"files": files, **extra}


def write_manifest(run_dir: Path, **extra) -> dict:
    manifest = build_manifest(run_dir, **extra)
    (Path(run_dir) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def read_manifest(run_dir: Path) -> dict | None:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest.get("files"), dict):
            raise ValueError("no 'files' table")
        for name, entry in manifest["files"].items():  # a hand-made manifest is checked before it is trusted
            if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                    and type(entry.get("bytes")) is int and entry["bytes"] >= 0):
                raise ValueError(f"its entry for {name!r} is not {{sha256: hex, bytes: size}}")
        return manifest
    except (ValueError, AttributeError) as exc:
        raise CorruptRunError(f"run {Path(run_dir).name}: its manifest {path} is unreadable ({exc})") from exc


def check_file(run_dir: Path, name: str, manifest: dict, recover: str) -> None:
    """Raise ``CorruptRunError`` unless ``run_dir/name`` exists with the hash ``manifest`` records."""
    path = Path(run_dir) / name
    entry = manifest["files"].get(name)
    if entry is None:
        return  # not part of the run (an optional file such a run does not write); the caller's open fails
    if not path.is_file():
        raise CorruptRunError(f"run {Path(run_dir).name}: {path} is missing (its manifest lists it). {recover}")
    size = path.stat().st_size
    if size != entry["bytes"] or file_sha256(path) != entry["sha256"]:
        raise CorruptRunError(f"run {Path(run_dir).name}: {path} is damaged ({size} bytes; its manifest records "
                              f"{entry['bytes']} bytes and another sha256). {recover}")
