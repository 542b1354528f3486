"""CIFAR-100 loader on a small fixture in torchvision's exact format (pickled dicts), written by the test."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from fer_lib.data import DatasetError, load_cifar100, load_dataset


def write_cifar(root, n_train=60, n_test=20, classes=5, seed=0):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = [f"class{i}".encode() for i in range(classes)]
    parts = {}
    for part, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(i % classes) for i in range(n)]
        parts[part] = (data, labels)
        with open(folder / part, "wb") as f:
            pickle.dump({b"data": data, b"fine_labels": labels, b"coarse_labels": [0] * n,
                         b"filenames": [f"img{i}.png".encode() for i in range(n)]}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": names, b"coarse_label_names": [b"all"]}, f)
    return parts


def test_layout_pixels_labels_and_splits(tmp_path):
    parts = write_cifar(tmp_path)
    for root in (tmp_path, tmp_path / "cifar-100-python"):  # the parent or the folder itself
        d = load_cifar100(root)
        assert d.classes == tuple(f"class{i}" for i in range(5))
        assert d.images.shape == (80, 32, 32, 3) and d.images.dtype == np.uint8
        train = d.subset("train")
        # CIFAR stores each image as R, G, B planes of 32x32
        np.testing.assert_array_equal(train.images[3, :, :, 1], parts["train"][0][3, 1024:2048].reshape(32, 32))
        np.testing.assert_array_equal(train.labels, parts["train"][1])
        assert (d.split == "test").sum() == 20


def test_val_is_carved_from_train_stratified_and_seeded(tmp_path):
    write_cifar(tmp_path, n_train=100)
    cfg = {"source": "cifar100", "root": str(tmp_path), "val_fraction": 0.1, "seed": 3}
    d = load_dataset(cfg)
    assert [(d.split == s).sum() for s in ("train", "val", "test")] == [90, 10, 20]
    assert np.bincount(d.labels[d.split == "val"]).tolist() == [2, 2, 2, 2, 2]  # stratified
    assert load_dataset(cfg).fingerprint == d.fingerprint
    assert load_dataset(dict(cfg, seed=4)).fingerprint != d.fingerprint
    assert any("became val" in n for n in d.notes)


def test_missing_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError, match=r"CIFAR-100 not found: .*cifar-100-python lacks .*download: true"):
        load_cifar100(tmp_path / "nowhere")


def test_corrupt_or_malformed_files_are_named(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-100-python" / "test").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match=r"cannot read CIFAR-100 file .*cifar-100-python/test"):
        load_cifar100(tmp_path)
    write_cifar(tmp_path / "b")
    with open(tmp_path / "b" / "cifar-100-python" / "train", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"fine_labels": [0] * 4}, f)
    with pytest.raises(DatasetError, match=r"expected data of shape \(N, 3072\)"):
        load_cifar100(tmp_path / "b")
