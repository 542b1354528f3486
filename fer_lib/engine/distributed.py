"""Process-group helpers: one code path for a single process and for ``torchrun`` (DDP).

``DistEnv.from_env()`` reads RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun) and joins the
process group (NCCL on CUDA, gloo on CPU). Evaluation shards the data by rank and gathers
the outputs back into dataset order on every rank, so every rank takes the same decisions
(best epoch, early stop) without further communication.

``DistEnv.barrier`` (the run store's and the training loop's) is a monitored barrier on a gloo
group (the default group on CPU, a gloo side group beside NCCL): a rank that does not arrive
within ``FER_BARRIER_TIMEOUT_S`` seconds (default 1800, torch's default process-group timeout)
ends every rank with a ``BarrierTimeoutError`` naming it, instead of a silent hang.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist


BARRIER_TIMEOUT_S = 30 * 60
_BARRIER_GROUP: dict[str, object] = {}  # "gloo": the gloo side group created beside an NCCL default group


class BarrierTimeoutError(RuntimeError):
    """A rank did not reach a barrier in time (it failed or hangs): this names it."""


def barrier_timeout_s() -> float:
    value = os.environ.get("FER_BARRIER_TIMEOUT_S", "")
    try:
        return float(value) if value.strip() else float(BARRIER_TIMEOUT_S)
    except ValueError:
        raise ValueError(f"FER_BARRIER_TIMEOUT_S must be a number of seconds, not {value!r}") from None


def _monitor_group():
    """A group with a CPU backend for ``monitored_barrier``, or None (then a plain barrier)."""
    if dist.get_backend() == "gloo":
        return dist.group.WORLD
    return _BARRIER_GROUP.get("gloo")


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @staticmethod
    def from_env(device: str | None = None) -> "DistEnv":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dev.type == "cuda":
            dev = torch.device("cuda", local if world > 1 else (dev.index or 0))
            torch.cuda.set_device(dev)
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
            if dev.type == "cuda":  # every rank creates it here, at the same point: monitored barriers need gloo
                _BARRIER_GROUP["gloo"] = dist.new_group(backend="gloo")
        return DistEnv(rank, world, local, dev)

    def barrier(self, timeout_s: float | None = None) -> None:
        """Wait for every rank; a rank missing after ``timeout_s`` (default ``FER_BARRIER_TIMEOUT_S``, 1800 s) ends
        this one with a ``BarrierTimeoutError`` that names it (rank 0 names the ranks that did not arrive; the
        others name rank 0, which did not release them)."""
        if not self.distributed:
            return
        group = _monitor_group()
        if group is None:  # an NCCL group this module did not create: no gloo group to monitor with
            dist.barrier()
            return
        timeout = barrier_timeout_s() if timeout_s is None else float(timeout_s)
        try:
            dist.monitored_barrier(group=group, timeout=timedelta(seconds=timeout), wait_all_ranks=True)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:400]
            found = re.search(r"Ranks? ([\d, ]+) failed to pass monitoredBarrier", str(exc))
            if self.rank == 0 and found:
                missing = ", ".join(r.strip() for r in found.group(1).split(",") if r.strip())
                what = f"rank(s) {missing} of {self.world_size} did not reach the barrier within {timeout:g} s"
            elif self.rank == 0:
                what = f"a rank did not reach the barrier within {timeout:g} s"
            else:
                what = (f"rank {self.rank}: rank 0 did not release the barrier within {timeout:g} s (rank 0's error "
                        "names the rank that did not arrive)")
            raise BarrierTimeoutError(f"{what}; it failed or hangs -- see that rank's log. FER_BARRIER_TIMEOUT_S "
                                      f"sets the limit. ({detail})") from exc

    def gather_rows(self, index: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
        """Reassemble per-rank ``rows`` at dataset positions ``index`` into an (n, ...) array."""
        if not self.distributed:
            out = np.empty((n,) + rows.shape[1:], rows.dtype)
            out[index] = rows
            return out
        parts = [None] * self.world_size
        dist.all_gather_object(parts, (index, rows))
        out = np.empty((n,) + rows.shape[1:], rows.dtype)
        for idx, r in parts:
            out[idx] = r
        return out


class ShardSampler(torch.utils.data.Sampler[int]):
    """Indices ``rank, rank + world, ...`` in order: each rank evaluates a disjoint shard, no padding."""

    def __init__(self, n: int, env: DistEnv):
        self.indices = list(range(env.rank, n, env.world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)
