"""What a section reads from other sections: their runs, fetched from the store by the same configuration."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import LabeledImages, load_dataset
from ..runs import Run
from ..tasks import teacher_configs, train_teacher
from ..tasks.ensemble import choose, ensemble_runs
from ..config.params import load_params
from .section import Section


def teachers(params: dict, sec: Section) -> tuple[LabeledImages, dict, dict[str, Run], dict[str, str]]:
    """(dataset, configs, runs, display labels) of the teachers that section 01's ``params`` define."""
    ds = load_dataset(params["data"])
    configs = teacher_configs(params["data"], params["train"], params["teachers"])
    runs = {name: sec.use(train_teacher(cfg, data=ds)) for name, cfg in configs.items()}
    return ds, configs, runs, {name: cfg.display_name for name, cfg in configs.items()}


def ensembles(params: dict, teacher_runs: dict[str, Run], sec: Section) -> dict[str, Run]:
    """The ensemble runs that section 02's ``params`` define."""
    return {n: sec.use(r) for n, r in ensemble_runs(params["ensembles"], teacher_runs, params["step"]).items()}


@dataclass
class EnsembleSource:
    """Section 02's selection and everything it was built from."""

    name: str
    run: Run
    data: LabeledImages
    configs: dict
    teacher_runs: dict[str, Run]
    labels: dict[str, str]

    def outputs(self) -> dict[str, dict]:
        """Val/test arrays per teacher plus ``ensemble``, whose logits are log fused probabilities (pool, then
        calibrate: temperature or vector scaling then acts on the pooled distribution)."""
        out = {n: r.arrays() for n, r in self.teacher_runs.items()}
        a = self.run.arrays()
        out["ensemble"] = {f"{s}_{k}": (np.log(np.clip(a[f"{s}_probs"], 1e-12, None)) if k == "logits" else a[f"{s}_labels"])
                           for s in ("val", "test") for k in ("logits", "labels")}
        return out


def chosen_ensemble(ensembles_params: str, profile: str, sec: Section) -> EnsembleSource:
    """The ensemble section 02 selects on validation, with its teachers."""
    p02 = load_params(ensembles_params, profile)
    ds, configs, runs, labels = teachers(load_params(p02["teachers_params"], profile), sec)
    ens = ensembles(p02, runs, sec)
    name = choose(ens)
    return EnsembleSource(name, ens[name], ds, configs, runs, labels)
