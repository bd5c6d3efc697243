"""What every command module shares: registration, option parsing and checks, reading the runs.

Cold start: this module and every command module import only the standard library and
``lawfit.errors`` / ``lawfit.progress`` at top level; numpy, pandas, jax, matplotlib, numpyro and
the heavy lawfit modules are imported inside the command functions, so that ``lawfit --help``,
``--version`` and argument errors answer at once (tests/test_cli.py checks it).
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

from lawfit.errors import DataError
from lawfit.objectives import NAMES as OBJECTIVES
from lawfit.progress import Reporter

__all__ = ["Reporter", "add_command", "add_data_arguments", "check_level", "check_target_accept",
           "check_plot_out", "csv_list", "fit_options", "load", "number", "one_line",
           "parse_assignments", "parse_starts", "parse_value", "print_written"]

Command = Callable[[argparse.Namespace], int]


def add_command(subparsers, name: str, help: str,
                add_arguments: Callable[[argparse.ArgumentParser], None], run: Command) -> None:
    """Add ``lawfit NAME`` to ``subparsers``: ``add_arguments(parser)`` declares its options and
    ``run(args)`` (returning the exit status) carries it out.

    Parameters
    ----------
    subparsers
        What ``ArgumentParser.add_subparsers`` returned.
    name, help
        The command's name and its one-line description.
    add_arguments
        Declares the command's options on its parser.
    run
        The command: ``run(args) -> int``.
    """
    parser = subparsers.add_parser(name, help=help, description=help)
    add_arguments(parser)
    parser.set_defaults(lawfit_command=run)


def check_plot_out(args: argparse.Namespace) -> None:
    """``--plot`` draws into ``--out``: refuse it without one, before any work is done.

    Parameters
    ----------
    args
        The parsed options (``plot`` and ``out``).
    """
    if args.plot and not args.out:
        raise DataError("--plot needs --out DIR (the figures are written there)")


def print_written(paths) -> None:
    """Tell the user, on stderr, of each file written (``wrote PATH``).

    Parameters
    ----------
    paths
        The files written.
    """
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)


def one_line(exc: BaseException | str) -> str:
    """An error message on one line (its whitespace collapsed), or the exception's type."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def csv_list(text: str | None) -> list[str] | None:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; ``None`` stays ``None``."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def parse_value(text: str) -> float | str:
    """A number where the text is one, else the text."""
    try:
        return float(text)
    except ValueError:
        return text


def number(text, what: str, *, positive: bool = False, integer: bool = False) -> float:
    """``text`` as a finite float (an int with ``integer``), or a one-line DataError naming
    ``what``."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise DataError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise DataError(f"{what}: {text!r} is not a finite number")
    if positive and not v > 0:
        raise DataError(f"{what} must be positive, got {text}")
    if integer:
        if not v.is_integer():
            raise DataError(f"{what} must be a whole number, got {text}")
        return int(v)
    return v


def check_level(level, what: str = "--level") -> float:
    """An interval level strictly between 0 and 1 (``None`` passes: the default applies)."""
    if level is not None and not (math.isfinite(level) and 0 < level < 1):
        raise DataError(f"{what} must lie strictly between 0 and 1 (e.g. 0.95), got {level}")
    return level


def parse_assignments(text: str, what: str = "option", numeric: bool = False) -> dict:
    """``a=1,b=x`` -> {"a": "1", "b": "x"} (values as text), or floats with ``numeric``."""
    out = {}
    for item in csv_list(text) or []:
        if "=" not in item:
            raise DataError(f"{what} expects NAME=VALUE,..., got {item!r}")
        k, v = (s.strip() for s in item.split("=", 1))
        if not k:
            raise DataError(f"{what}: a name is missing before '=' in {item!r}")
        if k in out:
            raise DataError(f"{what} names {k!r} twice")
        out[k] = number(v, f"{what} {k}") if numeric else v
    return out


def parse_starts(text: str) -> str | int:
    """``--starts``: ``"grid"`` or a positive count."""
    if text == "grid":
        return "grid"
    try:
        n = int(text)
    except ValueError:
        raise DataError(f"--starts must be 'grid' or a count, got {text!r}") from None
    if n < 1:
        raise DataError(f"--starts must be 'grid' or a positive count, got {text!r}")
    return n


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by every subcommand that fits a runs table."""
    p.add_argument("runs", help="runs table: CSV, TSV, parquet, or a sweep's parquet directory")
    p.add_argument("--law", default=None,
                   help="multiplicative (default), additive, chinchilla, power, rectified, or "
                   "your own @lawfit.law function as MODULE:FUNCTION (e.g. my_laws.py:mylaw)")
    p.add_argument("--x", default=None, help="column of the law's X (default model_params; "
                   "@COL reads per row the column named in COL)")
    p.add_argument("--d", default=None, help="column of D (default finetune_examples; "
                   "pretrain_tokens for chinchilla)")
    p.add_argument("--y", default="loss", help="loss column (default loss)")
    p.add_argument("--by", default=None, help="grouping columns, comma separated "
                   "(default: task and method where present)")
    p.add_argument("--where", default=None,
                   help="keep rows where a condition holds, e.g. \"finetune_examples > 0 and "
                   "method in ['fmt', 'lora']\" (lawfit's own grammar, see README; never run as "
                   "code)")
    p.add_argument("--objective", default=None,
                   choices=OBJECTIVES,
                   help="default huber (finetuning laws), huber-log (chinchilla); l1/l1-log: least "
                   "absolute deviation (Epoch AI's published estimator), solved by IRLS")
    p.add_argument("--delta", type=float, default=None, help="Huber delta (default 1e-3)")
    p.add_argument("--starts", default="grid", help="'grid' (the law's start grid) or a count of "
                   "random starts over the grid's span")
    p.add_argument("--seeds", default="average", choices=["average", "keep"],
                   help="average runs that differ only in seed (default) or keep them")
    p.add_argument("--seed", type=int, default=0, help="random seed (bootstrap, random starts)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def check_target_accept(value: float) -> float:
    """NUTS' target acceptance probability must lie strictly between 0 and 1."""
    if not 0 < value < 1:
        raise DataError(f"--target-accept must be between 0 and 1 (e.g. 0.95), got {value}")
    return value


def fit_options(args) -> dict:
    """The shared fitting options, checked (the --where expression parsed) before any data is
    read."""
    from lawfit.expr import parse
    for flag in ("x", "d", "y", "by"):
        v = getattr(args, flag)
        if v is not None and not v.strip(" ,@"):
            raise DataError(f"--{flag} needs a column name, got {v!r}")
    if args.delta is not None and not (math.isfinite(args.delta) and args.delta > 0):
        raise DataError(f"--delta must be a positive number, got {args.delta}")
    if args.seed < 0:
        raise DataError(f"--seed must be >= 0, got {args.seed}")
    for flag in ("bootstrap", "chains", "warmup", "draws"):
        v = getattr(args, flag, None)
        if v is not None and v < (0 if flag == "bootstrap" else 1):
            raise DataError(f"--{flag} must be {'>= 0' if flag == 'bootstrap' else 'positive'}, "
                            f"got {v}")
    check_level(getattr(args, "level", None))
    where = parse(args.where) if args.where is not None else None
    return dict(x=args.x, d=args.d, y=args.y, by=csv_list(args.by), where=where,
                objective=args.objective, delta=args.delta, starts=parse_starts(args.starts),
                seeds=args.seeds, seed=args.seed)


def load(args):
    """The runs table named by ``args.runs`` and its provenance (a dict)."""
    from lawfit.io.runs import read_runs
    frame, source = read_runs(args.runs)
    return frame, source.as_dict()
