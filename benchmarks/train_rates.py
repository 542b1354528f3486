"""Training rate of every model a profile's sweep trains, measured here, for the makespan estimate.

    python benchmarks/train_rates.py [--profile paper] [--gpu-tflops 100]

For each distinct model of the profile's plan (``fer-train --plan``; its data need not be on this machine) it times
forward + backward steps on random inputs at the run's input size on this CPU and records samples per second; it also
measures the CPU's fp32 matmul rate. ``fer-train --plan --gpus N`` turns these into GPU time with the factor
``gpu_over_cpu`` = an assumed effective GPU rate (``--gpu-tflops``, default 100 TFLOP/s: an A100's 312 TFLOP/s bf16
peak at about a third utilisation) over the measured CPU matmul rate -- a stated assumption until a GPU measures the
rates. Writes ``benchmarks/results/train_rates.json`` and prints each rate and the ratio to the matmul rate.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fer_lib.report.check import _random_weights
from fer_lib.runs.provenance import cpu_model, now
from fer_lib.tasks.kinds import get_run_kind
from fer_lib.launch.makespan import RATES_FILE, model_signature
from fer_lib.launch.plan import plan_profile


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0) / 1e9


def build(kind: str, model_cfg, shape, n_classes: int, batch: int):
    """(model, a random batch) for a training step of this run's model."""
    from fer_lib.models import create_model
    from fer_lib.models.av import AVClassifier

    cfg = _random_weights(model_cfg)
    if kind == "av":
        spec, frames = shape
        return AVClassifier(cfg, n_classes), (torch.randn(batch, *spec).half(),
                                              torch.randint(0, 256, (batch, *frames), dtype=torch.uint8))
    return create_model(cfg, n_classes), torch.randn(batch, *shape)


def samples_per_second(model, x, batch: int, steps: int = 3) -> float:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        model(x).float().logsumexp(1).mean().backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--gpu-tflops", type=float, default=100.0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / RATES_FILE))
    a = ap.parse_args()
    torch.manual_seed(0)
    gflops = matmul_gflops()
    models = {}
    for p in plan_profile(a.profile).values():
        kind = get_run_kind(p.kind)
        if not kind.trains:
            continue
        for role, model_cfg, shape, n in kind.models(p.config):
            sig = model_signature(model_cfg, shape)
            if sig in models:
                continue
            pixels = shape[0][0] * shape[0][1] if p.kind == "av" else shape[-1] * shape[-2]
            batch = 8 if pixels <= 64 * 64 else 2
            model, x = build(p.kind, model_cfg, shape, n, batch)
            rate = samples_per_second(model, x, batch)
            arch = getattr(model_cfg, "arch", None) or f"{model_cfg.audio_arch} + {model_cfg.visual_arch}"
            models[sig] = {"arch": arch, "input": str(shape), "kind": p.kind, "batch": batch,
                           "cpu_samples_per_s": rate}
            print(f"{arch:>28} {str(shape):>28}  {rate:9.2f} samples/s on the CPU", flush=True)
    factor = a.gpu_tflops * 1e3 / gflops
    out = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__, "measured": now(),
           "cpu_matmul_gflops": gflops, "gpu_tflops_assumed": a.gpu_tflops, "gpu_over_cpu": factor,
           "gpu_note": f"rates measured on {cpu_model()} x{torch.get_num_threads()} threads, scaled by "
                       f"{factor:.0f} = {a.gpu_tflops:.0f} TFLOP/s assumed on a GPU / {gflops:.0f} GFLOP/s measured "
                       "CPU matmul", "models": models}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"CPU matmul {gflops:.0f} GFLOP/s; GPU/CPU factor {factor:.0f}; {len(models)} models -> {a.out}")


if __name__ == "__main__":
    main()
