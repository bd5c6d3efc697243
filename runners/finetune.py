"""Finetuning with the three methods of Zhang et al. (2024):

- `fmt`: all base weights trained;
- `prompt`: |P| soft-prompt vectors prepended to the input embeddings, initialised from the
  embeddings of tokens sampled from the vocabulary; base frozen;
- `lora`: rank-r adapters on every attention (q, k, v, o) and MLP (up, down) projection; base frozen.

Loss: conditional log-likelihood of the target tokens (and <eos>) only. Frozen base weights never
enter the optimizer (they are a separate, non-differentiated argument of the jitted step), so they
are bit-identical afterwards. Checkpoint selection: the dev loss is measured every `eval_every`
steps (and at step 0); the trainable weights with the best dev loss are kept.
"""
from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from .config import METHODS, FinetuneConfig, ModelConfig
from .device import float32_scope
from .evaluate import mean_nll
from .model import BASE, TRAINABLE, Transformer, init_prompt_from_vocab
from .tasks import SPECIALS, Examples
from .train import (
    batches,
    compute_dtype,
    init_opt_state,
    optimizer,
    place_model,
    put_batch,
    split_model,
    train_step,
)

__all__ = ["FinetuneConfig", "build_model", "finetune"]


def build_model(cfg: ModelConfig, base_params: dict, method: str, pet_size: int | None, seed: int,
                dtype: str | Any = "auto") -> Transformer:
    """A model with the base weights loaded and (for PET) fresh adapters / a vocab-sampled prompt."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if method in ("prompt", "lora") and not (pet_size and pet_size > 0):
        raise ValueError(f"method {method} needs a positive PET size, got {pet_size!r}")
    with float32_scope():
        rngs = nnx.Rngs(params=seed + 1000)
        model = Transformer(cfg, rngs=rngs, lora_rank=pet_size if method == "lora" else 0,
                            prompt_len=pet_size if method == "prompt" else 0,
                            dtype=compute_dtype(dtype) if isinstance(dtype, str) else dtype)
        base = nnx.state(model, BASE)
        nnx.replace_by_pure_dict(base, base_params)
        nnx.update(model, base)
        if method == "prompt":
            init_prompt_from_vocab(model, jax.random.key(seed + 2000), low=len(SPECIALS))
        return place_model(model)


def finetune(model: Transformer, method: str, train: Examples, dev: Examples, fcfg: FinetuneConfig,
             seed: int) -> tuple[Transformer, dict]:
    """Train `model` in place on `train`; returns the dev-selected model and a summary."""
    with float32_scope():
        return _finetune(model, method, train, dev, fcfg, seed)


def _finetune(model, method, train, dev, fcfg, seed):
    graphdef, trainable, frozen = split_model(place_model(model), TRAINABLE[method])
    tx = optimizer(fcfg.lr_for(method), fcfg.weight_decay, fcfg.warmup)
    opt_state = init_opt_state(tx, trainable)

    def dev_loss(tr):
        return mean_nll(nnx.merge(graphdef, tr, frozen), dev, fcfg.eval_batch_size)

    best = (dev_loss(trainable), 0, jax.tree.map(lambda x: x.copy(), trainable))
    history = [(0, best[0])]
    it = batches(len(train), fcfg.batch_size, seed)
    for step in range(1, fcfg.steps + 1):
        idx = next(it)
        trainable, opt_state, _ = train_step(graphdef, tx, trainable, frozen, opt_state,
                                             *put_batch(train.tokens[idx], train.mask[idx]))
        if step % fcfg.eval_every == 0 or step == fcfg.steps:
            d = dev_loss(trainable)
            history.append((step, d))
            if d < best[0]:
                # copy: the next train_step donates (and so invalidates) `trainable`'s buffers
                best = (d, step, jax.tree.map(lambda x: x.copy(), trainable))
    out = nnx.merge(graphdef, best[2], frozen)
    return out, {"dev_loss": best[0], "best_step": best[1], "dev_history": history,
                 "lr": fcfg.lr_for(method)}
