"""``fer-parse``: apply a stored face-parsing run to a folder of images (the challenge's submission layout).

    fer-parse predict --run runs/segmenter/<key> --images data/faceparse/test/images --out masks/ --zip masks.zip
    fer-parse predict --run runs/segmenter/<key> --images DIR --out DIR --no-tta --device cuda

Writes one single-channel PNG per image, named like the image (``<stem>.png``), at the image's own size, with
class indices 0..18 (CelebAMask-HQ order); ``--zip`` also packs them into one archive for upload. Flip test-time
augmentation (with the left/right labels swapped back) is on unless ``--no-tta``.
"""
from __future__ import annotations

import argparse
import sys

from .segment import predict_folder


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="fer-parse", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="write one PNG mask per image of a folder")
    p.add_argument("--run", required=True, help="a face-parsing run folder of the run store (runs/segmenter/<key>)")
    p.add_argument("--images", required=True, help="folder of .jpg/.png images")
    p.add_argument("--out", required=True, help="folder for the PNG masks (created)")
    p.add_argument("--zip", help="also write the masks into this zip file")
    p.add_argument("--no-tta", action="store_true", help="no flip test-time augmentation")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA if available)")
    a = ap.parse_args(argv)
    try:
        written = predict_folder(a.run, a.images, a.out, tta=not a.no_tta, zip_path=a.zip, device=a.device)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"fer-parse: {e}")
    print(f"fer-parse: wrote {len(written)} masks to {a.out}" + (f" and {a.zip}" if a.zip else ""))


if __name__ == "__main__":
    main()
