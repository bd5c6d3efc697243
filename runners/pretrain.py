"""Pretraining on a task's monolingual stream, with orbax checkpoints along the way.

The paper's pretraining-data axis is intermediate checkpoints of one run: checkpoint at step s has
seen s * batch_size * seq_len tokens (packed stream, no padding), which is its `pretrain_tokens`.
Checkpoints hold the base parameters only (a pure dict), one orbax step directory per checkpoint,
plus `meta.json` (model config, tokens per step, loss curve) written last, atomically: a directory
with meta.json is complete.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from .model import ModelConfig, Transformer, param_count
from .train import batches, compute_dtype, optimizer, put_batch, split_model, train_step


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    steps: int = 1000
    batch_size: int = 32
    seq_len: int = 64
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.01
    checkpoints: tuple[int, ...] = ()  # steps to keep; the last step is always kept
    seed: int = 0
    dtype: str = "auto"

    def ckpt_steps(self) -> list[int]:
        return sorted({int(s) for s in self.checkpoints if 0 < s <= self.steps} | {self.steps})


def _manager(path: Path):
    import orbax.checkpoint as ocp
    return ocp.CheckpointManager(path.absolute(), options=ocp.CheckpointManagerOptions(
        max_to_keep=None, create=True, enable_async_checkpointing=False))


def is_complete(ckpt_dir: Path) -> bool:
    return (Path(ckpt_dir) / "meta.json").exists()


def pretrain(task, cfg: ModelConfig, pcfg: PretrainConfig, ckpt_dir, log=None) -> dict:
    """Pretrain and checkpoint; returns meta. Skips (returns existing meta) if already complete."""
    import orbax.checkpoint as ocp
    ckpt_dir = Path(ckpt_dir)
    if is_complete(ckpt_dir):
        return json.loads((ckpt_dir / "meta.json").read_text())
    if ckpt_dir.exists():  # an interrupted earlier attempt: start over (deterministic anyway)
        import shutil
        shutil.rmtree(ckpt_dir)
    t0 = time.time()
    model = Transformer(cfg, rngs=nnx.Rngs(pcfg.seed), dtype=compute_dtype(pcfg.dtype))
    graphdef, params, rest = split_model(model, nnx.Param)
    tx = optimizer(pcfg.lr, pcfg.weight_decay, pcfg.warmup)
    opt_state = tx.init(params)
    T = pcfg.seq_len + 1
    stream = task.pretrain_stream(pcfg.steps * pcfg.batch_size * pcfg.seq_len + 1, seed=pcfg.seed)
    n_windows = (len(stream) - 1) // pcfg.seq_len
    windows = np.lib.stride_tricks.sliding_window_view(stream, T)[::pcfg.seq_len][:n_windows]
    mask = np.ones((pcfg.batch_size, T), np.float32)
    keep = pcfg.ckpt_steps()
    mngr = _manager(ckpt_dir)
    curve = []
    it = batches(n_windows, pcfg.batch_size, pcfg.seed)
    for step in range(1, pcfg.steps + 1):
        toks = windows[next(it)]
        params, opt_state, loss = train_step(graphdef, tx, params, rest, opt_state, *put_batch(toks, mask))
        if step % max(1, pcfg.steps // 20) == 0 or step in keep:
            curve.append((step, float(loss)))
            if log:
                log(f"pretrain {cfg.name or cfg.d_model} step {step}/{pcfg.steps} loss {float(loss):.3f}")
        if step in keep:
            mngr.save(step, args=ocp.args.StandardSave(nnx.to_pure_dict(params)))
    mngr.wait_until_finished()
    mngr.close()
    tokens_per_step = pcfg.batch_size * pcfg.seq_len
    meta = dict(model=cfg.to_dict(), model_params=param_count(cfg), pretrain=dataclasses.asdict(pcfg),
                task=task.name, tokens_per_step=tokens_per_step,
                checkpoints={str(s): s * tokens_per_step for s in keep}, curve=curve,
                wall_seconds=time.time() - t0)
    tmp = ckpt_dir / ".meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, ckpt_dir / "meta.json")
    return meta


def load_base(cfg: ModelConfig, ckpt_dir, step: int) -> dict:
    """Base parameters (pure dict of arrays) of checkpoint `step`."""
    import orbax.checkpoint as ocp
    abstract = nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))), nnx.Param))
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), abstract)
    mngr = _manager(Path(ckpt_dir))
    try:
        if step not in mngr.all_steps():
            raise ValueError(f"{ckpt_dir} has no checkpoint at step {step} (has {sorted(mngr.all_steps())})")
        return mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    finally:
        mngr.close()
