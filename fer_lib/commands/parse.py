"""``fer-parse``: apply a stored face-parsing run to a folder of images (the challenge's submission layout).

    fer-parse predict --run runs/segmenter/<key> --images data/faceparse/test/images --out masks/ --zip masks.zip
    fer-parse predict --run results/real-cpu/segmenter/<key> --images DIR --out DIR --no-tta --device cuda

Writes one single-channel PNG per image, named like the image (``<stem>.png``), at the image's own size, with
class indices 0..18 (CelebAMask-HQ order); ``--zip`` also packs them into one archive for upload. Flip test-time
augmentation (with the left/right labels swapped back) is on unless ``--no-tta``. Every image that can be read is
predicted; each one that cannot (unreadable, not a JPEG, PNG, BMP or WEBP, over 40 M pixels) is listed with its
reason, and the exit status is then 1. Two images with one stem (``x.jpg`` and ``x.png``), and an ``--out`` inside
``--images``, are refused before anything is written.
"""
from __future__ import annotations

import argparse
import errno
import sys

from ..tasks.errors import run_command


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="fer-parse", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="write one PNG mask per image of a folder")
    p.add_argument("--run", required=True, help="a face-parsing run folder (runs/segmenter/<key> or "
                                                "results/<profile>/segmenter/<key>)")
    p.add_argument("--images", required=True, help="folder of .jpg/.png images")
    p.add_argument("--out", required=True, help="folder for the PNG masks (created; outside --images)")
    p.add_argument("--zip", help="also write the masks into this zip file")
    p.add_argument("--no-tta", action="store_true", help="no flip test-time augmentation")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA if available)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    a = ap.parse_args(argv)
    sys.exit(run_command("fer-parse", lambda: _predict(a), debug=a.debug))


def _predict(a) -> int:
    from ..tasks.parse import predict_folder

    try:
        result = predict_folder(a.run, a.images, a.out, tta=not a.no_tta, zip_path=a.zip, device=a.device)
    except OSError as exc:  # each mask is written whole or not at all: nothing "resumes", the command runs again
        if exc.errno != errno.ENOSPC:
            raise
        raise OSError(f"the disk is full writing {exc.filename or a.out}. The masks written so far are whole; free "
                      "space (or choose an --out on a bigger disk) and run the command again.") from exc
    for f, why in result.skipped:
        print(f"fer-parse: skipped {f.name}: {why}", file=sys.stderr)
    for f, why in result.failed:
        print(f"fer-parse: FAILED {f.name}: {why}", file=sys.stderr)
    print(f"fer-parse: wrote {len(result.written)} masks to {a.out}" + (f" and {a.zip}" if a.zip and result.written
                                                                       else "")
          + (f"; {len(result.failed)} image(s) failed" if result.failed else ""))
    return 1 if result.failed else 0


if __name__ == "__main__":
    main()
