"""A sweep's plan: the validated TOML expanded into pretraining jobs and finetuning runs, for the
devices that will run them.

The devices are resolved before anything runs: on this machine by probing jax in a subprocess
(`python -m runners.device`; this process never initialises jax), on SLURM from the [slurm] table.
`dtype = "auto"` becomes the dtype that will actually compute (bfloat16 on a GPU, float32 on a
CPU), and that resolved name is what a run's `run_id` and its checkpoint key hash, so runs on
different hardware never share ids or checkpoints. Rules that need the device count are checked
here: every batch (pretraining, finetuning, evaluation) must divide by the devices a run uses.

Device rule: a run uses ONE GPU (a worker process sees only its own GPU through
CUDA_VISIBLE_DEVICES) unless [local] gpus_per_job / [slurm] gpus_per_node asks for more; the models
here are far too small for data parallelism over several GPUs to pay. On a CPU every worker sees
the host's (possibly simulated) devices. No jax import.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import tomllib
from pathlib import Path

from ..config import METHODS, ModelConfig, ladder
from ..device import DeviceError, probe_subprocess
from ..device import resolve_dtype as device_resolve_dtype
from ..tasks import CORPUS_FORMATS, companion, get_task
from .executor import EXECUTORS
from .schema import Ladder, SweepError, SweepFile, validate

RUNNER_VERSION = 2  # 2: resolved dtype in run ids and checkpoint keys, evaluation batch size
GPU_BACKENDS = ("gpu", "cuda", "rocm")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Devices:
    """What each run of the plan computes on."""
    backend: str                  # "cpu" or "gpu"
    device_kind: str | None       # e.g. "NVIDIA H100 80GB HBM3"; None when not probed (SLURM)
    per_run: int                  # devices one run uses (the batch is sharded over them)
    visible: int                  # devices visible to this machine (local) / per SLURM job
    gpu_ids: tuple[str, ...] = ()  # local GPUs to hand out to workers, gpus_per_job each
    env: tuple[tuple[str, str], ...] = ()  # environment every worker gets (e.g. JAX_PLATFORMS)

    def as_dict(self) -> dict:
        """What a job records: {"backend", "device_kind", "device_count"} (per run)."""
        return {"backend": self.backend, "device_kind": self.device_kind, "device_count": self.per_run}


@dataclasses.dataclass
class Plan:
    """A sweep expanded: its pretraining jobs and finetuning runs, where they write, the executor
    tables, the devices, and the validated file."""
    name: str
    out: Path
    ckpt_dir: Path
    pretrain_jobs: list[dict]
    runs: list[dict]  # finetuning jobs: {"kind", "run_id", "config", "ckpt_dir", "out", "device"}
    local: dict
    slurm: dict
    devices: Devices
    config: SweepFile


def probe(env: dict | None = None) -> dict:
    """What jax computes on, asked in a fresh process (`python -m runners.device`; cached).

    Parameters
    ----------
    env
        The child's environment (default: this process's).

    Returns
    -------
    dict
        {"backend", "device_kind", "device_count"}; this process never starts jax. Raises
        SweepError if jax cannot start.
    """
    env = dict(os.environ if env is None else env)
    return _probe_cached(tuple(sorted(env.items())))


@functools.lru_cache(maxsize=8)
def _probe_cached(env_items: tuple) -> dict:
    env = dict(env_items)
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # the probe must not take GPU memory
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("JAX_ENABLE_X64", None)
    try:
        info = probe_subprocess(env=env)
    except (DeviceError, OSError, ValueError) as e:
        raise SweepError(f"cannot probe the devices (python -m runners.device): {e}") from None
    return {"backend": info.backend, "device_kind": info.device_kind, "device_count": info.device_count}


def _host_device_count(env) -> int:
    m = re.search(r"--xla_force_host_platform_device_count=(\d+)", env.get("XLA_FLAGS", ""))
    return int(m.group(1)) if m else 1


def resolve_devices(cfg: SweepFile, executor: str, device: str | None = None) -> Devices:
    """The devices each run of this sweep will use (see the module docstring for the rule).

    Parameters
    ----------
    cfg
        The validated sweep file.
    executor
        A name of EXECUTORS; where its runs compute decides how the devices are found.
    device
        "auto", "cpu" or "gpu" (default: the file's sweep.device).

    Returns
    -------
    Devices
        The devices; raises SweepError when the request cannot be met.
    """
    want = device or cfg.sweep.device
    where = EXECUTORS[executor].devices
    if where == "slurm":  # the compute nodes cannot be probed from here: the [slurm] table says
        g = cfg.slurm.gpus_per_node
        if want == "gpu" and g == 0:
            raise SweepError("sweep.device: 'gpu' requested but slurm.gpus_per_node = 0")
        if g and want != "cpu":
            return Devices("gpu", None, g, g)
        return Devices("cpu", None, _host_device_count(os.environ), _host_device_count(os.environ),
                       env=(("JAX_PLATFORMS", "cpu"),) if g else ())
    if want == "cpu" or where == "cpu":  # e.g. submitit's local executor hands out no GPUs
        info = probe({**os.environ, "JAX_PLATFORMS": "cpu"})
        return Devices("cpu", info["device_kind"], info["device_count"], info["device_count"],
                       env=(("JAX_PLATFORMS", "cpu"),))
    info = probe()
    backend = "gpu" if info["backend"] in GPU_BACKENDS else info["backend"]
    if backend == "cpu":
        if want == "gpu":
            raise SweepError(f"sweep.device: a GPU was requested but jax computes on the CPU here "
                             f"({info['device_kind']}): install jax with CUDA support (pip install "
                             f"'lawfit[runners,cuda]'), check nvidia-smi and CUDA_VISIBLE_DEVICES")
        return Devices("cpu", info["device_kind"], info["device_count"], info["device_count"])
    if backend != "gpu":
        raise SweepError(f"sweep.device: jax's backend here is {info['backend']!r}; the runners support cpu and gpu")
    k, n = cfg.local.gpus_per_job, info["device_count"]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = tuple(x.strip() for x in visible.split(",") if x.strip()) if visible else tuple(str(i) for i in range(n))
    ids = ids[:n]
    if k > n:
        raise SweepError(f"local.gpus_per_job: {k} GPUs per job but only {n} visible")
    return Devices("gpu", info["device_kind"], k, n, gpu_ids=ids)


def resolve_dtype(name: str, backend: str) -> str:
    """'auto' -> the dtype that computes on `backend` (bfloat16 on a GPU, float32 on a CPU).

    Parameters
    ----------
    name
        "auto", "float32" or "bfloat16".
    backend
        The plan's backend.

    Returns
    -------
    str
        The resolved dtype name (runners/device.py `resolve_dtype`).
    """
    return device_resolve_dtype(backend, name)


def _task_spec(spec, base_dir: Path, key: str):
    if isinstance(spec, str):
        return {"name": spec}
    spec = dict(spec)
    for k in CORPUS_FORMATS:  # a corpus file: relative to the sweep file's directory
        if k in spec:
            p = Path(spec[k])
            spec[k] = str(p if p.is_absolute() else (base_dir / p).resolve())
            if not Path(spec[k]).exists():
                raise SweepError(f"{key}.{k}: file not found: {spec[k]}")
    return spec


def _vocab_size(spec: dict, key: str) -> int:
    # the synthetic vocabulary is tiny and fixed by its seed; corpora train their tokenizer here
    try:
        return get_task(spec).vocab_size
    except (ValueError, TypeError, OSError) as e:
        raise SweepError(f"{key}: {e}") from None


def _check_batches(cfg: SweepFile, dev: Devices, path):
    n = dev.per_run
    for key, b in (("pretrain.batch_size", cfg.pretrain.batch_size),
                   ("finetune.batch_size", cfg.finetune.batch_size),
                   ("eval.batch_size", cfg.eval.batch_size)):
        if b % n:
            raise SweepError(f"{path}: {key}: {b} is not divisible by the {n} {dev.backend.upper()} devices each "
                             f"run uses (make it a multiple of {n})")


def load_plan(sweep_path: str | Path, out: str | Path | None = None, *, executor: str = "local",
              device: str | None = None, jobs: int | None = None) -> Plan:
    """Parse and validate a sweep TOML completely, resolve its devices and dtypes, and expand it
    into pretraining jobs and finetuning runs.

    Parameters
    ----------
    sweep_path
        The sweep file.
    out
        The dataset directory (default: [sweep] out, relative to the file).
    executor
        A name of EXECUTORS.
    device
        "auto", "cpu" or "gpu" (default: the file's sweep.device).
    jobs
        The local executor's workers (default: [local] jobs).

    Returns
    -------
    Plan
        The plan; raises SweepError (one line naming the key) on bad input.
    """
    if executor not in EXECUTORS:
        raise SweepError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    path = Path(sweep_path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"sweep file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SweepError(f"cannot read {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{path}: invalid TOML: {e}") from None
    cfg = validate(doc, path)
    if jobs is not None:
        if jobs < 1:
            raise SweepError("--jobs must be >= 1")
        cfg = cfg.model_copy(update={"local": cfg.local.model_copy(update={"jobs": jobs})})
    base = path.resolve().parent
    sw = cfg.sweep
    name = sw.name or path.stem
    out = Path(out) if out is not None else (base / (sw.out or name))
    ckpt_dir = Path(sw.checkpoint_dir) if sw.checkpoint_dir else out / ".checkpoints"
    if not ckpt_dir.is_absolute():
        ckpt_dir = base / ckpt_dir
    task = _task_spec(sw.task, base, "sweep.task")
    if sw.zero_shot_task is None:
        zs = companion(task.get("name"))
    else:
        zs = sw.zero_shot_task or None
    zs = _task_spec(zs, base, "sweep.zero_shot_task") if zs else None
    sizes = sw.finetune_examples
    pool = sw.train_pool or max(sizes)

    V = _vocab_size(task, "sweep.task")
    if zs and _vocab_size(zs, "sweep.zero_shot_task") != V:
        raise SweepError(f"{path}: sweep.zero_shot_task: must share the task's vocabulary")
    try:
        if cfg.models.configs is not None:
            models = []
            for m in cfg.models.configs:
                c = ModelConfig(vocab_size=V, **m.model_dump())
                models.append(dataclasses.replace(c, name=c.name or f"L{c.n_layers}-d{c.d_model}"))
        else:
            models = ladder(V, **(cfg.models.ladder or Ladder()).model_dump())
    except (TypeError, ValueError) as e:
        raise SweepError(f"{path}: models: {e}") from None
    if len({m.name for m in models}) != len(models):
        raise SweepError(f"{path}: models: two models share the name {sorted(m.name for m in models)}")

    dev = resolve_devices(cfg, executor, device)
    _check_batches(cfg, dev, path)
    if EXECUTORS[executor].devices == "here" and dev.backend == "gpu" and cfg.local.jobs * dev.per_run > dev.visible:
        raise SweepError(f"local.jobs: {cfg.local.jobs} jobs x {dev.per_run} GPUs each exceeds the {dev.visible} "
                         f"visible GPUs (one jax process per GPU)")

    pre = cfg.pretrain.model_dump()
    pre["dtype"] = resolve_dtype(pre["dtype"], dev.backend)
    pre["checkpoints"] = pre["checkpoints"] or [pre["steps"]]
    ck = pre["checkpoints"]
    lrs = cfg.finetune.lrs()
    fin = cfg.finetune.model_dump(exclude={"lr"})
    fin["dtype"] = resolve_dtype(fin["dtype"], dev.backend)
    ev = cfg.eval.model_dump()
    device_job = dev.as_dict()

    pretrain_jobs, runs = [], []
    for mcfg in models:
        mdict = mcfg.to_dict()
        pkey = {"task": task, "model": mdict, "pretrain": pre, "v": RUNNER_VERSION}
        cdir = ckpt_dir / f"{mcfg.name}-{_hash(pkey)[:10]}"
        pretrain_jobs.append({"kind": "pretrain", "task": task, "model": mdict, "pretrain": pre,
                              "ckpt_dir": str(cdir), "device": device_job})
        for step in ck:
            for n in sizes:
                for seed in sw.seeds:
                    for method in sw.methods:
                        pets = {"fmt": [None], "prompt": sw.prompt_lengths, "lora": sw.lora_ranks}[method]
                        for pet in pets:
                            config = {"runner_version": RUNNER_VERSION, "task": task, "zero_shot_task": zs,
                                      "model": mdict, "pretrain": pre, "pretrain_step": step,
                                      "method": method, "pet_size": pet, "finetune_examples": n,
                                      "train_pool": pool, "seed": seed,
                                      "finetune": {**fin, "lr": lrs[method]}, "eval": ev}
                            runs.append({"kind": "finetune", "run_id": _hash(config), "config": config,
                                         "ckpt_dir": str(cdir), "out": str(out), "device": device_job})
    ids = [r["run_id"] for r in runs]
    if len(set(ids)) != len(ids):
        raise SweepError(f"{path}: the grid lists one configuration twice")
    return Plan(name, out, ckpt_dir, pretrain_jobs, runs, cfg.local.model_dump(), cfg.slurm.model_dump(), dev, cfg)


__all__ = ["EXECUTORS", "METHODS", "RUNNER_VERSION", "Devices", "Plan", "SweepError", "load_plan", "probe",
           "resolve_devices", "resolve_dtype"]
