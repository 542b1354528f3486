"""The kernel manager ``fer-report`` executes notebooks with: kernels talk over IPC (Unix sockets), not TCP.

A kernel on TCP without CurveZMQ keys logs "Kernel is running over TCP without encryption ..." into every
section's build log; over IPC its sockets are files only this user can reach, and the warning has no cause. The
socket files live in the system's temporary folder (``<tmp>/fer-kernel-<id>-<n>``) and are removed with the kernel.
"""
from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager


class IPCKernelManager(AsyncKernelManager):
    def __init__(self, **kwargs):
        kwargs.setdefault("transport", "ipc")
        kwargs.setdefault("ip", str(Path(tempfile.gettempdir()) / f"fer-kernel-{uuid.uuid4().hex[:12]}"))
        super().__init__(**kwargs)
