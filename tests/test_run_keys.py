"""Every run of every profile keeps its key across refactors.

``tests/data/run_keys.json`` records, for each profile, section and run, the key the store gives its config with a
fixed data fingerprint (the real one needs the data; the config and the compute versions are what a refactor can
change). A change that moves a key on purpose -- a compute version bump, a new config field -- regenerates it
with ``python tests/test_run_keys.py --update`` in its own commit, and says so.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import json
import sys
from pathlib import Path

from fer_lib.config import added_field

from fer_lib.config.params import PROFILES, load_params, params_file
from fer_lib.runs import RunStore
from fer_lib.tasks.ensemble import ensemble_key_parts
from fer_lib.tasks.kinds import get_run_kind
from fer_lib.tasks.sections import SECTION_BUILDERS, section_runs

SNAPSHOT = Path(__file__).parent / "data" / "run_keys.json"
FINGERPRINT = "fixed-fingerprint"


def all_runs():
    """(profile, "section/run", kind, config) of every run every profile's notebooks ask for."""
    for profile in PROFILES:
        for section in SECTION_BUILDERS:
            _, runs = section_runs(section, load_params(params_file(section, profile)), profile)
            for name, (kind, cfg) in runs.items():
                yield profile, f"{section}/{name}", kind, cfg


def run_key(store: RunStore, kind: str, cfg) -> str:
    return store.key(kind, cfg.key_dict(), FINGERPRINT, get_run_kind(kind).reads(cfg))


def all_keys() -> dict[str, dict[str, str]]:
    store = RunStore("/nonexistent", published=[])
    keys: dict[str, dict[str, str]] = {profile: {} for profile in PROFILES}
    for profile, name, kind, cfg in all_runs():
        keys[profile][name] = run_key(store, kind, cfg)
    for profile in PROFILES:
        out = keys[profile]
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


# ----------------------------------------------------------------------------- key stability (CONTRIBUTING: Run keys)
@functools.cache
def _extended(cls):
    """``cls`` with one more field, declared the way a new field must be: ``added_field`` with a default."""
    return dataclasses.make_dataclass(cls.__name__, [("added_knob", int, added_field(0, since="test"))],
                                      bases=(cls,), frozen=True)


def _with_added_field(node, value: int):
    new = object.__new__(_extended(type(node)))
    for f in dataclasses.fields(node):
        object.__setattr__(new, f.name, getattr(node, f.name))
    object.__setattr__(new, "added_knob", value)
    return new


def _config_nodes(cfg, path=()):
    """The path of every config dataclass inside ``cfg`` (itself included; tuple items by index)."""
    yield path
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            yield from _config_nodes(value, path + (f.name,))
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    yield from _config_nodes(item, path + ((f.name, i),))


def _replace_at(cfg, path, make):
    if not path:
        return make(cfg)
    step, rest = path[0], path[1:]
    out = copy.copy(cfg)
    if isinstance(step, tuple):
        name, i = step
        items = list(getattr(cfg, name))
        items[i] = _replace_at(items[i], rest, make)
        object.__setattr__(out, name, tuple(items))
    else:
        object.__setattr__(out, step, _replace_at(getattr(cfg, step), rest, make))
    return out


def test_a_field_added_with_its_default_leaves_every_key_unchanged_and_a_set_value_moves_it():
    """Adding a field to any config class at any depth (``added_field``, default 0) leaves the key of every run of
    every profile -- the published ones among them -- as recorded; giving it another value changes the key."""
    recorded = json.loads(SNAPSHOT.read_text())
    store = RunStore("/nonexistent", published=[])
    checked = 0
    for profile, name, kind, cfg in all_runs():
        for path in _config_nodes(cfg):
            same = _replace_at(cfg, path, lambda node: _with_added_field(node, 0))
            assert run_key(store, kind, same) == recorded[profile][name], (profile, name, path)
            moved = _replace_at(cfg, path, lambda node: _with_added_field(node, 1))
            assert run_key(store, kind, moved) != recorded[profile][name], (profile, name, path)
            checked += 1
    assert checked > 1000


def test_a_retired_field_keeps_its_last_value_in_the_key():
    """Removing a field from a config class moves every key; naming its last value in ``RETIRED_KEY_FIELDS`` keeps
    them."""
    from fer_lib.config import TrainConfig, key_fields

    full = key_fields(TrainConfig())
    name, value = "label_smoothing", full["label_smoothing"]
    fields = [(f.name, f.type, f) for f in dataclasses.fields(TrainConfig) if f.name != name]
    without = dataclasses.make_dataclass("TrainConfig", fields, frozen=True)
    assert key_fields(without()) != full
    without.RETIRED_KEY_FIELDS = {name: value}
    assert key_fields(without()) == full


if __name__ == "__main__" and "--update" in sys.argv:
    SNAPSHOT.write_text(json.dumps(all_keys(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
