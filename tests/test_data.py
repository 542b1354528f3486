"""Unit tests for fer_lib.data: FER2013 layouts, index CSV, decode cache, load_dataset, synthetic data, audit.

Every fixture is written by the tests into pytest's tmp_path (the real FER2013 under
/work/shared/data is never read), and every test points the decoded-dataset cache at a
temporary folder (autouse fixture ``cache_root``), so the project's .cache is never touched.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fer_lib.data.cache as cache_mod
import fer_lib.data.fer2013 as fer_mod
import fer_lib.data.synthetic_fer as synth_fer_mod
from fer_lib.data import (FER_CLASSES, DataConfig, DatasetError, load_dataset, load_fer2013,
                          load_index_csv)
from fer_lib.data.audit import duplicate_groups, near_blank
from fer_lib.data.synthetic import PART_CLASSES, synthetic_faces
from fer_lib.data.synthetic_fer import make_synthetic_fer

# ============================================================================ shared fixtures
SIZE = 48
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
# The original fer2013.csv codes: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
CSV_CODE = {"angry": 0, "disgust": 1, "fear": 2, "happy": 3, "sad": 4, "surprise": 5, "neutral": 6}
# Images per class in FER_CLASSES order (angry, disgust, fear, happy, neutral, sad, surprise). The counts
# differ between neutral and sad (and between splits) in every split, so a neutral/sad or split mix-up shows.
COUNTS = {
    "Training": [6, 4, 7, 9, 10, 8, 5],  # 49
    "PublicTest": [2, 1, 2, 3, 2, 1, 1],  # 12
    "PrivateTest": [1, 2, 1, 2, 3, 2, 1],  # 12
}


@dataclass(frozen=True)
class Rec:
    usage: str  # Training | PublicTest | PrivateTest
    cls: str  # folder class name
    stem: str  # file name without extension, e.g. Training_00012
    pixels: np.ndarray  # (48, 48) uint8

    @property
    def split(self) -> str:
        return USAGE_TO_SPLIT[self.usage]

    @property
    def px(self) -> str:
        return " ".join(map(str, self.pixels.ravel().tolist()))


def _make_records() -> list[Rec]:
    rng = np.random.default_rng(2013)
    out, n = [], 0
    for usage, counts in COUNTS.items():
        for cls, k in zip(FER_CLASSES, counts):
            for _ in range(k):
                n += 1
                out.append(Rec(usage, cls, f"{usage}_{n:05d}", rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)))
    return out


RECORDS = _make_records()
# CSV rows are written in a shuffled order, so the CSV and folder layouts never agree by position alone.
CSV_ORDER = np.random.default_rng(7).permutation(len(RECORDS))


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch) -> Path:
    """Every test decodes into its own temporary cache (fer_lib.paths.cache_dir reads FER_CACHE)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("FER_CACHE", str(root))
    return root


def write_folders(root: Path, ext: str = ".png", records=RECORDS) -> Path:
    """Kaggle layout: root/train/<class>/Training_*.ext, root/test/<class>/{PublicTest,PrivateTest}_*.ext."""
    for top in ("train", "test"):
        for cls in FER_CLASSES:
            (root / top / cls).mkdir(parents=True, exist_ok=True)
    for r in records:
        top = "train" if r.usage == "Training" else "test"
        Image.fromarray(r.pixels, mode="L").save(root / top / r.cls / f"{r.stem}{ext}")
    return root


def fer_csv_lines(records=RECORDS) -> list[str]:
    return ["emotion,pixels,Usage"] + [f"{CSV_CODE[records[i].cls]},{records[i].px},{records[i].usage}"
                                        for i in CSV_ORDER]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_icml(base: Path) -> Path:
    """torchvision's icml_face_data.csv: header exactly 'emotion, Usage, pixels' (leading spaces)."""
    lines = ["emotion, Usage, pixels"] + [f"{CSV_CODE[RECORDS[i].cls]},{RECORDS[i].usage},{RECORDS[i].px}"
                                          for i in CSV_ORDER]
    return write_lines(base / "icml_face_data.csv", lines)


def write_train_test(base: Path) -> None:
    """torchvision's train.csv (emotion,pixels: the Training rows) + test.csv (pixels only, no labels)."""
    recs = [RECORDS[i] for i in CSV_ORDER]
    write_lines(base / "train.csv", ["emotion,pixels"] + [f"{CSV_CODE[r.cls]},{r.px}" for r in recs
                                                          if r.usage == "Training"])
    write_lines(base / "test.csv", ["pixels"] + [r.px for r in recs if r.usage != "Training"])


def table(ds) -> dict[bytes, tuple[str, str]]:
    """Order-independent view of a dataset: {pixel bytes: (class name, split)}."""
    out = {im.tobytes(): (ds.classes[int(lab)], str(sp)) for im, lab, sp in zip(ds.images, ds.labels, ds.split)}
    assert len(out) == len(ds), "the fixture's random images are all distinct"
    return out


def expected_table(usages=("Training", "PublicTest", "PrivateTest")) -> dict[bytes, tuple[str, str]]:
    return {r.pixels.tobytes(): (r.cls, r.split) for r in RECORDS if r.usage in usages}


def assert_counts(ds, usages=("Training", "PublicTest", "PrivateTest")):
    counts = ds.counts()
    assert list(counts.index) == list(FER_CLASSES)
    for usage in usages:
        assert counts[USAGE_TO_SPLIT[usage]].tolist() == COUNTS[usage], usage


def by_pixels(ds):
    """The dataset's arrays sorted by pixel bytes (a canonical order for cross-layout comparison)."""
    order = np.argsort([im.tobytes() for im in ds.images], kind="stable")
    return ds.images[order], ds.labels[order], ds.split[order].astype(str)


def dataset_files(cache_root: Path) -> list[Path]:
    d = cache_root / "datasets"
    return sorted(d.iterdir()) if d.exists() else []


def assert_same_data(a, b):
    assert np.array_equal(a.images, b.images)
    assert a.images.dtype == b.images.dtype == np.uint8
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.split.astype(str), b.split.astype(str))
    assert np.array_equal(a.ids.astype(str), b.ids.astype(str))
    assert tuple(a.classes) == tuple(b.classes)
    assert tuple(a.notes) == tuple(b.notes)
    assert a.fingerprint == b.fingerprint


# ============================================================================ 1. FER2013 layouts
def test_folder_layout_png(tmp_path):
    root = write_folders(tmp_path / "kaggle")
    ds = load_fer2013(root)
    assert ds.classes == FER_CLASSES
    assert ds.images.shape == (len(RECORDS), SIZE, SIZE) and ds.images.dtype == np.uint8
    assert table(ds) == expected_table()  # pixels, labels and PublicTest->val, PrivateTest->test, Training->train
    assert_counts(ds)
    assert {str(i) for i in ds.ids} == {
        f"{'train' if r.usage == 'Training' else 'test'}/{r.cls}/{r.stem}.png" for r in RECORDS}
    assert any("PublicTest_* is val" in n for n in ds.notes)


def test_folder_layout_jpeg_labels_and_splits(tmp_path):
    root = write_folders(tmp_path / "kaggle_jpg", ext=".jpg")
    ds = load_fer2013(root)
    by_stem = {r.stem: r for r in RECORDS}
    assert len(ds) == len(RECORDS)
    for im, lab, sp, id_ in zip(ds.images, ds.labels, ds.split, ds.ids):
        r = by_stem[Path(str(id_)).stem]
        assert (FER_CLASSES[lab], sp) == (r.cls, r.split), id_
        # JPEG is lossy: the decoded image is still clearly the one written under that name
        assert np.corrcoef(im.ravel().astype(float), r.pixels.ravel().astype(float))[0, 1] > 0.9, id_
    assert_counts(ds)


@pytest.mark.parametrize("given_as", ["file", "folder"])
def test_original_fer2013_csv(tmp_path, given_as):
    csv = write_lines(tmp_path / "orig" / "fer2013.csv", fer_csv_lines())
    ds = load_fer2013(csv if given_as == "file" else csv.parent)
    assert ds.classes == FER_CLASSES
    assert table(ds) == expected_table()  # codes 4 sad / 6 neutral land on FER_CLASSES' sad=5 / neutral=4
    assert_counts(ds)
    # ids name the CSV line (header is line 1) of each image
    first = RECORDS[CSV_ORDER[0]]
    i = int(np.flatnonzero(ds.ids.astype(str) == "fer2013.csv:2")[0])
    assert np.array_equal(ds.images[i], first.pixels) and FER_CLASSES[ds.labels[i]] == first.cls


def test_folder_png_and_csv_layouts_give_identical_pixels(tmp_path):
    a = load_fer2013(write_folders(tmp_path / "kaggle"))
    b = load_fer2013(write_lines(tmp_path / "orig" / "fer2013.csv", fer_csv_lines()))
    for x, y in zip(by_pixels(a), by_pixels(b)):
        assert np.array_equal(x, y)


def test_csv_neutral_and_sad_codes_are_remapped(tmp_path):
    """Explicit check of the one non-identity part of the code mapping (CSV 4 sad, 6 neutral)."""
    rng = np.random.default_rng(1)
    px = [rng.integers(0, 256, SIZE * SIZE) for _ in range(3)]
    lines = ["emotion,pixels,Usage"] + [f"{c},{' '.join(map(str, p))},Training" for c, p in zip((4, 6, 5), px)]
    ds = load_fer2013(write_lines(tmp_path / "fer2013.csv", lines))
    assert [FER_CLASSES[i] for i in ds.labels] == ["sad", "neutral", "surprise"]
    assert ds.labels.tolist() == [5, 4, 6]


@pytest.mark.parametrize("given", ["parent", "fer2013_folder"])
def test_torchvision_icml_face_data(tmp_path, given):
    csv = write_icml(tmp_path / "tv" / "fer2013")
    assert csv.read_text().splitlines()[0] == "emotion, Usage, pixels"
    ds = load_fer2013(tmp_path / "tv" if given == "parent" else csv.parent)
    assert ds.classes == FER_CLASSES
    assert table(ds) == expected_table()
    assert_counts(ds)


def test_torchvision_train_test_csv_loader_uses_train_only(tmp_path):
    write_train_test(tmp_path / "tv" / "fer2013")
    ds = load_fer2013(tmp_path / "tv")
    assert set(ds.split) == {"train"}
    assert table(ds) == expected_table(("Training",))  # test.csv (unlabelled) is not used
    assert_counts(ds, ("Training",))
    assert any("test.csv has no labels" in n for n in ds.notes)


def test_torchvision_train_test_csv_val_and_test_carved_by_load_dataset(tmp_path):
    write_train_test(tmp_path / "tv" / "fer2013")
    cfg = DataConfig(source="fer2013", root=str(tmp_path / "tv"), val_fraction=0.2, seed=0)
    ds = load_dataset(cfg)
    n_train = sum(COUNTS["Training"])  # 49
    n_test = round(0.2 * n_train)  # carved first: 10
    n_val = round(0.2 * (n_train - n_test))  # then from what is left: 8
    assert (ds.split == "test").sum() == n_test
    assert (ds.split == "val").sum() == n_val
    assert (ds.split == "train").sum() == n_train - n_test - n_val
    # every image is one of train.csv's, with its own label; nothing from test.csv
    assert {k: v[0] for k, v in table(ds).items()} == {k: v[0] for k, v in expected_table(("Training",)).items()}
    # stratified: each class gets floor or ceil of its share of the carved split
    counts = ds.counts()
    per_class = np.array(COUNTS["Training"])
    assert np.all(np.abs(counts["test"].to_numpy() - per_class * n_test / n_train) < 1)
    left = per_class - counts["test"].to_numpy()
    assert np.all(np.abs(counts["val"].to_numpy() - left * n_val / left.sum()) < 1)
    notes = " | ".join(ds.notes)
    assert re.search(rf"{n_test} train images .*stratified.* became test", notes), notes
    assert re.search(rf"{n_val} train images .*stratified.* became val", notes), notes
    # deterministic for a seed
    again = load_dataset(cfg)
    assert np.array_equal(again.split, ds.split) and again.fingerprint == ds.fingerprint


def test_folder_layout_without_public_private_names_is_all_test(tmp_path):
    root = tmp_path / "renamed"
    recs = [r if r.usage == "Training" else Rec(r.usage, r.cls, f"img_{i}", r.pixels) for i, r in enumerate(RECORDS)]
    write_folders(root, records=recs)
    ds = load_fer2013(root)
    assert (ds.split == "val").sum() == 0
    assert (ds.split == "test").sum() == sum(COUNTS["PublicTest"]) + sum(COUNTS["PrivateTest"])
    assert any("all of test/ is test" in n for n in ds.notes)


def test_folder_layout_resizes_non_48_images_and_says_so(tmp_path):
    root = write_folders(tmp_path / "kaggle")
    Image.fromarray(np.full((64, 64), 200, np.uint8)).save(root / "train" / "happy" / "Training_big.png")
    ds = load_fer2013(root)
    assert ds.images.shape == (len(RECORDS) + 1, SIZE, SIZE)
    i = int(np.flatnonzero(ds.ids.astype(str) == "train/happy/Training_big.png")[0])
    assert np.all(ds.images[i] == 200)
    assert any("1 images were not 48x48 and were resized" in n for n in ds.notes)


# ============================================================================ 2. errors
def _raises(fn, *needles) -> str:
    with pytest.raises(DatasetError) as exc:
        fn()
    msg = str(exc.value)
    for n in needles:
        assert str(n) in msg, f"{n!r} not in {msg!r}"
    return msg


def test_dataset_error_is_value_error():
    assert issubclass(DatasetError, ValueError)


def test_error_missing_root(tmp_path):
    missing = tmp_path / "nowhere"
    _raises(lambda: load_fer2013(missing), missing, "does not exist", "accepted FER2013 layouts")


def test_error_directory_matching_no_layout(tmp_path):
    d = tmp_path / "random"
    (d / "train").mkdir(parents=True)  # train/ without test/ is not the folder layout
    (d / "notes.txt").write_text("hello")
    _raises(lambda: load_fer2013(d), d, "no FER2013 layout recognised", "accepted FER2013 layouts")


def test_error_root_file_not_csv(tmp_path):
    f = tmp_path / "fer.zip"
    f.write_bytes(b"PK")
    _raises(lambda: load_fer2013(f), f, "not a CSV")


def test_error_unknown_class_folder(tmp_path):
    root = write_folders(tmp_path / "kaggle")
    (root / "train" / "contempt").mkdir()
    Image.fromarray(RECORDS[0].pixels).save(root / "train" / "contempt" / "Training_99999.png")
    _raises(lambda: load_fer2013(root), "contempt", root / "train", "expected", ", ".join(FER_CLASSES))


def test_error_split_folder_without_images(tmp_path):
    root = write_folders(tmp_path / "kaggle", records=[r for r in RECORDS if r.usage == "Training"])
    (root / "test" / "happy" / "readme.txt").write_text("not an image")
    _raises(lambda: load_fer2013(root), root / "test", "holds no images", ".png")


def test_error_corrupt_image_names_the_file(tmp_path):
    root = write_folders(tmp_path / "kaggle")
    bad = root / "train" / "fear" / "Training_bad.jpg"
    bad.write_bytes(b"this is not a jpeg" * 10)
    _raises(lambda: load_fer2013(root), "cannot read image", bad)


def test_error_csv_missing_column(tmp_path):
    lines = [ln.rsplit(",", 1)[0] for ln in fer_csv_lines()]  # drop Usage
    csv = write_lines(tmp_path / "fer2013.csv", lines)
    _raises(lambda: load_fer2013(csv), csv, "missing column", "Usage")


def test_error_csv_wrong_pixel_count_names_row(tmp_path):
    lines = fer_csv_lines()
    code, px, usage = lines[3].split(",")  # 3rd data row = line 4 of the file
    lines[3] = f"{code},{px.rsplit(' ', 1)[0]},{usage}"
    csv = write_lines(tmp_path / "fer2013.csv", lines)
    msg = _raises(lambda: load_fer2013(csv), csv, "2304", "2303")
    assert re.search(r"\brow 4\b", msg), msg


def test_error_csv_unknown_usage(tmp_path):
    lines = fer_csv_lines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",Validation"
    csv = write_lines(tmp_path / "fer2013.csv", lines)
    _raises(lambda: load_fer2013(csv), csv, "Validation", "Training", "PublicTest", "PrivateTest")


@pytest.mark.parametrize("bad", ["7", "-1", "happy"])
def test_error_csv_emotion_out_of_range(tmp_path, bad):
    lines = fer_csv_lines()
    lines[6] = bad + "," + lines[6].split(",", 1)[1]
    csv = write_lines(tmp_path / "fer2013.csv", lines)
    msg = _raises(lambda: load_fer2013(csv), csv, "0..6", repr(bad))
    assert re.search(r"\brow 7\b", msg), msg


def test_error_csv_pixel_value_out_of_range(tmp_path):
    lines = fer_csv_lines()
    code, px, usage = lines[2].split(",")
    lines[2] = f"{code},{'300 ' + px.split(' ', 1)[1]},{usage}"
    csv = write_lines(tmp_path / "fer2013.csv", lines)
    _raises(lambda: load_fer2013(csv), csv, "0..255")


def test_error_torchvision_train_csv_without_test_csv(tmp_path):
    base = tmp_path / "tv" / "fer2013"
    write_train_test(base)
    (base / "test.csv").unlink()
    _raises(lambda: load_fer2013(tmp_path / "tv"), base / "train.csv", "without test.csv")


# ---------------------------------------------------------------------------- index CSV errors
def _index_images(folder: Path, n: int = 3) -> list[str]:
    (folder / "imgs").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        Image.new("RGB", (20, 20), (10 * i, 0, 0)).save(folder / "imgs" / f"e{i}.png")
        names.append(f"imgs/e{i}.png")
    return names


def test_index_error_missing_csv(tmp_path):
    _raises(lambda: load_index_csv(tmp_path / "none.csv"), tmp_path / "none.csv", "not found", "path, label, split")


def test_index_error_missing_columns(tmp_path):
    names = _index_images(tmp_path)
    csv = write_lines(tmp_path / "idx.csv", ["path,label"] + [f"{n},happy" for n in names])
    _raises(lambda: load_index_csv(csv), csv, "missing column", "split")


def test_index_error_unknown_split(tmp_path):
    names = _index_images(tmp_path)
    csv = write_lines(tmp_path / "idx.csv", ["path,label,split", f"{names[0]},happy,train",
                                             f"{names[1]},happy,dev", f"{names[2]},sad,test"])
    _raises(lambda: load_index_csv(csv), csv, "dev", "train, val, test")


def test_index_error_missing_image_names_file_and_row(tmp_path):
    names = _index_images(tmp_path)
    csv = write_lines(tmp_path / "idx.csv", ["path,label,split", f"{names[0]},happy,train",
                                             "imgs/ghost.png,sad,train", f"{names[2]},sad,test"])
    msg = _raises(lambda: load_index_csv(csv), csv, tmp_path / "imgs" / "ghost.png", "not found")
    assert re.search(r"\brow 3\b", msg), msg


def test_index_error_corrupt_image_names_file_and_row(tmp_path):
    names = _index_images(tmp_path)
    (tmp_path / "imgs" / "bad.jpg").write_bytes(b"\x00garbage" * 20)
    csv = write_lines(tmp_path / "idx.csv", ["path,label,split", f"{names[0]},happy,train",
                                             f"{names[1]},happy,train", "imgs/bad.jpg,sad,test"])
    msg = _raises(lambda: load_index_csv(csv), tmp_path / "imgs" / "bad.jpg", csv, "cannot read image")
    assert re.search(r"\brow 4\b", msg), msg


# ============================================================================ 3. cache
@pytest.mark.parametrize("layout", ["folders", "csv"])
def test_second_load_is_served_from_cache(tmp_path, monkeypatch, cache_root, layout):
    root = write_folders(tmp_path / "k") if layout == "folders" else write_lines(
        tmp_path / "o" / "fer2013.csv", fer_csv_lines())
    first = load_fer2013(root)
    files = dataset_files(cache_root)
    assert len(files) == 1 and files[0].name.startswith(f"fer2013-{layout}-") and files[0].suffix == ".npz"

    def no_decode(*a, **k):
        raise AssertionError("decoded again although the cache should have been used")

    monkeypatch.setattr(fer_mod, "_decode_folders", no_decode)
    monkeypatch.setattr(fer_mod, "_decode_csv", no_decode)
    second = load_fer2013(root)
    assert_same_data(first, second)
    assert second.fingerprint == first.fingerprint != ""


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_decoded_cache_is_rebuilt_with_a_warning_naming_it(tmp_path, cache_root, damage):
    """A truncated or overwritten cache file (a full disk, an interrupted copy) is rebuilt, not read forever."""
    root = write_folders(tmp_path / "k")
    first = load_fer2013(root)
    [cache] = dataset_files(cache_root)
    data = cache.read_bytes()
    cache.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00garbage" * 64, "empty": b""}[damage])
    with pytest.warns(UserWarning, match=re.escape(str(cache)) + ".* is damaged"):
        second = load_fer2013(root)
    assert_same_data(first, second)
    assert cache.read_bytes() == data  # rebuilt byte for byte
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_data(first, load_fer2013(root))  # and read quietly afterwards


def test_a_damaged_teacher_output_cache_epoch_is_recomputed(tmp_path):
    import torch

    from fer_lib.tasks.distill import TeacherOutputCache

    x, logits = torch.ones(2, 3), torch.arange(14.0).view(2, 7)
    cache = TeacherOutputCache(tmp_path / "c")
    assert cache.lookup(0, 0, x) is None
    cache.record(0, 0, x, logits)
    cache.end_epoch(0, 1)
    epoch_file = tmp_path / "c" / "epoch_0000.npz"
    assert torch.equal(TeacherOutputCache(tmp_path / "c").lookup(0, 0, x), logits)
    epoch_file.write_bytes(epoch_file.read_bytes()[:50])
    fresh = TeacherOutputCache(tmp_path / "c")
    with pytest.warns(UserWarning, match="teacher-output cache .*epoch_0000.npz is damaged"):
        assert fresh.lookup(0, 0, x) is None  # a miss: the teachers run
    fresh.record(0, 0, x, logits)
    fresh.end_epoch(0, 1)
    assert torch.equal(TeacherOutputCache(tmp_path / "c").lookup(0, 0, x), logits)  # healed


def test_explicit_cache_dir_is_used(tmp_path, cache_root):
    root = write_folders(tmp_path / "k")
    explicit = tmp_path / "explicit"
    load_fer2013(root, cache_dir=explicit)
    assert len(list((explicit / "datasets").glob("fer2013-folders-*.npz"))) == 1
    assert dataset_files(cache_root) == []


def _spy(monkeypatch, name):
    calls = []
    orig = getattr(fer_mod, name)

    def spy(*a, **k):
        calls.append(1)
        return orig(*a, **k)

    monkeypatch.setattr(fer_mod, name, spy)
    return calls


def _bump_mtime(path: Path, seconds: int = 10):
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def test_modified_image_triggers_redecode(tmp_path, monkeypatch):
    root = write_folders(tmp_path / "k")
    calls = _spy(monkeypatch, "_decode_folders")
    first = load_fer2013(root)
    assert len(calls) == 1
    assert load_fer2013(root).fingerprint == first.fingerprint and len(calls) == 1  # cache hit

    target = RECORDS[0]
    path = root / "train" / target.cls / f"{target.stem}.png"
    new = np.random.default_rng(99).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    Image.fromarray(new).save(path)
    _bump_mtime(path)
    second = load_fer2013(root)
    assert len(calls) == 2
    t = table(second)
    assert t[new.tobytes()] == (target.cls, "train") and target.pixels.tobytes() not in t
    assert second.fingerprint != first.fingerprint
    load_fer2013(root)
    assert len(calls) == 2  # the new version is cached in turn


def test_modified_csv_triggers_redecode(tmp_path, monkeypatch):
    lines = fer_csv_lines()
    csv = write_lines(tmp_path / "fer2013.csv", lines)
    calls = _spy(monkeypatch, "_decode_csv")
    first = load_fer2013(csv)
    row = next(i for i, ln in enumerate(lines) if ln.endswith(",Training"))
    lines[row] = lines[row][: -len("Training")] + "PrivateTest"  # new content (and size)
    csv.write_text("\n".join(lines) + "\n")
    _bump_mtime(csv)
    second = load_fer2013(csv)
    assert len(calls) == 2
    assert first.split[row - 1] == "train" and second.split[row - 1] == "test"
    assert (second.split == "test").sum() == (first.split == "test").sum() + 1
    assert second.fingerprint != first.fingerprint


def test_touch_only_redecodes_but_keeps_content_fingerprint(tmp_path, monkeypatch):
    root = write_folders(tmp_path / "k")
    calls = _spy(monkeypatch, "_decode_folders")
    first = load_fer2013(root)
    r = RECORDS[-1]
    _bump_mtime(root / "test" / r.cls / f"{r.stem}.png")
    second = load_fer2013(root)
    assert len(calls) == 2  # the cheap key (path, size, mtime) changed
    assert_same_data(first, second)  # ... but the content fingerprint did not


def test_cache_write_leaves_no_temp_files(tmp_path, cache_root):
    load_fer2013(write_folders(tmp_path / "k"))
    load_fer2013(write_lines(tmp_path / "o" / "fer2013.csv", fer_csv_lines()))
    names = [f.name for f in dataset_files(cache_root)]
    assert len(names) == 2 and all(n.endswith(".npz") for n in names)
    assert not [n for n in names if "tmp" in n]


def test_failed_decode_leaves_no_cache_file(tmp_path, cache_root):
    root = write_folders(tmp_path / "k")
    (root / "test" / "sad" / "PrivateTest_bad.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError):
        load_fer2013(root)
    assert dataset_files(cache_root) == []


def test_interrupted_cache_write_leaves_nothing_behind(tmp_path, monkeypatch, cache_root):
    root = write_folders(tmp_path / "k")

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(cache_mod.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        load_fer2013(root)
    assert dataset_files(cache_root) == []  # neither a partial .npz nor a stray .tmp
    monkeypatch.undo()
    monkeypatch.setenv("FER_CACHE", str(cache_root))
    ds = load_fer2013(root)
    assert table(ds) == expected_table()
    assert [f.suffix for f in dataset_files(cache_root)] == [".npz"]


# ============================================================================ 4. generic index CSV
# (name, FER class index, split, RGB colour, width, height); solid colours make the decoded pixels exact at any size
INDEX_ROWS = [(f"h{i}", 3, "train", (200, 10 * i, 5), 30 + i, 20) for i in range(8)] + \
             [(f"s{i}", 5, "train", (5, 10 * i, 200), 25, 40 + i) for i in range(8)] + \
             [("ht0", 3, "test", (120, 60, 30), 48, 48), ("ht1", 3, "test", (121, 61, 31), 50, 48),
              ("st0", 5, "test", (30, 60, 120), 64, 64), ("st1", 5, "test", (31, 61, 121), 48, 50)]


def write_index(folder: Path, labels: str = "names", name: str = "index.csv") -> Path:
    """Index CSV with relative paths (one absolute) and a source column; labels as names or integers."""
    (folder / "imgs").mkdir(parents=True, exist_ok=True)
    lines = ["path,label,split,source"]
    for k, (stem, lab, split, colour, w, h) in enumerate(INDEX_ROWS):
        f = folder / "imgs" / f"{stem}.png"
        if not f.exists():
            Image.new("RGB", (w, h), colour).save(f)
        path = str(f) if k == 5 else f"imgs/{stem}.png"
        label = FER_CLASSES[lab] if labels == "names" else str(lab)
        lines.append(f"{path},{label},{split},{'rafdb' if k % 2 else 'ferplus'}")
    return write_lines(folder / name, lines)


def _gray(colour) -> int:
    return Image.new("RGB", (1, 1), colour).convert("L").getpixel((0, 0))


def test_index_csv_class_names_gray(tmp_path):
    csv = write_index(tmp_path / "idx")
    ds = load_index_csv(csv, size=24, color="gray")
    assert ds.classes == FER_CLASSES
    assert ds.labels.tolist() == [r[1] for r in INDEX_ROWS]
    assert ds.split.tolist() == [r[2] for r in INDEX_ROWS]
    assert ds.images.shape == (len(INDEX_ROWS), 24, 24) and ds.images.dtype == np.uint8
    for im, row in zip(ds.images, INDEX_ROWS):
        assert np.all(im == _gray(row[3])), row
    assert str(ds.ids[0]) == "imgs/h0.png"
    assert any("ferplus" in n and "rafdb" in n for n in ds.notes)


def test_index_csv_rgb(tmp_path):
    ds = load_index_csv(write_index(tmp_path / "idx"), size=16, color="rgb")
    assert ds.images.shape == (len(INDEX_ROWS), 16, 16, 3) and ds.channels == 3
    for im, row in zip(ds.images, INDEX_ROWS):
        assert np.all(im == np.array(row[3], np.uint8)), row


def test_index_csv_integer_labels_match_names(tmp_path):
    by_name = load_index_csv(write_index(tmp_path / "idx", "names", "names.csv"), size=20)
    by_int = load_index_csv(write_index(tmp_path / "idx", "ints", "ints.csv"), size=20)
    assert by_int.classes == by_name.classes == FER_CLASSES
    assert np.array_equal(by_int.labels, by_name.labels)
    assert np.array_equal(by_int.images, by_name.images)
    assert by_int.fingerprint == by_name.fingerprint


def test_index_csv_integer_label_out_of_range(tmp_path):
    names = _index_images(tmp_path)
    csv = write_lines(tmp_path / "idx.csv", ["path,label,split"] + [f"{n},{k},train" for n, k in zip(names, (1, 7, 2))])
    _raises(lambda: load_index_csv(csv), csv, "0..6", "7")


@pytest.mark.parametrize("size,color,shape", [(12, "gray", (12, 12)), (32, "gray", (32, 32)), (20, "rgb", (20, 20, 3))])
def test_index_csv_decode_size_and_color(tmp_path, size, color, shape):
    ds = load_index_csv(write_index(tmp_path / "idx"), size=size, color=color, cache_dir=tmp_path / f"c{size}{color}")
    assert ds.images.shape == (len(INDEX_ROWS),) + shape


def test_index_csv_only_train_test_gets_val_carved(tmp_path):
    csv = write_index(tmp_path / "idx")
    ds = load_dataset(DataConfig(source="index_csv", root=str(csv), size=24, val_fraction=0.25, seed=0))
    train_rows = [r for r in INDEX_ROWS if r[2] == "train"]
    n_val = round(0.25 * len(train_rows))  # 4
    assert (ds.split == "val").sum() == n_val
    assert (ds.split == "train").sum() == len(train_rows) - n_val
    assert ds.split[[r[2] == "test" for r in INDEX_ROWS]].tolist() == ["test"] * 4  # test untouched
    assert ds.counts()["val"].tolist() == [0, 0, 0, 2, 0, 2, 0]  # stratified: 2 happy + 2 sad
    assert any(re.search(rf"no val split.*{n_val} train images.*stratified.*became val", n) for n in ds.notes)


# ============================================================================ 5. load_dataset: synthetic
def synth_cfg(**kw) -> DataConfig:
    return DataConfig(**{"source": "synthetic", "n_train": 140, "n_val": 35, "n_test": 30, "seed": 0, **kw})


def test_synthetic_counts_and_determinism(monkeypatch, tmp_path):
    a = load_dataset(synth_cfg())
    assert [(a.split == s).sum() for s in ("train", "val", "test")] == [140, 35, 30]
    assert a.images.shape == (205, 48, 48) and a.classes == FER_CLASSES
    assert a.labels.min() >= 0 and a.labels.max() < len(FER_CLASSES)
    # decoded again from scratch (fresh cache): same data, same fingerprint
    monkeypatch.setenv("FER_CACHE", str(tmp_path / "other_cache"))
    b = load_dataset(synth_cfg())
    assert len(dataset_files(tmp_path / "other_cache")) == 1
    assert_same_data(a, b)
    c = load_dataset(synth_cfg(seed=1))
    assert c.fingerprint != a.fingerprint and not np.array_equal(c.images, a.images)


def test_synthetic_limit_keeps_stratified_subset_and_notes_it():
    full = load_dataset(synth_cfg())
    lim = load_dataset(synth_cfg(limit={"train": 70}))
    assert [(lim.split == s).sum() for s in ("train", "val", "test")] == [70, 35, 30]
    full_ids = set(full.ids[full.split == "train"].astype(str))
    assert set(lim.ids[lim.split == "train"].astype(str)) <= full_ids
    assert np.array_equal(lim.ids[lim.split != "train"], full.ids[full.split != "train"])
    n_full = full.counts()["train"].to_numpy()
    assert np.all(np.abs(lim.counts()["train"].to_numpy() - n_full * 70 / 140) < 1)  # stratified
    assert "train limited to 70 of 140 images (stratified, seed 0)" in lim.notes
    assert lim.fingerprint != full.fingerprint
    # a limit above the split size changes nothing and adds no note
    same = load_dataset(synth_cfg(limit={"val": 1000}))
    assert same.fingerprint == full.fingerprint and same.notes == full.notes


# ============================================================================ 6. synthetic generator + audit
def test_audit_finds_exactly_the_injected_artifacts(monkeypatch):
    n_train, n_val, n_test, seed = 300, 100, 100, 3
    # inject_audit_artifacts: n_within = max(2, n_train // 100), n_cross = max(2, (n_val + n_test) // 100),
    # n_blank = max(1, n // 500)
    n_within, n_cross, n_blank = 3, 2, 1
    data = make_synthetic_fer(n_train, n_val, n_test, seed=seed)
    assert (f"injected for the audit: {n_within} within-train duplicates, {n_cross} train images copied "
            f"into val/test, {n_blank} near-blank images") in data.notes

    monkeypatch.setattr(synth_fer_mod, "inject_audit_artifacts", lambda *a, **k: ())
    clean = make_synthetic_fer(n_train, n_val, n_test, seed=seed)
    assert len(duplicate_groups(clean)) == 0 and len(near_blank(clean)) == 0  # the generator alone has none
    changed = set(np.flatnonzero((data.images != clean.images).any(axis=(1, 2))).tolist())
    assert len(changed) == n_within + n_cross + n_blank

    dups = duplicate_groups(data)
    assert len(dups) == n_within + n_cross and (dups["size"] == 2).all()
    within, cross = dups[~dups["cross_split"]], dups[dups["cross_split"]]
    assert len(within) == n_within and all(s == ["train"] for s in within["splits"])
    assert len(cross) == n_cross and cross["labels_agree"].all()  # cross-split copies keep the label
    for s in cross["splits"]:
        assert "train" in s and len(s) == 2 and set(s) <= {"train", "val", "test"}
    members = [i for idx in dups["indices"] for i in idx]
    assert len(members) == len(set(members))
    for idx in dups["indices"]:  # each group: an untouched source and the overwritten copy
        assert sum(i in changed for i in idx) == 1
    blank = near_blank(data)
    assert len(blank) == n_blank
    assert set(blank.tolist()) <= changed and not set(blank.tolist()) & set(members)
    assert changed == {i for i in members if i in changed} | set(blank.tolist())
    assert data.images[blank].reshape(n_blank, -1).std(1).max() < 2.0


def test_make_synthetic_fer_is_deterministic():
    a, b = make_synthetic_fer(60, 20, 20, seed=4), make_synthetic_fer(60, 20, 20, seed=4)
    assert_same_data(a, b)


def test_synthetic_face_masks_use_part_classes():
    imgs, noisy, true, masks = synthetic_faces(48, seed=5)
    assert imgs.shape == masks.shape == (48, 48, 48)
    assert imgs.dtype == masks.dtype == np.uint8
    assert set(np.unique(masks).tolist()) <= set(range(19)) and len(PART_CLASSES) == 19
    present = set(np.unique(masks).tolist())
    for part in ("background", "skin", "hair", "l_eye", "r_eye", "mouth", "nose"):
        assert PART_CLASSES.index(part) in present, part
    per_image = [set(np.unique(m).tolist()) for m in masks]
    skin, hair = PART_CLASSES.index("skin"), PART_CLASSES.index("hair")
    eyes = {PART_CLASSES.index("l_eye"), PART_CLASSES.index("r_eye")}
    assert all(skin in p and hair in p and eyes <= p for p in per_image)  # every face has them
    assert set(true.tolist()) <= set(range(7)) and set(noisy.tolist()) <= set(range(7))
    assert (noisy != true).mean() < 0.3


# ============================================================================ regressions
# Each of these reproduced a bug found while writing these tests (fixed since).
def test_regression_index_cache_key_ignores_size_and_color(tmp_path):
    csv = write_index(tmp_path / "idx")
    assert load_index_csv(csv, size=16).images.shape[1:] == (16, 16)
    assert load_index_csv(csv, size=32).images.shape[1:] == (32, 32)
    assert load_index_csv(csv, size=16, color="rgb").images.shape[1:] == (16, 16, 3)


def test_regression_torchvision_folder_with_fer2013_csv(tmp_path):
    write_lines(tmp_path / "tv" / "fer2013" / "fer2013.csv", fer_csv_lines())
    assert table(load_fer2013(tmp_path / "tv")) == expected_table()


def test_regression_non_numeric_pixel_gives_dataset_error(tmp_path):
    lines = fer_csv_lines()
    code, px, usage = lines[2].split(",")
    lines[2] = f"{code},{'x ' + px.split(' ', 1)[1]},{usage}"
    csv = write_lines(tmp_path / "fer2013.csv", lines)
    msg = _raises(lambda: load_fer2013(csv), csv)
    assert re.search(r"\brow 3\b", msg), msg


def test_regression_index_csv_relative_path(tmp_path, monkeypatch):
    write_index(tmp_path / "idx")
    monkeypatch.chdir(tmp_path)
    assert len(load_index_csv(Path("idx/index.csv"), size=8)) == len(INDEX_ROWS)


def test_regression_empty_and_bad_usage_gives_dataset_error(tmp_path):
    lines = fer_csv_lines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",Validation"
    lines[2] = lines[2].rsplit(",", 1)[0] + ","
    csv = write_lines(tmp_path / "fer2013.csv", lines)
    _raises(lambda: load_fer2013(csv), csv, "Validation")


def test_index_csv_label_rules(tmp_path):
    csv = write_index(tmp_path / "idx")
    lines = csv.read_text().splitlines()
    # a mix of integers and names is refused, naming the row
    mixed = lines[:2] + [lines[2].replace(",happy,", ",3,")] + lines[3:]
    _raises(lambda: load_index_csv(write_lines(tmp_path / "idx" / "mixed.csv", mixed), size=8), "row 3",
            "mix integers and class names")
    # names outside the FER classes define the CSV's own classes, and a note says so
    own = [lines[0]] + [ln.replace(",happy,", ",contempt,") for ln in lines[1:]]
    d = load_index_csv(write_lines(tmp_path / "idx" / "own.csv", own), size=8)
    assert d.classes == ("contempt", "sad") and any("not FER: contempt" in n for n in d.notes)


def test_carving_from_too_few_images_names_the_parameter():
    from fer_lib.data.dataset import carve_val

    d = load_dataset({"n_train": 140, "n_val": 30, "n_test": 30, "seed": 0})
    tiny = d.take(np.flatnonzero(d.split == "train")[:20])
    with pytest.raises(ValueError, match="data.val_fraction"):
        carve_val(tiny, 0.1, 0)


# ----------------------------------------------------------------------------- synthetic audio-visual clips
def test_synthetic_av_clip_is_deterministic_one_identity_and_its_voice_follows_the_emotion():
    from fer_lib.data import FER_CLASSES, synthetic_av_clip
    from fer_lib.data.synthetic_av import VOICE

    a, b = synthetic_av_clip(6, seed=3), synthetic_av_clip(6, seed=3)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.frames.shape == (6, 64, 64) and a.frames.dtype == np.uint8
    assert a.audio.shape == (16000,) and a.audio.dtype == np.float32 and np.abs(a.audio).max() <= 1
    assert not np.array_equal(synthetic_av_clip(6, seed=4).audio, a.audio)
    # the expression builds up: each frame is further from the first (neutral) one than the one before
    dist = [np.abs(f.astype(int) - a.frames[0]).mean() for f in a.frames]
    assert all(x < y for x, y in zip(dist[1:], dist[2:]))
    for label, emotion in enumerate(FER_CLASSES):
        clip = synthetic_av_clip(label, seed=0, n_frames=2, size=32)
        head = clip.audio[:3200]  # first 0.2 s: pitch near f0 + slope * 0.1 s
        spectrum = np.abs(np.fft.rfft(head * np.hanning(len(head))))
        peak = np.fft.rfftfreq(len(head), 1 / clip.sample_rate)[spectrum.argmax()]
        f0, slope, _, _ = VOICE[emotion]
        assert abs(peak - (f0 + 0.1 * slope)) <= 0.05 * f0, (emotion, peak)
    loud = {e: np.abs(synthetic_av_clip(i, seed=0, n_frames=2, size=32).audio).mean() for i, e in enumerate(FER_CLASSES)}
    assert loud["angry"] > loud["neutral"] > loud["sad"]
    with pytest.raises(ValueError, match="FER_CLASSES"):
        synthetic_av_clip(7, seed=0)


# ============================================================================ replayable per-sample views
def test_seeded_draws_like_manual_seed_and_restores_every_rng():
    """``seeded`` gives the CPU draws of ``torch.manual_seed`` (the reference) and leaves torch, numpy and
    python RNG streams where they were."""
    import random

    import torch

    from fer_lib.data.dataset import seeded

    def seed_all(s):
        torch.manual_seed(s)
        np.random.seed(s)
        random.seed(s)

    def draw():
        return torch.rand(5).tolist() + np.random.rand(3).tolist() + [random.random()]

    seed_all(123)
    with seeded(42):
        inside = draw()
    after = draw()
    seed_all(123)
    assert after == draw()  # the block did not move the outer streams
    seed_all(42)
    assert inside == draw()  # and drew what the reference seeding draws


def test_epoch_views_replay_whatever_else_draws():
    """After ``set_epoch``, image i's augmented view depends on (seed, epoch, i) only: the same in any order and
    after unrelated draws, different in the next epoch."""
    import torch
    from torchvision.transforms import v2

    from fer_lib.data import ImageArrayDataset
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 16, 16), dtype=np.uint8)
    ds = ImageArrayDataset(images, np.zeros(6, dtype=np.int64),
                           transform=v2.Compose([v2.RandomResizedCrop(12, scale=(0.3, 1.0), antialias=True),
                                                 v2.RandomHorizontalFlip()]))
    ds.set_epoch(0, 1)
    first = [ds[i][0] for i in range(6)]
    torch.rand(1000)
    again = [ds[i][0] for i in reversed(range(6))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    ds.set_epoch(0, 2)
    assert not all(torch.equal(a, ds[i][0]) for i, a in enumerate(first))
