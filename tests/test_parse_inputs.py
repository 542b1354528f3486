"""``fer-parse`` on hostile input folders: each bad image is named and skipped, the rest predicted; the masks never go
into the images' folder. A stand-in model (one 1x1 convolution) replaces the stored run, so nothing is trained."""
from __future__ import annotations

import errno
import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from fer_lib.tasks import parse


@pytest.fixture(autouse=True)
def stand_in_model(monkeypatch):
    """``load_segmenter`` returns a 19-class 1x1 convolution at a 16-pixel input: what the folder holds is tested."""
    model = torch.nn.Conv2d(3, 19, 1).eval()
    monkeypatch.setattr(parse, "load_segmenter", lambda run, dev: (model, {"size": 16, "mean": [0.5] * 3,
                                                                           "std": [0.5] * 3}))


def _fer_parse(argv, capsys) -> tuple[int, str, str]:
    from fer_lib.commands.parse import main

    with pytest.raises(SystemExit) as done:
        main(["predict", "--run", "unused", *argv])
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


def _image(fmt: str, size=(20, 20)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb's shape), without the pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def _broken_png_chunk() -> bytes:
    """A PNG whose image-data chunk claims fewer bytes than it holds: PIL raises SyntaxError ("broken PNG file")."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[36] = 45  # the low byte of the IDAT chunk's length
    return bytes(data)


@pytest.mark.parametrize("out", ["same", "inside"])
def test_out_equal_to_or_inside_images_is_refused_before_anything_is_written(tmp_path, capsys, out):
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "x.png").write_bytes(_image("PNG"))
    before = (images / "x.png").read_bytes()
    target = images if out == "same" else images / "masks"
    code, _, err = _fer_parse(["--images", str(images), "--out", str(target)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "is (or is inside) --images" in err and "outside it" in err
    assert (images / "x.png").read_bytes() == before and sorted(p.name for p in images.iterdir()) == ["x.png"]


def test_each_bad_image_is_named_and_skipped_and_the_folder_goes_on(tmp_path, capsys):
    images = tmp_path / "imgs"
    images.mkdir()
    bad = {
        "b_gif.png": _image("GIF"),                      # not a JPEG, PNG, BMP or WEBP, whatever its name says
        "c_tiff.jpg": _image("TIFF"),                    # the same (TIFF's decoders are many and large)
        "d_syntax.png": _broken_png_chunk(),             # SyntaxError from PIL
        "e_truncated.jpg": _image("JPEG")[:200],         # OSError: truncated
        "f_random.jpg": bytes(range(256)) * 4,           # UnidentifiedImageError
        "g_bomb.png": _png_header_only(20000, 20000),    # 400 M pixels: refused from the header
        "h_wide.png": _png_header_only(2_100_000, 20),   # 42 M pixels in a strip: over the bound too
    }
    for name, data in bad.items():
        (images / name).write_bytes(data)
    (images / "a_good.jpg").write_bytes(_image("JPEG", (30, 40)))
    (images / "z_good.png").write_bytes(_image("PNG"))
    out = tmp_path / "masks"
    code, stdout, err = _fer_parse(["--images", str(images), "--out", str(out)], capsys)
    assert code == 1 and "Traceback" not in err
    for name in bad:
        assert f"FAILED {name}: " in err, err
    assert "d_syntax.png: SyntaxError" in err
    assert "g_bomb.png" in err and "over the 40 M pixel limit" in err.split("g_bomb.png")[1].splitlines()[0]
    assert "over the 40 M pixel limit" in err.split("h_wide.png")[1].splitlines()[0]
    assert "wrote 2 masks" in stdout and f"{len(bad)} image(s) failed" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["a_good.png", "z_good.png"]
    with Image.open(out / "a_good.png") as m:
        assert m.size == (30, 40) and m.mode == "L"


def test_a_huge_image_is_never_decoded(tmp_path, monkeypatch):
    """The pixel bound is checked from the header: ``load`` is never called on an image over it."""
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    loads = []
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(1) or real(self))
    with pytest.raises(ValueError, match=r"300x200 = 0.06 M pixels, over the 0.05 M pixel limit"):
        parse.read_image_bounded(path, max_pixels=50_000)
    assert not loads
    assert parse.read_image_bounded(path, max_pixels=60_000).shape == (200, 300, 3) and loads


def test_a_full_disk_while_writing_masks_says_to_run_again_not_resume(tmp_path, monkeypatch, capsys):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "masks" / "a.png"))

    monkeypatch.setattr(parse, "predict_folder", full)
    code, _, err = _fer_parse(["--images", str(tmp_path), "--out", str(tmp_path / "masks")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "the disk is full writing" in err and "run the command again" in err and "resume" not in err
