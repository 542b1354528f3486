"""Ensemble fusion, weight search (against brute force), selection order; the latency harness."""
from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import torch

from fer_lib.engine.latency import measure_latency, measure_throughput, model_size
from fer_lib.metrics import classification_metrics, ece, softmax
from fer_lib.models.ensemble import (ProbabilityEnsemble, fuse_probs, search_weights, select_best, selection_key,
                                     weight_grid)

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def _probs(n=300, seed=0, noise=1.5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, n)
    members = [softmax(np.eye(7)[y] * 2.0 + rng.normal(0, noise, (n, 7))) for _ in range(3)]
    return members, y


def test_fusion_is_normalised_and_scale_free():
    (p1, p2, _), _ = _probs()
    f = fuse_probs([p1, p2], [2, 6])
    np.testing.assert_allclose(f, 0.25 * p1 + 0.75 * p2)
    np.testing.assert_allclose(f.sum(1), 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        fuse_probs([p1, p2], [1, -1])
    with pytest.raises(ValueError):
        fuse_probs([p1, p2], [0, 0])


@pytest.mark.parametrize("k, expected", [(2, 9), (3, 36)])
def test_weight_grid_is_the_simplex_lattice_with_every_member_present(k, expected):
    g = weight_grid(k, 0.1)
    assert g.shape == (expected, k)
    np.testing.assert_allclose(g.sum(1), 1.0)
    assert len({tuple(np.round(r, 6)) for r in g}) == expected and (g >= 0.1 - 1e-9).all()


def test_weight_grid_min_weight_zero_is_the_whole_lattice_and_impossible_bounds_are_an_error():
    g = weight_grid(2, 0.1, min_weight=0.0)
    assert g.shape == (11, 2) and {tuple(r) for r in np.round(g, 6)} >= {(0.0, 1.0), (1.0, 0.0)}
    assert weight_grid(3, 0.1, min_weight=0.3).tolist() == [[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.4, 0.3, 0.3]]
    with pytest.raises(ValueError, match="min_weight|>= 0.5"):
        weight_grid(3, 0.1, min_weight=0.5)


@pytest.mark.parametrize("k", [2, 3])
def test_search_matches_brute_force(k):
    members, y = _probs()
    members = members[:k]
    best_w, table = search_weights(members, y, CLASSES, 0.1)
    # brute force, written independently: every lattice point, compared with explicit lexicographic rules
    best, best_m = None, None
    for c in itertools.product(range(11), repeat=k):
        if sum(c) != 10 or min(c) == 0:
            continue
        w = np.array(c) / 10
        p = sum(wi * pi for wi, pi in zip(w, members))
        m = classification_metrics(y, p.argmax(1), CLASSES)
        cand = (round(m["macro_f1"], 4), round(m["minority_f1"], 4), -round(ece(p, y), 4), round(m["accuracy"], 4))
        if best_m is None or cand > best_m:
            best, best_m = w, cand
    np.testing.assert_allclose(best_w, best)
    assert len(table) == len(weight_grid(k))


def test_selection_order_macro_then_minority_then_ece_then_accuracy():
    base = {"macro_f1": 0.7, "minority_f1": 0.6, "ece": 0.1, "accuracy": 0.8}
    cands = {"a": base, "b": dict(base, macro_f1=0.71, minority_f1=0.1, ece=0.9, accuracy=0.1)}
    assert select_best(cands) == "b"
    cands = {"a": base, "b": dict(base, minority_f1=0.61, ece=0.9)}
    assert select_best(cands) == "b"
    cands = {"a": base, "b": dict(base, ece=0.05, accuracy=0.1)}
    assert select_best(cands) == "b"
    cands = {"a": base, "b": dict(base, accuracy=0.81)}
    assert select_best(cands) == "b"
    # differences below 4 decimals are ties and fall through to the next criterion
    cands = {"a": dict(base, macro_f1=0.70001), "b": dict(base, minority_f1=0.7)}
    assert select_best(cands) == "b"
    assert selection_key(base) < selection_key(dict(base, macro_f1=0.6))


def test_probability_ensemble_module_matches_fusion():
    torch.manual_seed(0)
    members = [torch.nn.Linear(5, 7), torch.nn.Linear(5, 7)]
    x = torch.randn(4, 5)
    ens = ProbabilityEnsemble(members, [0.7, 0.3])
    expected = fuse_probs([m(x).softmax(-1).detach().numpy() for m in members], [0.7, 0.3])
    np.testing.assert_allclose(ens(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


class _SlowThenFast(torch.nn.Module):
    def __init__(self, slow_calls: int):
        super().__init__()
        self.calls, self.slow_calls = 0, slow_calls
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x):
        self.calls += 1
        time.sleep(0.03 if self.calls <= self.slow_calls else 0.001)
        return self.lin(x)


def test_latency_excludes_warmup_and_reports_median_p90():
    m = _SlowThenFast(slow_calls=5)
    lat = measure_latency(m, torch.randn(1, 3), warmup=5, runs=20)
    assert m.calls == 25 and lat["runs"] == 20 and lat["warmup"] == 5
    assert 1.0 <= lat["median_ms"] < 10.0  # the slow warm-up calls are not timed
    assert lat["p90_ms"] >= lat["median_ms"]
    m2 = _SlowThenFast(slow_calls=5)
    assert measure_latency(m2, torch.randn(1, 3), warmup=0, runs=10)["p90_ms"] > 20.0  # no warm-up: slow calls count


def test_throughput_and_size():
    m = torch.nn.Linear(100, 10)
    assert model_size(m)["params_m"] == pytest.approx(1010 / 1e6)
    assert model_size(m)["size_mb"] == pytest.approx(1010 * 4 / 2**20)
    ips = measure_throughput(m, torch.randn(64, 100), warmup=2, runs=5)
    assert ips > 0


def _fake_teachers(store):
    """Teacher runs ``a`` and ``b`` in ``store`` holding only what an ensemble reads."""
    from fer_lib.runs import write_json_atomic

    (a, b, _), y = _probs()

    def fake_teacher(name, p):
        def compute(out, scratch):
            write_json_atomic(out / "metrics.json", {"classes": list(CLASSES)})
            logits = np.log(p)
            np.savez(out / "outputs.npz", val_logits=logits, val_labels=y, test_logits=logits, test_labels=y)
        return store.run("teacher", {"name": name}, "fixture", compute)

    return {"a": fake_teacher("a", a), "b": fake_teacher("b", b)}


def test_ensemble_run_is_cached_and_its_search_space_is_part_of_the_key(tmp_path):
    from fer_lib.runs import RunStore
    from fer_lib.tasks.ensemble import ensemble_run

    store = RunStore(tmp_path)
    teachers = _fake_teachers(store)
    first = ensemble_run(["a", "b"], teachers, store=store)
    again = ensemble_run(["a", "b"], teachers, store=store)
    assert not first.hit and again.hit and again.key == first.key
    assert min(first.metrics["weights"]) >= 0.1 - 1e-9
    whole = ensemble_run(["a", "b"], teachers, store=store, min_weight=0.0)
    assert not whole.hit and whole.key != first.key
    assert len(whole.file("search.csv").read_text().splitlines()) == 1 + 11


# ----------------------------------------------------------------------------- parameter checks (hardening)
@pytest.mark.parametrize("weights, shown", [([-1, -1], r"\[-1, -1\]"), ([0, 0], r"\[0, 0\]"),
                                            ([float("nan"), 1.0], r"\[nan, 1.0\]"), ([1, -0.5], r"\[1, -0.5\]"),
                                            ([1, 1, 1], r"\[1, 1, 1\]")])
def test_bad_fixed_weights_are_an_error_before_normalising(tmp_path, weights, shown):
    from fer_lib.runs import RunStore
    from fer_lib.tasks.ensemble import ensemble_run, ensemble_runs

    (a, b, _), _ = _probs()
    with pytest.raises(ValueError, match=r"weights: expected 2 finite, non-negative numbers, not all zero, got " + shown):
        fuse_probs([a, b], weights)
    store = RunStore(tmp_path)
    teachers = _fake_teachers(store)
    with pytest.raises(ValueError, match=r"^ensembles\.pair\.weights: expected 2 finite, non-negative numbers, not all "
                                         r"zero, got " + shown):
        ensemble_runs({"pair": {"members": ["a", "b"], "weights": weights}}, teachers, store=store)
    with pytest.raises(ValueError, match=r"^weights: expected 2 finite"):
        ensemble_run(["a", "b"], teachers, weights=weights, store=store)
    assert not (tmp_path / "ensemble").exists()  # nothing stored
    with pytest.raises(ValueError, match="weights: expected"):
        ProbabilityEnsemble([torch.nn.Identity(), torch.nn.Identity()], weights)


@pytest.mark.parametrize("step", [0, 0.0, -0.1, 0.3, 1.5, float("nan"), 0.15])
def test_grid_step_must_divide_one_evenly(tmp_path, step):
    from fer_lib.runs import RunStore
    from fer_lib.tasks.ensemble import ensemble_runs

    msg = (r"step: expected a step in \(0, 1\] that divides 1 evenly \(0\.1, 0\.2, 0\.25, 0\.5, \.\.\.\), got "
           + repr(step).replace(".", r"\.").replace("-", r"\-"))
    with pytest.raises(ValueError, match="^" + msg):
        weight_grid(2, step)
    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match="^" + msg):
        ensemble_runs({"pair": {"members": ["a", "b"]}}, _fake_teachers(store), step, store=store)


@pytest.mark.parametrize("step, n", [(0.1, 10), (0.2, 5), (0.25, 4), (0.5, 2), (1.0, 1), (1 / 3, 3), (0.05, 20)])
def test_grid_steps_that_divide_one(step, n):
    g = weight_grid(2, step, min_weight=0.0)
    assert g.shape == (n + 1, 2)
    np.testing.assert_allclose(g.sum(1), 1.0)


@pytest.mark.parametrize("min_weight", [-0.1, 1.5, float("nan")])
def test_min_weight_range(min_weight):
    with pytest.raises(ValueError, match=r"^min_weight: expected a finite number in \[0, 1\], got " + str(min_weight)):
        weight_grid(2, 0.1, min_weight)


def test_ensemble_members_are_checked_for_every_ensemble_before_any_runs(tmp_path):
    from fer_lib.runs import RunStore
    from fer_lib.tasks.ensemble import ensemble_runs

    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match=r"^ensembles\.second\.members: \['c'\] are not teachers; expected some of a, b"):
        ensemble_runs({"first": {"members": ["a", "b"]}, "second": {"members": ["a", "c"]}}, _fake_teachers(store),
                      store=store)
    assert not (tmp_path / "ensemble").exists()  # "first" was not computed either


class _StubRun:
    def __init__(self, logits=None, labels=None, metrics=None):
        self._a = {"test_logits": logits, "test_labels": labels}
        self.metrics = metrics or {}

    def arrays(self):
        return self._a


def test_member_diversity_hand_worked():
    """Five images, labels 0..4 (one-hot logits of the predictions); A right on 0,1,2; B right on 0,3; C on 0,1."""
    from fer_lib.report.ensembles import member_diversity

    y = np.array([0, 1, 2, 3, 4])
    runs = {k: _StubRun(np.eye(5)[np.array(p)], y) for k, p in
            {"A": [0, 1, 2, 0, 0], "B": [0, 0, 0, 3, 1], "C": [0, 1, 0, 0, 2]}.items()}
    ens = {"AB": _StubRun(metrics={"test": {"accuracy": 0.6}}), "ABC": _StubRun(metrics={"test": {"accuracy": 0.6}})}
    df = member_diversity({"AB": ["A", "B"], "ABC": ["A", "B", "C"]}, runs, ens)
    ab, abc = df.loc["AB"], df.loc["ABC"]
    assert ab["best member acc"] == 0.6 and ab["ensemble acc"] == 0.6
    # A and B differ on images 1, 2, 3, 4 -> 4/5; A's errors (3, 4): B is right on 3 -> 1 of 2 shared; oracle 4/5
    assert ab["disagreement"] == pytest.approx(0.8) and ab["shared errors"] == pytest.approx(0.5)
    assert ab["oracle acc"] == pytest.approx(0.8) and ab["weakest member acc"] == pytest.approx(0.4)
    # pairs AB 4/5, AC (images 2, 4) 2/5, BC (1, 3, 4) 3/5 -> mean 0.6; A's errors 3, 4: shared by B and C on 4 only
    assert abc["disagreement"] == pytest.approx(0.6) and abc["shared errors"] == pytest.approx(0.5)
    assert abc["oracle acc"] == pytest.approx(0.8) and abc["weakest member acc"] == pytest.approx(0.4)


def test_ece_artefact_demo_drops_the_arcface_scale_only_from_arcface_members():
    """One image of class 0. ArcFace member A: cosines (0.5, -0.5) at s 30 -> logits (15, -15); linear member B:
    logits (ln 3, 0) -> p0 = 3/4 with or without any scale. Equal weights.
    (a) p0 = (sigmoid(30) + 3/4) / 2 ~ 0.875; (b) A at s 1: p0 = sigmoid(1) = 0.731059 -> (0.731059 + 0.75) / 2."""
    from fer_lib.report.ensembles import ece_artefact_demo

    y = np.array([0])
    a, b = _StubRun(np.array([[15.0, -15.0]]), y), _StubRun(np.array([[np.log(3.0), 0.0]]), y)
    df = ece_artefact_demo([a, b], [0.5, 0.5], [30.0, 1.0])
    conf = df["mean confidence"].to_numpy()
    assert conf[0] == pytest.approx((1 / (1 + np.exp(-30.0)) + 0.75) / 2, abs=1e-9)
    assert conf[1] == pytest.approx((1 / (1 + np.exp(-1.0)) + 0.75) / 2, abs=1e-9)
    assert df["accuracy"].tolist() == [1.0, 1.0]
    assert df["ECE (15 bins)"].to_numpy() == pytest.approx(1 - conf)  # one image: |accuracy - confidence|
    with pytest.raises(ValueError, match=r"^scales: expected one per member \(2\), got 1"):
        ece_artefact_demo([a, b], [0.5, 0.5], [30.0])


def test_arcface_versions_swap_a_linear_member_for_its_arcface_twin_where_01_trained_one():
    from types import SimpleNamespace as NS

    from fer_lib.report.ensembles import arcface_versions

    cfg = {"rn": NS(model=NS(head="linear")), "rn_arcface": NS(model=NS(head="arcface")),
           "b3": NS(model=NS(head="arcface")), "b3_linear": NS(model=NS(head="linear")), "vit": NS(model=NS(head="linear"))}
    assert arcface_versions(["rn", "b3", "vit"], cfg) == ["rn_arcface", "b3", "vit"]


def test_logit_scale_is_arcface_s_for_an_arcface_head_and_1_for_a_linear_one():
    from fer_lib.config import ModelConfig

    assert ModelConfig(head="arcface", arcface_s=16.0).logit_scale == 16.0
    assert ModelConfig(head="linear", arcface_s=16.0).logit_scale == 1.0
    assert "logit_scale" not in ModelConfig().__dataclass_fields__  # derived, not part of a run's key
