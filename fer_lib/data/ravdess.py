"""A real-data stand-in for CREMA-D: RAVDESS speech paired with FER2013 faces of the same emotion.

RAVDESS (Livingstone & Russo 2018) names each file ``03-01-EE-II-SS-RR-NN.wav`` (audio-only, speech, emotion EE,
intensity, statement, repetition, actor NN; odd actors are male). The six emotions CREMA-D has are kept (01 neutral,
03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust); 02 calm and 08 surprised are skipped with a note.

**What the stand-in is.** In the manner of AV-MNIST, each utterance is paired -- deterministically from the seed
-- with ``n_frames`` FER2013 face images of the same emotion drawn from the *matching* FER2013 split (train ->
Training, val -> PublicTest, test -> PrivateTest), so no face is shared between splits either. Sound and faces are
two real signals that share only the label.
**What it is not.** The faces are not the speakers' faces and not frames of one video: there is no audio-visual
synchrony or identity to exploit, only two label-conditioned views. Audio is split **by actor**, so no voice is in
two splits.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
from PIL import Image

from .audio import SPECTROGRAM_RECIPE, wav_to_spectrogram
from .av_clips import AV_CLASSES, AVClips, cached, split_speakers
from .cache import contents_fingerprint, files_fingerprint
from .fer2013 import DatasetError, load_fer2013

NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$")
EMOTIONS = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry", "06": "fear", "07": "disgust"}
SKIPPED = {"02": "calm", "08": "surprised"}


def ravdess_files(root: Path) -> tuple[list[tuple[Path, int, str]], list[str]]:
    """(wav, label index, actor) of every usable clip, and notes on what was skipped."""
    if not root.is_dir():
        raise DatasetError(f"RAVDESS root does not exist: {root} (expected Actor_NN/03-01-EE-II-SS-RR-NN.wav)")
    wavs = sorted(root.glob("Actor_*/*.wav"))
    if not wavs:
        raise DatasetError(f"no RAVDESS clips under {root} (expected Actor_NN/03-01-EE-II-SS-RR-NN.wav)")
    out, skipped = [], {}
    for w in wavs:
        m = NAME.match(w.name)
        if not m:
            raise DatasetError(f"unexpected RAVDESS file name {w} (expected 03-01-EE-II-SS-RR-NN.wav)")
        modality, channel, emo, *_, actor = m.groups()
        if modality != "03" or channel != "01" or emo in SKIPPED:
            key = SKIPPED.get(emo, f"modality {modality}/channel {channel}")
            skipped[key] = skipped.get(key, 0) + 1
            continue
        if emo not in EMOTIONS:
            raise DatasetError(f"{w}: unknown RAVDESS emotion code {emo}")
        out.append((w, AV_CLASSES.index(EMOTIONS[emo]), f"actor{actor}"))
    notes = [f"skipped {n} {k} clips (not among CREMA-D's six emotions)" for k, n in sorted(skipped.items())]
    return out, notes


def pair_faces(labels: np.ndarray, split: np.ndarray, faces, n_frames: int, seed: int) -> np.ndarray:
    """For clip i, ``n_frames`` indices of FER images with emotion ``AV_CLASSES[labels[i]]`` in the same split,
    drawn without replacement from a seeded permutation (cycling when a class runs out)."""
    out = np.empty((len(labels), n_frames), np.int64)
    for s in ("train", "val", "test"):
        for k, name in enumerate(AV_CLASSES):
            clips = np.flatnonzero((split == s) & (labels == k))
            if not len(clips):
                continue
            pool = np.flatnonzero((faces.split == s) & (faces.labels == faces.classes.index(name)))
            if not len(pool):
                raise DatasetError(f"FER2013 has no '{name}' faces in its {s} split to pair with the speech")
            order = np.random.default_rng([seed, len(s), k]).permutation(pool)
            need = len(clips) * n_frames
            out[clips] = np.resize(order, need).reshape(len(clips), n_frames)
    return out


def load_ravdess_fer(root: str | Path, fer_root: str | Path, n_frames: int = 1, frame_size: int = 48,
                     sample_rate: int = 22050, seconds: float = 3.0, n_fft: int = 512, hop: int = 353,
                     val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0,
                     cache_dir: Path | None = None) -> AVClips:
    root = Path(root)
    files, notes = ravdess_files(root)
    wavs = [w for w, _, _ in files]
    recipe = f"{SPECTROGRAM_RECIPE}; {sample_rate} Hz, {seconds} s, n_fft {n_fft}, hop {hop}; float16"
    key = files_fingerprint(wavs, root) + recipe

    def decode() -> AVClips:
        audio = np.stack([wav_to_spectrogram(w, sample_rate, seconds, n_fft, hop) for w in wavs])
        labels, split = np.array([y for _, y, _ in files]), np.array(["train"] * len(files))
        speaker, ids = np.array([a for _, _, a in files]), np.array([str(w.relative_to(root)) for w in wavs])
        sources = contents_fingerprint(wavs, root, recipe)
        return AVClips("RAVDESS speech", audio.astype(np.float16), np.zeros((len(files), 0, 1, 1), np.uint8),
                       labels, split, speaker, ids, notes=tuple(notes),
                       fingerprint=AVClips.source_fingerprint(sources, labels, split, speaker, ids))

    speech = cached("ravdess", hashlib.sha256(key.encode()).hexdigest(), decode, cache_dir)
    gender = lambda actor: "male" if int(actor[-2:]) % 2 else "female"  # noqa: E731
    split, note_test = split_speakers(speech.speaker, test_fraction, seed, "test", speech.split, gender)
    # val_fraction is a share of all speakers, like test_fraction
    split, note_val = split_speakers(speech.speaker, val_fraction / (1 - test_fraction), seed, "val", split, gender)
    faces = load_fer2013(Path(fer_root))
    pick = pair_faces(speech.labels, split, faces, n_frames, seed)
    frames = faces.images[pick]
    if frame_size != frames.shape[-1]:
        frames = np.stack([[np.asarray(Image.fromarray(f).resize((frame_size, frame_size), Image.BILINEAR))
                            for f in clip] for clip in frames])
    return AVClips("RAVDESS speech + FER2013 faces (stand-in for CREMA-D)", speech.audio, frames, speech.labels,
                   split, speech.speaker, speech.ids, notes=speech.notes + (
                       note_test, note_val, f"each clip paired with {n_frames} FER2013 face(s) of its emotion from the "
                       f"matching FER2013 split (seed {seed}); faces and voices share only the label"),
                   fingerprint=hashlib.sha256((speech.fingerprint + faces.fingerprint + split.tobytes().hex()
                                               + pick.tobytes().hex()).encode()).hexdigest())
