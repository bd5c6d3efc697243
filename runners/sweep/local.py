"""The local executor: worker processes on this machine (`python -m runners.sweep.worker`).

Each worker has its own environment (`worker_env`): one GPU (CUDA_VISIBLE_DEVICES) and a deliberate
XLA memory fraction on a GPU node, a thread limit and pinned cores on a CPU. Pretraining runs in a
worker too: the driver never initialises jax. Jobs go to the workers one JSON line each; results
come back the same way (runners/sweep/worker.py).

On a stop, runs in flight are abandoned: their workers get SIGTERM, write no row, and are killed if
they have not exited within `GRACE` seconds; a second signal kills them at once.
"""
from __future__ import annotations

import collections
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import claims
from .execute import job_log_path
from .plan import REPO_ROOT, Plan
from .progress import Progress, StopSignals

__all__ = ["GRACE", "LocalExecutor", "WorkerProcess", "worker_env"]

GRACE = 10.0  # seconds abandoned workers get to exit after SIGTERM before they are killed


class WorkerProcess:
    """One `python -m runners.sweep.worker` process and the job it is running (None when idle)."""

    def __init__(self, slot: int, threads: int | None, env: dict) -> None:
        self.slot = slot
        cmd = [sys.executable, "-m", "runners.sweep.worker", "--slot", str(slot), "--ppid", str(os.getpid())]
        if threads:
            cmd += ["--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.job: dict | None = None

    def send(self, job: dict) -> None:
        """Hand `job` to the worker."""
        self.job = job
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()

    def read(self) -> list[dict] | None:
        """Complete result lines available now; None at EOF (the worker exited)."""
        try:
            data = os.read(self.proc.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return []
        if not data:
            return None
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [json.loads(x) for x in lines if x.strip()]

    def close_stdin(self) -> None:
        """No more jobs: the worker exits after the one in flight."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def signal(self, sig: int) -> None:
        """Send `sig` to the worker if it is still running."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass


def worker_env(plan: Plan, slot: int) -> dict:
    """The environment of a worker process.

    Parameters
    ----------
    plan
        The sweep's plan (its devices and [local] table).
    slot
        The worker's index.

    Returns
    -------
    dict
        This process's environment with the repository on PYTHONPATH, no JAX_ENABLE_X64, the plan's
        device variables and, on a GPU node, the slot's GPU(s) in CUDA_VISIBLE_DEVICES and the XLA
        memory fraction.
    """
    env = dict(os.environ)
    env.pop("JAX_ENABLE_X64", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.update(dict(plan.devices.env))
    dev = plan.devices
    if dev.backend == "gpu":
        k = dev.per_run
        env["CUDA_VISIBLE_DEVICES"] = ",".join(dev.gpu_ids[slot * k:(slot + 1) * k])
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", str(plan.local["memory_fraction"]))
    return env


class LocalExecutor:
    """Worker processes on this machine, `[local] jobs` at most (started lazily, kept across phases)."""

    def __init__(self, plan: Plan, stop: StopSignals, *, name: str = "local",
                 threads_per_job: int | None = None) -> None:
        n = int(plan.local["jobs"])
        asked = threads_per_job or plan.local["threads_per_job"]
        threads = asked or max(1, (os.cpu_count() or 1) // n)
        if plan.devices.backend == "gpu" and not asked:
            threads = None  # a GPU worker: leave XLA's host threads alone
        self.plan, self.n, self.threads, self.stop = plan, n, threads, stop
        self.workers: dict[int, WorkerProcess] = {}
        self.sel = selectors.DefaultSelector()
        stop.killers.append(self.kill)

    def _spawn(self, slot: int) -> WorkerProcess:
        w = WorkerProcess(slot, self.threads, worker_env(self.plan, slot))
        self.workers[slot] = w
        self.sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        return w

    def _drop(self, w: WorkerProcess) -> None:
        try:
            self.sel.unregister(w.proc.stdout)
        except (KeyError, ValueError):
            pass
        self.workers.pop(w.slot, None)
        w.close_stdin()
        w.proc.stdout.close()

    def kill(self) -> None:
        """SIGKILL every worker (a second signal)."""
        for w in list(self.workers.values()):
            w.signal(signal.SIGKILL)

    def run(self, jobs: list[dict], progress: Progress, phase: str) -> list[dict]:
        """Run the jobs on up to `[local] jobs` workers; returns the jobs abandoned in flight on a stop."""
        n = min(self.n, len(jobs))
        queue = collections.deque(jobs)
        while not self.stop.signum:
            for slot in range(n):
                w = self.workers.get(slot)
                if (w is not None and w.job is not None) or not queue:
                    continue
                job = None
                while queue and job is None:
                    job = self._next(queue, progress)
                if job is None:
                    continue
                w = w or self._spawn(slot)
                try:
                    w.send(job)
                except (BrokenPipeError, OSError):
                    self._finish(w, job, {"error": f"worker exited (status {w.proc.wait()})"}, progress)
                    self._drop(w)
            if not queue and not any(w.job for w in self.workers.values()):
                return []
            self._poll(progress, 0.2)
        return self._abandon(progress)

    def _next(self, queue, progress):
        job = queue.popleft()
        if job["kind"] != "finetune":
            return job
        out, rid = job["out"], job["run_id"]
        if not claims.claim(out, rid):
            progress(job, {"claimed_by": claims.holder(claims.claim_path(out, rid)) or {}})
            return None
        if Path(out, f"{rid}.parquet").exists():  # finished by another sweep meanwhile
            claims.release(out, rid)
            progress(job, {"skipped": True})
            return None
        return job

    def _finish(self, w: WorkerProcess, job: dict, res: dict, progress: Progress | None) -> None:
        w.job = None
        if job["kind"] == "finetune":
            claims.release(job["out"], job["run_id"])
        if progress is not None:
            progress(job, res)

    def _poll(self, progress: Progress | None, timeout: float, errors: bool = True):
        for key, _ in self.sel.select(timeout):
            w = key.data
            results = w.read()
            if results is None:  # the worker exited
                rc = w.proc.wait()
                if w.job is not None:
                    why = (f"worker killed by signal {-rc}" if rc < 0 else f"worker exited with status {rc}")
                    self._finish(w, w.job, {"error": why, "log": str(job_log_path(w.job))},
                                 None if self.stop.signum else progress)
                self._drop(w)
                continue
            for res in results:
                if w.job is not None:
                    self._finish(w, w.job, res, progress if errors or "error" not in res else None)

    def _abandon(self, progress: Progress) -> list[dict]:
        inflight = [w.job for w in self.workers.values() if w.job is not None]
        for w in self.workers.values():
            w.close_stdin()
            if w.job is not None:
                w.signal(signal.SIGTERM)
        deadline = time.time() + GRACE
        while self.workers and time.time() < deadline and not self.stop.hard:
            self._poll(progress, 0.1, errors=False)  # a result that arrives now is a finished run
        self.kill()
        for w in list(self.workers.values()):
            w.proc.wait()
            if w.job is not None:
                self._finish(w, w.job, {}, None)
            self._drop(w)
        return [j for j in inflight if j["kind"] == "pretrain"
                or not Path(j["out"], f"{j['run_id']}.parquet").exists()]

    def close(self) -> None:
        """Let idle workers exit (kill them all first if the sweep was stopped)."""
        if self.stop.signum:
            self.kill()
        for w in list(self.workers.values()):
            w.close_stdin()
        deadline = time.time() + 30
        for w in list(self.workers.values()):
            try:
                w.proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                w.signal(signal.SIGKILL)
                w.proc.wait()
            self._drop(w)
        self.sel.close()
