"""A Sphinx extension that makes ``jupyter-book build book`` work on a fresh clone.

The book's table of contents points at the executed copies of the notebooks (``book/sections/*.ipynb``), which
``fer-report`` writes. When some are missing, this extension executes the sections through the same pipeline
(papermill, the up-to-date stamps, the run store and its published results) before Sphinx reads its sources:
with the profile the present sections were built with, else ``FER_PROFILE``, else ``smoke``. When every section is
there it does nothing, and Jupyter Book renders them as they are. Declared in ``_config.yml``
(``sphinx.extra_extensions``).
"""
from __future__ import annotations

import os
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def missing_sections(book: Path) -> list[str]:
    from .pipeline import SECTIONS

    return [s.name for s in SECTIONS if not (book / "sections" / f"{s.name}.ipynb").is_file()]


def execute_missing_sections(app, config) -> None:
    from ..config.params import PROFILES
    from .pipeline import built_profile, run_sections

    book = Path(app.srcdir)
    missing = missing_sections(book)
    if not missing:
        return
    profile = built_profile(book) or os.environ.get("FER_PROFILE") or "smoke"
    if profile not in PROFILES:
        raise ValueError(f"FER_PROFILE: expected one of {', '.join(PROFILES)}, got {profile!r}")
    logger.info(f"[fer_lib] {len(missing)} section(s) not executed yet ({', '.join(missing)}): executing the "
                f"{profile} profile with fer-report's pipeline first")
    run_sections(profile, book, log=lambda msg: logger.info(msg))


def setup(app):
    app.connect("config-inited", execute_missing_sections, priority=100)  # before the toc is read
    return {"parallel_read_safe": True, "parallel_write_safe": True}
