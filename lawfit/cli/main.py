"""The ``lawfit`` command: the parser, the table of command modules, and the dispatch.

Exit status: 0 success, 2 bad input or usage (one line on stderr, no traceback), 1 a bug.

Commands live in the modules of :data:`COMMAND_MODULES`; each exposes ``register(subparsers)``,
which adds its commands with :func:`lawfit.cli.common.add_command`. To add a command, write its
options and its function in one of those modules (or a new one listed here) and add it in that
module's ``register``. Command modules import heavy libraries only inside their command
functions, so that ``lawfit --help`` answers at once.
"""
from __future__ import annotations

import argparse
import sys

from lawfit import __version__
from lawfit.cli import analysis, bayes, fit, optimal, suggest
from lawfit.cli.common import one_line
from lawfit.errors import DataError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

#: the command modules, in the order their commands are listed by ``lawfit --help``
COMMAND_MODULES = (fit, analysis, bayes, optimal, suggest)


class _Parser(argparse.ArgumentParser):
    def error(self, message):      # one line, exit 2
        print(f"{self.prog}: error: {one_line(message)}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The ``lawfit`` parser with every command of :data:`COMMAND_MODULES`."""
    parser = _Parser(prog="lawfit", description="Fit scaling laws to training runs and "
                     "extrapolate them with honest uncertainty.")
    parser.add_argument("--version", action="version", version=f"lawfit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _compilation_cache() -> None:
    """Keep compiled XLA programs between runs of the command (a fit's first run spends most of
    its time compiling), and the solver's traced programs beside them (lawfit.programs).
    ``LAWFIT_CACHE_DIR`` moves the cache (default ~/.cache/lawfit/xla); an empty value turns
    both off. The library itself leaves jax's configuration alone."""
    import os
    from pathlib import Path
    where = os.environ.get("LAWFIT_CACHE_DIR", str(Path.home() / ".cache" / "lawfit" / "xla"))
    if not where or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    try:
        Path(where).mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    import jax
    jax.config.update("jax_compilation_cache_dir", where)
    # every program, however quick to compile: a fit compiles ~300 small ones (about 2 MB in all)
    # whose compile time, at any positive threshold (jax's default is 1 s), is paid on every run
    # (benchmarks/bench_cache.py)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    # and the solver's traced programs, so that a new process does not trace them again
    # (lawfit/programs.py): beside the XLA cache, ``<dir>-programs``
    from lawfit import programs
    programs.set_directory(Path(where).with_name(Path(where).name + "-programs"))


def main(argv=None) -> int:
    """Run ``lawfit ARGV`` (default ``sys.argv[1:]``) and return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        _compilation_cache()
        return args.lawfit_command(args)
    except DataError as exc:
        print(f"lawfit {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:         # a file the user named cannot be read or written
        print(f"lawfit {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lawfit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
