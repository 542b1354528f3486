"""Moving finished runs between stores: publish into a read-only tier, export to and import from an archive.

Every run that moves is checked first (``check_run``): its files against its manifest (size and sha256), and its
key against its ``config.json`` -- the store's key rule (``key_of``) applied to the stored config and data
fingerprint must give the folder's name, so a run filed under another run's key is refused, not served as it.

- ``publish_run``: copy the files of a run the book reads into ``<tier>/<kind>/<key>/`` with a fresh manifest and
  without the training machine's host name; written to a per-process temporary folder and renamed into place, so a
  half-published run is never read. A run already published with the same content is left alone.
- ``export_runs`` / ``import_archive``: a ``.tar.gz`` of ``<kind>/<key>/<file>`` members. Export only reads its
  runs. Import trusts nothing: only regular files of the store's own types (json, csv, npz without pickled objects,
  safetensors), no absolute paths, ``..``, links, devices or sparse members, no member over ``max_file_mb`` and no
  more than ``max_archive_mb`` unpacked, every run whole and keyed by its config. Everything is unpacked and checked
  in a temporary folder first; only then are the runs renamed into the store (under the store's lock of each key),
  so a refused, truncated or corrupt archive leaves the store exactly as it was, and the error names the member.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import tarfile
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import atomic_write
from .manifest import MANIFEST, CorruptRunError, build_manifest, file_sha256, read_manifest
from .provenance import shareable
from .store import Run, RunStore, move_into_place, replace_run
from .versions import COMPUTE_VERSIONS

#: file types a run may hold (anything else in an archive is refused)
RUN_FILE_TYPES = (".json", ".csv", ".npz", ".safetensors")
#: files a published run never holds (training state lives in ``.partial``, never in a run folder)
NEVER_PUBLISHED = ("weights.safetensors",)
#: what an import unpacks at most, sized from the published tier results/real-cpu (its largest file is a
#: segmenter's weights, 7.0 MB; 31.5 MB in all): about 4x each. An export of local runs carries every run's weights
#: (a real-cpu ResNet-18 teacher's are 45 MB): raise them (``--max-file-mb``, ``--max-archive-mb``) for one you trust.
MAX_FILE_MB = 32.0
MAX_ARCHIVE_MB = 128.0
_KEY = re.compile(r"^[0-9a-f]{20}$")

#: the store's key rule as ``key_of(kind, stored config, data fingerprint) -> key``; ``fer-runs`` passes one that
#: knows, from the run-kind registry, which kinds a run reads (this layer cannot import it)
KeyOf = Callable[[str, dict, str], str]


class ArchiveError(ValueError):
    """An archive that ``import_archive`` refuses; the message names the member."""


def key_reading_nothing(kind: str, config: dict, data_fingerprint: str) -> str:
    """The store's key for a run that reads no other kind of run (the default ``key_of``)."""
    return RunStore(Path(".")).key(kind, config, data_fingerprint)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def check_run(run_dir: Path, key_of: KeyOf = key_reading_nothing, recover: str = "", need_manifest: bool = True):
    """Raise ``CorruptRunError`` (naming the run, then ``recover``) unless the run at ``run_dir`` is whole and is the
    run its key names: its manifest lists exactly its files, each with its size and sha256, and its config.json
    (kind, config, data fingerprint) gives its key under ``key_of``. A local run from before manifests passes the
    first check when not ``need_manifest``."""
    run_dir = Path(run_dir)
    kind, key = run_dir.parent.name, run_dir.name

    def refuse(why: str):
        raise CorruptRunError(f"run {kind}/{key}: {why}. {recover}".rstrip())

    try:
        manifest = read_manifest(run_dir)
    except CorruptRunError as exc:
        refuse(f"its {MANIFEST} is unreadable ({exc.__cause__})")
    if manifest is None and need_manifest:
        refuse(f"it has no {MANIFEST}, so its files cannot be checked")
    if manifest is not None:
        files = {p.name for p in run_dir.iterdir() if p.name != MANIFEST}
        if files != set(manifest["files"]):
            refuse(f"its files {sorted(files)} are not those its manifest lists {sorted(manifest['files'])}")
        for name, entry in sorted(manifest["files"].items()):
            size = (run_dir / name).stat().st_size
            if size != entry["bytes"] or file_sha256(run_dir / name) != entry["sha256"]:
                refuse(f"its file {name} does not match the hash its manifest records" +
                       (f" ({size} bytes; the manifest records {entry['bytes']})" if size != entry["bytes"] else ""))
    try:
        stored = json.loads((run_dir / "config.json").read_text())
        expected = key_of(kind, stored["config"], stored["data_fingerprint"])
    except (OSError, ValueError, LookupError, TypeError, AttributeError) as exc:
        refuse(f"its config.json gives no key ({type(exc).__name__}: {exc})")
    if (stored.get("kind"), stored.get("key"), expected) != (kind, key, key):
        refuse(f"its config.json is the config of run {kind}/{expected}, not of {kind}/{key} (a run filed under "
               "another key, or computed under other compute versions)")


def _same_content(run_dir: Path, files: dict) -> bool:
    """``run_dir`` holds exactly ``files`` ({name: {sha256, bytes}}) by content, and its manifest says so."""
    try:
        manifest = read_manifest(run_dir) if run_dir.is_dir() else None
    except CorruptRunError:
        return False
    return manifest is not None and manifest["files"] == files == build_manifest(run_dir)["files"]


def published_files(run_dir: Path, keep_weights: bool = False) -> list[str]:
    """The files of ``run_dir`` a published copy keeps: all but the weights, unless ``keep_weights``."""
    return sorted(p.name for p in Path(run_dir).iterdir() if p.is_file() and p.name != MANIFEST
                  and (keep_weights or p.name not in NEVER_PUBLISHED))


class AnotherTrainingError(Exception):
    """The tier holds another training of the run's key (a teacher trained again for its weights): kept, since what
    was computed from it (ensembles, students) reads that copy."""


def training_id(run_dir: Path) -> str | None:
    """What tells two trainings of one key apart: the id its store gave the training (``provenance.json``), or for a
    run from before that field when it started."""
    try:
        prov = json.loads((Path(run_dir) / "provenance.json").read_text())
    except (OSError, ValueError):
        return None
    return prov.get("training_id") or prov.get("started")


def publish_run(run_dir: Path, tier: Path, keep_weights: bool = False, keep_hostname: bool = False,
                key_of: KeyOf = key_reading_nothing, replace_training: bool = False, **meta) -> tuple[Path, bool]:
    """Copy the run at ``run_dir`` into ``tier`` (``<tier>/<kind>/<key>``); (its path, whether anything changed).
    The run is checked first (``check_run``; ``CorruptRunError`` names it). A run already published with the same
    content is left alone; one whose content differs is replaced -- unless the tier's copy is another training of
    the key (``AnotherTrainingError``; ``replace_training`` replaces it anyway: then rebuild what read it). The host
    name leaves only with ``keep_hostname``."""
    run_dir = Path(run_dir)
    check_run(run_dir, key_of, Run(run_dir).recover, need_manifest=False)
    final = Path(tier) / run_dir.parent.name / run_dir.name
    if (not replace_training and final.is_dir() and training_id(final) is not None
            and training_id(final) != training_id(run_dir)):
        raise AnotherTrainingError(f"{final} is another training of this key (training {training_id(final)}, "
                                   f"the local copy's {training_id(run_dir)}): kept, as the runs computed from it "
                                   "read it "
                                   "(`fer-runs verify KEY --local` records how far the two differ; "
                                   "`fer-runs publish --replace-training` publishes the local one)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{run_dir.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name in published_files(run_dir, keep_weights):
            shutil.copy2(run_dir / name, tmp / name)
        prov = json.loads((tmp / "provenance.json").read_text()) if (tmp / "provenance.json").is_file() else {}
        if shareable(prov, keep_hostname) != prov:
            (tmp / "provenance.json").write_text(json.dumps(shareable(prov, keep_hostname), indent=2, sort_keys=True))
        manifest = build_manifest(tmp, **meta)
        if _same_content(final, manifest["files"]):
            return final, False
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if final.is_dir():
            replace_run(tmp, final)
        else:
            move_into_place(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final, True


def _member(name: str, size: int) -> tarfile.TarInfo:
    """A regular file member owned by nobody in particular (no user or group name leaves the machine)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    return info


def export_runs(run_dirs: list[Path], archive: Path, key_of: KeyOf = key_reading_nothing) -> int:
    """Write the complete runs ``run_dirs`` (every file, manifest first) into a ``.tar.gz``; bytes written. Every run
    is checked first (``CorruptRunError`` names each damaged one); the run folders are only read -- a run from
    before manifests gets one in the archive, not on disk."""
    run_dirs = [Path(d) for d in run_dirs]
    damaged = []
    for run_dir in run_dirs:
        try:
            check_run(run_dir, key_of, Run(run_dir).recover, need_manifest=False)
        except CorruptRunError as exc:
            damaged.append(str(exc))
    if damaged:
        raise CorruptRunError(f"nothing exported: {len(damaged)} run(s) are damaged: " + " | ".join(damaged))
    archive = Path(archive)
    with atomic_write(archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for run_dir in run_dirs:
            prefix = f"{run_dir.parent.name}/{run_dir.name}"
            manifest = run_dir / MANIFEST
            data = manifest.read_bytes() if manifest.is_file() else \
                json.dumps(build_manifest(run_dir), indent=2, sort_keys=True).encode()
            tar.addfile(_member(f"{prefix}/{MANIFEST}", len(data)), io.BytesIO(data))
            for p in sorted(run_dir.iterdir()):
                if p.is_file() and p.name != MANIFEST:
                    with open(p, "rb") as fh:
                        tar.addfile(_member(f"{prefix}/{p.name}", os.fstat(fh.fileno()).st_size), fh)
    return archive.stat().st_size


def _check_member(member: tarfile.TarInfo, max_file: int) -> tuple[str, str, str]:
    """(kind, key, file name) of a member the store accepts, or ("", "", "") for a folder (nothing is made from it);
    ``ArchiveError`` naming it otherwise -- all from its header, before a byte of it is written."""
    name = member.name
    if member.isdir():
        return "", "", ""  # folders are implied by the files' paths
    if member.issparse():  # GNU sparse: a few bytes that unpack to member.size of zeros
        raise ArchiveError(f"member {name!r} is a sparse file ({member.size} bytes when unpacked): a run archive "
                           "holds regular files only")
    if not member.isfile():
        what = "a link" if member.issym() or member.islnk() else "a device" if member.isdev() else "not a regular file"
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
    if member.size > max_file:
        raise ArchiveError(f"member {name!r} is {member.size / 1e6:.3g} MB, over the limit of {max_file / 1e6:g} MB "
                           "per file: if you trust the archive, raise it with --max-file-mb")
    return kind, key, fname


def _check_content(path: Path, member: str, max_file: int) -> None:
    """Refuse a file the store could not read safely: an npz holding pickles or unpacking past ``max_file`` (a zip
    bomb is refused from its directory, before it is decompressed), a safetensors or JSON file that does not parse."""
    if path.suffix == ".npz":
        try:
            with zipfile.ZipFile(path) as zf:
                unpacked = sum(i.file_size for i in zf.infolist())
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ArchiveError(f"member {member!r} is not an npz ({exc})") from exc
        if unpacked > max_file:
            raise ArchiveError(f"member {member!r} unpacks to {unpacked / 1e6:.3g} MB of arrays, over the limit of "
                               f"{max_file / 1e6:g} MB per file: if you trust the archive, raise it with --max-file-mb")
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


class _Capped:
    """An archive's decompressed stream that refuses to yield more than ``limit`` bytes: whatever tarfile reads -- a
    member, a long name, a pax header it keeps in memory -- a small archive never unpacks into more than that."""

    def __init__(self, fh, limit: int, archive: Path):
        self.fh, self.left, self.limit, self.archive = fh, limit, limit, archive

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(self.left + 1 if n is None or n < 0 else min(n, self.left + 1))
        self.left -= len(data)
        if self.left < 0:
            raise ArchiveError(f"{self.archive} unpacks to more than the limit of {self.limit / 1e6:g} MB per archive: "
                               "if you trust it, raise it with --max-archive-mb")
        return data


def _unpack(archive: Path, staging: Path, max_file: int, max_archive: int) -> set[tuple[str, str]]:
    """Write the members of ``archive`` under ``staging``, each checked before it is written; the (kind, key) of
    every run met. The archive is first read through once, writing nothing: gzip checks its CRC and length at the
    end, so a truncated or damaged archive is named as such (not by the first garbled member), and one unpacking
    past ``max_archive`` is refused before anything is written."""
    with gzip.open(archive) as raw:
        stream = _Capped(raw, max_archive, archive)
        while stream.read(1 << 20):
            pass
    runs = set()
    with gzip.open(archive) as raw, tarfile.open(fileobj=_Capped(raw, max_archive, archive), mode="r|") as tar:
        for member in tar:
            kind, key, fname = _check_member(member, max_file)
            if not kind:
                continue
            dest = staging / kind / key / fname
            if dest.exists():
                raise ArchiveError(f"member {member.name!r} appears twice")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
            _check_content(dest, member.name, max_file)
            runs.add((kind, key))
    return runs


def import_archive(archive: Path, store_root: Path, key_of: KeyOf = key_reading_nothing, replace: bool = False,
                   max_file_mb: float = MAX_FILE_MB, max_archive_mb: float = MAX_ARCHIVE_MB
                   ) -> tuple[list[Path], list[Path]]:
    """Add the runs of ``archive`` to the store at ``store_root`` if every member and every run passes; (runs added,
    runs already there). A run already there -- before, or arriving from another process meanwhile -- is kept and
    the archive's copy dropped, unless ``replace`` and its content differs (a damaged local copy): then the archive's
    takes its place. Raises ``ArchiveError`` otherwise, the store unchanged and no temporary folder left."""
    archive, store = Path(archive), RunStore(store_root)
    if not archive.is_file():
        raise ArchiveError(f"{archive}: no such archive")
    store.root.mkdir(parents=True, exist_ok=True)
    staging = store.root / f".import-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        try:
            runs = _unpack(archive, staging, int(max_file_mb * 1e6), int(max_archive_mb * 1e6))
        except (EOFError, tarfile.TarError, zlib.error, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise  # the disk or the store, not the archive
            raise ArchiveError(f"{archive} is truncated or corrupt ({type(exc).__name__}: {exc}): copy it again "
                               "from where it was made, or export it again") from exc
        for kind, key in sorted(runs):
            try:
                check_run(staging / kind / key, key_of, f"Nothing was imported from {archive}.")
            except CorruptRunError as exc:
                raise ArchiveError(str(exc)) from exc
        added, present = [], []
        for kind, key in sorted(runs):
            new, final = staging / kind / key, store.path(kind, key)
            final.parent.mkdir(parents=True, exist_ok=True)
            with store._lock(kind, key):  # a trainer computing this key finishes first, or finds it here
                if final.is_dir() and (not replace or _same_content(final, read_manifest(new)["files"])):
                    present.append(final)
                elif final.is_dir():
                    replace_run(new, final)
                    added.append(final)
                else:
                    (added if move_into_place(new, final) else present).append(final)
        return added, present
    finally:
        shutil.rmtree(staging, ignore_errors=True)
