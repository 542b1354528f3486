"""Audio-visual clips (section 07): log spectrograms, face frames, labels, splits and speakers, in memory.

Every loader (CREMA-D, the RAVDESS + FER2013 stand-in, synthetic clips) returns an ``AVClips`` whose spectrograms
are float16 (N, 257, 188) and frames uint8 (N, T, S, S) gray or (N, T, S, S, 3) colour, with one speaker id per
clip so that validation and test can be split by speaker (no voice in two splits). ``cached`` decodes a dataset
once into an ``.npz`` keyed by its files, like FER2013 (``fer_lib.data.cache``).

**Fingerprint.** Unlike images, decoded spectrograms are floats whose last bits depend on the CPU, so an
``AVClips`` is never fingerprinted by its arrays: its loader names its sources (``cache.contents_fingerprint`` of
the files and the decoding recipe, or the generator's arguments for synthetic clips) and the labels, splits,
speakers and ids it assigned (``source_fingerprint``). Run keys then stay the same on every machine.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import read_or_rebuild, write_npz_atomic
from .dataset import derived_fingerprint
from .fer2013 import DatasetError

#: CREMA-D's six emotions in the order of the common (OGM-GE) preprocessing: NEU, HAP, SAD, FEA, DIS, ANG
AV_CLASSES = ("neutral", "happy", "sad", "fear", "disgust", "angry")
#: 2: fingerprints of sources, not of decoded floats (v1's differed between CPU families)
CACHE_VERSION = 2


@dataclass
class AVClips:
    name: str
    audio: np.ndarray  # float16 (N, F, T) log-magnitude spectrograms
    frames: np.ndarray  # uint8 (N, n_frames, S, S) or (N, n_frames, S, S, 3)
    labels: np.ndarray  # int64 (N,), indices into classes
    split: np.ndarray  # str (N,): train | val | test
    speaker: np.ndarray  # str (N,)
    ids: np.ndarray  # str (N,)
    classes: tuple[str, ...] = AV_CLASSES
    notes: tuple[str, ...] = ()
    fingerprint: str = field(default="")

    def __post_init__(self):
        if not self.fingerprint:
            raise ValueError(f"AVClips {self.name!r}: give its fingerprint (source_fingerprint of the files or "
                             "generator that made it); decoded spectrograms differ between CPUs and are not hashed")

    @staticmethod
    def source_fingerprint(sources: str, labels, split, speaker, ids, classes=AV_CLASSES) -> str:
        """sha256 of ``sources`` (what the clips were decoded or generated from, e.g. ``contents_fingerprint``)
        and of what the loader assigned: labels, splits, speakers, ids and class names."""
        h = hashlib.sha256(sources.encode())
        h.update(np.ascontiguousarray(np.asarray(labels, np.int64)).tobytes())
        for strings in (split, speaker, ids, classes):
            h.update(("\0".join(map(str, strings)) + "\n").encode())
        return h.hexdigest()

    def __len__(self):
        return len(self.labels)

    def derive(self, **changes) -> "AVClips":
        """A copy with ``changes`` whose fingerprint extends this one by the new splits and ids (no re-hashing)."""
        out = replace(self, fingerprint="x", **changes)
        out.fingerprint = derived_fingerprint(self.fingerprint, out.split, out.ids)
        return out

    def take(self, idx: np.ndarray) -> "AVClips":
        return self.derive(audio=self.audio[idx], frames=self.frames[idx], labels=self.labels[idx],
                           split=self.split[idx], speaker=self.speaker[idx], ids=self.ids[idx])

    def subset(self, split: str) -> "AVClips":
        idx = np.flatnonzero(self.split == split)
        if len(idx) == 0:
            raise DatasetError(f"{self.name}: split '{split}' is empty")
        return self.take(idx)

    def counts(self):
        import pandas as pd

        df = pd.crosstab(pd.Categorical(np.asarray(self.classes)[self.labels], categories=self.classes),
                         pd.Categorical(self.split, categories=["train", "val", "test"]), dropna=False)
        df.index.name, df.columns.name = "class", "split"
        return df

    def speakers(self) -> dict[str, int]:
        return {s: len(set(self.speaker[self.split == s])) for s in ("train", "val", "test")}


def split_speakers(speakers: np.ndarray, fraction: float, seed: int, into: str, split: np.ndarray,
                   groups: Callable[[str], str] | None = None) -> tuple[np.ndarray, str]:
    """Move a ``fraction`` of the training speakers (all their clips) into ``into``; ``groups`` (e.g. gender) are
    sampled in proportion. Returns the new split array and a note."""
    split = split.astype("<U5").copy()
    train_speakers = sorted(set(speakers[split == "train"]))
    n = max(1, int(round(fraction * len(train_speakers))))
    if n >= len(train_speakers):
        raise DatasetError(f"cannot move {n} of {len(train_speakers)} training speakers into {into}")
    rng = np.random.default_rng([seed, len(into)])
    by_group: dict[str, list[str]] = {}
    for s in train_speakers:
        by_group.setdefault(groups(s) if groups else "", []).append(s)
    picked: list[str] = []
    for g, members in sorted(by_group.items()):
        k = int(round(n * len(members) / len(train_speakers)))
        picked += list(rng.choice(members, size=min(k, len(members)), replace=False))
    rest = [s for s in train_speakers if s not in picked]
    while len(picked) < n:
        picked.append(rest.pop(int(rng.integers(len(rest)))))
    picked = sorted(picked[:n])
    split[np.isin(speakers, picked)] = into
    return split, f"{into}: {len(picked)} speakers ({', '.join(picked)}) moved out of train (seed {seed})"


class AVDataset(Dataset):
    """``((spectrogram float16 (F, T), frames uint8), label)`` items of an ``AVClips``."""

    def __init__(self, clips: AVClips):
        self.clips, self.labels = clips, np.asarray(clips.labels, np.int64)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return (torch.from_numpy(self.clips.audio[i]), torch.from_numpy(self.clips.frames[i])), int(self.labels[i])


# ----------------------------------------------------------------------------- cache
def cached(name: str, key: str, decode: Callable[[], AVClips], cache_dir: Path | None = None) -> AVClips:
    from .. import paths

    path = Path(cache_dir or paths.cache_dir()) / "datasets" / f"{name}-v{CACHE_VERSION}-{key[:20]}.npz"

    def read(p: Path) -> AVClips:
        with np.load(p, allow_pickle=False) as z:
            return AVClips(str(z["name"]), z["audio"], z["frames"], z["labels"].astype(np.int64), z["split"],
                           z["speaker"], z["ids"], tuple(z["classes"].tolist()), tuple(z["notes"].tolist()),
                           str(z["fingerprint"]))

    def rebuild() -> AVClips:
        data = decode()
        write_npz_atomic(path, name=np.array(data.name), audio=data.audio, frames=data.frames, labels=data.labels,
                         split=data.split.astype(str), speaker=data.speaker.astype(str), ids=data.ids.astype(str),
                         classes=np.array(data.classes), notes=np.array(data.notes, dtype=str),
                         fingerprint=np.array(data.fingerprint))
        return data

    return read_or_rebuild(path, read, rebuild, "the decoded-clips cache")
