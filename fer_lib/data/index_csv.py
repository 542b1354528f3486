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

from .cache import cached, files_fingerprint
from .dataset import SPLITS, LabeledImages
from .fer2013 import FER_CLASSES, DatasetError


def load_index_csv(csv: str | Path, size: int = 112, color: str = "gray", cache_dir: Path | None = None) -> LabeledImages:
    csv = Path(csv)
    if not csv.is_file():
        raise DatasetError(f"index CSV not found: {csv} (expected columns path, label, split[, source])")
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    missing = [c for c in ("path", "label", "split") if c not in df.columns]
    if missing:
        raise DatasetError(f"{csv}: missing column(s) {missing}; expected path, label, split[, source]")
    if df.empty:
        raise DatasetError(f"{csv}: no rows")
    bad = sorted(set(df["split"]) - set(SPLITS))
    if bad:
        raise DatasetError(f"{csv}: unknown split value(s) {bad}; expected {', '.join(SPLITS)}")
    files = [p if p.is_absolute() else csv.parent / p for p in map(Path, df["path"])]
    for row, f in enumerate(files):
        if not f.is_file():
            raise DatasetError(f"{csv}: row {row + 2}: image file not found: {f}")
    key = files_fingerprint([csv, *files], Path("/")) + f"-{size}-{color}"
    return cached("index", files_fingerprint([csv], csv.parent)[:8] + key[:12],
                  lambda: _decode(csv, df, files, size, color), cache_dir)


def _labels(csv: Path, col: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    if col.str.fullmatch(r"\d+").all():
        idx = col.astype(int).to_numpy()
        if idx.max() >= len(FER_CLASSES):
            raise DatasetError(f"{csv}: integer labels must index the 7 FER classes (0..6), got {idx.max()}")
        return idx, FER_CLASSES
    names = col.str.strip().str.lower()
    classes = FER_CLASSES if set(names) <= set(FER_CLASSES) else tuple(sorted(set(names)))
    return names.map({c: i for i, c in enumerate(classes)}).to_numpy(), classes


def _decode(csv: Path, df: pd.DataFrame, files: list[Path], size: int, color: str) -> LabeledImages:
    labels, classes = _labels(csv, df["label"])
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
    return LabeledImages(name=csv.stem, images=imgs, labels=labels, split=df["split"].to_numpy(),
                         classes=classes, ids=df["path"].to_numpy(), notes=tuple(notes))
