"""Config dataclasses, one per kind of run, mirroring the YAML files in ``params/``.

- ``base``:     ``from_dict`` / ``to_dict`` / ``config_hash``, ``ConfigError``, value rules (``check``)
- ``classify``: FER teachers and distilled students (sections 01-05)
- ``segment``:  face parsing (section 06)
- ``av``:       audio-visual modality balance (section 07)
"""
from .av import AV_SELECT, AVDataConfig, AVModelConfig, AVRunConfig, BalanceConfig, ProbeConfig
from .base import ConfigError, FieldError, added_field, build, config_hash, deep_merge, from_dict, key_fields, to_dict
from .classify import (CLASSIFICATION_SELECT, AugmentConfig, DataConfig, DistillConfig, ModelConfig,
                       StudentRunConfig, TeacherRunConfig, TrainConfig, check_select_metric)
from .segment import (PARAM_LIMIT, SEGMENTATION_SELECT, SegAugmentConfig, SegDataConfig, SegLossConfig,
                      SegModelConfig, SegRunConfig)

__all__ = ["AVDataConfig", "AVModelConfig", "AVRunConfig", "AV_SELECT", "AugmentConfig", "BalanceConfig",
           "CLASSIFICATION_SELECT", "ConfigError", "DataConfig", "DistillConfig", "FieldError", "ModelConfig",
           "PARAM_LIMIT", "ProbeConfig", "SEGMENTATION_SELECT", "SegAugmentConfig", "SegDataConfig", "SegLossConfig",
           "SegModelConfig", "SegRunConfig", "StudentRunConfig", "TeacherRunConfig", "TrainConfig",
           "added_field", "build", "check_select_metric", "config_hash", "deep_merge", "from_dict", "key_fields", "to_dict"]
