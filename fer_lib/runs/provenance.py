"""What produced a result: code version, commit, software, device, machine identity, time."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path

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


KERNEL_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "fma")  # CPU flags that change which kernels run
KERNEL_FIELDS = ("vendor", "family", "model", "stepping", "capability", "flags", "torch", "gpu")  # decide kernels
_CPUINFO = {"vendor": ("vendor_id", "cpu implementer"), "family": ("cpu family", "cpu architecture"),
            "model": ("model", "cpu part"), "stepping": ("stepping", "cpu revision"), "microcode": ("microcode",)}


def parse_cpuinfo(text: str) -> dict:
    """The first processor of a ``/proc/cpuinfo`` text: vendor, family, model, stepping and microcode (x86 names, or
    the ARM implementer/architecture/part/revision), those it states, and which of ``KERNEL_FLAGS`` it has."""
    fields: dict[str, str] = {}
    for line in text.strip().split("\n\n")[0].splitlines():  # the first block: one processor
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), value.strip())
    cpu = {}
    for out, names in _CPUINFO.items():
        stated = [fields[n] for n in names if n in fields]
        if stated:
            cpu[out] = stated[0]
    have = set((fields.get("flags") or fields.get("features") or "").split())
    return {**cpu, "flags": [f for f in KERNEL_FLAGS if f in have]}


def kernel_libraries(build_config: str) -> dict:
    """The oneDNN and MKL versions torch's build configuration (``torch.__config__.show()``) names."""
    found = {"onednn": re.search(r"MKL-DNN v([\w.]+)", build_config),
             "mkl": re.search(r"Math Kernel Library Version ([\w.]+)", build_config)}
    return {name: m.group(1) for name, m in found.items() if m}


def machine(device=None) -> dict:
    """What decides the kernels a run computes with: the CPU's identity (``/proc/cpuinfo``; on macOS only
    ``platform.processor()``), the ISA torch dispatches to, torch and its kernel libraries, the GPU. No hostname."""
    try:
        cpu = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        cpu = {"vendor": platform.processor() or platform.machine(), "flags": []}
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return {**cpu, "capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "torch": torch.__version__, **kernel_libraries(torch.__config__.show()),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


def machine_id(facts: dict) -> str:
    """A short SHA-256 of the ``KERNEL_FIELDS`` of ``facts`` (a ``machine()``): one id, the same kernels."""
    fields = json.dumps({k: facts.get(k) for k in KERNEL_FIELDS}, sort_keys=True)
    return hashlib.sha256(fields.encode()).hexdigest()[:12]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def environment(device=None) -> dict:
    kernels = machine(device)
    return {"fer_lib": __version__, "git_commit": git_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "device": device_name(device),
            "cpu": cpu_model(), "cpu_count": os.cpu_count(), "machine": kernels, "machine_id": machine_id(kernels),
            "host": socket.gethostname()}


def shareable(prov: dict, keep_hostname: bool = False) -> dict:
    """``prov`` as published: without the name of the machine that trained it (``environment`` records it for the
    local store, where it tells two of your machines apart), unless ``keep_hostname``."""
    return prov if keep_hostname else {k: v for k, v in prov.items() if k != "host"}
