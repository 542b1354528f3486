"""Extension points are declared: a new distillation method, run kind or training section is one function (or
module) and one registration. Shown with a toy of each."""
from __future__ import annotations

import json

import pytest
import torch

from fer_lib.engine import Task
from fer_lib.losses.methods import METHODS, register_method
from fer_lib.runs import RunStore
from fer_lib.runs.versions import COMPUTE_VERSIONS
from fer_lib.tasks.kinds import RUN_KINDS, RunKind, register_run_kind
from fer_lib.tasks.sections import SECTION_BUILDERS, section_builder, section_runs, train_run


@pytest.fixture
def toy_method():
    @register_method("toy_mse", min_teachers=1)
    def toy_mse(logits_student, logits_teachers, target, cfg, ce, epoch):
        mean_teacher = torch.stack(logits_teachers).mean(0)
        return {"loss_ce": ce, "loss_mse": ((logits_student - mean_teacher) ** 2).mean()}
    yield "toy_mse"
    METHODS.pop("toy_mse")


def test_a_new_distillation_method_is_one_function_and_one_registration(toy_method):
    from fer_lib.config import ConfigError, DistillConfig
    from fer_lib.losses import ClassificationLoss
    from fer_lib.tasks.distill import Distiller

    cfg = DistillConfig(method=toy_method)  # validation knows it
    teachers = [torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)]
    student = torch.nn.Linear(4, 3)
    task = Distiller(student, teachers, [torch.nn.Identity()] * 2, cfg, ClassificationLoss("ce"), num_classes=3)
    x, target = torch.randn(5, 4), torch.eye(3)[[0, 1, 2, 0, 1]]
    logits, losses = task(x, target, 0.0)
    expected = ((student(x) - (teachers[0](x) + teachers[1](x)) / 2) ** 2).mean()
    assert set(losses) == {"loss_ce", "loss_mse"} and torch.allclose(losses["loss_mse"], expected)
    with pytest.raises(ConfigError, match="method: expected one of none, kd, .*, toy_mse"):
        DistillConfig(method="not_registered")
    assert METHODS[toy_method].check_teachers(0) == f"method {toy_method} needs teachers"


class ToyTask(Task):
    def forward(self, x, target, epoch):
        logits = self.model(x)
        return logits, {"loss": torch.nn.functional.cross_entropy(logits, target)}


def train_toy(cfg: dict, store=None, data=None, env=None, progress=True):
    def compute(out, scratch):
        (out / "metrics.json").write_text(json.dumps({"test": {"accuracy": cfg["value"] * data["scale"]}}))
    return store.run("toy", cfg, f"toy-data-{data['scale']}", compute)


@pytest.fixture
def toy_kind():
    register_run_kind(RunKind("toy", load_data=lambda p: {"scale": p["scale"]}, train=train_toy), version=1)

    @section_builder("99_toy", required=("data", "arms"))
    def toy_section(p, profile):
        return p["data"], {name: ("toy", {"value": v}) for name, v in p["arms"].items()}
    yield "toy"
    RUN_KINDS.pop("toy"), COMPUTE_VERSIONS.pop("toy"), SECTION_BUILDERS.pop("99_toy")


def test_a_new_run_kind_and_section_are_one_module_and_one_registration_each(toy_kind, tmp_path):
    from fer_lib.tasks.sections import load_data

    data_params, runs = section_runs("99_toy", {"data": {"scale": 2}, "arms": {"a": 0.25}}, "smoke")
    kind, cfg = runs["a"]
    store = RunStore(tmp_path)
    run = train_run(kind, cfg, load_data(kind, data_params), store=store)
    assert run.metrics["test"]["accuracy"] == 0.5 and run.path.parent.name == "toy"
    assert train_run(kind, cfg, load_data(kind, data_params), store=store).hit
    # its key has a compute version of its own: bumping it moves only toy keys
    key = store.key("toy", cfg, "fp")
    teacher_key = store.key("teacher", cfg, "fp")
    COMPUTE_VERSIONS["toy"] = 2
    assert store.key("toy", cfg, "fp") != key and store.key("teacher", cfg, "fp") == teacher_key


def test_a_task_declares_every_hook_with_a_no_op_default():
    task = ToyTask(torch.nn.Linear(2, 2), num_classes=2, name="toy")
    for hook, args in [("set_step", (0, 0, None)), ("modify_grads", (1,)), ("after_step", (1,)),
                       ("end_epoch", (0,)), ("load_extra_state", ({},))]:
        assert getattr(task, hook)(*args) is None
    assert task.epoch_extras(1) == {} and task.extra_state() == {} and task.frozen_parameters() == []
    with pytest.raises(NotImplementedError, match="score"):
        task.validate(task.model, lambda m: None)


LAYERS = [{"(root)"}, {"metrics", "losses"}, {"config"}, {"models", "data"}, {"runs", "engine"}, {"tasks"},
          {"launch"}, {"report", "plots"}, {"commands"}]


def test_layers_import_one_way():
    """Every import between fer_lib's subpackages, top-level or inside a function, goes down the layers of
    CONTRIBUTING.md (so there is no import cycle either)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "fer_lib"
    rank = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}
    wrong = []
    for f in root.rglob("*.py"):
        parts = f.relative_to(root).parts
        here = parts[0] if len(parts) > 1 else "(root)"
        for node in ast.walk(ast.parse(f.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 0:
                if not (node.module or "").startswith("fer_lib."):
                    continue
                target = node.module.split(".")[1]
            elif node.level == 1:
                target = here if len(parts) > 1 else (node.module or "(root)").split(".")[0]
            else:
                target = (node.module or "(root)").split(".")[0]
            target = target if target in rank else "(root)"
            if rank[target] > rank[here]:
                wrong.append(f"{f.relative_to(root)}:{node.lineno} ({here}) imports {target}")
    assert not wrong, "imports that go up a layer:\n" + "\n".join(wrong)
