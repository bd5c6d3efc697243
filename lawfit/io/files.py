"""Writing files atomically: the one routine every writer in lawfit and runners/ goes through.

A file is written under a temporary name in its own directory (a dot-file, which readers of runs
tables and artefact directories ignore), then renamed onto its final name, so a reader never sees
a partial file and an interrupted writer leaves the old file (if any) in place. Temporary names
carry the host and process id, so that :func:`remove_stale_temp` can delete those of writers that
died on this host.
"""
from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "remove_stale_temp"]

_SUFFIX = ".tmp"


def atomic_write(path: str | Path, write: Callable[[Path], object], *, durable: bool = False) -> Path:
    """Write ``path`` atomically.

    Parameters
    ----------
    path
        The final file; its directory must exist.
    write
        ``write(tmp)`` writes the whole content to the temporary path ``tmp`` (same directory).
    durable
        Also fsync the file before the rename and the directory after it, so that the file
        survives a crash of the machine (a sweep's run rows).

    Returns
    -------
    The final path. The file gets the user's usual permissions (``0o666`` less the umask). If
    ``write`` raises, the temporary file is removed and the exception propagates.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, suffix=_SUFFIX,
                                prefix=f".{path.name}__{socket.gethostname()}__{os.getpid()}__")
    os.close(fd)
    tmp = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~umask)    # mkstemp makes 0600; give the user's usual mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


def remove_stale_temp(directory: str | Path) -> int:
    """Delete the temporary files that :func:`atomic_write` calls on this host left in
    ``directory`` when their process died (killed mid-write). Returns how many were removed."""
    n, host = 0, socket.gethostname()
    for p in Path(directory).glob(f".*{_SUFFIX}"):
        parts = p.name[:-len(_SUFFIX)].rsplit("__", 3)
        if len(parts) != 4 or parts[1] != host:
            continue
        try:
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            p.unlink(missing_ok=True)
            n += 1
        except (ValueError, PermissionError):
            pass
    return n
