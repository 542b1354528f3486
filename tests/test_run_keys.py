"""Every run of every profile keeps its key across refactors.

``tests/data/run_keys.json`` records, for each profile, section and run, the key the store gives its config with a
fixed data fingerprint (the real one needs the data; the config and the compute versions are what a refactor can
change). A change that moves a key on purpose -- a compute version bump, a new config field -- regenerates it
with ``python tests/test_run_keys.py --update`` in its own commit, and says so.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from fer_lib.config.params import PROFILES, load_params, params_file
from fer_lib.runs import RunStore
from fer_lib.tasks.ensemble import ensemble_key_parts
from fer_lib.tasks.kinds import get_run_kind
from fer_lib.tasks.sections import SECTIONS, section_runs

SNAPSHOT = Path(__file__).parent / "data" / "run_keys.json"
FINGERPRINT = "fixed-fingerprint"


def all_keys() -> dict[str, dict[str, str]]:
    store = RunStore("/nonexistent", published=[])
    keys: dict[str, dict[str, str]] = {}
    for profile in PROFILES:
        out = keys[profile] = {}
        for section in SECTIONS:
            _, runs = section_runs(section, load_params(params_file(section, profile)), profile)
            for name, (kind, cfg) in runs.items():
                reads = get_run_kind(kind).reads(cfg)
                out[f"{section}/{name}"] = store.key(kind, cfg.key_dict(), FINGERPRINT, reads)
        p02 = load_params(params_file("02_ensembles", profile))
        for name, spec in p02["ensembles"].items():
            members = [out[f"01_teachers/{m}"] for m in spec["members"]]
            config, fp = ensemble_key_parts(spec["members"], members, p02["step"], spec.get("weights"))
            out[f"02_ensembles/{name}"] = store.key("ensemble", config, fp)
    return keys


def test_every_run_of_every_profile_keeps_its_key():
    recorded = json.loads(SNAPSHOT.read_text())
    current = all_keys()
    for profile in PROFILES:
        moved = {run: (recorded[profile].get(run), key) for run, key in current[profile].items()
                 if recorded[profile].get(run) != key}
        assert not moved, f"{profile}: keys moved (old, new): {moved}"
        assert set(recorded[profile]) == set(current[profile])


if __name__ == "__main__" and "--update" in sys.argv:
    SNAPSHOT.write_text(json.dumps(all_keys(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
