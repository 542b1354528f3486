"""One function per kind of run, on top of the engine and the run store."""
from .classifier import evaluate_logits
from .teacher import TeacherTask, teacher_configs, train_teacher

__all__ = ["TeacherTask", "evaluate_logits", "teacher_configs", "train_teacher"]
