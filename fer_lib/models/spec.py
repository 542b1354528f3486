"""What a run builds, described without building it: ``ModelSpec`` -- a model's role, config, input and classes.

A run kind lists its models (``RunKind.models(cfg) -> [ModelSpec]``); the paper check steps each one
(``fer_lib.report.check``), the makespan estimate looks up its training rate (``fer_lib.launch.makespan``) and
``benchmarks/train_rates.py`` measures it -- all through the spec's methods, so none of them asks which kind of model
it holds. A new kind of model subclasses ``ModelSpec`` and gives ``build``, ``example_batch`` and ``weight_sources``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..config import to_dict
from .weights import WeightSource, weight_source, weights_of


@dataclass(frozen=True)
class ModelSpec:
    """A classifier (``create_model``) of ``config`` on inputs of ``input_shape`` (no batch) into ``n_classes``."""
    role: str           # what the model is to its run: "teacher", "student", "teacher <role>", ...
    config: Any         # its model config (ModelConfig; AVModelConfig for ``AVSpec``)
    input_shape: tuple  # one sample's shape
    n_classes: int

    @property
    def arch(self) -> str:
        return self.config.arch

    @property
    def pixels(self) -> int:
        """Spatial size of one sample (height x width), which sets how large a batch a CPU benchmark can afford."""
        return self.input_shape[-1] * self.input_shape[-2]

    def signature(self) -> str:
        """What a training rate is measured for: the config (minus where its weights come from) and the input."""
        fields = {k: v for k, v in to_dict(self.config).items() if "pretrained" not in k}
        return json.dumps([fields, str(self.input_shape)], sort_keys=True)

    def with_random_weights(self) -> "ModelSpec":
        """The same model, its weights random (nothing loaded or fetched)."""
        fields = {f.name for f in dataclasses.fields(self.config)} & {"pretrained", "pretrained_file"}
        return dataclasses.replace(self, config=dataclasses.replace(self.config, **dict.fromkeys(fields)))

    def weight_sources(self) -> dict[str, WeightSource]:
        """{part: where its starting weights come from} ("" for a model in one piece; a config without weight
        fields starts from random weights)."""
        return {"": weight_source(self.config.arch, getattr(self.config, "pretrained", None),
                                  getattr(self.config, "pretrained_file", None))}

    def build(self) -> nn.Module:
        from . import create_model

        return create_model(self.config, self.n_classes)

    def example_batch(self, batch: int):
        """A random input batch of ``batch`` samples, as the model's forward takes it."""
        return torch.randn(batch, *self.input_shape)


@dataclass(frozen=True)
class AVSpec(ModelSpec):
    """The audio-visual classifier; ``input_shape`` is (spectrogram shape, frames shape)."""
    unimodal_heads: bool = False

    @property
    def arch(self) -> str:
        return f"{self.config.audio_arch} + {self.config.visual_arch}"

    @property
    def pixels(self) -> int:
        spectrogram, _ = self.input_shape
        return spectrogram[0] * spectrogram[1]

    def with_random_weights(self) -> "AVSpec":
        return dataclasses.replace(self, config=dataclasses.replace(
            self.config, audio_pretrained=None, visual_pretrained=None, audio_pretrained_file=None,
            visual_pretrained_file=None))

    def weight_sources(self) -> dict[str, WeightSource]:
        return {"audio": weights_of(self.config, "audio_"), "visual": weights_of(self.config, "visual_")}

    def build(self) -> nn.Module:
        from .av import AVClassifier

        return AVClassifier(self.config, self.n_classes, unimodal_heads=self.unimodal_heads)

    def example_batch(self, batch: int):
        spectrogram, frames = self.input_shape
        return (torch.randn(batch, *spectrogram).half(),
                torch.randint(0, 256, (batch, *frames), dtype=torch.uint8))
