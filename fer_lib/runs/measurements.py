"""Kept measurements (section 08's latency and throughput): one JSON file of entries keyed by what was measured and
on which hardware, in the local store (``<run store>/measurements/``) and, once published, in a tier
(``results/<profile>/measurements/``). A damaged file costs a re-measurement, nothing else."""
from __future__ import annotations

import json
from pathlib import Path

from .. import paths
from ..atomic import atomic_write

FOLDER = "measurements"


def local_file(name: str) -> Path:
    return paths.runs_dir() / FOLDER / name


def read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def write(path: Path, entries: dict) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))


def kept(name: str, tiers: list[Path]) -> dict:
    """Every kept entry of measurement file ``name``: the published tiers', then the local store's on top."""
    out: dict = {}
    for tier in tiers:
        out.update(read(Path(tier) / FOLDER / name))
    out.update(read(local_file(name)))
    return out


def publish(tier: Path) -> int:
    """Merge every local measurement file into ``tier``'s; how many entries the local store held."""
    folder = paths.runs_dir() / FOLDER
    count = 0
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        local = read(path)
        if local:
            write(Path(tier) / FOLDER / path.name, {**read(Path(tier) / FOLDER / path.name), **local})
            count += len(local)
    return count
