"""Peak memory of decoding FER2013's original CSV: the streamed loader vs the old list-of-strings parse.

    python benchmarks/fer2013_memory.py [--rows 35887]

Writes a synthetic fer2013.csv of ``--rows`` rows (35,887 = the real file, ~300 MB) into a temporary
folder, then decodes it in fresh subprocesses -- one that only imports (the floor), one with
``fer_lib.data.fer2013._decode_csv`` (rows streamed into one preallocated uint8 array) and one
with a copy of the old parse kept below as the baseline (a pandas table of the pixel strings,
then one Python string per pixel) -- and prints each one's peak RSS and their ratio.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE = 48


# ----------------------------------------------------------------------------- the old parse (baseline)
def old_decode_csv(csv: Path):
    """fer_lib's CSV decoding before streaming, verbatim (the original CSV layout only)."""
    import pandas as pd

    from fer_lib.data.dataset import LabeledImages
    from fer_lib.data.fer2013 import CSV_EMOTIONS, FER_CLASSES, USAGE_SPLIT, DatasetError

    def read_csv(path, required):
        try:
            df = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)
        except Exception as e:  # noqa: BLE001
            raise DatasetError(f"cannot read CSV {path}: {e}") from None
        df.columns = [c.strip() for c in df.columns]
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
        if df.empty:
            raise DatasetError(f"{path}: no rows")
        return df

    def parse_pixels(col, src):
        tokens = col.str.split()
        counts = tokens.str.len().to_numpy()
        bad = np.flatnonzero(counts != SIZE * SIZE)
        if len(bad):
            raise DatasetError(f"{src}: row {bad[0] + 2}: expected {SIZE * SIZE} pixel values, got {counts[bad[0]]}")
        numeric = col.str.fullmatch(r"\s*\d+(\s+\d+)*\s*").to_numpy()
        if not numeric.all():
            raise DatasetError(f"{src}: row {np.flatnonzero(~numeric)[0] + 2}: pixels must be integers 0..255")
        flat = np.array(" ".join(col.tolist()).split(), dtype=np.int64).reshape(-1, SIZE * SIZE)
        out_of_range = np.flatnonzero((flat > 255).any(1))
        if len(out_of_range):
            raise DatasetError(f"{src}: row {out_of_range[0] + 2}: pixel values must lie in 0..255")
        return flat.astype(np.uint8).reshape(-1, SIZE, SIZE)

    df = read_csv(csv, ("emotion", "pixels", "Usage"))
    emo = pd.to_numeric(df["emotion"], errors="coerce")
    images = parse_pixels(df["pixels"], csv)
    labels = np.array([FER_CLASSES.index(CSV_EMOTIONS[e]) for e in emo.astype(int)])
    return LabeledImages(name="FER2013", images=images, labels=labels, split=df["Usage"].map(USAGE_SPLIT).to_numpy(),
                         classes=FER_CLASSES, ids=np.array([f"{csv.name}:{i + 2}" for i in range(len(df))]))


# ----------------------------------------------------------------------------- one measurement per process
def child(variant: str, csv: Path) -> None:
    """Decode ``csv`` with ``variant`` and print this process's peak RSS (MB), time and a checksum."""
    import pandas  # noqa: F401 - imported by every variant, so the floor counts it

    from fer_lib.data.fer2013 import _decode_csv

    t0 = time.perf_counter()
    data = {"import": lambda p: None, "streamed": _decode_csv, "old": old_decode_csv}[variant](csv)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KB
    print(json.dumps({"peak_mb": peak_mb, "seconds": seconds,
                      "fingerprint": data.fingerprint if data is not None else None}))


def measure(variant: str, csv: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", variant, str(csv)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """A fer2013.csv of random faces in the original layout, written row by row."""
    rng = np.random.default_rng(seed)
    usages = ("Training", "PublicTest", "PrivateTest")
    with open(path, "w") as f:
        f.write("emotion,pixels,Usage\n")
        for i in range(rows):
            px = " ".join(map(str, rng.integers(0, 256, SIZE * SIZE).tolist()))
            f.write(f"{rng.integers(0, 7)},{px},{usages[i % 3]}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=35887, help="CSV rows (default: the real file's 35,887)")
    ap.add_argument("--child", nargs=2, metavar=("VARIANT", "CSV"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child[0], Path(a.child[1]))
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "fer2013.csv"
        write_csv(csv, a.rows)
        print(f"synthetic fer2013.csv: {a.rows} rows, {csv.stat().st_size / 1e6:.0f} MB; "
              f"decoded images {a.rows * SIZE * SIZE / 1e6:.0f} MB")
        res = {v: measure(v, csv) for v in ("import", "streamed", "old")}
    assert res["streamed"]["fingerprint"] == res["old"]["fingerprint"], "the two parses disagree"
    floor = res["import"]["peak_mb"]
    print(f"{'':24}{'peak RSS':>10}{'above imports':>15}{'time':>9}")
    for v, label in (("import", "imports only"), ("streamed", "streamed (new)"), ("old", "list of strings (old)")):
        r = res[v]
        print(f"{label:24}{r['peak_mb']:8.0f} MB{r['peak_mb'] - floor:12.0f} MB{r['seconds']:7.1f} s")
    print(f"old / new peak RSS = {res['old']['peak_mb'] / res['streamed']['peak_mb']:.1f}x; above imports = "
          f"{(res['old']['peak_mb'] - floor) / max(res['streamed']['peak_mb'] - floor, 1):.1f}x")


if __name__ == "__main__":
    main()
