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


def synthetic_voice(label: int, rng: np.random.Generator, sample_rate: int = 16000, seconds: float = 1.0,
                    harmonics: int = 8) -> np.ndarray:
    f0, slope, loud, jitter = VOICE[FER_CLASSES[label]]
    n = int(round(sample_rate * seconds))
    t = np.arange(n) / sample_rate
    wobble = np.convolve(rng.normal(size=n), np.ones(400) / 20.0, mode="same")  # smooth, roughly unit variance
    freq = (f0 + slope * t) * (1.0 + jitter * wobble)
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))
    env = np.abs(np.sin(np.pi * 3 * t / seconds)) ** 0.6  # three syllables
    x = loud * env * voiced / 2.0 + rng.normal(0, 0.01, n)
    return np.clip(x, -1, 1).astype(np.float32)


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
