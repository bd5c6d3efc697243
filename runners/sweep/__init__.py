"""Sweeps: a TOML grid over model size x pretraining checkpoint x finetuning set size x seed x
method x PET size, planned, then run by an executor, one runs-table row file per finished run.

- schema.py: the sweep file's tables and keys (pydantic), one-line errors (`SweepError`);
- plan.py: the validated file expanded into pretraining jobs and finetuning runs for the devices
  that will run them (`load_plan`; run ids are configuration hashes);
- executor.py: the `Executor` protocol and the table of executors (`EXECUTORS`);
- local.py: the local executor (worker processes on this machine);
- slurm.py: the SLURM executor through submitit (and submitit's local executor);
- run.py: the driver, `run_sweep` (phases, resume, stop on SIGINT/SIGTERM: `SweepInterrupted`);
- progress.py: progress lines and signal handling of the driver;
- claims.py: run claims, so that two sweeps on one directory never compute the same run;
- worker.py, execute.py: inside a worker process (`python -m runners.sweep.worker`): run one job
  with its log file.

The names below are imported on first use, so that `import runners.sweep` (e.g. for the command
line's parser) costs nothing; none of these modules imports jax.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .executor import EXECUTORS, Executor
    from .plan import RUNNER_VERSION, Plan, load_plan
    from .run import SweepInterrupted, run_sweep
    from .schema import SweepError

__all__ = ["EXECUTORS", "RUNNER_VERSION", "Executor", "Plan", "SweepError", "SweepInterrupted", "load_plan",
           "run_sweep"]

_WHERE = {"EXECUTORS": "executor", "Executor": "executor", "RUNNER_VERSION": "plan", "Plan": "plan",
          "load_plan": "plan", "SweepInterrupted": "run", "run_sweep": "run", "SweepError": "schema"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
