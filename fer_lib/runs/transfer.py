"""Moving finished runs between stores: publish into a read-only tier, export to and import from an archive.

- ``publish_run``: copy the files of a run the book reads into ``<tier>/<kind>/<key>/`` with a fresh manifest;
  written to a per-process temporary folder and renamed into place, so a half-published run is never read.
- ``export_runs`` / ``import_archive``: a ``.tar.gz`` of ``<kind>/<key>/<file>`` members. Import trusts nothing:
  only regular files of the store's own types (json, csv, npz without pickled objects, safetensors), no absolute
  paths, ``..``, links or devices, every run with a manifest whose hashes match. Everything is unpacked and checked
  in a temporary folder first; only then are the runs renamed into the store, so a refused archive leaves the store
  exactly as it was, and the error names the offending member.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import uuid
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from .manifest import MANIFEST, build_manifest, file_sha256, read_manifest
from .versions import COMPUTE_VERSIONS

#: file types a run may hold (anything else in an archive is refused)
RUN_FILE_TYPES = (".json", ".csv", ".npz", ".safetensors")
#: files a published run never holds (training state lives in ``.partial``, never in a run folder)
NEVER_PUBLISHED = ("weights.safetensors",)
_KEY = re.compile(r"^[0-9a-f]{20}$")


class ArchiveError(ValueError):
    """An archive that ``import_archive`` refuses; the message names the member."""


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def published_files(run_dir: Path, keep_weights: bool = False) -> list[str]:
    """The files of ``run_dir`` a published copy keeps: all but the weights, unless ``keep_weights``."""
    return sorted(p.name for p in Path(run_dir).iterdir() if p.is_file() and p.name != MANIFEST
                  and (keep_weights or p.name not in NEVER_PUBLISHED))


def publish_run(run_dir: Path, tier: Path, keep_weights: bool = False, **meta) -> tuple[Path, bool]:
    """Copy the run at ``run_dir`` into ``tier`` (``<tier>/<kind>/<key>``); (its path, whether anything changed).
    A run already published with the same files is left alone; one whose file set differs is replaced."""
    run_dir = Path(run_dir)
    kind, key = run_dir.parent.name, run_dir.name
    final = Path(tier) / kind / key
    names = published_files(run_dir, keep_weights)
    if final.is_dir():
        manifest = read_manifest(final)
        if manifest is not None and sorted(manifest["files"]) == names:
            return final, False
    tmp = final.parent / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        for name in names:
            shutil.copy2(run_dir / name, tmp / name)
        manifest = build_manifest(tmp, **meta)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if final.is_dir():  # replace: move the old copy aside first (two renames; readers see one or the other)
            old = final.parent / f".old-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final, True


def export_runs(run_dirs: list[Path], archive: Path) -> int:
    """Write the complete runs ``run_dirs`` (every file, manifest included) into a ``.tar.gz``; bytes written."""
    archive = Path(archive)
    with atomic_write(archive) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            for run_dir in run_dirs:
                run_dir = Path(run_dir)
                if read_manifest(run_dir) is None:  # runs from before manifests: give them one
                    (run_dir / MANIFEST).write_text(json.dumps(build_manifest(run_dir), indent=2, sort_keys=True))
                for p in sorted(run_dir.iterdir()):
                    if p.is_file():
                        tar.add(p, arcname=f"{run_dir.parent.name}/{run_dir.name}/{p.name}", recursive=False)
    return archive.stat().st_size


def _check_member(member: tarfile.TarInfo) -> tuple[str, str, str]:
    """(kind, key, file name) of a member the store accepts; ``ArchiveError`` naming it otherwise."""
    name = member.name
    if not member.isfile():
        what = "a link" if member.issym() or member.islnk() else "a device" if member.isdev() else \
            "a folder" if member.isdir() else "not a regular file"
        if member.isdir():
            return "", "", ""  # folders are implied by the files' paths; nothing is created from them
        raise ArchiveError(f"member {name!r} is {what}: a run archive holds regular files only")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"member {name!r} has an absolute path")
    parts = name.split("/")
    if ".." in parts or "." in parts or any(not p for p in parts):
        raise ArchiveError(f"member {name!r} has '..', '.' or an empty part in its path")
    if len(parts) != 3:
        raise ArchiveError(f"member {name!r} is not <kind>/<key>/<file>")
    kind, key, fname = parts
    if kind not in COMPUTE_VERSIONS:
        raise ArchiveError(f"member {name!r}: unknown run kind {kind!r} (expected one of {', '.join(COMPUTE_VERSIONS)})")
    if not _KEY.match(key):
        raise ArchiveError(f"member {name!r}: {key!r} is not a run key (20 hex digits)")
    if not fname.endswith(RUN_FILE_TYPES):
        raise ArchiveError(f"member {name!r}: a run holds only {', '.join(RUN_FILE_TYPES)} files")
    return kind, key, fname


def _check_content(path: Path, member: str) -> None:
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                for k in z.files:
                    z[k]  # an object array needs pickle and raises here
        except Exception as exc:  # noqa: BLE001 - any failure to read it without pickle refuses it
            raise ArchiveError(f"member {member!r} is not an npz of plain arrays ({type(exc).__name__}: {exc})") from exc
    elif path.suffix == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="np") as fh:
                list(fh.keys())
        except Exception as exc:  # noqa: BLE001
            raise ArchiveError(f"member {member!r} is not a safetensors file ({exc})") from exc
    elif path.suffix == ".json":
        try:
            json.loads(path.read_text())
        except ValueError as exc:
            raise ArchiveError(f"member {member!r} is not valid JSON ({exc})") from exc


def import_archive(archive: Path, store_root: Path) -> tuple[list[Path], list[Path]]:
    """Unpack ``archive`` into the store at ``store_root`` if every member passes; (runs added, runs already
    there). Raises ``ArchiveError`` (the store unchanged) otherwise."""
    archive, store_root = Path(archive), Path(store_root)
    if not archive.is_file():
        raise ArchiveError(f"{archive}: no such archive")
    store_root.mkdir(parents=True, exist_ok=True)
    staging = store_root / f".import-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        try:
            tar = tarfile.open(archive, "r:*")
        except (tarfile.TarError, OSError) as exc:
            raise ArchiveError(f"{archive}: not a tar archive ({exc})") from exc
        runs: set[tuple[str, str]] = set()
        with tar:
            for member in tar:
                kind, key, fname = _check_member(member)
                if not kind:
                    continue
                dest = staging / kind / key / fname
                if dest.exists():
                    raise ArchiveError(f"member {member.name!r} appears twice")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
                _check_content(dest, member.name)
                runs.add((kind, key))
        for kind, key in sorted(runs):
            run_dir = staging / kind / key
            manifest = read_manifest(run_dir)
            if manifest is None:
                raise ArchiveError(f"run {kind}/{key} in {archive} has no {MANIFEST}: its files cannot be checked")
            files = {p.name for p in run_dir.iterdir() if p.name != MANIFEST}
            if files != set(manifest["files"]):
                raise ArchiveError(f"run {kind}/{key}: its files {sorted(files)} are not those its manifest lists "
                                   f"{sorted(manifest['files'])}")
            for name, entry in manifest["files"].items():
                if file_sha256(run_dir / name) != entry["sha256"]:
                    raise ArchiveError(f"member '{kind}/{key}/{name}' does not match the hash its manifest records")
        added, present = [], []
        for kind, key in sorted(runs):
            final = store_root / kind / key
            if final.is_dir():
                present.append(final)
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging / kind / key, final)
            added.append(final)
        return added, present
    finally:
        shutil.rmtree(staging, ignore_errors=True)
