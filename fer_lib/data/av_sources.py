"""Which loader reads the audio-visual clips a section's ``data:`` parameters name (``AVDataConfig.source``):
synthetic clips, CREMA-D (its common preprocessed layout) or RAVDESS speech paired with FER2013 faces. The loaders
build on ``av_clips`` (the clips, their cache, speaker splits); this module sits above them, so nothing imports
in a circle.
"""
from __future__ import annotations

from .. import paths
from ..config import AVDataConfig, config_hash, from_dict, to_dict
from .av_clips import AVClips, cached
from .crema_d import load_crema_d
from .ravdess import load_ravdess_fer
from .synthetic_av import synthetic_av_clips


def load_av_dataset(cfg) -> AVClips:
    """The audio-visual clips an ``AVDataConfig`` (or its dict) names."""
    cfg = from_dict(AVDataConfig, cfg, "data")
    audio = dict(sample_rate=cfg.sample_rate, seconds=cfg.seconds, n_fft=cfg.n_fft, hop=cfg.hop)
    if cfg.source == "synthetic":
        return cached("synthetic_av", config_hash(to_dict(cfg)), lambda: synthetic_av_clips(
            cfg.n_train, cfg.n_val, cfg.n_test, cfg.seed, cfg.n_frames, cfg.frame_size, cfg.visual_strength,
            **audio))
    if cfg.source == "crema_d":
        return load_crema_d(paths.resolve(cfg.root), cfg.n_frames, cfg.frame_size, True, **audio,
                            val_fraction=cfg.val_fraction, seed=cfg.seed, train_csv=cfg.train_csv,
                            test_csv=cfg.test_csv, audio_dir=cfg.audio_dir, frames_dir=cfg.frames_dir)
    return load_ravdess_fer(paths.resolve(cfg.root), paths.resolve(cfg.fer_root), cfg.n_frames, cfg.frame_size,
                            **audio, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed)
