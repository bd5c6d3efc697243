"""A sweep worker process: `python -m runners.sweep.worker --threads N --slot S`.

The local executor (runners/sweep/local.py) starts one per worker slot with the environment of that slot (its GPU in
CUDA_VISIBLE_DEVICES, the XLA memory fraction, the CPU thread limit) and never imports jax itself.
Protocol: one JSON job per line on stdin; one JSON result per line on the file descriptor that was
stdout at start (anything else the process prints goes to stderr). EOF on stdin: exit.

Signals: SIGINT is ignored (a terminal's Ctrl-C reaches the whole process group; the driver decides
what stops). SIGTERM abandons the job in flight: it is logged, no row is written (rows are renamed
into place only when complete), and the process exits with status 143. If the driver dies, the
kernel kills this process (SIGKILL, Linux parent-death signal: even in the middle of an XLA
compilation), so no worker outlives its sweep; rows are renamed into place, so none is partial.

Jax runs here in float32 semantics whatever the parent had: `jax_enable_x64` is switched off
before any array exists (importing lawfit switches it on in the `lawfit` process).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys

__all__ = ["main"]


def _parent_death_signal() -> None:
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Serve jobs from stdin until EOF; returns the exit status (143 when abandoned)."""
    ap = argparse.ArgumentParser(prog="python -m runners.sweep.worker")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--slot", type=int, default=0)
    ap.add_argument("--ppid", type=int, default=0)
    a = ap.parse_args(argv)
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints (absl, orbax) go to stderr, never into the protocol
    from .execute import Abandoned, abandon, execute_logged, init_worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, abandon)
    _parent_death_signal()
    if a.ppid and os.getppid() != a.ppid:  # the driver died before the death signal was armed
        return 143
    init_worker(a.threads or None, a.slot)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            job = json.loads(line)
            res = execute_logged(job)
            proto.write(json.dumps(res) + "\n")
            proto.flush()
    except Abandoned:
        return 143
    return 0


if __name__ == "__main__":
    sys.exit(main())
