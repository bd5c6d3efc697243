"""lawfit.expr: the --where / --cost grammar is parsed and evaluated as data, never run as code."""
import json

import numpy as np
import pandas as pd
import pytest

from lawfit.errors import DataError
from lawfit.expr import MAX_LENGTH, Expr, filter_frame, parse


@pytest.fixture
def frame():
    return pd.DataFrame({
        "task": ["wmt", "wmt", "mlsum", None, "mlsum"],
        "method": ["fmt", "lora", "lora", "fmt", "prompt"],
        "model_params": [1e9, 2e9, 4e9, 8e9, 16e9],
        "finetune_examples": [0, 1000, 10000, 100000, 1000000],
        "loss": [1.5, np.nan, 1.2, 1.1, 1.0],
        "ok": [True, False, True, True, False],
        "loss (nats)": [1, 2, 3, 4, 5],
    }, index=[10, 11, 12, 13, 14])


def rows(frame, text):
    return list(filter_frame(frame, text).index)


@pytest.mark.parametrize("text, expected", [
    ("finetune_examples > 0", [11, 12, 13, 14]),
    ("model_params >= 4e9", [12, 13, 14]),
    ("model_params == 16e9", [14]),
    ("1e9 < model_params <= 8e9", [11, 12, 13]),           # chained comparison
    ("task == 'wmt'", [10, 11]),
    ('task == "mlsum" and method != "prompt"', [12]),
    ("task != 'wmt'", [12, 13, 14]),                        # a missing task is != 'wmt'
    ("method in ['fmt', 'lora']", [10, 11, 12, 13]),
    ("method not in ['fmt', 'lora',]", [14]),
    ("not method in ['fmt']", [11, 12, 14]),
    ("finetune_examples in [0, 1e6]", [10, 14]),
    ("loss == loss", [10, 12, 13, 14]),                     # NaN never equals itself
    ("ok", [10, 12, 13]),
    ("not ok or model_params > 1e10", [11, 14]),
    ("ok == True and not (task == 'wmt')", [12, 13]),
    ("`loss (nats)` * 2 > 6", [13, 14]),
    ("model_params * finetune_examples >= 4e13", [12, 13, 14]),
    ("-model_params < -4e9", [13, 14]),
    ("2 ** 3 ** 2 == 512 and model_params / 1e9 == 2", [11]),
    ("(model_params - 1e9) / 1e9 + 1 == 4", [12]),
    ("-2 ** 2 == -4 and finetune_examples == 0", [10]),     # unary minus binds looser than **
    ("a_or_b == 1 or finetune_examples > 1e5", None),       # parsed; column checked on evaluation
])
def test_filters_keep_the_rows_a_user_expects(frame, text, expected):
    if expected is None:
        with pytest.raises(DataError, match="unknown column 'a_or_b'"):
            filter_frame(frame, text)
        return
    assert rows(frame, text) == expected


def test_arithmetic_evaluates_to_float64_and_predicates_to_bool(frame):
    cost = parse("model_params * finetune_examples")
    v = cost.evaluate(frame)
    assert v.dtype == np.float64
    np.testing.assert_allclose(v, frame.model_params * frame.finetune_examples)
    assert parse("loss > 1.1").evaluate(frame).dtype == bool
    assert parse("2 ** 10").evaluate(frame).tolist() == [1024.0] * 5
    assert cost.columns == frozenset({"model_params", "finetune_examples"})
    assert parse("`loss (nats)` > 1 and task in ['a']").columns == {"loss (nats)", "task"}
    assert cost.kind == "number" and parse("a < 1").kind == "bool" and parse("a").kind == "column"
    # evaluation on a plain mapping of arrays, and overflow is inf, not an exception
    assert parse("x ** 400").evaluate({"x": np.array([10.0])})[0] == np.inf


# --- refusal: anything outside the grammar, with its position ------------------------------------

INJECTIONS = [
    "@pd.io.common.os.system('touch CANARY') == 0",
    "__import__('os').system('touch CANARY')",
    "task.__class__.__mro__",
    "model_params.__class__ == 1",
    "(lambda: 1)() == 1",
    "lambda x: x",
    "import os",
    "open('CANARY', 'w')",
    "exec('x=1')",
    "eval('1')",
    "loss[0] > 1",
    "[c for c in ()]",
    "task == 'a'; import os",
    "`x`.y",
    "x if y else z",
    "{'a': 1}",
    "1 if True else 2",
    "task == 'a' | 1",
    "x = 1",
    "a is None",
    "compile('1', 'f', 'eval')",
    "globals()",
    "().__class__.__bases__[0].__subclasses__()",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_anything_outside_the_grammar_is_a_one_line_error(text):
    with pytest.raises(DataError) as info:
        parse(text)
    msg = str(info.value)
    assert "\n" not in msg and "cannot parse expression" in msg
    assert "position" in msg or "end" in msg


@pytest.mark.parametrize("text, fragment", [
    ("task.upper() == 'A'", "attribute access"),
    ("f(x) > 1", "calls are not allowed"),
    ("loss[0] > 1", "indexing is not allowed"),
    ("@x > 1", "'@' names are not allowed"),
    ("x = 1", "use =="),
    ("a & b", "use 'and'"),
    ("lambda: 1", "'lambda' is not part of the grammar"),
    ("x > ", "ended"),
    ("(x > 1", "expected ')'"),
    ("x in []", "empty list"),
    ("x in [y]", "list items must be"),
    ("'unclosed", "unclosed string"),
    ("1e999 > x", "out of range"),
    ("0x10 > x", "malformed number"),
    ("x < 1 in [1]", "cannot be chained"),
    ("x in [1] < 2", "cannot be chained"),
    ("'a' + 1 > 0", "takes numbers, not text"),
    ("1 and x", "takes conditions"),
    ("'a' < 1", "cannot compare text with a number"),
    ("True < False", "cannot order"),
    ("", "empty expression"),
])
def test_refusals_say_what_is_wrong(text, fragment):
    with pytest.raises(DataError, match=None) as info:
        parse(text)
    assert fragment in str(info.value), str(info.value)


def test_the_error_points_at_the_offending_position():
    with pytest.raises(DataError, match=r"position 18 \(near '@pd > 0'\)"):
        parse("finetune_examples@pd > 0")
    with pytest.raises(DataError, match=r"position 11 \(near '\.system'\)"):
        parse("task == os.system")


def test_length_and_nesting_limits():
    with pytest.raises(DataError, match=f"limit is {MAX_LENGTH}"):
        parse("x > 1 and " * 300 + "x > 1")
    with pytest.raises(DataError, match="nested more than"):
        parse("(" * 200 + "x" + ")" * 200 + " > 1")
    with pytest.raises(DataError, match="nested more than"):
        parse("-" * 200 + "x > 1")
    with pytest.raises(DataError, match="nested more than"):
        parse("not " * 200 + "x")
    assert str(parse("(((x))) > 1")) == "x > 1"


def test_evaluation_errors_name_the_column_and_the_types(frame):
    with pytest.raises(DataError, match=r"unknown column 'modle_params'.*did you mean "
                       r"'model_params'.*the table has task, method"):
        filter_frame(frame, "modle_params > 1")
    with pytest.raises(DataError, match="task .text. with 1 .numbers."):
        filter_frame(frame, "task == 1")
    with pytest.raises(DataError, match="task holds text but the list has numbers"):
        filter_frame(frame, "task in [1, 2]")
    with pytest.raises(DataError, match="arithmetic needs numbers"):
        filter_frame(frame, "task * 2 > 1")
    with pytest.raises(DataError, match="not a condition"):
        filter_frame(frame, "model_params * 2")
    with pytest.raises(DataError, match="not a condition"):
        filter_frame(frame, "model_params and ok")
    with pytest.raises(DataError, match="leaves no rows"):
        filter_frame(frame, "model_params > 1e12")
    # numbers stored as text are refused, not silently compared as strings
    text = frame.assign(model_params=frame.model_params.astype(str))
    with pytest.raises(DataError, match="model_params .text. with 1000000000 .numbers."):
        filter_frame(text, "model_params > 1e9")


def test_none_or_blank_keeps_every_row_and_an_expr_is_accepted(frame):
    assert filter_frame(frame, None) is frame and filter_frame(frame, "  ") is frame
    assert list(filter_frame(frame, parse("ok")).index) == [10, 12, 13]


# --- canonical text and the JSON tree ------------------------------------------------------------

@pytest.mark.parametrize("text, canonical", [
    ("finetune_examples>0", "finetune_examples > 0"),
    ("model_params >= 16e9", "model_params >= 16000000000"),
    ("x < 1.5e-3", "x < 0.0015"),
    ("a in ['x', \"it's\", -1, True]", "a in ['x', 'it\\'s', -1, True]"),
    ("not (a > 1 and b) or c", "not (a > 1 and b) or c"),
    ("(a or b) and c", "(a or b) and c"),
    ("-(x ** 2) + (-x) ** 2 - (y - z) / (2 * w)", "-x ** 2 + (-x) ** 2 - (y - z) / (2 * w)"),
    ("2 ** (3 ** 2)", "2 ** 3 ** 2"),
    ("(2 ** 3) ** 2", "(2 ** 3) ** 2"),
    ("1 < x <= 2", "1 < x and x <= 2"),
    ("`loss (nats)` > 1 and `and` == 'x' and `lambda` < 2", None),
    ("(a < b) == True", "(a < b) == True"),
    ("x - (y - z) == x - y - z", "x - (y - z) == x - y - z"),
])
def test_canonical_text_reparses_to_the_same_tree(text, canonical):
    e = parse(text)
    if canonical is not None:
        assert str(e) == canonical
    again = parse(str(e))
    assert again == e and again.to_json() == e.to_json()
    tree = e.to_json()
    assert json.loads(json.dumps(tree)) == tree           # plain JSON
    assert Expr.from_json(tree) == e


def test_backquoted_names_keep_odd_columns():
    e = parse("`loss (nats)` > 1 and `and` == 'x'")
    assert e.columns == {"loss (nats)", "and"}
    assert str(e) == "`loss (nats)` > 1 and `and` == 'x'"


@pytest.mark.parametrize("tree", [
    "__import__('os')",
    None,
    [],
    ["call", ["col", "os"]],
    ["col", "x`; y"],
    ["col", ""],
    ["col", 1],
    ["num", "1"],
    ["num", True],
    ["num", -1],
    ["num", float("inf")],
    ["str", 1],
    ["bool", 1],
    ["arith", "@", ["num", 1], ["num", 2]],
    ["arith", "+", ["num", 1]],
    ["arith", "+", ["str", "a"], ["num", 2]],
    ["cmp", "is", ["col", "a"], ["num", 1]],
    ["cmp", "==", ["str", "a"], ["num", 1]],
    ["and", [["cmp", "==", ["col", "a"], ["num", 1]]]],
    ["and", ["cmp", "==", ["col", "a"], ["num", 1]], ["col", "b"]],
    ["or", [["num", 1], ["col", "b"]]],
    ["not", ["num", 1]],
    ["in", ["col", "a"], [], False],
    ["in", ["col", "a"], [["col", "b"]], False],
    ["in", ["col", "a"], [1], "no"],
    ["neg", ["str", "x"]],
    {"op": "col", "name": "a"},
])
def test_a_tampered_tree_is_refused(tree):
    with pytest.raises(DataError):
        Expr.from_json(tree)


def test_from_json_refuses_huge_or_deep_trees():
    deep = ["col", "x"]
    for _ in range(500):
        deep = ["neg", deep]
    with pytest.raises(DataError, match="too deeply"):
        Expr.from_json(deep)
    wide = ["or", [["col", f"c{i}"] for i in range(5000)]]
    with pytest.raises(DataError, match="more than"):
        Expr.from_json(wide)


def test_expr_cannot_be_built_around_validation():
    with pytest.raises(TypeError):
        Expr(["col", "x"])
