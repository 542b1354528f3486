"""FER2013 in the three layouts users have, decoded once into a cached uint8 array.

Accepted layouts (auto-detected from ``root``):

1. **Kaggle image folders**: ``root/train/<class>/*.jpg`` and ``root/test/<class>/*.jpg``,
   where test files named ``PublicTest_*`` form the val split and ``PrivateTest_*`` the
   test split (the standard protocol).
2. **Original CSV**: ``fer2013.csv`` (columns ``emotion``, ``pixels``, ``Usage`` with
   values Training/PublicTest/PrivateTest); ``root`` is the file or a folder holding it.
3. **torchvision's ``FER2013`` folder**: ``root/fer2013/`` (or that folder itself) with
   ``fer2013.csv``, ``icml_face_data.csv`` (columns ``emotion, Usage, pixels``) or
   ``train.csv`` + ``test.csv``, in torchvision's order of precedence. ``test.csv`` has
   no labels, so with that pair val and test are carved from train (and the notes say so).

PublicTest is val, PrivateTest is test. Class names are the folder names; the CSV
``emotion`` codes (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral) are
mapped onto the same alphabetical order as the folders.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from .cache import cached, files_fingerprint
from .dataset import LabeledImages

FER_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
CSV_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGE_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp"}
SIZE = 48

LAYOUTS_HELP = (
    "accepted FER2013 layouts: (1) Kaggle folders <root>/train/<class>/*.jpg and <root>/test/<class>/"
    "{PublicTest,PrivateTest}_*.jpg; (2) the original fer2013.csv (emotion, pixels, Usage), given as the "
    "file or its folder; (3) torchvision's <root>/fer2013/ with fer2013.csv, icml_face_data.csv or "
    "train.csv + test.csv"
)


class DatasetError(ValueError):
    """The dataset on disk is missing, malformed or not in an accepted layout."""


def detect_layout(root: Path) -> tuple[str, Path]:
    """(layout, path) for ``root``: ``folders`` | ``csv`` (a CSV file) | ``torchvision`` (a folder)."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"FER2013 root does not exist: {root}; {LAYOUTS_HELP}")
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DatasetError(f"FER2013 root is a file but not a CSV: {root}; {LAYOUTS_HELP}")
        return "csv", root
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "folders", root
    if (root / "fer2013.csv").is_file():
        return "csv", root / "fer2013.csv"
    if any((root / "fer2013" / f).is_file() for f in ("fer2013.csv", "icml_face_data.csv", "train.csv")):
        return "torchvision", root / "fer2013"
    if any((root / f).is_file() for f in ("icml_face_data.csv", "train.csv")):
        return "torchvision", root
    raise DatasetError(f"no FER2013 layout recognised under {root}; {LAYOUTS_HELP}")


def load_fer2013(root: str | Path, cache_dir: Path | None = None) -> LabeledImages:
    """FER2013 from any accepted layout (decoded once, then read from the cache)."""
    layout, path = detect_layout(Path(root))
    if layout == "folders":
        files = _folder_files(path)
        key = files_fingerprint([f for f, _, _ in files], path)
        return cached("fer2013-folders", key, lambda: _decode_folders(path, files), cache_dir)
    csv = path if layout == "csv" else _torchvision_csv(path)
    files = csv if isinstance(csv, list) else [csv]
    key = files_fingerprint(files, files[0].parent)
    return cached(f"fer2013-{layout}", key, lambda: _decode_csv(csv), cache_dir)


# ----------------------------------------------------------------------------- folders
def _folder_files(root: Path) -> list[tuple[Path, str, str]]:
    """(file, class, split) for every image under train/ and test/."""
    out = []
    for top in ("train", "test"):
        class_dirs = sorted(d for d in (root / top).iterdir() if d.is_dir())
        unknown = [d.name for d in class_dirs if d.name.lower() not in FER_CLASSES]
        if unknown:
            raise DatasetError(
                f"unknown class folder(s) {unknown} in {root / top}; expected {', '.join(FER_CLASSES)}")
        found = [(f, d.name.lower(), _split_of(top, f.name))
                 for d in class_dirs for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_EXTS]
        if not found:
            raise DatasetError(f"split folder {root / top} holds no images ({', '.join(sorted(IMAGE_EXTS))})")
        out += found
    return out


def _split_of(top: str, filename: str) -> str:
    if top == "train":
        return "train"
    return "val" if filename.startswith("PublicTest") else "test"


def _decode_folders(root: Path, files) -> LabeledImages:
    imgs = np.empty((len(files), SIZE, SIZE), np.uint8)
    resized = 0
    for i, (f, _, _) in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("L")
                if im.size != (SIZE, SIZE):
                    im, resized = im.resize((SIZE, SIZE), Image.BILINEAR), resized + 1
                imgs[i] = np.asarray(im)
        except (UnidentifiedImageError, OSError) as e:
            raise DatasetError(f"cannot read image {f}: {e}") from None
    split = np.array([s for _, _, s in files])
    notes = ["Kaggle folder layout: PublicTest_* is val, PrivateTest_* is test"]
    if not (split == "val").any():
        notes = ["Kaggle folder layout without PublicTest_/PrivateTest_ names: all of test/ is test"]
    if resized:
        notes.append(f"{resized} images were not {SIZE}x{SIZE} and were resized")
    return LabeledImages(
        name="FER2013", images=imgs, labels=np.array([FER_CLASSES.index(c) for _, c, _ in files]),
        split=split, classes=FER_CLASSES, ids=np.array([str(f.relative_to(root)) for f, _, _ in files]),
        notes=tuple(notes))


# ----------------------------------------------------------------------------- CSVs
def _torchvision_csv(base: Path) -> Path | list[Path]:
    for name in ("fer2013.csv", "icml_face_data.csv"):
        if (base / name).is_file():
            return base / name
    if not (base / "test.csv").is_file():
        raise DatasetError(f"{base / 'train.csv'} found without test.csv; {LAYOUTS_HELP}")
    return [base / "train.csv", base / "test.csv"]


def _decode_csv(csv: Path | list[Path]) -> LabeledImages:
    if isinstance(csv, list):  # torchvision train.csv + test.csv: test.csv carries no labels
        df = _read_csv(csv[0], ("emotion", "pixels"))
        df["Usage"] = "Training"
        notes = [f"{csv[0].name} + {csv[1].name}: test.csv has no labels, so only train.csv is used"]
        src = csv[0]
    else:
        df = _read_csv(csv, ("emotion", "pixels", "Usage"))
        notes = [f"{csv.name}: Usage PublicTest is val, PrivateTest is test"]
        src = csv
    bad_usage = sorted(set(df["Usage"]) - set(USAGE_SPLIT))
    if bad_usage:
        raise DatasetError(f"{src}: unknown Usage value(s) {bad_usage}; expected {', '.join(USAGE_SPLIT)}")
    emo = pd.to_numeric(df["emotion"], errors="coerce")
    bad = np.flatnonzero(emo.isna() | ~emo.isin(range(7)))
    if len(bad):
        raise DatasetError(f"{src}: row {bad[0] + 2}: emotion must be an integer 0..6, got {df['emotion'].iloc[bad[0]]!r}")
    images = _parse_pixels(df["pixels"], src)
    labels = np.array([FER_CLASSES.index(CSV_EMOTIONS[e]) for e in emo.astype(int)])
    return LabeledImages(
        name="FER2013", images=images, labels=labels, split=df["Usage"].map(USAGE_SPLIT).to_numpy(),
        classes=FER_CLASSES, ids=np.array([f"{src.name}:{i + 2}" for i in range(len(df))]), notes=tuple(notes))


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise DatasetError(f"cannot read CSV {path}: {e}") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    if df.empty:
        raise DatasetError(f"{path}: no rows")
    return df


def _parse_pixels(col: pd.Series, src: Path) -> np.ndarray:
    """Space-separated 0..255 integers, 48*48 per row; errors name the CSV row (header = row 1)."""
    tokens = col.str.split()
    counts = tokens.str.len().to_numpy()
    bad = np.flatnonzero(counts != SIZE * SIZE)
    if len(bad):
        raise DatasetError(f"{src}: row {bad[0] + 2}: expected {SIZE * SIZE} pixel values, got {counts[bad[0]]}")
    numeric = col.str.fullmatch(r"\s*\d+(\s+\d+)*\s*").to_numpy()
    if not numeric.all():
        raise DatasetError(f"{src}: row {np.flatnonzero(~numeric)[0] + 2}: pixels must be integers 0..255")
    flat = np.array(" ".join(col.tolist()).split(), dtype=np.int64).reshape(-1, SIZE * SIZE)
    out_of_range = np.flatnonzero((flat > 255).any(1))
    if len(out_of_range):
        raise DatasetError(f"{src}: row {out_of_range[0] + 2}: pixel values must lie in 0..255")
    return flat.astype(np.uint8).reshape(-1, SIZE, SIZE)
