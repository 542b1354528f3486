"""A generic index CSV (``path``, ``label``, ``split``, optional ``source``), like seed 000's
unified index (§8.1), so RAF-DB, AffectNet, FERPlus and FER2013 images can be mixed in one file.

Paths are relative to the CSV's folder (or absolute). Labels are class names or integer
indices into the seven FER classes; splits are ``train``/``val``/``test`` (a missing val is
carved from train by ``load_dataset``). Images are decoded once to ``size`` x ``size`` in
``gray`` or ``rgb`` and cached.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from ..config import config_hash
from .cache import cached, files_fingerprint
from .dataset import SPLITS, LabeledImages
from .fer2013 import FER_CLASSES, DatasetError


def load_index_csv(csv: str | Path, size: int = 112, color: str = "gray", cache_dir: Path | None = None) -> LabeledImages:
    csv = Path(csv).resolve()
    if not csv.is_file():
        raise DatasetError(f"index CSV not found: {csv} (expected columns path, label, split[, source])")
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise DatasetError(f"cannot read index CSV {csv}: {e}") from None
    missing = [c for c in ("path", "label", "split") if c not in df.columns]
    if missing:
        raise DatasetError(f"{csv}: missing column(s) {missing}; expected path, label, split[, source]")
    if df.empty:
        raise DatasetError(f"{csv}: no rows")
    bad = sorted(set(df["split"]) - set(SPLITS))
    if bad:
        raise DatasetError(f"{csv}: unknown split value(s) {bad}; expected {', '.join(SPLITS)}")
    files = [(p if p.is_absolute() else csv.parent / p).resolve() for p in map(Path, df["path"])]
    for row, f in enumerate(files):
        if not f.is_file():
            raise DatasetError(f"{csv}: row {row + 2}: image file not found: {f}")
    key = config_hash(files_fingerprint([csv, *files], Path("/")), size, color)
    return cached(f"index-{csv.stem}", key, lambda: _decode(csv, df, files, size, color), cache_dir)


def index_classes(csv: str | Path) -> tuple[str, ...]:
    """The class names of an index CSV, from its ``label`` column only (no image is read)."""
    csv = Path(csv).resolve()
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False, usecols=["label"])
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise DatasetError(f"cannot read index CSV {csv}: {e}") from None
    return _labels(csv, df["label"])[1]


def _labels(csv: Path, col: pd.Series) -> tuple[np.ndarray, tuple[str, ...], str | None]:
    """(label indices, class names, note): integer labels index FER_CLASSES; names may define new classes."""
    is_int = col.str.fullmatch(r"\d+")
    if is_int.all():
        idx = col.astype(int).to_numpy()
        if idx.max() >= len(FER_CLASSES):
            raise DatasetError(f"{csv}: integer labels must index the 7 FER classes (0..6), got {idx.max()}")
        return idx, FER_CLASSES, None
    if is_int.any():
        row = int(np.flatnonzero(is_int.to_numpy())[0]) + 2
        raise DatasetError(f"{csv}: row {row}: labels mix integers and class names; use one or the other")
    names = col.str.strip().str.lower()
    if set(names) <= set(FER_CLASSES):
        return names.map({c: i for i, c in enumerate(FER_CLASSES)}).to_numpy(), FER_CLASSES, None
    classes = tuple(sorted(set(names)))
    note = (f"labels are not the 7 FER classes, so the classes are the CSV's own: {', '.join(classes)} "
            f"(not FER: {', '.join(sorted(set(names) - set(FER_CLASSES)))})")
    return names.map({c: i for i, c in enumerate(classes)}).to_numpy(), classes, note


def _decode(csv: Path, df: pd.DataFrame, files: list[Path], size: int, color: str) -> LabeledImages:
    labels, classes, label_note = _labels(csv, df["label"])
    mode = "L" if color == "gray" else "RGB"
    imgs = np.empty((len(files), size, size) + (() if mode == "L" else (3,)), np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                imgs[i] = np.asarray(im.convert(mode).resize((size, size), Image.BILINEAR))
        except (UnidentifiedImageError, OSError) as e:
            raise DatasetError(f"cannot read image {f} (row {i + 2} of {csv}): {e}") from None
    src = df["source"].to_numpy() if "source" in df.columns else np.full(len(df), csv.stem)
    notes = [f"index CSV {csv.name}: {len(df)} images from source(s) {', '.join(sorted(set(src)))}"]
    if label_note:
        notes.append(label_note)
    return LabeledImages(name=csv.stem, images=imgs, labels=labels, split=df["split"].to_numpy(),
                         classes=classes, ids=df["path"].to_numpy(), notes=tuple(notes))
