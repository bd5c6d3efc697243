"""What every task shares: the special token ids, tokenised finetuning examples, and the `Task`
protocol that pretraining, finetuning and evaluation rely on.

Sequence format for finetuning: [<bos> <A> src... <B> tgt... <eos>]; the loss covers the target
tokens and <eos> only. Pretraining: a packed stream of "<A> sentence <eos>" / "<B> sentence <eos>"
documents.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["BOS", "EOS", "PAD", "SPECIALS", "TAG_A", "TAG_B", "Examples", "Task", "pack_pairs"]

PAD, BOS, EOS, TAG_A, TAG_B = 0, 1, 2, 3, 4
SPECIALS = ["<pad>", "<bos>", "<eos>", "<A>", "<B>"]


@dataclasses.dataclass
class Examples:
    """Tokenised finetuning examples: tokens (N, T) int32, loss mask (N, T) over targets."""
    tokens: np.ndarray
    mask: np.ndarray
    src_len: np.ndarray  # index of the <B> separator (prefix length - 1)
    refs: list[str]

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Examples:
        """The examples at positions `idx`, in that order."""
        return Examples(self.tokens[idx], self.mask[idx], self.src_len[idx], [self.refs[i] for i in idx])


def pack_pairs(pairs: list[tuple[list[int], list[int]]], max_len: int, refs: list[str]) -> Examples:
    """Pack (source ids, target ids) pairs into fixed-length finetuning sequences.

    Parameters
    ----------
    pairs
        Token ids of each source and its target (special ids excluded).
    max_len
        Sequence length; a pair that does not fit loses the end of its source (the target is kept
        whole where possible).
    refs
        The reference text of each target (for BLEU / chrF).

    Returns
    -------
    Examples
        Tokens, the loss mask (1 where the next token is a target token or <eos>) and the position
        of each <B> separator.
    """
    n = len(pairs)
    toks = np.zeros((n, max_len), np.int32)
    mask = np.zeros((n, max_len), np.float32)
    src_len = np.zeros((n,), np.int32)
    for i, (s, t) in enumerate(pairs):
        seq = [BOS, TAG_A] + s + [TAG_B] + t + [EOS]
        if len(seq) > max_len:  # truncate the source, keep the target whole where possible
            keep = max(1, len(s) - (len(seq) - max_len))
            s = s[:keep]
            seq = ([BOS, TAG_A] + s + [TAG_B] + t + [EOS])[:max_len]
        toks[i, :len(seq)] = seq
        sep = 2 + len(s)
        src_len[i] = sep
        # position j predicts token j+1: mask[j] = 1 where token j+1 is a target token or <eos>
        mask[i, sep:len(seq) - 1] = 1.0
    return Examples(toks, mask, src_len, refs)


@runtime_checkable
class Task(Protocol):
    """What the runners need of a task: a vocabulary, a pretraining stream, finetuning splits.

    `name` is recorded in the runs table's `task` column; `vocab_size` counts the special ids;
    `max_len` is the finetuning sequence length.
    """
    name: str
    vocab_size: int
    max_len: int

    def pretrain_stream(self, n_tokens: int, seed: int = 0) -> np.ndarray:
        """`n_tokens` int32 ids of packed pretraining documents (deterministic in `seed`)."""
        ...

    def split(self, split: str, n: int) -> Examples:
        """The first `n` examples of split "train", "dev" or "test"."""
        ...

    def detok(self, ids: Sequence[int]) -> str:
        """Text of token ids (special ids dropped)."""
        ...
