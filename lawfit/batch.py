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

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from . import lsq
from .laws import Law
from .numerics import float64
from .problem import GroupProblem, grid_starts
from .progress import counted

__all__ = ["BUDGET", "KEEP", "batchable", "bootstrap_many", "multistart_many", "solve_groups",
           "solve_many"]

KEEP = 4            # starts per fit that solve_many refines after screening
REFINE = 2          # projection screening: exponent grid spacing divided by this
IRLS_STEPS = 3      # reweighted least-squares steps of projection screening (loss-space objectives)
PRESELECT = 32      # projection screening: candidates per fit reweighted (the best by least squares)
# refinement stops a start that gained less than 1e-3 of its objective in 32 steps, from step 128
# on (lsq.iterate's stall): on 2,000 simulated finetuning curves such starts crawled along a valley
# towards E -> 0 for 1,000 steps (49% of all refinement steps) before the boundary stage solved
# their fit; the optima of 500 curves compared with lsq.multistart's were unchanged
STALL = (128, 1e-3)
SCREEN_BUDGET = 1 << 24     # elements of one (groups x starts x runs x terms) screening array

BUDGET = 1 << 21    # elements of one (starts x runs x terms) intermediate per screening chunk
ROW_BYTES = 64 << 20    # bytes of per-row data in one refinement batch
UNIT_ROWS = 8       # bootstrap_many: refits (of one problem) that share one copy of its data


def _pow2_floor(n: int) -> int:
    return 1 << max(0, int(n).bit_length() - 1)


@float64
def multistart_many(problems: Sequence[lsq.Problem], starts: Sequence[np.ndarray], *,
                    screen_steps: int = lsq.SCREEN_STEPS, keep: int | None = None,
                    max_steps: int = lsq.MAX_STEPS, budget: int = BUDGET,
                    progress=None) -> list[lsq.LsqFit]:
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
    list of :class:`lawfit.lsq.LsqFit`, in the order of ``problems``.
    """
    if len(problems) != len(starts):
        raise ValueError("one start array per problem")
    prepared, buckets = [], {}
    for i, (p, s) in enumerate(zip(problems, starts)):
        data, w = lsq.solver_arrays(p)
        s = np.asarray(s, np.float64)
        if s.ndim != 2 or s.shape[1] != p.n_free:
            raise ValueError(f"starts of problem {i} must be (S, {p.n_free})")
        fns = lsq.objective_fns(p)
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


# --- screening, then Newton on the survivors: solve_many ------------------------------------------

def _projectable(p: lsq.Problem) -> bool:
    """Whether a problem's starts can be screened by projection: a law with linear parameters
    (``basis_fn``), an objective in loss space (where the law is linear in them), a plain layout
    (every run's slots are the law's parameters in order, nothing frozen) and finite log
    variables."""
    law = p.law
    return (law.basis_fn is not None and law.analytic and p.objective.space == "loss"
            and p.fixed.size == 0
            and p.n_free == law.n_params
            and bool(np.all(p.slots == np.arange(law.n_params)))
            and bool(np.all(np.isfinite(p.log_vars))))


@lru_cache(maxsize=None)
def _projection(law: Law, objective, fns, irls_steps: int = IRLS_STEPS, shared: bool = True):
    """jit: for G problems x E exponent vectors, the weighted least-squares linear parameters
    (clamped to the scale floor) after ``irls_steps`` reweighted steps, the full internal
    parameter vector, and its objective (float64).

    Arguments: exps (E, n_nonlinear) shared by the problems (``shared``) or (G, E, n_nonlinear),
    keep (L,) 1 for a linear parameter solved, 0 for one held at its floor (a column dropped),
    lv (G, M, V), y (G, M), w (G, M), lb (G, P), data (G, ...).
    """
    value = fns[0]
    lin = np.array([law.params.index(q) for q in law.linear])
    non = np.array([law.params.index(q) for q in law.nonlinear])
    lin_log = np.array([q in law.log_params for q in law.linear])
    n_lin = len(lin)

    def solve(phi, y, w):
        # weighted normal equations, solved by unrolled Gaussian elimination (L <= 3 or so:
        # elementwise operations vectorise over candidates, a LAPACK call per candidate does not)
        a = phi * w[:, None]
        gram = [[jnp.sum(a[:, i] * phi[:, j]) for j in range(n_lin)] for i in range(n_lin)]
        rhs = [jnp.sum(a[:, i] * y) for i in range(n_lin)]
        ridge = 1e-12 * sum(gram[i][i] for i in range(n_lin)) / n_lin + 1e-300
        for i in range(n_lin):
            gram[i][i] = gram[i][i] + ridge
        for i in range(n_lin):
            for r in range(i + 1, n_lin):
                m = gram[r][i] / gram[i][i]
                gram[r] = [gram[r][j] - m * gram[i][j] for j in range(n_lin)]
                rhs[r] = rhs[r] - m * rhs[i]
        x = [None] * n_lin
        for i in reversed(range(n_lin)):
            x[i] = (rhs[i] - sum(gram[i][j] * x[j] for j in range(i + 1, n_lin))) / gram[i][i]
        return jnp.stack(x)

    def one(exps, keep, lv, y, w, lb, data):
        phi = law.basis_fn(exps, lv) * keep               # (M, L); a dropped column: its floor
        coef = solve(phi, y, w)
        # the objective's own linear parameters at these exponents, by IRLS from least squares
        # (weights rho'(r) / r): a Huber or l1 profile ranks exponents as the fit will
        for _ in range(irls_steps):
            r = phi @ coef - y
            _, d1, d2 = objective.derivatives(r)
            small = jnp.abs(r) < 1e-12
            coef = solve(phi, y, w * jnp.where(small, d2, d1 / jnp.where(small, 1.0, r)))
        floor = jnp.exp(lb[lin])
        coef = jnp.where(lin_log, jnp.log(jnp.maximum(coef, floor)), coef)
        theta = jnp.zeros(len(law.params), lb.dtype).at[non].set(exps).at[lin].set(coef)
        theta = jnp.maximum(theta, lb)
        return theta, value(theta, w, data)

    per_group = jax.vmap(one, in_axes=(0, None, None, None, None, None, None))
    return jax.jit(jax.vmap(per_group, in_axes=(None if shared else 0, None, 0, 0, 0, 0, 0)))


@lru_cache(maxsize=None)
def _values32(fns):
    """jit: objective values of G problems at S starts each, (G, S), in the dtype of its inputs
    (float32 for screening)."""
    return jax.jit(jax.vmap(jax.vmap(fns[0], in_axes=(0, None, None)), in_axes=(0, 0, 0)))


def _float32(tree):
    return jax.tree_util.tree_map(
        lambda a: np.asarray(a, np.float32) if np.issubdtype(np.asarray(a).dtype, np.floating)
        else np.asarray(a), tree)


def _floor_masks(law: Law) -> list[np.ndarray]:
    """Projection masks with one scale held at its floor (effectively 0), one per linear
    log-scale parameter of a law with several linear parameters: the candidates of a fit whose
    optimum lies on that boundary (e.g. E -> 0 when the data cannot separate E from A X^-alpha)."""
    if len(law.linear) < 2:
        return []
    return [np.array([0.0 if q == p else 1.0 for q in law.linear]) for p in law.linear
            if p in law.log_params]


def _screen(fns, probs, data, w, lb, starts, keep: int, boundary: bool = False):
    """The ``keep`` most promising starts of each of G problems of one bucket: (G, keep, F), and
    how they were screened (``{"screening": method, "screened": candidates per problem}``).

    Projection (laws with linear parameters, plain layouts): every distinct vector of the
    nonlinear parameters (exponents) among the starts gets the weighted least-squares values of
    the linear ones (the scales at their floor if negative); the ``PRESELECT`` best by the
    objective there get ``IRLS_STEPS`` reweighted steps (the objective's own linear parameters),
    and are ranked by the objective itself in float64. (Reweighting every candidate cost 3/4 of
    the screening; on 2,000 simulated curves, reweighting the best 32 of 121 changed the optimum
    found in 3 curves: 2 higher, by up to 1.1%, 1 lower.) With ``boundary``, the candidates are
    instead those with one scale held at its floor (:func:`_floor_masks`). Otherwise every start's objective is
    evaluated in float32 (one evaluation per start, no derivatives) and the lowest ``keep`` are
    kept.
    """
    g, s, f_ = starts.shape
    if all(_projectable(p) for p in probs) and all(np.array_equal(starts[0], x) for x in starts):
        law = probs[0].law
        non = [law.params.index(q) for q in law.nonlinear]
        exps = _exponent_candidates(starts[0][:, non])
        m = len(w[0])
        lv = np.zeros((g, m, probs[0].log_vars.shape[1]))
        y = np.ones((g, m))
        for i, p in enumerate(probs):
            lv[i, : p.n] = p.log_vars
            y[i, : p.n] = p.y
        ls = _projection(law, probs[0].objective, fns, 0)
        irls = _projection(law, probs[0].objective, fns, IRLS_STEPS, False)
        masks = _floor_masks(law) if boundary else [np.ones(len(law.linear))]
        thetas, fs = [], []
        arrays = (lv, y, np.asarray(w), np.asarray(lb), jax.tree_util.tree_map(np.asarray, data))
        for keep_cols in masks:
            # every candidate projected by least squares; the PRESELECT best of each problem
            # (by the objective there) reweighted IRLS_STEPS times
            t, f = ls(exps, keep_cols, *arrays)
            f = np.where(np.isfinite(f), np.asarray(f), np.inf)
            if IRLS_STEPS:
                pre = np.argsort(f, axis=1, kind="stable")[:, :PRESELECT]
                t, f = irls(exps[pre], keep_cols, *arrays)
            thetas.append(np.asarray(t))
            fs.append(np.asarray(f))
        if boundary:      # the best of each boundary alike (one boundary's may all be worse)
            sel = [np.argsort(np.where(np.isfinite(f), f, np.inf), axis=1,
                              kind="stable")[:, :keep] for f in fs]
            thetas = [t[np.arange(g)[:, None], i] for t, i in zip(thetas, sel)]
            fs = [f[np.arange(g)[:, None], i] for f, i in zip(fs, sel)]
            keep = keep * len(masks)
        theta, f = np.concatenate(thetas, axis=1), np.concatenate(fs, axis=1)
        how = {"screening": "projected", "screened": len(exps) * len(masks)}
    else:
        f = np.asarray(_values32(fns)(np.asarray(starts, np.float32),
                                      np.asarray(w, np.float32), _float32(data)), np.float64)
        theta = starts
        how = {"screening": "float32 values", "screened": s}
    f = np.where(np.isfinite(f), f, np.inf)
    k = min(keep, f.shape[1])
    best = np.argsort(f, axis=1, kind="stable")[:, :k]
    return theta[np.arange(g)[:, None], best], how


def _exponent_candidates(exps: np.ndarray) -> np.ndarray:
    """Exponent vectors that projection screening tries: on every axis the starts' distinct
    values and REFINE - 1 evenly spaced values between neighbours, all combinations (the scales are solved, so a
    finer exponent grid costs little and keeps a narrow basin from falling between grid points)."""
    axes = []
    for col in exps.T:
        v = np.unique(col)
        fill = [v[:-1] + (v[1:] - v[:-1]) * t for t in np.arange(1, REFINE) / REFINE]
        axes.append(np.sort(np.concatenate([v, *fill])))
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, exps.shape[1])


@float64
def solve_many(problems: Sequence[lsq.Problem], starts: Sequence[np.ndarray], *,
               keep: int = KEEP, max_steps: int = lsq.MAX_STEPS,
               budget: int = SCREEN_BUDGET, progress=None) -> list[lsq.LsqFit]:
    """Many fits at once: a cheap screening of every fit's starts, then batched Newton on the best
    ``keep`` starts of each.

    Unlike :func:`multistart_many` (and :func:`lawfit.lsq.multistart`), which take damped Newton
    steps from every start before choosing, the screening here costs one objective evaluation per
    candidate (see :func:`_screen`: projection of the linear parameters, or float32 values). The
    survivors of all fits of a bucket are then refined as one batch of rows, each to its own
    convergence test, the batch compacted as rows finish (:func:`lawfit.lsq.iterate`); the best
    *converged* start of each fit wins (:func:`lawfit.lsq.best_of`). Groups are bucketed by shape
    (objective, runs padded to :func:`lawfit.lsq.padded_runs`, number of starts) and processed in
    chunks whose screening arrays hold at most ``budget`` elements, so memory stays bounded
    however many fits there are.

    A fit none of whose refined starts converged is solved again, in two stages, keeping the
    better result (converged first, then the lower objective):

    1. ``"boundary"``: projection candidates with one scale held at its floor
       (:func:`_floor_masks`), screened and refined the same way. Measured on 1,000 simulated
       finetuning curves: the 1.7% whose screened starts did not converge mostly have their
       optimum at E -> 0 (the data cannot tell E from A X^-alpha), which Newton approaches along
       a curved valley in log E for 1,000 steps; from the boundary it converges in 6-30.
    2. ``"multistart"``: those still not converged get :func:`multistart_many` (damped Newton
       steps from every start before choosing): the cheap screening can miss the basin of the
       optimum (curve 412 of the benchmark ended 1.2-10x above it).

    Parameters
    ----------
    problems : the fits (any laws, objectives, frozen parameters, sizes).
    starts : one (S_i, F_i) array of start vectors per problem.
    keep : starts per fit refined after screening.
    max_steps : Newton steps at most per start.
    budget : elements of one (groups x starts x runs x terms) screening array; the chunk size.
    progress : optional ``advance(n)`` called with the number of fits each chunk completes.

    Returns
    -------
    list of :class:`lawfit.lsq.LsqFit`, in the order of ``problems``; each records in
    ``info["batch"]`` how it was screened, and for a fit whose screened starts did not converge
    which stage gave its result (``fallback``: "boundary", "multistart" or None when neither
    improved on the first result).
    """
    if len(problems) != len(starts):
        raise ValueError("one start array per problem")
    starts = [np.asarray(s, np.float64) for s in starts]
    for i, (p, s) in enumerate(zip(problems, starts)):
        if s.ndim != 2 or s.shape[1] != p.n_free:
            raise ValueError(f"starts of problem {i} must be (S, {p.n_free})")
    out = _screen_and_refine(problems, starts, keep, max_steps, budget, progress)
    tried: dict[int, list] = {}
    lowest = {i: r.value for i, r in enumerate(out) if not r.converged}

    def better(i, r, stage):
        tried.setdefault(i, [])
        lowest[i] = min(lowest[i], r.value)
        if (r.converged, -r.value) > (out[i].converged, -out[i].value):
            out[i] = replace(r, info=out[i].info)
            tried[i].append(stage)

    again = [i for i in lowest if _projectable(problems[i]) and _floor_masks(problems[i].law)]
    if again:
        redo = _screen_and_refine([problems[i] for i in again], [starts[i] for i in again],
                                  keep, max_steps, budget, None, boundary=True)
        for i, r in zip(again, redo):
            better(i, r, "boundary")
    # still not converged, or converged above a point an earlier stage passed through (a boundary
    # optimum below which an interior one lies)
    again = [i for i in lowest
             if not out[i].converged or out[i].value > lowest[i] * (1 + 1e-9) + 1e-300]
    if again:
        redo = multistart_many([problems[i] for i in again], [starts[i] for i in again],
                               max_steps=max_steps)
        for i, r in zip(again, redo):
            better(i, r, "multistart")
    for i, stages in tried.items():
        out[i] = replace(out[i], info={"batch": out[i].info["batch"]
                                       | {"fallback": stages[-1] if stages else None}})
    return out


def _screen_and_refine(problems, starts, keep, max_steps, budget, progress, boundary=False):
    """solve_many's first pass (or, with ``boundary``, its first fallback stage): screening and
    batched refinement, bucket by bucket, chunk by chunk."""
    buckets: dict = {}
    for i, (p, s) in enumerate(zip(problems, starts)):
        # one bucket: one compiled program (objective, padded runs, parameters, frozen values,
        # variables), one screening (the same starts, projectable or not)
        key = (lsq.objective_fns(p), s.shape, lsq.padded_runs(p.n), p.log_vars.shape[1],
               p.slots.shape[1], len(p.fixed), _projectable(p),
               hashlib.sha1(s.tobytes()).hexdigest())
        buckets.setdefault(key, []).append(i)
    out: list = [None] * len(problems)
    for (fns, (n_starts, _), m, *_), members in buckets.items():
        law = problems[members[0]].law
        k_terms = (np.shape(law.terms_fn(jnp.zeros((1, len(law.variables)))))[1]
                   if law.analytic and lsq.ANALYTIC else 1)
        chunk = _pow2_floor(max(1, budget // (n_starts * m * k_terms)))
        chunk = max(1, min(chunk, 1 << int(len(members) - 1).bit_length()))
        for lo in range(0, len(members), chunk):
            idx = members[lo: lo + chunk]
            # a short last chunk is padded with repeats of its last group (one compiled shape)
            pad = idx + [idx[-1]] * (chunk - len(idx))
            data, w = lsq.stacked_solver_arrays([problems[i] for i in pad])
            lb = np.stack([problems[i].lower_bounds() for i in pad])
            st = np.stack([starts[i] for i in pad])
            theta0, how = _screen(fns, [problems[i] for i in pad], data, w, lb, st, keep,
                                  boundary=boundary)
            g, k, _ = theta0.shape
            rep = np.repeat(np.arange(g), k)
            data_r = jax.tree_util.tree_map(lambda a: np.asarray(a)[rep], data)
            theta, f, conv, steps = lsq.iterate(
                fns, theta0.reshape(g * k, 1, -1), np.repeat(w, k, axis=0), data_r,
                np.repeat(lb, k, axis=0), max_steps, block=lsq.BLOCK,
                abandon_after=lsq.ABANDON_AFTER, owner=rep, stall=STALL)
            fits = lsq.best_of(theta.reshape(g, k, -1), f.reshape(g, k), conv.reshape(g, k),
                               steps.reshape(g, k).max(axis=1), n_starts)
            how = how | {"refined": int(k)}
            for i, r in zip(idx, fits):
                out[i] = replace(r, info={"batch": how})
            if progress is not None:
                progress(len(idx))
    return out


def batchable(fitter: str, solver: str, joint, objective, starts) -> bool:
    """Whether a fit call's groups can be solved together by :func:`solve_groups`: least squares
    with the Newton solver, plain (not joint) layouts, an objective Newton minimises directly
    (not IRLS), and the law's start grid."""
    from .robust import needs_irls
    return (fitter == "lsq" and solver == "newton" and not joint and not needs_irls(objective)
            and isinstance(starts, str) and starts == "grid")


def solve_groups(groups: Sequence[GroupProblem], progress=None) -> list[lsq.LsqFit]:
    """The least-squares fits of many plain groups at once (:func:`solve_many` from each law's
    start grid), each with the status and warnings :func:`lawfit.lsq.lsq_status` gives it.

    Parameters
    ----------
    groups : plain (not joint) group problems (:func:`lawfit.problem.group_problem`).
    progress : optional ``progress(message)``; a counting one shows a bar over the groups.

    Returns
    -------
    list of LsqFit in the order of ``groups``.
    """
    if any(g.layout.joint for g in groups):
        raise ValueError("solve_groups fits plain (not joint) groups only")
    rng = np.random.default_rng(0)          # not drawn from: grid starts
    starts = [grid_starts(g.law, g.layout, "grid", rng) for g in groups]
    with counted(progress, "groups (batched)", len(groups), unit="group") as advance:
        fits = solve_many([g.problem for g in groups], starts, progress=advance)
    out = []
    for g, f in zip(groups, fits):
        status, warnings = lsq.lsq_status(f, g, check_grid=True)
        out.append(replace(f, status=status, warnings=tuple(warnings)))
    return out


# --- bootstrap resamples of many fits: bootstrap_many ----------------------------------------------

@float64
def bootstrap_many(problems: Sequence[lsq.Problem], candidates: Sequence[np.ndarray],
                   weights: Sequence[np.ndarray],
                   fixed_draws: Sequence[np.ndarray | None] | None = None, *,
                   max_steps: int = lsq.MAX_STEPS, row_bytes: int = ROW_BYTES,
                   progress=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`lawfit.lsq.bootstrap` (or :func:`lawfit.lsq.bootstrap_frozen`) of many problems as
    one batched program.

    Every (problem, resample, candidate) refit is one row: its candidate optimum as the start,
    its resample's weights (padded runs weight 0), its problem's solver arrays. Rows of one
    problem (and one resample, when resamples have their own frozen values) are grouped in units
    of ``UNIT_ROWS`` that share one copy of the solver arrays, and all units of a bucket are
    refined together by :func:`lawfit.lsq.iterate`, each row to its own convergence test, the
    batch compacted as units finish (no start is abandoned: every candidate of a resample runs to
    its end, as in :func:`lawfit.lsq.bootstrap`). (Units of one row, vectorised one start wide,
    were measured to stall on a few resamples whose Hessian is singular at the start where
    lsq.bootstrap's many-row batches converge: the rounding of the width-1 products differs.)
    Problems are bucketed by compiled shape (objective, padded runs, parameters, frozen values)
    and a bucket's units processed in chunks of at most ``row_bytes`` of per-unit data, so memory
    does not grow with the number of problems. A row's trajectory depends only on its own start,
    weights and data, so a problem's draws are those it gets alone, whatever else is in the
    batch.

    Parameters
    ----------
    problems : the fits (any laws, objectives, frozen parameters, sizes).
    candidates : per problem, (m_i, F_i) candidate optima of the full fit (``LsqFit.candidates``).
    weights : per problem, (B_i, N_i) resampling weights (:func:`lawfit.lsq.bootstrap_weights`).
    fixed_draws : optional, per problem None or (B_i, n_fixed_i) frozen values (internal units)
        paired with the resamples: resample b is refitted with frozen values ``fixed_draws[b]``
        (the second stage of a two-stage procedure, as :func:`lawfit.lsq.bootstrap_frozen`).
    max_steps : Newton steps at most per refit.
    row_bytes : bytes of per-unit data (solver arrays and weights) in one chunk of units.
    progress : optional ``advance(n)``, called with the number of resamples each chunk completes.

    Returns
    -------
    list of ``(draws (B_i, F_i), converged (B_i,))``, in the order of ``problems``: each
    resample's best converged refit, as :func:`lawfit.lsq.bootstrap` returns for that problem
    alone.
    """
    n = len(problems)
    if len(candidates) != n or len(weights) != n:
        raise ValueError("one candidate array and one weight array per problem")
    fixed_draws = [None] * n if fixed_draws is None else list(fixed_draws)
    if len(fixed_draws) != n:
        raise ValueError("one fixed_draws entry (or None) per problem")
    cands = [np.asarray(c, np.float64) for c in candidates]
    wts = [np.asarray(w, np.float64) for w in weights]
    base, buckets = [], {}
    for i, p in enumerate(problems):
        if cands[i].ndim != 2 or cands[i].shape[1] != p.n_free or len(cands[i]) == 0:
            raise ValueError(f"candidates of problem {i} must be (m >= 1, {p.n_free})")
        if wts[i].ndim != 2 or wts[i].shape[1] != p.n:
            raise ValueError(f"weights of problem {i} must be (B, {p.n})")
        fd = fixed_draws[i]
        if fd is not None:
            fd = fixed_draws[i] = np.asarray(fd, np.float64)
            if fd.shape != (len(wts[i]), len(p.fixed)):
                raise ValueError(f"fixed_draws of problem {i} must be ({len(wts[i])}, "
                                 f"{len(p.fixed)})")
        data, w0 = lsq.solver_arrays(p)
        base.append((tuple(np.asarray(a) for a in data), w0, p.lower_bounds()))
        key = (lsq.objective_fns(p), p.n_free, tuple(np.shape(a) for a in data))
        buckets.setdefault(key, []).append(i)
    draws = [np.full((len(w), p.n_free), np.nan) for w, p in zip(wts, problems)]
    ok = [np.zeros(len(w), bool) for w in wts]
    for (fns, n_free, shapes), members in buckets.items():
        # rows, problem-major, then resample, then candidate (lsq.bootstrap's order), at position
        # offset_i + b * m_i + c; they are grouped into units of UNIT_ROWS rows that share one
        # copy of the solver arrays (one problem, and one resample when it has frozen values)
        offset, units = {}, []
        at = 0
        for i in members:
            nb, k = wts[i].shape[0], len(cands[i])
            offset[i] = at
            pos = at + np.arange(nb * k)
            at += nb * k
            if fixed_draws[i] is None:
                units += [(i, -1, pos[j: j + UNIT_ROWS]) for j in range(0, pos.size, UNIT_ROWS)]
            else:
                units += [(i, r, pos[r * k + j: r * k + min(k, j + UNIT_ROWS)])
                          for r in range(nb) for j in range(0, k, UNIT_ROWS)]
        if not units:
            continue
        m = shapes[0][0]
        unit_bytes = 8 * (sum(int(np.prod(sh)) for sh in shapes) + n_free
                          + UNIT_ROWS * (m + 2 * n_free))
        chunk = _pow2_floor(max(1, row_bytes // unit_bytes))
        chunk = max(1, min(chunk, 1 << int(len(units) - 1).bit_length()))
        refit_f = np.full(at, np.inf)          # per row: its objective if converged, else inf
        refit_t = np.zeros((at, n_free))
        for lo in range(0, len(units), chunk):
            part = units[lo: lo + chunk]
            # a short last chunk is padded with repeats of its last unit (one compiled shape)
            part += [part[-1]] * (chunk - len(part))
            data_u, theta0 = [], np.empty((chunk, UNIT_ROWS, n_free))
            W = np.zeros((chunk, UNIT_ROWS, m))
            lb = np.empty((chunk, n_free))
            for u, (i, r, pos) in enumerate(part):
                if r < 0:
                    data_u.append(base[i][0])
                else:
                    own = replace(problems[i], fixed=fixed_draws[i][r])
                    data_u.append(tuple(np.asarray(a) for a in lsq.solver_arrays(own)[0]))
                # a unit's rows beyond its own repeat its last row (results not read)
                rel = pos[np.minimum(np.arange(UNIT_ROWS), pos.size - 1)] - offset[i]
                res, cand = np.divmod(rel, len(cands[i]))
                w0, n_i = base[i][1], problems[i].n
                W[u, :, :n_i] = wts[i][res] * w0[:n_i]        # padded runs keep weight 0
                theta0[u] = cands[i][cand]
                lb[u] = base[i][2]
            data = tuple(np.stack([d[j] for d in data_u]) for j in range(len(shapes)))
            theta, f, conv, _ = lsq.iterate(fns, theta0, W, data, lb, max_steps,
                                            block=lsq.BLOCK)
            f = np.where(conv & np.isfinite(f), f, np.inf)
            done = 0
            for u, (i, r, pos) in enumerate(part[: min(chunk, len(units) - lo)]):
                refit_f[pos] = f[u, : pos.size]
                refit_t[pos] = theta[u, : pos.size]
                done += int(np.sum((pos - offset[i]) % len(cands[i]) == len(cands[i]) - 1))
            if progress is not None:
                progress(done)
        for i in members:       # each resample: its best converged candidate (the first on ties)
            nb, k = wts[i].shape[0], len(cands[i])
            f_i = refit_f[offset[i]: offset[i] + nb * k].reshape(nb, k)
            t_i = refit_t[offset[i]: offset[i] + nb * k].reshape(nb, k, n_free)
            j = np.argmin(f_i, axis=1)
            rows = np.arange(nb)
            draws[i] = t_i[rows, j]
            ok[i] = np.isfinite(f_i[rows, j])
    return list(zip(draws, ok))
