"""Launching a profile's runs: the plan (every run the notebooks ask for, as a dependency graph), the sweep (local
processes or Slurm jobs through submitit) and the makespan estimate. Above ``tasks`` (what a run is), below the
command-line front ends in ``fer_lib.commands``."""
