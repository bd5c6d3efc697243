"""Many fits in one compiled program: the groups of a ``fit`` call advance together.

A fit call with ``--by`` has one least-squares problem per group (every task x method x model,
every checkpoint, ...). Fitted one by one, each is a separate Python-level multi-start with its
own dispatches; here they are stacked instead:

* groups are bucketed by shape: the objective (law and objective), the number of free parameters,
  the number of starts, and the number of runs padded to one of a few sizes
  (:func:`lawfit.lsq.padded_runs`; padded runs have weight 0, so they contribute exactly nothing);
* within a bucket, chunks of groups are stacked on a leading axis and run through the solver of
  :mod:`lawfit.lsq` (``jax.vmap`` over groups of ``jax.vmap`` over starts): screening of every
  start of every group, then the best starts of all groups of the chunk are refined as one batch
  of rows that is compacted as rows converge (each start keeps its own convergence test);
* chunk sizes follow a memory budget, so the peak memory does not grow with the number of groups.

Each group's result is the one :func:`lawfit.lsq.multistart` gives for it alone (a row's
trajectory depends only on its own start and data); ``tests/test_batch.py`` checks this.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from . import lsq

__all__ = ["BUDGET", "multistart_many"]

BUDGET = 1 << 21    # elements of one (starts x runs x terms) intermediate per screening chunk
ROW_BYTES = 64 << 20    # bytes of per-row data in one refinement batch


def _pow2_floor(n: int) -> int:
    return 1 << max(0, int(n).bit_length() - 1)


def multistart_many(problems: Sequence[lsq.Problem], starts: Sequence[np.ndarray], *,
                    screen_steps: int = lsq.SCREEN_STEPS, keep: int | None = None,
                    max_steps: int = lsq.MAX_STEPS, budget: int = BUDGET,
                    progress=None) -> list[lsq.MultiStart]:
    """:func:`lawfit.lsq.multistart` of many problems, batched.

    Parameters
    ----------
    problems : the fits (any laws, objectives, frozen parameters, sizes).
    starts : one (S_i, F_i) array of start vectors per problem.
    screen_steps, keep, max_steps : as for :func:`lawfit.lsq.multistart`.
    budget : elements of one (starts x runs x terms) intermediate array per screening chunk; the
        chunk sizes, and so the peak memory, follow from it.
    progress : optional ``progress(done, total)`` called after each chunk (groups done).

    Returns
    -------
    list of :class:`lawfit.lsq.MultiStart`, in the order of ``problems``.
    """
    if len(problems) != len(starts):
        raise ValueError("one start array per problem")
    prepared, buckets = [], {}
    for i, (p, s) in enumerate(zip(problems, starts)):
        data, w = p.arrays()
        s = np.asarray(s, np.float64)
        if s.ndim != 2 or s.shape[1] != p.n_free:
            raise ValueError(f"starts of problem {i} must be (S, {p.n_free})")
        fns = p.fns()
        key = (fns, s.shape, tuple(np.shape(a) for a in data))
        buckets.setdefault(key, []).append(i)
        prepared.append((data, w, p.lower_bounds(), s))
    out: list = [None] * len(problems)
    done = 0
    for (fns, (n_starts, _), shapes), members in buckets.items():
        m, k_terms = shapes[0][0], (shapes[0][1] if len(shapes[0]) > 2 else 1)
        per_group = n_starts * m * k_terms
        screen = _pow2_floor(max(1, budget // per_group))
        k = min(n_starts, keep or max(32, int(np.ceil(0.02 * n_starts))))
        row_bytes = 8 * sum(int(np.prod(sh)) for sh in shapes) + 8 * m
        chunk = max(screen, _pow2_floor(max(1, ROW_BYTES // (row_bytes * k))))
        chunk = min(chunk, 1 << int(len(members) - 1).bit_length())   # no more than needed
        screen = min(screen, chunk)
        for lo in range(0, len(members), chunk):
            idx = members[lo: lo + chunk]
            # a short last chunk is padded with repeats of its last group (one compiled shape)
            pad = idx + [idx[-1]] * (chunk - len(idx))
            data = jax.tree_util.tree_map(lambda *a: np.stack([np.asarray(x) for x in a]),
                                          *[prepared[i][0] for i in pad])
            res = lsq.multistart_arrays(
                fns, data, np.stack([prepared[i][1] for i in pad]),
                np.stack([prepared[i][2] for i in pad]), np.stack([prepared[i][3] for i in pad]),
                screen_steps=screen_steps, keep=k, max_steps=max_steps, flat=True,
                screen_chunk=screen)
            for i, r in zip(idx, res):
                out[i] = r
            done += len(idx)
            if progress is not None:
                progress(done, len(problems))
    return out
