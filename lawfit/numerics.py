"""``lawfit.numerics``: float64 for lawfit's own computations, scoped, never switched on globally.

Fitting needs float64 (a Newton decrement tested against 1e-12 of the objective, losses that differ
in the fifth digit). Importing lawfit does not touch jax's process-wide ``jax_enable_x64``: a
program that trains in float32 (runners/, or a user's own jax code) keeps its precision. Instead
every entry point of lawfit that computes with jax (fit, bootstrap, the Bayesian fitter, critical
points, predictions, ...) runs inside ``jax.enable_x64(True)`` through the :func:`float64`
decorator.

Two rules keep the scope honest:

- arrays handed to jax are created *inside* the scope (a ``jnp.asarray`` of float64 data outside
  it is float32); lawfit's functions take numpy arrays and convert them inside;
- jitted functions may be cached across calls: jax keys its compilation cache on the x64 setting,
  so a function traced in float64 is never reused in float32 or the other way round.
"""
from __future__ import annotations

import functools
from typing import Callable, TypeVar

__all__ = ["float64", "x64_enabled"]

F = TypeVar("F", bound=Callable)


def x64_enabled() -> bool:
    """True where jax computes in float64 here and now (the process setting or an enclosing
    ``jax.enable_x64`` scope)."""
    import jax
    return bool(jax.config.jax_enable_x64)


def float64(fn: F) -> F:
    """Decorator: run ``fn`` with jax in float64 (``jax.enable_x64(True)``), restoring the caller's
    setting afterwards; a no-op where float64 is on already (nested calls, traced code).

    Parameters
    ----------
    fn : callable
        A function that computes with jax and returns numpy values (or jax arrays computed inside).

    Returns
    -------
    callable
        ``fn`` wrapped.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import jax  # imported on first use: importing lawfit starts no jax backend
        if jax.config.jax_enable_x64:
            return fn(*args, **kwargs)
        with jax.enable_x64(True):
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
