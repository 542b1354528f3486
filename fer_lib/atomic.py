"""One way to write a file so that it is never read half-written: ``atomic_write``.

The content goes to a temporary file beside the target, named per process and per call (so concurrent writers --
two builds of one section, two ranks -- never share one), and is renamed onto the target only when the block
succeeds; on any error the temporary file is removed and the target is untouched.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the ``with`` block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
