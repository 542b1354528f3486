"""Decode once: a dataset's pixels cached as one uint8 ``.npz`` keyed by a fingerprint of its files.

The cache key hashes each source file's relative path, size and modification time (cheap:
no file is read); the cached archive also stores the *content* fingerprint of the decoded
data, which is what run keys use, so a copied dataset (new mtimes) re-decodes once but
keeps its run-store results. Archives are written to a temporary file and renamed, so a
half-written cache is never read.
"""
from __future__ import annotations

import hashlib
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from .. import paths
from ..atomic import atomic_write
from .dataset import LabeledImages

CACHE_VERSION = 1
T = TypeVar("T")


def files_fingerprint(files: list[Path], base: Path) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f.relative_to(base)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def contents_fingerprint(files: list[Path], base: Path, recipe: str) -> str:
    """sha256 of each file's path relative to ``base`` and its bytes, and of the ``recipe`` that decodes them.

    The fingerprint of a dataset whose decoded values are floats (spectrograms): torch's STFT and ``log`` round
    differently on AVX2 and AVX-512 CPUs, so a hash of the decoded values -- and every run key built on it --
    would change with the CPU family. Bytes on disk do not. Reads every file once; called when decoding, and
    kept in the decoded-data cache."""
    h = hashlib.sha256(f"contents\0{recipe}\n".encode())
    for f in sorted(files):
        h.update(f"{f.relative_to(base)}\0".encode())
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        h.update(b"\n")
    return h.hexdigest()


#: what reading a damaged ``.npz`` raises: truncated (BadZipFile, EOFError), bit rot (ValueError, zlib.error via
#: OSError-free paths), a missing array (KeyError)
DAMAGED = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def read_or_rebuild(path: Path, read: Callable[[Path], T], rebuild: Callable[[], T], what: str) -> T:
    """``read(path)`` when the derived file ``path`` exists and reads; else ``rebuild()`` (which writes it again).
    A damaged file is removed and rebuilt, with a warning naming it: derived files heal instead of failing every
    run the same way."""
    path = Path(path)
    if path.exists():
        try:
            return read(path)
        except DAMAGED as exc:
            warnings.warn(f"{what} {path} is damaged ({type(exc).__name__}: {exc}); removing it and rebuilding it",
                          stacklevel=3)
            path.unlink(missing_ok=True)
    return rebuild()


def cached(name: str, key: str, decode: Callable[[], LabeledImages], cache_dir: Path | None = None) -> LabeledImages:
    """The dataset for ``key`` from ``cache_dir``, decoding and storing it on a miss (or when the cache is damaged)."""
    cache_dir = Path(cache_dir or paths.cache_dir()) / "datasets"
    path = cache_dir / f"{name}-{key[:20]}.npz"

    def rebuild() -> LabeledImages:
        data = decode()
        save_npz(data, path)
        return data

    return read_or_rebuild(path, load_npz, rebuild, "the decoded-dataset cache")


def write_npz_atomic(path: Path, **arrays) -> None:
    """``np.savez`` into a temporary file in ``path``'s folder, renamed into place: never read half-written."""
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def save_npz(data: LabeledImages, path: Path) -> None:
    write_npz_atomic(path, images=data.images, labels=data.labels, split=data.split.astype(str),
                     ids=data.ids.astype(str), classes=np.array(data.classes, dtype=str),
                     notes=np.array(data.notes, dtype=str), name=np.array(data.name),
                     fingerprint=np.array(data.fingerprint))


def load_npz(path: Path) -> LabeledImages:
    with np.load(path, allow_pickle=False) as z:
        return LabeledImages(
            name=str(z["name"]), images=z["images"], labels=z["labels"].astype(np.int64),
            split=z["split"], classes=tuple(z["classes"].tolist()), ids=z["ids"],
            notes=tuple(z["notes"].tolist()), fingerprint=str(z["fingerprint"]),
        )
