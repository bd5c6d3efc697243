"""Runners: synthetic language pair, sequence packing, TSV loader/tokenizers, a real corpus."""
import math
import os
from pathlib import Path

import numpy as np
import pytest

from runners.tasks import (
    BOS,
    EOS,
    TAG_A,
    TAG_B,
    ByteTokenizer,
    ParallelCorpusTask,
    SyntheticPair,
    SyntheticTask,
    get_task,
    read_ding,
    read_tsv,
)

DING = Path("/usr/share/trans/de-en")


def test_synthetic_task_is_deterministic_and_splits_differ():
    a, b = SyntheticTask("translate"), SyntheticTask("translate")
    ea, eb = a.split("train", 50), b.split("train", 50)
    np.testing.assert_array_equal(ea.tokens, eb.tokens)
    assert ea.refs == eb.refs
    # a split is a prefix of one stream: nested subsets
    np.testing.assert_array_equal(a.split("train", 20).tokens, ea.tokens[:20])
    test = set(a.split("test", 200).refs)
    assert len(test & set(a.split("dev", 200).refs)) < 20  # different streams (collisions only by chance)
    assert SyntheticTask("translate", lang_seed=1).pair.b_noun != a.pair.b_noun


def test_synthetic_grammar_word_order_agreement_and_word_choice():
    p = SyntheticPair(0)
    rng = np.random.default_rng(0)
    homograph_senses = {}
    for _ in range(400):
        cls, a, b = p.sentence(rng, 1)
        cl = cls[0]
        # SVO in A (verb right after the subject NP), SOV in B (verb last), verb agrees in number
        verb_b = b[-1]
        assert verb_b.endswith("n" if cl["subj"]["plural"] else "t")
        person = cl["subj"]["concept"] in ("man", "woman", "child", "teacher", "farmer", "doctor")
        assert verb_b[:-1] == p.b_verb[cl["verb"]][0 if person else 1]  # animacy-dependent lexeme
        # B adjectives follow the noun and agree with its gender/number
        if cl["obj"]["adj"]:
            g = 3 if cl["obj"]["plural"] else p.gender[cl["obj"]["concept"]]
            assert b[-2] == p.b_adj[cl["obj"]["adj"]] + ["er", "e", "es", "en"][g]
            assert a[-2] == cl["obj"]["adj"]  # A: adjective before the noun
        if cl["obj"]["a_word"] != cl["obj"]["concept"]:
            homograph_senses.setdefault(cl["obj"]["a_word"], set()).add(cl["obj"]["concept"])
    # the same A word is translated by two different B nouns depending on the verb
    assert any(len(s) == 2 for s in homograph_senses.values())


def test_packing_masks_target_tokens_only():
    t = SyntheticTask("summarise")
    ex = t.split("test", 30)
    for toks, mask, sep, ref in zip(ex.tokens, ex.mask, ex.src_len, ex.refs):
        assert toks[0] == BOS and toks[1] == TAG_A and toks[sep] == TAG_B
        predicted = toks[1:][mask[:-1] > 0]  # tokens whose prediction enters the loss
        assert predicted[-1] == EOS
        assert t.detok(predicted) == ref and TAG_A not in predicted
        assert mask[:sep].sum() == 0
    # compress-and-translate: targets are shorter than sources and have no adjectives
    assert np.mean([m.sum() for m in ex.mask]) < np.mean(ex.src_len)


def test_pretraining_stream_is_monolingual_unless_asked():
    t = SyntheticTask("translate")
    s = t.pretrain_stream(5000, seed=0)
    docs = np.split(s, np.where(s == EOS)[0] + 1)[:-1]
    assert all((d[0] == TAG_A) != (TAG_B in d) for d in docs)  # a doc is A or B, never both
    t2 = SyntheticTask("translate", parallel_fraction=0.3)
    docs2 = np.split(t2.pretrain_stream(5000, 0), np.where(t2.pretrain_stream(5000, 0) == EOS)[0] + 1)[:-1]
    frac = np.mean([d[0] == TAG_A and TAG_B in d for d in docs2])
    assert 0.15 < frac < 0.45


def test_tsv_loader_and_byte_tokenizer(tmp_path):
    f = tmp_path / "c.tsv"
    lines = [f"the house {i}\tdas Haus {i} – ü" for i in range(40)]
    f.write_text("# comment\n" + "\n".join(lines) + "\n\n")
    pairs = read_tsv(f)
    assert len(pairs) == 40 and pairs[3] == ("the house 3", "das Haus 3 – ü")
    tok = ByteTokenizer()
    assert tok.decode(tok.encode("Größe – ü")) == "Größe – ü"
    task = get_task({"name": "toy", "tsv": str(f), "n_dev": 5, "n_test": 5, "max_len": 48})
    assert len(task.split("train", 30)) == 30 and task.vocab_size == 261
    with pytest.raises(ValueError, match="split has"):
        task.split("train", 31)
    (tmp_path / "bad.tsv").write_text("only one field\n")
    with pytest.raises(ValueError, match="bad.tsv:1"):
        read_tsv(tmp_path / "bad.tsv")


@pytest.mark.slow
def test_real_corpus_trans_de_en():
    """Debian's trans-de-en (apt-get install trans-de-en), read at run time, never vendored."""
    if not DING.exists():
        if os.environ.get("LAWFIT_REQUIRE_REFERENCE_DATA") == "1":
            pytest.fail(f"{DING} is missing but LAWFIT_REQUIRE_REFERENCE_DATA=1: apt-get install -y trans-de-en")
        pytest.skip(f"{DING} not installed (apt-get install trans-de-en)")
    pairs = read_ding(DING, max_pairs=6000)
    assert len(pairs) == 6000 and all(e and d for e, d in pairs)
    assert not any("{" in d or "[" in d or "::" in d for _, d in pairs)
    task = ParallelCorpusTask(pairs, name="trans_de_en", tokenizer="sentencepiece", sp_vocab=400,
                              n_dev=100, n_test=200, max_len=48)
    assert 300 <= task.vocab_size <= 420
    test = task.split("test", 200)
    assert not set(test.refs) & set(task.split("dev", 100).refs) or len(set(test.refs)) < 200
    # sentencepiece round trip on German with umlauts
    s = next(d for _, d in pairs if any(c in d for c in "äöüß"))
    assert task.tok.decode(task.tok.encode(s)) == s
    # an untrained model's target-only NLL is about log(vocab): the masks and the loss are consistent
    pytest.importorskip("jax")
    from flax import nnx

    from runners.evaluate import mean_nll
    from runners.model import ModelConfig, Transformer
    m = Transformer(ModelConfig(task.vocab_size, 16, 1, 2), rngs=nnx.Rngs(0))
    nll = mean_nll(m, test)
    assert abs(nll - math.log(task.vocab_size)) < 1.0, (nll, math.log(task.vocab_size))
    assert len(task.pretrain_stream(2000)) == 2000


@pytest.mark.slow
def test_vectorised_pretraining_stream_matches_the_grammar_in_distribution():
    """The array-drawn stream renders the same language as `SyntheticPair.sentence`, one call per
    sentence: same bigram distribution (total variation), document lengths and A/B shares."""
    from collections import Counter
    t = SyntheticTask("translate")
    s = t.pretrain_stream(300_000, seed=0)
    assert s.dtype == np.int32 and len(s) == 300_000
    docs = [tuple(d) for d in np.split(s, np.where(s == EOS)[0] + 1)[:-1]]
    v = t.pair.vocab

    def grammar_docs(seed, n):  # the reference: one Python grammar call per sentence
        rng, out = np.random.default_rng(seed), []
        while len(out) < n:
            _, a, b = t.pair.sentence(rng, int(rng.integers(1, 4)))
            out.append(tuple([TAG_A] + v.encode(a) + [EOS]) if rng.random() < 0.5
                       else tuple([TAG_B] + v.encode(b) + [EOS]))
        return out

    def bigrams(ds):
        c = Counter((d[i], d[i + 1]) for d in ds for i in range(len(d) - 1))
        n = sum(c.values())
        return {k: x / n for k, x in c.items()}

    big, ref = bigrams(grammar_docs(1, 40_000)), grammar_docs(2, len(docs))
    p, q = bigrams(docs), bigrams(ref)
    # mass of bigrams the grammar never produced in a 40k-document sample: ~1e-4 for a second
    # grammar sample, 0.03 for a stream with one agreement slip (adjective gender of plurals)
    assert sum(x for k, x in p.items() if k not in big) < 0.002
    tv = lambda a, b: 0.5 * sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b))  # noqa: E731
    assert tv(p, big) < 1.2 * tv(q, big), (tv(p, big), tv(q, big))  # no farther than a second sample
    ref = grammar_docs(2, len(docs))
    assert abs(np.mean([len(d) for d in docs]) - np.mean([len(d) for d in ref])) < 0.3
    assert abs(np.mean([d[0] == TAG_A for d in docs]) - 0.5) < 0.02
    # different seeds, different streams; same seed, same stream
    assert not np.array_equal(s[:1000], t.pretrain_stream(1000, seed=1))
    assert np.array_equal(s[:1000], t.pretrain_stream(1000, seed=0))


def test_a_task_is_added_by_registering_it_in_one_place(monkeypatch):
    """`@register_task` makes a task buildable by name (and gives a sweep its zero-shot companion)."""
    from runners.tasks import Task, registry
    monkeypatch.setattr(registry, "TASKS", dict(registry.TASKS))
    monkeypatch.setattr(registry, "_COMPANIONS", dict(registry._COMPANIONS))

    @registry.register_task("synth_short", companion="synth_translate")
    def synth_short(**options):
        return SyntheticTask("translate", max_len=options.pop("max_len", 24), **options)

    t = get_task({"name": "synth_short", "lang_seed": 1})
    assert isinstance(t, Task) and t.max_len == 24 and t.pair.b_noun == SyntheticTask(lang_seed=1).pair.b_noun
    assert get_task("synth_short").split("dev", 3).tokens.shape == (3, 24)
    assert registry.companion("synth_short") == "synth_translate"
    assert registry.companion("synth_translate") == "synth_summarise" and registry.companion("x") is None
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_task("synth_short")(synth_short)
    with pytest.raises(ValueError, match=r"unknown task 'nope': use synth_translate, synth_summarise, "
                                         r"synth_short, or a table with tsv= or ding="):
        get_task("nope")


def test_every_built_in_task_satisfies_the_protocol(tmp_path):
    from runners.tasks import Task
    f = tmp_path / "c.tsv"
    f.write_text("\n".join(f"a{i}\tb{i}" for i in range(20)))
    for spec in ("synth_translate", "synth_summarise", {"name": "c", "tsv": str(f), "n_dev": 2, "n_test": 2}):
        t = get_task(spec)
        assert isinstance(t, Task) and t.vocab_size > 5 and len(t.pretrain_stream(50)) == 50
