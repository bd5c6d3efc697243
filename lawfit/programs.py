"""Traced programs kept between processes.

A new ``lawfit`` process spends most of a small fit tracing and lowering the solver's jitted
programs: jax's persistent compilation cache skips the XLA compilation, not the tracing (measured on
the Epoch table's fit: about 1.2 of 1.7 s of the first call traced and lowered ``start``/``advance``
with a warm compilation cache). :func:`cached` keeps a jitted function's traced program
(``jax.export``) on disk, keyed by everything it depends on, and a later process calls the
deserialized program instead; its compilation then comes from the compilation cache.

Off unless a directory is set (:func:`set_directory`; the command line sets one beside its XLA
cache, the library leaves it off). The key covers the caller's key (what the function closes
over), the arguments' tree, shapes and dtypes, lawfit's own source files, the jax and jaxlib
versions, the backend and the x64 flag; a file that cannot be read or deserialized is ignored (the
function is traced as usual). The files are jax's serialized StableHLO, written by lawfit into the
user's own cache: data, never executed as Python.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import jax

__all__ = ["cached", "set_directory"]

_DIRECTORY: Path | None = None


def set_directory(path: str | os.PathLike | None) -> None:
    """Keep traced programs in ``path`` (created if needed); None turns the cache off."""
    global _DIRECTORY
    if path is None:
        _DIRECTORY = None
        return
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError:
        _DIRECTORY = None
        return
    _DIRECTORY = p


@lru_cache(maxsize=None)
def _source_hash() -> str:
    """sha256 of lawfit's own source files (a changed solver never reuses an old program)."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=None)
def _versions() -> tuple:
    from importlib import metadata
    out = []
    for dist in ("jax", "jaxlib"):
        try:
            out.append(metadata.version(dist))
        except metadata.PackageNotFoundError:
            out.append("")
    return tuple(out)


def _signature(args) -> str:
    leaves, tree = jax.tree_util.tree_flatten(args)
    return repr((str(tree), [(tuple(a.shape), str(a.dtype)) for a in leaves]))


def cached(jitted, key: tuple):
    """``jitted`` (a ``jax.jit`` function of arrays only), with its traced program per argument
    signature kept on disk while a directory is set; ``key`` names everything the function
    closes over (it must change whenever the traced program would)."""
    programs: dict = {}

    def call(*args):
        if _DIRECTORY is None:
            return jitted(*args)
        sig = _signature(args)
        f = programs.get(sig)
        if f is None:
            f = programs[sig] = _load_or_export(jitted, key, sig, args)
        return f(*args)

    return call


def _load_or_export(jitted, key, sig, args):
    from jax import export
    name = hashlib.sha256(repr((key, sig, _source_hash(), _versions(), jax.default_backend(),
                                jax.config.jax_enable_x64)).encode()).hexdigest()
    path = _DIRECTORY / f"{name}.jaxexport"
    try:
        if path.is_file():
            return jax.jit(export.deserialize(bytearray(path.read_bytes())).call)
    except Exception:             # unreadable or from another jax: trace as usual, rewrite
        pass
    try:
        exp = export.export(jitted)(*args)
        blob = exp.serialize()
    except Exception:             # not exportable (or flatbuffers missing): the plain function
        return jitted
    try:
        fd, tmp = tempfile.mkstemp(dir=_DIRECTORY, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    except OSError:
        pass
    return jax.jit(exp.call)
