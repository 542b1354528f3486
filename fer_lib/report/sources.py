"""What a section reads from other sections: their runs, fetched from the store by the same configuration."""
from __future__ import annotations

from ..data import LabeledImages, load_dataset
from ..runs import Run
from ..tasks import teacher_configs, train_teacher
from ..tasks.ensemble import choose, ensemble_runs
from .params import load_params
from .section import Section


def teachers(params: dict, sec: Section) -> tuple[LabeledImages, dict, dict[str, Run], dict[str, str]]:
    """(dataset, configs, runs, display labels) of the teachers that section 01's ``params`` define."""
    ds = load_dataset(params["data"])
    configs = teacher_configs(params["data"], params["train"], params["teachers"])
    runs = {name: sec.use(train_teacher(cfg, data=ds)) for name, cfg in configs.items()}
    return ds, configs, runs, {name: cfg.name for name, cfg in configs.items()}


def ensembles(params: dict, teacher_runs: dict[str, Run], sec: Section) -> dict[str, Run]:
    """The ensemble runs that section 02's ``params`` define."""
    return {n: sec.use(r) for n, r in ensemble_runs(params["ensembles"], teacher_runs, params["step"]).items()}


def chosen_ensemble(ensembles_params: str, profile: str, sec: Section):
    """(name, run, teacher runs, teacher labels) of the ensemble section 02 selects on validation."""
    p02 = load_params(ensembles_params, profile)
    _, _, runs, labels = teachers(load_params(p02["teachers_params"], profile), sec)
    ens = ensembles(p02, runs, sec)
    name = choose(ens)
    return name, ens[name], runs, labels
