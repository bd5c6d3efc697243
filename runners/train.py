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
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .device import float32_scope, jnp_dtype, resolve_dtype

__all__ = ["batches", "compute_dtype", "eval_step", "init_opt_state", "mesh", "nll_sum", "optimizer", "place_model",
           "put_batch", "replicate", "replicated", "split_model", "train_step"]


def compute_dtype(name: str = "auto") -> Any:
    """The jax.numpy compute dtype for a name: "auto" is bfloat16 on GPU/TPU, float32 on CPU
    (runners.device.resolve_dtype); unknown names raise DeviceError."""
    return jnp_dtype(resolve_dtype(jax.default_backend(), name))


@functools.cache
def mesh() -> jax.sharding.Mesh:
    """A 1-D `data` mesh over all visible devices (one device too: every array is then committed to
    a NamedSharding, so the first and later steps see the same input shardings and compile once)."""
    return jax.sharding.Mesh(np.array(jax.devices()), ("data",))


def replicated() -> jax.sharding.NamedSharding:
    """Sharding of parameters and optimizer state: a full copy on every device."""
    return jax.sharding.NamedSharding(mesh(), jax.sharding.PartitionSpec())


def put_batch(*arrays: np.ndarray) -> tuple[jax.Array, ...]:
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


def replicate(tree: Any) -> Any:
    """Place every array of `tree` on all current devices (a no-op for arrays already placed so)."""
    return jax.device_put(tree, replicated())


def place_model(model: nnx.Module) -> nnx.Module:
    """Replicate a model's state over the current devices, in place (train and eval models alike)."""
    nnx.update(model, replicate(nnx.state(model)))
    return model


def nll_sum(logits: jax.Array, tokens: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sum of NLL (nats) of tokens[:, j+1] given positions <= j where mask[:, j] = 1, and the count.

    Parameters
    ----------
    logits
        (B, T, V) model outputs.
    tokens
        (B, T) token ids.
    mask
        (B, T) loss mask: position j counts when mask[:, j] = 1 (it predicts token j+1).

    Returns
    -------
    (jax.Array, jax.Array)
        The summed negative log-likelihood and the number of predicted tokens.
    """
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
    tgt = tokens[:, 1:]
    tok_lp = jnp.take_along_axis(logp, tgt[..., None], axis=-1)[..., 0]
    m = mask[:, :-1]
    return -(tok_lp * m).sum(), m.sum()


@functools.cache
def optimizer(lr: float, weight_decay: float = 0.0, warmup: int = 0,
              clip: float = 1.0) -> optax.GradientTransformation:
    """AdamW (b2 0.98) after global-norm clipping, with a linear warm-up of `warmup` steps.

    Cached by its arguments, so that runs with the same hyperparameters share one optimizer object
    and the jitted train step compiles once for them.

    Parameters
    ----------
    lr, weight_decay, warmup, clip
        Peak learning rate, decoupled weight decay, warm-up steps, gradient-norm clip.

    Returns
    -------
    optax.GradientTransformation
        The optimizer.
    """
    sched = lr
    if warmup:
        sched = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup])
    return optax.chain(optax.clip_by_global_norm(clip), optax.adamw(sched, b2=0.98, weight_decay=weight_decay))


def init_opt_state(tx: optax.GradientTransformation, trainable: nnx.State) -> optax.OptState:
    """Optimizer state (float32 like the parameters), replicated like them.

    Parameters
    ----------
    tx
        The optimizer.
    trainable
        The trained parameters.

    Returns
    -------
    optax.OptState
        The initial state.
    """
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


def train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, trainable: nnx.State,
               frozen: nnx.State, opt_state: optax.OptState, tokens: jax.Array,
               mask: jax.Array) -> tuple[nnx.State, optax.OptState, jax.Array]:
    """One optimizer step (jitted once per graph, optimizer and input shapes/shardings).

    Donates `trainable` and `opt_state`. Traced with x64 off: float32 state whatever the process
    setting.

    Parameters
    ----------
    graphdef, trainable, frozen
        The model split by `split_model`.
    tx, opt_state
        The optimizer and its state.
    tokens, mask
        The batch on the devices (`put_batch`).

    Returns
    -------
    (nnx.State, optax.OptState, jax.Array)
        The updated trainable parameters and optimizer state, and the batch's mean loss.
    """
    with float32_scope():
        return _train_step(graphdef, tx, trainable, frozen, opt_state, tokens, mask)


@functools.partial(jax.jit, static_argnums=(0,))
def _eval_step(graphdef, state, tokens, mask):
    model = nnx.merge(graphdef, state)
    return nll_sum(model(tokens), tokens, mask)


def eval_step(graphdef: nnx.GraphDef, state: nnx.State, tokens: jax.Array,
              mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(sum of NLL, count) of one batch (`nll_sum`); x64 off like train_step.

    Parameters
    ----------
    graphdef, state
        The model, split (`nnx.split`).
    tokens, mask
        The batch on the devices.

    Returns
    -------
    (jax.Array, jax.Array)
        The summed negative log-likelihood and the number of predicted tokens.
    """
    with float32_scope():
        return _eval_step(graphdef, state, tokens, mask)


def split_model(model: nnx.Module,
                trainable_filter: nnx.filterlib.Filter) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """Split a model into what trains and what stays frozen, replicated over the devices.

    Parameters
    ----------
    model
        The model.
    trainable_filter
        The nnx filter of the trained parameters (runners/model.py's TRAINABLE[method]).

    Returns
    -------
    (nnx.GraphDef, nnx.State, nnx.State)
        (graphdef, trainable, frozen). The trainable arrays are copies: train_step donates them,
        and the caller's arrays (e.g. loaded base weights shared with the model) must stay valid.
    """
    graphdef, trainable, frozen = nnx.split(model, trainable_filter, ...)
    return graphdef, replicate(jax.tree.map(jnp.copy, trainable)), replicate(frozen)


def batches(n: int, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """Endless stream of index batches: a fresh permutation per epoch.

    Parameters
    ----------
    n
        Examples to draw from.
    batch_size
        Indices per batch; fixed even when n < batch_size (epochs are concatenated).
    seed
        The permutations' seed.

    Returns
    -------
    iterator of numpy.ndarray
        Batches of indices into the `n` examples.
    """
    rng = np.random.default_rng(seed)
    buf = np.zeros((0,), np.int64)
    while True:
        while len(buf) < batch_size:
            buf = np.concatenate([buf, rng.permutation(n)])
        yield buf[:batch_size]
        buf = buf[batch_size:]
