"""Config of an audio-visual run (section 07; seed 004), mirroring ``params/<profile>/07_asgml.yaml``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import NONNEG, POSITIVE, FieldError, at_least, between, check, key_fields, one_of
from .classify import AugmentConfig, TrainConfig, check_select_metric

AV_SELECT = ("macro_f1", "accuracy")
MODES = ("baseline", "frequency", "staleness", "adaptive", "ogm_ge")


@dataclass(frozen=True)
class AVDataConfig:
    """Clips with a sound and face frames (``data:``).

    - ``crema_d``: CREMA-D after the common (OGM-GE) preprocessing: ``<root>/<train_csv>`` and ``<root>/<test_csv>``
      (rows ``clip,LABEL``), ``<root>/<audio_dir>/<clip>.wav`` and ``<root>/<frames_dir>/<clip>/*.jpg`` (1 fps);
    - ``ravdess_fer``: real RAVDESS speech (``root``) paired by emotion with real FER2013 faces (``fer_root``);
    - ``synthetic``: clips from the face generator and a synthetic voice, the audio dominant by design.
    """

    source: str = "synthetic"  # synthetic | crema_d | ravdess_fer
    root: str | None = None
    fer_root: str | None = None  # ravdess_fer: FER2013 in any accepted layout
    train_csv: str = "train.csv"
    test_csv: str = "test.csv"
    audio_dir: str = "AudioWAV"
    frames_dir: str = "Image-01-FPS"
    n_frames: int = 1  # frames per clip
    frame_size: int = 48  # frames are resized to this (square)
    sample_rate: int = 22050  # audio resampled to this
    seconds: float = 3.0  # clip length; a shorter clip is repeated (tiled), a longer one cut
    n_fft: int = 512
    hop: int = 353
    seed: int = 0  # splits, pairing, synthetic generation
    val_fraction: float = 0.15  # share of the training speakers that become validation
    test_fraction: float = 0.15  # ravdess_fer / synthetic: share of speakers held out for test
    n_train: int = 420  # synthetic only
    n_val: int = 120  # synthetic only
    n_test: int = 120  # synthetic only
    visual_strength: float = 0.35  # synthetic only: expression intensity of the frames (the weaker modality)

    def __post_init__(self):
        check(self, source=one_of("synthetic", "crema_d", "ravdess_fer"), n_frames=at_least(1), frame_size=at_least(8),
              sample_rate=at_least(1000), seconds=POSITIVE, n_fft=at_least(16), hop=at_least(1), seed=at_least(0),
              val_fraction=between(0, 1, lo_open=True, hi_open=True), test_fraction=between(0, 1, hi_open=True),
              n_train=at_least(1), n_val=at_least(1), n_test=at_least(1), visual_strength=between(0, 1.5))
        if self.source in ("crema_d", "ravdess_fer") and not self.root:
            raise FieldError("root", f"required for source '{self.source}'")
        if self.source == "ravdess_fer" and not self.fer_root:
            raise FieldError("fer_root", "required for source 'ravdess_fer' (FER2013 faces to pair with the speech)")


@dataclass(frozen=True)
class AVModelConfig:
    """Two timm encoders (audio: 1-channel spectrogram; visual: frames, features averaged over frames), their
    features concatenated into one linear classifier (seed 004; OGM-GE's concat fusion)."""

    audio_arch: str = "resnet18"
    visual_arch: str = "resnet18"
    audio_kwargs: dict[str, Any] = field(default_factory=dict)  # extra timm kwargs
    visual_kwargs: dict[str, Any] = field(default_factory=dict)
    audio_pretrained: str | None = None  # timm pretrained tag, e.g. tv_in1k (fetched by timm with a network)
    visual_pretrained: str | None = None
    audio_pretrained_file: str | None = None  # local weights file (offline machines); takes precedence over a tag
    visual_pretrained_file: str | None = None
    visual_in_chans: int = 1  # 1: gray frames; 3: gray/RGB frames as RGB (ImageNet-pretrained stems)
    audio_pool: int = 1  # average-pool the spectrogram by this factor first (1: the recipe's full 257 x 188)
    drop_rate: float = 0.0

    def __post_init__(self):
        check(self, visual_in_chans=one_of(1, 3), audio_pool=at_least(1), drop_rate=between(0, 1, hi_open=True))
        for f in ("audio_arch", "visual_arch"):
            if not getattr(self, f):
                raise FieldError(f, "expected a timm model name, got an empty string")


@dataclass(frozen=True)
class BalanceConfig:
    """How the dominant modality is held back (seed 004's ASGML modes; OGM-GE as the literature baseline).

    - ``baseline``: both encoders update every step;
    - ``frequency``: the dominant encoder updates on every ``k``-th step only;
    - ``staleness``: the dominant encoder's update uses the gradient computed ``tau`` steps earlier;
    - ``adaptive``: after each probe evaluation the dominant modality is the one with the higher probe accuracy
      and its update frequency is ``k = min(k_max, 1 + floor(gap / gap_per_step))``;
    - ``ogm_ge``: OGM-GE (Peng et al., CVPR 2022), ``alpha``.
    ``unimodal_weight`` (gamma) adds ``gamma * (CE(audio head) + CE(visual head))`` to the fused CE.
    """

    mode: str = "baseline"
    dominant: str = "audio"  # audio | visual (fixed, as in the seed; adaptive chooses its own)
    k: int = 2
    tau: int = 2
    k_max: int = 4
    gap_per_step: float = 0.05
    alpha: float = 0.8
    unimodal_weight: float = 0.0

    def __post_init__(self):
        check(self, mode=one_of(*MODES), dominant=one_of("audio", "visual"), k=at_least(1), tau=at_least(0),
              k_max=at_least(1), gap_per_step=POSITIVE, alpha=NONNEG, unimodal_weight=NONNEG)


@dataclass(frozen=True)
class ProbeConfig:
    """Linear probes on detached encoder features (seed 004): the utilization gap = max - min probe accuracy.

    Every ``every_steps`` training steps (and at each epoch's end) a fresh linear probe per modality is fitted
    for ``train_steps`` full-batch Adam steps (``lr``) on ``n_train`` training clips and scored on ``n_eval``
    validation clips, which the probes never train on.
    """

    every_steps: int = 100
    train_steps: int = 50
    lr: float = 1e-3
    n_train: int = 512
    n_eval: int = 256
    enabled: bool = True

    def __post_init__(self):
        check(self, every_steps=at_least(1), train_steps=at_least(1), lr=POSITIVE, n_train=at_least(2),
              n_eval=at_least(1))


@dataclass(frozen=True)
class AVRunConfig:
    """One audio-visual run: data + model + training + balancing method + probes. ``name`` is a display label."""

    name: str
    data: AVDataConfig
    model: AVModelConfig
    train: TrainConfig
    balance: BalanceConfig
    probe: ProbeConfig

    def __post_init__(self):
        check_select_metric(self.train, AV_SELECT)
        if self.train.augment != AugmentConfig():
            raise FieldError("train.augment", "not used by audio-visual runs (their inputs are spectrograms and "
                             "frames); expected the default")
        for f in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self.train, f):
                raise FieldError(f"train.{f}", "MixUp/CutMix do not apply to audio-visual runs; expected 0")
        if self.balance.mode == "adaptive" and not self.probe.enabled:
            raise FieldError("probe.enabled", "the adaptive mode is driven by the probes; expected true")

    def key_dict(self) -> dict:
        return key_fields(self, drop=("name",))


