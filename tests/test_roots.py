"""The root finder's promise, every root or none, where f is exactly zero on a grid point."""
from __future__ import annotations

import numpy as np
import pytest

from lawfit.analysis.roots import find_roots, find_roots_batch


@pytest.mark.parametrize("side", [+1, -1])
def test_exact_zero_on_the_grid_and_a_second_root_next_to_it(side):
    grid = np.linspace(0.0, 1.0, 11)
    t0 = grid[5]
    t1 = t0 + side * 0.03                       # a second root inside the adjacent interval
    f = lambda t: (t - t0) * (t - t1)           # noqa: E731
    roots = find_roots(f, grid)
    got = sorted((round(r.t, 9), r.direction) for r in roots)
    lo, hi = sorted((t0, t1))
    assert got == [(round(lo, 9), -1), (round(hi, 9), +1)]       # f > 0 outside, < 0 between
    batch = find_roots_batch(lambda rows, t: f(t), grid, f(grid)[None, :])
    assert [(round(r.t, 9), r.direction) for r in batch[0]] == got


def test_exact_zero_at_the_last_grid_point_takes_its_direction_from_below():
    grid = np.linspace(0.0, 1.0, 11)
    roots = find_roots(lambda t: grid[-1] - t, grid)         # positive below, zero at the end
    assert [(r.t, r.direction) for r in roots] == [(grid[-1], -1)]


def test_a_simple_exact_zero_is_one_root_with_its_direction():
    grid = np.linspace(0.0, 1.0, 11)
    roots = find_roots(lambda t: t - grid[3], grid)
    assert [(r.t, r.direction) for r in roots] == [(grid[3], +1)]
