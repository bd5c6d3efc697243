"""Every root of a scalar function over a stated grid, or none: the root finder of critical.py
(where two loss curves cross in log D) as pure functions, with no knowledge of laws or fits.

The search is exhaustive over the grid: f is evaluated at every grid point, every sign change is
refined to a root (Brent's method for one function, a vectorised bisection for many rows at
once), a grid point where f is exactly zero is a root, and every interior local minimum of |f|
that does not change sign but dips towards zero is examined by a bounded minimisation, so that a
pair of roots closer together than the grid spacing is not missed. No root in the range is an
empty tuple, never an unchecked solver's answer.

Each root carries its *direction*: the sign of f just above it (+1: f goes from negative to
positive). :func:`match_roots` pairs roots of a perturbed function (e.g. a parameter draw's) with
reference roots of the same direction.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from lawfit.errors import DataError

__all__ = ["Root", "POINTS_PER_E", "BISECT_TOL", "log_grid", "find_roots", "find_crossings",
           "find_roots_batch", "match_roots"]

POINTS_PER_E = 64          # default grid points per unit of log (~147 per decade)
BISECT_TOL = 1e-12         # bisection tolerance of find_roots_batch, in grid units


class Root(NamedTuple):
    """One root: ``t`` where f(t) = 0, and ``direction``, the sign of f just above it."""
    t: float
    direction: int


def log_grid(lo: float, hi: float, points_per_e: int = POINTS_PER_E) -> np.ndarray:
    """An evenly spaced grid of t = log D over ``lo <= D <= hi``.

    Parameters
    ----------
    lo, hi : float
        The searched range, ``0 < lo < hi < inf``.
    points_per_e : int
        Grid points per unit of log D (at least 16 points in all).

    Returns
    -------
    numpy.ndarray
        Ascending grid of log D, from log(lo) to log(hi).
    """
    if not (0 < lo < hi and math.isfinite(hi)):
        raise DataError(f"the D search range must satisfy 0 < lo < hi < inf, got {(lo, hi)}")
    n = max(int(math.ceil((math.log(hi) - math.log(lo)) * points_per_e)) + 1, 16)
    return np.linspace(math.log(lo), math.log(hi), n)


def find_roots(f: Callable[[float], float], grid: np.ndarray, values: np.ndarray | None = None,
               xtol: float = 1e-13) -> tuple[Root, ...]:
    """Every root of the scalar function ``f`` on ``grid``.

    Sign changes between grid points are refined by Brent's method. Where |f| has an interior
    local minimum on the grid without a sign change, the minimum of f (or of -f) over the two
    adjacent intervals is located by a bounded minimisation; if f changes sign there, both roots
    are bracketed and refined. A grid point where f is exactly zero is a root, and both intervals
    next to it are searched for a root of their own.

    Parameters
    ----------
    f : callable
        ``f(t) -> float``.
    grid : numpy.ndarray
        Ascending, evenly spaced points.
    values : numpy.ndarray, optional
        ``f`` at the grid points, when already computed.
    xtol : float
        Absolute tolerance of the refinement.

    Returns
    -------
    tuple of Root
        Ascending in t; empty when f has no root on the grid's range.
    """
    t = np.asarray(grid, np.float64)
    v = np.array([f(ti) for ti in t]) if values is None else np.asarray(values, np.float64)
    s = np.sign(v)
    out = []
    for i in range(len(t) - 1):
        if s[i] * s[i + 1] < 0:
            out.append(Root(float(brentq(f, t[i], t[i + 1], xtol=xtol,
                                         rtol=4 * np.finfo(float).eps, maxiter=200)),
                            int(s[i + 1])))
    for i in np.nonzero(s == 0)[0]:
        out.extend(_around_zero(f, t, v, int(i), xtol))
    # near-tangencies: |f| dips between two grid points without a sign change
    for i in np.nonzero(_dips(t, v))[0] + 1:
        sign = s[i]
        res = minimize_scalar(lambda u: sign * f(u), bounds=(t[i - 1], t[i + 1]),
                              method="bounded", options={"xatol": 1e-12})
        if sign * res.fun < 0:
            m = res.x
            out.append(Root(float(brentq(f, t[i - 1], m, xtol=xtol)), int(-sign)))
            out.append(Root(float(brentq(f, m, t[i + 1], xtol=xtol)), int(sign)))
    return _distinct(out, 10 * xtol)


def _around_zero(f: Callable[[float], float], t: np.ndarray, v: np.ndarray, i: int,
                 xtol: float) -> list[Root]:
    """The roots at and next to a grid point where f is exactly zero: the point itself (its
    direction read just above it, or just below where it is the last point), and a root inside
    either adjacent interval when f leaves zero on one side of the interval's far end and
    arrives from the other (f = (t - t_i)(t - t_i - h/3) has two roots in [t_i, t_i + h])."""
    step = 1e-6 * (t[1] - t[0])
    out = []
    above = float(np.sign(f(t[i] + step))) if i + 1 < len(t) else 0.0
    below = float(np.sign(f(t[i] - step))) if i > 0 else 0.0
    out.append(Root(float(t[i]), int(above or -below or 1)))
    if i + 1 < len(t) and above * np.sign(v[i + 1]) < 0:
        out.append(Root(float(brentq(f, t[i] + step, t[i + 1], xtol=xtol)), int(np.sign(v[i + 1]))))
    if i > 0 and below * np.sign(v[i - 1]) < 0:
        out.append(Root(float(brentq(f, t[i - 1], t[i] - step, xtol=xtol)), int(below)))
    return out


def _distinct(roots: list[Root], tol: float) -> tuple[Root, ...]:
    """Sorted, each root once: two neighbouring grid points with equal |f| are both local minima,
    and both searches find the same pair of roots."""
    out: list[Root] = []
    for r in sorted(roots):
        if out and r.direction == out[-1].direction and abs(r.t - out[-1].t) <= tol:
            continue
        out.append(r)
    return tuple(out)


def find_crossings(curve_a: Callable[[float], float], curve_b: Callable[[float], float],
                   grid: np.ndarray) -> tuple[Root, ...]:
    """Every crossing of two curves on ``grid``: the roots of ``curve_a - curve_b``.

    Parameters
    ----------
    curve_a, curve_b : callable
        ``curve(t) -> float``.
    grid : numpy.ndarray
        Ascending, evenly spaced points.

    Returns
    -------
    tuple of Root
        Ascending; ``direction`` +1 where curve a lies above curve b just above the crossing.
    """
    return find_roots(lambda t: curve_a(t) - curve_b(t), grid)


def _dips(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(..., N-2) True at interior grid points where |f| has a local minimum without a sign change
    and the parabola through the three points dips below a tenth of |f| there: a pair of roots
    may hide between grid points. A smooth minimum well away from zero is not a dip."""
    s, a = np.sign(v), np.abs(v)
    m = ((s[..., :-2] == s[..., 1:-1]) & (s[..., 1:-1] == s[..., 2:]) & (s[..., 1:-1] != 0)
         & (a[..., 1:-1] <= a[..., :-2]) & (a[..., 1:-1] <= a[..., 2:]))
    h = t[1] - t[0]
    curv = (a[..., :-2] - 2 * a[..., 1:-1] + a[..., 2:]) / h ** 2          # uniform grid
    grad = (a[..., 2:] - a[..., :-2]) / (2 * h)
    with np.errstate(divide="ignore", invalid="ignore"):
        low = a[..., 1:-1] - np.where(curv > 0, grad ** 2 / (2 * curv), 0.0)
    return m & (low < 0.1 * a[..., 1:-1])


def find_roots_batch(f_rows: Callable[[np.ndarray, np.ndarray], np.ndarray], grid: np.ndarray,
                     values: np.ndarray, tol: float = BISECT_TOL) -> list[tuple[Root, ...]]:
    """Every root of each of many functions (rows) on one grid.

    Brackets of all rows are refined together by bisection to ``tol``; rows with an exact zero
    on the grid or a near-tangency between grid points are handled one by one as in
    :func:`find_roots`.

    Parameters
    ----------
    f_rows : callable
        ``f_rows(rows, t) -> f``: row ``rows[i]``'s function at ``t[i]``, pointwise.
    grid : numpy.ndarray
        Ascending, evenly spaced points (N,).
    values : numpy.ndarray
        (B, N): every row's function at the grid points.
    tol : float
        Bisection tolerance.

    Returns
    -------
    list of tuple of Root
        Per row, its roots ascending.
    """
    t = np.asarray(grid, np.float64)
    s = np.sign(values)
    rows, cols = np.nonzero(s[:, :-1] * s[:, 1:] < 0)
    lo, hi = t[cols].copy(), t[cols + 1].copy()
    f_lo = values[rows, cols]
    while len(rows) and np.max(hi - lo) > tol:
        mid = 0.5 * (lo + hi)
        fm = f_rows(rows, mid)
        left = np.sign(fm) == np.sign(f_lo)
        lo = np.where(left, mid, lo)
        f_lo = np.where(left, fm, f_lo)
        hi = np.where(left, hi, mid)
    roots = 0.5 * (lo + hi)
    out: list = [[] for _ in range(len(values))]
    for r, c, root in zip(rows, cols, roots):
        out[r].append(Root(float(root), int(s[r, c + 1])))
    out = [tuple(o) for o in out]
    # exact zeros on the grid and near-tangencies between grid points, handled exactly per row
    zero_rows = np.nonzero((s == 0).any(axis=1))[0]
    dip = _dips(t, values)
    for r in sorted(set(zero_rows) | set(np.nonzero(dip.any(axis=1))[0])):
        out[r] = find_roots(lambda u, r=r: float(f_rows(np.array([r]), np.array([u]))[0]), t,
                            values[r])
    return out


def match_roots(reference: Sequence[Root], roots: Sequence[Root]) -> list[float | None]:
    """Match each reference root to one root of the same direction: the nearest, greedily in
    order of distance, each root used once.

    Parameters
    ----------
    reference : sequence of Root
        E.g. the roots at the point estimate.
    roots : sequence of Root
        E.g. one draw's roots.

    Returns
    -------
    list of float or None
        Per reference root, the matched root's t, or None when no root of its direction is left.
    """
    pairs = sorted((abs(dr - er), i, j) for i, (er, ed) in enumerate(reference)
                   for j, (dr, dd) in enumerate(roots) if dd == ed)
    out: list = [None] * len(reference)
    used = set()
    for _, i, j in pairs:
        if out[i] is None and j not in used:
            out[i] = roots[j][0]
            used.add(j)
    return out
