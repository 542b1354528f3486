"""Process-group helpers: one code path for a single process and for ``torchrun`` (DDP).

``DistEnv.from_env()`` reads RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun) and joins the
process group (NCCL on CUDA, gloo on CPU). Evaluation shards the data by rank and gathers
the outputs back into dataset order on every rank, so every rank takes the same decisions
(best epoch, early stop) without further communication.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


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
        return DistEnv(rank, world, local, dev)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

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
