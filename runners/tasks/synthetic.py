"""The synthetic tasks: a deterministic bilingual language pair (grammar, lexicon, vectorised
pretraining stream) and the translate / summarise tasks built on it.

Synthetic pair (everything derived from `seed`, so tests are fast and exact):
- language A ("English-like"): SVO, adjective before noun, plural by a separate noun form,
  determiners `the`/`a`, verb agrees with subject number;
- language B ("German/Japanese-like"): SOV (verb last), adjective after the noun and agreeing with
  the noun's gender, determiner agreeing in definiteness x gender x number, verb agreeing with
  subject number; context-dependent word choice: every verb has two B lexemes chosen by the
  subject's animacy (person vs other, like German essen/fressen), and A has homographs (one A
  word, two B nouns) resolved by the verb's domain;
- clauses are joined by `and` (A) / a B conjunction.

Tasks built on it:
- `synth_translate`: A sentence -> its B translation;
- `synth_summarise`: compress and translate: a 2-3 clause A text -> B translation of its first
  clause with all adjectives dropped.
Pretraining text is monolingual A and B sentences (never parallel).

Each task is registered by name (runners/tasks/registry.py); the two are each other's default
zero-shot task.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np

from .base import EOS, SPECIALS, TAG_A, TAG_B, Examples, pack_pairs
from .registry import register_task

__all__ = ["SyntheticPair", "SyntheticTask", "Vocab"]

_SRC_NOUNS = {  # concept -> (A singular, class); class: person / animal / thing
    "man": "person", "woman": "person", "child": "person", "teacher": "person", "farmer": "person",
    "doctor": "person", "dog": "animal", "cat": "animal", "horse": "animal", "bird": "animal",
    "fish": "animal", "ball": "thing", "book": "thing", "apple": "thing", "house": "thing",
    "car": "thing", "tree": "thing", "stone": "thing", "letter": "thing", "boat": "thing",
}
# homographs: one A word, two concepts, chosen by the verb's domain (0 or 1)
_HOMOGRAPHS = {"bank": ("bank.money", "bank.river"), "bat": ("bat.club", "bat.animal"),
               "note": ("note.money", "note.music")}
_ADJS = ["big", "small", "red", "old", "new", "green", "happy", "dark", "tall", "quiet"]
_VERBS = {  # verb -> domain (selects the homograph sense of its object)
    "sees": 0, "finds": 1, "likes": 0, "takes": 1, "carries": 0, "wants": 1, "buys": 0,
    "watches": 1, "holds": 0, "follows": 1,
}


def _pseudo_words(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    cons, vows = list("bdfgklmnprstvz"), list("aeiou")
    out = []
    while len(out) < n:
        w = "".join(rng.choice(cons) + rng.choice(vows) for _ in range(int(rng.integers(2, 4))))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


@dataclasses.dataclass
class Vocab:
    """The surface forms of both synthetic languages after the special tokens; a word's id is its index."""
    tokens: list[str]

    def __post_init__(self) -> None:
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, words: list[str]) -> list[int]:
        """Ids of `words` (every word must be in the vocabulary)."""
        return [self.index[w] for w in words]

    def decode(self, ids: Iterable[int]) -> str:
        """Space-joined words of `ids`, special ids dropped."""
        return " ".join(self.tokens[i] for i in ids if i >= len(SPECIALS))


class SyntheticPair:
    """The two synthetic languages and their lexicon, fully determined by `seed`."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        taken: set[str] = set()
        self.concepts = dict(_SRC_NOUNS)
        for w, (s0, s1) in _HOMOGRAPHS.items():
            self.concepts[s0] = "thing"
            self.concepts[s1] = "animal" if s1 == "bat.animal" else "thing"
        names = sorted(self.concepts)
        stems = _pseudo_words(rng, len(names), taken)
        self.b_noun = {c: s for c, s in zip(names, stems)}
        self.gender = {c: int(rng.integers(3)) for c in names}
        self.b_adj = dict(zip(_ADJS, _pseudo_words(rng, len(_ADJS), taken)))
        vstems = _pseudo_words(rng, 2 * len(_VERBS), taken)
        self.b_verb = {v: (vstems[2 * i], vstems[2 * i + 1]) for i, v in enumerate(_VERBS)}
        self.b_det = {(defn, g): w for (defn, g), w in zip(
            [(d, g) for d in (0, 1) for g in (0, 1, 2, 3)], _pseudo_words(rng, 8, taken))}
        self.b_and = _pseudo_words(rng, 1, taken)[0]
        # vocabulary: every surface form of both languages
        a = set(["the", "a", "and"]) | set(_ADJS)
        for c in _SRC_NOUNS:
            a |= {c, _a_plural(c)}
        for w in _HOMOGRAPHS:
            a |= {w, _a_plural(w)}
        for v in _VERBS:
            a |= {v, v[:-1] if not v.endswith("es") else v[:-2]}
        b = {self.b_and} | set(self.b_det.values())
        for c in names:
            b |= {self.b_noun[c], self.b_noun[c] + _B_PL[self.gender[c]]}
        for s in self.b_adj.values():
            b |= {s + suf for suf in _B_ADJ}
        for pair in self.b_verb.values():
            for s in pair:
                b |= {s + "t", s + "n"}
        self.vocab = Vocab(SPECIALS + sorted(a) + sorted(b))

    # ---- generation ------------------------------------------------------------------------
    def _np(self, rng, role_verb_domain=None, subject=False):
        if role_verb_domain is not None and rng.random() < 0.25:
            hw = list(_HOMOGRAPHS)[int(rng.integers(len(_HOMOGRAPHS)))]
            a_word, concept = hw, _HOMOGRAPHS[hw][role_verb_domain]
        else:
            concept = list(_SRC_NOUNS)[int(rng.integers(len(_SRC_NOUNS)))]
            a_word = concept
        return dict(concept=concept, a_word=a_word, plural=bool(rng.random() < 0.4),
                    definite=bool(rng.random() < 0.5),
                    adj=(_ADJS[int(rng.integers(len(_ADJS)))] if rng.random() < 0.5 else None))

    def _clause(self, rng):
        verb = list(_VERBS)[int(rng.integers(len(_VERBS)))]
        return dict(subj=self._np(rng), verb=verb, obj=self._np(rng, _VERBS[verb]))

    def _a_np(self, np_, adjectives=True):
        det = "the" if np_["definite"] else "a"
        if np_["plural"] and not np_["definite"]:
            det = None
        noun = _a_plural(np_["a_word"]) if np_["plural"] else np_["a_word"]
        return ([det] if det else []) + ([np_["adj"]] if np_["adj"] and adjectives else []) + [noun]

    def _b_np(self, np_, adjectives=True):
        c = np_["concept"]
        g = self.gender[c]
        gd = 3 if np_["plural"] else g
        noun = self.b_noun[c] + (_B_PL[g] if np_["plural"] else "")
        out = [self.b_det[(int(np_["definite"]), gd)], noun]
        if np_["adj"] and adjectives:
            out.append(self.b_adj[np_["adj"]] + _B_ADJ[gd])
        return out

    def a_clause(self, cl: dict, adjectives: bool = True) -> list[str]:
        """Words of clause `cl` (from `sentence`) in language A: SVO, adjective before the noun."""
        v = cl["verb"]
        if cl["subj"]["plural"]:
            v = v[:-2] if v.endswith("es") else v[:-1]
        return self._a_np(cl["subj"], adjectives) + [v] + self._a_np(cl["obj"], adjectives)

    def b_clause(self, cl: dict, adjectives: bool = True) -> list[str]:
        """Words of clause `cl` in language B: SOV, adjective after the noun, agreeing with it."""
        person = _SRC_NOUNS.get(cl["subj"]["concept"]) == "person"
        stem = self.b_verb[cl["verb"]][0 if person else 1]
        v = stem + ("n" if cl["subj"]["plural"] else "t")
        return self._b_np(cl["subj"], adjectives) + self._b_np(cl["obj"], adjectives) + [v]

    def sentence(self, rng: np.random.Generator, n_clauses: int) -> tuple[list[dict], list[str], list[str]]:
        """A random sentence of `n_clauses` clauses: (the clauses, its A words, its B words)."""
        cls = [self._clause(rng) for _ in range(n_clauses)]
        a, b = [], []
        for i, cl in enumerate(cls):
            if i:
                a.append("and")
                b.append(self.b_and)
            a += self.a_clause(cl)
            b += self.b_clause(cl)
        return cls, a, b


def _a_plural(w):
    return {"man": "men", "woman": "women", "child": "children", "fish": "fish"}.get(
        w, w + ("es" if w.endswith(("s", "sh", "ch")) else "s"))


_B_PL = ["en", "e", "er"]
_B_ADJ = ["er", "e", "es", "en"]


# ---- tasks --------------------------------------------------------------------------------------

class SyntheticTask:
    """A task on the synthetic pair: `kind` "translate" (A sentence -> B) or "summarise" (a 2-3
    clause A text -> B translation of its first clause, adjectives dropped)."""

    def __init__(self, kind: str = "translate", lang_seed: int = 0, max_len: int = 48,
                 parallel_fraction: float = 0.0):
        if kind not in ("translate", "summarise"):
            raise ValueError(f"unknown synthetic task kind {kind!r}")
        self.kind = kind
        self.name = f"synth_{kind}"
        self.pair = SyntheticPair(lang_seed)
        self.vocab_size = len(self.pair.vocab)
        self.max_len = max_len
        self._salt = {"translate": 11, "summarise": 23}[kind]
        if not 0.0 <= parallel_fraction < 1.0:
            raise ValueError(f"parallel_fraction must be in [0, 1), got {parallel_fraction}")
        self.parallel_fraction = parallel_fraction

    def detok(self, ids: Iterable[int]) -> str:
        """Text of token ids (special ids dropped)."""
        return self.pair.vocab.decode([int(i) for i in ids])

    def _rng(self, split):
        key = {"train": 1, "dev": 2, "test": 3, "pretrain": 4}[split]
        return np.random.default_rng([self._salt, key])

    def _example(self, rng):
        if self.kind == "translate":
            _, a, b = self.pair.sentence(rng, int(rng.integers(1, 3)))
            return a, b
        cls, a, _ = self.pair.sentence(rng, int(rng.integers(2, 4)))
        return a, self.pair.b_clause(cls[0], adjectives=False)

    def split(self, split: str, n: int) -> Examples:
        """First n examples of a split (a prefix of one fixed stream: nested subsets by design)."""
        rng = self._rng(split)
        v = self.pair.vocab
        pairs, refs = [], []
        for _ in range(n):
            a, b = self._example(rng)
            pairs.append((v.encode(a), v.encode(b)))
            refs.append(" ".join(b))
        return pack_pairs(pairs, self.max_len, refs)

    def pretrain_stream(self, n_tokens: int, seed: int = 0) -> np.ndarray:
        """Monolingual A and B sentences (independently drawn), packed. With `parallel_fraction` > 0
        that fraction of documents is an "<A> a <B> b <eos>" translation pair instead, like the
        incidental parallel text of web corpora (drawn from the pretraining stream's own generator,
        so never one of the finetuning/dev/test examples' streams).

        Vectorised: whole arrays of grammar choices are drawn at once and rendered through lookup
        tables, with the same distribution as `SyntheticPair.sentence` (one Python call per
        sentence was 21.7 s for 10M tokens)."""
        rng = np.random.default_rng([97, seed])
        chunks, total = [], 0
        per_chunk = 1 << 14  # sentences per draw (~15 tokens each); fixed, so streams are prefixes of longer ones
        while total < n_tokens:
            c = self._stream_chunk(rng, per_chunk)
            chunks.append(c)
            total += len(c)
        return np.concatenate(chunks)[:n_tokens].astype(np.int32)

    def _stream_tables(self):
        if getattr(self, "_tables", None) is not None:
            return self._tables
        p, ix = self.pair, self.pair.vocab.index
        nouns, hws, verbs = list(_SRC_NOUNS), list(_HOMOGRAPHS), list(_VERBS)
        concepts = sorted(p.concepts)
        cidx = {c: i for i, c in enumerate(concepts)}
        a_words = nouns + hws  # "noun slot" k: 20 nouns, then the 3 homographs
        t = dict(
            a_noun=np.array([[ix[w], ix[_a_plural(w)]] for w in a_words]),
            concept=np.array([[cidx[w], cidx[w]] if w in _SRC_NOUNS else [cidx[_HOMOGRAPHS[w][0]],
                              cidx[_HOMOGRAPHS[w][1]]] for w in a_words]),
            gender=np.array([p.gender[c] for c in concepts]),
            person=np.array([_SRC_NOUNS.get(c) == "person" for c in concepts]),
            b_noun=np.array([[ix[p.b_noun[c]], ix[p.b_noun[c] + _B_PL[p.gender[c]]]] for c in concepts]),
            b_det=np.array([[ix[p.b_det[(d, g)]] for g in range(4)] for d in (0, 1)]),
            a_adj=np.array([ix[a] for a in _ADJS]),
            b_adj=np.array([[ix[p.b_adj[a] + suf] for suf in _B_ADJ] for a in _ADJS]),
            a_verb=np.array([[ix[v], ix[v[:-2] if v.endswith("es") else v[:-1]]] for v in verbs]),
            b_verb=np.array([[[ix[p.b_verb[v][1 - person] + ("n" if pl else "t")] for pl in (0, 1)]
                              for person in (0, 1)] for v in verbs]),
            domain=np.array([_VERBS[v] for v in verbs]),
            the=ix["the"], a=ix["a"], a_and=ix["and"], b_and=ix[p.b_and], n_nouns=len(nouns), n_hw=len(hws),
        )
        self._tables = t
        return t

    def _stream_chunk(self, rng, n: int) -> np.ndarray:
        """`n` pretraining documents, packed (see pretrain_stream)."""
        t = self._stream_tables()
        C = 3  # clauses per sentence at most (1-3, uniform)
        n_cl = rng.integers(1, 4, n)
        used = np.arange(C)[None, :] < n_cl[:, None]
        verb = rng.integers(0, len(t["domain"]), (n, C))

        def noun_phrase(k):
            plural = rng.random((n, C)) < 0.4
            definite = rng.random((n, C)) < 0.5
            has_adj = rng.random((n, C)) < 0.5
            adj = rng.integers(0, len(t["a_adj"]), (n, C))
            return k, plural, definite, has_adj, adj

        subj = noun_phrase(rng.integers(0, t["n_nouns"], (n, C)))
        hw = rng.random((n, C)) < 0.25
        obj_k = np.where(hw, t["n_nouns"] + rng.integers(0, t["n_hw"], (n, C)), rng.integers(0, t["n_nouns"], (n, C)))
        obj = noun_phrase(obj_k)
        dom = t["domain"][verb]

        def a_np(np_):
            k, plural, definite, has_adj, adj = np_
            det = np.where(definite, t["the"], np.where(plural, -1, t["a"]))
            return [det, np.where(has_adj, t["a_adj"][adj], -1), t["a_noun"][k, plural.astype(int)]]

        def b_np(np_, domain):
            k, plural, definite, has_adj, adj = np_
            c = t["concept"][k, domain]
            gd = np.where(plural, 3, t["gender"][c])
            return [t["b_det"][definite.astype(int), gd], t["b_noun"][c, plural.astype(int)],
                    np.where(has_adj, t["b_adj"][adj, gd], -1)]

        subj_c = t["concept"][subj[0], 0]
        sp = subj[1].astype(int)
        a_verb = t["a_verb"][verb, sp]
        b_verb = t["b_verb"][verb, t["person"][subj_c].astype(int), sp]
        first = np.broadcast_to(np.arange(C)[None, :] == 0, (n, C))
        a_cl = np.stack([np.where(first, -1, t["a_and"]), *a_np(subj), a_verb, *a_np(obj)], axis=-1)
        b_cl = np.stack([np.where(first, -1, t["b_and"]), *b_np(subj, np.zeros_like(dom)), *b_np(obj, dom), b_verb],
                        axis=-1)
        a_cl[~used] = -1
        b_cl[~used] = -1
        u = rng.random(n)
        pf = self.parallel_fraction
        with_a = (u < pf) | (u < pf + (1 - pf) / 2)
        with_b = (u < pf) | (u >= pf + (1 - pf) / 2)
        col = np.full((n, 1), -1)
        rows = np.concatenate([np.where(with_a[:, None], TAG_A, col),
                               np.where(with_a[:, None], a_cl.reshape(n, -1), -1),
                               np.where(with_b[:, None], TAG_B, col),
                               np.where(with_b[:, None], b_cl.reshape(n, -1), -1),
                               np.full((n, 1), EOS)], axis=1).ravel()
        return rows[rows >= 0].astype(np.int32)


@register_task("synth_translate", companion="synth_summarise")
def synth_translate(**options: Any) -> SyntheticTask:
    """The synthetic translation task (options: lang_seed, max_len, parallel_fraction)."""
    return SyntheticTask("translate", **options)


@register_task("synth_summarise", companion="synth_translate")
def synth_summarise(**options: Any) -> SyntheticTask:
    """The synthetic compress-and-translate task (options as for synth_translate)."""
    return SyntheticTask("summarise", **options)
