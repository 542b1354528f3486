"""Config dataclasses: strict keys and types, with messages that name the parameter."""
import pytest

from fer_lib.config import (ConfigError, DataConfig, ModelConfig, TeacherRunConfig, TrainConfig, config_hash,
                            deep_merge, from_dict, to_dict)
from fer_lib.tasks import teacher_configs


def test_round_trip_and_nested():
    cfg = from_dict(TrainConfig, {"epochs": 3, "augment": {"crop_scale": [0.9, 1.0]}})
    assert cfg.epochs == 3 and cfg.augment.crop_scale == (0.9, 1.0)
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize("d, where", [
    ({"lrr": 1}, "train.lrr: unknown key"),
    ({"epochs": "ten"}, "train.epochs: expected an integer"),
    ({"epochs": 0}, "train.epochs: expected an integer >= 1, got 0"),
    ({"loss": "hinge"}, "train.loss: expected one of ce, focal"),
    ({"augment": {"crop_scale": [0.9]}}, "train.augment.crop_scale: expected a list of 2 numbers"),
    ({"amp": "yes"}, "train.amp: expected true/false"),
])
def test_train_errors_name_the_parameter(d, where):
    with pytest.raises(ConfigError, match=where.replace("(", r"\(")):
        from_dict(TrainConfig, d, "train")


def test_data_and_model_errors():
    with pytest.raises(ConfigError, match="data.root: required for source 'fer2013'"):
        from_dict(DataConfig, {"source": "fer2013"}, "data")
    with pytest.raises(ConfigError, match="data.source"):
        from_dict(DataConfig, {"source": "imagenet"}, "data")
    with pytest.raises(ConfigError, match="model.in_chans"):
        from_dict(ModelConfig, {"in_chans": 2}, "model")
    with pytest.raises(ConfigError, match="data.limit.train: expected a positive count"):
        from_dict(DataConfig, {"limit": {"train": 0}}, "data")
    with pytest.raises(ConfigError, match="root: required"):  # built directly: the field's own name
        DataConfig(source="fer2013")


def test_teacher_configs_merge_overrides_and_key_ignores_label():
    cfgs = teacher_configs({"n_train": 10}, {"lr": 1e-3, "augment": {"hflip": 0.0}},
                           {"a": {"label": "A", "model": {"arch": "resnet18"}, "train": {"augment": {"brightness": 0.3}}},
                            "b": {"label": "B", "model": {"arch": "resnet18"}}})
    assert cfgs["a"].train.augment.hflip == 0.0 and cfgs["a"].train.augment.brightness == 0.3
    assert cfgs["a"].key_dict() != cfgs["b"].key_dict()
    same = TeacherRunConfig("other name", cfgs["b"].data, cfgs["b"].model, cfgs["b"].train)
    assert config_hash(same.key_dict()) == config_hash(cfgs["b"].key_dict())
    with pytest.raises(ValueError, match="teachers.a: unknown key 'modle'"):
        teacher_configs({}, {}, {"a": {"modle": {}}})
    with pytest.raises(ConfigError, match="teachers.a.train.epoch: unknown key"):
        teacher_configs({}, {}, {"a": {"train": {"epoch": 1}}})


def test_deep_merge():
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}, "d": 1}


def test_teacher_configs_errors_name_the_teacher_and_every_arch_is_checked_before_training():
    ok = {"model": {"arch": "resnet18"}}
    with pytest.raises(ConfigError, match=r"^teachers\.b\.model\.arch: unknown model 'xyz'; expected a timm model "
                                          r"name \(timm\.list_models\) or one of microsegformer"):
        teacher_configs({}, {}, {"a": ok, "b": {"model": {"arch": "xyz"}}})
    with pytest.raises(ConfigError, match=r"^teachers\.b\.train\.select_metric: expected one of macro_f1, accuracy, "
                                          r"minority_f1 .*, got 'acc'"):
        teacher_configs({}, {}, {"a": ok, "b": {"model": {"arch": "resnet18"}, "train": {"select_metric": "acc"}}})
    with pytest.raises(ConfigError, match=r"^teachers\.a: unknown key 'modle'; expected model, train, label"):
        teacher_configs({}, {}, {"a": {"modle": {}}})


def test_with_seeds_adds_one_matched_arm_per_extra_seed_and_keeps_the_arm_itself():
    from fer_lib.config.params import arm_and_seed, with_seeds

    arms = {"a": {"label": "A", "loss": {"w": 1}}, "b": {"label": "B", "train": {"seed": 1}}, "c": {}}
    out = with_seeds(arms, {"values": [0, 1, 2], "arms": ["a", "b"]}, {"seed": 0})
    assert list(out) == ["a", "b", "c", "a/seed1", "a/seed2", "b/seed0", "b/seed2"]
    assert out["a/seed2"] == {"label": "A, seed 2", "loss": {"w": 1}, "train": {"seed": 2}}
    assert out["b/seed0"]["train"] == {"seed": 0} and arms["b"]["train"] == {"seed": 1}  # input untouched
    assert arm_and_seed("a/seed2") == ("a", 2) and arm_and_seed("a") == ("a", 0)
    assert with_seeds(arms, None) == arms
    with pytest.raises(ConfigError, match="seeds: expected"):
        with_seeds(arms, {"values": [0, 1], "arms": ["zz"]})


def test_arm_means_joins_seed_runs_to_their_arm_in_first_seen_order():
    from fer_lib.config.params import arm_means

    scores = {"b": 0.50, "a": 0.40, "b/seed1": 0.60, "a/seed2": 0.44, "b/seed2": 0.70, "c/seedling": 0.1}
    means = arm_means(scores)
    assert list(means) == ["b", "a", "c/seedling"]  # a name that only looks like a seed stays an arm
    assert means["b"] == pytest.approx(0.60) and means["a"] == pytest.approx(0.42) and means["c/seedling"] == 0.1
