"""create_model: timm backbones, grayscale input, local pretrained weights, ArcFace/linear heads, CBAM-lite."""
import pytest
import timm
import torch
from safetensors.torch import save_file

from fer_lib.config import ConfigError, ModelConfig
from fer_lib.models import ArcFaceHead, LinearHead, create_model


@pytest.mark.parametrize("arch, kw", [("test_resnet", {}), ("test_efficientnet", {}), ("test_convnext", {}),
                                      ("test_vit", {"img_size": 32})])
@pytest.mark.parametrize("in_chans", [1, 3])
def test_forward_shapes(arch, kw, in_chans):
    m = create_model(ModelConfig(arch=arch, in_chans=in_chans, model_kwargs=kw), 7).eval()
    x = torch.randn(2, in_chans, 32, 32)
    out = m(x)
    assert out.shape == (2, 7)
    emb = m.embed(x)
    assert emb.shape == (2, m.backbone.num_features)
    # ArcFace inference logits are s * cos(theta): bounded by s
    assert out.abs().max() <= 30.0 + 1e-4
    t = torch.nn.functional.one_hot(torch.tensor([1, 2]), 7).float()
    with_margin = m.forward_train(x, t, 0.35)
    assert torch.all(with_margin[t.bool()] < out[t.bool()])  # margin lowers the target logit
    assert torch.allclose(with_margin[~t.bool()], out[~t.bool()], atol=1e-5)


def test_linear_head_and_unknown_arch():
    m = create_model(ModelConfig(arch="test_resnet", head="linear"), 5)
    assert isinstance(m.head, LinearHead)
    assert isinstance(create_model(ModelConfig(arch="test_resnet"), 5).head, ArcFaceHead)
    with pytest.raises(ConfigError, match="model.arch: unknown timm model 'no_such_net'"):
        create_model(ModelConfig(arch="no_such_net"), 5)


def test_pretrained_weights_come_from_the_local_file_and_adapt_to_gray(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = timm.create_model("test_resnet", num_classes=10)  # an RGB "ImageNet" checkpoint
    f = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(f))
    m = create_model(ModelConfig(arch="test_resnet", in_chans=1, pretrained_file=str(f)), 7)
    stem_key = next(k for k in src.state_dict() if k.endswith("weight") and src.state_dict()[k].ndim == 4)
    ours = m.backbone.state_dict()[stem_key]
    assert ours.shape[1] == 1  # gray stem, adapted from the RGB weights by summing over channels
    assert torch.allclose(ours[:, 0], src.state_dict()[stem_key].sum(1), atol=1e-5)
    other = next(k for k in src.state_dict() if k.startswith("stages") or k.startswith("layer"))
    assert torch.equal(m.backbone.state_dict()[other], src.state_dict()[other])


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="model.pretrained_file: no such file .*nope.safetensors"):
        create_model(ModelConfig(arch="test_resnet", pretrained_file=str(tmp_path / "nope.safetensors")), 7)


def test_cbam_lite_on_cnn_and_refused_on_vit():
    m = create_model(ModelConfig(arch="test_resnet", cbam=True), 7)
    assert m.cbam is not None and m(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    with pytest.raises(ConfigError, match="model.cbam: CBAM-lite needs a convolutional feature map"):
        create_model(ModelConfig(arch="test_vit", cbam=True, model_kwargs={"img_size": 32}), 7)


def test_flip_tta_averages_the_mirror_image_in_eval_only():
    import torch

    from fer_lib.config import ModelConfig
    from fer_lib.models import create_model

    torch.manual_seed(0)
    plain = create_model(ModelConfig(arch="test_resnet", head="linear"), 7).eval()
    tta = create_model(ModelConfig(arch="test_resnet", head="linear", tta="flip"), 7).eval()
    tta.load_state_dict(plain.state_dict())
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(tta(x), (plain(x) + plain(x.flip(-1))) / 2)
        tta.train()
        plain.train()
        torch.testing.assert_close(tta(x), plain(x))  # training sees the image only
