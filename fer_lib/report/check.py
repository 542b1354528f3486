"""``fer-report --profile paper --check``: every run of a profile built and stepped once on the CPU, no GPU needed.

For every section with runs it builds each run's configuration exactly as the notebook does, each model at its
real architecture and input size (random weights: nothing is loaded or fetched), and runs one forward and backward
step on a random batch of two. It lists, per run, the weights the run would start from and where they come from
(a local file, present or missing; a timm tag, in the local Hugging Face cache or to be fetched), and every data
root the parameters name that is missing. A configuration or model that fails is an error; missing data or
weights are reported and only fail the check with ``--strict``. Run it first on a GPU machine:

    fer-report --profile paper --check            # report; exit 1 on a broken configuration or model
    fer-report --profile paper --check --strict   # ... and on missing data roots or weight files
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from .. import paths
from ..config.params import load_params, params_file
from ..models.size import count_parameters
from ..models.spec import ModelSpec

ROOT_KEYS = ("root", "fer_root", "faceparse_root", "predict_images")


def data_roots(params, where: str = "") -> list[tuple[str, Path]]:
    """(parameter path, resolved path) of every dataset location named in a section's parameters."""
    out = []
    if isinstance(params, dict):
        for k, v in params.items():
            w = f"{where}.{k}" if where else str(k)
            if k in ROOT_KEYS and isinstance(v, str):
                out.append((w, paths.resolve(v)))
            else:
                out += data_roots(v, w)
    return out


def models_of(kind: str, cfg) -> list[ModelSpec]:
    """Every model a run builds: its kind says (``RunKind.models``)."""
    from ..tasks.kinds import get_run_kind

    return get_run_kind(kind).models(cfg)


def step_once(spec: ModelSpec) -> tuple[float, float]:
    """(parameters in millions, seconds) of building the model with random weights and one forward + backward step
    on a random batch of two on the CPU."""
    t0 = time.perf_counter()
    model = spec.with_random_weights().build()
    model.train()
    out = model(spec.example_batch(2))
    out.float().logsumexp(1).mean().backward()
    return count_parameters(model, trainable_only=False) / 1e6, time.perf_counter() - t0


def describe_weights(spec: ModelSpec) -> str:
    """Where the model's starting weights come from, part by part."""
    return "; ".join(f"{part}: {w.describe()}" if part else w.describe() for part, w in spec.weight_sources().items())


def check_profile(profile: str, sections: list[str] | None = None, log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per run: its models, input, parameters, weights, step time and status; one row per missing data
    root). Models shared by several runs are stepped once."""
    from ..tasks.sections import SECTION_BUILDERS, section_runs

    rows, missing, stepped = [], [], {}
    for section in sections or SECTION_BUILDERS:
        p = load_params(params_file(section, profile))
        for where, path in data_roots(p):
            if not path.exists():
                missing.append({"section": section, "parameter": where, "path": str(path)})
        if section not in SECTION_BUILDERS:
            continue
        try:
            _, runs = section_runs(section, p, profile)
        except Exception as e:  # noqa: BLE001 - reported, the check goes on
            rows.append({"section": section, "run": "(all)", "role": "", "model": "", "input": "", "params (M)": None,
                         "weights": "", "step s": None, "status": f"config error: {e}"})
            continue
        for name, (kind, cfg) in runs.items():
            for spec in models_of(kind, cfg):
                key = repr(spec.with_random_weights())
                if key not in stepped:
                    try:
                        stepped[key] = (*step_once(spec), "ok")
                    except Exception as e:  # noqa: BLE001
                        stepped[key] = (None, None, f"error: {type(e).__name__}: {e}")
                    log(f"[check] {section} {name} {spec.role}: {spec.arch} {spec.input_shape} -> {stepped[key][2]}")
                params_m, secs, status = stepped[key]
                rows.append({"section": section, "run": name, "role": spec.role, "model": spec.arch,
                             "input": str(spec.input_shape), "params (M)": params_m, "weights": describe_weights(spec),
                             "step s": secs, "status": status,
                             "weights missing": not all(w.available for w in spec.weight_sources().values())})
    return pd.DataFrame(rows), pd.DataFrame(missing, columns=["section", "parameter", "path"])


def main_check(profile: str, sections: list[str] | None, strict: bool) -> int:
    """Print the check's tables; the exit code is 1 on an error (and, with ``strict``, on missing inputs)."""
    table, missing = check_profile(profile, sections)
    with pd.option_context("display.max_rows", None, "display.max_colwidth", 90, "display.width", 200):
        print(table.drop(columns=["weights missing"], errors="ignore").to_string(index=False))
        print()
        print("missing data roots:" if len(missing) else "every data root the parameters name exists.")
        if len(missing):
            print(missing.to_string(index=False))
    errors = table[table["status"] != "ok"] if len(table) else table
    weights_missing = int(table["weights missing"].fillna(False).sum()) if "weights missing" in table else 0
    print(f"\n[check] {profile}: {len(table)} model(s) in {table['run'].nunique() if len(table) else 0} run(s); "
          f"{len(errors)} error(s); {len(missing)} missing data root(s); {weights_missing} model(s) whose weights "
          f"are not on this machine")
    if len(errors):
        return 1
    return 1 if strict and (len(missing) or weights_missing) else 0
