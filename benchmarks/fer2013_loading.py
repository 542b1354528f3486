"""FER2013 loading with and without the decoded cache.

    python benchmarks/fer2013_loading.py [--root ../shared/data/fer2013]

cold   decode every file into the uint8 array (first use; writes the cache)
warm   read the cached array (every later use)
naive  what a per-epoch ImageFolder-style pipeline pays: open and decode every JPEG again
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fer2013"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FER_CACHE"] = cache
        from fer_lib.data import load_fer2013

        t0 = time.perf_counter()
        d = load_fer2013(a.root)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        d2 = load_fer2013(a.root)
        warm = time.perf_counter() - t0
        assert d.fingerprint == d2.fingerprint
    files = sorted(Path(a.root).rglob("*.jpg"))
    t0 = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            np.asarray(im.convert("L"))
    naive = time.perf_counter() - t0
    print(f"FER2013 at {a.root}: {len(d)} images")
    print(f"cold (decode + write cache) {cold:7.2f} s")
    print(f"warm (read cache)           {warm:7.2f} s")
    print(f"naive per-epoch JPEG decode {naive:7.2f} s")
    print(f"speed-up warm vs cold  = {cold / warm:.1f}x;  warm vs naive per-epoch decode = {naive / warm:.1f}x")


if __name__ == "__main__":
    main()
