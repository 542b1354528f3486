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
