"""The sweep driver: `run_sweep` runs (or resumes) a sweep file with one executor.

Phases: (1) pretrain each model size once (checkpoints at the listed steps, the pretraining-tokens
axis); (2) every finetuning run. A run's `run_id` is a hash of its full configuration
(runners/sweep/plan.py); a run whose `<run_id>.parquet` exists is skipped, so re-running a sweep
resumes it. Rows are written atomically (runners/rows.py): a killed sweep loses only the runs in
flight. Executors claim a run before starting it (runners/sweep/claims.py), so two sweeps on one
directory never compute the same run.

Stopping (runners/sweep/progress.py): the first SIGINT or SIGTERM starts no new run and abandons
the runs in flight; the driver says what is done and what is left and `run_sweep` raises
SweepInterrupted (exit status 130 for SIGINT, 143 for SIGTERM). A second signal kills the workers
at once. This process never imports jax.
"""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import TextIO

from .. import rows
from .executor import make_executor
from .plan import RUNNER_VERSION, SweepError, load_plan
from .progress import Progress, StopSignals

__all__ = ["SweepInterrupted", "run_sweep"]


class SweepInterrupted(Exception):
    """The sweep stopped on a signal; `code` is the exit status (128 + signal number)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code



def _older_rows(out: Path, run_ids: set[str]) -> int:
    """How many of these row files were written by a runner version older than this one."""
    import pyarrow.parquet as pq
    n = 0
    for rid in run_ids:
        try:
            t = pq.read_table(Path(out) / f"{rid}.parquet", columns=["config"])
            v = json.loads(t.column("config")[0].as_py()).get("runner_version", 0)
        except (KeyError, ValueError, TypeError, AttributeError, OSError):
            continue  # not a runner's row (e.g. written by hand): not ours to judge
        n += int(isinstance(v, int) and v < RUNNER_VERSION)
    return n


def run_sweep(sweep_path: str | Path, executor: str = "local", out: str | Path | None = None,
              jobs: int | None = None, threads_per_job: int | None = None, dry_run: bool = False,
              stream: TextIO | None = None, device: str | None = None) -> Path:
    """Run (or resume) a sweep.

    Parameters
    ----------
    sweep_path
        The sweep TOML file.
    executor
        A name of runners.sweep.executor.EXECUTORS ("local", "slurm", "submitit-local").
    out
        The dataset directory (default: the file's [sweep] out).
    jobs, threads_per_job
        Local executor: parallel workers, and cores / XLA threads per worker.
    dry_run
        Validate and report the size of the grid and what is left; run nothing.
    stream
        Where progress lines go (default: sys.stderr at the time of the call).
    device
        "auto", "cpu" or "gpu" (default: the file's sweep.device).

    Returns
    -------
    Path
        The dataset directory (one `<run_id>.parquet` row file per finished run).

    Raises
    ------
    SweepError
        Bad input (one line naming the key).
    SweepInterrupted
        On SIGINT / SIGTERM.
    RuntimeError
        If some runs failed (their rows are missing; re-running retries them).
    """
    stream = stream if stream is not None else sys.stderr
    plan = load_plan(sweep_path, out, executor=executor, device=device, jobs=jobs)
    if not dry_run:
        try:
            plan.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SweepError(f"cannot create the output directory {plan.out}: {e}") from None
        rows.clean_stale_tmp(plan.out)
    try:
        done = rows.finished_run_ids(plan.out) if plan.out.is_dir() else set()
    except rows.CorruptRunFile as e:
        raise SweepError(str(e)) from None
    todo = [r for r in plan.runs if r["run_id"] not in done]
    foreign = done - {r["run_id"] for r in plan.runs}
    old = _older_rows(plan.out, foreign)
    if old and todo:
        raise SweepError(f"{plan.out} holds {old} row(s) written by an older runner version (their run ids do "
                         f"not hash the resolved dtype): new rows there would duplicate them; write to a new "
                         f"directory (--out) or move the old rows away")
    d = plan.devices
    print(f"sweep {plan.name}: {len(plan.runs)} runs ({len(plan.runs) - len(todo)} already done, {len(todo)} to run), "
          f"{len(plan.pretrain_jobs)} model sizes; {d.per_run} {d.backend} device(s) per run"
          f"{' (' + d.device_kind + ')' if d.device_kind else ''}, dtype {plan.runs[0]['config']['finetune']['dtype']}"
          f"; output {plan.out}"
          + (f"; note: {len(foreign)} row files in the directory belong to no run of this sweep" if foreign else ""),
          file=stream, flush=True)
    if dry_run or not todo:
        return plan.out
    need = {r["ckpt_dir"] for r in todo}
    pre = [j for j in plan.pretrain_jobs if j["ckpt_dir"] in need and not (Path(j["ckpt_dir"]) / "meta.json").exists()]
    abandoned: list[dict] = []
    progs = []
    with StopSignals() as stop:
        runner = make_executor(executor, plan, stop, threads_per_job)
        try:
            for phase, js in (("pretrain", pre), ("runs", todo)):
                if not js or stop.signum:
                    continue
                prog = Progress(len(js), stream, phase)
                progs.append(prog)
                abandoned = runner.run(js, prog, phase)
                if prog.failed and not stop.signum:
                    raise RuntimeError(f"{prog.failed} of {len(js)} {phase} jobs failed (see messages and logs "
                                       f"above); re-run the sweep to retry them")
        finally:
            runner.close()
        if stop.signum:
            ids = {r["run_id"] for r in plan.runs}
            now = rows.finished_run_ids(plan.out) & ids
            name = signal.Signals(stop.signum).name
            new = len(now) - len(done & ids)
            raise SweepInterrupted(
                f"stopped by {name}: {len(now)} of {len(plan.runs)} runs done ({new} finished in this session), "
                f"{len(plan.runs) - len(now)} left ({len(abandoned)} job(s) in flight abandoned, no partial rows); "
                f"re-run the same command to resume", 128 + stop.signum)
    elsewhere = sum(p.elsewhere for p in progs)
    if elsewhere:
        print(f"sweep {plan.name}: {elsewhere} run(s) were claimed by another sweep on this directory and left to it",
              file=stream, flush=True)
    return plan.out
