"""``fer-report``: execute the section notebooks for a profile with papermill, then build the book.

    fer-report --profile smoke                 # every section, then `jupyter-book build book -W`
    fer-report --profile real-cpu --sections 01_teachers 09_calibration
    fer-report --force                         # ignore the up-to-date stamps
    fer-report --no-build                      # notebooks only
    fer-report --profile real-cpu --no-train --jobs 2   # two sections at once (each in its own kernel)
    fer-report --profile paper --check         # before a GPU run: every config and model built and stepped once

Sections run in dependency order and write their executed copies to ``<book>/sections/``; with ``--jobs N`` up to N
run at once, each as soon as the sections it depends on are done. Each kernel keeps torch's thread count, so a
section computes the same numbers however many run beside it (the thread policy, ``fer_lib.threads``, keeps the
sharing cheap); it pays most where sections read stored runs (kernel start-up and imports overlap).
A section is skipped when its stamp -- a hash of the notebook, its parameter file, the
fer_lib source, the profile and the stamps of the sections it depends on -- is unchanged
and its executed copy exists. Results themselves are cached by the run store, so a
re-executed section reads the runs it needs instead of retraining them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

import yaml

from .. import paths
from ..atomic import atomic_write
from ..threads import share_cores
from ..config.params import PROFILES, params_file


@dataclass(frozen=True)
class SectionSpec:
    name: str
    depends_on: tuple[str, ...] = ()


#: The report's sections in build order (the book's table of contents follows it).
SECTIONS = (
    SectionSpec("intro"),
    SectionSpec("00_data"),
    SectionSpec("01_teachers"),
    SectionSpec("02_ensembles", ("01_teachers",)),
    SectionSpec("03_vit_revisit", ("01_teachers",)),
    SectionSpec("04_kd_cifar"),
    SectionSpec("05_dkd_sweep"),
    SectionSpec("06_segmentation"),
    SectionSpec("07_asgml"),
    SectionSpec("08_deployment", ("01_teachers", "02_ensembles", "04_kd_cifar", "05_dkd_sweep")),
    SectionSpec("09_calibration", ("01_teachers", "02_ensembles")),
    # the Claims page reads what every section recorded of the seeds' claims, so it runs after them; the book shows
    # it right after the introduction (BOOK_ORDER)
    SectionSpec("claims", ("01_teachers", "02_ensembles", "03_vit_revisit", "04_kd_cifar", "05_dkd_sweep",
                           "06_segmentation", "07_asgml", "08_deployment", "09_calibration")),
    SectionSpec("appendix", ("intro", "00_data", "01_teachers", "02_ensembles", "03_vit_revisit", "04_kd_cifar",
                             "05_dkd_sweep", "06_segmentation", "07_asgml", "08_deployment", "09_calibration")),
)

#: The order of the book's pages: build order, with the Claims page moved up to follow the introduction.
BOOK_ORDER = ("intro", "claims") + tuple(s.name for s in SECTIONS if s.name not in ("intro", "claims"))


def fer_lib_digest() -> str:
    """Hash of every fer_lib source file (code and bundled data)."""
    pkg = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*")):
        if f.is_file() and f.suffix in (".py", ".yaml") and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(pkg)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def stamp(spec: SectionSpec, profile: str, upstream: dict[str, str], code: str) -> str:
    root = paths.project_root()
    h = hashlib.sha256()
    h.update((root / "notebooks" / f"{spec.name}.ipynb").read_bytes())
    pf = params_file(spec.name, profile)
    h.update(pf.read_bytes() if pf.exists() else b"")
    h.update(f"{profile}\0{code}\0".encode())
    for dep in spec.depends_on:
        h.update(upstream.get(dep, "").encode())
    return h.hexdigest()


class SectionFailed(SystemExit):
    """A section's notebook raised. The message names the section, the cell and the kept notebook;
    as a SystemExit, ``fer-report`` prints it and exits with status 1 (no traceback of papermill)."""


def execute(spec: SectionSpec, profile: str, out: Path, failed_dir: Path | None = None) -> None:
    """Run one notebook with papermill into ``out`` (atomically: temp file, then rename).

    When a cell raises (or the kernel dies), the partially executed notebook (with the error in its
    cell) is kept as ``failed_dir/<section>.ipynb`` (default ``<book>/_build/failed/``, outside the
    book's sources) and ``SectionFailed`` is raised; a later successful run removes that copy.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    src = paths.project_root() / "notebooks" / f"{spec.name}.ipynb"
    pf = params_file(spec.name, profile)
    params = yaml.safe_load(pf.read_text()) if pf.exists() else {}
    params["profile"] = profile
    tmp = out.with_name(f".{out.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp.ipynb")  # per process: concurrent builds
    failed = (failed_dir or out.parent.parent / "_build" / "failed") / out.name
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(str(src), str(tmp), parameters=params, cwd=str(paths.project_root()),
                            progress_bar=False, log_output=False,
                            kernel_manager_class="fer_lib.report.kernels.IPCKernelManager")
        from .book import decorate_file

        decorate_file(tmp, profile, params, str(pf.relative_to(paths.project_root())) if pf.exists() else None,
                      paths.report_dir() / "provenance" / f"{spec.name}.json")
        os.replace(tmp, out)
        failed.unlink(missing_ok=True)
    except Exception as e:
        if not tmp.exists():  # papermill failed before executing anything: nothing to keep
            raise
        _write_atomic(failed, tmp.read_bytes())
        where = (f"at cell {e.cell_index} (In [{e.exec_count}]): {e.ename}: {e.evalue}"
                 if isinstance(e, PapermillExecutionError) else f"{type(e).__name__}: {e}")
        raise SectionFailed(f"[fer-report] section {spec.name} failed {where}\n"
                            f"[fer-report] the partially executed notebook is kept at {failed}") from e
    finally:
        tmp.unlink(missing_ok=True)


def _write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``path`` through a temporary file in its folder and a rename: it is never seen half-written."""
    with atomic_write(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)


def _read_stamps(path: Path) -> dict[str, str]:
    """The recorded section stamps. An unreadable file (e.g. cut short by an older, non-atomic write)
    is reported and treated as empty: the sections run again and the file is rebuilt."""
    if not path.exists():
        return {}
    try:
        recorded = json.loads(path.read_text())
        if not isinstance(recorded, dict):
            raise ValueError(f"expected a JSON object, got {type(recorded).__name__}")
        return recorded
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        warnings.warn(f"{path} is unreadable ({e}); ignoring it: the sections run again and it is rebuilt",
                      stacklevel=2)
        return {}


#: the stamps file also records the profile the executed sections were built with (``jupyter-book build book``
#: executes missing sections with it)
PROFILE_KEY = "_profile"


def built_profile(book: Path) -> str | None:
    """The profile of the sections already executed into ``book``, if any."""
    return _read_stamps(book / "sections" / ".stamps.json").get(PROFILE_KEY)


def run_sections(profile: str, book: Path, only: list[str] | None = None, force: bool = False,
                 log=print, jobs: int = 1) -> dict[str, str]:
    """Execute the (selected) sections in dependency order, up to ``jobs`` at once; returns {section: 'ran' |
    'skipped'}."""
    names = [s.name for s in SECTIONS]
    for n in only or []:
        if n not in names:
            raise SystemExit(f"--sections: unknown section {n!r}; expected some of {', '.join(names)}")
    # the notebooks' kernels inherit the report folder, the thread policy and the profile (use_profile), whatever
    # the user's shell exported; the caller's environment is restored afterwards
    kernel_env = {"FER_REPORT_DIR": os.environ.get("FER_REPORT_DIR", str(book / "_artifacts")), "FER_PROFILE": profile}
    with patch.dict(os.environ, kernel_env):
        share_cores()
        return _run_sections(profile, book, only, force, log, jobs)


def _run_sections(profile: str, book: Path, only: list[str] | None, force: bool, log, jobs: int = 1) -> dict[str, str]:
    stamps_file = book / "sections" / ".stamps.json"
    recorded = _read_stamps(stamps_file)
    code, current, status, todo = fer_lib_digest(), {}, {}, []
    for spec in SECTIONS:
        current[spec.name] = stamp(spec, profile, current, code)
        out = book / "sections" / f"{spec.name}.ipynb"
        if only and spec.name not in only:
            continue
        if not force and out.exists() and recorded.get(spec.name) == current[spec.name]:
            status[spec.name] = "skipped"
            log(f"[fer-report] {spec.name}: unchanged, skipped")
            continue
        todo.append(spec)

    def finished(spec: SectionSpec, seconds: float) -> None:  # called in this thread only: one stamps writer
        recorded[spec.name], recorded[PROFILE_KEY] = current[spec.name], profile
        _write_atomic(stamps_file, json.dumps(recorded, indent=1))
        status[spec.name] = "ran"
        log(f"[fer-report] {spec.name}: done in {seconds:.0f} s")

    _execute_in_order(todo, profile, book, max(1, jobs), finished, log)
    return status


def _execute_in_order(todo: list[SectionSpec], profile: str, book: Path, jobs: int, finished, log) -> None:
    """Run ``todo`` with up to ``jobs`` at once, each once every section of ``todo`` it depends on is done; the first
    failure stops new starts, lets the running ones end, and is raised."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    waiting, running, done = list(todo), {}, set()
    names = {spec.name for spec in todo}

    def timed(spec: SectionSpec) -> float:
        t0 = time.perf_counter()
        execute(spec, profile, book / "sections" / f"{spec.name}.ipynb")
        return time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        failure = None
        while (waiting and failure is None) or running:
            for spec in [s for s in waiting if all(d in done or d not in names for d in s.depends_on)]:
                if len(running) >= jobs or failure is not None:
                    break
                log(f"[fer-report] {spec.name}: running ({profile}) ...")
                running[pool.submit(timed, spec)] = spec
                waiting.remove(spec)
            ended, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in ended:
                spec = running.pop(future)
                if future.exception() is not None:
                    failure = failure or future.exception()
                    continue
                done.add(spec.name)
                finished(spec, future.result())
        if failure is not None:
            raise failure


def build_book(book: Path, log=print) -> None:
    if not (Path(book) / "_config.yml").is_file():  # Jupyter Book would build with its defaults, silently
        raise SystemExit(f"jupyter-book build: {Path(book) / '_config.yml'} is missing (or a link to nothing: book/'s "
                         "is a link to ../_config.yml). Copy the book with `cp -rL`, or give the project's book folder")
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else shutil.which("jupyter-book") or "jupyter-book", "build", str(book),
           "-W", "--keep-going"]
    log(f"[fer-report] {' '.join(cmd)}")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(res.stdout)
    if res.returncode != 0:
        problems = [ln for ln in res.stdout.splitlines() if re.search(r"WARNING|ERROR|CRITICAL", ln)]
        raise SystemExit(f"jupyter-book build failed (exit {res.returncode}); warnings are errors:\n"
                         + "\n".join(problems[:40]))
    log(f"[fer-report] book built in {time.perf_counter() - t0:.0f} s: {book / '_build' / 'html' / 'index.html'}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="fer-report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke", choices=PROFILES)
    ap.add_argument("--sections", nargs="*", help="run only these sections (default: all)")
    ap.add_argument("--force", action="store_true", help="re-execute even if unchanged")
    ap.add_argument("--no-build", action="store_true", help="do not build the book")
    ap.add_argument("--jobs", type=int, default=1, help="sections run at once, each in its own kernel, once the "
                    "sections it depends on are done (default 1; 2 pays on a book read from published results)")
    ap.add_argument("--book", default=str(paths.project_root() / "book"), help="book folder (default: ./book)")
    ap.add_argument("--check", action="store_true",
                    help="build every run's config and model at its real size and step it once on the CPU; list the "
                         "weights each run starts from and the data roots that are missing (no training, no book)")
    ap.add_argument("--strict", action="store_true", help="with --check: also fail on missing data or weights")
    ap.add_argument("--no-train", action="store_true",
                    help="read runs only (after a sweep): fail, naming every missing run and the command that trains "
                         "it, instead of training on this machine")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error")
    a = ap.parse_args(argv)
    from ..tasks.errors import run_command

    sys.exit(run_command("fer-report", lambda: report(a), debug=a.debug))


def missing_runs(profile: str, sections: list[str] | None) -> list[str]:
    """``<run>: <command that trains it>`` for every run the sections read that no store holds."""
    from ..runs import RunStore
    from ..tasks.kinds import get_run_kind
    from ..launch.plan import plan_profile

    store = RunStore()
    out = []
    for label, run in plan_profile(profile, sections, store).items():
        # a run computed in seconds from stored runs (an ensemble) is made by its section, not trained
        if run.key and get_run_kind(run.kind).trains and store.find(run.kind, run.key) is None:
            out.append(f"  {label} ({run.kind} {run.key}): fer-train --section {run.section} --profile {profile} "
                       f"--only {run.name}")
    return out


def report(a) -> int:
    if a.check:
        from .check import main_check

        raise SystemExit(main_check(a.profile, a.sections, a.strict))
    book = Path(a.book).resolve()
    t0 = time.perf_counter()
    if a.no_train:
        missing = missing_runs(a.profile, a.sections)
        if missing:
            raise SystemExit(f"[fer-report] --no-train: {len(missing)} run(s) the sections read are in no store:\n"
                             + "\n".join(missing) + f"\n[fer-report] or train them all: fer-train --profile "
                             f"{a.profile} --launcher slurm (or local)")
    # with --no-train the kernels refuse to train, should anything be missed; the caller's environment is restored
    with patch.dict(os.environ, {"FER_NO_TRAIN": "1"} if a.no_train else {}):
        run_sections(a.profile, book, a.sections, a.force, jobs=a.jobs)
        if not a.no_build:
            build_book(book)
    print(f"[fer-report] total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    main()
