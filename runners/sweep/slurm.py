"""The SLURM executor (submitit), and submitit's local executor on the same code path.

Jobs (partition, GPUs, time limit from the sweep's [slurm] table) each run `runs_per_job` runs of
one checkpoint and method (`pack`: they share the base model and compiled steps); a pretraining is
a job of its own. A job that reaches its time limit is requeued (`RunBatch.checkpoint`): finished
runs are skipped, pretraining resumes from its last checkpoint. `submitit-local` runs the same
code through submitit's LocalExecutor (CPU only). On a stop, unfinished jobs are cancelled (running
ones get SIGTERM) and their claims released.
"""
from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

from . import claims
from .execute import execute_many
from .plan import Plan
from .progress import Progress, StopSignals

__all__ = ["RunBatch", "SubmititExecutor", "pack"]


class RunBatch:
    """The submitit callable. On a time limit or preemption submitit calls `checkpoint` and requeues
    the same batch: finished runs are skipped (their rows exist), a pretraining resumes from its
    last orbax step, so a job longer than the time limit still completes over several requeues."""

    def __call__(self, batch: list[dict]) -> list[dict]:
        return execute_many(batch)

    def checkpoint(self, batch: list[dict]) -> Any:
        """The same batch again (submitit's `DelayedSubmission`), for the requeue."""
        import submitit
        return submitit.helpers.DelayedSubmission(RunBatch(), batch)



def _submitit_executor(plan: Plan, cluster: str | None) -> Any:
    import submitit
    folder = plan.out / ".submitit"
    ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
    s = plan.slurm
    params = dict(timeout_min=int(s["timeout_min"]), gpus_per_node=int(s["gpus_per_node"]),
                  cpus_per_task=int(s["cpus_per_task"]), mem_gb=s["mem_gb"], name=f"lawfit-{plan.name}")
    if cluster in (None, "slurm"):
        if s["partition"]:
            params["slurm_partition"] = s["partition"]
        params["slurm_array_parallelism"] = int(s["array_parallelism"])
        params["slurm_signal_delay_s"] = 120  # time for the checkpoint/requeue before the limit
        if s["additional_parameters"]:
            params["slurm_additional_parameters"] = dict(s["additional_parameters"])
    else:  # submitit's local executor: CPU only
        params["gpus_per_node"] = 0
    ex.update_parameters(**params)
    return ex


def pack(jobs_: list[dict], per_job: int) -> list[list[dict]]:
    """Batches of at most `per_job` runs, each of one checkpoint and method where possible.

    Parameters
    ----------
    jobs_
        The jobs (finetuning runs or pretrainings) of one phase.
    per_job
        Runs per submitit job.

    Returns
    -------
    list of list of dict
        The batches: the runs in a batch share the base model and compiled steps.
    """
    def key(j: dict) -> tuple:
        c = j.get("config") or {}
        return (j["ckpt_dir"], c.get("pretrain_step", 0), c.get("method", ""), c.get("pet_size") or 0)
    groups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for j in jobs_:
        groups[key(j)].append(j)
    out = []
    for k in sorted(groups):
        g = groups[k]
        out += [g[i:i + per_job] for i in range(0, len(g), per_job)]
    return out


def _run_submitit(plan: Plan, jobs_: list[dict], cluster: str | None, progress: Progress, per_job: int,
                  stop: StopSignals) -> list[dict]:
    mine = []
    for j in jobs_:
        if j["kind"] == "finetune":
            if not claims.claim(j["out"], j["run_id"]):
                progress(j, {"claimed_by": claims.holder(claims.claim_path(j["out"], j["run_id"])) or {}})
                continue
        mine.append(j)
    chunks = pack(mine, per_job)
    if not chunks:
        return []
    env = {"XLA_PYTHON_CLIENT_MEM_FRACTION": str(plan.local["memory_fraction"]), **dict(plan.devices.env)}
    chunks = [[{**j, "env": env} for j in c] for c in chunks]
    ex = _submitit_executor(plan, cluster)
    handles = ex.map_array(RunBatch(), chunks) if len(chunks) > 1 else [ex.submit(RunBatch(), chunks[0])]
    pending = dict(zip(range(len(handles)), handles))

    def release(chunk: list[dict]) -> None:
        for j in chunk:
            if j["kind"] == "finetune":
                claims.release(j["out"], j["run_id"])

    try:
        while pending and not stop.signum:
            for i, h in list(pending.items()):
                if h.done():
                    del pending[i]
                    try:
                        results = h.result()
                    except Exception as e:  # noqa: BLE001 - a job that died (timeout, OOM, preemption)
                        first = str(e).splitlines()[0] if str(e) else type(e).__name__
                        results = [{"error": f"submitit job {h.job_id} failed: {first}"} for _ in chunks[i]]
                    release(chunks[i])
                    for job, res in zip(chunks[i], results):
                        progress(job, res)
            if pending:
                time.sleep(0.5)
        if not pending:
            return []
        for h in pending.values():  # stop: cancel what has not finished (running jobs get SIGTERM)
            try:
                h.cancel(check=False)
            except Exception:  # noqa: BLE001 - already gone
                pass
        return [j for i in pending for j in chunks[i]
                if j["kind"] == "pretrain" or not Path(j["out"], f"{j['run_id']}.parquet").exists()]
    finally:
        for i in pending:
            release(chunks[i])


class SubmititExecutor:
    """Submitit jobs on SLURM (`name` "slurm") or on this machine (`name` "submitit-local")."""

    def __init__(self, plan: Plan, stop: StopSignals, *, name: str = "slurm",
                 threads_per_job: int | None = None) -> None:
        self.plan, self.stop = plan, stop
        self.cluster = "local" if name == "submitit-local" else "slurm"

    def run(self, jobs: list[dict], progress: Progress, phase: str) -> list[dict]:
        """Submit the jobs (one pretraining, or `runs_per_job` runs, per submitit job) and wait for
        them; returns the jobs abandoned in flight on a stop."""
        per = 1 if phase == "pretrain" else int(self.plan.slurm["runs_per_job"])
        return _run_submitit(self.plan, jobs, self.cluster, progress, per, self.stop)

    def close(self) -> None:
        """Nothing to release: every job's claims were released when it ended or was cancelled."""
