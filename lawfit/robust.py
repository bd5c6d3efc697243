"""Least absolute deviation and small-threshold Huber fits: iteratively reweighted least squares.

The Newton solver of lsq.py needs curvature. Huber's penalty has none outside its threshold, so
with a tiny delta (``--delta 1e-7``) almost no run contributes curvature and Newton stalls
(``not_converged``); least absolute deviation (``l1``, the delta -> 0 limit) has none at all.
Epoch AI's published Chinchilla-replication point (Besiroglu et al. 2024: A 482.01, B 2085.43,
E 1.8172, alpha 0.3478, beta 0.3658) maximises a Huber likelihood whose scale sigma is fitted
with delta = 1e-3 on the standardized residual: at the optimum sigma is about delta * mean |r|, so
the effective threshold on the residual is delta^2 * mean |r| ~ 2e-8 nats of log loss, and the
estimator is least absolute deviation to within 1e-6 of its objective.

Here both are solved by majorize-minimize (IRLS): at the current residuals r, Huber_delta is
majorized by the quadratic sum w_i r_i^2 / 2 with w_i = min(1, delta / |r_i|) (equal at r), so a
weighted least-squares fit, which the Newton solver handles well, never increases the objective.
``l1`` minimises Huber_delta / delta by continuation: delta shrinks by 10x per stage from the
residuals' median to ``L1_DELTA`` x the residuals' scale; Huber_delta/delta differs from |r| by at
most delta/2 per run, so the L1 objective at the final point is within N * delta of the L1
optimum (``info["l1_gap_bound"]``).

Convergence is checked, not assumed: a stage's IRLS steps end when the relative decrease of the
objective falls below ``FTOL``; then the Newton solver of lsq.py polishes the point on the Huber
objective itself (near the optimum the runs inside the threshold give it curvature) and its own
convergence test decides; failing that, the stage counts as converged only when the objective's
gradient is below ``GTOL`` of the total gradient magnitude (sum over runs of
|w_i rho'(r_i) dr_i/dtheta|: the net force a negligible share of the forces). Otherwise the fit is
``not_converged``.

Pure: arrays in, arrays out.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from . import lsq
from .numerics import float64
from .objectives import Objective, make_objective
from .problem import Problem

__all__ = ["needs_irls", "residuals", "solve"]

FTOL = 1e-6          # relative decrease per IRLS step that hands a stage to the Newton polish
GTOL = 1e-5           # max |gradient| / total gradient magnitude, per parameter
MAX_ITER = 500        # IRLS steps per stage
L1_DELTA = 1e-8       # final continuation threshold, relative to the residuals' scale
SMALL_DELTA = 1e-5    # Huber thresholds below this use IRLS


def needs_irls(objective: Objective) -> bool:
    """True for ``l1`` objectives and for Huber with a threshold too small for Newton (below
    ``SMALL_DELTA``, in nats of loss or of log loss)."""
    return objective.kind == "l1" or (objective.kind == "huber"
                                      and objective.delta < SMALL_DELTA)


def _weighted_ls(problem: Problem) -> Objective:
    return make_objective("mse-log" if problem.objective.space == "log" else "mse")


@float64
def residuals(problem: Problem, free: np.ndarray) -> np.ndarray:
    """Residuals (N,) of the problem's runs in its objective's space at free parameters."""
    phi = jnp.concatenate([jnp.asarray(free, jnp.float64),
                           jnp.asarray(problem.fixed, jnp.float64)])
    return np.asarray(_residual_fn(problem)(phi[jnp.asarray(problem.slots)]))


def _residual_fn(problem: Problem):
    law, log_space = problem.law, problem.objective.space == "log"
    lv, y = jnp.asarray(problem.log_vars), jnp.asarray(problem.y)

    def r(params):                       # params (N, P) internal, one row per run
        lp = law.log_predict(params, lv)
        return lp - jnp.log(y) if log_space else jnp.exp(lp) - y
    return r


def _huber(r, delta):
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _base_weights(problem: Problem) -> np.ndarray:
    return np.ones(problem.n) if problem.weights is None else np.asarray(problem.weights, float)


def _gradient_check(problem: Problem, free: np.ndarray, delta: float, w: np.ndarray) -> float:
    """max_j |dF/dtheta_j| / sum_i |w_i rho'(r_i) dr_i/dtheta_j| for F = sum w Huber_delta."""
    slots = jnp.asarray(problem.slots)
    fixed = jnp.asarray(problem.fixed, jnp.float64)
    rfn = _residual_fn(problem)

    def rv(theta):
        return rfn(jnp.concatenate([theta, fixed])[slots])
    theta = jnp.asarray(free, jnp.float64)
    jac = np.asarray(jax.jacfwd(rv)(theta))                      # (N, F)
    r = np.asarray(rv(theta))
    force = w * np.clip(r, -delta, delta)                        # w * Huber'(r)
    g = force @ jac
    total = np.abs(force) @ np.abs(jac)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(total > 0, np.abs(g) / total, 0.0)
    return float(np.max(ratio)) if ratio.size else 0.0


def _stage(problem, theta, delta, w0, max_iter, polish):
    """IRLS at one threshold: returns (theta, objective, converged, steps, grad_ratio)."""
    ls = _weighted_ls(problem)
    r = residuals(problem, theta)
    f = float(np.sum(w0 * _huber(r, delta)))
    steps = 0
    for steps in range(1, max_iter + 1):
        w = w0 * np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
        sub = dataclasses.replace(problem, objective=ls, weights=w)
        ms = lsq.refine(sub, np.asarray(theta)[None, :])
        r_new = residuals(problem, ms.theta)
        f_new = float(np.sum(w0 * _huber(r_new, delta)))
        if not (f_new <= f * (1 + 1e-14) + 1e-300):    # MM never increases: numerical floor
            break
        decrease = f - f_new
        theta, r, f = ms.theta, r_new, f_new
        if decrease <= FTOL * max(f, 1e-300):
            break
    # polish: near the optimum the runs inside the threshold are known and give the Huber
    # objective its curvature, so Newton (with its own convergence test) finishes the stage
    # (final stage only: each threshold is a new compiled objective)
    newton = False
    if polish:
        hub = make_objective("huber-log" if problem.objective.space == "log" else "huber", delta)
        pol = lsq.refine(dataclasses.replace(problem, objective=hub, weights=w0), theta[None, :])
        newton = bool(pol.converged)
        if newton and np.isfinite(pol.value) and pol.value <= f * (1 + 1e-12):
            theta, f = pol.theta, float(pol.value)
    ratio = _gradient_check(problem, theta, delta, w0)
    return theta, f, newton or ratio <= GTOL, steps, ratio


@float64
def solve(problem: Problem, theta0: np.ndarray, *, max_iter: int = MAX_ITER) -> lsq.LsqFit:
    """Minimise the problem's ``l1`` (or small-delta ``huber``) objective from ``theta0``.

    Parameters
    ----------
    problem : Problem
        The fit, its objective ``l1``/``l1-log`` or ``huber``/``huber-log``.
    theta0 : array (F,)
        Start, e.g. the Huber(1e-3) optimum.
    max_iter : int
        IRLS steps per stage.

    Returns
    -------
    lsq.LsqFit
        The final free parameters, the problem's own objective there (sum of |r| for l1) and the
        convergence flag of the final stage; ``info`` lists the stages (delta, IRLS steps,
        gradient ratio, converged) and, for l1, ``l1_gap_bound``.
    """
    w0 = _base_weights(problem)
    theta = np.asarray(theta0, np.float64)
    r = residuals(problem, theta)
    scale = float(np.median(np.abs(r))) or 1e-3
    if problem.objective.kind == "l1":
        ref = 1.0 if problem.objective.space == "log" else float(np.median(np.abs(problem.y)))
        final = L1_DELTA * ref
        deltas = []
        d = max(scale, final)
        while d > final:
            deltas.append(d)
            d /= 10.0
        deltas.append(final)
    else:
        final = problem.objective.delta
        deltas = [d for d in (scale * 10.0 ** -k for k in range(30)) if d > final] + [final]
    stages, steps, conv = [], 0, False
    for i, d in enumerate(deltas):
        theta, _, conv, n, ratio = _stage(problem, theta, d, w0, max_iter,
                                          polish=i == len(deltas) - 1)
        steps += n
        stages.append({"delta": d, "steps": n, "gradient_ratio": ratio,
                       "converged": conv if i == len(deltas) - 1 else None})
    r = residuals(problem, theta)
    value = float(np.sum(w0 * (np.abs(r) if problem.objective.kind == "l1"
                               else _huber(r, problem.objective.delta))))
    info = {"solver": "irls", "stages": stages}
    if problem.objective.kind == "l1":
        info["l1_gap_bound"] = float(np.sum(w0) * final)
    return lsq.LsqFit(theta=theta, value=value, converged=bool(conv), n_starts=1,
                      n_at_optimum=1, candidates=theta[None, :], steps=steps, info=info)

