"""Sweeps: a TOML grid over model size x pretraining checkpoint x finetuning set size x seed x
method x PET size (validated and expanded by plan.py), run by an executor, one runs-table row file
per finished run.

Phases: (1) pretrain each model size once (checkpoints at the listed steps, the pretraining-tokens
axis); (2) every finetuning run. A run's `run_id` is a hash of its full configuration; a run whose
`<run_id>.parquet` exists is skipped, so re-running a sweep resumes it. Rows are written atomically
(see rows.py): a killed sweep loses only the runs in flight. Before a run starts, the driver claims
it (claims.py), so two sweeps on one directory never compute the same run.

Executors:
- `local`: `jobs` worker processes (`python -m runners.worker`), each with its own environment: one
  GPU (CUDA_VISIBLE_DEVICES) and a deliberate XLA memory fraction on a GPU node, a thread limit and
  pinned cores on a CPU. Pretraining runs in a worker too: this process never initialises jax.
- `slurm`: submitit jobs (partition, GPUs, time limit from the TOML's [slurm] table), each running
  `runs_per_job` runs of one model size and method (they share compiled steps); a job that reaches
  its time limit is requeued (the callable has a `checkpoint` method: finished runs are skipped,
  pretraining resumes from its last checkpoint). `submitit-local` runs the same code path through
  submitit's LocalExecutor.

Stopping: the first SIGINT (Ctrl-C) or SIGTERM (what SLURM sends before a time limit) starts no new
run; runs in flight are abandoned (their workers get SIGTERM, write no row, and are killed if they
have not exited within `GRACE` seconds); the driver says what is done and what is left and
`run_sweep` raises SweepInterrupted (exit status 130 for SIGINT, 143 for SIGTERM). A second signal
kills the workers at once.

Each job logs (`logging`) to a file next to its output: `<out>/_<run_id>.log` for a run (the
underscore keeps pyarrow/pandas directory readers off it),
`<checkpoint dir>.log` for a pretraining.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import claims, rows
from .plan import EXECUTORS, REPO_ROOT, RUNNER_VERSION, Plan, SweepError, load_plan  # noqa: F401 (re-exported)

GRACE = 10.0  # seconds abandoned workers get to exit after SIGTERM before they are killed
log = logging.getLogger(__name__)


class Abandoned(BaseException):
    """Raised in a worker by SIGTERM: the job in flight is given up (no row written)."""


_abandoning: list[int] = []


def abandon(signum, frame):
    """A worker's SIGTERM handler: give up the job in flight (see `execute_logged`)."""
    _abandoning.append(signum)
    raise Abandoned(f"signal {signum}")


class SweepInterrupted(Exception):
    """The sweep stopped on a signal; `code` is the exit status (128 + signal number)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


# ---- inside a worker ------------------------------------------------------------------------

def init_worker(threads: int | None, slot: int = 0):
    """Limit this process to `threads` cores / XLA threads. Must run before jax is imported."""
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


def _compilation_cache(default: Path):
    """Share XLA compilations between the processes of a sweep (jax's persistent cache): workers,
    resumed sweeps and submitit jobs then compile each step function once. JAX_COMPILATION_CACHE_DIR
    overrides the location."""
    import jax
    if jax.config.jax_compilation_cache_dir:
        return
    jax.config.update("jax_compilation_cache_dir", os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(default))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _check_devices(job: dict):
    """The devices this process sees are the ones the plan was validated for."""
    from .device import probe
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
    from . import jobs  # imports flax
    if job["kind"] == "pretrain":
        return jobs.run_pretrain(job, log=log.info)
    if Path(job["out"], f"{job['run_id']}.parquet").exists():
        return {"kind": "finetune", "run_id": job["run_id"], "skipped": True}
    row = jobs.run_finetune(job, info)
    return {"kind": "finetune", "run_id": job["run_id"], "loss": row["loss"], "wall_seconds": row["wall_seconds"]}


def job_log_path(job: dict) -> Path:
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


class RunBatch:
    """The submitit callable. On a time limit or preemption submitit calls `checkpoint` and requeues
    the same batch: finished runs are skipped (their rows exist), a pretraining resumes from its
    last orbax step, so a job longer than the time limit still completes over several requeues."""

    def __call__(self, batch: list[dict]) -> list[dict]:
        return execute_many(batch)

    def checkpoint(self, batch: list[dict]):
        import submitit
        return submitit.helpers.DelayedSubmission(RunBatch(), batch)


# ---- the driver -----------------------------------------------------------------------------

class Progress:
    def __init__(self, total: int, stream=sys.stderr, label="runs"):
        self.total, self.done, self.failed, self.t0, self.stream, self.label = total, 0, 0, time.time(), stream, label
        self.computed, self.elsewhere = 0, 0

    def __call__(self, job: dict, res: dict):
        self.last = res
        self.done += 1
        el = time.time() - self.t0
        eta = el / self.done * (self.total - self.done)
        c = job.get("config", job)
        what = (f"{c['model'].get('name')} {c['method']}{'' if c['pet_size'] is None else '/' + str(c['pet_size'])}"
                f" n={c['finetune_examples']} seed={c['seed']} step={c['pretrain_step']}"
                if job["kind"] == "finetune" else f"pretrain {c['model'].get('name')}")
        if "error" in res:
            self.failed += 1
            msg = f"FAILED {res['error']}" + (f" (log: {res['log']})" if res.get("log") else "")
        elif res.get("claimed_by"):
            self.elsewhere += 1
            h = res["claimed_by"]
            msg = f"left to the sweep that claimed it (host {h.get('host')}, pid {h.get('pid')})"
        elif res.get("skipped"):
            msg = "already done"
        elif "loss" in res:
            self.computed += 1
            msg = f"loss={res['loss']:.4f} ({res['wall_seconds']:.1f}s)"
        else:
            self.computed += 1
            msg = f"done ({res.get('wall_seconds', 0):.1f}s)"
        print(f"[{self.label} {self.done}/{self.total} {el:.0f}s eta {eta:.0f}s] {what}: {msg}",
              file=self.stream, flush=True)


class StopSignals:
    """SIGINT/SIGTERM while a sweep runs: the first sets `signum` (no new work), the second calls the
    registered kill functions at once. Installed only in the main thread; restored on exit."""

    def __init__(self):
        self.signum: int | None = None
        self.hard = False
        self.killers: list = []
        self._old = {}

    def _handler(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            print(f"\n{signal.Signals(signum).name}: stopping: no new runs start, runs in flight are abandoned "
                  f"(signal again to kill the workers at once)", file=sys.stderr, flush=True)
        else:
            self.hard = True
            for k in list(self.killers):
                k()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


class _Worker:
    def __init__(self, slot: int, threads: int | None, env: dict):
        self.slot = slot
        cmd = [sys.executable, "-m", "runners.worker", "--slot", str(slot), "--ppid", str(os.getpid())]
        if threads:
            cmd += ["--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.job: dict | None = None

    def send(self, job: dict):
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

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def signal(self, sig):
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass


def worker_env(plan: Plan, slot: int) -> dict:
    """The environment of worker `slot`: its GPU(s) and memory fraction on a GPU node; no x64."""
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


class LocalPool:
    """Worker processes for the local executor (started lazily, kept across phases)."""

    def __init__(self, plan: Plan, n: int, threads: int | None, stop: StopSignals):
        self.plan, self.n, self.threads, self.stop = plan, n, threads, stop
        self.workers: dict[int, _Worker] = {}
        self.sel = selectors.DefaultSelector()
        stop.killers.append(self.kill)

    def _spawn(self, slot: int) -> _Worker:
        w = _Worker(slot, self.threads, worker_env(self.plan, slot))
        self.workers[slot] = w
        self.sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        return w

    def _drop(self, w: _Worker):
        try:
            self.sel.unregister(w.proc.stdout)
        except (KeyError, ValueError):
            pass
        self.workers.pop(w.slot, None)
        w.close_stdin()
        w.proc.stdout.close()

    def kill(self):
        for w in list(self.workers.values()):
            w.signal(signal.SIGKILL)

    def run(self, jobs_: list[dict], progress: Progress, n: int) -> list[dict]:
        """Run the jobs on up to `n` workers; returns the jobs abandoned in flight on a stop."""
        queue = collections.deque(jobs_)
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

    def _finish(self, w: _Worker, job: dict, res: dict, progress: Progress):
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

    def close(self):
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


def _submitit_executor(plan: Plan, cluster: str | None):
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
    """Batches of at most `per_job` runs, each of one checkpoint and method where possible (runs in
    a batch share the base model and compiled steps)."""
    def key(j):
        c = j.get("config") or {}
        return (j["ckpt_dir"], c.get("pretrain_step", 0), c.get("method", ""), c.get("pet_size") or 0)
    groups = collections.defaultdict(list)
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

    def release(chunk):
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


def _older_rows(out: Path, run_ids) -> int:
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


def run_sweep(sweep_path, executor: str = "local", out=None, jobs: int | None = None,
              threads_per_job: int | None = None, dry_run: bool = False, stream=sys.stderr,
              device: str | None = None) -> Path:
    """Run (or resume) a sweep; returns the dataset directory. Raises SweepError on bad input,
    SweepInterrupted on SIGINT/SIGTERM and RuntimeError if some runs failed (their rows are missing;
    re-running retries them)."""
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
    n_jobs = int(plan.local["jobs"])
    threads = threads_per_job or plan.local["threads_per_job"] or max(1, (os.cpu_count() or 1) // n_jobs)
    if plan.devices.backend == "gpu" and executor == "local" and not (threads_per_job or plan.local["threads_per_job"]):
        threads = None  # a GPU worker: leave XLA's host threads alone
    abandoned: list[dict] = []
    progs = []
    with StopSignals() as stop:
        pool = LocalPool(plan, n_jobs, threads, stop) if executor == "local" else None
        try:
            for phase, js in (("pretrain", pre), ("runs", todo)):
                if not js or stop.signum:
                    continue
                prog = Progress(len(js), stream, phase)
                progs.append(prog)
                if pool is not None:
                    abandoned = pool.run(js, prog, min(n_jobs, len(js)))
                else:
                    per = 1 if phase == "pretrain" else int(plan.slurm["runs_per_job"])
                    abandoned = _run_submitit(plan, js, "local" if executor == "submitit-local" else "slurm", prog,
                                              per, stop)
                if prog.failed and not stop.signum:
                    raise RuntimeError(f"{prog.failed} of {len(js)} {phase} jobs failed (see messages and logs "
                                       f"above); re-run the sweep to retry them")
        finally:
            if pool is not None:
                if stop.signum:
                    pool.kill()
                pool.close()
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
