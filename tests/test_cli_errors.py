"""Faults and bad input at the command line: every failure names its file and a way out, no traceback."""
from __future__ import annotations

import errno
import struct
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fer_lib.runs import RunStore
from fer_lib.tasks.errors import run_command

from test_segmentation import _tiny_config


def _exit_code(main, argv) -> int:
    with pytest.raises(SystemExit) as done:
        main(argv)
    return done.value.code


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory):
    from fer_lib.tasks.segment import train_segmenter

    return train_segmenter(_tiny_config(epochs=1), RunStore(tmp_path_factory.mktemp("runs")), progress=False)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb's shape), without the pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------------------- 1, 2: fer-parse
def test_two_images_with_one_stem_are_refused_before_anything_is_written(tmp_path, seg_run, capsys):
    from fer_lib.commands.parse import main

    images = tmp_path / "imgs"
    images.mkdir()
    for ext in ("jpg", "png"):
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(images / f"x.{ext}")
    out = tmp_path / "masks"
    code = _exit_code(main, ["predict", "--run", str(seg_run.path), "--images", str(images), "--out", str(out),
                             "--zip", str(tmp_path / "m.zip")])
    err = capsys.readouterr().err
    assert code == 2 and "x.jpg and x.png" in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "m.zip").exists()


def test_every_readable_image_is_predicted_and_each_bad_one_is_named(tmp_path, seg_run, capsys):
    from fer_lib.commands.parse import main

    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(images / "a_good.jpg")
    (images / "b_empty.jpg").write_bytes(b"")
    _png_header_only(images / "c_bomb.png", 20000, 20000)
    Image.fromarray(np.full((16, 16, 3), 64, np.uint8)).save(images / "d_good.png")
    (images / "notes.txt").write_text("not an image")
    code = _exit_code(main, ["predict", "--run", str(seg_run.path), "--images", str(images),
                             "--out", str(tmp_path / "masks"), "--zip", str(tmp_path / "m.zip")])
    captured = capsys.readouterr()
    assert code == 1, "a failed image makes the exit status non-zero"
    assert "FAILED b_empty.jpg" in captured.err and "FAILED c_bomb.png" in captured.err
    assert "skipped notes.txt: not an image" in captured.err and "Traceback" not in captured.err
    assert "wrote 2 masks" in captured.out and "2 image(s) failed" in captured.out
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["a_good.png", "d_good.png"]
    assert sorted(zipfile.ZipFile(tmp_path / "m.zip").namelist()) == ["a_good.png", "d_good.png"]


def test_large_images_are_predicted_in_bands_like_the_whole_image():
    """The banded path (bounded memory) gives the full-resolution path's logits and labels."""
    from fer_lib.tasks.parse import banded_logits, predict_label_map
    from fer_lib.tasks.segment import full_resolution_logits

    torch.manual_seed(0)
    low = torch.randn(1, 19, 16, 12)
    full = torch.nn.functional.interpolate(low, size=(203, 151), mode="bilinear", align_corners=False)
    bands = torch.cat([b for _, _, b in banded_logits(low, (203, 151), band_pixels=151 * 17)], dim=2)
    torch.testing.assert_close(bands, full, rtol=0, atol=1e-5)

    toy = torch.nn.Sequential(torch.nn.Conv2d(3, 19, 3, padding=1), torch.nn.AvgPool2d(4))  # 1/4-resolution logits
    x, perm = torch.randn(1, 3, 32, 32), torch.randperm(19)
    for tta in ("none", "flip"):
        whole = full_resolution_logits(toy, x, (97, 83), tta, perm).argmax(1)[0].byte().numpy()
        banded = predict_label_map(toy, x, (97, 83), tta == "flip", perm, band_pixels=83 * 10)
        assert (whole == banded).mean() > 0.999  # float rounding may flip a near-tie pixel


# ------------------------------------------------------------------------------------------- 5: parameter files
def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    from fer_lib.commands.train import main

    bad = tmp_path / "mine.yaml"
    bad.write_text("data: {source: synthetic\ntrain:\n  epochs: 1\n")
    assert _exit_code(main, ["--section", "01_teachers", "--params", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not valid YAML at line" in err and "Traceback" not in err


def test_a_missing_block_names_the_file_and_the_block(tmp_path, capsys):
    from fer_lib.commands.train import main

    bad = tmp_path / "mine.yaml"
    bad.write_text("data: {source: synthetic}\ntrain: {epochs: 1}\n")
    assert _exit_code(main, ["--section", "01_teachers", "--params", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: no `teachers:` entry" in err and "KeyError" not in err


@pytest.mark.parametrize("mode", ["--status", "--plan"])
def test_an_unknown_section_is_named_with_the_known_ones(mode, capsys):
    from fer_lib.commands.train import main

    assert _exit_code(main, ["--profile", "smoke", "--sections", "04_multi", mode]) == 2
    err = capsys.readouterr().err
    assert "unknown section(s) 04_multi" in err and "04_kd_cifar" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------- 5, 6: the store, Ctrl-C
@pytest.mark.parametrize("exc, words", [
    (OSError(errno.ENOSPC, "No space left on device", "/store/teacher/.tmp-x/weights.safetensors"),
     ["disk is full", "/store/teacher/.tmp-x/weights.safetensors", "FER_RUNS"]),
    (OSError(errno.EROFS, "Read-only file system", "/store/teacher/.locks/k.lock"),
     ["cannot write /store/teacher/.locks/k.lock", "FER_RUNS"]),
    (PermissionError(errno.EACCES, "Permission denied", "/store/x"), ["cannot write /store/x"]),
])
def test_disk_full_and_read_only_stores_are_one_message_with_a_way_out(exc, words, capsys):
    def body():
        raise exc
    assert run_command("fer-train", body) == 2
    err = capsys.readouterr().err
    assert err.startswith("fer-train: error: ") and all(w in err for w in words) and "Traceback" not in err


def test_a_safetensors_disk_full_error_is_one_message(capsys):
    from safetensors import SafetensorError

    def body():
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                              "\"No space left on device\" })")
    assert run_command("fer-parse", body) == 2
    assert "disk is full" in capsys.readouterr().err


def test_ctrl_c_ends_with_one_line_saying_the_run_resumes(capsys):
    def body():
        raise KeyboardInterrupt
    assert run_command("fer-train", body) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resumes from its last completed epoch" in err[0]


def test_debug_shows_the_traceback(capsys, monkeypatch):
    def body():
        raise ValueError("bad value")
    monkeypatch.setenv("FER_DEBUG", "1")
    assert run_command("fer-runs", body) == 2
    assert "Traceback" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- 4: concurrent builds
def test_two_builds_of_one_section_at_once_both_succeed(tmp_path, monkeypatch):
    """Each execution writes its own temporary notebook (the shared name made one crash with FileNotFoundError)."""
    import time

    import nbformat
    import papermill

    from fer_lib.report import pipeline

    def fake_execute(src, dst, **kwargs):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell("# 09 · x\n\ntext")]
        nbformat.write(nb, dst)
        time.sleep(0.3)  # both writers overlap

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    out = tmp_path / "book" / "sections" / "09_calibration.ipynb"
    spec = next(s for s in pipeline.SECTIONS if s.name == "09_calibration")
    errors = []

    def build():
        try:
            pipeline.execute(spec, "smoke", out)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and out.is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_a_truncated_weights_file_in_fer_parse_run_names_the_run_and_the_way_out(tmp_path, seg_run, capsys):
    import shutil

    from fer_lib.commands.parse import main

    run = tmp_path / "segmenter" / seg_run.key
    shutil.copytree(seg_run.path, run)
    weights = run / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(images / "a.jpg")
    code = _exit_code(main, ["predict", "--run", str(run), "--images", str(images), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and str(weights) in err and "is damaged" in err and "Traceback" not in err


def test_building_a_book_copy_whose_config_link_dangles_names_the_file(tmp_path):
    """`cp -r book elsewhere` keeps book/_config.yml as a link to ../_config.yml, which then points at nothing: Jupyter
    Book would build with its defaults (another title, notebooks executed again) without a word."""
    from fer_lib.report.pipeline import build_book

    book = tmp_path / "book"
    book.mkdir()
    (book / "_config.yml").symlink_to("../_config.yml")
    with pytest.raises(SystemExit, match=r"_config.yml is missing \(or a link to nothing.*cp -rL"):
        build_book(book)
