"""Row filters and cost expressions: a small grammar of our own, parsed and evaluated as data.

Expressions come from users (``--where``, ``--cost``) and from files other people send around
(a fit's ``fit.json``), so they are never handed to Python, pandas ``query``/``eval`` or anything
else that can reach Python objects. The grammar, loosest binding first::

    expr       := or
    or         := and ('or' and)*
    and        := not ('and' not)*
    not        := 'not' not | comparison
    comparison := sum (CMP sum)*                  CMP: == != < <= > >=  (a chain a < b < c means
                | sum ['not'] 'in' '[' literal (',' literal)* [','] ']'   a < b and b < c)
    sum        := product (('+' | '-') product)*
    product    := unary (('*' | '/') unary)*
    unary      := ('-' | '+') unary | power
    power      := atom ['**' unary]               (right associative: 2 ** 3 ** 2 = 2 ** 9)
    atom       := NUMBER | STRING | 'True' | 'False' | NAME | `ANY NAME` | '(' expr ')'
    literal    := ['-'] NUMBER | STRING | 'True' | 'False'

NAME is a column name (letters, digits, underscore, not starting with a digit); any other column
name is written between backquotes (`` `loss (nats)` ``). NUMBER is a decimal number with an
optional exponent (``16e9``, ``0.5``, ``1e-3``). STRING is single- or double-quoted; inside it,
``\\\\``, ``\\'`` and ``\\"`` are the only escapes. Nothing else is accepted: no attribute access,
calls, indexing, ``@`` names, lambdas or Python keywords. Numbers are float64; comparing a text
column with a number (or a number column with text) is an error, not an empty result; missing
values compare unequal to everything, so ``loss == loss`` keeps the rows whose loss is present.

A parsed :class:`Expr` is a tree of plain JSON values (:meth:`Expr.to_json`) that
:meth:`Expr.from_json` validates node by node, so an expression stored in an artefact is read
back as data, never run.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lawfit.errors import DataError

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "Expr", "filter_frame", "filter_with_record", "parse",
           "select_rows"]

MAX_LENGTH = 2000      # characters of expression text
MAX_DEPTH = 48         # nesting of parentheses / operators
MAX_NODES = 4000       # nodes of a tree read by from_json

CMP_OPS = ("==", "!=", "<=", ">=", "<", ">")
ARITH_OPS = ("+", "-", "*", "/", "**")
KEYWORDS = {"and", "or", "not", "in", "True", "False"}
# Python keywords and builtins-looking words that are never column names without backquotes
_PY_KEYWORDS = {"lambda", "import", "from", "if", "else", "for", "while", "is", "def", "class",
                "return", "yield", "with", "as", "del", "global", "nonlocal", "assert", "pass",
                "raise", "try", "except", "finally", "async", "await", "None", "break",
                "continue", "elif"}
GRAMMAR_HINT = ("expressions may use column names, numbers, quoted strings, True/False, "
                "== != < <= > >=, in [...], and/or/not, + - * / ** and parentheses")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SPACE = re.compile(r"\s+")
_NAME_FULL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


# --- tokens ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Tok:
    kind: str      # num, str, name, col (backquoted), op, kw, end
    value: object
    pos: int


def _fail(text: str, pos: int, what: str) -> DataError:
    near = text[pos:pos + 15]
    where = f" at position {pos + 1} (near {near!r})" if near else " at the end"
    return DataError(f"cannot parse expression {_short(text)!r}{where}: {what}")


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


_UNSUPPORTED = {
    ".": "attribute access ('.') is not allowed",
    "@": "'@' names are not allowed",
    "=": "use == to compare",
    "&": "use 'and'", "|": "use 'or'", "~": "use 'not'", "!": "use != or 'not'",
    ";": "';' is not allowed", ":": "':' is not allowed", "{": "braces are not allowed",
    "}": "braces are not allowed", "%": "'%' is not allowed", "^": "'^' is not allowed",
    "\\": "'\\' is not allowed outside strings", "#": "comments are not allowed",
}


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        m = _SPACE.match(text, i)
        if m:
            i = m.end()
            continue
        c = text[i]
        if c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            m = _NUMBER.match(text, i)
            end = m.end()
            if end < n and (text[end].isalpha() or text[end] == "_" or text[end] == "."):
                raise _fail(text, i, "malformed number")
            value = float(m.group())
            if not math.isfinite(value):
                raise _fail(text, i, "number out of range")
            toks.append(_Tok("num", value, i))
            i = end
        elif c.isalpha() or c == "_":
            m = _NAME.match(text, i)
            if m is None:      # a non-ASCII letter
                raise _fail(text, i, "write a column name with characters other than A-Z, a-z, "
                            "0-9 and _ between backquotes, e.g. `name`")
            word = m.group()
            if word in KEYWORDS:
                toks.append(_Tok("kw", word, i))
            elif word in _PY_KEYWORDS:
                raise _fail(text, i, f"{word!r} is not part of the grammar (a column of that "
                            f"name is written `{word}`); {GRAMMAR_HINT}")
            else:
                toks.append(_Tok("name", word, i))
            i = m.end()
        elif c == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise _fail(text, i, "unclosed backquote")
            name = text[i + 1:end]
            if not name:
                raise _fail(text, i, "empty column name")
            toks.append(_Tok("col", name, i))
            i = end + 1
        elif c in "'\"":
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise _fail(text, i, "unclosed string")
                ch = text[j]
                if ch == c:
                    break
                if ch == "\\":
                    if j + 1 < n and text[j + 1] in "\\'\"":
                        buf.append(text[j + 1])
                        j += 2
                        continue
                    raise _fail(text, j, "the only escapes in strings are \\\\, \\' and \\\"")
                buf.append(ch)
                j += 1
            toks.append(_Tok("str", "".join(buf), i))
            i = j + 1
        else:
            two = text[i:i + 2]
            if two in ("==", "!=", "<=", ">=", "**"):
                toks.append(_Tok("op", two, i))
                i += 2
            elif c in "<>+-*/()[],":
                toks.append(_Tok("op", c, i))
                i += 1
            else:
                raise _fail(text, i, _UNSUPPORTED.get(c, f"{c!r} is not allowed") + "; "
                            + GRAMMAR_HINT)
    toks.append(_Tok("end", None, n))
    return toks


# --- parser ------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def at(self, kind: str, value=None) -> bool:
        t = self.tok
        return t.kind == kind and (value is None or t.value == value)

    def expect(self, kind: str, value, what: str) -> _Tok:
        if not self.at(kind, value):
            raise self.error(f"expected {what}")
        return self.take()

    def error(self, what: str) -> DataError:
        t = self.tok
        if t.kind == "end":
            return _fail(self.text, len(self.text), f"{what}, but the expression ended")
        return _fail(self.text, t.pos, what)

    def parse(self) -> list:
        node = self.or_()
        if not self.at("end"):
            t = self.tok
            if t.kind == "op" and t.value == "(":
                raise self.error("calls are not allowed; " + GRAMMAR_HINT)
            if t.kind == "op" and t.value == "[":
                raise self.error("indexing is not allowed; " + GRAMMAR_HINT)
            raise self.error("unexpected " + _describe(t))
        return node

    def nest(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} levels deep")

    def or_(self):
        self.nest()
        parts = [self.and_()]
        while self.at("kw", "or"):
            self.take()
            parts.append(self.and_())
        self.depth -= 1
        return parts[0] if len(parts) == 1 else ["or", parts]

    def and_(self):
        parts = [self.not_()]
        while self.at("kw", "and"):
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else ["and", parts]

    def not_(self):
        if self.at("kw", "not"):
            self.take()
            self.nest()
            node = ["not", self.not_()]
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self):
        left = self.sum_()
        if self.at("kw", "in") or (self.at("kw", "not") and self.toks[self.i + 1].kind == "kw"
                                   and self.toks[self.i + 1].value == "in"):
            negate = self.take().value == "not"
            if negate:
                self.take()
            values = self.literal_list()
            if self.tok.kind == "op" and self.tok.value in CMP_OPS or self.at("kw", "in"):
                raise self.error("'in [...]' cannot be chained with another comparison; use "
                                 "'and'")
            return ["in", left, values, negate]
        pairs = []
        while self.tok.kind == "op" and self.tok.value in CMP_OPS:
            op = self.take().value
            right = self.sum_()
            pairs.append(["cmp", op, left, right])
            left = right
        if pairs and (self.at("kw", "in") or (self.at("kw", "not")
                                              and self.toks[self.i + 1].kind == "kw"
                                              and self.toks[self.i + 1].value == "in")):
            raise self.error("'in [...]' cannot be chained with another comparison; use 'and'")
        if not pairs:
            return left
        return pairs[0] if len(pairs) == 1 else ["and", pairs]

    def literal_list(self):
        self.expect("op", "[", "'[' after 'in' (a list of literal values)")
        values = []
        while not self.at("op", "]"):
            values.append(self.literal())
            if self.at("op", ","):
                self.take()
            elif not self.at("op", "]"):
                raise self.error("expected ',' or ']' in the list")
        self.take()
        if not values:
            raise _fail(self.text, self.toks[self.i - 1].pos, "an empty list matches nothing")
        return values

    def literal(self):
        t = self.tok
        if t.kind == "op" and t.value == "-" and self.toks[self.i + 1].kind == "num":
            self.take()
            return -self.take().value
        if t.kind in ("num", "str"):
            return self.take().value
        if t.kind == "kw" and t.value in ("True", "False"):
            return self.take().value == "True"
        raise self.error("list items must be numbers, quoted strings, True or False")

    def sum_(self):
        node = self.product()
        while self.tok.kind == "op" and self.tok.value in ("+", "-"):
            op = self.take().value
            node = ["arith", op, node, self.product()]
        return node

    def product(self):
        node = self.unary()
        while self.tok.kind == "op" and self.tok.value in ("*", "/"):
            op = self.take().value
            node = ["arith", op, node, self.unary()]
        return node

    def unary(self):
        if self.tok.kind == "op" and self.tok.value in ("-", "+"):
            op = self.take().value
            self.nest()
            inner = self.unary()
            self.depth -= 1
            return ["neg", inner] if op == "-" else inner
        return self.power()

    def power(self):
        base = self.atom()
        if self.at("op", "**"):
            self.take()
            self.nest()
            exponent = self.unary()
            self.depth -= 1
            return ["arith", "**", base, exponent]
        return base

    def atom(self):
        t = self.tok
        if t.kind == "num":
            self.take()
            return ["num", t.value]
        if t.kind == "str":
            self.take()
            return ["str", t.value]
        if t.kind == "kw" and t.value in ("True", "False"):
            self.take()
            return ["bool", t.value == "True"]
        if t.kind in ("name", "col"):
            self.take()
            if self.at("op", "("):
                raise self.error("calls are not allowed; " + GRAMMAR_HINT)
            if self.at("op", "["):
                raise self.error("indexing is not allowed; " + GRAMMAR_HINT)
            return ["col", t.value]
        if t.kind == "op" and t.value == "(":
            self.take()
            node = self.or_()
            self.expect("op", ")", "')'")
            return node
        if t.kind == "op" and t.value == "[":
            raise self.error("a list is only allowed after 'in'")
        raise self.error("expected a column name, a number, a string or '(' but found "
                         + _describe(t))


def _describe(t: _Tok) -> str:
    if t.kind == "end":
        return "the end of the expression"
    if t.kind == "name":
        return f"name {t.value!r}"
    if t.kind == "num":
        return f"number {_num_text(t.value)}"
    if t.kind == "str":
        return "a string"
    return repr(t.value)


# --- tree validation (from_json) ---------------------------------------------------------------

_KINDS = ("bool", "number", "text", "column")


def _check(tree, depth: int, count: list) -> str:
    """Validate one node of a JSON tree strictly; return its static kind."""
    count[0] += 1
    if count[0] > MAX_NODES:
        raise DataError(f"expression tree has more than {MAX_NODES} nodes")
    if depth > 4 * MAX_DEPTH:
        raise DataError("expression tree is nested too deeply")
    if not isinstance(tree, list) or not tree or not isinstance(tree[0], str):
        raise DataError(f"bad expression tree: expected a node [type, ...], got {_snip(tree)}")
    tag, args = tree[0], tree[1:]

    def arity(k):
        if len(args) != k:
            raise DataError(f"bad expression tree: {tag!r} node takes {k} arguments, got "
                            f"{_snip(tree)}")

    if tag == "num":
        arity(1)
        v = args[0]
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                or v < 0):
            raise DataError(f"bad expression tree: 'num' needs a finite number >= 0, got "
                            f"{_snip(v)}")
        return "number"
    if tag == "str":
        arity(1)
        if not isinstance(args[0], str):
            raise DataError(f"bad expression tree: 'str' needs a string, got {_snip(args[0])}")
        return "text"
    if tag == "bool":
        arity(1)
        if not isinstance(args[0], bool):
            raise DataError(f"bad expression tree: 'bool' needs true or false, got "
                            f"{_snip(args[0])}")
        return "bool"
    if tag == "col":
        arity(1)
        name = args[0]
        if not isinstance(name, str) or not name or "`" in name:
            raise DataError(f"bad expression tree: 'col' needs a column name, got {_snip(name)}")
        return "column"
    if tag == "neg":
        arity(1)
        _need(tag, _check(args[0], depth + 1, count), ("number", "column"))
        return "number"
    if tag == "not":
        arity(1)
        _need(tag, _check(args[0], depth + 1, count), ("bool", "column"))
        return "bool"
    if tag in ("and", "or"):
        arity(1)
        parts = args[0]
        if not isinstance(parts, list) or len(parts) < 2:
            raise DataError(f"bad expression tree: {tag!r} needs a list of two or more operands")
        for p in parts:
            _need(tag, _check(p, depth + 1, count), ("bool", "column"))
        return "bool"
    if tag == "arith":
        arity(3)
        if args[0] not in ARITH_OPS:
            raise DataError(f"bad expression tree: unknown arithmetic operator {_snip(args[0])}")
        for p in args[1:]:
            _need(args[0], _check(p, depth + 1, count), ("number", "column"))
        return "number"
    if tag == "cmp":
        arity(3)
        op = args[0]
        if op not in CMP_OPS:
            raise DataError(f"bad expression tree: unknown comparison {_snip(op)}")
        kl = _check(args[1], depth + 1, count)
        kr = _check(args[2], depth + 1, count)
        _compatible(op, kl, kr)
        return "bool"
    if tag == "in":
        arity(3)
        target, values, negate = args
        _check(target, depth + 1, count)
        if not isinstance(negate, bool):
            raise DataError("bad expression tree: 'in' needs true/false for its negation flag")
        if not isinstance(values, list) or not values:
            raise DataError("bad expression tree: 'in' needs a non-empty list of literals")
        for v in values:
            if not (isinstance(v, (str, bool)) or (isinstance(v, (int, float))
                                                   and math.isfinite(v))):
                raise DataError(f"bad expression tree: 'in' list items must be numbers, strings "
                                f"or booleans, got {_snip(v)}")
        return "bool"
    raise DataError(f"bad expression tree: unknown node type {_snip(tag)}")


def _need(op: str, kind: str, allowed) -> None:
    if kind not in allowed:
        what = {"number": "a number", "text": "text", "bool": "a condition"}[kind]
        want = "numbers" if "number" in allowed else "conditions (true/false)"
        raise DataError(f"{op!r} takes {want}, not {what}")


def _compatible(op: str, kl: str, kr: str) -> None:
    if "column" in (kl, kr) or kl == kr:
        if kl == kr == "bool" and op not in ("==", "!="):
            raise DataError(f"{op!r} cannot order true/false values")
        return
    names = {"number": "a number", "text": "text", "bool": "true/false"}
    raise DataError(f"cannot compare {names[kl]} with {names[kr]} ({op!r})")


def _snip(v) -> str:
    try:
        s = json.dumps(v)
    except (TypeError, ValueError):
        s = type(v).__name__
    return s if len(s) <= 60 else s[:57] + "..."


# --- printing ----------------------------------------------------------------------------------

def _num_text(v: float) -> str:
    v = float(v)
    if v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return repr(v)


def _str_text(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _literal_text(v) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, str):
        return _str_text(v)
    return _num_text(v)


_PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "in": 4, "+": 5, "-": 5, "*": 6, "/": 6,
         "neg": 7, "**": 8, "atom": 9}


def _prec(tree) -> int:
    tag = tree[0]
    if tag == "arith":
        return _PREC[tree[1]]
    if tag in _PREC:
        return _PREC[tag]
    return _PREC["atom"]


def _text(tree) -> str:
    tag = tree[0]
    if tag == "num":
        return _num_text(tree[1])
    if tag == "str":
        return _str_text(tree[1])
    if tag == "bool":
        return "True" if tree[1] else "False"
    if tag == "col":
        name = tree[1]
        return name if _NAME_FULL.match(name) and name not in KEYWORDS | _PY_KEYWORDS \
            else f"`{name}`"

    def wrap(sub, min_prec):
        s = _text(sub)
        return f"({s})" if _prec(sub) < min_prec else s

    if tag in ("and", "or"):
        p = _PREC[tag]
        return f" {tag} ".join(wrap(s, p + 1) for s in tree[1])
    if tag == "not":
        return "not " + wrap(tree[1], _PREC["not"])
    if tag == "neg":
        return "-" + wrap(tree[1], _PREC["neg"])
    if tag == "arith":
        op, left, right = tree[1:]
        p = _PREC[op]
        if op == "**":   # right associative; base must bind tighter than unary minus
            return f"{wrap(left, p + 1)} ** {wrap(right, _PREC['neg'])}"
        return f"{wrap(left, p)} {op} {wrap(right, p + 1)}"
    if tag == "cmp":
        op, left, right = tree[1:]
        return f"{wrap(left, 5)} {op} {wrap(right, 5)}"
    if tag == "in":
        target, values, negate = tree[1:]
        items = ", ".join(_literal_text(v) for v in values)
        return f"{wrap(target, 5)} {'not in' if negate else 'in'} [{items}]"
    raise AssertionError(tag)


# --- evaluation --------------------------------------------------------------------------------

def _column_kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "number"
    return "text"


class _Eval:
    def __init__(self, frame: pd.DataFrame):
        frame = frame.reset_index(drop=True)
        self.frame = frame
        self.n = len(frame)
        self.index = frame.index

    def column(self, name: str) -> pd.Series:
        if name not in self.frame.columns:
            import difflib
            cols = [str(c) for c in self.frame.columns]
            close = difflib.get_close_matches(name, cols, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DataError(f"unknown column {name!r} in expression: {hint}the table has "
                            f"{', '.join(cols)}")
        s = self.frame[name]
        if isinstance(s, pd.DataFrame):
            raise DataError(f"column {name!r} appears more than once in the table")
        kind = _column_kind(s)
        if kind == "number" and not pd.api.types.is_float_dtype(s.dtype):
            s = pd.Series(s.to_numpy(dtype=np.float64, na_value=np.nan), index=self.index)
        elif kind == "bool" and s.dtype != bool:
            if s.isna().any():
                raise DataError(f"column {name!r} has missing true/false values: fill them "
                                "in the table")
            s = s.astype(bool)
        return s

    def const(self, value) -> pd.Series:
        return pd.Series([value] * self.n, index=self.index,
                         dtype=bool if isinstance(value, bool) else
                         (np.float64 if isinstance(value, float) else object))

    def ev(self, tree) -> tuple[pd.Series, str]:
        """(values, kind) with kind in bool/number/text."""
        tag = tree[0]
        if tag == "num":
            return self.const(float(tree[1])), "number"
        if tag == "str":
            return self.const(tree[1]), "text"
        if tag == "bool":
            return self.const(bool(tree[1])), "bool"
        if tag == "col":
            s = self.column(tree[1])
            return s, _column_kind(s)
        if tag == "neg":
            return -self.numbers(tree[1]), "number"
        if tag == "arith":
            op, left, right = tree[1:]
            a, b = self.numbers(left), self.numbers(right)
            with np.errstate(all="ignore"):
                out = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide,
                       "**": np.power}[op](a.to_numpy(), b.to_numpy())
            return pd.Series(out, index=self.index, dtype=np.float64), "number"
        if tag == "not":
            return ~self.condition(tree[1]), "bool"
        if tag in ("and", "or"):
            parts = [self.condition(p) for p in tree[1]]
            out = parts[0]
            for p in parts[1:]:
                out = (out & p) if tag == "and" else (out | p)
            return out, "bool"
        if tag == "cmp":
            return self.compare(*tree[1:]), "bool"
        if tag == "in":
            target, values, negate = tree[1:]
            s, kind = self.ev(target)
            kinds = {_literal_kind(v) for v in values}
            for k in kinds:
                if k != kind:
                    raise DataError(f"{_text(target)} holds {_KIND_WORDS[kind]} but the list "
                                    f"has {_KIND_WORDS[k]}")
            if kind == "number":
                out = s.astype(np.float64).isin([float(v) for v in values])
            else:
                out = s.isin(values)
            return (~out if negate else out).astype(bool), "bool"
        raise DataError(f"bad expression tree: unknown node type {_snip(tag)}")

    def numbers(self, tree) -> pd.Series:
        s, kind = self.ev(tree)
        if kind != "number":
            raise DataError(f"{_text(tree)} is {_KIND_WORDS[kind]}, not numbers: arithmetic "
                            "needs numbers")
        return s.astype(np.float64)

    def condition(self, tree) -> pd.Series:
        s, kind = self.ev(tree)
        if kind != "bool":
            raise DataError(f"{_text(tree)} is {_KIND_WORDS[kind]}, not a condition (true/false)")
        return s.astype(bool)

    def compare(self, op, left, right) -> pd.Series:
        a, ka = self.ev(left)
        b, kb = self.ev(right)
        if ka != kb:
            raise DataError(f"cannot compare {_text(left)} ({_KIND_WORDS[ka]}) with "
                            f"{_text(right)} ({_KIND_WORDS[kb]}) in {op!r}")
        if ka == "bool" and op not in ("==", "!="):
            raise DataError(f"{op!r} cannot order true/false values")
        if ka == "number":
            a, b = a.astype(np.float64), b.astype(np.float64)
        try:
            out = {"==": a.__eq__, "!=": a.__ne__, "<": a.__lt__, "<=": a.__le__,
                   ">": a.__gt__, ">=": a.__ge__}[op](b)
        except TypeError as exc:
            raise DataError(f"cannot compare {_text(left)} with {_text(right)}: "
                            f"{str(exc).splitlines()[0]}") from None
        if ka == "text":      # missing values compare unequal to everything
            missing = a.isna() | b.isna()
            out = out.where(~missing, op == "!=")
        return out.astype(bool)


_KIND_WORDS = {"number": "numbers", "text": "text", "bool": "true/false values"}


def _literal_kind(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, str):
        return "text"
    return "number"


# --- public interface --------------------------------------------------------------------------

class Expr:
    """A parsed expression: a validated tree of plain JSON values.

    Build one with :func:`parse` (text) or :meth:`Expr.from_json` (a stored tree); both validate
    completely, so holding an ``Expr`` means holding something inside the grammar.
    """

    __slots__ = ("_kind", "_tree")

    def __init__(self, tree: list, _validated: bool = False):
        if not _validated:
            raise TypeError("build an Expr with lawfit.expr.parse or Expr.from_json")
        self._tree = tree
        self._kind = _check(tree, 0, [0])

    @property
    def kind(self) -> str:
        """What the expression gives, as far as is known without a table: ``bool`` (a
        condition), ``number``, ``text`` or ``column`` (a bare column: depends on its type)."""
        return self._kind

    @property
    def columns(self) -> frozenset[str]:
        """The column names the expression reads."""
        out: set[str] = set()
        stack = [self._tree]
        while stack:
            t = stack.pop()
            tag = t[0]
            if tag == "col":
                out.add(t[1])
            elif tag in ("neg", "not"):
                stack.append(t[1])
            elif tag in ("and", "or"):
                stack.extend(t[1])
            elif tag in ("arith", "cmp"):
                stack.extend(t[2:])
            elif tag == "in":
                stack.append(t[1])
        return frozenset(out)

    def evaluate(self, frame) -> np.ndarray:
        """Evaluate on a table, one value per row.

        Parameters
        ----------
        frame : pandas.DataFrame or mapping of column name to array

        Returns
        -------
        numpy.ndarray
            bool for a condition, float64 for arithmetic, the column's values for a bare column.

        Raises
        ------
        DataError
            An unknown column (naming it and the table's columns), or types that do not fit
            (arithmetic on text, comparing text with a number, ``and`` on numbers).
        """
        if not isinstance(frame, pd.DataFrame):
            try:
                frame = pd.DataFrame(frame)
            except (TypeError, ValueError) as exc:
                raise DataError(f"cannot evaluate an expression on {type(frame).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        values, kind = _Eval(frame).ev(self._tree)
        if kind == "bool":
            return values.to_numpy(dtype=bool)
        if kind == "number":
            return values.to_numpy(dtype=np.float64)
        return values.to_numpy()

    def to_json(self) -> list:
        """The parsed tree as plain JSON lists, strings, numbers and booleans.

        Node forms: ``["num", x]``, ``["str", s]``, ``["bool", b]``, ``["col", name]``,
        ``["neg", e]``, ``["not", e]``, ``["and", [e, ...]]``, ``["or", [e, ...]]``,
        ``["arith", op, e1, e2]`` (op one of + - * / **), ``["cmp", op, e1, e2]``
        (op one of == != < <= > >=), ``["in", e, [literal, ...], negated]``.
        """
        return json.loads(json.dumps(self._tree))

    @classmethod
    def from_json(cls, tree) -> Expr:
        """Rebuild an expression from :meth:`to_json`'s tree, validating every node (types,
        operators, arities, sizes); anything else is a :class:`DataError`, never evaluated."""
        try:
            tree = json.loads(json.dumps(tree, allow_nan=False))
        except (TypeError, ValueError, RecursionError):
            raise DataError("bad expression tree: not plain JSON data") from None
        return cls(tree, _validated=True)

    def __str__(self) -> str:
        return _text(self._tree)

    def __repr__(self) -> str:
        return f"Expr({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Expr) and self._tree == other._tree

    def __hash__(self) -> int:
        return hash(json.dumps(self._tree))


def parse(text: str) -> Expr:
    """Parse an expression of the grammar in this module's docstring.

    Parameters
    ----------
    text : str
        At most :data:`MAX_LENGTH` characters.

    Returns
    -------
    Expr

    Raises
    ------
    DataError
        One line naming the position and what is wrong, for anything outside the grammar.
    """
    if not isinstance(text, str):
        raise DataError(f"an expression must be text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise DataError(f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    if not text.strip():
        raise DataError("empty expression")
    tree = _Parser(text).parse()
    try:
        return Expr(tree, _validated=True)
    except DataError as exc:
        raise DataError(f"expression {_short(text)!r}: {exc}") from None


def _as_expr(expr) -> Expr | None:
    if expr is None or (isinstance(expr, str) and not expr.strip()):
        return None
    if isinstance(expr, str):
        return parse(expr)
    if not isinstance(expr, Expr):
        raise DataError(f"--where must be text or an Expr, got {type(expr).__name__}")
    return expr


def select_rows(frame: pd.DataFrame, expr: str | Expr) -> np.ndarray:
    """Boolean mask of the rows of ``frame`` where a condition holds.

    Raises
    ------
    DataError
        A parse error, an unknown column, or an expression that is not a condition.
    """
    e = _as_expr(expr)
    if e is None:
        return np.ones(len(frame), bool)
    try:
        mask = e.evaluate(frame)
    except DataError as exc:
        raise DataError(f"cannot apply --where {str(e)!r}: {exc}") from None
    if mask.dtype != bool:
        raise DataError(f"--where {str(e)!r} is not a condition (it gives "
                        f"{'numbers' if mask.dtype.kind == 'f' else 'values'}, not true/false)")
    return mask


def filter_frame(frame: pd.DataFrame, expr: str | Expr | None) -> pd.DataFrame:
    """Keep the rows of ``frame`` where a condition holds (the command line's ``--where``).

    Parameters
    ----------
    frame : pandas.DataFrame
    expr : str, Expr or None
        Text is parsed with :func:`parse`; None or empty text keeps every row.

    Returns
    -------
    pandas.DataFrame
        The matching rows, original index kept.

    Raises
    ------
    DataError
        A parse error, an expression that is not a condition, or one that keeps no rows.
    """
    e = _as_expr(expr)
    if e is None:
        return frame
    out = frame[select_rows(frame, e)]
    if len(out) == 0:
        raise DataError(f"--where {str(e)!r} leaves no rows")
    return out


def filter_with_record(frame: pd.DataFrame, expr: str | Expr | None
                       ) -> tuple[pd.DataFrame, dict]:
    """:func:`filter_frame`, and the record an artefact keeps of it.

    Returns
    -------
    (pandas.DataFrame, dict)
        The rows kept and ``{"where": canonical text, "where_tree": Expr.to_json(),
        "where_rows": table.selection_record(...)}`` (all None without a filter). A reader of the
        artefact re-selects the fitted rows from ``where_rows`` and never evaluates the
        expression again.
    """
    from lawfit.table import selection_record
    e = _as_expr(expr)
    if e is None:
        return frame, {"where": None, "where_tree": None, "where_rows": None}
    mask = select_rows(frame, e)
    if not mask.any():
        raise DataError(f"--where {str(e)!r} leaves no rows")
    return frame[mask], {"where": str(e), "where_tree": e.to_json(),
                         "where_rows": selection_record(frame, mask)}
