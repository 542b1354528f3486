"""Synthetic audio-visual clips: a stand-in for CREMA-D (seed 004) from the same face generator.

A clip is a short face video whose expression builds up from neutral to its emotion (one identity: the face
parameters are drawn once and only the expression intensity moves) and a voiced sound whose pitch, pitch
contour, loudness and jitter follow the emotion (``VOICE``), the prosodic cues speech-emotion work relies on:

    f0(t) = f0_c + slope_c * t,    phase(t) = 2*pi * integral f0 (1 + jitter_c * n(t)) dt,
    x(t)  = loud_c * env(t) * sum_k sin(k * phase(t)) / k  +  noise,

with ``k`` = 1..8 harmonics, ``env`` three syllable-like bumps and ``n`` smoothed Gaussian noise. Deterministic
from the seed. Section 00 shows one clip; section 07 draws its balanced audio-visual data from here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import config_hash
from .av_clips import AV_CLASSES, AVClips
from .synthetic import FER_CLASSES, render_faces, sample_face_params

#: emotion -> (f0 Hz, f0 slope Hz/s, loudness, jitter): high, rising and loud for surprise/happy/angry,
#: low, falling and quiet for sad, breathy and unstable for fear.
VOICE = {
    "angry": (210.0, -20.0, 1.0, 0.03), "disgust": (150.0, -30.0, 0.6, 0.02), "fear": (250.0, 30.0, 0.45, 0.06),
    "happy": (230.0, 60.0, 0.8, 0.01), "neutral": (170.0, 0.0, 0.5, 0.005), "sad": (125.0, -25.0, 0.3, 0.01),
    "surprise": (280.0, 120.0, 0.9, 0.02),
}


@dataclass(frozen=True)
class AVClip:
    frames: np.ndarray  # uint8 [T, H, W], expression building up over the clip
    audio: np.ndarray  # float32 [N] in [-1, 1]
    sample_rate: int
    label: int

    @property
    def emotion(self) -> str:
        return FER_CLASSES[self.label]


def synthetic_voices(labels, rng: np.random.Generator, sample_rate: int = 16000, seconds: float = 1.0,
                     harmonics: int = 8, pitch=1.0, loudness=1.0, noise: float = 0.01) -> np.ndarray:
    """(N, samples) utterances of emotions ``labels`` (indices into ``FER_CLASSES``), computed together;
    ``pitch`` and ``loudness`` (scalars or one per utterance) scale each speaker's voice, ``noise`` is the std of
    added white noise."""
    from scipy.ndimage import uniform_filter1d

    labels = np.atleast_1d(np.asarray(labels))
    f0, slope, loud, jitter = (np.array([VOICE[FER_CLASSES[k]][j] for k in labels])[:, None] for j in range(4))
    pitch, loudness = np.broadcast_to(pitch, labels.shape)[:, None], np.broadcast_to(loudness, labels.shape)[:, None]
    n = int(round(sample_rate * seconds))
    t = np.arange(n)[None] / sample_rate
    wobble = 20.0 * uniform_filter1d(rng.normal(size=(len(labels), n)), 400, axis=1, mode="constant")  # ~unit var
    freq = (f0 + slope * t) * pitch * (1.0 + jitter * wobble)
    phase = 2 * np.pi * np.cumsum(freq, axis=1) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))
    env = np.abs(np.sin(np.pi * 3 * t / seconds)) ** 0.6  # three syllables
    x = loud * loudness * env * voiced / 2.0 + rng.normal(0, noise, (len(labels), n))
    return np.clip(x, -1, 1).astype(np.float32)


def synthetic_voice(label: int, rng: np.random.Generator, sample_rate: int = 16000, seconds: float = 1.0,
                    harmonics: int = 8, pitch: float = 1.0, loudness: float = 1.0, noise: float = 0.01) -> np.ndarray:
    """One utterance of emotion ``label`` (``synthetic_voices`` for one)."""
    return synthetic_voices([label], rng, sample_rate, seconds, harmonics, pitch, loudness, noise)[0]


def synthetic_av_clip(label: int, seed: int, n_frames: int = 6, size: int = 64, sample_rate: int = 16000,
                      seconds: float = 1.0) -> AVClip:
    """One clip of emotion ``label`` (index into ``FER_CLASSES``)."""
    if not 0 <= label < len(FER_CLASSES):
        raise ValueError(f"label: expected 0..{len(FER_CLASSES) - 1} (FER_CLASSES), got {label}")
    frames = []
    for s in np.linspace(0.0, 1.0, n_frames):  # same identity (same draws), intensity from neutral to full
        params = sample_face_params(np.random.default_rng(seed), np.array([label]), intensity=(s, s))
        frames.append(render_faces(params, size)[0][0])
    audio = synthetic_voice(label, np.random.default_rng([seed, 1]), sample_rate, seconds)
    return AVClip(np.stack(frames), audio, sample_rate, label)


def synthetic_av_clips(n_train: int, n_val: int, n_test: int, seed: int = 0, n_frames: int = 1, frame_size: int = 48,
                       visual_strength: float = 0.35, sample_rate: int = 22050, seconds: float = 3.0,
                       n_fft: int = 512, hop: int = 353, n_speakers: int = 24):
    """Labelled clips of CREMA-D's six emotions for section 07's smoke profile, **audio dominant by design**.

    Each speaker has a pitch and loudness of its own (so classes overlap across speakers); the sound carries the
    emotion's prosody plus noise. The frames show one face per clip whose expression only reaches
    ``visual_strength`` of the way from neutral to the emotion (0.35: faint), so the visual modality is the weak
    one. Speakers are split across train / val / test (no voice in two splits).
    """
    from .audio import fixed_length_rows, log_spectrogram, resample
    from .synthetic import render_faces

    rng = np.random.default_rng([seed, 4])
    n = n_train + n_val + n_test
    n_spk = {"train": max(1, round(n_speakers * n_train / n)), "val": max(1, round(n_speakers * n_val / n))}
    n_spk["test"] = max(1, n_speakers - n_spk["train"] - n_spk["val"])
    split = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test)
    speaker, start = np.empty(n, dtype="<U8"), 0
    for s, k in n_spk.items():
        idx = np.flatnonzero(split == s)
        speaker[idx] = [f"spk{start + i % k:02d}" for i in range(len(idx))]
        start += k
    voice = {f"spk{i:02d}": (rng.uniform(0.8, 1.25), rng.uniform(0.6, 1.4)) for i in range(start)}
    labels = rng.integers(0, len(AV_CLASSES), n)
    fer_idx = np.array([FER_CLASSES.index(c) for c in AV_CLASSES])[labels]
    raw_rate = 11025  # harmonics stay below 2.5 kHz; upsampled 2x to 22,050 Hz
    raw = synthetic_voices(fer_idx, np.random.default_rng([seed, 5]), raw_rate, 1.0,
                           pitch=np.array([voice[s][0] for s in speaker]),
                           loudness=np.array([voice[s][1] for s in speaker]), noise=0.05)
    waves = fixed_length_rows(resample(raw, raw_rate, sample_rate), int(round(sample_rate * seconds)))
    audio = log_spectrogram(waves, n_fft, hop).numpy().astype(np.float16)
    frames = np.empty((n, n_frames, frame_size, frame_size), np.uint8)
    for t, s in enumerate(np.linspace(0.5, 1.0, n_frames)):  # one identity per clip, the expression building up
        params = sample_face_params(np.random.default_rng([seed, 6]), fer_idx,
                                    intensity=(visual_strength * s, visual_strength * s))
        frames[:, t] = render_faces(params, frame_size)[0]
    ids = np.array([f"synthetic:{i}" for i in range(n)])
    generator = config_hash("synthetic_av_clips v1", n_train, n_val, n_test, seed, n_frames, frame_size,
                            visual_strength, sample_rate, seconds, n_fft, hop, n_speakers)
    return AVClips("synthetic audio-visual clips", audio, frames, labels.astype(np.int64), split, speaker, ids,
                   fingerprint=AVClips.source_fingerprint(generator, labels, split, speaker, ids),
                   notes=(f"synthetic clips (seed {seed}): {start} speakers split across train/val/test; frames at "
                          f"{visual_strength:.0%} expression intensity, so audio dominates by design",))
