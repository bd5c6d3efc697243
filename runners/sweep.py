"""Sweeps: a TOML grid over model size x pretraining checkpoint x finetuning set size x seed x
method x PET size, run by an executor, one runs-table row file per finished run.

Phases: (1) pretrain each model size once (checkpoints at the listed steps, the pretraining-tokens
axis); (2) every finetuning run. A run's `run_id` is a hash of its full configuration; a run whose
`<run_id>.parquet` exists is skipped, so re-running a sweep resumes it. Rows are written atomically
(see rows.py): a killed sweep loses only the runs in flight.

Executors:
- `local`: a pool of `jobs` worker processes (spawned; each limited to `threads_per_job` XLA
  threads and pinned to as many cores), each keeping its compiled steps across runs;
- `slurm`: submitit jobs (partition, GPUs, time limit from the TOML's [slurm] table), each running
  `runs_per_job` runs; `submitit-local` runs the same code path through submitit's LocalExecutor.

This module does not import jax (workers set their thread count before importing it).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
import tomllib
from pathlib import Path

from . import rows

RUNNER_VERSION = 1
METHODS = ("fmt", "prompt", "lora")
EXECUTORS = ("local", "slurm", "submitit-local")
DEFAULT_LR = {"fmt": 1e-3, "prompt": 3e-2, "lora": 3e-3}  # = finetune.DEFAULT_LR (no jax import here)


class SweepError(ValueError):
    """Bad sweep file or input: reported as one line, exit status 2."""


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@dataclasses.dataclass
class Plan:
    name: str
    out: Path
    ckpt_dir: Path
    pretrain_jobs: list[dict]
    runs: list[dict]  # finetuning jobs: {"run_id", "config", "ckpt_dir", "out"}
    local: dict
    slurm: dict


_ALLOWED = {
    "sweep": {"name", "out", "checkpoint_dir", "task", "zero_shot_task", "methods", "finetune_examples",
              "seeds", "prompt_lengths", "lora_ranks", "train_pool"},
    "models": {"ladder", "configs"},
    "pretrain": {"steps", "batch_size", "seq_len", "lr", "warmup", "weight_decay", "checkpoints", "seed", "dtype"},
    "finetune": {"steps", "batch_size", "lr", "warmup", "weight_decay", "eval_every", "dev_examples",
                 "lora_alpha", "dtype"},
    "eval": {"test_examples", "decode_examples"},
    "local": {"jobs", "threads_per_job"},
    "slurm": {"partition", "gpus_per_node", "cpus_per_task", "timeout_min", "runs_per_job", "mem_gb",
              "array_parallelism", "additional_parameters"},
}


def _check_keys(doc: dict, path: Path):
    for sect, val in doc.items():
        if sect not in _ALLOWED:
            raise SweepError(f"{path}: unknown table [{sect}] (known: {', '.join(sorted(_ALLOWED))})")
        if not isinstance(val, dict):
            raise SweepError(f"{path}: [{sect}] must be a table")
        bad = set(val) - _ALLOWED[sect]
        if bad:
            raise SweepError(f"{path}: unknown key(s) {sorted(bad)} in [{sect}] (known: {sorted(_ALLOWED[sect])})")


def _pos_ints(name, xs, allow_empty=False):
    if not isinstance(xs, list) or (not xs and not allow_empty) or not all(
            isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in xs):
        raise SweepError(f"{name} must be a list of positive integers, got {xs!r}")
    return sorted(set(xs))


def _task_spec(spec, base_dir: Path):
    if isinstance(spec, str):
        return {"name": spec}
    if isinstance(spec, dict):
        spec = dict(spec)
        for k in ("tsv", "ding"):
            if k in spec:
                p = Path(spec[k])
                spec[k] = str(p if p.is_absolute() else (base_dir / p).resolve())
                if not Path(spec[k]).exists():
                    raise SweepError(f"task {k} file not found: {spec[k]}")
        return spec
    raise SweepError(f"task must be a name or a table, got {spec!r}")


def _vocab_size(spec: dict) -> int:
    # the synthetic vocabulary is tiny and fixed by its seed; corpora need the tokenizer (lazy import)
    from .tasks import get_task
    try:
        return get_task(spec).vocab_size
    except (ValueError, OSError) as e:
        raise SweepError(f"task {spec}: {e}") from None


def load_plan(sweep_path, out=None) -> Plan:
    """Parse and validate a sweep TOML; expand it into pretraining jobs and finetuning runs."""
    path = Path(sweep_path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"sweep file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{path}: invalid TOML: {e}") from None
    _check_keys(doc, path)
    base = path.resolve().parent
    sw = doc.get("sweep", {})
    name = sw.get("name", path.stem)
    out = Path(out) if out is not None else (base / sw.get("out", name))
    ckpt_dir = Path(sw["checkpoint_dir"]) if "checkpoint_dir" in sw else out / ".checkpoints"
    if not ckpt_dir.is_absolute():
        ckpt_dir = base / ckpt_dir
    task = _task_spec(sw.get("task", "synth_translate"), base)
    default_zs = {"synth_translate": "synth_summarise", "synth_summarise": "synth_translate"}.get(task.get("name"))
    zs = sw.get("zero_shot_task", default_zs)
    zs = _task_spec(zs, base) if zs else None
    methods = sw.get("methods", list(METHODS))
    if not isinstance(methods, list) or not methods or any(m not in METHODS for m in methods):
        raise SweepError(f"methods must be a non-empty list drawn from {list(METHODS)}, got {methods!r}")
    sizes = _pos_ints("finetune_examples", sw.get("finetune_examples", [100]))
    seeds = sw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise SweepError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    plens = _pos_ints("prompt_lengths", sw.get("prompt_lengths", [8]))
    ranks = _pos_ints("lora_ranks", sw.get("lora_ranks", [4]))
    pool = sw.get("train_pool", max(sizes))
    if not isinstance(pool, int) or pool < max(sizes):
        raise SweepError(f"train_pool ({pool!r}) must be an integer >= the largest finetune_examples ({max(sizes)})")

    V = _vocab_size(task)
    if zs and _vocab_size(zs) != V:
        raise SweepError("zero_shot_task must share the task's vocabulary")
    from .config import ModelConfig, ladder
    models_doc = doc.get("models", {"ladder": {"n": 2}})
    try:
        if "configs" in models_doc:
            models = []
            for i, m in enumerate(models_doc["configs"]):
                c = ModelConfig(vocab_size=V, **m)
                models.append(dataclasses.replace(c, name=c.name or f"L{c.n_layers}-d{c.d_model}"))
        else:
            models = ladder(V, **models_doc.get("ladder", {}))
    except (TypeError, ValueError) as e:
        raise SweepError(f"[models]: {e}") from None

    pdoc = dict(doc.get("pretrain", {}))
    pre = dict(steps=1000, batch_size=32, seq_len=64, lr=3e-3, warmup=50, weight_decay=0.01, seed=0, dtype="auto")
    pre.update({k: v for k, v in pdoc.items() if k != "checkpoints"})
    ck = _pos_ints("pretrain.checkpoints", pdoc.get("checkpoints", [pre["steps"]]))
    if max(ck) > pre["steps"]:
        raise SweepError(f"pretrain.checkpoints {ck} go beyond pretrain.steps = {pre['steps']}")
    pre["checkpoints"] = ck

    fdoc = dict(doc.get("finetune", {}))
    lr = fdoc.pop("lr", None)
    if isinstance(lr, dict):
        bad = set(lr) - set(METHODS)
        if bad:
            raise SweepError(f"finetune.lr has unknown method(s) {sorted(bad)}")
        lrs = {**DEFAULT_LR, **lr}
    elif lr is None:
        lrs = dict(DEFAULT_LR)
    elif isinstance(lr, (int, float)) and lr > 0:
        lrs = {m: float(lr) for m in METHODS}
    else:
        raise SweepError(f"finetune.lr must be a positive number or a table per method, got {lr!r}")
    fin = dict(steps=300, batch_size=16, warmup=20, weight_decay=0.0, eval_every=50, dev_examples=128,
               lora_alpha=None, dtype="auto")
    fin.update(fdoc)
    ev = dict(test_examples=256, decode_examples=32)
    ev.update(doc.get("eval", {}))

    pretrain_jobs, runs = [], []
    for cfg in models:
        mdict = cfg.to_dict()
        pkey = {"task": task, "model": mdict, "pretrain": pre, "v": RUNNER_VERSION}
        cdir = ckpt_dir / f"{cfg.name}-{_hash(pkey)[:10]}"
        pretrain_jobs.append({"kind": "pretrain", "task": task, "model": mdict, "pretrain": pre,
                              "ckpt_dir": str(cdir)})
        for step in ck:
            for n in sizes:
                for seed in seeds:
                    for method in methods:
                        pets = {"fmt": [None], "prompt": plens, "lora": ranks}[method]
                        for pet in pets:
                            config = {"runner_version": RUNNER_VERSION, "task": task, "zero_shot_task": zs,
                                      "model": mdict, "pretrain": pre, "pretrain_step": step,
                                      "method": method, "pet_size": pet, "finetune_examples": n,
                                      "train_pool": pool, "seed": seed,
                                      "finetune": {**fin, "lr": lrs[method]}, "eval": ev}
                            runs.append({"kind": "finetune", "run_id": _hash(config), "config": config,
                                         "ckpt_dir": str(cdir), "out": str(out)})
    ids = [r["run_id"] for r in runs]
    assert len(set(ids)) == len(ids), "duplicate configurations in the grid"
    local = {"jobs": 1, "threads_per_job": None, **doc.get("local", {})}
    slurm = {"partition": None, "gpus_per_node": 1, "cpus_per_task": 4, "timeout_min": 120, "runs_per_job": 8,
             "mem_gb": 32, "array_parallelism": 64, "additional_parameters": {}, **doc.get("slurm", {})}
    return Plan(name, out, ckpt_dir, pretrain_jobs, runs, local, slurm)


# ---- execution ------------------------------------------------------------------------------

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


def _init_pool_worker(threads, counter):
    with counter.get_lock():
        slot = counter.value
        counter.value += 1
    init_worker(threads, slot)


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


def execute(job: dict) -> dict:
    """Run one job in this process (pretrain or finetune); returns a small summary."""
    _compilation_cache(Path(job["ckpt_dir"]).parent / ".jax_cache")
    from . import jobs  # imports jax
    if job["kind"] == "pretrain":
        return jobs.run_pretrain(job)
    if Path(job["out"], f"{job['run_id']}.parquet").exists():
        return {"kind": "finetune", "run_id": job["run_id"], "skipped": True}
    row = jobs.run_finetune(job)
    return {"kind": "finetune", "run_id": job["run_id"], "loss": row["loss"], "wall_seconds": row["wall_seconds"]}


def execute_many(batch: list[dict]) -> list[dict]:
    """A submitit job: several runs in one process (compiles shared). Failures are returned, not raised."""
    import traceback
    res = []
    for job in batch:
        try:
            res.append(execute(job))
        except Exception as e:  # noqa: BLE001 - reported per run by the driver
            res.append({"kind": job["kind"], "run_id": job.get("run_id"), "error": f"{type(e).__name__}: {e}",
                        "traceback": traceback.format_exc()})
    return res


class Progress:
    def __init__(self, total: int, stream=sys.stderr, label="runs"):
        self.total, self.done, self.failed, self.t0, self.stream, self.label = total, 0, 0, time.time(), stream, label

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
            msg = f"FAILED {res['error']}"
        elif res.get("skipped"):
            msg = "already done"
        elif "loss" in res:
            msg = f"loss={res['loss']:.4f} ({res['wall_seconds']:.1f}s)"
        else:
            msg = f"done ({res.get('wall_seconds', 0):.1f}s)"
        print(f"[{self.label} {self.done}/{self.total} {el:.0f}s eta {eta:.0f}s] {what}: {msg}",
              file=self.stream, flush=True)


def _run_local(jobs_: list[dict], n_jobs: int, threads: int | None, progress: Progress):
    if n_jobs == 1 and "jax" not in sys.modules:
        # one job at a time: run in this process (thread limit set before jax is first imported)
        init_worker(threads)
        for job in jobs_:
            progress(job, execute_many([job])[0])
            if "traceback" in progress.last:
                print(progress.last["traceback"], file=progress.stream)
        return
    import concurrent.futures as cf
    import multiprocessing as mp
    import traceback
    ctx = mp.get_context("spawn")
    counter = ctx.Value("i", 0)
    with cf.ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_init_pool_worker,
                                initargs=(threads, counter)) as pool:
        futs = {pool.submit(execute, j): j for j in jobs_}
        for f in cf.as_completed(futs):
            try:
                res = f.result()
            except Exception as e:  # noqa: BLE001
                res = {"error": f"{type(e).__name__}: {e}",
                       "traceback": "".join(traceback.format_exception(e))}
            if "traceback" in res:
                print(res["traceback"], file=progress.stream)
            progress(futs[f], res)


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
        if s["additional_parameters"]:
            params["slurm_additional_parameters"] = dict(s["additional_parameters"])
    else:  # submitit's local executor: CPU only
        params["gpus_per_node"] = 0
    ex.update_parameters(**params)
    return ex


def _run_submitit(plan: Plan, jobs_: list[dict], cluster: str | None, progress: Progress, per_job: int):
    ex = _submitit_executor(plan, cluster)
    chunks = [jobs_[i:i + per_job] for i in range(0, len(jobs_), per_job)]
    handles = ex.map_array(execute_many, chunks) if len(chunks) > 1 else [ex.submit(execute_many, chunks[0])]
    pending = dict(zip(range(len(handles)), handles))
    while pending:
        for i, h in list(pending.items()):
            if h.done():
                del pending[i]
                try:
                    results = h.result()
                except Exception as e:  # noqa: BLE001 - a job that died (timeout, OOM, preemption)
                    results = [{"error": f"submitit job {h.job_id} failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"}
                               for _ in chunks[i]]
                for job, res in zip(chunks[i], results):
                    if "traceback" in res:
                        print(res["traceback"], file=progress.stream)
                    progress(job, res)
        if pending:
            time.sleep(0.5)


def run_sweep(sweep_path, executor: str = "local", out=None, jobs: int | None = None,
              threads_per_job: int | None = None, dry_run: bool = False, stream=sys.stderr) -> Path:
    """Run (or resume) a sweep; returns the dataset directory. Raises SweepError on bad input and
    RuntimeError if some runs failed (their rows are missing; re-running retries them)."""
    if executor not in EXECUTORS:
        raise SweepError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    plan = load_plan(sweep_path, out)
    plan.out.mkdir(parents=True, exist_ok=True)
    rows.clean_stale_tmp(plan.out)
    try:
        done = rows.finished_run_ids(plan.out)
    except rows.CorruptRunFile as e:
        raise SweepError(str(e)) from None
    todo = [r for r in plan.runs if r["run_id"] not in done]
    foreign = done - {r["run_id"] for r in plan.runs}
    print(f"sweep {plan.name}: {len(plan.runs)} runs ({len(plan.runs) - len(todo)} already done, {len(todo)} to run), "
          f"{len(plan.pretrain_jobs)} model sizes; output {plan.out}"
          + (f"; note: {len(foreign)} row files in the directory belong to no run of this sweep" if foreign else ""),
          file=stream, flush=True)
    if dry_run or not todo:
        return plan.out
    need = {r["ckpt_dir"] for r in todo}
    pre = [j for j in plan.pretrain_jobs if j["ckpt_dir"] in need and not (Path(j["ckpt_dir"]) / "meta.json").exists()]
    n_jobs = int(jobs or plan.local["jobs"])
    threads = threads_per_job or plan.local["threads_per_job"] or max(1, (os.cpu_count() or 1) // n_jobs)
    for phase, js in (("pretrain", pre), ("runs", todo)):
        if not js:
            continue
        prog = Progress(len(js), stream, phase)
        if executor == "local":
            _run_local(js, min(n_jobs, len(js)), threads, prog)
        else:
            per = 1 if phase == "pretrain" else int(plan.slurm["runs_per_job"])
            _run_submitit(plan, js, "local" if executor == "submitit-local" else "slurm", prog, per)
        if prog.failed:
            raise RuntimeError(f"{prog.failed} of {len(js)} {phase} jobs failed (see messages above); "
                               f"re-run the sweep to retry them")
    return plan.out
