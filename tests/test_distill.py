"""Student runs: replayable views, the teacher-output cache (same loss as running the teachers),
arm validation, and an end-to-end distillation on the synthetic many-class data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fer_lib.config import ConfigError, DistillConfig, ModelConfig, TrainConfig, from_dict
from fer_lib.data import load_dataset
from fer_lib.engine import DistEnv, FitData, Task, fit, seed_everything
from fer_lib.losses import ClassificationLoss
from fer_lib.models import create_model
from fer_lib.runs import RunStore
from fer_lib.tasks import teacher_configs, train_teacher
from fer_lib.tasks.distill import Distiller, InputAdapter, TeacherOutputCache, student_configs, train_student
from fer_lib.tasks.teacher import batch_transforms, datasets, evaluate_logits

DATA = {"source": "synthetic_cifar", "n_train": 128, "n_val": 42, "n_test": 42, "size": 32, "seed": 2}
STRONG = {"crop_scale": [0.6, 1.0], "hflip": 0.5, "brightness": 0.2, "contrast": 0.2, "auto_augment": "cifar10",
          "random_erasing": 0.5}
TRAIN = {"epochs": 2, "batch_size": 16, "img_size": 32, "num_workers": 0, "lr": 2e-3, "warmup_epochs": 0,
         "mixup_alpha": 0.8, "cutmix_alpha": 1.0, "augment": STRONG, "eval_batch_size": 64}


def _teacher_runs(tmp_path):
    tcfg = teacher_configs(DATA, dict(TRAIN, epochs=1),
                           {"a": {"model": {"arch": "test_resnet", "head": "linear", "in_chans": 3}},
                            "b": {"model": {"arch": "test_convnext", "head": "linear", "in_chans": 3}}})
    store = RunStore(tmp_path / "runs")
    return tcfg, {k: train_teacher(c, store, progress=False) for k, c in tcfg.items()}, store


class _Recorder(Task):
    """A task that records every training view and uses dropout (consuming the global RNG)."""

    def __init__(self, model, p, num_classes, score):
        super().__init__(model, num_classes, "recorder", score)
        self.drop, self.views = torch.nn.Dropout(p), []

    def forward(self, x, t, epoch):
        self.views.append(x.detach().clone())
        s = self.model(self.drop(x))
        return s, {"loss": torch.nn.functional.cross_entropy(s, t)}


def test_views_are_replayed_whatever_the_model_consumes(tmp_path):
    data = load_dataset(DATA)
    tcfg = from_dict(TrainConfig, TRAIN)
    mcfg = ModelConfig(arch="test_resnet", head="linear", in_chans=3)
    recs = []
    for p, arch in ((0.0, "test_resnet"), (0.5, "test_convnext")):
        seed_everything(0)
        sets = datasets(data, tcfg)
        rec = _Recorder(create_model(ModelConfig(arch=arch, head="linear", in_chans=3), len(data.classes)), p,
                        len(data.classes), lambda z: evaluate_logits(z, sets["val"].labels, data.classes))
        tf, etf = batch_transforms(data, mcfg, tcfg)
        fit(rec, FitData(sets["train"], sets["train"].labels, sets["val"], tf, etf), tcfg, tmp_path / arch,
            DistEnv(), progress=False)
        recs.append(rec.views)
    assert len(recs[0]) == len(recs[1]) == 2 * (128 // 16)
    for a, b in zip(*recs):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def _student(tmp_path, store, tcfg, method="ca_wkd", cache=True, roles=("a", "b")):
    cfgs = student_configs(DATA, TRAIN, {"arch": "test_efficientnet", "head": "linear", "in_chans": 3}, tcfg,
                           {"s": {"teachers": list(roles), "distill": {"method": method,
                                                                      "cache_teacher_outputs": cache}}})
    return train_student(cfgs["s"], store, progress=False)


def test_cached_teacher_outputs_give_the_same_training_as_running_the_teachers(tmp_path):
    tcfg, truns, store = _teacher_runs(tmp_path)
    fresh = _student(tmp_path, RunStore(tmp_path / "fresh"), tcfg, cache=False)
    first = _student(tmp_path, store, tcfg, cache=True)  # computes the teachers and fills the cache
    assert first.metrics["teacher_cache"]["hits"] == 0
    # another arm over the same views reads them: change only the method, so the cache is shared
    second = _student(tmp_path, store, tcfg, method="aver", cache=True)
    assert second.metrics["teacher_cache"]["misses"] == 0 and second.metrics["teacher_cache"]["hits"] == 2 * 16
    aver_fresh = _student(tmp_path, RunStore(tmp_path / "fresh"), tcfg, method="aver", cache=False)
    np.testing.assert_allclose(second.history["train_loss_kd"], aver_fresh.history["train_loss_kd"], rtol=1e-6)
    np.testing.assert_array_equal(second.arrays()["test_logits"], aver_fresh.arrays()["test_logits"])
    np.testing.assert_array_equal(first.arrays()["test_logits"], fresh.arrays()["test_logits"])


def test_one_step_loss_from_cache_equals_teacher_forward(tmp_path):
    torch.manual_seed(0)
    teachers = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5)) for _ in range(2)]
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    adapters = [torch.nn.Identity(), torch.nn.Identity()]
    ce = ClassificationLoss("ce", 0.1)
    x, t = torch.randn(4, 3, 2, 2), torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3]), 5).float()
    caches = [TeacherOutputCache(tmp_path / f"c{i}") for i in range(2)]
    live = Distiller(student, teachers, adapters, DistillConfig(method="ca_wkd"), ce, caches, steps_per_epoch=1)
    live.set_step(0, 0, x)
    _, loss_live = live(x, t, 0.0)
    live.end_epoch(0)
    reader = Distiller(student, teachers, adapters, DistillConfig(method="ca_wkd"), ce,
                       [TeacherOutputCache(tmp_path / f"c{i}") for i in range(2)], steps_per_epoch=1)
    reader.set_step(0, 0, x)
    _, loss_cached = reader(x, t, 0.0)
    assert [c.hits for c in reader.caches] == [1, 1]
    for k in loss_live:
        torch.testing.assert_close(loss_live[k], loss_cached[k], atol=0, rtol=0)
    reader.set_step(0, 0, x + 1)  # a different view: the fingerprint check refuses the cached logits
    reader(x + 1, t, 0.0)
    assert [c.misses for c in reader.caches] == [1, 1]
    # a single-teacher arm reuses the first teacher's cache written by the two-teacher arm
    single = Distiller(student, teachers[:1], adapters[:1], DistillConfig(method="kd"), ce,
                       [TeacherOutputCache(tmp_path / "c0")], steps_per_epoch=1)
    single.set_step(0, 0, x)
    single(x, t, 0.0)
    assert single.caches[0].hits == 1


def test_input_adapter_resizes_and_renormalises():
    a = InputAdapter(((0.5,), (0.25,)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), 16, 3)
    x = (torch.rand(2, 1, 8, 8) - 0.5) / 0.25
    y = a(x)
    assert y.shape == (2, 3, 16, 16)
    raw = torch.nn.functional.interpolate(x * 0.25 + 0.5, size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(y[:, 0:1], (raw - 0.485) / 0.229)
    same = InputAdapter(((0.5,), (0.25,)), ((0.5,), (0.25,)), None, 1)
    assert same(x) is x


def test_arm_validation_names_the_arm():
    tcfg = teacher_configs(DATA, TRAIN, {"a": {"model": {"arch": "test_resnet"}}, "b": {"model": {"arch": "test_resnet"}}})
    student = {"arch": "test_efficientnet", "head": "linear"}
    with pytest.raises(ConfigError, match="arms.x: method kd takes exactly one teacher"):
        student_configs(DATA, TRAIN, student, tcfg, {"x": {"teachers": ["a", "b"], "distill": {"method": "kd"}}})
    with pytest.raises(ConfigError, match="arms.x: method ca_wkd needs at least two teachers"):
        student_configs(DATA, TRAIN, student, tcfg, {"x": {"teachers": ["a"], "distill": {"method": "ca_wkd"}}})
    with pytest.raises(ConfigError, match=r"arms.x.teachers: \['c'\] not among"):
        student_configs(DATA, TRAIN, student, tcfg, {"x": {"teachers": ["c"], "distill": {"method": "kd"}}})
    with pytest.raises(ConfigError, match="^arms.x.distill.method: expected one of none, kd, dkd"):
        student_configs(DATA, TRAIN, student, tcfg, {"x": {"distill": {"method": "fitnet"}}})


@pytest.mark.parametrize("arm, message", [
    ({"train": {"select_metric": "acc"}},
     r"^arms\.x\.train\.select_metric: expected one of macro_f1, accuracy, minority_f1 .*, got 'acc'"),
    ({"distill": {"method": "kd", "temperature": -1}, "teachers": ["a"]},
     r"^arms\.x\.distill\.temperature: expected a finite number > 0, got -1"),
    ({"model": {"arch": "resnet_18"}},
     r"^arms\.x\.model\.arch: unknown model 'resnet_18'; expected a timm model name \(timm\.list_models\) or one of "),
    ({"model": {"head": "cosine"}}, r"^arms\.x\.model\.head: expected one of arcface, linear, got 'cosine'"),
    ({"teachers": ["a"], "distill": {"method": "ebkd"}}, r"^arms\.x: method ebkd needs at least two teachers"),
])
def test_every_error_building_an_arm_names_the_arm(arm, message):
    tcfg = teacher_configs(DATA, TRAIN, {"a": {"model": {"arch": "test_resnet"}}, "b": {"model": {"arch": "test_resnet"}}})
    student = {"arch": "test_efficientnet", "head": "linear"}
    arms = {"ok": {"teachers": ["a"], "distill": {"method": "kd"}}, "x": arm}
    with pytest.raises(ConfigError, match=message):
        student_configs(DATA, TRAIN, student, tcfg, arms)


def test_student_configs_check_every_teacher_model_before_any_training():
    from fer_lib.config import DataConfig, TeacherRunConfig

    good = teacher_configs(DATA, TRAIN, {"a": {"model": {"arch": "test_resnet"}}})["a"]
    bad = TeacherRunConfig("b", from_dict(DataConfig, DATA), ModelConfig(arch="xyz"), good.train)  # built by hand
    with pytest.raises(ConfigError, match=r"^teachers\.b\.model\.arch \(arms\.x\): unknown model 'xyz'"):
        student_configs(DATA, TRAIN, {"arch": "test_efficientnet"}, {"a": good, "b": bad},
                        {"ok": {"teachers": ["a"], "distill": {"method": "kd"}},
                         "x": {"teachers": ["a", "b"], "distill": {"method": "aver"}}})


def test_student_run_records_retention_and_is_cached(tmp_path):
    tcfg, truns, store = _teacher_runs(tmp_path)
    run = _student(tmp_path, store, tcfg, method="kd", roles=("a",))
    m = run.metrics
    assert m["retention"] == pytest.approx(m["test"]["accuracy"] / truns["a"].metrics["test"]["accuracy"])
    assert {"train_loss_kd", "train_loss_ce", "val_accuracy"} <= set(run.history.columns)
    again = _student(tmp_path, store, tcfg, method="kd", roles=("a",))
    assert again.hit


def test_paper_dkd_arms_ramp_over_20_of_240_epochs_as_the_dkd_reference():
    """mdistiller's DKD: warmup 20 of 240 CIFAR epochs; the paper profile scales it to its own epoch budget, on
    the DKD arms only (KD has no ramp in the reference)."""
    import yaml

    from fer_lib.paths import project_root

    p = yaml.safe_load((project_root() / "params" / "paper" / "05_dkd_sweep.yaml").read_text())
    configs = student_configs(p["data"], p["train"], p["student"], teacher_configs(p["data"], p["teacher_train"],
                                                                                   p["teachers"]), p["arms"])
    dkd = {n: c for n, c in configs.items() if c.distill.method == "dkd"}
    assert set(dkd) == {"v3", "v3_1"}
    for c in dkd.values():
        assert c.distill.warmup_epochs == pytest.approx(c.train.epochs * 20 / 240, abs=0.005)
    assert all(c.distill.warmup_epochs == 0 for n, c in configs.items() if n not in dkd)


@pytest.mark.parametrize("section", ["04_kd_cifar", "05_dkd_sweep"])
def test_deployment_builds_real_cpu_students_and_teachers_taken_from_section_01(section):
    """Section 08 measures 04/05's models; in real-cpu some teachers are 01's (``from: params/{profile}/...``)."""
    from fer_lib.report.deployment import section_models
    from fer_lib.config.params import load_params, params_file

    params = load_params(params_file(section, "real-cpu"))
    models = section_models(params, section[:2], "real-cpu")
    src = load_params("params/real-cpu/01_teachers.yaml")
    archs = {name.split("[")[-1].rstrip("]") for name in models if "[" in name}
    taken = {spec["teacher"] for spec in params["teachers"].values() if "from" in spec}
    assert taken and {src["teachers"][t]["model"]["arch"] for t in taken} <= archs
    assert any(name.endswith(f"student ({params['student']['arch']})") for name in models)


# ============================================================================ the numbers 04/05's prose cites
def test_dkd_headline_reads_differences_against_the_scratch_seed_spread():
    """Hand-worked: scratch seeds 0.30 and 0.34 (mean 0.32, spread 0.04); v4 at 0.40 is +0.08, more than the
    spread; β 8 -> 2 moves 0.33 -> 0.35 (+0.02), no more than it; a single scratch seed is not comparable."""
    import pandas as pd

    from fer_lib.report.distill import against_spread, dkd_headline

    class R:
        def __init__(self, acc):
            self.metrics = {"test": {"accuracy": acc}}

    table = pd.DataFrame({"accuracy": [0.30, 0.34, 0.31, 0.30, 0.33, 0.35, 0.40],
                          "val_accuracy": [0.31, 0.33, 0.30, 0.29, 0.32, 0.36, 0.41],
                          "method": ["none", "none", "kd", "kd", "dkd", "dkd", "kd"],
                          "retention": [np.nan, np.nan, 0.8, 0.75, 0.8, 0.85, 0.6]},
                         index=["scratch", "scratch_s1", "v1", "v2", "v3", "v3_1", "v4"])
    labels = {n: n.upper() for n in table.index}
    h = dkd_headline(table, {}, {"teacher": R(0.4), "teacher_strong": R(0.6)}, labels)
    assert h["scratch_acc"] == pytest.approx(0.32) and h["scratch_spread"] == pytest.approx(0.04)
    assert h["best_kd"] == "V4" and h["kd_gain"] == pytest.approx(0.08) and h["gain_vs_spread"] == "more than"
    assert h["n_kd"] == 5 and h["n_kd_above_scratch"] == 2  # v3.1 (0.35) and v4 (0.40) beat 0.34
    assert h["beta_relation"] == "raises" and h["beta_gain"] == pytest.approx(0.02)
    assert h["beta_vs_spread"] == "no more than"
    assert h["v4_minus_v2"] == pytest.approx(0.10) and h["v2_minus_v1"] == pytest.approx(-0.01)
    assert against_spread(-0.05, 0.04, 2) == "more than"
    assert against_spread(0.05, 0.04, 1).startswith("not comparable")


def test_the_distilled_arm_compared_with_scratch_is_picked_on_validation_not_test():
    """Hand-worked: B has the best test accuracy (0.45) but C the best validation accuracy (0.42 vs 0.40), so C
    (test 0.41) is the arm cited: +0.06 over the scratch mean 0.35, more than the 0.02 seed spread. In 04 the single-
    and multi-teacher winners are picked on validation too: A (val 0.39) over B among single teachers; C among many."""
    import pandas as pd

    from fer_lib.report.distill import kd_headline

    table = pd.DataFrame({"accuracy": [0.34, 0.36, 0.38, 0.45, 0.41, 0.37],
                          "val_accuracy": [0.35, 0.35, 0.39, 0.38, 0.42, 0.40],
                          "method": ["none", "none", "kd", "kd", "adaptive_alpha", "aver"]},
                         index=["scratch", "scratch_s1", "A", "B", "C", "D"])
    h = kd_headline(table, {n: n for n in table.index})
    assert h["best_kd"] == "C" and h["best_kd_acc"] == pytest.approx(0.41)
    assert h["kd_gain"] == pytest.approx(0.06) and h["gain_vs_spread"] == "more than"
    assert h["best_single"] == "A" and h["best_single_acc"] == pytest.approx(0.38)
    assert h["best_multi"] == "C" and h["n_kd"] == 4 and h["n_kd_above_scratch"] == 4


def test_retention_bars_show_only_distilled_arms_first_on_top_beside_the_seed():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from fer_lib.report.distill import retention_bars

    table = pd.DataFrame({"retention": [None, 0.99, 0.66]}, index=["scratch", "v1", "v4"])
    seed = pd.Series({"v1": 0.993, "v4": 0.994})
    fig = retention_bars(table, seed, {"scratch": "from scratch", "v1": "v1 KD", "v4": "v4 KD"}, "real-cpu")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["v4 KD", "v1 KD"]  # no teacher, no bar; v1 on top
    widths = sorted(round(p.get_width(), 3) for p in ax.patches)
    assert widths == [0.66, 0.99, 0.993, 0.994]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ours (real-cpu)", "seed 003"]
    plt.close(fig)


def test_temperature_plot_ticks_only_the_temperatures_and_labels_our_points():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fer_lib.report.distill import temperature_plot

    class R:
        def __init__(self, acc):
            self.metrics = {"test": {"accuracy": acc}}

    runs = {"t16": R(0.434), "t4": R(0.423), "t8": R(0.426)}
    fig = temperature_plot(runs, {"t4": 4.0, "t8": 8.0, "t16": 16.0}, {"t8": 0.74, "t16": 0.74}, "real-cpu")
    ax = fig.axes[0]
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "8", "16"]
    assert len(ax.xaxis.get_minorticklocs()) == 0
    assert [t.get_text() for t in ax.texts] == ["0.423", "0.426", "0.434"]
    assert list(ax.lines[0].get_xdata()) == [4.0, 8.0, 16.0] and list(ax.lines[1].get_xdata()) == [8.0, 16.0]
    plt.close(fig)
