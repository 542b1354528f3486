"""The training engine: exact resume, DDP (two gloo processes) equal to one process, freezing, early stop."""
from __future__ import annotations

import os
import socket

import numpy as np
import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

from _tiny import assert_same_state, state, tiny_fit, train_cfg
from fer_lib.config.base import config_hash


class Interrupt(RuntimeError):
    pass


def _interrupt_at(call: int):
    n = {"calls": 0}

    def hook():
        n["calls"] += 1
        if n["calls"] == call:
            raise Interrupt(f"simulated crash in epoch {call}")
    return hook


@pytest.mark.parametrize("over", [
    {},  # augmentation on (random crop/flip/jitter drawn on the device), ArcFace margin ramp
    {"sampler": "class_balanced", "ema_decay": 0.9, "mixup_alpha": 0.4, "cutmix_alpha": 1.0, "grad_clip": 1.0},
    {"channels_last_cpu": True},  # the CUDA layout, on CPU (the smoke profile)
])
def test_resumed_training_equals_uninterrupted(tmp_path, over):
    model_a, res_a = tiny_fit(tmp_path / "a", **over)
    with pytest.raises(Interrupt):
        tiny_fit(tmp_path / "b", score_hook=_interrupt_at(3), **over)  # dies after 2 complete epochs
    assert (tmp_path / "b" / "last.pt").exists()
    model_b, res_b = tiny_fit(tmp_path / "b", **over)  # fresh process state, resumes at epoch 3
    assert len(res_b.history) == 3
    assert_same_state(state(model_a), state(model_b))
    pd.testing.assert_frame_equal(pd.DataFrame(res_a.history).drop(columns=["seconds", "train_seconds"]),
                                  pd.DataFrame(res_b.history).drop(columns=["seconds", "train_seconds"]))
    assert res_a.best_epoch == res_b.best_epoch


def test_channels_last_on_cpu_is_opt_in_keyed_and_trains_the_same_model(tmp_path):
    """``channels_last_cpu`` puts model and inputs in the channels-last layout on CPU; off (the default) it stays out
    of the run key, so runs stored before it keep theirs; on, the run is another key; its first epoch's loss agrees with
    the default layout's to float rounding, not bitwise (later epochs drift apart as rounding compounds)."""
    from fer_lib.config import key_fields
    from fer_lib.engine import channels_last_on

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert "channels_last_cpu" not in key_fields(train_cfg())
    assert key_fields(train_cfg(channels_last_cpu=True))["channels_last_cpu"] is True
    assert not channels_last_on(train_cfg(), cpu) and channels_last_on(train_cfg(), cuda)
    assert channels_last_on(train_cfg(channels_last_cpu=True), cpu)
    assert not channels_last_on(train_cfg(channels_last=False, channels_last_cpu=True), cpu)
    model_cl, res_cl = tiny_fit(tmp_path / "cl", epochs=2, channels_last_cpu=True)
    model_nchw, res_nchw = tiny_fit(tmp_path / "nchw", epochs=2)
    convs = [m.weight for m in model_cl.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] > 1]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not any(m.weight.is_contiguous(memory_format=torch.channels_last) and not m.weight.is_contiguous()
                   for m in model_nchw.modules() if isinstance(m, torch.nn.Conv2d))
    loss_cl, loss_nchw = res_cl.history[0]["train_loss"], res_nchw.history[0]["train_loss"]
    assert loss_cl != loss_nchw and abs(loss_cl - loss_nchw) < 1e-3 * abs(loss_nchw)


def test_the_tasks_end_of_epoch_work_counts_in_the_epochs_seconds_not_its_training_seconds(tmp_path, monkeypatch):
    """``train_seconds`` times the epoch's training steps alone: a task's end-of-epoch work (07's probes and test
    curve) is timed with validation. A clock that moves only inside ``end_epoch``: 0 s of training, 100 s in all."""
    import importlib
    import types

    from fer_lib.tasks.teacher import TeacherTask

    fit_module = importlib.import_module("fer_lib.engine.fit")  # the module (fer_lib.engine.fit is also the function)

    clock = {"now": 0.0}
    monkeypatch.setattr(fit_module, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"]))
    monkeypatch.setattr(TeacherTask, "end_epoch", lambda self, epoch: clock.update(now=clock["now"] + 100.0))
    _, res = tiny_fit(tmp_path, epochs=2)
    assert [(row["train_seconds"], row["seconds"]) for row in res.history] == [(0.0, 100.0), (0.0, 100.0)]


def test_different_seed_changes_training(tmp_path):
    model_a, _ = tiny_fit(tmp_path / "a", epochs=1)
    model_b, _ = tiny_fit(tmp_path / "b", epochs=1, seed=8)
    with pytest.raises(AssertionError):
        assert_same_state(state(model_a), state(model_b))


def test_frozen_backbone_is_not_updated(tmp_path):
    from fer_lib.models import create_model
    from fer_lib.config import ModelConfig
    from fer_lib.engine import seed_everything

    seed_everything(7)
    init = state(create_model(ModelConfig(arch="test_resnet"), 7))
    model, _ = tiny_fit(tmp_path, epochs=1, freeze_backbone_epochs=1)
    after = state(model)
    for k in init:
        if k.startswith("backbone.") and "running" not in k and "num_batches" not in k:
            np.testing.assert_array_equal(init[k], after[k], err_msg=k)
    assert not np.array_equal(init["head.weight"], after["head.weight"])


def test_early_stopping_stops_and_resume_does_not_continue(tmp_path):
    # a learning rate too small to move any fp32 weight (0 is rejected by the config) and no batch-norm statistics
    # (ConvNeXt): the score never improves after epoch 1
    frozen = dict(arch="test_convnext", epochs=6, early_stop_patience=1, lr=1e-30, min_lr=0.0)
    _, res = tiny_fit(tmp_path, **frozen)
    assert res.stopped_early and len(res.history) == 2
    _, again = tiny_fit(tmp_path, **frozen)
    assert again.stopped_early and len(again.history) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, workdir: str, out: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    from fer_lib.engine import DistEnv

    env = DistEnv.from_env("cpu")
    model, res = tiny_fit(workdir, arch="test_convnext", env=env, epochs=2, augment={
        "crop_scale": [1.0, 1.0], "hflip": 0.0, "brightness": 0.0, "contrast": 0.0})
    if rank == 0:
        torch.save({"state": state(model), "history": res.history}, out)
    torch.distributed.destroy_process_group()


@pytest.mark.slow(seconds=15)
def test_ddp_two_gloo_processes_equal_one_process(tmp_path):
    """Same global batches (DistributedSampler shards one permutation), averaged gradients: same weights.

    ConvNeXt uses LayerNorm, so per-rank batch statistics play no role; augmentation is off because each
    rank draws its own random numbers.
    """
    single, res1 = tiny_fit(tmp_path / "one", arch="test_convnext", epochs=2, augment={
        "crop_scale": [1.0, 1.0], "hflip": 0.0, "brightness": 0.0, "contrast": 0.0})
    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "two"), str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=False)
    assert_same_state(state(single), ddp["state"], atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose([h["val_macro_f1"] for h in res1.history],
                               [h["val_macro_f1"] for h in ddp["history"]], atol=1e-6)


def test_layer_wise_lr_decay_groups_cover_every_parameter_once():
    from fer_lib.config import ModelConfig, TrainConfig
    from fer_lib.engine.optim import make_optimizer
    from fer_lib.models import create_model

    m = create_model(ModelConfig(arch="test_vit", model_kwargs={"img_size": 32}), 7)
    opt = make_optimizer(m, TrainConfig(lr=1e-3, layer_decay=0.5))
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in m.parameters())  # each parameter exactly once
    scale = {id(p): g["lr_scale"] for g in opt.param_groups for p in g["params"]}
    assert scale[id(m.head.weight)] == 1.0
    first, last = m.backbone.blocks[0].attn.qkv.weight, m.backbone.blocks[-1].attn.qkv.weight
    n_blocks = len(m.backbone.blocks)
    assert scale[id(first)] < scale[id(last)] < 1.0
    assert scale[id(first)] / scale[id(last)] == pytest.approx(0.5 ** (n_blocks - 1))
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decay[id(m.backbone.blocks[0].norm1.weight)] == 0.0 and decay[id(first)] > 0


def test_vit_revisit_arms_override_only_the_schedule():
    from fer_lib.report.vit_revisit import schedule_table
    from fer_lib.tasks.teacher import arm_configs
    from fer_lib.tasks import teacher_configs

    base = teacher_configs({"n_train": 10}, {"epochs": 10, "plain_logits_epochs": 3},
                           {"vit_tiny": {"model": {"arch": "test_vit"}}})
    cfgs = arm_configs(base, ["vit_tiny"], {"initial": {}, "revisit": {"plain_logits_epochs": 6, "layer_decay": 0.75}})
    assert cfgs["vit_tiny", "initial"] == base["vit_tiny"]  # the initial arm is section 01's run
    rev = cfgs["vit_tiny", "revisit"]
    assert rev.train.plain_logits_epochs == 6 and rev.train.layer_decay == 0.75 and rev.train.epochs == 10
    assert rev.model == base["vit_tiny"].model
    assert schedule_table(cfgs).loc[("vit_tiny", "revisit"), "plain_logits_epochs"] == 6


def test_vit_revisit_studies_the_arcface_head_whatever_head_the_role_plays():
    from fer_lib.tasks.teacher import arm_configs
    from fer_lib.tasks import teacher_configs

    base = teacher_configs({"n_train": 10}, {"epochs": 10}, {
        "vit_tiny": {"label": "ViT Tiny", "model": {"arch": "test_vit", "head": "linear"}},
        "vit_tiny_arcface": {"label": "ViT Tiny (ArcFace)", "model": {"arch": "test_vit"}}})
    cfgs = arm_configs(base, ["vit_tiny"], {"initial": {}, "revisit": {"plain_logits_epochs": 6}})
    assert all(c.model.head == "arcface" for c in cfgs.values())
    # the initial arm is the role's ArcFace twin in section 01: the same run in the store (the same hash, not just
    # equal dicts: 0 == 0.0 but they hash differently)
    assert config_hash(cfgs["vit_tiny", "initial"].key_dict()) == config_hash(base["vit_tiny_arcface"].key_dict())


@pytest.mark.parametrize("profile", ["smoke", "real-cpu", "paper"])
def test_vit_revisit_initial_arm_is_section_01s_run_in_every_profile(profile):
    from fer_lib.config.params import load_params
    from fer_lib.tasks.sections import section_runs

    _, teachers = section_runs("01_teachers", load_params("params/{profile}/01_teachers.yaml", profile), profile)
    p03 = load_params("params/{profile}/03_vit_revisit.yaml", profile)
    _, arms = section_runs("03_vit_revisit", p03, profile)
    for v in p03["vits"]:
        twin = teachers[v][1] if teachers[v][1].model.head == "arcface" else teachers[f"{v}_arcface"][1]
        assert config_hash(arms[f"{v}/initial"][1].key_dict()) == config_hash(twin.key_dict()), v


def test_vit_revisit_headline_signs_and_initialisation():
    import pandas as pd

    from fer_lib.report.vit_revisit import headline
    from fer_lib.tasks.teacher import arm_configs
    from fer_lib.tasks import teacher_configs

    idx = pd.MultiIndex.from_tuples([("v", "initial"), ("v", "revisit"), ("v", "revisit + LLRD")])
    table = pd.DataFrame({"macro_f1": [0.50, 0.45, 0.48]}, index=idx)
    base = teacher_configs({"n_train": 10}, {"epochs": 2}, {"v": {"model": {"arch": "test_vit"}}})
    cfgs = arm_configs(base, ["v"], {"initial": {}, "revisit": {}, "revisit + LLRD": {"layer_decay": 0.75}})
    h = headline(table, ["v"], {"v": "ViT"}, cfgs)
    assert h["v_direction"] == "lowers" and h["v_delta"] == pytest.approx(0.05)
    assert h["v_llrd_direction"] == "raises" and h["v_llrd_delta"] == pytest.approx(0.03)
    assert h["vit_init"].startswith("random weights")
    assert "v_llrd_delta" not in headline(table.drop(("v", "revisit + LLRD")), ["v"], {"v": "ViT"})
    assert h["v_change"] == "lowers ViT's macro-F1 by 0.050"


def test_vit_revisit_headline_equal_arms_and_frozen_backbone_checkpoints():
    import pandas as pd

    from fer_lib.report.vit_revisit import headline
    from fer_lib.tasks.teacher import arm_configs
    from fer_lib.tasks import teacher_configs

    idx = pd.MultiIndex.from_tuples([("v", "initial"), ("v", "revisit"), ("v", "revisit + LLRD")])
    base = teacher_configs({"n_train": 10}, {"epochs": 3}, {"v": {"model": {"arch": "test_vit"}}})
    rev = {"freeze_backbone_epochs": 1}
    cfgs = arm_configs(base, ["v"], {"initial": {}, "revisit": rev, "revisit + LLRD": {**rev, "layer_decay": 0.75}})
    # both revisit arms chose epoch 1, inside the frozen-backbone phase: the same head-only checkpoint
    table = pd.DataFrame({"macro_f1": [0.087, 0.169, 0.169], "best_epoch": [2, 1, 1]}, index=idx)
    h = headline(table, ["v"], {"v": "ViT"}, cfgs)
    assert h["v_llrd_direction"] == "leaves"
    assert h["v_llrd_change"].startswith("leaves ViT's macro-F1 unchanged at 0.169 (both arms' best checkpoints")
    assert h["v_change"] == "raises ViT's macro-F1 by 0.082"
    # a checkpoint chosen after the backbone was unfrozen: no such explanation
    table.loc[("v", "revisit + LLRD"), "best_epoch"] = 3
    assert "frozen" not in headline(table, ["v"], {"v": "ViT"}, cfgs)["v_llrd_change"]


def test_seed_beside_keeps_a_multiindex_and_schedule_epochs_are_integers():
    import pandas as pd

    from fer_lib.report import seed_beside
    from fer_lib.report.vit_revisit import schedule_table
    from fer_lib.tasks.teacher import arm_configs
    from fer_lib.tasks import teacher_configs

    idx = pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")], names=["model", "arm"])
    ours = pd.DataFrame({"accuracy": [0.5, 0.6]}, index=idx)
    seed = pd.DataFrame({"accuracy": [0.7]}, index=pd.MultiIndex.from_tuples([("a", "x")], names=["model", "arm"]))
    out = seed_beside(ours, seed, "smoke")
    assert isinstance(out.index, pd.MultiIndex) and list(out.index.names) == ["model", "arm"]
    assert out.loc[("a", "x"), ("accuracy", "seed")] == 0.7 and pd.isna(out.loc[("a", "y"), ("accuracy", "seed")])
    # a metric the seed gives for no row (our interval, say) has our column alone: no column of dashes
    ours["± 95%"], seed["± 95%"] = [0.01, 0.02], [float("nan")]
    out = seed_beside(ours, seed, "smoke", metrics=["accuracy", "± 95%"])
    assert list(out.columns) == [("accuracy", "seed"), ("accuracy", "ours (smoke)"), ("± 95%", "ours (smoke)")]
    base = teacher_configs({"n_train": 10}, {"epochs": 5, "warmup_epochs": 1.0}, {"v": {"model": {"arch": "test_vit"}}})
    sched = schedule_table(arm_configs(base, ["v"], {"initial": {}, "revisit + LLRD": {"layer_decay": 0.75}}))
    assert sched["epochs"].dtype.kind == "i" and sched["warmup_epochs"].dtype.kind == "i"
    assert sched["layer_decay"].dtype.kind == "f" and sched.loc[("v", "revisit + LLRD"), "layer_decay"] == 0.75
