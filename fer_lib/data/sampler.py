"""Samplers that shard one global order across DDP ranks (world size 1 included).

Both draw their order from ``seed + epoch`` only, so an epoch's order is the same whether
training ran straight through or resumed, and the union of the ranks' batches is the
single-process batch sequence.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DistributedSampler, Sampler


def class_balanced_weights(labels: np.ndarray) -> torch.Tensor:
    """Per-sample weight 1 / count(class): every class is drawn equally often in expectation."""
    counts = np.bincount(labels)
    return torch.as_tensor(1.0 / counts[labels], dtype=torch.double)


class DistributedWeightedSampler(Sampler[int]):
    """``len(weights)`` draws with replacement per epoch (seeded by ``seed + epoch``), sharded by rank."""

    def __init__(self, weights: torch.Tensor, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        self.weights, self.num_replicas, self.rank, self.seed, self.epoch = weights, num_replicas, rank, seed, 0
        self.num_samples = math.ceil(len(weights) / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        idx = torch.multinomial(self.weights, self.num_samples * self.num_replicas, replacement=True, generator=g)
        return iter(idx[self.rank::self.num_replicas].tolist())

    def __len__(self):
        return self.num_samples


def train_sampler(labels: np.ndarray, balanced: bool, num_replicas: int, rank: int, seed: int) -> Sampler:
    if balanced:
        return DistributedWeightedSampler(class_balanced_weights(labels), num_replicas, rank, seed)
    return DistributedSampler(range(len(labels)), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
