"""A run kind registered from inside this test goes through every tool -- ``fer-train --plan`` and ``--status``,
training, ``fer-runs list``, the paper check, ``fer-runs publish`` and ``fer-runs verify`` -- with no other file of the
project changed: every per-kind decision those tools make comes from the kind's registration (``RunKind``)."""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from fer_lib import paths
from fer_lib.config import key_fields
from fer_lib.models.spec import ModelSpec
from fer_lib.runs import RunStore
from fer_lib.runs.versions import COMPUTE_VERSIONS
from fer_lib.tasks.kinds import RUN_KINDS, RunKind, register_run_kind
from fer_lib.tasks.sections import SECTION_BUILDERS, section_builder

SECTION = "99_toy"
FEATURES, CLASSES = 4, 3


@dataclass(frozen=True)
class ToyTrain:
    epochs: int = 3
    seed: int = 0
    lr: float = 0.5


@dataclass(frozen=True)
class ToyModel:
    arch: str = "toy_linear"
    width: int = FEATURES


@dataclass(frozen=True)
class ToyRunConfig:
    name: str
    model: ToyModel
    train: ToyTrain

    def key_dict(self) -> dict:
        return key_fields(self, drop=("name",))


class ToySpec(ModelSpec):
    """The toy's model: a linear layer, built without the project's model registry."""

    def build(self):
        return torch.nn.Linear(self.config.width, self.n_classes)


def load_toy_data(params: dict):
    """A fixed Gaussian blob per class: 30 train, 9 val and 9 test rows."""
    gen = np.random.default_rng(params["seed"])
    labels = np.arange(48) % CLASSES
    x = gen.normal(size=(48, FEATURES)) + 2.0 * np.eye(FEATURES)[labels]
    split = np.array(["train"] * 30 + ["val"] * 9 + ["test"] * 9)
    return SimpleNamespace(x=torch.tensor(x, dtype=torch.float32), y=torch.tensor(labels), split=split,
                           fingerprint=f"toy-{params['seed']}")


def train_toy(cfg: ToyRunConfig, store=None, data=None, env=None, progress=True):
    def compute(out, scratch):
        from safetensors.torch import save_file

        torch.manual_seed(cfg.train.seed)
        model = torch.nn.Linear(cfg.model.width, CLASSES)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.train.lr)
        train = torch.tensor(data.split == "train")
        for _ in range(cfg.train.epochs):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(data.x[train]), data.y[train]).backward()
            opt.step()
        with torch.no_grad():
            predicted = model(data.x).argmax(1)
        metrics = {part: {"accuracy": float((predicted == data.y)[torch.tensor(data.split == part)].float().mean())}
                   for part in ("val", "test")}
        (out / "metrics.json").write_text(json.dumps(metrics))
        save_file(model.state_dict(), str(out / "weights.safetensors"))

    return (store or RunStore()).run("toy", cfg.key_dict(), data.fingerprint, compute, env)


def keep_best_weights(runs: dict) -> set[str]:
    """The toy's publish rule: only the arm with the best validation accuracy keeps its weights."""
    return {max(runs, key=lambda name: runs[name].metrics["val"]["accuracy"])} if runs else set()


@pytest.fixture
def toy_kind(tmp_path, monkeypatch):
    register_run_kind(RunKind("toy", load_toy_data, train_toy, metric="accuracy", published_weights=keep_best_weights,
                              models=lambda cfg: [ToySpec("toy", cfg.model, (FEATURES,), CLASSES)]), version=1)

    @section_builder(SECTION, required=("data", "arms"))
    def toy_section(p, profile):
        return p["data"], {name: ("toy", ToyRunConfig(name, ToyModel(), ToyTrain(**arm)))
                           for name, arm in p["arms"].items()}

    params = tmp_path / "params" / "smoke"  # the project's smoke parameters, and the toy section's
    shutil.copytree(paths.params_dir() / "smoke", params)
    (params / f"{SECTION}.yaml").write_text(yaml.safe_dump(
        {"profile": "smoke", "data": {"seed": 0}, "arms": {"slow": {"lr": 0.05}, "fast": {"lr": 0.5, "epochs": 5}}}, sort_keys=False))
    monkeypatch.setenv("FER_PARAMS", str(tmp_path / "params"))
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("FER_RESULTS", "")
    yield tmp_path
    RUN_KINDS.pop("toy"), COMPUTE_VERSIONS.pop("toy"), SECTION_BUILDERS.pop(SECTION)


def run_cli(main, argv) -> int:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code or 0


def test_a_kind_registered_in_a_test_goes_through_every_tool(toy_kind, capsys, monkeypatch):
    from fer_lib.commands import runs, train
    from fer_lib.launch.plan import plan_profile
    from fer_lib.report.check import check_profile
    from fer_lib.runs import ledger

    tmp = toy_kind
    plan = plan_profile("smoke", [SECTION])
    assert [(p.name, p.kind) for p in plan.values()] == [("slow", "toy"), ("fast", "toy")]
    assert all(p.key and p.work == p.config.train.epochs * 30 for p in plan.values())

    assert run_cli(train.main, ["--profile", "smoke", "--plan", "--sections", SECTION]) == 0
    assert "99_toy 2" in capsys.readouterr().out  # runs to train per section
    assert run_cli(train.main, ["--profile", "smoke", "--status", "--sections", SECTION]) == 0
    capsys.readouterr()

    # the paper check steps the kind's model through its ModelSpec
    table, missing = check_profile("smoke", [SECTION], log=lambda *a: None)
    assert list(table["status"]) == ["ok", "ok"] and list(table["model"]) == ["toy_linear"] * 2
    assert table["params (M)"].iloc[0] == pytest.approx((FEATURES + 1) * CLASSES / 1e6)

    assert run_cli(train.main, ["--profile", "smoke", "--section", SECTION]) == 0
    assert run_cli(runs.main, ["list", "--profile", "smoke", "--sections", SECTION]) == 0
    out = capsys.readouterr().out
    assert "2 local" in out and "toy" in out

    # publish follows the kind's publish rule: only the best arm on validation keeps its weights
    tier = tmp / "results" / "smoke"
    assert run_cli(runs.main, ["publish", "--profile", "smoke", "--sections", SECTION, "--to", str(tier)]) == 0
    store = RunStore(published=[])
    scores = {p.name: store.find("toy", p.key).metrics["val"]["accuracy"] for p in plan.values()}
    best = max(scores, key=scores.get)
    for p in plan.values():
        assert (tier / "toy" / p.key / "weights.safetensors").is_file() == (p.name == best), p.name
    assert run_cli(runs.main, ["publish", "--profile", "smoke", "--sections", SECTION, "--to", str(tier)]) == 0
    assert "0 run(s) written, 2 already published" in capsys.readouterr().out

    # verify retrains a published run in a scratch store and records it in the ledger under its kind
    monkeypatch.setenv("FER_RESULTS", str(tier))
    key = plan["99_toy/slow"].key
    import shutil
    shutil.rmtree(store.path("toy", key))  # only the published copy is left
    assert run_cli(runs.main, ["verify", key, "--profile", "smoke"]) == 0
    (entry,) = ledger.read(tmp / "runs" / ledger.LEDGER)
    assert entry["kind"] == "toy" and entry["key"] == key and entry["bitwise"] and entry["passed"]


def test_the_model_spec_of_each_kind_is_what_the_run_builds():
    """The check and the makespan read a run's models only through ``ModelSpec``: a classifier spec builds its
    model and a batch that model takes; the audio-visual spec builds its classifier with the unimodal heads it
    trains; ``with_random_weights`` drops every weight source."""
    from fer_lib.config import AVModelConfig, ModelConfig
    from fer_lib.models.spec import AVSpec

    spec = ModelSpec("teacher", ModelConfig(arch="resnet18", pretrained="tv_in1k"), (1, 48, 48), 7)
    bare = spec.with_random_weights()
    assert bare.config.pretrained is None and bare.weight_sources()[""].kind == "random"
    assert spec.weight_sources()[""].kind == "timm"
    assert bare.build()(bare.example_batch(2)).shape == (2, 7)
    av = AVSpec("audio-visual", AVModelConfig(), ((257, 94), (1, 48, 48)), 6, unimodal_heads=True)
    model = av.with_random_weights().build()
    assert model.heads is not None and model(av.example_batch(2)).shape[0] == 2
    assert set(av.weight_sources()) == {"audio", "visual"} and av.pixels == 257 * 94
    assert dataclasses.replace(av, unimodal_heads=False).build().heads is None
