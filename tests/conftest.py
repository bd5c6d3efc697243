"""Shared test helpers: where the reference data live, and the `lawfit` command."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# One XLA compilation cache, inherited by the subprocesses (CLI runs, notebook kernels), so that a
# program compiled by one test is loaded, not recompiled, by the next; it is kept between sessions
# (in .pytest_cache/, as the command line keeps its own in ~/.cache/lawfit), so a second quick round
# compiles only what changed. jax keys each entry by the program, its options and jax's version.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "lawfit-xla"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # every program, as the CLI
os.environ.setdefault("LAWFIT_CACHE_DIR", os.environ["JAX_COMPILATION_CACHE_DIR"])


def reference_data() -> Path:
    """The shared reference data (never copied into the repository)."""
    return Path(os.environ.get("LAWFIT_REFERENCE_DATA", ROOT.parent / "shared" / "data"))


def require_reference(*parts: str) -> Path:
    """Path of a reference file; skip when absent, fail when LAWFIT_REQUIRE_REFERENCE_DATA=1."""
    path = reference_data().joinpath(*parts)
    if not path.exists():
        if os.environ.get("LAWFIT_REQUIRE_REFERENCE_DATA") == "1":
            pytest.fail(f"reference data missing: {path}")
        pytest.skip(f"reference data missing: {path}")
    return path


def run_cli(*args, cwd=None, timeout=600):
    """Run `lawfit ARGS` in a subprocess; returns CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "lawfit", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def run_main(capsys, *args) -> subprocess.CompletedProcess:
    """Run `lawfit ARGS` in this process (for tests about a command's result, not about the process:
    no interpreter start and no jax import per call); returns what `run_cli` does."""
    from lawfit.cli.main import main
    capsys.readouterr()                         # what earlier steps printed is not this command's
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:                   # argparse's errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["lawfit", *map(str, args)], code, out, err)


class Recorder:
    """A counting progress (lawfit.progress.CountingProgress) that records its messages and its
    counted stages as (what, total, unit, advanced)."""

    def __init__(self):
        self.lines, self.counts = [], []

    def __call__(self, message):
        self.lines.append(message)

    @contextlib.contextmanager
    def count(self, what, total, unit="it"):
        done = [0]

        def advance(n=1):
            done[0] += n
        yield advance
        self.counts.append((what, total, unit, done[0]))
