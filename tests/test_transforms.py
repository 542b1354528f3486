"""Batched on-device augmentation against torchvision references."""
import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from fer_lib.config import AugmentConfig
from fer_lib.data.transforms import BatchAugment, normalize_stats, random_affine

IDENTITY = AugmentConfig(crop_scale=(1.0, 1.0), hflip=0.0, brightness=0.0, contrast=0.0)


def _batch(n=4, c=1, s=48, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, c, s, s), dtype=np.uint8))


def test_eval_transform_matches_torchvision_resize_and_normalize():
    x = _batch()
    ours = BatchAugment(32, 1, (0.5,), (0.25,))(x)
    ref = v2.Compose([v2.Resize((32, 32), antialias=True), v2.ToDtype(torch.float32, scale=True),
                      v2.Normalize((0.5,), (0.25,))])
    expected = torch.stack([ref(im) for im in x])
    torch.testing.assert_close(ours, expected, atol=2e-2, rtol=0)


def test_identity_augmentation_equals_eval_at_native_size():
    x = _batch()
    torch.testing.assert_close(BatchAugment(48, 1, (0.5,), (0.25,), IDENTITY)(x),
                               BatchAugment(48, 1, (0.5,), (0.25,))(x), atol=1e-5, rtol=0)


def test_flip_with_probability_one_mirrors_the_image():
    x = _batch()
    flip = AugmentConfig(crop_scale=(1.0, 1.0), hflip=1.0, brightness=0.0, contrast=0.0)
    torch.testing.assert_close(BatchAugment(48, 1, (0.0,), (1.0,), flip)(x), x.flip(-1).float() / 255,
                               atol=1e-5, rtol=0)


def test_gray_to_three_channels_and_imagenet_stats():
    mean, std = normalize_stats("imagenet", 3, (0.5, 0.25))
    y = BatchAugment(32, 3, mean, std)(_batch())
    assert y.shape == (4, 3, 32, 32)
    gray = BatchAugment(32, 1, (0.0,), (1.0,))(_batch())
    torch.testing.assert_close(y[:, 1], (gray[:, 0] - mean[1]) / std[1], atol=1e-5, rtol=0)


def test_random_crop_scale_and_jitter_ranges():
    torch.manual_seed(0)
    aug = AugmentConfig(crop_scale=(0.5, 0.6), hflip=0.5, rotation=0.0)
    theta = random_affine(2000, aug, "cpu")
    area = (theta[:, 0, 0].abs() * theta[:, 1, 1].abs())
    assert area.min() >= 0.5 - 1e-3 and area.max() <= 0.6 + 1e-3
    assert 0.4 < (theta[:, 0, 0] < 0).float().mean() < 0.6  # flip probability
    # crops stay inside the image: |centre| + half-size <= 1
    assert torch.all(theta[:, 0, 2].abs() + theta[:, 0, 0].abs() <= 1 + 1e-6)
    out = BatchAugment(32, 1, (0.0,), (1.0,), AugmentConfig(brightness=0.3, contrast=0.3))(_batch(64))
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_random_erasing_probability(p):
    torch.manual_seed(0)
    x = _batch(8)
    aug = AugmentConfig(crop_scale=(1.0, 1.0), hflip=0.0, brightness=0.0, contrast=0.0, random_erasing=p)
    out = BatchAugment(48, 1, (0.0,), (1.0,), aug)(x)
    changed = ((out - x.float() / 255).abs() > 1e-3).flatten(1).any(1)
    assert changed.all() if p == 1.0 else not changed.any()
