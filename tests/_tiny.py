"""A tiny, fast FER training setup shared by the engine tests (synthetic faces, a timm test model)."""
from __future__ import annotations

import numpy as np
import torch

from fer_lib.config import DataConfig, ModelConfig, TrainConfig, from_dict
from fer_lib.data import load_dataset
from fer_lib.engine import DistEnv, FitData, fit, seed_everything
from fer_lib.losses import ClassificationLoss
from fer_lib.models import create_model
from fer_lib.tasks.classifier import batch_transforms, datasets, evaluate_logits
from fer_lib.tasks.teacher import TeacherTask

DATA = DataConfig(n_train=128, n_val=48, n_test=48, seed=3)
NO_AUG = {"crop_scale": [1.0, 1.0], "hflip": 0.0, "brightness": 0.0, "contrast": 0.0}


def train_cfg(**over) -> TrainConfig:
    base = dict(epochs=3, batch_size=16, img_size=32, lr=2e-3, warmup_epochs=1, plain_logits_epochs=1,
                arcface_warmup_epochs=1, num_workers=0, eval_batch_size=64, seed=7)
    base.update(over)
    return from_dict(TrainConfig, base)


def tiny_fit(workdir, arch="test_resnet", env: DistEnv | None = None, score_hook=None, **over):
    """Build model + task from a fixed seed and run ``fit``; returns (model, FitResult)."""
    data = load_dataset(DATA)
    tcfg = train_cfg(**over)
    mcfg = ModelConfig(arch=arch, model_kwargs={"img_size": 32} if "vit" in arch else {})
    seed_everything(tcfg.seed)
    model = create_model(mcfg, len(data.classes))
    sets = datasets(data, tcfg)
    train_tf, eval_tf = batch_transforms(data, mcfg, tcfg)
    y_train = data.subset("train").labels
    def score(z):
        if score_hook is not None:
            score_hook()
        return evaluate_logits(z, sets["val"].labels, data.classes)

    task = TeacherTask(model, ClassificationLoss("ce", 0.1), mcfg, tcfg, len(data.classes), score=score)
    res = fit(task, FitData(sets["train"], y_train, sets["val"], train_tf, eval_tf), tcfg, workdir,
              env or DistEnv(), progress=False)
    return model, res


def state(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def assert_same_state(a: dict, b: dict, atol=0.0, rtol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=atol, rtol=rtol, err_msg=k)


torch.set_num_threads(1)
