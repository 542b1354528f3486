"""How the command-line tools end on an error: one clear message, no traceback (``--debug`` or ``FER_DEBUG=1``
shows it), and an exit status that says what happened.

The project's own errors already name the file, parameter or run and what to do (configuration: the parameter
file and key path; data: the file; the store: the run and path); this turns them -- and the operating system's
disk-full, read-only and missing-file errors -- into ``<tool>: error: <message>`` on stderr with exit status 2,
and Ctrl-C into one line that says how to resume, with status 130.
"""
from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Callable

import yaml
from safetensors import SafetensorError

from ..config import ConfigError
from ..data.fer2013 import DatasetError
from ..engine.checkpoint import CheckpointError
from ..runs.manifest import CorruptRunError
from ..runs.store import MissingRunError
from ..runs.transfer import ArchiveError

#: errors whose message is the whole story
PROJECT_ERRORS = (ConfigError, DatasetError, CheckpointError, CorruptRunError, ArchiveError, MissingRunError,
                  yaml.YAMLError)

RESUME = ("interrupted. Nothing half-written was kept: every finished run is in the store, and a run in progress "
          "resumes from its last completed epoch when you run the same command again.")


def describe(exc: BaseException) -> str:
    """The one-line message for ``exc``, with the way out for the operating system's errors."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" writing {exc.filename}" if exc.filename else ""
        return (f"the disk is full{where} ({exc}). Free space there, or move the run store (FER_RUNS), the data "
                "cache (FER_CACHE) or the teacher-output cache (FER_TEACHER_OUTPUTS) to a bigger disk; the run "
                "resumes from its last completed epoch.")
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write {exc.filename or ''} ({exc.strerror or exc}). Point FER_RUNS (the run store), "
                "FER_CACHE or FER_REPORT_DIR at a folder you can write.")
    if "No space left on device" in str(exc):  # safetensors and others that do not raise OSError
        return (f"the disk is full ({exc}). Free space, or move the run store (FER_RUNS) or the caches (FER_CACHE, "
                "FER_TEACHER_OUTPUTS) to a bigger disk.")
    return str(exc) or type(exc).__name__


def run_command(prog: str, body: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``body``; return its exit status, or end an error as one message (2) or an interruption as one line
    (130)."""
    debug = debug or os.environ.get("FER_DEBUG", "") not in ("", "0")
    try:
        return body() or 0
    except KeyboardInterrupt:
        print(f"\n{prog}: {RESUME}", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except (*PROJECT_ERRORS, OSError, ValueError, SafetensorError) as exc:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {describe(exc)}" + ("" if debug else "  (--debug or FER_DEBUG=1 shows the traceback)"),
              file=sys.stderr)
        return 2
