"""``fer-report --jobs N``: sections run N at once, each only after the sections it depends on; stamps stay whole."""
from __future__ import annotations

import json
import threading
import time

import pytest

from fer_lib.report import pipeline


def fake_execute(log: list, lock: threading.Lock, fail: str | None = None):
    def execute(spec, profile, out):
        with lock:
            log.append(("start", spec.name))
        time.sleep(0.05)
        if spec.name == fail:
            raise pipeline.SectionFailed(f"section {spec.name} failed")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("{}")
        with lock:
            log.append(("end", spec.name))
    return execute


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_sections_start_only_after_their_dependencies_and_at_most_jobs_at_once(tmp_path, monkeypatch, jobs):
    events, lock = [], threading.Lock()
    monkeypatch.setattr(pipeline, "execute", fake_execute(events, lock))
    status = pipeline.run_sections("smoke", tmp_path, log=lambda *a: None, jobs=jobs)
    assert status == {spec.name: "ran" for spec in pipeline.SECTIONS}
    ended_at = {name: i for i, (what, name) in enumerate(events) if what == "end"}
    for i, (what, name) in enumerate(events):
        if what == "start":
            spec = next(s for s in pipeline.SECTIONS if s.name == name)
            assert all(ended_at[d] < i for d in spec.depends_on), f"{name} started before {spec.depends_on}"
    running = peak = 0
    for what, _ in events:
        running += 1 if what == "start" else -1
        peak = max(peak, running)
    assert peak == jobs  # the pool is used, and never beyond it
    stamps = json.loads((tmp_path / "sections" / ".stamps.json").read_text())
    assert {spec.name for spec in pipeline.SECTIONS} <= set(stamps)
    assert set(pipeline.run_sections("smoke", tmp_path, log=lambda *a: None, jobs=jobs).values()) == {"skipped"}


def test_a_failed_section_stops_new_starts_and_is_raised(tmp_path, monkeypatch):
    events, lock = [], threading.Lock()
    monkeypatch.setattr(pipeline, "execute", fake_execute(events, lock, fail="01_teachers"))
    with pytest.raises(pipeline.SectionFailed, match="01_teachers"):
        pipeline.run_sections("smoke", tmp_path, log=lambda *a: None, jobs=2)
    started = [name for what, name in events if what == "start"]
    assert "02_ensembles" not in started and "claims" not in started  # they depend on 01
    stamps = json.loads((tmp_path / "sections" / ".stamps.json").read_text())
    assert "01_teachers" not in stamps and "00_data" in stamps  # what finished is recorded, what failed is not
