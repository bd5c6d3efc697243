"""The ``lawfit`` command line: one module per command group (see :mod:`lawfit.cli.main`)."""
from __future__ import annotations

__all__ = ["build_parser", "main"]


def main(argv=None) -> int:
    """Run ``lawfit ARGV`` (the console script's entry point); see :func:`lawfit.cli.main.main`."""
    from lawfit.cli.main import main as run
    return run(argv)


def build_parser():
    """The ``lawfit`` parser; see :func:`lawfit.cli.main.build_parser`."""
    from lawfit.cli.main import build_parser as build
    return build()
