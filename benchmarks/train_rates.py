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

from fer_lib.runs.provenance import cpu_model, now
from fer_lib.tasks.kinds import get_run_kind
from fer_lib.launch.makespan import RATES_FILE
from fer_lib.launch.plan import plan_profile


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0) / 1e9


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
        for spec in kind.models(p.config):
            if spec.signature() in models:
                continue
            batch = 8 if spec.pixels <= 64 * 64 else 2
            spec = spec.with_random_weights()
            rate = samples_per_second(spec.build(), spec.example_batch(batch), batch)
            models[spec.signature()] = {"arch": spec.arch, "input": str(spec.input_shape), "kind": p.kind,
                                        "batch": batch, "cpu_samples_per_s": rate}
            print(f"{spec.arch:>28} {str(spec.input_shape):>28}  {rate:9.2f} samples/s on the CPU", flush=True)
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
