"""Face-parsing data: the CelebAMask-HQ mini set in the CE7454/AI6126 challenge layout, and synthetic faces.

    <root>/train/images/<id>.jpg   RGB images
    <root>/train/masks/<id>.png    single-channel masks, values 0..18 (``PART_CLASSES``), same size as the image
    <root>/val/images, val/masks   optional; carved from train with a fixed seed when absent
    <root>/test/images/<id>.jpg    images without masks (the challenge's test phase: predicted, never scored)

``load_faceparse(root)`` decodes every labelled pair once into a uint8 cache keyed by the files (like FER2013) and
checks each one: a mask that is missing, not single-channel, of another size than its image, or with a value
outside 0..18 raises a ``DatasetError`` naming the file. There is no labelled test split, so besides val a
held-out test split is carved from train (fixed seed): selection on val, reporting on the held-out test.
Left/right pairs (eyes, brows, ears) swap under a horizontal flip (``FLIP_PAIRS``, ``flip_permutation``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .cache import files_fingerprint, read_or_rebuild, write_npz_atomic
from .dataset import content_fingerprint, derived_fingerprint
from .fer2013 import DatasetError
from .synthetic import PART_CLASSES

FLIP_PAIRS = (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear"))
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
CACHE_VERSION = 2


def flip_permutation(classes=PART_CLASSES, pairs=FLIP_PAIRS) -> np.ndarray:
    """``perm[c]`` = the label class c becomes under a horizontal flip (l_eye <-> r_eye, ...; others fixed)."""
    perm = np.arange(len(classes))
    for a, b in pairs:
        i, j = classes.index(a), classes.index(b)
        perm[i], perm[j] = j, i
    return perm


@dataclass
class SegImages:
    """Labelled face-parsing images: RGB uint8 (N, H, W, 3), masks uint8 (N, H, W), a split per image."""

    name: str
    images: np.ndarray
    masks: np.ndarray
    split: np.ndarray
    ids: np.ndarray
    classes: tuple[str, ...] = PART_CLASSES
    notes: tuple[str, ...] = ()
    fingerprint: str = field(default="")

    def __post_init__(self):
        if not self.fingerprint:  # content hash of the decoded set; derived sets hash only what changed (cheap)
            self.fingerprint = content_fingerprint(np.concatenate([self.images.reshape(len(self), -1),
                                                                   self.masks.reshape(len(self), -1)], 1),
                                                   np.zeros(len(self)), self.split, self.classes)

    def derive(self, **changes) -> "SegImages":
        """A copy with ``changes`` whose fingerprint extends this one by the new split and ids (no re-hashing)."""
        out = replace(self, fingerprint="x", **changes)
        out.fingerprint = derived_fingerprint(self.fingerprint, out.split, out.ids)
        return out

    def __len__(self):
        return len(self.images)

    def subset(self, split: str) -> "SegImages":
        idx = np.flatnonzero(self.split == split)
        if len(idx) == 0:
            raise DatasetError(f"{self.name}: split '{split}' is empty")
        return self.derive(images=self.images[idx], masks=self.masks[idx], split=self.split[idx], ids=self.ids[idx])

    def counts(self) -> dict[str, int]:
        return {s: int((self.split == s).sum()) for s in ("train", "val", "test")}

    def class_presence(self, split: str = "train") -> np.ndarray:
        """Share of the split's images in which each class occurs."""
        part = self.subset(split)
        return np.array([(part.masks == c).any(axis=(1, 2)).mean() for c in range(len(self.classes))])


# ----------------------------------------------------------------------------- the challenge layout
def faceparse_pairs(root: str | Path, split: str = "train", require_masks: bool = False
                    ) -> list[tuple[Path, Path | None]]:
    """(image, mask or None) for every image of ``split``, sorted by id."""
    root = Path(root)
    img_dir = root / split / "images"
    if not img_dir.is_dir():
        raise DatasetError(f"face-parsing images not found: {img_dir} (expected <root>/{split}/images/*.jpg"
                           f" and <root>/{split}/masks/*.png)")
    images = sorted(f for f in img_dir.iterdir() if f.suffix.lower() in IMAGE_EXTS)
    if not images:
        raise DatasetError(f"no images ({', '.join(IMAGE_EXTS)}) in {img_dir}")
    pairs = []
    for img in images:
        mask = root / split / "masks" / f"{img.stem}.png"
        if require_masks and not mask.is_file():
            raise DatasetError(f"image without a mask: {img} (expected {mask})")
        pairs.append((img, mask if mask.is_file() else None))
    return pairs


def read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from None


def read_mask(path: Path, size: tuple[int, int], num_classes: int = len(PART_CLASSES)) -> np.ndarray:
    """A single-channel label map of ``size`` (width, height) with values in 0..num_classes-1."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise DatasetError(f"mask {path} is not single-channel (PIL mode {im.mode}, {len(im.getbands())} "
                                   f"bands); expected a single-channel PNG of class indices 0..{num_classes - 1}")
            if im.size != size:
                raise DatasetError(f"mask {path} is {im.size[0]}x{im.size[1]} but its image is {size[0]}x{size[1]}")
            m = np.asarray(im)
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetError(f"cannot read mask {path}: {e}") from None
    if m.size and (m.min() < 0 or m.max() >= num_classes):
        raise DatasetError(f"mask {path}: label {int(m.max())} outside 0..{num_classes - 1} "
                           f"({', '.join(PART_CLASSES[:3])}, ... {PART_CLASSES[-1]})")
    return m.astype(np.uint8)


def _decode(pairs: list[tuple[Path, Path]], split_names: list[str], base: Path) -> SegImages:
    first = read_image(pairs[0][0])
    h, w = first.shape[:2]
    images = np.empty((len(pairs), h, w, 3), np.uint8)
    masks = np.empty((len(pairs), h, w), np.uint8)
    for i, (img, mask) in enumerate(pairs):
        im = first if i == 0 else read_image(img)
        if im.shape[:2] != (h, w):
            raise DatasetError(f"image {img} is {im.shape[1]}x{im.shape[0]}; the set's first image is {w}x{h} "
                               "(resize the set to one size first)")
        images[i], masks[i] = im, read_mask(mask, (w, h))
    ids = np.array([str(p.relative_to(base)) for p, _ in pairs])
    return SegImages("CelebAMask-HQ (face-parsing mini set)", images, masks, np.array(split_names), ids)


def _carve(data: SegImages, n: int, seed: int, into: str) -> SegImages:
    train = np.flatnonzero(data.split == "train")
    if n < 1 or n >= len(train):
        raise DatasetError(f"{data.name}: cannot carve {n} of {len(train)} training images into {into} "
                           "(data.val_fraction / data.test_fraction)")
    pick = np.random.default_rng([seed, len(into)]).choice(train, n, replace=False)
    split = data.split.astype("<U5").copy()
    split[pick] = into
    note = f"no labelled {into} split in the source: {n} of the labelled images (seed {seed}) became {into}"
    return data.derive(split=split, notes=data.notes + (note,))


def load_faceparse(root: str | Path, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                   cache_dir: Path | None = None) -> SegImages:
    """Labelled images of the challenge layout at ``root``: train (+ val/ if present), decoded once and cached;
    val and a held-out test carved from train (fixed ``seed``) where absent."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"face-parsing root does not exist: {root} (expected <root>/train/images, "
                           "<root>/train/masks)")
    pairs = [(p, "train") for p in faceparse_pairs(root, "train", require_masks=True)]
    if (root / "val" / "images").is_dir():
        pairs += [(p, "val") for p in faceparse_pairs(root, "val", require_masks=True)]
    files = [f for (img, mask), _ in pairs for f in (img, mask)]
    key = files_fingerprint(files, root)
    path = Path(cache_dir or _cache_dir()) / "datasets" / f"faceparse-v{CACHE_VERSION}-{key[:20]}.npz"

    def rebuild() -> SegImages:
        decoded = _decode([p for p, _ in pairs], [s for _, s in pairs], root)
        _save_npz(decoded, path)
        return decoded

    data = read_or_rebuild(path, _load_npz, rebuild, "the decoded face-parsing cache")
    n = len(data)
    if not (data.split == "val").any():
        data = _carve(data, int(round(val_fraction * n)), seed, "val")
    if test_fraction > 0:
        data = _carve(data, int(round(test_fraction * n)), seed, "test")
    return data


def _cache_dir() -> Path:
    from .. import paths

    return paths.cache_dir()


def _save_npz(data: SegImages, path: Path) -> None:
    write_npz_atomic(path, images=data.images, masks=data.masks, split=data.split.astype(str),
                     ids=data.ids.astype(str), name=np.array(data.name), fingerprint=np.array(data.fingerprint))


def _load_npz(path: Path) -> SegImages:
    with np.load(path, allow_pickle=False) as z:
        return SegImages(str(z["name"]), z["images"], z["masks"], z["split"], z["ids"],
                         fingerprint=str(z["fingerprint"]))


# ----------------------------------------------------------------------------- synthetic
def synthetic_faceparse(n_train: int, n_val: int, n_test: int, seed: int = 0, size: int = 64) -> SegImages:
    """Synthetic faces and their part masks from ``fer_lib.data.synthetic`` (gray, replicated to RGB)."""
    from .synthetic import synthetic_faces

    n = n_train + n_val + n_test
    images, _, _, masks = synthetic_faces(n, seed=seed + 7_919, size=size, label_noise=0.0)
    split = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test)
    return SegImages("synthetic faces with part masks", np.repeat(images[..., None], 3, axis=-1), masks, split,
                     np.array([f"synthetic:{i}" for i in range(n)]),
                     notes=(f"synthetic faces rendered at {size}x{size} (seed {seed})",))


def load_seg_dataset(cfg) -> SegImages:
    """The face-parsing data a ``SegDataConfig`` names."""
    from .. import paths
    from ..config import SegDataConfig, from_dict

    cfg = from_dict(SegDataConfig, cfg, "data")
    if cfg.source == "synthetic":
        return synthetic_faceparse(cfg.n_train, cfg.n_val, cfg.n_test, cfg.seed, cfg.size)
    return load_faceparse(paths.resolve(cfg.root), cfg.val_fraction, cfg.test_fraction, cfg.seed)


def load_faceparse_examples(root: str | Path, n: int = 6, size: int = 256, seed: int = 0):
    """``n`` random train (image, mask) pairs resized to ``size`` (masks with nearest neighbour)."""
    pairs = faceparse_pairs(root, "train", require_masks=True)
    pick = np.random.default_rng(seed).choice(len(pairs), size=min(n, len(pairs)), replace=False)
    imgs, masks = [], []
    for i in sorted(pick):
        img, mask = pairs[i]
        im = read_image(img)
        imgs.append(np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)))
        m = read_mask(mask, (im.shape[1], im.shape[0]))
        masks.append(np.asarray(Image.fromarray(m).resize((size, size), Image.NEAREST)))
    return np.stack(imgs), np.stack(masks)
