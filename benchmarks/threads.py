"""Thread settings that degrade gracefully when the machine is busy (the report runner applies the winner).

    python benchmarks/threads.py [--steps 40]

A fixed training workload (a small timm CNN on 48 px batches, forward + backward + AdamW, all intra-op threads) is
timed in a fresh process under each setting, alone and beside one competing CPU-bound process (a busy loop, like a
second job on the machine). With OpenMP's default active waiting, a thread that finishes its share of an operator
spins until the others arrive; when one of them has been descheduled for the competitor, every operator waits for
the scheduler, so the slowdown is far larger than the share of CPU the competitor takes. ``OMP_WAIT_POLICY=PASSIVE``
makes waiting threads sleep instead. Prints seconds and the slowdown busy / alone per setting.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

WORKLOAD = r"""
import time, torch, timm
torch.manual_seed(0)
m = timm.create_model("resnet18", num_classes=7, in_chans=1, channels=[32, 64, 128, 256], stem_width=32)
opt = torch.optim.AdamW(m.parameters(), 1e-3)
x, y = torch.randn(128, 1, 48, 48), torch.randint(0, 7, (128,))
for i in range(3):
    torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step(); opt.zero_grad()
t = time.perf_counter()
for i in range({steps}):
    torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step(); opt.zero_grad()
print(time.perf_counter() - t)
"""

SETTINGS = {
    "default (active waiting)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=20000": {"GOMP_SPINCOUNT": "20000"},
    "1 intra-op thread": {"OMP_NUM_THREADS": "1"},
}


def timed(env_over: dict, steps: int, busy: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    env.update(env_over)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        out = subprocess.run([sys.executable, "-c", WORKLOAD.format(steps=steps)], env=env, capture_output=True,
                             text=True, check=True).stdout
        return float(out.strip().splitlines()[-1])
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    a = ap.parse_args()
    print(f"{os.cpu_count()} CPUs; {a.steps} training steps of a 2.8 M-parameter ResNet18 at batch 128, 48 px")
    print(f"{'setting':<28} {'alone s':>8} {'busy s':>8} {'busy/alone':>11}")
    for name, env in SETTINGS.items():
        alone, busy = timed(env, a.steps, False), timed(env, a.steps, True)
        print(f"{name:<28} {alone:8.1f} {busy:8.1f} {busy / alone:10.2f}x")


if __name__ == "__main__":
    main()
