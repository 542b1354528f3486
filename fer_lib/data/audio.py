"""Audio for section 07, as the common CREMA-D recipe (OGM-GE, Peng et al. 2022) prepares it:

1. read a WAV (PCM 8/16/24/32-bit or float), mix down to mono, scale to [-1, 1];
2. resample to 22,050 Hz (polyphase, ``scipy.signal.resample_poly``);
3. repeat (tile) a shorter clip and cut to 3 s; clip to [-1, 1];
4. STFT with n_fft 512, hop 353, a Hann window, centred (reflect padding): 257 frequency bins x 188 frames;
5. log magnitude, ``log(|S| + 1e-7)``.

``torch.stft`` computes step 4 (no audio library that would replace torch is needed).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from scipy.io import wavfile
from scipy.signal import resample_poly

from .fer2013 import DatasetError

#: names steps 1-5 above in data fingerprints (``contents_fingerprint``'s recipe): bump it when they change, so
#: runs keyed on the old decoding are not served as the new one
SPECTROGRAM_RECIPE = "wav->mono->resample_poly->tile/cut->stft(hann, centred, reflect)->log(|S|+1e-7), v1"


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], sample rate) of a WAV file; a clear error for anything unreadable."""
    try:
        rate, x = wavfile.read(str(path))
    except (ValueError, OSError, EOFError) as e:
        raise DatasetError(f"cannot read WAV {path}: {e}") from None
    if x.dtype == np.uint8:  # 8-bit PCM is unsigned, centred at 128
        x = (x.astype(np.float32) - 128.0) / 128.0
    elif x.dtype.kind == "i":  # 16/32-bit PCM (scipy reads 24-bit as left-justified int32)
        x = x.astype(np.float32) / float(-np.iinfo(x.dtype).min)
    else:
        x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(1)
    if x.size == 0:
        raise DatasetError(f"WAV {path} holds no samples")
    return x, int(rate)


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample along the last axis from ``rate`` to ``target`` Hz."""
    if rate == target:
        return x.astype(np.float32)
    f = Fraction(target, rate).limit_denominator(1000)
    return resample_poly(x, f.numerator, f.denominator, axis=-1).astype(np.float32)


def fixed_length(x: np.ndarray, n: int) -> np.ndarray:
    """Tile a shorter signal and cut to ``n`` samples, clipped to [-1, 1] (OGM-GE's ``np.tile(x, 3)[:n]``)."""
    reps = int(np.ceil(n / max(len(x), 1)))
    return np.clip(np.tile(x, reps)[:n], -1.0, 1.0)


def fixed_length_rows(x: np.ndarray, n: int) -> np.ndarray:
    """``fixed_length`` of each row of (N, samples)."""
    reps = int(np.ceil(n / max(x.shape[1], 1)))
    return np.clip(np.tile(x, (1, reps))[:, :n], -1.0, 1.0)


def log_spectrogram(waves: np.ndarray | torch.Tensor, n_fft: int = 512, hop: int = 353) -> torch.Tensor:
    """(N, samples) -> (N, n_fft // 2 + 1, frames) log-magnitude spectrograms, float32."""
    w = torch.as_tensor(np.asarray(waves, np.float32))
    spec = torch.stft(w, n_fft=n_fft, hop_length=hop, window=torch.hann_window(n_fft), center=True,
                      pad_mode="reflect", return_complex=True)
    return torch.log(spec.abs() + 1e-7)


def wav_to_spectrogram(path: str | Path, sample_rate: int = 22050, seconds: float = 3.0, n_fft: int = 512,
                       hop: int = 353) -> np.ndarray:
    x, rate = read_wav(path)
    x = fixed_length(resample(x, rate, sample_rate), int(round(sample_rate * seconds)))
    return log_spectrogram(x[None], n_fft, hop)[0].numpy()
