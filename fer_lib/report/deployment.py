"""Section 08: parameters, weights size, batch-1 latency and batch-64 throughput, measured once per machine.

A measurement is kept, keyed by the model's architecture (its module tree), input shape, timing settings and the
hardware it ran on (the CPU or GPU model): ``cached_benchmark`` reads it back instead of timing again, from the local
store (``<run store>/measurements/deployment.json``) or a published tier (``results/<profile>/measurements/``,
written by ``fer-runs publish``; ``fer_lib.runs.measurements``); it measures only what neither holds for this hardware, or everything when
asked (``remeasure``). The page says on which hardware each number was measured.
"""
from __future__ import annotations

import hashlib
import json

import pandas as pd
import torch

from .. import paths
from ..runs import measurements

from ..engine.latency import measure_latency, measure_throughput, model_size
from ..models import create_model
from ..models.ensemble import ProbabilityEnsemble


def teacher_model(cfg, num_classes: int, device) -> torch.nn.Module:
    """The teacher's architecture at its run's configuration, with untrained weights: size, latency and throughput
    depend on the architecture, not on the weights' values, so section 08 reads no weights (published runs hold
    none)."""
    return create_model(cfg.model, num_classes).to(device).eval()


def segmenter_models(params: dict) -> dict[str, tuple[torch.nn.Module, tuple[int, ...]]]:
    """Section 06's face parsers (with and without LMSA) at their input size, keyed ``"06: <model>"``."""
    from ..config import SegModelConfig, TrainConfig, deep_merge, from_dict
    from ..data.synthetic import PART_CLASSES

    out = {}
    size = from_dict(TrainConfig, params["train"], "train").img_size
    for lmsa in (True, False):
        cfg = from_dict(SegModelConfig, deep_merge(params["model"], {"lmsa": lmsa}), "model")
        name = "06: MicroSegFormer" + (" + LMSA" if lmsa else " (LMSA off)")
        out[name] = (create_model(cfg, len(PART_CLASSES)).eval(), (cfg.in_chans, size, size))
    return out


def place(models: dict[str, tuple[torch.nn.Module, tuple[int, ...]]], device) -> dict:
    """Every model moved to ``device`` in eval mode (a model built elsewhere would otherwise meet inputs on another
    device: the 04/05 models are built on the CPU)."""
    return {name: (model.to(device).eval(), shape) for name, (model, shape) in models.items()}


def benchmark(models: dict[str, tuple[torch.nn.Module, tuple[int, ...]]], device, warmup: int = 50, runs: int = 200,
              batch: int = 64, batch_runs: int = 10, amp: bool = True) -> pd.DataFrame:
    """``models``: name -> (model, input shape without batch), measured on ``device``. One row per model."""
    rows = {}
    for name, (model, shape) in place(models, device).items():
        x1 = torch.randn(1, *shape, device=device)
        xb = torch.randn(batch, *shape, device=device)
        lat = measure_latency(model, x1, warmup, runs, amp)
        rows[name] = {**model_size(model), "input": "x".join(map(str, shape)), "latency_ms": lat["median_ms"],
                      "latency_p90_ms": lat["p90_ms"], f"throughput_b{batch} (img/s)": measure_throughput(
                          model, xb, warmup=2, runs=batch_runs, amp=amp)}
    return pd.DataFrame(rows).T


MEASUREMENTS = "deployment.json"


def hardware(device) -> str:
    """What a measurement ran on: the GPU model, or the CPU model and the threads torch uses."""
    from ..runs.provenance import cpu_model

    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def measurement_key(model: torch.nn.Module, shape, settings: dict, where: str) -> str:
    blob = json.dumps([repr(model), list(shape), settings, where, torch.__version__], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cached_benchmark(models: dict[str, tuple[torch.nn.Module, tuple[int, ...]]], device, profile: str,
                     warmup: int = 50, runs: int = 200, batch: int = 64, batch_runs: int = 10, amp: bool = True,
                     remeasure: bool = False) -> pd.DataFrame:
    """``benchmark`` for the models this hardware has no kept measurement of (all of them with ``remeasure``);
    the rest read back. Adds the columns ``measured on`` and ``measured`` (the date)."""
    from ..runs.provenance import now

    where = hardware(device)
    settings = {"warmup": warmup, "runs": runs, "batch": batch, "batch_runs": batch_runs, "amp": amp}
    kept = {} if remeasure else measurements.kept(MEASUREMENTS, paths.published_roots())
    keys = {name: measurement_key(model, shape, settings, where) for name, (model, shape) in models.items()}
    todo = {name: models[name] for name, key in keys.items() if key not in kept}
    if todo:
        fresh = benchmark(todo, device, warmup, runs, batch, batch_runs, amp)
        local_path = measurements.local_file(MEASUREMENTS)
        local = measurements.read(local_path)
        for name in todo:
            local[keys[name]] = {**{k: _plain(v) for k, v in fresh.loc[name].items()}, "measured on": where,
                                 "measured": now()[:10]}
        measurements.write(local_path, local)
        kept = {**kept, **local}
    return pd.DataFrame({name: kept[key] for name, key in keys.items()}).T


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def readable(bench: pd.DataFrame) -> pd.DataFrame:
    """``benchmark``'s table with column names a reader reads (units in brackets)."""
    names = {"params_m": "params (M)", "size_mb": "size (MB)", "latency_ms": "latency (ms)",
             "latency_p90_ms": "latency p90 (ms)"}
    return bench.rename(columns=lambda c: names.get(c, c.replace("throughput_b", "throughput, batch ")))


def ensemble_model(members: list[torch.nn.Module], weights) -> ProbabilityEnsemble:
    return ProbabilityEnsemble(members, weights).eval()


def section_models(params: dict, section: str, profile: str | None = None) -> dict[str, tuple[torch.nn.Module, tuple[int, ...]]]:
    """Untrained instances of the teachers and the student a distillation section's ``params`` define (size and
    speed do not depend on the weights), keyed ``"<section>: <label>"``; ``profile`` fills the ``{profile}`` of a
    teacher taken ``from`` section 01."""
    from ..config import ModelConfig, TrainConfig, from_dict
    from ..data import num_classes
    from ..tasks import teacher_configs

    n = num_classes(params["data"])
    out = {}
    for cfg in teacher_configs(params["data"], params["teacher_train"], params["teachers"], profile).values():
        out[f"{section}: {cfg.display_name}"] = (create_model(cfg.model, n).eval(),
                                         (cfg.model.in_chans, cfg.train.img_size, cfg.train.img_size))
    m = from_dict(ModelConfig, params["student"], "student")
    size = from_dict(TrainConfig, params["train"], "train").img_size
    out[f"{section}: student ({m.arch})"] = (create_model(m, n).eval(), (m.in_chans, size, size))
    return out
