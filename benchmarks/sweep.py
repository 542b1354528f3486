"""Sweeps on this machine: the local launcher against inline training, and two training jobs sharing the cores.

    python benchmarks/sweep.py [--sections 06_segmentation 07_asgml] [--skip-sweep] [--skip-pair]

1. **Local launcher vs inline.** Every smoke training section's runs, trained into an empty store once inline
   (``fer-train --section S``, one section after another, all cores for each run) and once with
   ``fer-train --launcher local --max-parallel 2 --wait`` (two workers, each pinned to one core with one thread).
   Prints both wall times and the ratio local / inline (below 1: the launcher is faster).
2. **Two jobs at once.** One smoke ``fer-train`` alone, then two started together (separate stores), with the
   thread policy every entry point applies (``OMP_WAIT_POLICY=PASSIVE``): the ratio of the pair's wall time to the
   single job's (2.0 is ideal on 2 cores: twice the work in twice the time).
3. The paper profile's plan: runs, critical path and the ideal speed-up with unlimited GPUs (``fer-train --plan``).

Run it alone on the machine; it prints the CPU model, since times compare only within one run of the benchmark.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TRAINING = ["01_teachers", "03_vit_revisit", "04_kd_cifar", "05_dkd_sweep", "06_segmentation", "07_asgml"]


def timed(commands: list[list[str]], env: dict) -> float:
    """Wall seconds for ``commands`` started together (each must succeed)."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c in commands]
    for p, c in zip(procs, commands):
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"{' '.join(c)} failed:\n{err[-2000:]}")
    return time.perf_counter() - t0


def environment(store: Path, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env.update(FER_RUNS=str(store), FER_CACHE=str(cache), FER_RESULTS="")
    return env


def cpu_model() -> str:
    from fer_lib.runs.provenance import cpu_model as model

    return f"{model()}, {os.cpu_count()} cores"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", nargs="*", default=TRAINING)
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--skip-pair", action="store_true")
    a = ap.parse_args()
    print(f"machine: {cpu_model()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        # decode the smoke data once, outside the timings
        timed([[str(BIN / "fer-train"), "--profile", "smoke", "--plan", "--sections", *a.sections]],
              environment(tmp / "warm", cache))
        if not a.skip_sweep:
            env = environment(tmp / "inline", cache)
            inline = sum(timed([[str(BIN / "fer-train"), "--section", s, "--profile", "smoke"]], env)
                         for s in a.sections)
            local = timed([[str(BIN / "fer-train"), "--profile", "smoke", "--sections", *a.sections,
                            "--launcher", "local", "--max-parallel", "2", "--wait"]], environment(tmp / "local", cache))
            print(f"smoke sections {', '.join(a.sections)}: inline {inline:.0f} s, local launcher (2 workers x 1 "
                  f"thread) {local:.0f} s, ratio local / inline {local / inline:.2f}")
        if not a.skip_pair:
            job = [str(BIN / "fer-train"), "--section", "06_segmentation", "--profile", "smoke"]
            alone = timed([job], environment(tmp / "alone", cache))
            pair = _pair(job, tmp, cache)
            print(f"one smoke fer-train (06) alone {alone:.1f} s; two at once {pair:.1f} s: ratio {pair / alone:.2f} "
                  "(2.0 ideal on 2 cores)")
    out = subprocess.run([str(BIN / "fer-train"), "--profile", "paper", "--plan"], capture_output=True, text=True)
    print("paper plan:\n" + "\n".join(out.stdout.strip().splitlines()[-6:]))


def _pair(job: list[str], tmp: Path, cache: Path) -> float:
    """Two jobs started together, each with its own store (so neither reads the other's runs)."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(job, env=environment(tmp / f"pair-{i}", cache), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"{' '.join(job)} failed:\n{err[-2000:]}")
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
