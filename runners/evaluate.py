"""Evaluation: held-out token-level NLL (the runs table's `loss`), greedy decoding + sacrebleu."""
from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .device import float32_scope
from .tasks import EOS, PAD, Examples
from .train import eval_step, mesh, put_batch, replicate

__all__ = ["greedy_decode", "mean_nll", "translation_scores"]


def mean_nll(model: nnx.Module, ex: Examples, batch_size: int = 64) -> float:
    """Mean NLL in nats per target token (target tokens and <eos>, never the source) over `ex`.

    Parameters
    ----------
    model
        The Transformer (runners/model.py).
    ex
        The examples and their loss masks.
    batch_size
        Rows per evaluation step, rounded up to a multiple of the device count (padding rows are
        fully masked).

    Returns
    -------
    float
        The loss (the runs table's `loss` on the test split).
    """
    n_dev = mesh().devices.size
    batch_size = -(-batch_size // n_dev) * n_dev
    graphdef, state = nnx.split(model)
    state = replicate(state)
    tot, cnt = 0.0, 0.0
    for i in range(0, len(ex), batch_size):
        toks, mask = ex.tokens[i:i + batch_size], ex.mask[i:i + batch_size]
        if len(toks) < batch_size:  # fixed shape: pad with fully masked rows
            padn = batch_size - len(toks)
            toks = np.concatenate([toks, np.zeros((padn, toks.shape[1]), toks.dtype)])
            mask = np.concatenate([mask, np.zeros((padn, mask.shape[1]), mask.dtype)])
        s, c = eval_step(graphdef, state, *put_batch(toks, mask))
        tot += float(s)
        cnt += float(c)
    return tot / cnt


@functools.partial(jax.jit, static_argnums=(0, 4))
def _greedy(graphdef, state, buf, pos, max_new):
    model = nnx.merge(graphdef, state)
    B, T = buf.shape

    def body(_, carry):
        buf, pos, done = carry
        logits = model(buf)
        nxt = jnp.argmax(logits[jnp.arange(B), pos], axis=-1).astype(buf.dtype)
        write = (~done) & (pos + 1 < T)
        buf = buf.at[jnp.arange(B), jnp.minimum(pos + 1, T - 1)].set(
            jnp.where(write, nxt, buf[jnp.arange(B), jnp.minimum(pos + 1, T - 1)]))
        done = done | (nxt == EOS) | (pos + 1 >= T - 1)
        return buf, pos + 1, done

    buf, _, _ = jax.lax.fori_loop(0, max_new, body, (buf, pos, jnp.zeros((B,), bool)))
    return buf


def greedy_decode(model: nnx.Module, ex: Examples, max_new: int | None = None) -> list[list[int]]:
    """Greedy continuation after each example's <B> separator.

    No KV cache (the models here are tiny and sequences short): each step reruns the full padded
    sequence; causal attention makes the zeros after the cursor irrelevant.

    Parameters
    ----------
    model
        The Transformer.
    ex
        The examples (their targets are ignored).
    max_new
        Tokens to generate at most (default: up to the sequence length).

    Returns
    -------
    list of list of int
        Each example's generated target ids, up to (not including) <eos>.
    """
    graphdef, state = nnx.split(model)
    T = ex.tokens.shape[1]
    buf = np.where(np.arange(T)[None] <= ex.src_len[:, None], ex.tokens, PAD).astype(np.int32)
    max_new = max_new or T - 1 - int(ex.src_len.min())
    with float32_scope():  # every input on the same devices (replicated: any batch size)
        out = np.asarray(_greedy(graphdef, replicate(state), replicate(buf),
                                 replicate(np.asarray(ex.src_len, np.int32)), max_new))
    res = []
    for row, s in zip(out, ex.src_len):
        ids = []
        for t in row[s + 1:]:
            if t == EOS:
                break
            ids.append(int(t))
        res.append(ids)
    return res


def translation_scores(model: nnx.Module, ex: Examples, detok: Callable[[list[int]], str]) -> dict:
    """chrF and BLEU (sacrebleu, default settings) of greedy outputs against the references.

    Parameters
    ----------
    model
        The Transformer.
    ex
        The examples, with their reference texts.
    detok
        The task's ids -> text.

    Returns
    -------
    dict
        {"chrf", "bleu", "exact_match"} (percentages, and the fraction of exact outputs).
    """
    import sacrebleu
    hyps = [detok(ids) for ids in greedy_decode(model, ex)]
    return {
        "chrf": float(sacrebleu.corpus_chrf(hyps, [ex.refs]).score),
        "bleu": float(sacrebleu.corpus_bleu(hyps, [ex.refs]).score),
        "exact_match": float(np.mean([h == r for h, r in zip(hyps, ex.refs)])),
    }
