"""Pretraining on a task's monolingual stream, with orbax checkpoints along the way.

The paper's pretraining-data axis is intermediate checkpoints of one run: checkpoint at step s has
seen s * batch_size * seq_len tokens (packed stream, no padding), which is its `pretrain_tokens`.
Checkpoints hold the base parameters only (a pure dict, float32), one orbax step directory per
checkpoint, plus `meta.json` (model config, tokens per step, loss curve) written last, atomically: a
directory with meta.json is complete. While it runs, `resume/` holds the latest full training state
(parameters and optimizer state), so an interrupted pretraining continues where it stopped; it is
removed once meta.json is written. Checkpoints restore onto the current devices whatever the device
count that wrote them.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from lawfit.io.files import atomic_write

from .config import ModelConfig, PretrainConfig, param_count
from .device import float32_scope
from .model import Transformer
from .tasks import Task
from .train import (
    batches,
    compute_dtype,
    init_opt_state,
    optimizer,
    place_model,
    put_batch,
    replicated,
    split_model,
    train_step,
)

__all__ = ["PretrainConfig", "RESUME_DIR", "is_complete", "load_base", "pretrain"]


def _manager(path: Path, max_to_keep=None):
    import orbax.checkpoint as ocp
    return ocp.CheckpointManager(path.absolute(), options=ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False))


def is_complete(ckpt_dir: Path) -> bool:
    """Whether the pretraining in `ckpt_dir` finished (its meta.json exists)."""
    return (Path(ckpt_dir) / "meta.json").exists()


RESUME_DIR = "resume"  # inside the checkpoint directory: the latest full training state


def _abstract(tree):
    """Shapes, dtypes and the target sharding (replicated over the current devices) of `tree`, for
    orbax: a checkpoint written on any number of devices restores onto this process's devices."""
    sh = replicated()
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh), tree)


def _save_resume(mngr, step: int, params, opt_state, curve):
    import orbax.checkpoint as ocp
    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave({"params": params, "opt_state": opt_state}),
        meta=ocp.args.JsonSave({"step": step, "curve": curve})))
    mngr.wait_until_finished()


def _restore_resume(mngr, step: int, params, opt_state):
    import orbax.checkpoint as ocp
    got = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_abstract({"params": params, "opt_state": opt_state})),
        meta=ocp.args.JsonRestore()))
    st = got["state"]
    return st["params"], st["opt_state"], [tuple(x) for x in got["meta"]["curve"]]


def pretrain(task: Task, cfg: ModelConfig, pcfg: PretrainConfig, ckpt_dir: str | Path,
             log: Callable[[str], None] | None = None, resume_every_s: float = 600.0) -> dict:
    """Pretrain and checkpoint; skips (returns the existing meta) if already complete.

    An interrupted pretraining (killed, timed out, preempted) resumes from its latest training
    state (parameters, optimizer state, data position; saved at every kept checkpoint and at most
    `resume_every_s` seconds apart) and ends with the same parameters as an uninterrupted run.

    Parameters
    ----------
    task
        Its `pretrain_stream` is the training text.
    cfg, pcfg
        The model and the pretraining hyperparameters.
    ckpt_dir
        The checkpoint directory (one orbax step directory per kept step, meta.json last).
    log
        Progress messages go here.
    resume_every_s
        Seconds between saves of the full training state.

    Returns
    -------
    dict
        The meta (model, parameter count, tokens per step, kept checkpoints and their tokens, loss
        curve, wall time, step resumed from), as in meta.json.
    """
    ckpt_dir = Path(ckpt_dir)
    if is_complete(ckpt_dir):
        return json.loads((ckpt_dir / "meta.json").read_text())
    with float32_scope():
        return _pretrain(task, cfg, pcfg, ckpt_dir, log, resume_every_s)


def _pretrain(task, cfg, pcfg, ckpt_dir, log, resume_every_s):
    import orbax.checkpoint as ocp
    t0 = time.time()
    model = place_model(Transformer(cfg, rngs=nnx.Rngs(pcfg.seed), dtype=compute_dtype(pcfg.dtype)))
    graphdef, params, rest = split_model(model, nnx.Param)
    tx = optimizer(pcfg.lr, pcfg.weight_decay, pcfg.warmup)
    opt_state = init_opt_state(tx, params)
    T = pcfg.seq_len + 1
    stream = task.pretrain_stream(pcfg.steps * pcfg.batch_size * pcfg.seq_len + 1, seed=pcfg.seed)
    n_windows = (len(stream) - 1) // pcfg.seq_len
    windows = np.lib.stride_tricks.sliding_window_view(stream, T)[::pcfg.seq_len][:n_windows]
    mask = np.ones((pcfg.batch_size, T), np.float32)
    keep = pcfg.ckpt_steps()
    mngr = _manager(ckpt_dir)
    resume = _manager(ckpt_dir / RESUME_DIR, max_to_keep=1)
    curve, start = [], 0
    if resume.latest_step() is not None:
        start = int(resume.latest_step())
        params, opt_state, curve = _restore_resume(resume, start, params, opt_state)
        for s in mngr.all_steps():  # kept checkpoints written after the resume point: redone
            if s > start:
                mngr.delete(s)
        if log:
            log(f"pretrain {cfg.name or cfg.d_model}: resuming from step {start}/{pcfg.steps}")
    it = batches(n_windows, pcfg.batch_size, pcfg.seed)
    for _ in range(start):  # the data position: the same batches as an uninterrupted run
        next(it)
    last_save = time.time()
    for step in range(start + 1, pcfg.steps + 1):
        toks = windows[next(it)]
        params, opt_state, loss = train_step(graphdef, tx, params, rest, opt_state, *put_batch(toks, mask))
        if step % max(1, pcfg.steps // 20) == 0 or step in keep:
            curve.append((step, float(loss)))
            if log:
                log(f"pretrain {cfg.name or cfg.d_model} step {step}/{pcfg.steps} loss {float(loss):.3f}")
        if step in keep:
            mngr.save(step, args=ocp.args.StandardSave(nnx.to_pure_dict(params)))
            mngr.wait_until_finished()
        if step < pcfg.steps and (step in keep or time.time() - last_save >= resume_every_s):
            _save_resume(resume, step, params, opt_state, curve)
            last_save = time.time()
    mngr.wait_until_finished()
    mngr.close()
    resume.close()
    tokens_per_step = pcfg.batch_size * pcfg.seq_len
    meta = dict(model=cfg.to_dict(), model_params=param_count(cfg), pretrain=dataclasses.asdict(pcfg),
                task=task.name, tokens_per_step=tokens_per_step,
                checkpoints={str(s): s * tokens_per_step for s in keep}, curve=curve,
                wall_seconds=time.time() - t0, resumed_from_step=start)
    atomic_write(ckpt_dir / "meta.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
    shutil.rmtree(ckpt_dir / RESUME_DIR, ignore_errors=True)
    return meta


def load_base(cfg: ModelConfig, ckpt_dir: str | Path, step: int) -> dict:
    """The base parameters of checkpoint `step`.

    Parameters
    ----------
    cfg
        The model the checkpoint holds.
    ckpt_dir
        The pretraining's checkpoint directory.
    step
        A kept step (ValueError naming the kept ones otherwise).

    Returns
    -------
    dict
        A pure dict of float32 arrays, replicated over this process's devices whatever the device
        count that wrote it.
    """
    import orbax.checkpoint as ocp
    with float32_scope():
        shapes = nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))), nnx.Param))
        abstract = _abstract(shapes)
        mngr = _manager(Path(ckpt_dir))
        try:
            if step not in mngr.all_steps():
                raise ValueError(f"{ckpt_dir} has no checkpoint at step {step} (has {sorted(mngr.all_steps())})")
            return mngr.restore(step, args=ocp.args.StandardRestore(abstract))
        finally:
            mngr.close()
