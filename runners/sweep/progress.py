"""The sweep driver's side of a run: progress lines, and what SIGINT / SIGTERM do.

Stopping: the first SIGINT (Ctrl-C) or SIGTERM (what SLURM sends before a time limit) starts no new
run (`StopSignals.signum` is set; every executor checks it); runs in flight are abandoned by the
executor. A second signal calls the executors' kill functions at once.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TextIO

__all__ = ["Progress", "StopSignals"]


class Progress:
    """One line per finished job on `stream`: `[label done/total elapsed eta] what: result`, and counts
    of the failed, computed and elsewhere-claimed jobs."""

    def __init__(self, total: int, stream: TextIO | None = None, label: str = "runs") -> None:
        stream = stream if stream is not None else sys.stderr
        self.total, self.done, self.failed, self.t0, self.stream, self.label = total, 0, 0, time.time(), stream, label
        self.computed, self.elsewhere = 0, 0

    def __call__(self, job: dict, res: dict) -> None:
        """Report the result `res` of `job`."""
        self.last = res
        self.done += 1
        el = time.time() - self.t0
        eta = el / self.done * (self.total - self.done)
        c = job.get("config", job)
        what = (f"{c['model'].get('name')} {c['method']}{'' if c['pet_size'] is None else '/' + str(c['pet_size'])}"
                f" n={c['finetune_examples']} seed={c['seed']} step={c['pretrain_step']}"
                if job["kind"] == "finetune" else f"pretrain {c['model'].get('name')}")
        if "error" in res:
            self.failed += 1
            msg = f"FAILED {res['error']}" + (f" (log: {res['log']})" if res.get("log") else "")
        elif res.get("claimed_by"):
            self.elsewhere += 1
            h = res["claimed_by"]
            msg = f"left to the sweep that claimed it (host {h.get('host')}, pid {h.get('pid')})"
        elif res.get("skipped"):
            msg = "already done"
        elif "loss" in res:
            self.computed += 1
            msg = f"loss={res['loss']:.4f} ({res['wall_seconds']:.1f}s)"
        else:
            self.computed += 1
            msg = f"done ({res.get('wall_seconds', 0):.1f}s)"
        print(f"[{self.label} {self.done}/{self.total} {el:.0f}s eta {eta:.0f}s] {what}: {msg}",
              file=self.stream, flush=True)


class StopSignals:
    """SIGINT/SIGTERM while a sweep runs: the first sets `signum` (no new work), the second calls the
    registered kill functions at once. Installed only in the main thread; restored on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.hard = False
        self.killers: list[Callable[[], None]] = []
        self._old: dict = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            print(f"\n{signal.Signals(signum).name}: stopping: no new runs start, runs in flight are abandoned "
                  f"(signal again to kill the workers at once)", file=sys.stderr, flush=True)
        else:
            self.hard = True
            for k in list(self.killers):
                k()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc: object) -> bool:
        for s, h in self._old.items():
            signal.signal(s, h)
        return False
