"""Executors: what runs a sweep's jobs. The `Executor` protocol and the table of executors.

An executor runs the jobs of one phase (all pretrainings, then all finetuning runs), reports each
result to the `Progress` it is given, claims a finetuning run before computing it and releases
the claim afterwards (runners/sweep/claims.py), and on a stop (`StopSignals.signum` set) starts
nothing new and returns the jobs it abandoned in flight. The driver (runners/sweep/run.py) makes
one executor per sweep and closes it at the end.

`EXECUTORS` names each one (the `--executor` choices), where its runs compute (which decides how
the plan resolves the devices, runners/sweep/plan.py) and the class that implements it, imported
only when a sweep uses it. No jax, pydantic or submitit import here: the command line reads this
table when it builds its parser.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from .progress import Progress, StopSignals

__all__ = ["EXECUTORS", "Executor", "ExecutorEntry", "make_executor"]


class Executor(Protocol):
    """Runs the jobs of a sweep (see the module docstring)."""

    def run(self, jobs: list[dict], progress: Progress, phase: str) -> list[dict]:
        """Run `jobs` (phase "pretrain" or "runs"); return the jobs abandoned in flight on a stop."""
        ...

    def close(self) -> None:
        """Release every worker or job (killing them when the sweep was stopped)."""
        ...


@dataclasses.dataclass(frozen=True)
class ExecutorEntry:
    """One executor: its class ("module:Class"), where its runs compute, its `--executor` help.

    `devices`: "here" (this machine's devices, probed; workers share its GPUs), "cpu" (this
    machine's CPU only) or "slurm" (compute nodes described by the sweep's [slurm] table).
    """
    target: str
    devices: Literal["here", "cpu", "slurm"]
    help: str


EXECUTORS: dict[str, ExecutorEntry] = {
    "local": ExecutorEntry("runners.sweep.local:LocalExecutor", "here",
                           "worker processes on this machine (default)"),
    "slurm": ExecutorEntry("runners.sweep.slurm:SubmititExecutor", "slurm", "SLURM jobs through submitit"),
    "submitit-local": ExecutorEntry("runners.sweep.slurm:SubmititExecutor", "cpu",
                                    "submitit's local executor (the SLURM code path on this machine)"),
}


def make_executor(name: str, plan: Any, stop: StopSignals, threads_per_job: int | None = None) -> Executor:
    """The executor `name` of EXECUTORS for `plan`.

    Parameters
    ----------
    name
        A key of EXECUTORS.
    plan
        The sweep's plan (a `runners.sweep.plan.Plan`; not imported here, as the plan imports this
        module's EXECUTORS table).
    stop
        The sweep's signal state; the executor registers its kill function there.
    threads_per_job
        Cores / XLA threads per worker asked for on the command line (None: the plan's or a default).

    Returns
    -------
    Executor
        The executor, ready to run phases.
    """
    module, cls = EXECUTORS[name].target.split(":")
    factory = getattr(importlib.import_module(module), cls)
    return factory(plan, stop, name=name, threads_per_job=threads_per_job)
