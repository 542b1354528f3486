"""Smoke report build times: cold (empty run store, data cache and book) and warm (nothing changed).

    python benchmarks/report_build.py

Runs `fer-report --profile smoke` twice on a copy of the book skeleton with fresh FER_RUNS / FER_CACHE /
FER_REPORT_DIR, and prints both wall times, their ratio and the cold build's time per section. Takes about
ten minutes on 2 CPU cores.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(book: Path, env: dict) -> tuple[float, dict[str, int]]:
    """Wall time of one `fer-report --profile smoke` and the per-section times it logs."""
    t0 = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).with_name("fer-report")), "--profile", "smoke", "--book", str(book)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout
    if proc.returncode:
        sys.exit(f"fer-report failed (exit {proc.returncode}):\n{out[-5000:]}")
    sections = {m[1]: int(m[2]) for m in re.finditer(r"\[fer-report\] (\S+): done in (\d+) s", out)}
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
