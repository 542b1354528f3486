"""Face parsing (section 06): the challenge F-score, per-class F1/IoU against torchmetrics, the L/R swap under flip,
the parameter limit, losses, the loader and its errors on fixture files, exact resume, and the predict command."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import tv_tensors

from fer_lib.config import PARAM_LIMIT, ConfigError, SegAugmentConfig, SegModelConfig
from fer_lib.data import DatasetError
from fer_lib.data.faceparse import FLIP_PAIRS, flip_permutation, load_faceparse
from fer_lib.data.seg_transforms import RandomHorizontalFlipSwapLR, joint_transform
from fer_lib.data.synthetic import PART_CLASSES
from fer_lib.losses.segmentation import segmentation_loss, soft_dice_loss
from fer_lib.metrics.segmentation import (challenge_fscore, confusion_per_image, image_fscores, per_class_f1,
                                          per_class_iou, pooled_fscore, segmentation_metrics)
from fer_lib.models import count_parameters, create_model
from fer_lib.runs import RunStore


# ----------------------------------------------------------------------------- the challenge F-score
def test_fscore_hand_worked():
    # one 2x3 image; ground truth: class 0 at 3 pixels, class 1 at 2, class 2 at 1; prediction below
    gt = np.array([[[0, 0, 0], [1, 1, 2]]])
    pr = np.array([[[0, 0, 1], [1, 2, 2]]])
    # class 0: TP 2, FP 0, FN 1 -> P 1, R 2/3, F1 0.8
    # class 1: TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F1 0.5
    # class 2: TP 1, FP 1, FN 0 -> P 1/2, R 1, F1 2/3
    # class 3 is predicted nowhere and absent from the ground truth: not averaged
    cm = confusion_per_image(pr, gt, 4)
    assert image_fscores(cm)[0] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3, abs=1e-6)
    # a second image that is predicted perfectly and holds only class 3 scores 1; the mean is over images
    cm2 = confusion_per_image(np.full((1, 2, 2), 3), np.full((1, 2, 2), 3), 4)
    assert challenge_fscore(np.concatenate([cm, cm2])) == pytest.approx(((0.8 + 0.5 + 2 / 3) / 3 + 1) / 2, abs=1e-6)


def _independent_image_fscore(pred, gt):
    """The README's formula, written out pixel by pixel for one image (no confusion matrix)."""
    f1s = []
    for c in np.unique(gt):
        tp = np.sum((pred == c) & (gt == c))
        fp = np.sum((pred == c) & (gt != c))
        fn = np.sum((pred != c) & (gt == c))
        p, r = tp / (tp + fp + 1e-7), tp / (tp + fn + 1e-7)
        f1s.append(2 * p * r / (p + r + 1e-7))
    return np.mean(f1s)


def test_fscore_matches_an_independent_per_image_computation_and_pooled_differs():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 19, (12, 20, 20))
    gt[:6, :10] = 0  # uneven class presence across images
    gt[6:, :, :5] = 18
    pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, 19, gt.shape))
    cms = confusion_per_image(pred, gt, 19)
    ours = image_fscores(cms)
    ref = np.array([_independent_image_fscore(p, g) for p, g in zip(pred, gt)])
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    assert challenge_fscore(cms) == pytest.approx(ref.mean(), abs=1e-9)
    pooled = pooled_fscore(cms, 4)
    assert abs(pooled - ref.mean()) > 1e-3  # the pitfall is a different number
    assert pooled == pytest.approx(np.mean([_independent_image_fscore(pred[i:i + 4].ravel(), gt[i:i + 4].ravel())
                                            for i in range(0, 12, 4)]), abs=1e-9)


def test_per_class_f1_and_iou_match_torchmetrics():
    from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

    rng = np.random.default_rng(1)
    gt = rng.integers(0, 6, (5, 16, 16))
    pred = np.where(rng.random(gt.shape) < 0.5, gt, rng.integers(0, 6, gt.shape))
    total = confusion_per_image(pred, gt, 6).sum(0)
    p, t = torch.from_numpy(pred), torch.from_numpy(gt)
    np.testing.assert_allclose(per_class_f1(total), MulticlassF1Score(6, average=None)(p, t).numpy(), atol=1e-6)
    np.testing.assert_allclose(per_class_iou(total), MulticlassJaccardIndex(6, average=None)(p, t).numpy(), atol=1e-6)
    m = segmentation_metrics(confusion_per_image(pred, gt, 6), [f"c{i}" for i in range(6)])
    assert m["miou"] == pytest.approx(MulticlassJaccardIndex(6, average="macro")(p, t).item(), abs=1e-6)
    assert m["pixel_accuracy"] == pytest.approx((pred == gt).mean())


# ----------------------------------------------------------------------------- the flip swaps left and right
def test_flip_permutation_pairs_left_with_right():
    perm = flip_permutation()
    for a, b in FLIP_PAIRS:
        assert perm[PART_CLASSES.index(a)] == PART_CLASSES.index(b)
        assert perm[PART_CLASSES.index(b)] == PART_CLASSES.index(a)
    others = [i for i, c in enumerate(PART_CLASSES) if not any(c in p for p in FLIP_PAIRS)]
    assert all(perm[i] == i for i in others)
    np.testing.assert_array_equal(perm[perm], np.arange(len(PART_CLASSES)))


def test_horizontal_flip_swaps_labels_and_twice_is_identity():
    rng = np.random.default_rng(0)
    mask = torch.from_numpy(rng.integers(0, 19, (9, 11)).astype(np.uint8))
    img = torch.from_numpy(rng.integers(0, 256, (3, 9, 11)).astype(np.uint8))
    flip = RandomHorizontalFlipSwapLR(1.0, flip_permutation())
    x1, m1 = flip(tv_tensors.Image(img), tv_tensors.Mask(mask))
    torch.testing.assert_close(x1.as_subclass(torch.Tensor), img.flip(-1))  # the image is only flipped
    perm = torch.as_tensor(flip_permutation())
    torch.testing.assert_close(m1.as_subclass(torch.Tensor), perm[mask.long()].flip(-1).to(torch.uint8))
    left = PART_CLASSES.index("l_eye")
    where = (mask == left).nonzero()
    r, c = where[0].tolist()
    assert m1[r, mask.shape[1] - 1 - c] == PART_CLASSES.index("r_eye")  # the left eye lands on the right-eye class
    x2, m2 = flip(x1, m1)
    torch.testing.assert_close(m2.as_subclass(torch.Tensor), mask)
    torch.testing.assert_close(x2.as_subclass(torch.Tensor), img)


def test_joint_transform_moves_mask_with_image_and_never_blends_labels():
    torch.manual_seed(0)
    img = torch.zeros(3, 32, 32, dtype=torch.uint8)
    img[:, 8:16, 4:12] = 255
    mask = torch.zeros(32, 32, dtype=torch.uint8)
    mask[8:16, 4:12] = PART_CLASSES.index("l_eye")
    tf = joint_transform(SegAugmentConfig(hflip=0.5, rotation=20, scale=(0.85, 1.15), brightness=0, contrast=0,
                                          saturation=0))
    for _ in range(10):
        x, m = tf(tv_tensors.Image(img), tv_tensors.Mask(mask))
        assert set(m.unique().tolist()) <= {0, PART_CLASSES.index("l_eye"), PART_CLASSES.index("r_eye")}
        bright = x[0] > 127
        labelled = m > 0
        assert (bright & labelled).sum() >= 0.8 * labelled.sum()  # the part moved with the image


def _pairs(n=6, size=32, seed=0):
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (n, 3, size, size)).astype(np.uint8))
    masks = torch.from_numpy(rng.integers(0, 19, (n, size, size)).astype(np.uint8))
    return images, masks


def test_batch_augment_equals_torchvision_per_pair_for_the_same_draws():
    """The batched joint augmentation against torchvision v2's functional ops, pair by pair, with the same draws:
    flip (with the L/R swap), the affine about the centre (bilinear image, nearest labels, fill 0) and the jitter."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    from fer_lib.data.seg_transforms import SegBatchAugment

    images, masks = _pairs()
    aug = SegBatchAugment(SegAugmentConfig(hflip=0.5, rotation=30, scale=(0.8, 1.2), brightness=0.3, contrast=0.3,
                                           saturation=0.3, batched=True))
    aug.reseed(3, "cpu")
    params = aug.draw(len(images), "cpu")
    params["flip"] = torch.arange(len(images)) % 2 == 0  # both branches, whatever the draw
    x, m = aug.apply(images, masks, params)
    perm = torch.as_tensor(flip_permutation()).long()
    for i in range(len(images)):
        img, mask = images[i].float() / 255, masks[i].long()
        if params["flip"][i]:
            img, mask = TF.horizontal_flip(img), perm[TF.horizontal_flip(mask)]
        kw = dict(angle=float(params["angle"][i]), translate=[0.0, 0.0], scale=float(params["scale"][i]),
                  shear=[0.0, 0.0])
        img = TF.affine(img, interpolation=InterpolationMode.BILINEAR, **kw)  # zeros outside, as fill=None
        mask = TF.affine(mask.unsqueeze(0).float(), interpolation=InterpolationMode.NEAREST, fill=0, **kw)[0].long()
        img = TF.adjust_brightness(img, float(params["brightness"][i]))
        img = TF.adjust_contrast(img, float(params["contrast"][i]))
        img = TF.adjust_saturation(img, float(params["saturation"][i]))
        torch.testing.assert_close(x[i], img, atol=1e-4, rtol=0)  # float rounding; 1/255 is 4e-3
        assert (m[i] != mask).float().mean() < 0.005  # nearest-neighbour ties at a pixel border may round apart


def test_batch_augment_flip_relabels_left_and_right_and_replays():
    from fer_lib.data.seg_transforms import SegBatchAugment

    images, masks = _pairs()
    flip_only = SegBatchAugment(SegAugmentConfig(hflip=1.0, rotation=0, scale=(1.0, 1.0), brightness=0, contrast=0,
                                                 saturation=0))
    x, m = flip_only(images, masks)
    torch.testing.assert_close(x, images.flip(-1).float() / 255, rtol=0, atol=0)
    torch.testing.assert_close(m, torch.as_tensor(flip_permutation()).long()[masks.long()].flip(-1), rtol=0, atol=0)
    aug = SegBatchAugment(SegAugmentConfig(batched=True))
    views = []
    for seed in (5, 5, 6):
        aug.reseed(seed, "cpu")
        views.append(aug(images, masks))
    torch.testing.assert_close(views[0], views[1], rtol=0, atol=0)  # a reseeded epoch replays its views
    assert not torch.equal(views[0][0], views[2][0])


def test_batched_augment_enters_the_key_only_when_set():
    base = _tiny_config()
    batched = _tiny_config(augment={"batched": True})
    assert "batched" not in base.key_dict()["augment"]  # runs keyed before the field keep their keys
    assert batched.key_dict()["augment"]["batched"] is True


# ----------------------------------------------------------------------------- model and losses
def test_microsegformer_parameters_and_limit():
    model = create_model(SegModelConfig(), 19)
    assert count_parameters(model) < PARAM_LIMIT
    assert count_parameters(model.lmsa) == 25_984  # the seed repository's LMSA: dw 3x3, pw 1x1, BN, SE r4 (no bias)
    no = create_model(SegModelConfig(lmsa=False), 19)
    assert count_parameters(model) - count_parameters(no) == 25_984
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 19, 64, 64)
    with pytest.raises(ConfigError, match="fewer than 1,821,085"):
        create_model(SegModelConfig(widths=(64, 128, 256, 320)), 19)


def test_dice_and_ce_against_one_hot_references():
    torch.manual_seed(0)
    z = torch.randn(3, 5, 8, 8)
    t = torch.randint(0, 5, (3, 8, 8))
    t[t == 2] = 0  # class 2 absent: not averaged
    p, g = F.softmax(z, 1), F.one_hot(t, 5).permute(0, 3, 1, 2).float()
    d = (2 * (p * g).sum((0, 2, 3)) + 1) / (p.sum((0, 2, 3)) + g.sum((0, 2, 3)) + 1)
    ref = 1 - d[[0, 1, 3, 4]].mean()
    assert soft_dice_loss(z, t).item() == pytest.approx(ref.item(), abs=1e-6)
    out = segmentation_loss(z, t, ce_weight=1.0, dice_weight=1.5)
    assert out["loss_ce"].item() == pytest.approx(F.cross_entropy(z, t).item(), abs=1e-6)
    assert out["loss_dice"].item() == pytest.approx(1.5 * ref.item(), abs=1e-6)
    pt = p.gather(1, t.unsqueeze(1)).squeeze(1)
    focal = segmentation_loss(z, t, 1.0, 0.0, focal=True, focal_gamma=2.0)
    assert set(focal) == {"loss_focal"}
    assert focal["loss_focal"].item() == pytest.approx((-(1 - pt) ** 2 * pt.log()).mean().item(), abs=1e-6)


# ----------------------------------------------------------------------------- the loader on fixture files
def write_faceparse(root, n=10, size=24, with_test=True):
    rng = np.random.default_rng(0)
    for split, count in (("train", n),) + ((("test", 3),) if with_test else ()):
        (root / split / "images").mkdir(parents=True)
        if split == "train":
            (root / split / "masks").mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
                root / split / "images" / f"{split}{i:03d}.jpg")
            if split == "train":
                Image.fromarray(rng.integers(0, 19, (size, size), dtype=np.uint8), mode="L").save(
                    root / split / "masks" / f"{split}{i:03d}.png")
    return root


def test_loader_reads_the_challenge_layout_and_carves_val_and_test(tmp_path):
    root = write_faceparse(tmp_path / "fp", n=20)
    data = load_faceparse(root, val_fraction=0.2, test_fraction=0.1, seed=3, cache_dir=tmp_path / "cache")
    assert data.images.shape == (20, 24, 24, 3) and data.masks.shape == (20, 24, 24)
    assert data.counts() == {"train": 14, "val": 4, "test": 2}
    assert any("became val" in n for n in data.notes) and any("became test" in n for n in data.notes)
    again = load_faceparse(root, val_fraction=0.2, test_fraction=0.1, seed=3, cache_dir=tmp_path / "cache")
    assert again.fingerprint == data.fingerprint and (again.split == data.split).all()
    assert len(list((tmp_path / "cache" / "datasets").glob("faceparse-*.npz"))) == 1  # decoded once
    other = load_faceparse(root, val_fraction=0.2, test_fraction=0.1, seed=4, cache_dir=tmp_path / "cache")
    assert other.fingerprint != data.fingerprint


@pytest.mark.parametrize("break_it, message", [
    (lambda r: Image.new("RGB", (24, 24)).save(r / "train/masks/train001.png"), "not single-channel"),
    (lambda r: Image.new("L", (20, 24)).save(r / "train/masks/train001.png"), "is 20x24 but its image is 24x24"),
    (lambda r: Image.fromarray(np.full((24, 24), 19, np.uint8), mode="L").save(r / "train/masks/train001.png"),
     "label 19 outside 0..18"),
    (lambda r: (r / "train/masks/train001.png").unlink(), "image without a mask: .*train001.jpg"),
    (lambda r: [p.unlink() for p in (r / "train/images").iterdir()], "no images"),
])
def test_mask_errors_name_the_file(tmp_path, break_it, message):
    root = write_faceparse(tmp_path / "fp", n=4)
    break_it(root)
    with pytest.raises(DatasetError, match=message) as e:
        load_faceparse(root, cache_dir=tmp_path / "cache")
    assert "train001" in str(e.value) or "no images" in message


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="face-parsing root does not exist"):
        load_faceparse(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- training: resume and predict
TINY = dict(data={"source": "synthetic", "n_train": 24, "n_val": 8, "n_test": 8, "size": 32, "seed": 1},
            model={"widths": [8, 16, 24, 32], "decoder_dim": 16},
            train={"epochs": 3, "batch_size": 8, "eval_batch_size": 8, "img_size": 32, "lr": 2e-3,
                   "weight_decay": 1e-4, "warmup_epochs": 1, "select_metric": "fscore", "num_workers": 0, "seed": 5},
            loss={"dice_weight": 1.5}, augment={})


def _tiny_config(augment: dict | None = None, **over):
    from fer_lib.tasks.segment import seg_configs

    return seg_configs(TINY["data"], TINY["model"], {**TINY["train"], **over}, TINY["loss"],
                       {**TINY["augment"], **(augment or {})}, {"a": {"label": "A"}})["a"]


@pytest.mark.parametrize("batched", [False, True], ids=["per-pair", "batched"])
def test_segmentation_resume_equals_uninterrupted(tmp_path, monkeypatch, batched):
    from fer_lib.tasks import segment

    cfg = _tiny_config(augment={"batched": batched})
    full = segment.train_segmenter(cfg, RunStore(tmp_path / "a"), progress=False)
    real, calls = segment.predict_confusions, {"n": 0}

    def crash_in_epoch_3(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real(*a, **k)

    monkeypatch.setattr(segment, "predict_confusions", crash_in_epoch_3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        segment.train_segmenter(cfg, RunStore(tmp_path / "b"), progress=False)
    monkeypatch.setattr(segment, "predict_confusions", real)
    resumed = segment.train_segmenter(cfg, RunStore(tmp_path / "b"), progress=False)
    assert len(resumed.history) == 3
    from safetensors.torch import load_file

    wa, wb = load_file(full.file("weights.safetensors")), load_file(resumed.file("weights.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)
    assert resumed.metrics["val"]["fscore"] == full.metrics["val"]["fscore"]


def test_predict_command_writes_single_channel_pngs_and_a_zip(tmp_path, capsys):
    from fer_lib.commands.parse import main
    from fer_lib.tasks.segment import train_segmenter

    run = train_segmenter(_tiny_config(epochs=1), RunStore(tmp_path / "runs"), progress=False)
    images = tmp_path / "test_images"
    images.mkdir()
    rng = np.random.default_rng(0)
    sizes = {"a": (40, 30), "b": (32, 32)}
    for stem, (w, h) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f"{stem}.jpg")
    with pytest.raises(SystemExit) as done:
        main(["predict", "--run", str(run.path), "--images", str(images), "--out", str(tmp_path / "masks"),
              "--zip", str(tmp_path / "masks.zip")])
    assert done.value.code == 0
    for stem, size in sizes.items():
        with Image.open(tmp_path / "masks" / f"{stem}.png") as m:
            assert m.mode == "L" and m.size == size
            assert np.asarray(m).max() < 19
    assert sorted(zipfile.ZipFile(tmp_path / "masks.zip").namelist()) == ["a.png", "b.png"]
    with pytest.raises(SystemExit) as done:
        main(["predict", "--run", str(run.path), "--images", str(tmp_path / "masks_none"), "--out", str(tmp_path)])
    assert done.value.code == 2 and "no such folder" in capsys.readouterr().err


def test_seg_config_errors_name_the_arm():
    from fer_lib.tasks.segment import seg_configs

    with pytest.raises(ConfigError, match="arms.a.train.augment: not used by face-parsing runs"):
        seg_configs(TINY["data"], {}, {**TINY["train"], "augment": {"hflip": 0.0}}, {}, {}, {"a": {}})
    with pytest.raises(ConfigError, match="arms.b.loss.dice_weight: expected a finite number >= 0"):
        seg_configs(TINY["data"], {}, TINY["train"], {}, {}, {"b": {"loss": {"dice_weight": -1}}})
    with pytest.raises(ConfigError, match="arms.a.train.select_metric: expected one of fscore"):
        seg_configs(TINY["data"], {}, {**TINY["train"], "select_metric": "macro_f1"}, {}, {}, {"a": {}})


def test_seeds_note_names_the_arms_that_ran_more_seeds():
    import pandas as pd

    from fer_lib.report.segmentation import seeds_note

    labels = {"dice_1_0": "Dice 1.0", "dice_2_0": "Dice 2.0", "focal": "Focal", "no_lmsa": "LMSA off"}
    seeds = pd.Series({"dice_2_0": 3, "dice_1_0": 3, "focal": 1, "no_lmsa": 1})
    assert seeds_note(seeds, labels) == "3 for Dice 2.0 and Dice 1.0, 1 for the other arms"
    assert seeds_note(pd.Series({"dice_1_0": 2, "focal": 2}), labels) == "2 per arm"


def test_label_map_equals_argmax_over_classes_first_of_ties():
    from fer_lib.tasks.segment import label_map

    torch.manual_seed(0)
    logits = torch.randn(2, 19, 33, 17)
    logits[0, 4, :5] = logits[0, 11, :5] = 50.0  # ties: the first class wins, as in argmax
    logits[1, :, 3] = 0.0  # all equal: class 0
    np.testing.assert_array_equal(label_map(logits).numpy(), logits.argmax(1).numpy())
    assert (label_map(logits)[0, :5] == 4).all() and (label_map(logits)[1, 3] == 0).all()
