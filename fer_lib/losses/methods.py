"""The registry of distillation methods: one function per method, with the number of teachers it takes.

A method maps ``(logits_student, logits_teachers, target, cfg, ce, epoch)`` to its dict of named losses (summed by
the training loop); ``logits_teachers`` is the list of the teachers' logits on the batch (empty for a method that
takes none), ``target`` the target distribution, ``cfg`` the arm's ``DistillConfig``, ``ce`` the student's
cross-entropy on the batch (already computed) and ``epoch`` the fractional epoch. The same registry validates
``distill.method`` (``DistillConfig``) and the teachers an arm names (``student_configs``), and dispatches in
``Distiller.forward``. Adding a method is one function and one ``@register_method`` line (CONTRIBUTING.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from . import distillation as D

MethodLoss = Callable[..., dict]


@dataclass(frozen=True)
class Method:
    name: str
    loss: MethodLoss
    min_teachers: int
    max_teachers: int | None  # None: any number

    def check_teachers(self, n: int) -> str | None:
        """Why ``n`` teachers do not suit this method, or None."""
        if self.max_teachers == 0 and n:
            return f"a student from scratch (method {self.name}) takes no teachers"
        if self.min_teachers == self.max_teachers and n != self.min_teachers:
            count = "one teacher" if self.min_teachers == 1 else f"{self.min_teachers} teachers"
            return f"method {self.name} takes exactly {count}, got {n}"
        if n < self.min_teachers:
            at_least = {2: "two", 3: "three"}.get(self.min_teachers, str(self.min_teachers))
            return (f"method {self.name} needs at least {at_least} teachers" if self.min_teachers > 1 else
                    f"method {self.name} needs teachers")
        if self.max_teachers is not None and n > self.max_teachers:
            return f"method {self.name} takes at most {self.max_teachers} teachers, got {n}"
        return None


METHODS: dict[str, Method] = {}


def register_method(name: str, min_teachers: int = 1, max_teachers: int | None = None):
    """Decorator: register ``fn`` as the distillation method ``name``."""
    def add(fn: MethodLoss) -> MethodLoss:
        if name in METHODS:
            raise ValueError(f"distillation method {name!r} is registered twice")
        METHODS[name] = Method(name, fn, min_teachers, max_teachers)
        return fn
    return add


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"unknown distillation method {name!r}; expected one of {', '.join(METHODS)}")
    return METHODS[name]


# ----------------------------------------------------------------------------- the seeds' methods
@register_method("none", min_teachers=0, max_teachers=0)
def scratch(logits_student, logits_teachers, target, cfg, ce: torch.Tensor, epoch: float) -> dict:
    """A student from scratch: cross-entropy only."""
    return {"loss_ce": ce}


@register_method("kd", min_teachers=1, max_teachers=1)
def kd(logits_student, logits_teachers, target, cfg, ce, epoch) -> dict:
    return D.kd_loss(logits_student, logits_teachers[0], target, cfg.temperature, cfg.alpha, ce)


@register_method("dkd", min_teachers=1, max_teachers=1)
def dkd(logits_student, logits_teachers, target, cfg, ce, epoch) -> dict:
    return D.dkd_loss(logits_student, logits_teachers[0], target, cfg.temperature, cfg.alpha, cfg.beta,
                      cfg.warmup_epochs, epoch, ce)


@register_method("ca_wkd", min_teachers=2)
def ca_wkd(logits_student, logits_teachers, target, cfg, ce, epoch) -> dict:
    return D.ca_wkd_loss(logits_student, logits_teachers, target, cfg.temperature, ce)


@register_method("alpha_guided", min_teachers=2)
def alpha_guided(logits_student, logits_teachers, target, cfg, ce, epoch) -> dict:
    return D.alpha_guided_loss(logits_student, logits_teachers, target, cfg.temperature, cfg.gamma, cfg.theta, ce)


@register_method("adaptive_alpha", min_teachers=1)
def adaptive_alpha(logits_student, logits_teachers, target, cfg, ce, epoch) -> dict:
    return D.adaptive_alpha_loss(logits_student, logits_teachers, target, cfg.temperature, cfg.with_ce, ce)


@register_method("aver", min_teachers=1)
def aver(logits_student, logits_teachers, target, cfg, ce, epoch) -> dict:
    return D.aver_loss(logits_student, logits_teachers, target, cfg.temperature, cfg.alpha, ce)


@register_method("ebkd", min_teachers=2)
def ebkd(logits_student, logits_teachers, target, cfg, ce, epoch) -> dict:
    return D.ebkd_loss(logits_student, logits_teachers, target, cfg.temperature, cfg.alpha, ce)
