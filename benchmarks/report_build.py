"""Smoke report build times: cold (empty run store, data cache and book) and warm (nothing changed).

    python benchmarks/report_build.py

Runs `fer-report --profile smoke` twice on a copy of the book skeleton with fresh FER_RUNS / FER_CACHE /
FER_REPORT_DIR, and prints both wall times, their ratio and the cold build's time per section. Takes about
ten minutes on 2 CPU cores. Also prints the CPU seconds the build used and the share of the machine's CPU time the
hypervisor took (steal, from /proc/stat): on a shared virtual machine wall time alone says little.
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_times() -> list[int]:
    """The machine's aggregate CPU jiffies (user nice system idle iowait irq softirq steal ...), or [] off Linux."""
    try:
        return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return []


def build(book: Path, env: dict) -> tuple[float, dict[str, int]]:
    """Wall time of one `fer-report --profile smoke` and the per-section times it logs."""
    t0, ru0, st0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN), cpu_times()
    proc = subprocess.run([str(Path(sys.executable).with_name("fer-report")), "--profile", "smoke", "--book", str(book)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout
    if proc.returncode:
        sys.exit(f"fer-report failed (exit {proc.returncode}):\n{out[-5000:]}")
    sections = {m[1]: int(m[2]) for m in re.finditer(r"\[fer-report\] (\S+): done in (\d+) s", out)}
    ru, st = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_times()
    cpu = ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime
    delta = [b - a for a, b in zip(st0, st)]
    steal = f", hypervisor steal {100 * delta[7] / sum(delta):.0f}% of CPU time" if len(delta) > 7 and sum(delta) else ""
    print(f"  build used {cpu:.0f} CPU s{steal}")
    return time.perf_counter() - t0, sections


def main():
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        book = d / "book"
        shutil.copytree(ROOT / "book", book, symlinks=False,
                        ignore=shutil.ignore_patterns("_build", "sections", "_artifacts"))
        env = dict(os.environ, FER_RUNS=str(d / "runs"), FER_CACHE=str(d / "cache"), FER_REPORT_DIR=str(book / "_artifacts"))
        cold, sections = build(book, env)
        warm, _ = build(book, env)
    for name, seconds in sections.items():
        print(f"  cold, section {name:<16} {seconds:5d} s")
    print(f"smoke report, cold build (train everything, execute all sections, build book): {cold:7.1f} s")
    print(f"smoke report, warm build (nothing changed):                                    {warm:7.1f} s")
    print(f"ratio cold / warm = {cold / warm:.0f}x")


if __name__ == "__main__":
    main()
