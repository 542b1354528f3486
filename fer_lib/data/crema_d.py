"""CREMA-D in the layout users have after the common (OGM-GE) preprocessing:

    <root>/train.csv, <root>/test.csv      one clip per row: ``<clip>,<LABEL>``, e.g. ``1001_DFA_ANG_XX,ANG``
    <root>/AudioWAV/<clip>.wav             the clip's sound (CREMA-D ships 16 kHz mono 16-bit PCM)
    <root>/Image-01-FPS/<clip>/*.jpg       frames extracted at 1 fps (names sort in time order)

(file and folder names are parameters: ``data.train_csv``, ``test_csv``, ``audio_dir``, ``frames_dir``). Labels
NEU, HAP, SAD, FEA, DIS, ANG map to ``AV_CLASSES``; the speaker is the clip name's first field (the actor id,
1001..1091). ``n_frames`` frames per clip are taken evenly spaced over its frames (repeated when a clip has fewer),
resized to ``frame_size``. Validation is carved from the training CSV **by speaker** with a fixed seed (the seed
report picked its best epoch on test; here selection uses validation and test is only reported).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .av_clips import AV_CLASSES, AVClips, cached, split_speakers
from .audio import SPECTROGRAM_RECIPE, wav_to_spectrogram
from .cache import contents_fingerprint, files_fingerprint
from .fer2013 import DatasetError

LABELS = {"NEU": "neutral", "HAP": "happy", "SAD": "sad", "FEA": "fear", "DIS": "disgust", "ANG": "angry"}
FRAME_EXTS = (".jpg", ".jpeg", ".png")


def read_clip_list(path: Path) -> list[tuple[str, int]]:
    """(clip, label index) rows of a CREMA-D clip-list CSV (no header; a header row ``clip,label`` is skipped)."""
    if not path.is_file():
        raise DatasetError(f"CREMA-D clip list not found: {path} (rows '<clip>,<LABEL>', LABEL one of "
                           f"{', '.join(LABELS)})")
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                raise DatasetError(f"{path}: line {n}: expected '<clip>,<LABEL>', got {','.join(row)!r}")
            clip, label = row[0].strip(), row[1].strip().upper()
            if n == 1 and label not in LABELS and clip.lower() in ("clip", "name", "file", "filename"):
                continue
            if label not in LABELS:
                raise DatasetError(f"{path}: line {n}: unknown label {row[1]!r}; expected one of {', '.join(LABELS)}")
            rows.append((clip, AV_CLASSES.index(LABELS[label])))
    if not rows:
        raise DatasetError(f"{path}: no clips (an empty split)")
    return rows


def read_frames(folder: Path, n_frames: int, size: int, color: bool) -> np.ndarray:
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in FRAME_EXTS) if folder.is_dir() else []
    if not files:
        raise DatasetError(f"no frames ({', '.join(FRAME_EXTS)}) in {folder}")
    pick = np.linspace(0, len(files) - 1, n_frames).round().astype(int)
    out = []
    for i in pick:
        try:
            with Image.open(files[i]) as im:
                out.append(np.asarray(im.convert("RGB" if color else "L").resize((size, size), Image.BILINEAR)))
        except (UnidentifiedImageError, OSError) as e:
            raise DatasetError(f"cannot read frame {files[i]}: {e}") from None
    return np.stack(out)


def load_crema_d(root: str | Path, n_frames: int = 1, frame_size: int = 224, color: bool = True,
                 sample_rate: int = 22050, seconds: float = 3.0, n_fft: int = 512, hop: int = 353,
                 val_fraction: float = 0.15, seed: int = 0, train_csv: str = "train.csv", test_csv: str = "test.csv",
                 audio_dir: str = "AudioWAV", frames_dir: str = "Image-01-FPS", cache_dir: Path | None = None) -> AVClips:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"CREMA-D root does not exist: {root}")
    rows = [(c, y, "train") for c, y in read_clip_list(root / train_csv)]
    rows += [(c, y, "test") for c, y in read_clip_list(root / test_csv)]
    wavs = [root / audio_dir / f"{c}.wav" for c, _, _ in rows]
    frame_dirs = [root / frames_dir / c for c, _, _ in rows]
    missing = [str(p) for p in wavs if not p.is_file()] + [str(d) for d in frame_dirs if not d.is_dir()]
    if missing:
        raise DatasetError(f"CREMA-D: {len(missing)} clip file(s) missing, e.g. {', '.join(missing[:3])}")
    frame_files = [f for d in frame_dirs for f in sorted(d.iterdir())]
    sources = [root / train_csv, root / test_csv] + wavs + frame_files
    recipe = (f"{SPECTROGRAM_RECIPE}; {sample_rate} Hz, {seconds} s, n_fft {n_fft}, hop {hop}; float16; frames "
              f"{n_frames} x {frame_size} px {'RGB' if color else 'L'} (PIL bilinear)")
    key = files_fingerprint(sources, root) + recipe

    def decode() -> AVClips:
        audio = np.stack([wav_to_spectrogram(w, sample_rate, seconds, n_fft, hop) for w in wavs]).astype(np.float16)
        frames = np.stack([read_frames(d, n_frames, frame_size, color) for d in frame_dirs])
        labels, split = np.array([y for _, y, _ in rows]), np.array([s for _, _, s in rows])
        speaker, ids = np.array([c.split("_")[0] for c, _, _ in rows]), np.array([c for c, _, _ in rows])
        return AVClips("CREMA-D", audio, frames, labels, split, speaker, ids,
                       notes=(f"CREMA-D clip lists {train_csv} / {test_csv}; {n_frames} frame(s) per clip from "
                              f"{frames_dir}",),
                       fingerprint=AVClips.source_fingerprint(contents_fingerprint(sources, root, recipe), labels,
                                                              split, speaker, ids))

    data = cached("crema_d", _hash(key), decode, cache_dir)
    split, note = split_speakers(data.speaker, val_fraction, seed, "val", data.split)
    return data.derive(split=split, notes=data.notes + (note,))


def _hash(s: str) -> str:
    import hashlib

    return hashlib.sha256(s.encode()).hexdigest()
