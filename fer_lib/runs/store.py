"""The run store: results cached by config.

A run is identified by its kind, its config, the content fingerprint of its data and the compute
version of its kind (``fer_lib.runs.versions``; with the versions of the kinds it reads):
``key = sha256(kind, config, data_fingerprint, {kind: version, ...})[:20]``. A complete
run lives in ``<root>/<kind>/<key>/`` with ``config.json``, ``provenance.json`` and whatever
the compute function wrote (metrics, history, logits, weights).

- **hit**: the folder exists -> a ``Run`` is returned at once, nothing is computed;
- **miss**: ``compute(out_dir, scratch)`` writes into a fresh temporary folder, which is
  renamed into place only when complete (a rename is atomic), so a half-written run is
  never read; ``scratch`` (``<root>/<kind>/.partial/<key>/``) survives interruptions and
  holds the training checkpoint the next attempt resumes from;
- concurrent processes asking for the same run wait on a file lock instead of computing
  it twice; under DDP every rank computes, rank 0 writes;
- a writer holds that lock (``<root>/<kind>/.locks/<key>.lock``) for as long as its temporary
  folder exists, so a ``.tmp-<key>-*`` folder whose lock is free was left by a killed writer:
  ``run`` removes its key's on taking the lock, ``clean()`` those of every key;
- a run that arrives twice (a trainer and ``fer-runs import``, or two imports) is kept once: the second rename
  onto the first's complete folder fails, and the second copy is dropped (``move_into_place``).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
import uuid
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .. import paths
from ..atomic import atomic_write
from ..config import config_hash
from .manifest import MANIFEST, CorruptRunError, check_file, read_manifest, write_manifest
from .provenance import environment, now
from .versions import compute_version

Compute = Callable[[Path, Path], None]


class Run:
    """Read access to one complete run folder; every file read is first checked against the run's manifest.

    ``hit``: the store returned it without computing; ``published``: it was found in a published tier
    (``results/<profile>/``), which is read-only."""

    def __init__(self, path: Path, hit: bool = False, published: bool = False):
        self.path = Path(path)
        self.hit = hit
        self.published = published
        self._manifest: dict | None = None
        self._checked: set[str] = set()

    def __repr__(self):
        return f"Run({self.path})"

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def kind(self) -> str:
        return self.path.parent.name

    @property
    def recover(self) -> str:
        """What to do about a damaged file of this run."""
        if self.published:
            return (f"It is a published result: restore it with `git checkout -- {self.path}`, or recompute and "
                    f"compare it with `fer-runs verify {self.key}`.")
        return (f"Delete {self.path} and run again: the run is recomputed (or put a good copy in its place with "
                "`fer-runs import --replace ARCHIVE`).")

    def manifest(self) -> dict | None:
        if self._manifest is None:
            self._manifest = read_manifest(self.path)
            if self._manifest is None and self.published:
                raise CorruptRunError(f"run {self.key}: published run {self.path} has no {MANIFEST}, so its files "
                                      f"cannot be checked. {self.recover}")
        return self._manifest

    def file(self, name: str) -> Path:
        """The path of the run's file ``name``, checked against the manifest on first access."""
        if name not in self._checked:
            manifest = self.manifest()
            if manifest is not None:
                check_file(self.path, name, manifest, self.recover)
            if self.published and not (self.path / name).exists():
                raise FileNotFoundError(
                    f"published run {self.key} ({self.path}) holds no {name}: a published tier keeps only what the "
                    f"book reads. Train the run into the local store (`fer-train`, or `fer-runs verify {self.key}`), "
                    "or `fer-runs import` an export of the full run.")
            self._checked.add(name)
        return self.path / name

    def json(self, name: str) -> dict:
        path = self.file(name)
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            raise CorruptRunError(f"run {self.key}: {path} is not valid JSON ({exc}). {self.recover}") from exc

    @property
    def config(self) -> dict:
        return self.json("config.json")

    @property
    def metrics(self) -> dict:
        return self.json("metrics.json")

    @property
    def provenance(self) -> dict:
        return self.json("provenance.json")

    @property
    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.file("history.csv"))

    def arrays(self, name: str = "outputs") -> dict[str, np.ndarray]:
        path = self.file(f"{name}.npz")
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise CorruptRunError(f"run {self.key}: {path} cannot be read ({type(exc).__name__}: {exc}). "
                                  f"{self.recover}") from exc


class MissingRunError(LookupError):
    """A run is needed and in no store, and computing it is not allowed here (``FER_NO_TRAIN``)."""


class RunStore:
    """The local store (``root``, written) in front of the published tiers (``published``, read-only).

    A key is looked up in the local store first, then in each published tier in order; a miss computes into the
    local store. By default -- ``RunStore()`` -- the local store is ``FER_RUNS`` (``<project>/runs``) and the
    published tiers are ``FER_RESULTS`` or every ``<project>/results/<profile>/``; a store given an explicit
    ``root`` reads no published tier unless ``published`` names some (tests stay hermetic)."""

    def __init__(self, root: str | Path | None = None, published: list[str | Path] | None = None,
                 weights_of: frozenset[str] | set[str] = frozenset()):
        """``weights_of``: kinds whose runs count only with their weights (``weights.safetensors``), for a store that
        trains their readers: a copy without them (published runs never carry a teacher's) is then missing, and the
        run computed in its place replaces a local copy. ``tasks.kinds.weights_read_kinds()`` names them."""
        self.root = Path(root) if root else paths.runs_dir()
        if published is None:
            published = paths.published_roots() if root is None else []
        self.published = [Path(p) for p in published]
        self.weights_of = frozenset(weights_of)

    def needing_weights(self, kinds: frozenset[str] | set[str]) -> "RunStore":
        """This store as a run that loads the weights of ``kinds`` sees it (a student its teachers')."""
        kinds = self.weights_of | frozenset(kinds)
        return self if kinds == self.weights_of else RunStore(self.root, self.published, kinds)

    def usable(self, kind: str, run_dir: Path) -> bool:
        """``run_dir`` can stand for its run here: complete, and with its weights where this store needs them."""
        return run_dir.is_dir() and (kind not in self.weights_of or (run_dir / WEIGHTS).is_file())

    def key(self, kind: str, config: dict, data_fingerprint: str, reads: tuple[str, ...] = ()) -> str:
        """The run's key: its kind, config, data and the compute versions of its kind and of the kinds it reads."""
        return config_hash(kind, config, data_fingerprint, compute_version(kind, reads))[:20]

    def path(self, kind: str, key: str) -> Path:
        """Where the local store keeps (or will keep) the run ``key``."""
        return self.root / kind / key

    def scratch(self, kind: str, key: str) -> Path:
        """The run's training state while it is unfinished (``last.pt``: an interrupted run resumes from it)."""
        return self.root / kind / ".partial" / key

    def interrupted(self, kind: str, key: str) -> bool:
        """An earlier attempt at the run trained at least one epoch and stopped before it was stored."""
        return (self.scratch(kind, key) / "last.pt").is_file()

    def find(self, kind: str, key: str) -> Run | None:
        """The complete run ``key`` from the local store, else from the first published tier that has it."""
        if self.usable(kind, self.path(kind, key)):
            return Run(self.path(kind, key), hit=True)
        for tier in self.published:
            if self.usable(kind, tier / kind / key):
                return Run(tier / kind / key, hit=True, published=True)
        return None

    def get(self, kind: str, config: dict, data_fingerprint: str, reads: tuple[str, ...] = ()) -> Run | None:
        return self.find(kind, self.key(kind, config, data_fingerprint, reads))

    def run(self, kind: str, config: dict, data_fingerprint: str, compute: Compute, env=None,
            reads: tuple[str, ...] = (), trains: bool = True) -> Run:
        """The cached run for this config, computing (and storing) it on a miss. ``reads``: the kinds of run
        the computation reads (a student's teachers), whose compute versions the key then includes. ``trains``:
        False for a run computed in seconds from stored runs (an ensemble), which ``FER_NO_TRAIN`` allows."""
        key = self.key(kind, config, data_fingerprint, reads)
        final = self.path(kind, key)
        if (found := self.find(kind, key)) is not None:
            return found
        if trains and os.environ.get("FER_NO_TRAIN"):
            raise MissingRunError(f"run {kind}/{key} is in no store ({self.root}, or {len(self.published)} published "
                                  "tier(s)) and FER_NO_TRAIN is set (fer-report --no-train reads runs only): train it "
                                  "with `fer-train` (`fer-train --profile P --plan` lists the missing runs)")
        is_main = env is None or env.is_main
        with self._lock(kind, key, enabled=is_main):
            if self.usable(kind, final):  # another process finished it while we waited
                return Run(final, hit=True)
            if is_main:
                self._remove_tmp(kind, key)  # we hold the key's lock: no live writer owns them
            scratch = self.scratch(kind, key)
            tmp = self.root / kind / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
            if is_main:
                scratch.mkdir(parents=True, exist_ok=True)
                tmp.mkdir(parents=True)
            if env is not None:
                env.barrier()
            started, t0 = now(), time.perf_counter()
            resumed = self.interrupted(kind, key)
            try:
                compute(tmp, scratch)
                if is_main:
                    _write_json(tmp / "config.json", {"kind": kind, "key": key, "config": config,
                                                      "data_fingerprint": data_fingerprint})
                    _write_json(tmp / "provenance.json", {
                        **environment(getattr(env, "device", None)), "kind": kind, "key": key,
                        "data_fingerprint": data_fingerprint, "training_id": tmp.name.rsplit("-", 1)[-1],
                        "started": started, "finished": now(),
                        "wall_seconds": round(time.perf_counter() - t0, 2), "resumed": resumed,
                        "world_size": getattr(env, "world_size", 1)})
                    write_manifest(tmp)
                    if final.is_dir() and not self.usable(kind, final):  # a copy without the weights we need
                        replace_run(tmp, final)
                    elif not move_into_place(tmp, final):
                        warnings.warn(f"run {kind}/{key} arrived from another process (an import) while this one "
                                      f"computed it: {final} keeps that copy, this one was dropped")
                    shutil.rmtree(scratch, ignore_errors=True)
            finally:
                if is_main and tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
            if env is not None:
                env.barrier()
        return Run(final)

    @contextmanager
    def _lock(self, kind: str, key: str, enabled: bool = True, wait: bool = True):
        """Hold the key's lock; yields True, or False (holding nothing) when ``wait`` is False and
        another process holds it."""
        if not enabled:
            yield True
            return
        lock_dir = self.root / kind / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        lock_file = lock_dir / f"{key}.lock"
        try:  # never through a symbolic link: open(..., "w") would follow one and truncate what it points at
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise OSError(f"cannot lock {lock_file}: it is a symbolic link, which the store never makes; delete it "
                          "and run again") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            except OSError as exc:  # a filesystem without flock (Lustre mounted without flock/localflock)
                raise OSError(exc.errno, f"cannot lock {lock_file} ({exc.strerror}): the run store's filesystem "
                              "does not support flock; on Lustre mount it with flock (or localflock), or move the "
                              "store (FER_RUNS) to a filesystem that has it", str(lock_file)) from exc
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _remove_tmp(self, kind: str, key: str) -> list[Path]:
        """Remove the key's temporary folders; the caller holds the key's lock, so none is being written."""
        stale = sorted((self.root / kind).glob(f".tmp-{key}-*"))
        for d in stale:
            shutil.rmtree(d, ignore_errors=True)
        return stale

    def clean(self, kind: str | None = None) -> list[Path]:
        """Remove the temporary folders that killed writers left (of ``kind``, or of every kind); a folder
        whose key is locked -- a run being computed now -- is kept. Returns the folders removed."""
        kinds = [self.root / kind] if kind else sorted(d for d in self.root.glob("*") if d.is_dir())
        removed = []
        for d in kinds:
            keys = sorted({t.name[len(".tmp-"):].rsplit("-", 1)[0] for t in d.glob(".tmp-*-*") if t.is_dir()})
            for key in keys:
                with self._lock(d.name, key, wait=False) as locked:
                    if locked:
                        removed += self._remove_tmp(d.name, key)
        return removed

    def runs(self, kind: str) -> list[Run]:
        d = self.root / kind
        return [Run(p) for p in sorted(d.iterdir()) if p.is_dir() and not p.name.startswith(".")] if d.is_dir() else []


def move_into_place(tmp: Path, final: Path) -> bool:
    """Rename the complete run folder ``tmp`` to ``final``. False -- ``tmp`` removed -- when another process's
    complete copy of the same run got there first: renaming onto a non-empty folder fails (ENOTEMPTY or EEXIST),
    so exactly one complete copy stays, and a reader never sees a mix of two."""
    try:
        os.rename(tmp, final)
        return True
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return False


def replace_run(new: Path, final: Path) -> None:
    """Put the complete folder ``new`` where ``final`` is: two renames, so a reader sees the old copy or the new."""
    old = final.parent / f".old-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.rename(final, old)
    move_into_place(new, final)
    shutil.rmtree(old, ignore_errors=True)


#: a run's trained weights (a published copy leaves them out, unless its kind's publish rule keeps them)
WEIGHTS = "weights.safetensors"


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))


def write_json_atomic(path: Path, obj) -> None:
    with atomic_write(path) as tmp:
        _write_json(tmp, obj)
