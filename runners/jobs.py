"""The two kinds of job a sweep runs, executed inside a worker (imports jax; the sweep driver,
runners/sweep/run.py, does not).

A pretraining job trains one model size and writes its orbax checkpoints; a finetuning job loads
one checkpoint, finetunes with one method / PET size / data subset / seed, evaluates, and writes
exactly one runs-table row, atomically, as `<out>/<run_id>.parquet`.
"""
from __future__ import annotations

import functools
import json
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

from . import rows
from .config import FinetuneConfig, ModelConfig, PretrainConfig, adapter_param_count, param_count
from .device import DeviceInfo
from .evaluate import mean_nll, translation_scores
from .finetune import build_model, finetune
from .pretrain import load_base, pretrain
from .tasks import get_task

__all__ = ["run_finetune", "run_pretrain"]

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _task(spec_json: str):
    return get_task(json.loads(spec_json))


@functools.lru_cache(maxsize=16)
def _split(spec_json: str, split: str, n: int):
    return _task(spec_json).split(split, n)


@functools.lru_cache(maxsize=4)
def _base(cfg: ModelConfig, ckpt: str, step: int):
    return load_base(cfg, ckpt, step)


def _model_cfg(d: dict) -> ModelConfig:
    return ModelConfig(**d)


def run_pretrain(job: dict, log: Callable[[str], None] | None = None) -> dict:
    """Run a pretraining job of the plan (runners/sweep/plan.py), once per checkpoint directory.

    Parameters
    ----------
    job
        {"task", "model", "pretrain", "ckpt_dir", ...}: the task spec, the model and pretraining
        configurations as dicts, and the checkpoint directory.
    log
        Progress messages go here.

    Returns
    -------
    dict
        {"kind": "pretrain", "ckpt_dir", "wall_seconds"}.
    """
    task = _task(json.dumps(job["task"], sort_keys=True))
    cfg = _model_cfg(job["model"])
    pcfg = PretrainConfig(**{**job["pretrain"], "checkpoints": tuple(job["pretrain"]["checkpoints"])})
    # one pretraining per checkpoint directory, even with several sweeps sharing it
    import fcntl
    lock = Path(str(job["ckpt_dir"]) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        meta = pretrain(task, cfg, pcfg, job["ckpt_dir"], log=log)
    return {"kind": "pretrain", "ckpt_dir": job["ckpt_dir"], "wall_seconds": meta["wall_seconds"]}


def run_finetune(job: dict, device: DeviceInfo | None = None) -> dict:
    """Run one configuration of the plan and write its row.

    Parameters
    ----------
    job
        {"run_id", "config", "ckpt_dir", "out", ...} (runners/sweep/plan.py).
    device
        What this process computes on; recorded in the row (backend, kind, count, dtype).

    Returns
    -------
    dict
        The row, as written to `<out>/<run_id>.parquet`.
    """
    t0 = time.time()
    c = job["config"]
    tspec = json.dumps(c["task"], sort_keys=True)
    task = _task(tspec)
    cfg = _model_cfg(c["model"])
    eval_batch = c["eval"].get("batch_size", 64)
    fcfg = FinetuneConfig(**c["finetune"], eval_batch_size=eval_batch)
    method, pet, seed, n = c["method"], c["pet_size"], c["seed"], c["finetune_examples"]
    base = _base(cfg, job["ckpt_dir"], c["pretrain_step"])

    pool = _split(tspec, "train", c["train_pool"])
    if n > len(pool):
        raise ValueError(f"finetune_examples={n} exceeds the training pool ({len(pool)})")
    import numpy as np
    idx = np.sort(np.random.default_rng([7, seed]).permutation(len(pool))[:n])  # random subset per seed
    train = pool.subset(idx)
    dev = _split(tspec, "dev", fcfg.dev_examples)
    test = _split(tspec, "test", c["eval"]["test_examples"])

    model = build_model(cfg, base, method, pet, seed, fcfg.dtype)
    base_loss = mean_nll(model, test, eval_batch)
    log.info("base model test loss %.4f; finetuning %s on %d examples", base_loss, method, n)
    model, info = finetune(model, method, train, dev, fcfg, seed)
    loss = mean_nll(model, test, eval_batch)
    log.info("test loss %.4f (dev %.4f at step %d)", loss, info["dev_loss"], info["best_step"])
    row = dict(
        task=task.name, method=method, model_params=param_count(cfg),
        pretrain_tokens=c["pretrain_step"] * c["pretrain"]["batch_size"] * c["pretrain"]["seq_len"],
        finetune_examples=n, pet_params=(pet if method != "fmt" else None), seed=seed,
        loss=loss, run_id=job["run_id"],
        model=cfg.name, n_layers=cfg.n_layers, d_model=cfg.d_model,
        pretrain_steps=c["pretrain_step"], trainable_params=(
            param_count(cfg) if method == "fmt" else adapter_param_count(cfg, method, pet)),
        base_loss=base_loss, dev_loss=info["dev_loss"], best_step=info["best_step"], lr=info["lr"],
    )
    nd = c["eval"]["decode_examples"]
    if nd:
        row.update(translation_scores(model, test.subset(range(min(nd, len(test)))), task.detok))
    zs = c.get("zero_shot_task")
    if zs:
        zspec = json.dumps(zs, sort_keys=True)
        row["zero_shot_task"] = _task(zspec).name
        row["zero_shot_loss"] = mean_nll(model, _split(zspec, "test", c["eval"]["test_examples"]), eval_batch)
    row["wall_seconds"] = time.time() - t0
    row["host"] = socket.gethostname()
    if device is not None:  # what computed this row, with the dtype the plan resolved
        row.update(rows.device_columns({**device.to_dict(), "dtype": c["finetune"]["dtype"]}))
    row["config"] = json.dumps(c, sort_keys=True)
    rows.write_row(Path(job["out"]), row)
    return row
