"""Tasks: what the runners pretrain and finetune on.

- base.py: special token ids, `Examples`, `pack_pairs`, the `Task` protocol;
- registry.py: `register_task` / `register_corpus_format` and `get_task` (a sweep's task spec -> Task);
- synthetic.py: the synthetic language pair and the synth_translate / synth_summarise tasks;
- tokenizers.py: byte and sentencepiece tokenisers for real corpora;
- corpora.py: TSV and Ding readers and `ParallelCorpusTask` (registered as tsv= / ding=).

Importing this package registers every built-in task. No jax import.
"""
from .base import BOS, EOS, PAD, SPECIALS, TAG_A, TAG_B, Examples, Task, pack_pairs
from .corpora import ParallelCorpusTask, read_ding, read_tsv
from .registry import CORPUS_FORMATS, TASKS, companion, get_task, register_corpus_format, register_task
from .synthetic import SyntheticPair, SyntheticTask, Vocab
from .tokenizers import ByteTokenizer, SentencePieceTokenizer, Tokenizer

__all__ = ["BOS", "CORPUS_FORMATS", "EOS", "PAD", "SPECIALS", "TAG_A", "TAG_B", "TASKS", "ByteTokenizer",
           "Examples", "ParallelCorpusTask", "SentencePieceTokenizer", "SyntheticPair", "SyntheticTask", "Task",
           "Tokenizer", "Vocab", "companion", "get_task", "pack_pairs", "read_ding", "read_tsv",
           "register_corpus_format", "register_task"]
