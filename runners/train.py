"""Shared functional training pieces: loss, jitted train/eval steps, batching, devices.

Steps are jitted once per (graph structure, optimizer) and reused across runs in one process (the
optimizer objects are cached by their hyperparameters), so a worker that runs many finetuning jobs
of one model size compiles once.

Devices: the batch is sharded over a 1-D `data` mesh of all visible devices and parameters are
replicated (plain data parallelism through jax.sharding; XLA inserts the gradient all-reduce); every
model, for training and for evaluation, is placed the same way (`place_model`). On a GPU the compute
dtype defaults to bfloat16; parameters, optimizer state and checkpoints are float32, tokens int32,
and the steps trace with `jax_enable_x64` off whatever the process setting (the fitter's float64).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .device import float32_scope, jnp_dtype, resolve_dtype


def compute_dtype(name: str = "auto"):
    """The jax.numpy compute dtype for a name: "auto" is bfloat16 on GPU/TPU, float32 on CPU
    (runners.device.resolve_dtype); unknown names raise DeviceError."""
    return jnp_dtype(resolve_dtype(jax.default_backend(), name))


@functools.cache
def mesh() -> jax.sharding.Mesh:
    """A 1-D `data` mesh over all visible devices (one device too: every array is then committed to
    a NamedSharding, so the first and later steps see the same input shardings and compile once)."""
    return jax.sharding.Mesh(np.array(jax.devices()), ("data",))


def replicated():
    """Sharding of parameters and optimizer state: a full copy on every device."""
    return jax.sharding.NamedSharding(mesh(), jax.sharding.PartitionSpec())


def put_batch(*arrays):
    """Host arrays -> devices, split along the batch axis over all devices. Integer arrays become
    int32 (tokens), floating arrays float32 (masks), whatever the process's x64 setting."""
    n = mesh().devices.size
    if arrays[0].shape[0] % n:
        raise ValueError(f"batch size {arrays[0].shape[0]} is not divisible by {n} devices")
    sh = jax.sharding.NamedSharding(mesh(), jax.sharding.PartitionSpec("data"))
    out = []
    for a in arrays:
        a = np.asarray(a)
        a = a.astype(np.int32 if np.issubdtype(a.dtype, np.integer) else np.float32, copy=False)
        out.append(jax.device_put(a, sh))
    return tuple(out)


def replicate(tree):
    """Place every array of `tree` on all current devices (a no-op for arrays already placed so)."""
    return jax.device_put(tree, replicated())


def place_model(model: nnx.Module) -> nnx.Module:
    """Replicate a model's state over the current devices, in place (train and eval models alike)."""
    nnx.update(model, replicate(nnx.state(model)))
    return model


def nll_sum(logits, tokens, mask):
    """Sum of NLL (nats) of tokens[:, j+1] given positions <= j where mask[:, j] = 1, and the count."""
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
    tgt = tokens[:, 1:]
    tok_lp = jnp.take_along_axis(logp, tgt[..., None], axis=-1)[..., 0]
    m = mask[:, :-1]
    return -(tok_lp * m).sum(), m.sum()


@functools.cache
def optimizer(lr: float, weight_decay: float = 0.0, warmup: int = 0, clip: float = 1.0):
    sched = lr
    if warmup:
        sched = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup])
    return optax.chain(optax.clip_by_global_norm(clip), optax.adamw(sched, b2=0.98, weight_decay=weight_decay))


def init_opt_state(tx, trainable):
    """Optimizer state (float32 like the parameters), replicated like them."""
    with float32_scope():
        return replicate(tx.init(trainable))


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=(2, 4))
def _train_step(graphdef, tx, trainable, frozen, opt_state, tokens, mask):
    def lossf(tr):
        model = nnx.merge(graphdef, tr, frozen)
        s, n = nll_sum(model(tokens), tokens, mask)
        return s / jnp.maximum(n, 1.0)

    loss, grads = jax.value_and_grad(lossf)(trainable)
    updates, opt_state = tx.update(grads, opt_state, trainable)
    return optax.apply_updates(trainable, updates), opt_state, loss


def train_step(graphdef, tx, trainable, frozen, opt_state, tokens, mask):
    """One optimizer step (jitted once per graph, optimizer and input shapes/shardings); donates
    `trainable` and `opt_state`. Traced with x64 off: float32 state whatever the process setting."""
    with float32_scope():
        return _train_step(graphdef, tx, trainable, frozen, opt_state, tokens, mask)


@functools.partial(jax.jit, static_argnums=(0,))
def _eval_step(graphdef, state, tokens, mask):
    model = nnx.merge(graphdef, state)
    return nll_sum(model(tokens), tokens, mask)


def eval_step(graphdef, state, tokens, mask):
    """(sum of NLL, count) of one batch; x64 off like train_step."""
    with float32_scope():
        return _eval_step(graphdef, state, tokens, mask)


def split_model(model, trainable_filter):
    """(graphdef, trainable, frozen). The trainable arrays are copies: train_step donates them, and the
    caller's arrays (e.g. loaded base weights shared with the model) must stay valid."""
    graphdef, trainable, frozen = nnx.split(model, trainable_filter, ...)
    return graphdef, replicate(jax.tree.map(jnp.copy, trainable)), replicate(frozen)


def batches(n: int, batch_size: int, seed: int):
    """Endless stream of index batches: a fresh permutation per epoch; fixed batch shape even when
    n < batch_size (epochs are concatenated)."""
    rng = np.random.default_rng(seed)
    buf = np.zeros((0,), np.int64)
    while True:
        while len(buf) < batch_size:
            buf = np.concatenate([buf, rng.permutation(n)])
        yield buf[:batch_size]
        buf = buf[batch_size:]
