import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own run store, data cache and report dir (never the project's)."""
    base = tmp_path_factory.mktemp("fer_env")
    for var, sub in (("FER_RUNS", "runs"), ("FER_CACHE", "cache"), ("FER_REPORT_DIR", "report")):
        if var not in os.environ or not os.environ[var].startswith(str(base.parent)):
            monkeypatch.setenv(var, str(base / sub))
    yield


def expected_seconds(item) -> float:
    """What a test declares it takes (``@pytest.mark.slow(seconds=...)``, ``pytest.mark.slurm(seconds=...)``: 2 AMD
    EPYC cores, alone); 0 for a unit test."""
    marks = [m for name in ("slow", "slurm") if (m := item.get_closest_marker(name)) is not None]
    return max((float(m.kwargs.get("seconds", 60)) for m in marks), default=0.0)


def pytest_collection_modifyitems(config, items):
    """The longest tests first (a stable sort: the rest keep their order). `pytest -n 2 --dist load` deals its first
    tests out in turn, so the two longest start at once on the two workers and the unit tests fill the gaps."""
    items.sort(key=lambda item: -expected_seconds(item))


def pytest_terminal_summary(terminalreporter):
    """Timings a test recorded with ``record_property("timing", ...)`` (the smoke and real-cpu builds' seconds per
    section), at the end of the run: output printed inside a pytest-xdist worker would not reach the log."""
    reports = [*terminalreporter.stats.get("passed", []), *terminalreporter.stats.get("failed", [])]
    lines = [f"{report.nodeid.split('::')[-1]}: {value}" for report in reports
             for name, value in report.user_properties if name == "timing"]
    if lines:
        terminalreporter.section("timings")
        for line in lines:
            terminalreporter.write_line(line)
