"""Atomic checkpoint I/O: write to a temporary file in the same folder, then rename.

Training state (``last.pt``) is read back with ``torch.load(weights_only=True)``; model
weights are stored as safetensors.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_state(state: dict, path: Path) -> None:
    _atomic(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path, map_location="cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)


def save_weights(module: torch.nn.Module, path: Path) -> None:
    sd = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    _atomic(path, lambda tmp: save_file(sd, tmp))


def load_weights(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    module.load_state_dict(load_file(str(path)))
    return module
