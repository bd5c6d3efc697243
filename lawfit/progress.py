"""Progress of long work: the small protocol engines accept, and the reporter the command line
passes them.

An engine takes ``progress``: ``None`` (silent), or any callable ``progress(message)`` that is
given one-line stage messages. Counted work (bootstrap chunks, groups, refits, figures) goes
through :func:`counted`, which gives a counter whatever ``progress`` is::

    with counted(progress, "bootstrap", n_resamples, unit="resample") as advance:
        for chunk in chunks:
            ...
            advance(len(chunk))

:class:`Reporter` (what ``lawfit`` passes) draws a tqdm bar with the count and an ETA when
stderr is a terminal, and writes one line per stage otherwise (``[  12.3s] message``, the
format of the command line's log); ``quiet`` silences both. A plain callable gets one line when
the counted stage starts. Nothing here imports jax, numpy or pandas: any module may import it.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, TextIO, runtime_checkable

__all__ = ["Advance", "CountingProgress", "Progress", "Reporter", "counted"]

Advance = Callable[..., None]
"""``advance(n=1)``: ``n`` more units of the counted stage are done."""


class Progress(Protocol):
    """What an engine's ``progress`` argument is: a callable given one-line stage messages."""

    def __call__(self, message: str) -> None: ...


@runtime_checkable
class CountingProgress(Protocol):
    """A :class:`Progress` that can also count a stage (a bar with ETA, or lines)."""

    def __call__(self, message: str) -> None: ...

    def count(self, what: str, total: int, unit: str = "it") -> AbstractContextManager[Advance]: ...


def _noop(n: int = 1) -> None:
    return None


@contextmanager
def counted(progress: Progress | None, what: str, total: int, *,
            unit: str = "it") -> Iterator[Advance]:
    """A counter for ``total`` units of work named ``what``.

    Parameters
    ----------
    progress
        ``None`` (nothing is shown), a plain ``progress(message)`` callable (one line when the
        stage starts), or a :class:`CountingProgress` such as :class:`Reporter` (a bar with
        counts and ETA on a terminal, lines otherwise).
    what
        The stage, e.g. ``"bootstrap"`` or ``"groups"``.
    total
        Units of work in the stage.
    unit
        The unit's name, e.g. ``"resample"``.

    Returns
    -------
    A context manager yielding ``advance(n=1)``.
    """
    if progress is None or total <= 0:
        yield _noop
    elif isinstance(progress, CountingProgress):
        with progress.count(what, total, unit) as advance:
            yield advance
    else:
        progress(f"{what}: {total} {unit}{'s' if total != 1 else ''}")
        yield _noop


class Reporter:
    """Progress on stderr for the command line.

    Parameters
    ----------
    quiet
        Show nothing.
    stream
        Where to write (default ``sys.stderr``).
    bars
        Draw tqdm bars; default: when ``stream`` is a terminal.
    every
        Without bars, at most one intermediate count line per ``every`` seconds of a stage
        (besides its first and last line).
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None,
                 bars: bool | None = None, every: float = 30.0):
        self.quiet = quiet
        self.stream = stream
        self.t0 = time.perf_counter()
        self._bars = bars
        self.every = every
        self._open = 0          # bars drawn now (nested stages stack below each other)

    @property
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def bars(self) -> bool:
        """Whether counted stages are drawn as bars."""
        if self._bars is None:
            isatty = getattr(self._out, "isatty", None)
            self._bars = bool(isatty and isatty())
        return self._bars

    def _line(self, message: str) -> str:
        return f"[{time.perf_counter() - self.t0:6.1f}s] {message}"

    def __call__(self, message: str) -> None:
        if self.quiet:
            return
        if self._open:
            from tqdm import tqdm
            tqdm.write(self._line(message), file=self._out)
        else:
            print(self._line(message), file=self._out, flush=True)

    @contextmanager
    def count(self, what: str, total: int, unit: str = "it") -> Iterator[Advance]:
        """Count ``total`` units of ``what``: a bar on a terminal, lines otherwise."""
        if self.quiet or total <= 0:
            yield _noop
            return
        if self.bars():
            from tqdm import tqdm
            bar = tqdm(total=total, desc=what, unit=unit, file=self._out, position=self._open,
                       leave=self._open == 0, dynamic_ncols=True, mininterval=0.2)
            self._open += 1
            try:
                yield bar.update
            finally:
                self._open -= 1
                bar.close()
            return
        t_start = time.perf_counter()
        last = [t_start]
        done = [0]

        def advance(n: int = 1) -> None:
            done[0] += n
            now = time.perf_counter()
            if now - last[0] >= self.every and done[0] < total:
                last[0] = now
                rate = done[0] / (now - t_start)
                eta = (total - done[0]) / rate if rate > 0 else float("inf")
                self(f"{what}: {done[0]}/{total} {unit}s, about {eta:.0f} s left")

        self(f"{what}: {total} {unit}{'s' if total != 1 else ''}")
        yield advance
        if done[0] >= total:
            self(f"{what}: {total}/{total} done in {time.perf_counter() - t_start:.1f} s")
