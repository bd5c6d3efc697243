"""Real parallel corpora: readers (TSV, Debian's Ding dictionary) and the task built on a corpus.

Each reader is registered as a corpus format (runners/tasks/registry.py): a sweep's task table
with `tsv = "pairs.tsv"` or `ding = "/usr/share/trans/de-en"` builds a `ParallelCorpusTask`.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import EOS, TAG_A, TAG_B, Examples, pack_pairs
from .registry import register_corpus_format
from .tokenizers import ByteTokenizer, SentencePieceTokenizer, Tokenizer

__all__ = ["ParallelCorpusTask", "read_ding", "read_tsv"]


def read_tsv(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Parallel corpus as TSV: `source<TAB>target` per line; blank lines and '#' lines skipped.

    Parameters
    ----------
    path
        The TSV file.

    Returns
    -------
    list of (str, str)
        The (source, target) pairs in file order.

    Raises
    ------
    ValueError
        Naming the file and line of a line without exactly two fields.
    """
    pairs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise ValueError(f"{path}:{lineno}: expected 2 tab-separated fields, got {len(parts)}")
            pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs


def _clean_ding(s: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"\{[^}]*\}|\[[^]]*\]|\([^)]*\)", "", s)).strip(" ;,")


def read_ding(path: str | os.PathLike = "/usr/share/trans/de-en", max_pairs: int | None = None
              ) -> list[tuple[str, str]]:
    """Debian `trans-de-en` (Ding format: `German :: English`, `|` between aligned senses).

    Parameters
    ----------
    path
        The dictionary file.
    max_pairs
        Read only the first `max_pairs` pairs (all if None).

    Returns
    -------
    list of (str, str)
        (English, German) pairs, one per aligned sense, annotations in {} [] () dropped.
    """
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or " :: " not in line:
                continue
            de, en = line.rstrip("\n").split(" :: ", 1)
            for d, e in zip(de.split(" | "), en.split(" | ")):
                d, e = _clean_ding(d.split(";")[0]), _clean_ding(e.split(";")[0])
                if d and e:
                    pairs.append((e, d))
            if max_pairs is not None and len(pairs) >= max_pairs:
                return pairs[:max_pairs]
    return pairs


class ParallelCorpusTask:
    """A real parallel corpus (list of (src, tgt) strings) with a deterministic train/dev/test split.

    Pretraining text = the monolingual sides of the train split, shuffled independently.
    """

    def __init__(self, pairs: Sequence[tuple[str, str]], name: str = "corpus", tokenizer: str = "bytes",
                 max_len: int = 64, n_dev: int = 200, n_test: int = 500, sp_vocab: int = 1000,
                 seed: int = 0) -> None:
        if len(pairs) < n_dev + n_test + 1:
            raise ValueError(f"corpus has {len(pairs)} pairs; need more than n_dev + n_test = {n_dev + n_test}")
        self.name = name
        # stable order independent of file order: sort by content hash
        order = sorted(range(len(pairs)), key=lambda i: hashlib.sha1(
            f"{seed}\t{pairs[i][0]}\t{pairs[i][1]}".encode()).hexdigest())
        pairs = [pairs[i] for i in order]
        self.test, self.dev, self.train = pairs[:n_test], pairs[n_test:n_test + n_dev], pairs[n_test + n_dev:]
        self.tok: Tokenizer
        if tokenizer == "bytes":
            self.tok = ByteTokenizer()
        elif tokenizer == "sentencepiece":
            self.tok = SentencePieceTokenizer([s for p in self.train for s in p], sp_vocab, seed)
        else:
            raise ValueError(f"unknown tokenizer {tokenizer!r} (bytes or sentencepiece)")
        self.vocab_size = self.tok.vocab_size
        self.max_len = max_len
        self._docs: dict[tuple[int, int], np.ndarray] = {}

    def detok(self, ids: Sequence[int]) -> str:
        """Text of token ids (special ids dropped)."""
        return self.tok.decode(ids)

    def split(self, split: str, n: int) -> Examples:
        """The first `n` pairs of split "train", "dev" or "test", tokenised and packed."""
        src = {"train": self.train, "dev": self.dev, "test": self.test}[split]
        if n > len(src):
            raise ValueError(f"{self.name}: asked for {n} {split} examples, split has {len(src)}")
        src = src[:n]
        return pack_pairs([(self.tok.encode(s), self.tok.encode(t)) for s, t in src], self.max_len,
                          [t for _, t in src])

    def pretrain_stream(self, n_tokens: int, seed: int = 0) -> np.ndarray:
        """Documents "<A> src <eos>" or "<B> tgt <eos>" of random training pairs, packed. Drawn in
        blocks (indices and sides as arrays; each sentence tokenised once and cached)."""
        rng = np.random.default_rng([97, seed])
        chunks, total = [], 0
        while total < n_tokens:
            m = 1 << 12  # fixed block: a stream is a prefix of a longer one
            idx = rng.integers(len(self.train), size=m)
            side = (rng.random(m) >= 0.5).astype(int)  # 0: source side <A>, 1: target side <B>
            for i, sd in zip(idx.tolist(), side.tolist()):
                doc = self._docs.get((i, sd))
                if doc is None:
                    doc = np.array([(TAG_A, TAG_B)[sd]] + self.tok.encode(self.train[i][sd]) + [EOS], np.int32)
                    self._docs[(i, sd)] = doc
                chunks.append(doc)
                total += len(doc)
                if total >= n_tokens:
                    break
        return np.concatenate(chunks)[:n_tokens].astype(np.int32)


@register_corpus_format("tsv")
def tsv_task(path: str | os.PathLike, *, name: str, **options: Any) -> ParallelCorpusTask:
    """A task on a TSV corpus (`task = {name = "...", tsv = "pairs.tsv", ...}`)."""
    return ParallelCorpusTask(read_tsv(Path(path)), name=name, **options)


@register_corpus_format("ding")
def ding_task(path: str | os.PathLike, *, name: str, max_pairs: int | None = None,
              **options: Any) -> ParallelCorpusTask:
    """A task on a Ding dictionary (`task = {name = "...", ding = "/usr/share/trans/de-en"}`)."""
    return ParallelCorpusTask(read_ding(path, max_pairs), name=name, **options)
