"""Least squares / robust regression: vectorised multi-start, bootstrap and variable projection.

The solver is a batched, damped (saddle-free) Newton method written in jax: every start of a grid,
or every bootstrap replicate, is one row of a batch that advances together under ``jax.vmap``, and
each row stops on its own convergence test (a Newton decrement below a relative tolerance at a
positive-definite Hessian). Laws have 3-8 free parameters, so the exact Hessian (a small dense
matrix per row, from jax autodiff) is cheap and gives quadratic convergence where L-BFGS under vmap
wastes hundreds of line-search iterations (see README, "Why not L-BFGS").

Two phases for a grid of starts: all starts take a few damped Newton steps (screening), the best
2% (at least 32) are then iterated to convergence. From step ABANDON_AFTER of the refinement on, a
start whose objective is still above that of an already converged start is abandoned (dominated).
The best *converged* start wins; a fit none of whose starts converged is reported as such, never
silently. The solver carries a leading group axis, so that lawfit.batch can run the starts of many
fits as one compiled program.

Everything here is pure: arrays in, arrays out; no I/O, no printing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from lawfit.errors import DataError

from . import programs
from .laws import Law
from .numerics import float64
from .objectives import Objective
from .problem import GroupProblem, Problem, Status, build_layout, grid_starts

__all__ = ["LsqFit", "Problem", "autodiff_objective", "best_of", "bootstrap", "bootstrap_frozen",
           "bootstrap_weights", "full_objective", "iterate", "lsq_status", "multistart",
           "multistart_arrays", "objective_fns", "objective_value", "padded_runs", "refine",
           "solve", "solver_arrays", "stacked_solver_arrays", "is_plain", "varpro"]

PAD = 8             # runs are padded (zero weight) to a few sizes to share compilations: padded_runs
SCREEN_STEPS = 8       # damped Newton steps every start takes before the best are refined
MAX_STEPS = 1000
SCREEN_DTYPE = jnp.float32   # screening steps rank starts in float32; refinement is float64
ROW_CHUNK = 256       # rows (starts) the solver vectorises at a time: see _over_rows
BLOCK = 16          # refinement pauses every BLOCK steps (abandon dominated starts, compact)
ABANDON_AFTER = 32  # from this step on, a start above a converged start's objective is abandoned
FTOL = 1e-12        # converged when the Newton decrement^2 / 2 <= FTOL * |f| + FABS
FABS = 1e-24        # absolute floor: an exact fit (f at rounding level, ~n (eps y)^2) converges
CAP = 2.0          # longest step along one eigen-direction (Jacobi-scaled units)
MAXSTEP = 10.0     # longest step in any parameter (log-scale or exponent units)
# the built-in log-sum-exp laws use their exact analytic derivatives rather than autodiff:
# measured faster (benchmarks/bench_lsq.py --autodiff, README "Any law as a jax function")
ANALYTIC = True


def padded_runs(n: int) -> int:
    """Runs of a fit are padded with zero-weight runs to this many: a multiple of PAD up to 32,
    then 2^k or 1.5 * 2^k (at most 50% padding; few compiled shapes)."""
    if n <= 4 * PAD:
        return max(PAD, int(math.ceil(n / PAD)) * PAD)
    k = 1 << (int(n - 1).bit_length() - 1)          # n in (k, 2k]
    return k + k // 2 if n <= k + k // 2 else 2 * k


def objective_fns(problem: Problem):
    """(value, vgh) of the problem's objective: the analytic log-sum-exp derivatives for the
    built-in laws (see ANALYTIC), jax autodiff through ``law.log_predict`` otherwise."""
    if problem.law.analytic and ANALYTIC:
        return full_objective(problem.objective)
    return autodiff_objective(problem.law, problem.objective)


@float64
def solver_arrays(problem: Problem):
    """Solver data of a problem, padded with zero-weight runs to :func:`padded_runs` (to share
    compilations), and the base weights: ``(data, w)``."""
    n = problem.n
    m = padded_runs(n)
    if not (problem.law.analytic and ANALYTIC):
        lv = np.zeros((m, problem.log_vars.shape[1]))       # padding: variables = 1, loss = 1
        lv[:n] = problem.log_vars
        slots = np.zeros((m, problem.slots.shape[1]), np.int32)
        slots[:n] = problem.slots
        slots[n:] = problem.slots[0]
        y = np.ones(m)
        y[:n] = problem.y
        w = np.zeros(m)
        w[:n] = 1.0 if problem.weights is None else problem.weights
        return (jax.device_put(lv), jax.device_put(y), jax.device_put(slots),
                jax.device_put(np.asarray(problem.fixed, np.float64))), w
    t, c = problem.design()
    tp = np.zeros((m,) + t.shape[1:])
    tp[:n] = t
    cp = np.zeros((m, c.shape[1]))
    cp[:n] = c
    y = np.ones(m)
    y[:n] = problem.y
    w = np.zeros(m)
    w[:n] = 1.0 if problem.weights is None else problem.weights
    # device_put, not jnp.asarray: the latter compiles a program per shape (jax 0.12)
    return tuple(map(jax.device_put, (tp, cp, y, _pair_products(tp)))), w


def is_plain(problem: Problem) -> bool:
    """A plain fit: every law parameter free, in law order, for every run (no frozen or shared
    parameters), so that its solver arrays can be built for many problems at once."""
    return (problem.fixed.size == 0 and problem.n_free == problem.law.n_params
            and bool(np.all(problem.slots == np.arange(problem.law.n_params))))


@float64
def stacked_solver_arrays(problems) -> tuple[tuple, np.ndarray]:
    """:func:`solver_arrays` of several problems of one law and one padded size, stacked on a
    leading axis: ``(data, w)``, identical to stacking each problem's own.

    Plain problems of a built-in law (:func:`is_plain`) are built in one vectorised pass (the
    law's terms evaluated once for all runs of all problems); others one by one.
    """
    law = problems[0].law
    m = padded_runs(problems[0].n)
    if not (law.analytic and ANALYTIC and all(is_plain(p) and p.law is law
                                              and padded_runs(p.n) == m for p in problems)):
        parts = [solver_arrays(p) for p in problems]
        data = tuple(np.stack([np.asarray(d[0][i]) for d in parts])
                     for i in range(len(parts[0][0])))
        return data, np.stack([d[1] for d in parts])
    g, v = len(problems), problems[0].log_vars.shape[1]
    lv = np.zeros((g, m, v))
    y = np.ones((g, m))
    w = np.zeros((g, m))
    for i, p in enumerate(problems):
        lv[i, : p.n] = p.log_vars
        y[i, : p.n] = p.y
        w[i, : p.n] = 1.0 if p.weights is None else p.weights
    t = np.array(law.terms(lv.reshape(g * m, v)))
    t = t.reshape((g, m) + t.shape[1:])
    for i, p in enumerate(problems):
        t[i, p.n:] = 0.0       # padded runs: no terms (as solver_arrays pads them)
    k = t.shape[2]
    c = np.zeros((g, m, k))
    return (t, c, y, _pair_products(t)), w


# --- objective functions: value, and (value, gradient, Hessian) ------------------------------

@lru_cache(maxsize=None)
def full_objective(objective: Objective):
    """(value, vgh) of the objective over linear-term laws, with exact derivatives.

    With z = T theta + c, log L = lse(z), s = softmax(z), G = s @ T (gradient of log L):
    loss space r = L - y, grad r = L G, Hess r = sum_k e^{z_k} T_k T_k^T;
    log space  r = log L - log y, grad r = G, Hess r = sum_k s_k T_k T_k^T - G G^T;
    f = sum w rho(r), grad f = J^T (w rho'), Hess f = J^T diag(w rho'') J + sum w rho' Hess r.

    ``vgh(theta, w, data) -> (f, g, H, Hm, sig)``: besides the exact Hessian H, the majorizer's
    Hm (rho'' replaced by rho'/r, as iteratively reweighted least squares has it: a run beyond
    Huber's delta keeps the curvature delta/|r| instead of 0; Hm = H without one, see _solver),
    and sig, a signature of which runs are inside Huber's quadratic zone.

    Written term by term (a law has 2-4 terms): every quantity is a (runs,) array, so that, batched
    over starts, the arithmetic is elementwise over (starts, runs) and every sum over runs is one
    matrix product with data-only arrays. (A (runs, terms) layout reduced over its short last axis
    made the batched exponentials 7x slower on CPU.)
    """
    log_space = objective.space == "log"
    mean = objective.reduction == "mean"
    # Huber in loss space: the majorizer's Hessian for the solver's steps (see _solver). In log
    # space it made the Hoffmann grid (bench_lsq.py row a) 1.4x slower for the same optimum.
    majorizer = objective.kind == "huber" and not log_space

    def residuals(theta, w, data):
        """Per-term softmax weights s_k, the weight sum, log L and residuals, with one exp per
        term (the exps are most of the cost of a batched step)."""
        t, c, y = data[:3]
        zs = [t[:, k, :] @ theta + c[:, k] for k in range(t.shape[1])]
        m = zs[0]
        for z in zs[1:]:
            m = jnp.maximum(m, z)
        m = jax.lax.stop_gradient(m)
        es = [jnp.exp(z - m) for z in zs]
        se = sum(es[1:], es[0])
        lp = m + jnp.log(se)
        r = lp - jnp.log(y) if log_space else jnp.exp(lp) - y
        inv = 1.0 / se
        return [e * inv for e in es], r

    def value(theta, w, data):
        r = residuals(theta, w, data)[-1]
        f = jnp.sum(w * objective.derivatives(r)[0])
        return f / jnp.sum(w) if mean else f

    def vgh(theta, w, data):
        # Batched over starts, every sum over runs is a matrix product with data: the gradient
        # with T_k, the Hessian with O2 (the runs' symmetrised T_k T_l^T for term pairs k <= l):
        # Hess f = sum_n a2 G G^T + sum_n sum_k cg_k T_k T_k^T, G G^T = sum_kl s_k s_l T_k T_l^T.
        t, c, y, o2 = data
        n, k, p = t.shape
        ss, r = residuals(theta, w, data)
        rho, d1, d2 = objective.derivatives(r)
        sig = jnp.sum(jnp.where(w > 0, d2, 0.0) * jnp.sqrt(1.0 + jnp.arange(n, dtype=r.dtype)))
        b = w * d1
        f = jnp.sum(w * rho)
        curv = [d2]
        if majorizer:                      # the majorizer's curvature rho'/r (= rho'' inside)
            small = jnp.abs(r) < 1e-12
            curv.append(jnp.maximum(d2, jnp.where(small, d2, d1 / jnp.where(small, 1.0, r))))
        if log_space:
            cgs = [b * s for s in ss]                  # gradient weights per (run, term)
            a2s = [w * d - b for d in curv]            # weight of G G^T
        else:
            pred = r + y
            bp = b * pred
            cgs = [bp * s for s in ss]                 # b * e^{z_k}
            a2s = [w * d * pred * pred for d in curv]
        g = sum((cg @ t[:, i, :] for i, cg in enumerate(cgs[1:], 1)), cgs[0] @ t[:, 0, :])
        wts = jnp.stack([jnp.concatenate(
            [a2 * ss[i] * ss[i] + cgs[i] if i == j else 2.0 * a2 * ss[i] * ss[j]
             for i, j in TERM_PAIRS[k]]) for a2 in a2s])
        hs = (wts @ o2).reshape(len(a2s), p, p)
        h, hm = hs[0], hs[-1]
        if mean:
            sw = jnp.sum(w)
            f, g, h, hm = f / sw, g / sw, h / sw, hm / sw
        return f, g, h, hm, sig

    vgh.majorizer = majorizer
    fns = (value, vgh)
    _PROGRAM_KEYS[fns] = ("full_objective", repr(objective))
    return fns


# what a solver's traced program depends on beyond lawfit's source, per objective functions:
# solvers of these functions may keep their traced programs between processes (lawfit.programs)
_PROGRAM_KEYS: dict = {}

TERM_PAIRS = {k: [(i, j) for i in range(k) for j in range(i, k)] for k in range(1, 9)}


def _pair_products(t: np.ndarray) -> np.ndarray:
    """(..., pairs * runs, P * P) symmetrised outer products (T_k T_l^T + T_l T_k^T) / 2 of the
    runs' term rows ``t`` (..., runs, K, P), pairs k <= l in TERM_PAIRS order, runs inner."""
    k, p = t.shape[-2], t.shape[-1]
    out = [np.einsum("...np,...nq->...npq", t[..., i, :], t[..., j, :]) for i, j in TERM_PAIRS[k]]
    out = [0.5 * (o + np.swapaxes(o, -1, -2)) for o in out]
    o = np.concatenate(out, axis=-3)
    return o.reshape(o.shape[:-2] + (p * p,))


@lru_cache(maxsize=None)
def autodiff_objective(law: Law, objective: Objective):
    """(value, vgh) for any law, derivatives by jax autodiff through ``law.log_predict``.

    data = (log_vars (N, V), y (N,), slots (N, P), fixed): run n's law parameters are
    ``concat(theta, fixed)[slots[n]]``. Zero-weight runs (padding, bootstrap) contribute exactly 0
    even where the law is not finite there.
    """
    log_space = objective.space == "log"
    mean = objective.reduction == "mean"

    def value(theta, w, data):
        lv, y, slots, fixed = data
        phi = jnp.concatenate([theta, fixed])
        lp = law.log_predict(phi[slots], lv)
        r = lp - jnp.log(y) if log_space else jnp.exp(lp) - y
        used = w > 0
        rho = objective.derivatives(jnp.where(used, r, 0.0))[0]
        f = jnp.sum(jnp.where(used, w * rho, 0.0))
        return f / jnp.sum(w) if mean else f

    grad = jax.grad(value)
    hess = jax.jacfwd(grad)

    def vgh(theta, w, data):
        h = hess(theta, w, data)
        return value(theta, w, data), grad(theta, w, data), h, h, jnp.zeros((), theta.dtype)

    return value, vgh


@lru_cache(maxsize=None)
def _varpro_objective(law: Law):
    """Projected squared error as a function of the exponents alone; data = (log_vars, y)."""
    def value(exps, w, data):
        lv, y = data
        coef, phi = _varpro_coefficients(law, exps, w, lv, y)
        r = phi @ coef - y
        return jnp.sum(w * r * r)

    def vgh(exps, w, data):
        h = jax.hessian(value)(exps, w, data)
        return value(exps, w, data), jax.grad(value)(exps, w, data), h, h, jnp.zeros((), exps.dtype)

    return value, vgh


def _varpro_coefficients(law: Law, exps, w, lv, y):
    """Weighted least-squares coefficients of the law's linear parameters at given exponents."""
    phi = law.basis_fn(exps, lv)
    sw = jnp.sqrt(w)[:, None]
    a = phi * sw
    gram = a.T @ a
    ridge = 1e-12 * jnp.trace(gram) / gram.shape[0]
    return jnp.linalg.solve(gram + ridge * jnp.eye(gram.shape[0]), a.T @ (sw[:, 0] * y)), phi


# --- the batched damped Newton solver --------------------------------------------------------

@lru_cache(maxsize=None)
def _solver(fns, shared_w: bool):
    """jit-compiled batched solver for ``fns = (value, vgh)`` of ``theta, w, data``.

    Arrays carry a leading group axis G (one fit each; G = 1 for a single fit) and a start axis S:
    theta (G, S, F), data leaves (G, ...), lb (G, F), and weights W (G, M) when every start of a
    group shares them (``shared_w``: a grid) or (G, S, M) (bootstrap resamples). Returns
    ``(start, advance)``: ``start(theta0, W, data, lb) -> state`` and
    ``advance(state, W, data, lb, n) -> (state, iterations, steps per group)``, which takes up to
    n steps and stops early once every row is done. A row's trajectory depends only on its own
    start and data, so a fit gives the same result whatever other groups share its batch.
    """
    value, vgh = fns
    majorizer = getattr(vgh, "majorizer", False)

    def init(theta, w, data, lb):
        theta = jnp.maximum(theta, lb)
        f, g, h, hm, sig = vgh(theta, w, data)
        return (theta, f, g, h, jnp.asarray(1.0, theta.dtype), jnp.asarray(False),
                jnp.asarray(False), hm, sig, jnp.asarray(False))

    def step(state, w, data, lb):
        # one evaluation per iteration: value, gradient and Hessian at the trial point, kept if
        # the step is accepted.
        # Two Hessians come with each evaluation (full_objective): the exact one and the
        # majorizer's, where every run outside Huber's quadratic zone keeps the curvature
        # rho'/r = delta/|r| instead of 0. With exact curvature a Huber fit whose runs are mostly
        # beyond delta is nearly piecewise linear, and Newton crawls from kink to kink (measured:
        # 10% of the screened starts of simulated finetuning curves ran 1,000 steps). The step
        # uses the majorizer's Hessian (iteratively reweighted least squares, a descent method
        # that is not misled by the kinks) after an accepted step that changed the pattern of runs
        # inside the zone, and after a rejected exact step; otherwise (the first step, after a
        # rejected majorizer step, once the pattern repeats) the exact Hessian, which gives
        # Newton's quadratic convergence and alone may declare convergence (a start at an
        # optimum converges at once, as a bootstrap refit from the full fit's optimum must; at
        # an optimum where every step is rejected, every other step tests convergence).
        theta, f, g0, h0, lam, done, conv_any, hm0, sig0, mm0 = state
        # (equal without Huber outliers; never used for objectives without a majorizer)
        use_mm = mm0 & jnp.any(hm0 != h0) if majorizer else jnp.asarray(False)
        h0 = jnp.where(use_mm, hm0, h0)
        tiny = jnp.finfo(theta.dtype).tiny     # 1e-300 would round to 0 in float32 (screening)
        g, h = g0, 0.5 * (h0 + h0.T)
        # projected Newton: a parameter at its lower bound that the gradient pushes further down
        # is held there (its row and column leave the system)
        active = (theta <= lb + 1e-12) & (g > 0)
        g = jnp.where(active, 0.0, g)
        keep = ~active
        h = jnp.where(keep[:, None] & keep[None, :], h, 0.0) + jnp.diag(
            jnp.where(active, jnp.max(jnp.abs(jnp.diag(h))) + 1.0, 0.0))
        # Jacobi scaling: a scale parameter near 0 has a tiny but exact curvature that an
        # unscaled eigendecomposition would drown in rounding (eps * |H|)
        hd = jnp.abs(jnp.diag(h))
        dscale = jnp.sqrt(jnp.maximum(hd, 1e-16 * jnp.max(hd) + tiny))
        hs = h / (dscale[:, None] * dscale[None, :])
        ev, q = symmetric_eigh(hs)
        scale = jnp.max(jnp.abs(ev)) + tiny
        qg = q.T @ (g / dscale)
        # a component at the rounding level of the gradient is noise, not a direction to move in:
        # along a flat direction (zero gradient and curvature, tiny Jacobi scale) it would become a
        # CAP-long step, divided by that scale, that swamps the step and is rejected at any damping
        # (measured: a bootstrap refit stalled with gradient 0.066, every step rejected)
        qg = jnp.where(jnp.abs(qg) <= 16 * jnp.finfo(qg.dtype).eps * jnp.max(jnp.abs(qg)), 0.0, qg)
        # convergence test at the current point: the decrease still available, by a Newton step
        # along well-determined directions and by at most a CAP-long move along flat ones, is
        # below FTOL of the objective
        reliable = ev > 1e-13 * scale
        dec = jnp.sum(jnp.where(reliable, qg * qg / jnp.where(reliable, ev, 1.0),
                                2.0 * CAP * jnp.abs(qg)))
        conv = (jnp.all(ev > -1e-13 * scale) & jnp.all(jnp.isfinite(g)) & ~use_mm
                & (0.5 * dec <= FTOL * jnp.abs(f) + FABS))
        # saddle-free damped step: |eigenvalue| per direction, at most CAP long (scaled), shortened
        # by (1 + damping) after rejected steps, and never longer than MAXSTEP in any parameter
        denom = jnp.maximum(jnp.maximum(jnp.abs(ev), jnp.abs(qg) / CAP), tiny) * (1.0 + lam)
        d = -(q @ (qg / denom)) / dscale
        d = d * jnp.minimum(1.0, MAXSTEP / (jnp.max(jnp.abs(d)) + tiny))
        t_new = jnp.maximum(theta + d, lb)
        f_new, g_new, h_new, hm_new, sig_new = vgh(t_new, w, data)
        accept = (f_new < f) & ~done
        theta = jnp.where(accept, t_new, theta)
        f = jnp.where(accept, f_new, f)
        g0 = jnp.where(accept, g_new, g0)
        h0 = jnp.where(accept, h_new, state[3])
        hm0 = jnp.where(accept, hm_new, hm0)
        mm0 = jnp.where(accept, sig_new != sig0, ~use_mm)     # see above
        sig0 = jnp.where(accept, sig_new, sig0)
        lam = jnp.clip(jnp.where(accept, lam * 0.2, lam * 10.0), 1e-12, 1e12)
        stalled = lam >= 1e12     # no step of any size decreases f: stop, conv tells the truth
        return theta, f, g0, h0, lam, done | conv | stalled, conv_any | conv, hm0, sig0, mm0

    v_init = _over_rows(init, shared_w)
    v_step = _over_rows(step, shared_w)

    def start(theta0, W, data, lb):
        return v_init(theta0, W, data, lb)

    def advance(state, W, data, lb, n_steps):
        def cond(c):
            state, it, _ = c
            return (it < n_steps) & ~jnp.all(state[5])

        def body(c):
            state, it, gsteps = c
            running = ~jnp.all(state[5], axis=1)          # groups with a row still iterating
            return v_step(state, W, data, lb), it + 1, gsteps + running

        g = state[0].shape[0]
        return jax.lax.while_loop(cond, body, (state, jnp.asarray(0),
                                               jnp.zeros(g, jnp.int32)))

    key = _PROGRAM_KEYS.get(fns)
    if key is None:            # jax-autodiff objectives (user laws): traced in every process
        return jax.jit(start), jax.jit(advance)
    key = (*key, shared_w, ROW_CHUNK)
    return (programs.cached(jax.jit(start), ("start", *key)),
            programs.cached(jax.jit(advance), ("advance", *key)))


JACOBI_MAX = 6     # symmetric_eigh: cyclic Jacobi up to this size, LAPACK above


def symmetric_eigh(a):
    """Eigenvalues and eigenvectors (columns) of one small symmetric matrix, for the solver's
    step: cyclic Jacobi rotations, unordered, for n <= ``JACOBI_MAX``; ``jnp.linalg.eigh``
    above.

    Why not ``jnp.linalg.eigh``: vectorised over a batch on CPU it calls LAPACK once per
    matrix; Jacobi's rotations are elementwise operations over the batch. For the 4 x 4 Hessians
    of a finetuning law a Newton row-step took 1.6-1.8x as long with LAPACK
    (``benchmarks/bench_lsq.py --rows k``: 8,192 rows; the eigendecomposition alone 0.50 against
    1.82 us per matrix). Its sweeps are a fixed number (``max(4, n + 2)``: off-diagonal mass
    at rounding level on random, clustered, graded and nearly rank-deficient matrices of sizes
    2-6 needed 4, 4, 5, 6 and 8), so a row's result does not depend on which rows share its batch; each
    rotation is behind an optimisation barrier (without it XLA fused the unrolled sweeps into
    expressions whose recomputation grew tenfold per sweep).
    """
    n = a.shape[-1]
    if n > JACOBI_MAX:
        return jnp.linalg.eigh(a)
    zero, one = jnp.zeros_like(a[0, 0]), jnp.ones_like(a[0, 0])
    m = [[a[i, j] for j in range(n)] for i in range(n)]
    v = [[one if i == j else zero for j in range(n)] for i in range(n)]

    def sweep(_, mv):
        m, v = ([list(r) for r in x] for x in mv)
        for p in range(n - 1):
            for q in range(p + 1, n):
                apq, app, aqq = m[p][q], m[p][p], m[q][q]
                nz = apq != 0
                theta = (aqq - app) / (2 * jnp.where(nz, apq, one))
                t = jnp.where(theta >= 0, one, -one) / (jnp.abs(theta)
                                                       + jnp.sqrt(theta * theta + 1))
                t = jnp.where(nz, t, zero)       # the smaller rotation, |angle| <= pi/4
                c = jax.lax.rsqrt(t * t + 1)
                s_ = t * c
                for k in range(n):
                    if k not in (p, q):
                        akp, akq = m[k][p], m[k][q]
                        m[k][p] = m[p][k] = c * akp - s_ * akq
                        m[k][q] = m[q][k] = s_ * akp + c * akq
                m[p][p], m[q][q] = app - t * apq, aqq + t * apq
                m[p][q] = m[q][p] = zero
                for k in range(n):
                    vkp, vkq = v[k][p], v[k][q]
                    v[k][p], v[k][q] = c * vkp - s_ * vkq, s_ * vkp + c * vkq
                m, v = jax.lax.optimization_barrier((m, v))
        return m, v

    m, v = jax.lax.fori_loop(0, max(4, n + 2), sweep, (m, v))
    return jnp.stack([m[i][i] for i in range(n)]), jnp.stack([jnp.stack(r) for r in v])


def _over_rows(fn, shared_w: bool):
    """``fn(x, w, data, lb)`` of one row (one start of one group) applied to every row of a (G, S)
    batch, ROW_CHUNK rows at a time: vectorised within a chunk, a loop over chunks, so that a
    chunk's intermediates ((rows, runs) arrays) stay in cache. Measured on the Hoffmann grid (4,500
    starts x 256 runs): one objective-with-derivatives evaluation in chunks of 256 rows took a
    third of the time of all rows at once. Each row's arithmetic is its own, so chunking does not
    change a trajectory."""
    w_axis = None if shared_w else 0
    rows = jax.vmap(fn, in_axes=(0, w_axis, None, None))       # the starts of one group

    def group(args):
        x, w, data, lb = args
        if shared_w:
            return _chunked(lambda xi: rows(xi, w, data, lb), x, ROW_CHUNK)
        return _chunked(lambda a: rows(a[0], a[1], data, lb), (x, w), ROW_CHUNK)

    def apply(x, W, data, lb):
        g, s = jax.tree_util.tree_leaves(x)[0].shape[:2]
        if g == 1:
            return jax.tree_util.tree_map(lambda a: a[None], group(
                jax.tree_util.tree_map(lambda a: a[0], (x, W, data, lb))))
        return _chunked(jax.vmap(group), (x, W, data, lb), max(1, ROW_CHUNK // s))

    return apply


def _chunked(f, xs, size: int):
    """``f`` (vectorised over the leading axis of the pytree ``xs``) applied ``size`` rows at a
    time (``jax.lax.map`` over chunks). The rows are padded to a multiple of ``size`` with copies
    of the last row (dropped from the result) rather than left to ``lax.map``'s remainder, which
    would trace and compile ``f`` a second time."""
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    if n <= size:
        return f(xs)
    k = -(-n // size)

    def split(a):
        a = jnp.concatenate([a, jnp.repeat(a[-1:], k * size - n, axis=0)]) if k * size > n else a
        return a.reshape((k, size) + a.shape[1:])

    out = jax.lax.map(f, jax.tree_util.tree_map(split, xs))
    return jax.tree_util.tree_map(lambda a: a.reshape((k * size,) + a.shape[2:])[:n], out)


def _bucket(live: int, size: int) -> int:
    """Rows of a compacted batch: the batch (``size`` rows, ``live`` still iterating) shrinks by
    factors of 4, to no fewer than 16 rows (few compiled shapes)."""
    while size >= 64 and live <= size // 4:
        size //= 4
    return size


@float64
def iterate(fns, theta0, W, data, lb, max_steps: int, *, block: int = 0,
            abandon_after: int = 0, owner: np.ndarray | None = None,
            stall: tuple[int, float] | None = None, dtype=jnp.float64):
    """Run the batched solver from ``theta0`` (G, S, F) for up to ``max_steps`` steps.

    ``W``: (G, M) weights shared by a group's starts, or (G, S, M) per start; ``data``: the
    solver arrays of G groups stacked on a leading axis; ``lb`` (G, F).

    With ``block`` > 0 the solver pauses every ``block`` steps, and

    * from step ``abandon_after`` on (if > 0), a start still iterating whose objective is above
      that of a converged start of the same fit is abandoned (dominated: its fit already has a
      better optimum); it is reported not converged. The fit of batch row g's starts is
      ``owner[g]`` (default: row g's own; lawfit.batch flattens many fits' starts into rows);
    * with ``stall = (after, rtol)``, from step ``after`` on, a start whose objective fell by
      less than ``rtol`` (relative) over the last two blocks is stopped, not converged (it crawls:
      along a curved valley towards a boundary, Newton can take 1,000 steps that gain 1e-4);
    * with G > 1 the batch is compacted: rows whose every start is done leave it (it shrinks by
      factors of 4; see :func:`_bucket`), so a few slow fits do not keep the whole batch busy.

    Neither changes a row's trajectory before it stops, so a fit's result does not depend on the
    other fits in its batch.

    Returns theta (G, S, F), f (G, S), converged (G, S) and steps (G,) (iterations until each
    row's last start was done) as numpy arrays.
    """
    # converted on the host and device_put: jnp.asarray / astype compile a program per shape and
    # dtype, each costing a lookup in the compilation cache in every new process
    def host(a):
        a = np.asarray(a)
        return jax.device_put(a.astype(dtype, copy=False) if np.issubdtype(a.dtype, np.floating)
                              else a)

    theta0, W, lb = host(theta0), host(W), host(lb)
    data = jax.tree_util.tree_map(host, data)
    shared_w = W.ndim == 2
    start, advance = _solver(fns, shared_w)
    state = start(theta0, W, data, lb)
    G = theta0.shape[0]
    if block <= 0:
        state, _, gsteps = advance(state, W, data, lb, np.asarray(max_steps))
        theta, f, conv = state[0], state[1], state[6]
        return np.asarray(theta), np.asarray(f), np.asarray(conv), np.asarray(gsteps)
    owner = np.arange(G) if owner is None else np.asarray(owner)
    fbest = np.full(owner.max() + 1, np.inf)      # best converged objective per fit
    out_theta = np.empty(theta0.shape)
    out_f = np.empty(theta0.shape[:2])
    out_conv = np.zeros(theta0.shape[:2], bool)
    out_steps = np.zeros(G, np.int64)
    rows = np.arange(G)                       # original batch row of each current row
    taken = 0
    f_back = (np.asarray(state[1]),) * 2      # objective 1 and 2 blocks ago (stall)
    while True:
        n = min(block, max_steps - taken)
        state, _, gsteps = advance(state, W, data, lb, np.asarray(n))
        taken += n
        out_steps[rows] += np.asarray(gsteps)   # duplicate rows are identical: counted once
        theta, f, done, conv = (np.asarray(state[i]) for i in (0, 1, 5, 6))
        own = np.broadcast_to(owner[rows][:, None], f.shape)
        np.minimum.at(fbest, own[conv], f[conv])
        drop = np.zeros_like(done)
        if abandon_after and taken >= abandon_after and taken < max_steps:
            drop |= ~done & (f > fbest[own])
        if stall is not None:
            if taken >= stall[0] and taken < max_steps:
                drop |= ~done & (f_back[1] - f <= stall[1] * np.abs(f))
            f_back = (f, f_back[0])
        if drop.any():
            done = done | drop
            state = (*state[:5], jax.device_put(done), *state[6:])
        finished = done.all(axis=1) | (taken >= max_steps)
        out_theta[rows[finished]] = theta[finished]
        out_f[rows[finished]] = f[finished]
        out_conv[rows[finished]] = conv[finished]
        live = np.flatnonzero(~finished)
        if live.size == 0:
            break
        size = _bucket(live.size, len(rows))
        if size < len(rows):
            sel = np.concatenate([live, np.full(size - live.size, live[-1])])
            state, W, data, lb = _take((state, W, data, lb), np.asarray(sel))
            rows = rows[sel]
            f_back = tuple(a[sel] for a in f_back)
    return out_theta, out_f, out_conv, out_steps


@jax.jit
def _take(tree, idx):
    """Rows ``idx`` of every array in ``tree`` (one compiled gather)."""
    return jax.tree_util.tree_map(lambda a: a[idx], tree)


def _run(fns, theta0, W, data, lb, max_steps):
    """One group: theta0 (S, F), W (S, M), data and lb unbatched."""
    data1 = jax.tree_util.tree_map(lambda a: np.asarray(a)[None], data)
    theta, f, conv, steps = iterate(fns, np.asarray(theta0)[None], np.asarray(W)[None], data1,
                                    np.asarray(lb)[None], max_steps)
    return theta[0], f[0], conv[0], int(steps[0])


@float64
def objective_value(problem: Problem, free) -> float:
    data, w = solver_arrays(problem)
    return float(objective_fns(problem)[0](jnp.asarray(free, jnp.float64), w, data))


# --- multi-start -----------------------------------------------------------------------------

@dataclass(frozen=True)
class LsqFit:
    """Result of the least-squares engine.

    ``multistart``/``refine``/``varpro`` fill the solver fields; :func:`solve` adds the fit's
    ``status`` and ``warnings`` (see :func:`lsq_status`), and an IRLS fit (lawfit.robust) its
    stages in ``info``.
    """
    theta: np.ndarray          # (F,) best converged (or best, if none converged)
    value: float
    converged: bool
    n_starts: int
    n_at_optimum: int          # starts (of those refined) that reached the optimum
    candidates: np.ndarray     # (k, F) distinct converged local optima, best first
    steps: int
    status: Status | None = None          # set by solve(): converged, at_bound, grid_edge, ...
    warnings: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)   # solver details (e.g. robust.solve's IRLS stages)


def _distinct(thetas, values, k, rtol=1e-6):
    """Up to k rows of ``thetas`` (sorted by value) that differ from each other."""
    out = []
    for t in thetas[np.argsort(values)]:
        if all(np.max(np.abs(t - o) / (1 + np.abs(o))) > rtol for o in out):
            out.append(t)
        if len(out) == k:
            break
    return np.array(out)


@float64
def multistart(problem: Problem, starts: np.ndarray, *, screen_steps: int = SCREEN_STEPS,
               keep: int | None = None, max_steps: int = MAX_STEPS) -> LsqFit:
    """Minimise the problem's objective from every start (S, F); see the module docstring."""
    data, w = solver_arrays(problem)
    data = jax.tree_util.tree_map(lambda a: np.asarray(a)[None], data)
    return multistart_arrays(objective_fns(problem), data, w[None], problem.lower_bounds()[None],
                             np.asarray(starts, np.float64)[None], screen_steps=screen_steps,
                             keep=keep, max_steps=max_steps)[0]


@float64
def multistart_arrays(fns, data, w: np.ndarray, lb: np.ndarray, starts: np.ndarray, *,
                      screen_steps: int = SCREEN_STEPS, keep: int | None = None,
                      max_steps: int = MAX_STEPS, flat: bool = False,
                      screen_chunk: int = 0) -> list[LsqFit]:
    """:func:`multistart` for G problems of one shape at once (lawfit.batch stacks them).

    Parameters
    ----------
    fns : (value, vgh) of the problems' objective (:func:`objective_fns`), the same for all.
    data : solver arrays (:func:`solver_arrays`, first item) stacked on a leading axis of G.
    w : (G, M) base weights (0 for padded runs).
    lb : (G, F) lower bounds of the free parameters.
    starts : (G, S, F) start vectors.
    flat : refine the best starts of all groups as one batch of rows (each with its group's
        data), compacted as they finish (see :func:`iterate`), rather than group by group.
    screen_chunk : screen this many groups at a time (0: all), to bound memory.

    Returns
    -------
    One :class:`LsqFit` per group, each the one :func:`multistart` gives for that group alone.
    """
    starts = np.asarray(starts, np.float64)
    g, s, _ = starts.shape
    w = np.asarray(w, np.float64)
    lb = np.asarray(lb, np.float64)
    sc = g if screen_chunk <= 0 else screen_chunk
    # screening in float32 ranks the starts at half the cost (measured on the Hoffmann grid:
    # 0.33 -> 0.23 s, same optimum); without screening steps the starts are kept as given
    dtype = SCREEN_DTYPE if screen_steps > 0 else jnp.float64
    parts = []
    for lo in range(0, g, sc):           # screening, sc groups at a time (bounded memory)
        sel = np.minimum(np.arange(lo, lo + sc), g - 1)      # the last chunk repeats a group
        sub = data if sc == g else jax.tree_util.tree_map(lambda a: np.asarray(a)[sel], data)
        parts.append([a[: min(sc, g - lo)] for a in
                      iterate(fns, starts[sel], w[sel], sub, lb[sel], screen_steps,
                              dtype=dtype)])
    theta, f, conv, steps1 = (np.concatenate(a) for a in zip(*parts))
    theta = theta.astype(np.float64)
    if dtype != jnp.float64:
        conv = np.zeros_like(conv)       # float32 screening ranks starts; refinement decides
    f = np.where(np.isfinite(f), f, np.inf)
    k = min(s, keep or max(32, int(math.ceil(0.02 * s))))
    best = np.argsort(f, axis=1, kind="stable")[:, :k]
    rows = np.arange(g)[:, None]
    if flat:
        # refinement row by row: each (group, start) row carries its group's data, so the batch
        # is compacted down to the starts still iterating
        rep = np.repeat(np.arange(g), k)
        data_r = jax.tree_util.tree_map(lambda a: np.asarray(a)[rep], data)
        theta2, f2, conv2, st = iterate(fns, theta[rows, best].reshape(g * k, 1, -1),
                                        np.repeat(w, k, axis=0), data_r,
                                        np.repeat(lb, k, axis=0), max_steps, block=BLOCK,
                                        abandon_after=ABANDON_AFTER, owner=rep)
        theta2, f2, conv2 = theta2.reshape(g, k, -1), f2.reshape(g, k), conv2.reshape(g, k)
        steps2 = st.reshape(g, k).max(axis=1)
    else:
        theta2, f2, conv2, steps2 = iterate(fns, theta[rows, best], w, data, lb, max_steps,
                                            block=BLOCK, abandon_after=ABANDON_AFTER)
    # a start that converged during screening keeps its flag
    conv2 = conv2 | conv[rows, best]
    return best_of(theta2, f2, conv2, steps1 + steps2, s)


def best_of(theta: np.ndarray, f: np.ndarray, conv: np.ndarray, steps: np.ndarray,
            n_starts: int) -> list[LsqFit]:
    """Each fit's result from its refined starts: the best *converged* start (the best start,
    reported not converged, when none converged), the starts that reached it and the distinct
    optima (bootstrap candidates).

    Parameters
    ----------
    theta : (G, k, F) refined starts of G fits.
    f, conv : (G, k) their objectives and convergence flags.
    steps : (G,) solver steps each fit took.
    n_starts : starts each fit screened (recorded in the result).

    Returns
    -------
    list of G :class:`LsqFit`.
    """
    f = np.where(np.isfinite(f), f, np.inf)
    out = []
    for i in range(len(f)):
        pool = np.flatnonzero(conv[i]) if conv[i].any() else np.arange(f.shape[1])
        j = pool[np.argmin(f[i, pool])]
        fbest = f[i, j]
        at_opt = int(np.sum(conv[i] & (np.abs(f[i] - fbest) <= 1e-9 * max(abs(fbest), 1e-300))))
        cands = _distinct(theta[i, pool], f[i, pool], 4)
        out.append(LsqFit(theta=theta[i, j], value=float(fbest), converged=bool(conv[i, j]),
                          n_starts=int(n_starts), n_at_optimum=at_opt, candidates=cands,
                          steps=int(steps[i])))
    return out


@float64
def refine(problem: Problem, starts: np.ndarray, max_steps: int = MAX_STEPS) -> LsqFit:
    """Iterate a few starts to convergence (no screening): for joint fits started from
    per-subset optima."""
    return multistart(problem, starts, screen_steps=0, keep=len(starts), max_steps=max_steps)


# --- variable projection ---------------------------------------------------------------------

@float64
def varpro(problem: Problem, exponent_starts: np.ndarray) -> tuple[LsqFit, np.ndarray]:
    """Squared error in loss space: search the exponents, solve the linear parameters exactly.

    Returns the result of polishing the projected optimum on the full objective (so that status
    and convergence are those of the real problem) and the linear coefficients at the projected
    optimum (negative ones, inadmissible for a law with positive scales, are reported by the
    caller).
    """
    law = problem.law
    fun = _varpro_objective(law)
    (_, _, y, _), w = solver_arrays(problem)
    lv = np.zeros((len(w), problem.log_vars.shape[1]))
    lv[: problem.n] = problem.log_vars
    data = (jnp.asarray(lv), y)
    starts = np.asarray(exponent_starts, np.float64)
    theta, f, conv, _ = _run(fun, starts, np.broadcast_to(w, (len(starts), len(w))), data,
                             np.full(starts.shape[1], -np.inf), MAX_STEPS)
    f = np.where(conv & np.isfinite(f), f, np.inf)
    exps = theta[np.argmin(f)]
    coef, _ = _varpro_coefficients(law, jnp.asarray(exps), jnp.asarray(w), *data)
    coef = np.asarray(coef)
    natural = dict(zip(law.linear, coef)) | dict(zip(law.nonlinear, exps))
    floor = 1e-12 * max(np.max(np.abs(coef)), 1e-300)
    start = law.to_internal({p: (max(v, floor) if p in law.linear else v)
                             for p, v in natural.items()})
    return refine(problem, start[None, :]), coef


# --- a group's fit: multi-start, variable projection or joint refinement, and its status -----

@float64
def solve(group: GroupProblem, starts: str | int = "grid", solver: str = "newton",
          rng: np.random.Generator | None = None) -> LsqFit:
    """Least-squares fit of a group: multi-start from the start grid (or variable projection),
    or, for a joint layout, each subset alone first and the joint problem refined from their
    optima.

    Parameters
    ----------
    group : GroupProblem
        From :func:`lawfit.problem.group_problem`.
    starts : "grid" or int
        Start grid, or a count of random starts within its span (lawfit.problem.grid_starts).
    solver : {"newton", "varpro"}
        "varpro": variable projection (squared error, linear parameters solved exactly).
    rng : numpy Generator, optional
        For random starts.

    Returns
    -------
    LsqFit
        With ``status`` and ``warnings`` from :func:`lsq_status` (a joint fit starts from its
        subsets' optima, not from the grid, so it is not checked against the grid's span).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    problem, layout, law = group.problem, group.layout, group.law
    warnings: list[str] = []
    if not layout.joint:
        if solver == "varpro":
            if not law.analytic:
                raise DataError(f"solver varpro needs a law with linear parameters; "
                                f"{law.name!r} is a jax law: use solver newton", option="solver")
            if problem.objective.name != "mse" or layout.fixed.size:
                raise DataError("solver varpro needs objective mse and no frozen parameters "
                                "(the linear parameters are solved exactly in squared error)",
                                option="solver")
            exps = grid_starts(law, build_layout(law, fixed={p: 1.0 for p in law.linear}),
                               starts, rng)
            fit, coef = varpro(problem, exps)
            if (coef <= 0).any():
                warnings.append(f"variable projection gave non-positive {law.linear}: "
                                f"{coef.tolist()}")
        else:
            fit = multistart(problem, grid_starts(law, layout, starts, rng))
    else:
        fit = refine(problem, _joint_starts(group, starts, rng))
    status, more = lsq_status(fit, group, check_grid=not layout.joint)
    return replace(fit, status=status, warnings=tuple(warnings + more))


def _joint_starts(group: GroupProblem, starts, rng) -> np.ndarray:
    """Start vectors of a joint fit: each subset's own optimum, and their mean, for the shared
    parameters (geometric mean for scales); each subset's own parameters from its optimum."""
    law, layout = group.law, group.layout
    plain = build_layout(law)
    sub_opt = np.array([law.to_natural(multistart(sp, grid_starts(law, plain, starts, rng)).theta)
                        for sp in group.sub_problems])          # (n_subsets, P) natural
    cands = []
    for source in [*range(len(sub_opt)), "mean"]:
        free = np.empty(len(layout.free))
        for j, fp in enumerate(layout.free):
            k = law.params.index(fp.param)
            if fp.subset is None:                               # shared
                vals = sub_opt[:, k] if source == "mean" else sub_opt[[source], k]
                nat = (np.exp(np.mean(np.log(vals))) if fp.param in law.log_params
                       else np.mean(vals))
            else:
                nat = sub_opt[layout.subsets.index(fp.subset), k]
            free[j] = np.log(nat) if fp.param in law.log_params else nat
        cands.append(free)
    return np.array(cands)


def lsq_status(fit: LsqFit, group: GroupProblem,
               check_grid: bool = True) -> tuple[Status, list[str]]:
    """Status of a least-squares fit and its warnings: not converged, a scale parameter at its
    floor, or (for fits started from the grid) an optimum outside the grid's span.

    Parameters
    ----------
    fit : LsqFit
    group : GroupProblem
    check_grid : bool
        Check the optimum against the span of the law's start grid.

    Returns
    -------
    (Status, list of str)
    """
    law, layout = group.law, group.layout
    if not fit.converged:
        return Status.NOT_CONVERGED, ["no start converged: the estimate is the best point found"]
    # within a factor e^2 of the floor a scale term is below 1e-10 of every loss: effectively 0
    at = [n for n, t, b in zip(layout.free_names, fit.theta, group.problem.lower_bounds())
          if t <= b + 2.0]
    if at:
        return Status.AT_BOUND, [f"{', '.join(at)} at the lower bound (effectively 0): the data "
                                 "do not support a positive value"]
    if not check_grid:
        return Status.CONVERGED, []
    grid = law.grid()
    lo, hi = grid.min(axis=0), grid.max(axis=0)
    edge = []
    for j, p in enumerate(layout.free_params):
        k = law.params.index(p)
        span = hi[k] - lo[k]
        if fit.theta[j] < lo[k] - 1e-9 * span or fit.theta[j] > hi[k] + 1e-9 * span:
            edge.append(layout.free_names[j])
    if edge:
        return Status.GRID_EDGE, [f"optimum outside the start grid in {', '.join(edge)}: another "
                                  "optimum may lie beyond the grid; widen it or ask for random "
                                  "starts (starts=N)"]
    return Status.CONVERGED, []


# --- bootstrap -------------------------------------------------------------------------------

def bootstrap_weights(n_boot: int, clusters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B, N) resampling weights: clusters (configurations) drawn with replacement; every run of a
    drawn cluster gets the cluster's count."""
    labels, inverse = np.unique(clusters, return_inverse=True)
    counts = rng.multinomial(len(labels), np.full(len(labels), 1.0 / len(labels)), size=n_boot)
    return counts[:, inverse].astype(np.float64)


@float64
def bootstrap(problem: Problem, candidates: np.ndarray, weights: np.ndarray, *,
              chunk: int = 250, max_steps: int = MAX_STEPS, progress=None):
    """Refit every resample (rows of ``weights``, (B, N)) from each candidate optimum of the full
    fit, vectorised; keep the best converged start per resample.

    Returns (draws (B, F), converged (B,)). ``progress(done, total)`` is called between chunks.
    """
    fun = objective_fns(problem)
    data, w0 = solver_arrays(problem)
    lb = problem.lower_bounds()
    b, n = weights.shape
    m = len(candidates)
    draws = np.full((b, problem.n_free), np.nan)
    ok = np.zeros(b, bool)
    for lo in range(0, b, chunk):
        hi = min(b, lo + chunk)
        wb = np.zeros((chunk, len(w0)))
        wb[: hi - lo, :n] = weights[lo:hi] * w0[:n]
        W = np.repeat(wb, m, axis=0)
        t0 = np.tile(candidates, (chunk, 1))
        theta, f, conv, _ = _run(fun, t0, W, data, lb, max_steps)
        theta = theta.reshape(chunk, m, -1)
        f = np.where(conv & np.isfinite(f), f, np.inf).reshape(chunk, m)
        j = np.argmin(f, axis=1)
        rows = np.arange(chunk)
        good = np.isfinite(f[rows, j])
        draws[lo:hi] = theta[rows, j][: hi - lo]
        ok[lo:hi] = good[: hi - lo]
        if progress is not None:
            progress(hi, b)
    return draws, ok


@float64
def bootstrap_frozen(problem: Problem, candidates: np.ndarray, weights: np.ndarray,
                     fixed_draws: np.ndarray, *, chunk: int = 32, max_steps: int = MAX_STEPS,
                     progress=None):
    """Like :func:`bootstrap`, but resample b refits with its own frozen values
    ``fixed_draws[b]`` ((B, n_fixed), internal units) instead of ``problem.fixed``: the second
    stage of a two-stage procedure, paired with the first stage's bootstrap draws.

    Vectorised like :func:`bootstrap`: a chunk of c resamples becomes one stacked problem of c
    copies of the runs, copy i pointing its frozen slots at draw i's values, and batch row i
    weighting copy i only (the other copies get weight 0).

    Returns (draws (B, F), converged (B,)).
    """
    fixed_draws = np.asarray(fixed_draws, np.float64)
    b, n = weights.shape
    n_fixed = len(problem.fixed)
    if fixed_draws.shape != (b, n_fixed) or n != problem.n:
        raise ValueError(f"fixed_draws must be ({b}, {n_fixed}) and weights (B, {problem.n})")
    base = np.ones(n) if problem.weights is None else np.asarray(problem.weights, np.float64)
    draws = np.full((b, problem.n_free), np.nan)
    ok = np.zeros(b, bool)
    c = min(chunk, b)
    slots = np.concatenate([np.where(problem.slots >= problem.n_free,
                                     problem.slots + i * n_fixed, problem.slots)
                            for i in range(c)])
    for lo in range(0, b, c):
        hi = min(b, lo + c)
        # the last chunk is padded with repeats of its last resample (one compiled shape)
        rows = np.minimum(np.arange(lo, lo + c), hi - 1)
        stacked = Problem(problem.law, problem.objective, np.tile(problem.log_vars, (c, 1)),
                          np.tile(problem.y, c), slots, problem.n_free,
                          fixed_draws[rows].reshape(-1), np.tile(base, c))
        W = np.zeros((c, c * n))
        for i, r in enumerate(rows):
            W[i, i * n:(i + 1) * n] = weights[r]
        d, good = bootstrap(stacked, candidates, W, chunk=c, max_steps=max_steps)
        draws[lo:hi], ok[lo:hi] = d[: hi - lo], good[: hi - lo]
        if progress is not None:
            progress(hi, b)
    return draws, ok
