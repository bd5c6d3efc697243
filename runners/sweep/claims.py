"""Run claims: before a sweep starts a run it creates `<out>/.<run_id>.claim` atomically
(O_CREAT | O_EXCL, holding its host, pid and time), and removes it when the run is over (finished,
failed or abandoned). Two sweeps on one directory therefore never compute the same run: the second
finds the claim and leaves that run to the first. A claim left by a process that died on this host
is stale and is reclaimed; a claim from another host is respected (remove the file by hand if that
host's sweep is gone). Dot-files: readers of the runs table ignore them.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

__all__ = ["HOST", "claim", "claim_path", "claimed_by_others", "holder", "is_stale", "release"]

HOST = socket.gethostname()


def claim_path(out: str | Path, run_id: str) -> Path:
    """The claim file of `run_id` in the dataset directory `out`: `<out>/.<run_id>.claim`."""
    return Path(out) / f".{run_id}.claim"


def _create(p: Path) -> bool:
    try:
        fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump({"host": HOST, "pid": os.getpid(), "time": time.time()}, f)
    return True


def holder(p: Path) -> dict | None:
    """The claim's {"host", "pid", "time"}, {} if unreadable (being written), None if absent."""
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(info: dict | None) -> bool:
    """A claim by a process of this host that no longer exists."""
    return bool(info) and info.get("host") == HOST and isinstance(info.get("pid"), int) and not _alive(info["pid"])


def claim(out: str | Path, run_id: str) -> bool:
    """Claim `run_id` for this process.

    Parameters
    ----------
    out
        The sweep's dataset directory.
    run_id
        The run to claim.

    Returns
    -------
    bool
        True if this process now holds the claim (a stale claim of a dead process on this host is
        taken over); False if another live process, or another host, holds it.
    """
    p = claim_path(out, run_id)
    if _create(p):
        return True
    info = holder(p)
    if info is None:        # released meanwhile
        return _create(p)
    if not is_stale(info):
        return False
    # reclaim: one reclaimer at a time (its own O_EXCL file), and only if the claim is still the stale one
    guard = p.with_name(p.name + ".reclaim")
    if not _create(guard):
        g = holder(guard)
        try:
            age = time.time() - guard.stat().st_mtime
        except FileNotFoundError:
            age = 0.0
        if g is not None and not (is_stale(g) or (g == {} and age > 60)):
            return False
        guard.unlink(missing_ok=True)
        if not _create(guard):
            return False
    try:
        if holder(p) == info:
            p.unlink(missing_ok=True)
        return _create(p)
    finally:
        guard.unlink(missing_ok=True)


def release(out: str | Path, run_id: str) -> None:
    """Remove this process's claim on `run_id` in `out` (a claim held by another process is left alone)."""
    p = claim_path(out, run_id)
    info = holder(p)
    if info and info.get("host") == HOST and info.get("pid") == os.getpid():
        p.unlink(missing_ok=True)


def claimed_by_others(out: str | Path) -> dict[str, dict]:
    """run_id -> holder for every live claim in `out` that is not this process's."""
    res = {}
    for p in Path(out).glob(".*.claim"):
        info = holder(p)
        if info is None or is_stale(info) or (info.get("host") == HOST and info.get("pid") == os.getpid()):
            continue
        res[p.name[1:-len(".claim")]] = info
    return res
