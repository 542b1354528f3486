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
from fer_lib.tasks.classifier import batch_transforms, datasets, evaluate_logits

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


def _training(run_dir) -> str:
    import json

    return json.loads((run_dir / "provenance.json").read_text())["training_id"]


def test_student_run_records_retention_and_is_cached(tmp_path):
    tcfg, truns, store = _teacher_runs(tmp_path)
    run = _student(tmp_path, store, tcfg, method="kd", roles=("a",))
    m = run.metrics
    assert m["retention"] == pytest.approx(m["test"]["accuracy"] / truns["a"].metrics["test"]["accuracy"])
    assert m["teacher_trainings"] == {truns["a"].key: _training(truns["a"].path)}
    assert {"train_loss_kd", "train_loss_ce", "val_accuracy"} <= set(run.history.columns)
    again = _student(tmp_path, store, tcfg, method="kd", roles=("a",))
    assert again.hit


def test_a_teacher_stored_without_weights_is_trained_again_and_the_student_is_the_same(tmp_path):
    """A published teacher has no weights; a student trained from it retrains it (same key) into the local store,
    replacing the copy without weights, and trains exactly as from the original (same machine)."""
    tcfg, truns, store = _teacher_runs(tmp_path)
    reference = _student(tmp_path, RunStore(tmp_path / "ref", published=[tmp_path / "runs"]), tcfg, method="kd",
                         roles=("a",), cache=False)
    weights = truns["a"].path / "weights.safetensors"
    original, first_training = weights.read_bytes(), _training(truns["a"].path)
    weights.unlink()
    (truns["a"].path / "manifest.json").unlink()  # a local copy without weights, as `fer-runs import` of a published run
    from fer_lib.runs.manifest import write_manifest
    write_manifest(truns["a"].path)
    assert store.find("teacher", truns["a"].key) is not None  # readers of outputs still see it
    assert store.needing_weights({"teacher"}).find("teacher", truns["a"].key) is None
    run = _student(tmp_path, store, tcfg, method="kd", roles=("a",), cache=False)
    assert weights.read_bytes() == original and not list((store.root / "teacher").glob(".old-*"))
    retrained = _training(truns["a"].path)
    assert retrained != first_training and run.metrics["teacher_trainings"] == {truns["a"].key: retrained}
    np.testing.assert_array_equal(run.arrays()["test_logits"], reference.arrays()["test_logits"])


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
class FakeRun:
    """What the 04/05 headline reads of a student run: test / validation accuracy, retention, history."""

    def __init__(self, test, val, retention=0.8, epochs=3):
        self.key = f"run-{test}-{val}"
        self.metrics = {"test": {"accuracy": test}, "val": {"accuracy": val}, "retention": retention,
                        "best_epoch": epochs, "epochs_run": epochs}
        import pandas as pd

        self.history = pd.DataFrame({"epoch": range(1, epochs + 1), "val_accuracy": [val - 0.01 * (epochs - e)
                                                                                      for e in range(1, epochs + 1)]})


def fake_arms(spec: dict[str, tuple[str, list[float], list[float]]]):
    """{arm: (method, test per seed, val per seed)} -> (runs, configs, table) named as with_seeds names them."""
    from types import SimpleNamespace

    import pandas as pd

    runs, configs = {}, {}
    for arm, (method, tests, vals) in spec.items():
        for seed, (t, v) in enumerate(zip(tests, vals)):
            name = arm if seed == 0 else f"{arm}/seed{seed}"
            runs[name] = FakeRun(t, v, retention=np.nan if method == "none" else 0.8)
            configs[name] = SimpleNamespace(train=SimpleNamespace(seed=seed), distill=SimpleNamespace(method=method))
    table = pd.DataFrame({n: {"accuracy": r.metrics["test"]["accuracy"], "val_accuracy": r.metrics["val"]["accuracy"],
                              "method": configs[n].distill.method, "retention": r.metrics["retention"]}
                          for n, r in runs.items()}).T
    return runs, configs, table


def test_dkd_headline_states_each_difference_with_its_paired_interval_over_seeds():
    """Hand-worked, three matched seeds: v3.1 - v3 = (0.02, 0.03, 0.01): mean 0.02, sd 0.01, t(2) 4.303, half-width
    0.0248 -> the interval (-0.005, +0.045) holds zero: not detectable. v4 - v2 = (0.10, 0.11, 0.09): (+0.075, +0.125)
    -> the stronger teacher helps. Validation ranks v4 first among the distilled arms."""
    from fer_lib.report.distill import dkd_headline

    runs, configs, table = fake_arms({
        "scratch": ("none", [0.30, 0.34, 0.32], [0.31, 0.33, 0.32]),
        "v1": ("kd", [0.31, 0.30, 0.32], [0.30, 0.30, 0.30]),
        "v2": ("kd", [0.30, 0.31, 0.32], [0.29, 0.29, 0.29]),
        "v3": ("dkd", [0.33, 0.32, 0.34], [0.32, 0.32, 0.32]),
        "v3_1": ("dkd", [0.35, 0.35, 0.35], [0.36, 0.36, 0.36]),
        "v4": ("kd", [0.40, 0.42, 0.41], [0.41, 0.41, 0.41])})
    labels = {n: n.upper() for n in runs}
    h = dkd_headline(table, runs, {"teacher": FakeRun(0.4, 0.4), "teacher_strong": FakeRun(0.6, 0.6)}, configs, labels)
    assert h["beta_effect"] == "no difference detectable at this budget: +0.020 (95% CI -0.005 to +0.045, 3 seeds)"
    assert h["v4_effect"] == "the stronger teacher helps: +0.100 (95% CI +0.075 to +0.125, 3 seeds)"
    assert h["best_kd"] == "V4" and h["n_kd"] == 5 and h["scratch_ci"] == "0.320 ± 0.050 (n = 3)"
    # v4 - scratch = (0.10, 0.08, 0.09): mean 0.09, sd 0.01 -> (+0.065, +0.115)
    assert h["kd_vs_scratch"] == "a gain over the student from scratch: +0.090 (95% CI +0.065 to +0.115, 3 seeds)"
    assert h["n_still_improving"] == len(runs) and h["ordering_settled"].startswith("the same")


def test_the_distilled_arm_compared_with_scratch_is_picked_on_validation_and_blind_to_test():
    """B has the best test accuracy but C the best mean validation accuracy, so C is the arm cited; scrambling every
    test number leaves every selection (best distilled, best single, best multi) unchanged."""
    from fer_lib.report.distill import kd_headline

    spec = {"scratch": ("none", [0.34, 0.36], [0.35, 0.35]), "A": ("kd", [0.38, 0.39], [0.39, 0.39]),
            "B": ("kd", [0.45, 0.46], [0.38, 0.38]), "C": ("adaptive_alpha", [0.41, 0.42], [0.42, 0.42]),
            "D": ("aver", [0.37, 0.37], [0.40, 0.40])}
    runs, configs, table = fake_arms(spec)
    labels = {n: n for n in runs}
    h = kd_headline(table, runs, configs, labels)
    assert (h["best_kd"], h["best_single"], h["best_multi"]) == ("C", "A", "C")
    assert h["best_kd_acc"] == pytest.approx(0.415)
    rng = np.random.default_rng(0)
    scrambled = {a: (m, list(rng.random(2)), v) for a, (m, _, v) in spec.items()}
    runs2, configs2, table2 = fake_arms(scrambled)
    h2 = kd_headline(table2, runs2, configs2, labels)
    assert (h2["best_kd"], h2["best_single"], h2["best_multi"]) == ("C", "A", "C")


def test_arm_summary_gives_each_arm_the_mean_of_its_seeds_and_the_t_interval():
    """Hand-worked: v2's seeds score 0.36, 0.38, 0.40 -> mean 0.38, sd 0.02, t(2) 4.303 -> half-width 0.0497; v1 ran
    one seed (no interval). The row is the arm, named as its seed-0 run, so the seed's table lines up with it."""
    import pandas as pd

    from fer_lib.report.distill import arm_summary

    def run(acc, ret, best, epochs=4):
        return {"method": "kd", "teachers": "teacher", "T": 4.0, "accuracy": acc, "macro_f1": acc - 0.1,
                "val_accuracy": acc + 0.01, "retention": ret, "best epoch": best, "epochs run": epochs}

    table = pd.DataFrame({"v2": run(0.36, 0.90, 4), "v1": run(0.30, 0.75, 3), "v2/seed1": run(0.38, 0.95, 4),
                          "v2/seed2": run(0.40, 1.00, 3)}).T
    out = arm_summary(table)
    assert list(out.index) == ["v2", "v1"]
    assert out.loc["v2", "accuracy"] == pytest.approx(0.38) and out.loc["v2", "retention"] == pytest.approx(0.95)
    assert out.loc["v2", "± 95%"] == pytest.approx(4.302653 * 0.02 / 3 ** 0.5, rel=1e-5)
    assert out.loc["v2", "seeds"] == 3 and out.loc["v2", "best epoch"] == "4, 4, 3" and out.loc["v2", "epochs run"] == 4
    assert out.loc["v1", "seeds"] == 1 and pd.isna(out.loc["v1", "± 95%"]) and out.loc["v1", "accuracy"] == 0.30


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


def test_teachers_read_says_whether_students_read_the_teachers_the_table_shows():
    from types import SimpleNamespace

    from fer_lib.report.distill import teachers_read

    def run(metrics):
        return SimpleNamespace(metrics=metrics)

    teachers = {"a": run({"test": {"accuracy": 0.60}}), "b": run({"test": {"accuracy": 0.50}})}
    configs = {"s0": SimpleNamespace(teacher_roles=("a", "b")), "s1": SimpleNamespace(teacher_roles=("a",)),
               "scratch": SimpleNamespace(teacher_roles=())}
    same = {"s0": run({"teacher_test_accuracy": [0.60, 0.50]}), "s1": run({"teacher_test_accuracy": [0.60]}),
            "scratch": run({})}
    assert teachers_read(same, configs, teachers) == ("all 2 distilled students read teachers with the test accuracy "
                                                      "the table shows")
    other = {**same, "s0": run({"teacher_test_accuracy": [0.60, 0.486]})}
    text = teachers_read(other, configs, teachers)
    assert text.startswith("1 of the 2 distilled students read a teacher trained again") and text.endswith("0.014")
    assert teachers_read({"scratch": run({})}, configs, teachers) == "no student here reads a teacher"
    unrecorded = {**other, "s1": run({"teacher_test_accuracy": [0.60, 0.50]})}  # two values for its one teacher
    text = teachers_read(unrecorded, configs, teachers)
    assert text.startswith("1 of the 2 distilled students") and text.endswith(
        "up to 0.014; 1 did not record the teachers they read (s1)")
    assert teachers_read({**same, "s1": run({})}, configs, teachers) == (
        "1 of the 2 distilled students read teachers with the test accuracy the table shows; 1 did not record the "
        "teachers they read (s1)")
