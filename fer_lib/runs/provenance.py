"""What produced a result: code version, commit, software, device, time."""
from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import datetime, timezone

import torch

from .. import __version__, paths


def git_commit() -> str:
    """HEAD of the project checkout, with ``+dirty`` when tracked files changed; ``unknown`` outside git."""
    root = paths.project_root()
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: torch.device | str | None = None) -> str:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC 7B13", "Intel(R) Xeon(R) ..."): times are comparable only on one model."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def environment(device=None) -> dict:
    return {"fer_lib": __version__, "git_commit": git_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "device": device_name(device),
            "cpu": cpu_model(), "cpu_count": os.cpu_count(), "host": socket.gethostname()}


def shareable(prov: dict, keep_hostname: bool = False) -> dict:
    """``prov`` as published: without the name of the machine that trained it (``environment`` records it for the
    local store, where it tells two of your machines apart), unless ``keep_hostname``."""
    return prov if keep_hostname else {k: v for k, v in prov.items() if k != "host"}
