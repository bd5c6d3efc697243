"""Inside a worker process: run one job (pretraining or finetuning) with its log file.

`execute` runs a job in this process (jax starts here, never in the sweep's driver): it switches
`jax_enable_x64` off, shares XLA compilations between the sweep's processes through jax's
persistent cache, checks that the devices this process sees are the ones the plan was made for,
and calls runners/jobs.py. `execute_logged` adds the per-job log file and turns a failure into a
result ({"error", "log"}); a SIGTERM (`abandon`, installed by runners/sweep/worker.py) gives the job
up with no row written.

Each job logs (`logging`) to a file next to its output: `<out>/_<run_id>.log` for a run (the
underscore keeps pyarrow/pandas directory readers off it), `<checkpoint dir>.log` for a pretraining.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
from pathlib import Path
from types import FrameType

from ..device import DeviceInfo
from .plan import RUNNER_VERSION

__all__ = ["Abandoned", "abandon", "execute", "execute_logged", "execute_many", "init_worker", "job_log_path"]

log = logging.getLogger(__name__)


class Abandoned(BaseException):
    """Raised in a worker by SIGTERM: the job in flight is given up (no row written)."""


_abandoning: list[int] = []


def abandon(signum: int, frame: FrameType | None) -> None:
    """A worker's SIGTERM handler: give up the job in flight (see `execute_logged`)."""
    _abandoning.append(signum)
    raise Abandoned(f"signal {signum}")


def init_worker(threads: int | None, slot: int = 0) -> None:
    """Limit this process to `threads` cores / XLA threads. Must run before jax is imported.

    Parameters
    ----------
    threads
        Cores and XLA CPU threads (None or 0: no limit).
    slot
        The worker's index: it is pinned to the `threads` cores from `slot * threads` on, so that
        parallel workers take different cores.
    """
    if not threads:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1:
        flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["XLA_FLAGS"] = flags.strip()
    try:
        cpus = sorted(os.sched_getaffinity(0))
        start = (slot * threads) % len(cpus)
        os.sched_setaffinity(0, {cpus[(start + i) % len(cpus)] for i in range(threads)})
    except (AttributeError, OSError):
        pass


def _compilation_cache(default: Path) -> None:
    """Share XLA compilations between the processes of a sweep (jax's persistent cache): workers,
    resumed sweeps and submitit jobs then compile each step function once. JAX_COMPILATION_CACHE_DIR
    overrides the location."""
    import jax
    if jax.config.jax_compilation_cache_dir:
        return
    jax.config.update("jax_compilation_cache_dir", os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(default))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _check_devices(job: dict) -> DeviceInfo:
    """The devices this process sees are the ones the plan was validated for."""
    from ..device import probe
    info, want = probe(), job.get("device") or {}
    backend = "gpu" if info.backend in ("gpu", "cuda", "rocm") else info.backend
    if want and (backend != want["backend"] or info.device_count != want["device_count"]):
        raise RuntimeError(f"the plan was made for {want['device_count']} {want['backend']} device(s) per run, "
                           f"but this worker sees {info.device_count} {backend} device(s) "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    return info


def execute(job: dict) -> dict:
    """Run one job in this process (pretrain or finetune); returns a small summary."""
    for k, v in (job.get("env") or {}).items():  # effective only before jax starts (submitit jobs)
        os.environ.setdefault(k, v)
    import jax
    jax.config.update("jax_enable_x64", False)  # runners train in float32/bf16, whatever imported us
    _compilation_cache(Path(job["ckpt_dir"]).parent / ".jax_cache")
    info = _check_devices(job)
    from .. import jobs  # imports flax
    if job["kind"] == "pretrain":
        return jobs.run_pretrain(job, log=log.info)
    if Path(job["out"], f"{job['run_id']}.parquet").exists():
        return {"kind": "finetune", "run_id": job["run_id"], "skipped": True}
    row = jobs.run_finetune(job, info)
    return {"kind": "finetune", "run_id": job["run_id"], "loss": row["loss"], "wall_seconds": row["wall_seconds"]}


def job_log_path(job: dict) -> Path:
    """The log file of `job`: `<out>/_<run_id>.log` for a run, `<checkpoint dir>.log` for a pretraining."""
    if job["kind"] == "pretrain":
        return Path(str(job["ckpt_dir"]) + ".log")
    return Path(job["out"]) / f"_{job['run_id']}.log"  # "_": directory readers (pyarrow, pandas) skip it


_STDERR_HANDLER = False


def execute_logged(job: dict) -> dict:
    """`execute` with a per-job log file (appended: a retried run keeps the record of its failures).
    Failures are returned as {"error", "log"}, not raised; an abandoning signal is logged and re-raised."""
    global _STDERR_HANDLER
    if not _STDERR_HANDLER:  # warnings and failures also reach the sweep's terminal
        h = logging.StreamHandler(sys.stderr)
        h.setLevel(logging.WARNING)
        logging.getLogger().addHandler(h)
        _STDERR_HANDLER = True
    logging.getLogger("runners").setLevel(logging.INFO)
    path = job_log_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(path)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(fh)
    what = job.get("run_id") or Path(job["ckpt_dir"]).name
    try:
        log.info("start %s %s on %s pid %d (runner version %d)", job["kind"], what, socket.gethostname(),
                 os.getpid(), RUNNER_VERSION)
        log.info("configuration %s", json.dumps(job.get("config") or {k: job[k] for k in ("task", "model", "pretrain")},
                                                 sort_keys=True))
        res = execute(job)
        log.info("finished: %s", json.dumps(res))
        return res
    except Exception as e:  # noqa: BLE001 - reported per run by the driver
        if _abandoning:  # the signal surfaced through a library as another exception
            log.warning("%s %s abandoned (signal %d; %s): no row written", job["kind"], what, _abandoning[0],
                        type(e).__name__)
            raise Abandoned(f"signal {_abandoning[0]}") from None
        log.exception("%s %s failed", job["kind"], what)
        return {"kind": job["kind"], "run_id": job.get("run_id"), "error": f"{type(e).__name__}: {e}",
                "log": str(path)}
    except BaseException as e:
        log.warning("%s %s abandoned (%s): no row written", job["kind"], what, e or type(e).__name__)
        raise
    finally:
        root.removeHandler(fh)
        fh.close()


def execute_many(batch: list[dict]) -> list[dict]:
    """A submitit job: several runs in one process (compiles shared). Failures are returned, not raised."""
    return [execute_logged(job) for job in batch]
