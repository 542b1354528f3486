"""CIFAR-100 in torchvision's layout, and a many-class synthetic stand-in for the smoke profile.

CIFAR-100 (seeds 002 and 003) as torchvision's ``CIFAR100`` stores it:

    <root>/cifar-100-python/train   pickled dict: b"data" (50000, 3072) uint8 (RGB planes), b"fine_labels"
    <root>/cifar-100-python/test    the same for the 10000 test images
    <root>/cifar-100-python/meta    b"fine_label_names"

``root`` may be the folder that contains ``cifar-100-python/`` or that folder itself. Nothing is
downloaded unless ``download=True`` (``data.download: true`` in the params), which delegates to
torchvision. Seed 002's split is 45k train / 5k val / 10k test: val is carved from train,
stratified, with the data seed.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .cache import cached, files_fingerprint
from .dataset import LabeledImages
from .fer2013 import DatasetError

FILES = ("train", "test", "meta")


def _folder(root: Path) -> Path:
    return root if root.name == "cifar-100-python" else root / "cifar-100-python"


def load_cifar100(root: str | Path, download: bool = False, cache_dir: Path | None = None) -> LabeledImages:
    root = Path(root)
    folder = _folder(root)
    if not all((folder / f).is_file() for f in FILES):
        if download:
            from torchvision.datasets import CIFAR100

            CIFAR100(str(root if root.name != "cifar-100-python" else root.parent), train=True, download=True)
        else:
            missing = [f for f in FILES if not (folder / f).is_file()]
            raise DatasetError(
                f"CIFAR-100 not found: {folder} lacks {missing}. Expected torchvision's layout "
                f"<root>/cifar-100-python/{{train,test,meta}}; get it with "
                f"`python -c \"import torchvision; torchvision.datasets.CIFAR100('{root}', download=True)\"` "
                f"or set data.download: true in the params")
    key = files_fingerprint([folder / f for f in FILES], folder)
    return cached("cifar100", key, lambda: _decode(folder), cache_dir)


#: The only globals a CIFAR-100 pickle refers to: numpy arrays (rebuilt by ``_reconstruct`` in the
#: original Python 2 files, ``_frombuffer`` under protocol 5), their dtypes and scalars, and
#: ``_codecs.encode`` (how Python 3 writes bytes under protocol 2). ``numpy.core`` was renamed
#: ``numpy._core`` in numpy 2; files carry either spelling.
SAFE_GLOBALS = {
    *((f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ForbiddenGlobal(pickle.UnpicklingError):
    pass


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only: any other global (os.system, eval, ...) is refused,
    so a crafted dataset file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_GLOBALS:
            raise _ForbiddenGlobal(f"it refers to the global {module}.{name}, which is not allowed (a CIFAR-100 "
                                   f"file holds only numpy arrays, lists, bytes and ints); the file is corrupt or "
                                   f"crafted to run code, so it was not loaded")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):  # numpy 2 reads numpy 1's spelling
            module = "numpy._core." + module.removeprefix("numpy.core.")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _DataOnlyUnpickler(f, encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise DatasetError(f"cannot read CIFAR-100 file {path}: {e}") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"CIFAR-100 file {path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _decode(folder: Path) -> LabeledImages:
    meta = _unpickle(folder / "meta")
    if b"fine_label_names" not in meta:
        raise DatasetError(f"{folder / 'meta'}: no b'fine_label_names' entry")
    classes = tuple(n.decode() for n in meta[b"fine_label_names"])
    imgs, labels, split, ids = [], [], [], []
    for part in ("train", "test"):
        d = _unpickle(folder / part)
        for k in (b"data", b"fine_labels"):
            if k not in d:
                raise DatasetError(f"{folder / part}: no {k!r} entry")
        data = np.asarray(d[b"data"], np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(d[b"fine_labels"]):
            raise DatasetError(f"{folder / part}: expected data of shape (N, 3072) and N labels, got {data.shape}")
        imgs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(d[b"fine_labels"], np.int64))
        split += [part] * len(data)
        names = d.get(b"filenames", [f"{i}".encode() for i in range(len(data))])
        ids += [f"{part}/{n.decode()}" for n in names]
    labels = np.concatenate(labels)
    if labels.max() >= len(classes):
        raise DatasetError(f"{folder}: label {labels.max()} outside the {len(classes)} classes of meta")
    return LabeledImages(name="CIFAR-100", images=np.concatenate(imgs), labels=labels, split=np.array(split),
                         classes=classes, ids=np.array(ids),
                         notes=("torchvision layout cifar-100-python/: 50000 train, 10000 test",))
