"""Smoke report build times: cold (empty run store, data cache and book) and warm (nothing changed).

    python benchmarks/report_build.py

Runs `fer-report --profile smoke` twice on a copy of the book skeleton with fresh FER_RUNS / FER_CACHE /
FER_REPORT_DIR, and prints both wall times and their ratio. Takes a few minutes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(book: Path, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("fer-report")), "--profile", "smoke", "--book", str(book)],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        book = d / "book"
        shutil.copytree(ROOT / "book", book, symlinks=False,
                        ignore=shutil.ignore_patterns("_build", "sections", "_artifacts"))
        env = dict(os.environ, FER_RUNS=str(d / "runs"), FER_CACHE=str(d / "cache"), FER_REPORT_DIR=str(book / "_artifacts"))
        cold = build(book, env)
        warm = build(book, env)
    print(f"smoke report, cold build (train everything, execute all sections, build book): {cold:7.1f} s")
    print(f"smoke report, warm build (nothing changed):                                    {warm:7.1f} s")
    print(f"ratio cold / warm = {cold / warm:.0f}x")


if __name__ == "__main__":
    main()
