"""The training engine: ``fit`` (one loop for every run kind), ``predict``, DDP helpers, checkpoints."""
from .checkpoint import load_state, load_weights, save_state, save_weights
from .distributed import DistEnv
from .fit import FitResult, NonFiniteLossError, autocast, channels_last_on, epoch_seed, fit, predict, seed_everything
from .task import FitData, Task

__all__ = ["DistEnv", "FitData", "FitResult", "Task", "NonFiniteLossError", "autocast", "channels_last_on", "epoch_seed",
           "fit", "load_state", "load_weights", "predict", "save_state", "save_weights", "seed_everything"]
