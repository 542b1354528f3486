"""The thread policy every entry point shares: OpenMP threads sleep rather than spin while they wait.

``OMP_WAIT_POLICY=PASSIVE`` unless the user set it. Under OpenMP's default (active waiting) a second CPU-bound
process -- another training job, a notebook kernel, the local sweep launcher's next worker -- makes every operator
wait for a descheduled thread: ``benchmarks/threads.py`` measured 3.9-4.7x slower training beside a busy loop on
2 cores, against 1.5-1.7x with PASSIVE, and no cost alone. OpenMP reads the variable when torch's runtime loads,
so this runs when ``fer_lib`` is imported (before any of its modules imports torch): ``fer-report``,
``fer-train``, ``fer-parse``, ``fer-runs`` and the notebooks' kernels (which import fer_lib first; ``make lab``
also puts it in the kernel's environment) all get it.
"""
from __future__ import annotations

import os

POLICY = {"OMP_WAIT_POLICY": "PASSIVE"}


def share_cores() -> dict[str, str]:
    """Set the policy in this process's environment (children inherit it) where the user has not; returns it."""
    for name, value in POLICY.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in POLICY}
