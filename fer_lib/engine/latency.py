"""Size and speed of a model on the device at hand (seed 000 §9.9: batch 1, warm-up 50, 200 runs, median).

Latency is measured, not estimated: each timed call is synchronised on CUDA, warm-up calls
are run and discarded, and the median and 90th percentile of the timed calls are reported.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn

from ..models.size import count_parameters
from .fit import autocast


def model_size(model: nn.Module) -> dict:
    """Parameters (millions) and fp32 weights size (MB = 2**20 bytes) of the state dict."""
    params = count_parameters(model, trainable_only=False)
    nbytes = sum(t.numel() * 4 if t.is_floating_point() else t.numel() * t.element_size()
                 for t in model.state_dict().values())
    return {"params_m": params / 1e6, "size_mb": nbytes / 2**20}


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def measure_latency(model: nn.Module, example: torch.Tensor, warmup: int = 50, runs: int = 200,
                    amp: bool = True) -> dict:
    """Milliseconds per call on ``example`` (its batch size): median, p90, mean over ``runs`` timed calls."""
    model.eval()
    device = example.device
    times = []
    for i in range(warmup + runs):
        _sync(device)
        t0 = time.perf_counter()
        with autocast(device, amp):
            model(example)
        _sync(device)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    t = np.asarray(times)
    return {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "mean_ms": float(t.mean()),
            "runs": runs, "warmup": warmup}


def measure_throughput(model: nn.Module, batch: torch.Tensor, warmup: int = 3, runs: int = 10,
                       amp: bool = True) -> float:
    """Images per second at the batch size of ``batch`` (median call time)."""
    lat = measure_latency(model, batch, warmup, runs, amp)
    return batch.shape[0] / (lat["median_ms"] / 1e3)


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    import platform

    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
