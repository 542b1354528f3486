"""``fer-runs``: the run store's command -- what a profile needs, publishing it, sharing it, checking it.

    fer-runs list --profile real-cpu             every run the profile's notebooks ask for: local, published or missing
    fer-runs publish --profile real-cpu          copy its finished runs into results/real-cpu/ (what the book reads)
    fer-runs export --profile paper runs.tar.gz  the profile's finished local runs, whole, in one archive
    fer-runs import runs.tar.gz [--replace]      add an export to the local store (checked member by member)
    fer-runs verify KEY|PATH [--profile P]       retrain one run in a scratch store (with any run it reads that must be
                                                 recomputed), compare each with its stored copy, record it
    fer-runs rekey --profile P --kind K --reason TEXT
                                                 after a loader's fingerprint rule was corrected: move each stored run
                                                 of K to the key its config gives under its data's new fingerprint

The local store is ``FER_RUNS`` (``<project>/runs``); published tiers are ``results/<profile>/`` (or
``FER_RESULTS``), read after the local store and never written but by ``publish``. Every run that moves is checked
first: its files against its manifest, its key against its config.json (``run_key``).
"""
from __future__ import annotations

import argparse
import errno
import math
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from .. import paths
from ..config.params import PROFILES
from ..runs import Run, RunStore
from ..runs import ledger, measurements
from ..runs.manifest import CorruptRunError
from ..runs.provenance import git_commit, now
from ..runs.transfer import (MAX_ARCHIVE_MB, MAX_FILE_MB, AnotherTrainingError, check_run, dir_bytes, export_runs,
                             import_archive, publish_run, training_id)
from ..tasks.errors import run_command
from ..tasks.kinds import get_run_kind, keeps_no_weights, weights_read_kinds
from ..launch.plan import PlannedRun, plan_profile, stored


def run_key(kind: str, config: dict, data_fingerprint: str) -> str:
    """The key the store gives a run of ``kind`` with this stored config (its ``key_dict()``, as config.json holds
    it) and data: the kinds it reads come from the kind's registry entry, whose ``reads`` looks at the config's
    fields (a student reads teachers when it names some)."""
    reads = get_run_kind(kind).reads(SimpleNamespace(**config))
    return RunStore(Path(".")).key(kind, config, data_fingerprint, reads)


def status_table(plan: dict[str, PlannedRun], store: RunStore) -> pd.DataFrame:
    """One row per planned run: where it is, its size and what it took to train."""
    rows = []
    for label, planned in plan.items():
        run, status = stored(planned, store)
        prov = run.provenance if run is not None else {}
        rows.append({"run": label, "kind": planned.kind, "key": planned.key or "-", "status": status,
                     "MB": round(dir_bytes(run.path) / 1e6, 2) if run is not None else None,
                     "train min": round(prov["wall_seconds"] / 60, 1) if prov.get("wall_seconds") else None,
                     "resumed": bool(prov.get("resumed")),
                     "trained on": prov.get("cpu") or prov.get("device", "") if prov else "",
                     "sections": ", ".join(s[:2] for s in planned.sections)})
    return pd.DataFrame(rows)


def weights_needed(plan: dict[str, PlannedRun], store: RunStore) -> set[str]:
    """Keys of the runs whose weights the published tier keeps: each kind's publish rule
    (``RunKind.published_weights``) over each section's stored runs of that kind -- for section 06, the arm it
    selects on validation F-score. Every other run publishes its outputs and metrics, which is all the book reads."""
    groups: dict[tuple[str, str], dict[str, tuple[str, Run]]] = {}
    for planned in plan.values():
        if get_run_kind(planned.kind).published_weights is keeps_no_weights:
            continue  # the default rule keeps none: no need to look the run up
        run = store.find(planned.kind, planned.key) if planned.key else None
        if run is not None:
            groups.setdefault((planned.kind, planned.section), {})[planned.name] = (planned.key, run)
    keep = set()
    for (kind, _), runs in groups.items():
        chosen = get_run_kind(kind).published_weights({name: run for name, (_, run) in runs.items()})
        keep |= {runs[name][0] for name in chosen}
    return keep


def cmd_list(a) -> int:
    store = RunStore()
    table = status_table(plan_profile(a.profile, a.sections, store), store)
    with pd.option_context("display.max_rows", None, "display.width", 220, "display.max_colwidth", 60):
        print(table.to_string(index=False))
    counts = table["status"].value_counts().to_dict()
    minutes = table["train min"].sum()
    print(f"\n{a.profile}: {len(table)} runs -- " + ", ".join(f"{n} {s}" for s, n in counts.items()) +
          f"; {table['MB'].sum():.1f} MB; {minutes:.0f} min of training recorded")
    if table["resumed"].any():
        print("resumed: the run was interrupted and resumed from its last epoch; its time is the last attempt's only")
    return 0


def cmd_publish(a) -> int:
    store = RunStore(published=[])  # publish copies local runs only
    plan = plan_profile(a.profile, a.sections, RunStore())
    tier = Path(a.to) if a.to else paths.results_dir() / a.profile
    keep = weights_needed(plan, RunStore())
    meta = {"published": now(), "profile": a.profile, "published_from_commit": git_commit()}
    changed = unchanged = 0
    missing, damaged, kept = [], [], []
    for label, planned in plan.items():
        run = store.find(planned.kind, planned.key) if planned.key else None
        if run is None:
            missing.append(label)
            continue
        try:
            _, did = publish_run(run.path, tier, keep_weights=planned.key in keep, keep_hostname=a.keep_hostname,
                                 key_of=run_key, replace_training=a.replace_training, **meta)
        except CorruptRunError as exc:  # named below, never copied
            damaged.append(f"{label}: {exc}")
            continue
        except AnotherTrainingError as exc:
            kept.append(f"{label}: {exc}")
            unchanged += 1
            continue
        changed += did
        unchanged += not did
    measured = measurements.publish(tier)  # section 08's latencies, with the hardware they were measured on
    verified = ledger.merge(paths.runs_dir() / ledger.LEDGER, tier / ledger.LEDGER)  # where runs were reproduced
    size = dir_bytes(tier) / 1e6 if tier.is_dir() else 0.0
    print(f"fer-runs publish: {changed} run(s) written, {unchanged} already published, into {tier} "
          f"({size:.1f} MB in all; {measured} kept measurement(s) and {verified} new verification(s) merged)")
    for line in kept:
        print(f"  published copy kept: {line}")
    if missing:
        per_section = Counter(label.split("/")[0] for label in missing)
        print(f"  not in the local store ({len(missing)}; `fer-runs list --profile {a.profile}` names them): "
              + ", ".join(f"{section} {n}" for section, n in per_section.items()))
    for line in damaged:
        print(f"fer-runs publish: NOT published, damaged: {line}", file=sys.stderr)
    if size > a.max_mb:
        print(f"fer-runs publish: {tier} holds {size:.1f} MB, over the {a.max_mb:.0f} MB budget", file=sys.stderr)
        return 1
    return 1 if damaged else 0


def cmd_export(a) -> int:
    store = RunStore(published=[])
    plan = plan_profile(a.profile, a.sections, store)
    runs = [r for p in plan.values() if p.key and (r := store.find(p.kind, p.key)) is not None]
    size = export_runs([r.path for r in runs], Path(a.archive), key_of=run_key)
    print(f"fer-runs export: {len(runs)} of {len(plan)} runs of {a.profile} -> {a.archive} ({size / 1e6:.1f} MB)")
    return 0


def cmd_import(a) -> int:
    root = RunStore().root
    added, present = import_archive(Path(a.archive), root, key_of=run_key, replace=a.replace,
                                    max_file_mb=a.max_file_mb, max_archive_mb=a.max_archive_mb)
    print(f"fer-runs import: {len(added)} run(s) added to {root}, {len(present)} already there (the local copy kept"
          + ("" if a.replace or not present else "; --replace puts the archive's in place of one that differs") + ")")
    return 0


class _ScratchStore(RunStore):
    """A scratch store that recomputes ``target`` and reads everything else it can from ``sources``; a published
    run without weights whose readers load them (``RunKind.weights_read``: a student its teachers') is recomputed
    too."""

    def __init__(self, root: Path, sources: list[Path], target: str):
        super().__init__(root, published=sources, weights_of=weights_read_kinds())
        self.target = target

    def find(self, kind: str, key: str) -> Run | None:
        if key == self.target:
            return Run(self.path(kind, key), hit=True) if self.path(kind, key).is_dir() else None
        return super().find(kind, key)


def flat_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_metrics(v, name + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[name] = float(v)
        elif isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            out.update({f"{name}[{i}]": float(x) for i, x in enumerate(v)})
    return out


def compare_metrics(published: dict, recomputed: dict) -> pd.DataFrame:
    """Every numeric metric of either run: both values and their absolute difference (NaN where one lacks it)."""
    a, b = flat_metrics(published), flat_metrics(recomputed)
    def diff(k: str) -> float:
        if k not in a or k not in b:
            return float("nan")
        if math.isnan(a[k]) and math.isnan(b[k]):
            return 0.0  # undefined in both (a metric of a class with no support): equal
        return abs(a[k] - b[k])

    rows = [{"metric": k, "published": a.get(k), "recomputed": b.get(k), "abs diff": diff(k)}
            for k in sorted(set(a) | set(b))]
    return pd.DataFrame(rows)


def cmd_verify(a) -> int:
    from ..tasks.sections import load_data, train_run

    target = Path(a.run).name if Path(a.run).is_dir() else a.run
    profiles = [a.profile] if a.profile else list(PROFILES)
    planned = None
    for profile in profiles:
        plan = plan_profile(profile)
        planned = next((p for p in plan.values() if p.key == target), None)
        if planned is not None:
            break
    if planned is None:
        raise SystemExit(f"fer-runs verify: no run of {', '.join(profiles)} has the key {target!r}; "
                         "`fer-runs list --profile P` shows the keys")
    if not get_run_kind(planned.kind).trains:
        raise SystemExit(f"fer-runs verify: a {planned.kind} run is computed from the runs it reads in seconds; "
                         "verify those instead")
    original = RunStore().find(planned.kind, target)
    if original is None:
        raise SystemExit(f"fer-runs verify: {planned.label} ({target}) is in no store yet: nothing to compare")
    check_run(original.path, run_key, original.recover, need_manifest=original.published)
    by_key = {p.key: p for p in plan.values() if p.key}
    if a.local:
        return _verify_local(planned, plan)
    passed = True
    with tempfile.TemporaryDirectory(prefix="fer-verify-", dir=a.scratch) as scratch:
        store = _ScratchStore(Path(scratch), [RunStore().root, *RunStore().published], target)
        print(f"fer-runs verify: retraining {planned.label} ({planned.kind} {target}) in {scratch}")
        train_run(planned.kind, planned.config, load_data(planned.kind, planned.data_params), store=store)
        # the run, and every run it read that had to be recomputed (a teacher published without weights)
        for kind in sorted(p.name for p in Path(scratch).iterdir() if p.is_dir()):
            for fresh in store.runs(kind):
                if fresh.key in by_key and (stored_copy := RunStore().find(kind, fresh.key)) is not None:
                    passed &= _record_verification(by_key[fresh.key], stored_copy, fresh, plan)
    return 0 if passed else 1


def _verify_local(planned: PlannedRun, plan: dict[str, PlannedRun]) -> bool:
    """``verify --local``: the local store's own training of ``planned`` against its published copy."""
    local = RunStore(published=[]).find(planned.kind, planned.key)
    published = next((Run(t / planned.kind / planned.key, published=True) for t in RunStore().published
                      if (t / planned.kind / planned.key).is_dir()), None)
    if local is None or published is None:
        raise SystemExit(f"fer-runs verify --local: {planned.label} needs a local copy and a published one; it has "
                         f"{'a' if local else 'no'} local and {'a' if published else 'no'} published copy")
    if training_id(local.path) == training_id(published.path):
        raise SystemExit(f"fer-runs verify --local: the local copy of {planned.label} is the published training "
                         "itself (same start): nothing was reproduced; drop --local to retrain it")
    for run in (local, published):
        check_run(run.path, run_key, run.recover, need_manifest=True)
    print(f"fer-runs verify: comparing the local training of {planned.label} ({planned.kind} {planned.key}) with "
          "its published copy")
    return 0 if _record_verification(planned, published, local, plan) else 1


def _record_verification(planned: PlannedRun, original: Run, fresh: Run, plan: dict[str, PlannedRun]) -> bool:
    """Compare a recomputed run with its stored copy, print the differences and append the ledger entry."""
    from ..config.params import arm_and_seed

    arm = arm_and_seed(planned.name)[0]
    siblings = [RunStore().find(p.kind, p.key) for p in plan.values()
                if (p.section, p.kind, arm_and_seed(p.name)[0]) == (planned.section, planned.kind, arm)
                and p.key not in (None, planned.key)]
    seeds = [flat_metrics(run.metrics) for run in siblings if run is not None]  # the arm's other stored seeds
    table = compare_metrics(original.metrics, fresh.metrics)
    prov_a, prov_b = original.provenance, fresh.provenance  # where each ran, as the run records it
    differs = table[~(table["abs diff"] == 0)]
    print(f"{planned.label} ({planned.kind} {planned.key}):")
    print(f"  stored: trained {prov_a.get('finished', '?')} on {prov_a.get('cpu') or prov_a.get('device')} "
          f"(torch {prov_a.get('torch')}, commit {prov_a.get('git_commit')})")
    print(f"  recomputed: {prov_b.get('finished')} on {prov_b.get('cpu')} (torch {prov_b.get('torch')}, commit "
          f"{prov_b.get('git_commit')})")
    print(f"  {len(table)} metrics compared: {len(table) - len(differs)} equal, {len(differs)} differ"
          + (f" (largest difference {differs['abs diff'].max():.3g})" if len(differs) else ""))
    if len(differs):
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(differs.to_string(index=False))
    entry = verification_entry(planned, table, prov_a, prov_b, seeds)
    ledger.append(paths.runs_dir() / ledger.LEDGER, entry)
    for name, h in entry["headline"].items():
        print(f"  {name}: |difference| {h['abs_diff']:.4g}, tolerance {h['tolerance']:.4g} ({h['from']})")
    print(f"fer-runs verify: {planned.label} {'passed' if entry['passed'] else 'FAILED'} ({entry['rule']}); "
          f"recorded in {paths.runs_dir() / ledger.LEDGER} (`fer-runs publish` carries it into the published tier)")
    return entry["passed"]


def verification_entry(planned: PlannedRun, table: pd.DataFrame, trained: dict, here: dict,
                       seeds: list[dict[str, float]] = ()) -> dict:
    """The ledger entry of one verification: where, with what, the largest |difference| per metric name, and each
    headline metric's |difference| with its cross-machine tolerance (from ``seeds``, the flat metrics of the arm's
    other seeds) and where that tolerance came from; ``ledger`` states the rule."""
    from ..config.params import arm_and_seed

    leaf = table["metric"].str.split(".").str[-1].str.replace(r"\[\d+\]$", "", regex=True)
    max_abs = table.assign(leaf=leaf).groupby("leaf")["abs diff"].max().fillna(float("inf")).to_dict()
    bitwise = bool((table["abs diff"] == 0).all())
    delta = {m: float(d) for m, d in zip(table["metric"], table["abs diff"].fillna(float("inf")))
             if ledger.is_headline(m)}
    arm = f"{planned.section}/{arm_and_seed(planned.name)[0]}"
    tolerance = ledger.tolerances(planned.kind, arm, list(delta), list(seeds),
                                  fallback=get_run_kind(planned.kind).cross_machine_fallback)
    same = ledger.same_machine(trained, here)
    cpu = trained.get("cpu") or trained.get("device")
    trained_on = (f"{cpu!r}, machine {trained['machine_id']}" if trained.get("machine_id") else
                  f"{cpu!r}, machine identity not recorded")
    return {"key": planned.key, "kind": planned.kind, "run": planned.label,
            "machine": f"{here.get('cpu')} ({here.get('device')})", "machine_id": here.get("machine_id"),
            "trained_on": trained_on, "torch": here.get("torch"),
            "fer_lib": here.get("fer_lib"), "commit": here.get("git_commit"), "date": now(),
            "n_metrics": int(len(table)), "n_equal": int((table["abs diff"] == 0).sum()), "bitwise": bitwise,
            "max_abs_delta": {k: float(v) for k, v in sorted(max_abs.items())},
            "headline": {m: {"abs_diff": delta[m], **tolerance[m]} for m in sorted(delta)},
            "rule": (f"bitwise on the machine that trained it ({here.get('machine_id')})" if same else
                     f"trained on {trained_on}: every headline metric within its cross-machine tolerance"),
            "passed": ledger.passes(same, bitwise, delta, {m: t["tolerance"] for m, t in tolerance.items()})}


def cmd_rekey(a) -> int:
    """Re-key every run of one kind in the published tier (or the local store) to the fingerprint its own ``data``
    config gives today, loaded by the kind's registered loader (``fer_lib.runs.rekey``)."""
    from ..config import config_hash
    from ..runs.rekey import rekey_run

    root = (paths.runs_dir() if a.local else Path(a.tier) if a.tier else paths.results_dir() / a.profile) / a.kind
    if not root.is_dir():
        raise FileNotFoundError(f"no runs of kind {a.kind!r} in {root}")
    load_data, fingerprints, moved, unchanged = get_run_kind(a.kind).load_data, {}, [], 0

    def fingerprint_of(config: dict) -> str:  # each data config loaded once
        if config.get("data") is None:
            raise ValueError(f"a stored config of kind {a.kind!r} has no 'data' config to fingerprint: it cannot be "
                             "re-keyed this way")
        name = config_hash(config["data"])
        if name not in fingerprints:
            fingerprints[name] = load_data(config["data"]).fingerprint
        return fingerprints[name]

    for run_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        new = rekey_run(run_dir, fingerprint_of, run_key, a.reason)
        if new is None:
            unchanged += 1
        else:
            moved.append(f"{run_dir.name} -> {new.name}")
    print(f"fer-runs rekey: {len(moved)} run(s) of {a.kind} re-keyed, {unchanged} already under their data's "
          f"fingerprint, in {root}")
    for line in moved:
        print(f"  {line}")
    if moved and not a.local:
        print("  publish-time manifests kept; commit the tier (the ledger keeps the old keys: sections count them)")
    return 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="fer-runs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    def with_profile(p, default="smoke"):
        p.add_argument("--profile", default=default, choices=PROFILES)
        p.add_argument("--sections", nargs="*", help="only these sections (default: all)")
        return p

    with_profile(sub.add_parser("list", help="every run the profile asks for: local, published or missing"))
    p = with_profile(sub.add_parser("publish", help="copy the profile's finished runs into results/<profile>/"))
    p.add_argument("--to", help="publish into this folder instead of results/<profile>/")
    p.add_argument("--max-mb", type=float, default=80.0, help="fail when the published tier grows past this (MB)")
    p.add_argument("--keep-hostname", action="store_true", help="keep the training machine's name in provenance.json")
    p.add_argument("--replace-training", action="store_true",
                   help="publish a local run over another training of its key already published (default: keep the "
                        "published one, which the runs computed from it read)")
    p = with_profile(sub.add_parser("export", help="the profile's finished local runs into one .tar.gz"))
    p.add_argument("archive")
    p = sub.add_parser("import", help="add the runs of an exported archive to the local store")
    p.add_argument("archive")
    p.add_argument("--replace", action="store_true", help="put the archive's copy of a run in place of a local copy "
                                                           "whose content differs (a damaged one)")
    p.add_argument("--max-file-mb", type=float, default=MAX_FILE_MB, help="refuse a member larger than this (MB)")
    p.add_argument("--max-archive-mb", type=float, default=MAX_ARCHIVE_MB,
                   help="refuse an archive that unpacks to more than this (MB)")
    p = sub.add_parser("verify", help="retrain one run in a scratch store and compare its metrics")
    p.add_argument("run", help="a run's key or its folder")
    p.add_argument("--profile", choices=PROFILES, help="the profile that defines it (default: look in all)")
    p.add_argument("--scratch", help="where the scratch store goes (default: the system's temporary folder)")
    p.add_argument("--local", action="store_true",
                   help="compare the local store's own training of the run (a teacher fer-train trained again for its "
                        "weights) with the published copy, instead of retraining")
    p = sub.add_parser("rekey", help="after a loader's fingerprint rule was corrected (not its data): move a kind's "
                                     "stored runs to the keys their data's new fingerprint gives")
    p.add_argument("--profile", default="smoke", choices=PROFILES, help="whose published tier (results/<profile>/)")
    p.add_argument("--kind", required=True, help="the kind of run whose loader changed (e.g. av)")
    p.add_argument("--reason", required=True, help="why, recorded in each run's provenance.json")
    p.add_argument("--tier", help="re-key this published tier instead of results/<profile>/")
    p.add_argument("--local", action="store_true", help="re-key the local store (FER_RUNS) instead")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error")
    a = ap.parse_args(argv)
    commands = {"list": cmd_list, "publish": cmd_publish, "export": cmd_export, "import": cmd_import,
                "verify": cmd_verify, "rekey": cmd_rekey}
    sys.exit(run_command(f"fer-runs {a.command}", lambda: _on_full_disk(commands[a.command], a), debug=a.debug))


#: what a full disk leaves behind, per command: each writes whole runs (or a whole archive) through a temporary
#: folder or file that is removed, so none "resumes" -- it is run again
AFTER_FULL_DISK = {
    "publish": "Every run published before stays whole; the others were not written. Free space and publish again.",
    "import": "Nothing was imported half-way (the archive is unpacked in a temporary folder, removed). Free space in "
              "the run store (or point FER_RUNS at a bigger disk) and import again.",
    "export": "No archive was written. Free space, or export to another disk.",
    "verify": "The scratch store was removed. Free space there (or give --scratch on a bigger disk) and verify again.",
    "rekey": "Each run is re-keyed through a temporary copy renamed into place: free space and re-key again.",
}


def _on_full_disk(command, a) -> int:
    """Run ``command``; a full disk becomes one line saying what was kept and what to do for this command."""
    try:
        return command(a)
    except OSError as exc:
        if exc.errno != errno.ENOSPC or a.command not in AFTER_FULL_DISK:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        raise OSError(f"the disk is full{where}. {AFTER_FULL_DISK[a.command]}") from exc


if __name__ == "__main__":
    main()
