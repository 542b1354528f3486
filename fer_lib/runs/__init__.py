"""The run store: a run is a config; results are cached under a key of config, data and version."""
from .provenance import environment, git_commit
from .store import MissingRunError, Run, RunStore, write_json_atomic

__all__ = ["MissingRunError", "Run", "RunStore", "environment", "git_commit", "write_json_atomic"]
