"""Face parsing for users (``fer-parse predict``, section 06's submission): a stored run applied to a folder.

Every image of the folder that can be read is predicted; one that cannot (unreadable, empty, not one of
``IMAGE_FORMATS`` whatever its name says, larger than ``MAX_PIXELS`` -- a decompression bomb included, refused from
its header before it is decoded) is reported with its reason and the others go on; a file that is not an image is
reported as skipped. Two images with one stem (``x.jpg`` and ``x.png``) would write one mask ``x.png``: the folder is
refused, naming both, before anything is written; so is an ``--out`` inside ``--images`` (a mask ``x.png`` would
overwrite an image, and the next run would read the masks as images). Memory is bounded on large images: the
model runs at its input size, and the full-resolution logits are formed a band of rows at a time.
"""
from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..atomic import atomic_write
from ..data.faceparse import IMAGE_EXTS, flip_permutation
from ..runs import Run
from .segment import full_resolution_logits, label_map, load_segmenter, resize_images

#: the largest image predicted (pixels), checked from the header before decoding; PIL's own guard warns at 89 M
MAX_PIXELS = 40_000_000
#: the decoders an image may use: a file named .jpg or .png that is really a PSD, EPS, TIFF ... is refused
IMAGE_FORMATS = ["JPEG", "PNG", "BMP", "WEBP"]
#: full-resolution pixels formed at once (a band of rows): 19 classes x 2M px x 4 bytes = 160 MB per tensor
BAND_PIXELS = 1 << 21


@dataclass
class Prediction:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)   # images that could not be predicted, and why
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # files that are not images


def read_image_bounded(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An RGB image, refusing one over ``max_pixels`` before decoding it (its header gives the size; PIL's own guard
    may refuse a larger one from the header first, and the message then gives our bound too)."""
    limit = f"over the {max_pixels / 1e6:g} M pixel limit (a decompression bomb, or resize it first)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ValueError(f"{width}x{height} = {width * height / 1e6:.3g} M pixels, {limit}")
                return np.array(im.convert("RGB"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"{limit}: {exc}") from exc


def banded_logits(low_res: torch.Tensor, size: tuple[int, int], band_pixels: int = BAND_PIXELS):
    """Yield (row0, row1, logits of rows row0..row1 at ``size``): bilinear upsampling of ``low_res`` (1, C, h, w),
    align_corners=False, computed a band of rows at a time with ``grid_sample`` (the same sampling points as
    ``F.interpolate``; border clamping = its edge rule)."""
    height, width = size
    rows = max(1, band_pixels // width)
    xs = (2 * torch.arange(width, device=low_res.device, dtype=torch.float32) + 1) / width - 1
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        ys = (2 * torch.arange(r0, r1, device=low_res.device, dtype=torch.float32) + 1) / height - 1
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)[None]
        yield r0, r1, F.grid_sample(low_res, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.inference_mode()
def predict_label_map(model, x: torch.Tensor, size: tuple[int, int], tta: bool, perm: torch.Tensor,
                      band_pixels: int = BAND_PIXELS) -> np.ndarray:
    """The (H, W) uint8 label map of one normalised image ``x`` (1, 3, S, S) at ``size``; the model's flip TTA
    as in training's evaluation (L/R channels swapped back)."""
    if size[0] * size[1] <= band_pixels:  # the path section 06 evaluates with, unchanged
        scores = full_resolution_logits(model, x, size, "flip" if tta else "none", perm)
        return label_map(scores)[0].byte().cpu().numpy()

    def forward(inp):
        return (model.forward_logits(inp) if hasattr(model, "forward_logits") else model(inp)).float()

    z = forward(x)
    zf = forward(torch.flip(x, dims=[-1])).flip(-1)[:, perm] if tta else None
    out = np.empty(size, dtype=np.uint8)
    bands = banded_logits(z, size, band_pixels)
    bands_f = banded_logits(zf, size, band_pixels) if tta else None
    for r0, r1, band in bands:
        if tta:
            band = band.softmax(1) + next(bands_f)[2].softmax(1)
        out[r0:r1] = label_map(band)[0].byte().cpu().numpy()
    return out


def _same_mask(files: list[Path]) -> list[tuple[Path, Path]]:
    seen: dict[str, Path] = {}
    clashes = []
    for f in files:
        stem = f.stem.lower()  # x.png and X.jpg clash too on a case-insensitive file system
        if stem in seen:
            clashes.append((seen[stem], f))
        else:
            seen[stem] = f
    return clashes


def predict_folder(run: Run | str | Path, images_dir: str | Path, out_dir: str | Path, tta: bool = True,
                   zip_path: str | Path | None = None, device: str | None = None, progress: bool = True,
                   max_pixels: int = MAX_PIXELS) -> Prediction:
    """Write one single-channel PNG label map per image of ``images_dir`` (same stem, the image's own size) into
    ``out_dir`` -- the challenge's submission layout -- and, with ``zip_path``, a zip of the masks written."""
    from tqdm.auto import tqdm

    images_dir, out_dir = Path(images_dir), Path(out_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"--images {images_dir}: no such folder")
    if images_dir.resolve() in (out_dir.resolve(), *out_dir.resolve().parents):
        raise ValueError(f"--out {out_dir} is (or is inside) --images {images_dir}: a mask would overwrite an image "
                         "of the same name and be read as an image next time; choose an --out outside it")
    entries = sorted(f for f in images_dir.iterdir() if f.is_file() and not f.name.startswith("."))
    result = Prediction()
    files = [f for f in entries if f.suffix.lower() in IMAGE_EXTS]
    result.skipped = [(f, f"not an image ({', '.join(IMAGE_EXTS)})") for f in entries if f not in files]
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTS)}) in {images_dir}")
    clashes = _same_mask(files)
    if clashes:
        raise ValueError("two images would write one mask: " + "; ".join(
            f"{a.name} and {b.name} (both {a.stem}.png)" for a, b in clashes) + ". Rename one of each pair.")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, inp = load_segmenter(run, dev)
    out_dir.mkdir(parents=True, exist_ok=True)
    mean = torch.tensor(inp["mean"], device=dev).view(1, -1, 1, 1)
    std = torch.tensor(inp["std"], device=dev).view(1, -1, 1, 1)
    perm = torch.as_tensor(flip_permutation(), device=dev)
    for f in tqdm(files, desc="predict", disable=not progress):
        try:
            im = read_image_bounded(f, max_pixels)
        except Exception as exc:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, struct.error, bombs...
            result.failed.append((f, f"{type(exc).__name__}: {exc}"))
            continue
        x = torch.from_numpy(resize_images(im[None], inp["size"])).to(dev).permute(0, 3, 1, 2).float() / 255.0
        label_map = predict_label_map(model, (x - mean) / std, im.shape[:2], tta, perm)
        target = out_dir / f"{f.stem}.png"
        with atomic_write(target) as tmp:
            Image.fromarray(label_map, mode="L").save(tmp, format="PNG")
        result.written.append(target)
    if zip_path is not None and result.written:
        with atomic_write(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in result.written:
                zf.write(p, arcname=p.name)
    return result
