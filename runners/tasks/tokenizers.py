"""Tokenisers for real corpora: UTF-8 bytes, or a sentencepiece unigram model trained on the corpus.

Both shift their ids past the special ids of runners/tasks/base.py, so <pad>, <bos>, <eos>, <A>
and <B> keep their places whatever the tokeniser.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from .base import SPECIALS

__all__ = ["ByteTokenizer", "SentencePieceTokenizer", "Tokenizer"]


class Tokenizer(Protocol):
    """Text <-> ids (ids below len(SPECIALS) are the special tokens, dropped by `decode`)."""
    vocab_size: int

    def encode(self, s: str) -> list[int]:
        """Token ids of `s`."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`, special ids dropped."""
        ...


class ByteTokenizer:
    """UTF-8 bytes shifted past the special ids."""

    def __init__(self) -> None:
        self.vocab_size = 256 + len(SPECIALS)

    def encode(self, s: str) -> list[int]:
        """The UTF-8 bytes of `s`, shifted past the special ids."""
        return [b + len(SPECIALS) for b in s.encode("utf-8")]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of byte ids (special ids dropped; invalid UTF-8 replaced)."""
        return bytes(int(i) - len(SPECIALS) for i in ids if int(i) >= len(SPECIALS)).decode("utf-8", "replace")


class SentencePieceTokenizer:
    """A unigram sentencepiece model trained on the corpus itself (both sides)."""

    def __init__(self, texts: list[str], vocab_size: int = 1000, seed: int = 0) -> None:
        import io

        import sentencepiece as spm
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=buf, vocab_size=vocab_size,
            model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
            bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0, num_threads=1,
            minloglevel=2)
        self.sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
        self.vocab_size = self.sp.get_piece_size() + len(SPECIALS)

    def encode(self, s: str) -> list[int]:
        """Piece ids of `s`, shifted past the special ids."""
        return [i + len(SPECIALS) for i in self.sp.encode(s)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of piece ids (special ids dropped)."""
        return self.sp.decode([int(i) - len(SPECIALS) for i in ids if int(i) >= len(SPECIALS)])
