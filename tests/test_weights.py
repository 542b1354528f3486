"""Starting weights (issue: the paper profile): timm tags offline, local files, the ViT no-decay set, and section 08
placing every model on the measured device."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fer_lib.config import ConfigError, ModelConfig, TrainConfig
from fer_lib.engine.optim import make_optimizer
from fer_lib.models import create_model
from fer_lib.models.weights import weight_source


def test_a_timm_tag_without_network_names_the_tag_and_how_to_supply_it(monkeypatch):
    # this machine has no network: make the failure immediate (the hub reads the variable when it is imported, so
    # the flag it already read is set too; otherwise each fetch waits for its connection timeouts, 47 s in all)
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError) as e:
        create_model(ModelConfig(arch="resnet18", pretrained="a1_in1k"), 7)
    msg = str(e.value)
    assert "model.pretrained: cannot fetch timm weights 'resnet18.a1_in1k'" in msg
    assert "timm.create_model('resnet18.a1_in1k', pretrained=True)" in msg and "model.pretrained_file" in msg
    src = weight_source("resnet18", "resnet18.a1_in1k")
    assert src.kind == "timm" and not src.available and "needs a network" in src.detail
    assert (src.tag, src.words) == ("resnet18.a1_in1k", "ImageNet weights (resnet18.a1_in1k)")
    assert (weight_source("resnet18").tag, weight_source("resnet18").words) == ("random", "random weights")


def test_unknown_or_mismatched_tags_are_refused():
    with pytest.raises(ConfigError, match="timm has no pretrained weights 'resnet18.b9_in1k'; tags for resnet18: a1_in1k"):
        create_model(ModelConfig(arch="resnet18", pretrained="b9_in1k"), 7)
    with pytest.raises(ConfigError, match="are weights of 'resnet50', not of model.arch 'resnet18'"):
        create_model(ModelConfig(arch="resnet18", pretrained="resnet50.a1_in1k"), 7)


def test_a_local_file_loads_into_the_backbone(tmp_path):
    donor = create_model(ModelConfig(arch="test_resnet", in_chans=3, head="linear"), 7)
    sd = {k[len("backbone."):]: v.contiguous() for k, v in donor.state_dict().items() if k.startswith("backbone.")}
    save_file(sd, tmp_path / "w.safetensors")
    model = create_model(ModelConfig(arch="test_resnet", in_chans=3, head="linear",
                                     pretrained_file=str(tmp_path / "w.safetensors")), 7)
    for k, v in sd.items():
        torch.testing.assert_close(model.backbone.state_dict()[k], v)
    assert weight_source("test_resnet", None, str(tmp_path / "w.safetensors")).available
    missing = weight_source("test_resnet", None, str(tmp_path / "none.safetensors"))
    assert missing.kind == "file" and not missing.available and missing.detail == "MISSING"
    assert missing.tag == "none.safetensors" and missing.words == f"weights from {tmp_path / 'none.safetensors'}"
    with pytest.raises(ConfigError, match="model.pretrained_file: no such file"):
        create_model(ModelConfig(arch="test_resnet", pretrained_file=str(tmp_path / "none.safetensors")), 7)


@pytest.mark.parametrize("layer_decay", [None, 0.75])
def test_vit_position_embedding_and_class_token_get_no_weight_decay(layer_decay):
    model = create_model(ModelConfig(arch="vit_tiny_patch16_224", model_kwargs={"img_size": 32, "depth": 2}), 7)
    opt = make_optimizer(model, TrainConfig(weight_decay=0.05, layer_decay=layer_decay))
    decay_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert decay_of[id(named["backbone.pos_embed"])] == 0.0
    assert decay_of[id(named["backbone.cls_token"])] == 0.0
    assert decay_of[id(named["backbone.blocks.0.attn.qkv.weight"])] == 0.05


def test_section_08_places_every_model_on_the_measured_device():
    from fer_lib.report.deployment import place

    models = {"a": (create_model(ModelConfig(arch="test_resnet"), 7), (1, 32, 32)),
              "b": (torch.nn.Linear(3, 2), (3,))}
    placed = place(models, torch.device("meta"))
    for model, _ in placed.values():
        assert all(p.device.type == "meta" for p in model.parameters()) and not model.training


def test_number_of_classes_without_loading_the_images(tmp_path):
    from fer_lib.data import num_classes

    assert num_classes({"source": "cifar100", "root": str(tmp_path / "not_there")}) == 100  # nothing is read
    assert num_classes({"source": "fer2013", "root": str(tmp_path / "not_there")}) == 7
    (tmp_path / "i.csv").write_text("path,label,split\na.png,cat,train\nb.png,dog,test\nc.png,cat,val\n")
    assert num_classes({"source": "index_csv", "root": str(tmp_path / "i.csv")}) == 2
    assert np.isscalar(num_classes({"source": "synthetic_cifar"}))
