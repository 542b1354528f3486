"""Student runs (sections 04 and 05): a student trained from scratch or distilled from teachers.

One ``Distiller`` class per run in mdistiller's style: ``forward(x, t, epoch)`` returns the
student logits and a dict of named losses, the method chosen by ``distill.method``
(``fer_lib.losses.distillation`` holds the formulas). Teachers are frozen, run in inference
mode on the very batch the student sees (after MixUp/CutMix, so both see the same mixed
input), each through an input adapter to its own resolution and normalisation.

Teacher outputs are cached per teacher and epoch (``TeacherOutputCache``) when the views can be
replayed: every student that shares a data pipeline (data, seed, batch size, augmentation,
sampler) sees identical views (see ``fer_lib.engine.fit``), so the first run that uses a teacher
computes its logits and every later run that uses it -- alone or with other teachers -- reads them. Each cached step stores a fingerprint of its input, and a
mismatch falls back to running the teachers, so the cache can never feed the wrong targets.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import paths
from ..config import (ConfigError, DataConfig, DistillConfig, ModelConfig, StudentRunConfig, TeacherRunConfig,
                      TrainConfig, build, config_hash, deep_merge, from_dict, to_dict)
from ..data import LabeledImages, load_dataset
from ..data.cache import read_or_rebuild, write_npz_atomic
from ..data.transforms import normalize_stats
from ..engine import DistEnv, FitData, Task, fit, load_weights, seed_everything
from ..losses import ClassificationLoss
from ..losses.methods import get_method
from ..models import create_model
from ..models.spec import ModelSpec
from ..runs import Run, RunStore
from ..runs.transfer import training_id
from .classifier import batch_transforms, check_arch, datasets, evaluate_logits, save_classifier_run
from .teacher import train_teacher

KIND = "student"


class InputAdapter(nn.Module):
    """Re-express a normalised batch for another model: undo the student's normalisation, resize,
    repeat gray channels, apply the teacher's normalisation. Identity when both conventions agree."""

    def __init__(self, src: tuple, dst: tuple, size: int, in_chans: int):
        super().__init__()
        self.identity = src == dst and size is None
        self.size, self.in_chans = size, in_chans
        for name, v in zip(("src_mean", "src_std", "dst_mean", "dst_std"), (*src, *dst)):
            self.register_buffer(name, torch.tensor(v).view(1, -1, 1, 1), persistent=False)

    def forward(self, x):
        if self.identity:
            return x
        x = x * self.src_std + self.src_mean
        if self.size is not None and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if x.shape[1] == 1 and self.in_chans == 3:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.dst_mean) / self.dst_std


def _read_cache_epoch(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if set(arrays) != {"fp", "logits"} or len(arrays["fp"]) != len(arrays["logits"]):
        raise ValueError(f"expected arrays fp and logits of one length, got {sorted(arrays)}")
    return arrays


class TeacherOutputCache:
    """One teacher's logits per (epoch, step) over a data pipeline, one atomically written ``.npz`` per
    complete epoch. Keyed by the teacher's run and the pipeline, so every arm that uses this teacher on
    these views -- alone or with other teachers -- reads what the first one computed."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._epoch, self._loaded, self._pending = None, None, {}
        self.hits = self.misses = 0

    @staticmethod
    def fingerprint(x: torch.Tensor) -> np.ndarray:
        x = x.detach().double()
        return np.array([x.sum().item(), (x * x).sum().item(), float(x.numel())])

    def _file(self, epoch: int) -> Path:
        return self.path / f"epoch_{epoch:04d}.npz"

    def lookup(self, epoch: int, step: int, x: torch.Tensor) -> torch.Tensor | None:
        if self._epoch != epoch:
            self._epoch, self._pending = epoch, {}
            f = self._file(epoch)
            self._loaded = read_or_rebuild(f, _read_cache_epoch, lambda: None, "the teacher-output cache")
        if self._loaded is None or step >= len(self._loaded["fp"]):
            self.misses += 1
            return None
        if not np.allclose(self._loaded["fp"][step], self.fingerprint(x), rtol=1e-6, atol=1e-6):
            self.misses += 1
            return None  # not the same view: run the teachers
        self.hits += 1
        return torch.from_numpy(self._loaded["logits"][step]).to(x.device)

    def record(self, epoch: int, step: int, x: torch.Tensor, logits: torch.Tensor) -> None:
        if self._loaded is None:
            self._pending[step] = (self.fingerprint(x), logits.float().cpu().numpy())

    def end_epoch(self, epoch: int, steps: int) -> None:
        if self._loaded is not None or len(self._pending) != steps:
            return
        write_npz_atomic(self._file(epoch), fp=np.stack([self._pending[i][0] for i in range(steps)]),
                         logits=np.stack([self._pending[i][1] for i in range(steps)]))
        self._pending = {}


class Distiller(Task):
    """Student + frozen teachers + the distillation objective of ``cfg.method``."""

    def __init__(self, student: nn.Module, teachers: list[nn.Module], adapters: list[nn.Module],
                 cfg: DistillConfig, ce: ClassificationLoss, caches: list[TeacherOutputCache] | None = None,
                 steps_per_epoch: int | None = None, num_classes: int = 0, name: str = "student", score=None):
        super().__init__(student, num_classes, name, score)
        self.teachers, self.adapters = nn.ModuleList(teachers), nn.ModuleList(adapters)
        for p in self.teachers.parameters():
            p.requires_grad_(False)
        self.cfg, self.ce, self.steps_per_epoch = cfg, ce, steps_per_epoch
        self.caches = caches or [None] * len(teachers)
        self._step = (0, 0)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teachers.eval()  # teachers always infer (BN statistics, dropout off)
        return self

    def set_step(self, epoch: int, step: int, x: torch.Tensor) -> None:
        self._step = (epoch, step)

    def end_epoch(self, epoch: int) -> None:
        for cache in self.caches:
            if cache is not None and self.steps_per_epoch:
                cache.end_epoch(epoch, self.steps_per_epoch)

    def teacher_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for teacher, adapter, cache in zip(self.teachers, self.adapters, self.caches):
            z = cache.lookup(*self._step, x) if cache is not None else None
            if z is None:
                with torch.inference_mode():
                    z = teacher(adapter(x)).float()
                z = z.clone()  # a plain tensor again: usable as a constant in the autograd graph
                if cache is not None:
                    cache.record(*self._step, x, z)
            out.append(z)
        return out

    def forward(self, x: torch.Tensor, target: torch.Tensor, epoch: float):
        logits_student = self.model(x)
        ce = self.ce(logits_student, target)
        method = get_method(self.cfg.method)
        logits_teachers = self.teacher_logits(x) if method.max_teachers != 0 else []
        return logits_student, method.loss(logits_student, logits_teachers, target, self.cfg, ce, epoch)


def _input_convention(model_cfg: ModelConfig, train_cfg: TrainConfig, data: LabeledImages):
    return normalize_stats(model_cfg.input_norm, model_cfg.in_chans, data.pixel_stats("train"))


def view_key(cfg: StudentRunConfig, data: LabeledImages, rank: int, world: int) -> str:
    """What determines the training views (the teachers' answers also depend on the teacher run)."""
    t = cfg.train
    pipeline = {k: getattr(t, k) for k in ("seed", "batch_size", "img_size", "sampler", "mixup_alpha",
                                           "cutmix_alpha", "mix_prob")}
    pipeline["augment"] = to_dict(t.augment)
    pipeline["student_input"] = [cfg.model.in_chans, cfg.model.input_norm]
    return config_hash(pipeline, data.fingerprint, rank, world)[:20]


def train_student(cfg: StudentRunConfig, store: RunStore | None = None, data: LabeledImages | None = None,
                  teacher_runs: list[Run] | None = None, env: DistEnv | None = None, progress: bool = True) -> Run:
    """The student run for ``cfg`` from the store; trained (teachers trained or read first) on a miss."""
    store = store or RunStore()
    data = data if data is not None else load_dataset(cfg.data)
    if teacher_runs is None:
        teacher_runs = [train_teacher(tc, store, data, env, progress) for tc in cfg.teachers]

    def compute(out: Path, scratch: Path) -> None:
        e = env or DistEnv.from_env()
        seed_everything(cfg.train.seed)
        student = create_model(cfg.model, len(data.classes))
        sets = datasets(data, cfg.train)
        train_tf, eval_tf = batch_transforms(data, cfg.model, cfg.train)
        src = _input_convention(cfg.model, cfg.train, data)
        teachers, adapters = [], []
        weighted = _with_weights(teacher_runs, cfg.teachers, store, data, env, progress)
        for tc, tr in zip(cfg.teachers, weighted):
            teachers.append(load_weights(create_model(tc.model, len(data.classes)), tr.file("weights.safetensors")))
            dst = _input_convention(tc.model, tc.train, data)
            size = tc.train.img_size if tc.train.img_size != cfg.train.img_size else None
            adapters.append(InputAdapter(src, dst, size, tc.model.in_chans))
        y_train = sets["train"].labels
        per_rank = max(1, cfg.train.batch_size // e.world_size)
        steps = int(np.ceil(len(y_train) / e.world_size)) // per_rank
        caches = None
        if cfg.distill.cache_teacher_outputs and cfg.distill.method != "none":
            views = paths.teacher_outputs_dir(store.root) / view_key(cfg, data, e.rank, e.world_size)
            caches = [TeacherOutputCache(views / tr.key) for tr in teacher_runs]
        ce = ClassificationLoss("ce", cfg.train.label_smoothing)
        y_val = sets["val"].labels
        task = Distiller(student, teachers, adapters, cfg.distill, ce, caches, steps, len(data.classes),
                         f"{KIND} {cfg.name!r}", score=lambda z: evaluate_logits(z, y_val, data.classes))
        result = fit(task, FitData(sets["train"], y_train, sets["val"], train_tf, eval_tf), cfg.train, scratch, e,
                     progress)
        load_weights(student, result.best_weights)
        teacher_acc = [tr.metrics["test"]["accuracy"] for tr in weighted]
        save_classifier_run(out, task, result, sets, eval_tf, cfg.train, e, data.classes, lambda m: {
            "teacher_test_accuracy": teacher_acc,
            # which training of each teacher's key it read: a teacher trained again for its weights on another
            # machine need not equal the published one (``fer-runs verify KEY --local`` records how far)
            "teacher_trainings": {tr.key: training_id(tr.path) for tr in weighted},
            "retention": m["test"]["accuracy"] / max(teacher_acc) if teacher_acc and max(teacher_acc) > 0 else None,
            "teacher_cache": {"hits": sum(c.hits for c in caches), "misses": sum(c.misses for c in caches)}
            if caches else None})

    return store.run(KIND, cfg.key_dict(), data.fingerprint, compute, env, reads=reads_of(cfg))


def _with_weights(runs: list[Run], configs: list[TeacherRunConfig], store: RunStore, data: LabeledImages,
                  env: DistEnv | None, progress: bool) -> list[Run]:
    """The teacher runs, each with its weights: one stored without them (published runs never carry a teacher's) is
    trained again into the local store, replacing a local copy without weights. Same key, same recipe; how far a
    retrained run may differ from the published one is the ledger's rule (``fer_lib.runs.ledger``)."""
    needing = store.needing_weights({"teacher"})
    return [run if needing.usable("teacher", run.path) else train_teacher(tc, needing, data, env, progress)
            for run, tc in zip(runs, configs)]


def reads_of(cfg: StudentRunConfig) -> tuple[str, ...]:
    """The kinds of run a student reads: teachers when it distils, nothing from scratch (its key follows)."""
    return ("teacher",) if cfg.teachers else ()


def student_teachers(cfg: StudentRunConfig) -> list[tuple[str, TeacherRunConfig]]:
    """The runs a student reads: its teachers, in its config's order."""
    return [("teacher", teacher) for teacher in cfg.teachers]


def student_configs(data: dict, train: dict, student: dict, teachers: dict[str, TeacherRunConfig],
                    arms: dict[str, dict]) -> dict[str, StudentRunConfig]:
    """One config per arm: ``{label, teachers: [roles], distill: {...}, train: overrides, model: overrides}``.

    Every arm is checked -- its fields, the student's and every teacher's ``model.arch``, the method against the
    number of teachers -- before any is returned, so a bad arm fails before the section trains anything. Errors
    name the arm: ``arms.<name>.<field>`` (a teacher's own arch: ``teachers.<role>.model.arch (arms.<name>)``)."""
    out = {}
    for name, arm in arms.items():
        arm = dict(arm or {})
        unknown = set(arm) - {"label", "teachers", "distill", "train", "model"}
        if unknown:
            raise ConfigError(f"arms.{name}: unknown key {sorted(unknown)[0]!r}; expected label, teachers, "
                              f"distill, train, model")
        roles = arm.get("teachers", [])
        missing = [r for r in roles if r not in teachers]
        if missing:
            raise ConfigError(f"arms.{name}.teachers: {missing} not among the teachers ({', '.join(teachers)})")
        for r in roles:
            check_arch(teachers[r].model.arch, f"teachers.{r}.model.arch (arms.{name})")
        distill = from_dict(DistillConfig, arm.get("distill"), f"arms.{name}.distill")
        problem = get_method(distill.method).check_teachers(len(roles))
        if problem:
            raise ConfigError(f"arms.{name}: {problem}")
        model = from_dict(ModelConfig, deep_merge(student, arm.get("model")), f"arms.{name}.model")
        check_arch(model.arch, f"arms.{name}.model.arch")
        out[name] = build(StudentRunConfig, f"arms.{name}", name=arm.get("label", name),
                          data=from_dict(DataConfig, data, "data"), model=model,
                          train=from_dict(TrainConfig, deep_merge(train, arm.get("train")), f"arms.{name}.train"),
                          distill=distill, teachers=tuple(teachers[r] for r in roles), teacher_roles=tuple(roles))
    return out


def student_models(cfg: StudentRunConfig) -> list[ModelSpec]:
    """The student's model, then each teacher's (``teacher <role>``), as the paper check steps them."""
    from ..data import num_classes

    n = num_classes(cfg.data)
    out = [ModelSpec("student", cfg.model, (cfg.model.in_chans, cfg.train.img_size, cfg.train.img_size), n)]
    return out + [ModelSpec(f"teacher {r}", t.model, (t.model.in_chans, t.train.img_size, t.train.img_size), n)
                  for r, t in zip(cfg.teacher_roles, cfg.teachers)]
