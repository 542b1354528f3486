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

import csv as csv_module
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
        # "-v2": the notes name missing PublicTest_/PrivateTest_ files and empty class folders
        return cached("fer2013-folders-v2", key, lambda: _decode_folders(path, files), cache_dir)
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
    notes = [_test_names_note([f.name for f, _, s in files if s != "train"])] + _empty_class_notes(root, files)
    if resized:
        notes.append(f"{resized} images were not {SIZE}x{SIZE} and were resized")
    return LabeledImages(
        name="FER2013", images=imgs, labels=np.array([FER_CLASSES.index(c) for _, c, _ in files]),
        split=split, classes=FER_CLASSES, ids=np.array([str(f.relative_to(root)) for f, _, _ in files]),
        notes=tuple(notes))


def _test_names_note(test_files: list[str]) -> str:
    """What the names in test/ decided: PublicTest_* is val, every other file is test."""
    public = sum(n.startswith("PublicTest") for n in test_files)
    private = sum(n.startswith("PrivateTest") for n in test_files)
    other = len(test_files) - public - private
    if public and private:
        note = "Kaggle folder layout: PublicTest_* is val, PrivateTest_* is test"
        return note + (f"; {other} other test/ files (neither name) are test" if other else "")
    if private:
        return (f"Kaggle folder layout: test/ holds {private} PrivateTest_* files but no PublicTest_* files, so there "
                f"is no val split here; all {len(test_files)} test/ images are test")
    if public:
        return (f"Kaggle folder layout: test/ holds {public} PublicTest_* files (val) but no PrivateTest_* files; "
                f"the {other} other test/ images are test" + ("" if other else ", so the test split is empty"))
    return "Kaggle folder layout without PublicTest_/PrivateTest_ names: all of test/ is test"


def _empty_class_notes(root: Path, files) -> list[str]:
    """One note per class folder of train/ or test/ that holds no image (or is missing)."""
    present = {("train" if s == "train" else "test", c) for _, c, s in files}
    notes = []
    for top, splits in (("train", "train"), ("test", "val or test")):
        folders = {d.name.lower() for d in (root / top).iterdir() if d.is_dir()}
        for c in FER_CLASSES:
            if (top, c) not in present:
                state = "is empty" if c in folders else "is missing"
                notes.append(f"class folder {top}/{c}/ {state}: no {c} images in {splits}")
    return notes


# ----------------------------------------------------------------------------- CSVs
def _torchvision_csv(base: Path) -> Path | list[Path]:
    for name in ("fer2013.csv", "icml_face_data.csv"):
        if (base / name).is_file():
            return base / name
    if not (base / "test.csv").is_file():
        raise DatasetError(f"{base / 'train.csv'} found without test.csv; {LAYOUTS_HELP}")
    return [base / "train.csv", base / "test.csv"]


def _decode_csv(csv: Path | list[Path]) -> LabeledImages:
    """Stream the CSV row by row, parsing each row's pixels straight into one preallocated uint8 array
    (the file is 301 MB; a table of its pixel strings would take many GB). Errors name the CSV row
    (header = row 1) and are checked in this order: Usage, emotion, pixels."""
    if isinstance(csv, list):  # torchvision train.csv + test.csv: test.csv carries no labels
        src, required = csv[0], ("emotion", "pixels")
        notes = [f"{csv[0].name} + {csv[1].name}: test.csv has no labels, so only train.csv is used"]
    else:
        src, required = csv, ("emotion", "pixels", "Usage")
        notes = [f"{csv.name}: Usage PublicTest is val, PrivateTest is test"]
    images = np.empty((_max_rows(src), SIZE, SIZE), np.uint8)
    emotions, usages, pixel_error = [], [], None
    for i, fields in enumerate(_csv_rows(src, required)):
        emotions.append(fields["emotion"])
        usages.append(fields.get("Usage", "Training"))
        if pixel_error is None:
            pixel_error = _parse_pixels(fields["pixels"], images[i].reshape(-1))
            if pixel_error:
                pixel_error = f"{src}: row {i + 2}: {pixel_error}"
    if not emotions:
        raise DatasetError(f"{src}: no rows")
    bad_usage = sorted(set(usages) - set(USAGE_SPLIT))
    if bad_usage:
        raise DatasetError(f"{src}: unknown Usage value(s) {bad_usage}; expected {', '.join(USAGE_SPLIT)}")
    emo = pd.to_numeric(pd.Series(emotions), errors="coerce")
    bad = np.flatnonzero(emo.isna() | ~emo.isin(range(7)))
    if len(bad):
        raise DatasetError(f"{src}: row {bad[0] + 2}: emotion must be an integer 0..6, got {emotions[bad[0]]!r}")
    if pixel_error:
        raise DatasetError(pixel_error)
    labels = np.array([FER_CLASSES.index(CSV_EMOTIONS[e]) for e in emo.astype(int)])
    return LabeledImages(
        name="FER2013", images=images[:len(emotions)], labels=labels,
        split=np.array([USAGE_SPLIT[u] for u in usages]), classes=FER_CLASSES,
        ids=np.array([f"{src.name}:{i + 2}" for i in range(len(emotions))]), notes=tuple(notes))


def _max_rows(path: Path) -> int:
    """An upper bound on the CSV's rows: its line breaks + 1 (a quick byte count, no parsing)."""
    n_lf = n_cr = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            n_lf, n_cr = n_lf + chunk.count(b"\n"), n_cr + chunk.count(b"\r")
    return max(n_lf, n_cr) + 1


def _csv_rows(path: Path, required: tuple[str, ...]):
    """Yield {column: value} of the ``required`` columns for every non-blank data row, one at a time.

    Like pandas with ``skipinitialspace=True``: column names are stripped and blank lines skipped.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv_module.reader(f, skipinitialspace=True)
            header = [c.strip() for c in next(reader, [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise DatasetError(f"{path}: missing column(s) {missing}; found {header}")
            cols = {c: header.index(c) for c in required}
            n = 0
            for row in reader:
                if not row or row == [""]:
                    continue
                if len(row) != len(header):
                    raise DatasetError(f"{path}: row {n + 2}: expected {len(header)} fields like the header, "
                                       f"got {len(row)}")
                n += 1
                yield {c: row[j] for c, j in cols.items()}
    except (csv_module.Error, UnicodeDecodeError, OSError) as e:
        raise DatasetError(f"cannot read CSV {path}: {e}") from None


def _parse_pixels(text: str, out: np.ndarray) -> str | None:
    """Parse space-separated 0..255 integers into ``out`` (48*48 uint8); the problem, if any, as text."""
    tokens = text.split()
    if len(tokens) != SIZE * SIZE:
        return f"expected {SIZE * SIZE} pixel values, got {len(tokens)}"
    if not "".join(tokens).isdecimal():  # digits only: no sign, point, letter
        return "pixels must be integers 0..255"
    try:
        values = np.array(tokens, dtype=np.int64)
    except OverflowError:  # more digits than an int64 holds
        values = None
    if values is None or values.max() > 255:
        return "pixel values must lie in 0..255"
    out[:] = values
    return None
