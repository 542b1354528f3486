"""Atomic checkpoint I/O: write to a temporary file in the same folder, then rename.

Training state (``last.pt``) is read back with ``torch.load(weights_only=True)``; model
weights are stored as safetensors. A state file that cannot be read (a disk error, a copy cut
short) raises ``CheckpointError`` naming the file and how to start over.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_write


def _atomic(path: Path, write) -> None:
    with atomic_write(path) as tmp:
        write(str(tmp))


def save_state(state: dict, path: Path) -> None:
    _atomic(path, lambda tmp: torch.save(state, tmp))


class CheckpointError(RuntimeError):
    """A training checkpoint exists but cannot be read."""


def load_state(path: Path, map_location="cpu") -> dict:
    """The training state saved at ``path``; ``CheckpointError`` when the file is corrupt or truncated."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named and the way out
        reason = str(e).strip().split(". ")[0][:200]  # torch's first sentence; the rest advises on intact files
        raise CheckpointError(
            f"cannot read the training checkpoint {path}: the file is corrupt, truncated or not a checkpoint "
            f"fer_lib wrote. Delete it to restart this run from scratch (rm {path}), or delete the run's whole "
            f"resume folder {path.parent}. "
            f"(torch.load: {type(e).__name__}: {reason})") from e


def save_weights(module: torch.nn.Module, path: Path) -> None:
    sd = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    _atomic(path, lambda tmp: save_file(sd, tmp))


def load_weights(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    module.load_state_dict(load_file(str(path)))
    return module
