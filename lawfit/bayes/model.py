"""The numpyro model of one fit, generated from its :class:`~lawfit.lsq.Problem`.

There is no hand-written model per law. For every free slot of the layout one sample site, named
like the free parameter (``E``, ``alpha``, ``A[model_params]``), in *natural* units; the law's
log-scale parameters (A, B, E) get priors on the positive axis (``lawfit/bayes/priors.py``), so
NUTS moves in their logs exactly as the least-squares solver does.

Likelihood, on the residual space of the objective: ``log y ~ f(log L(theta), s_i)`` for the
``-log`` objectives, ``y ~ f(L(theta), s_i)`` otherwise, with ``f`` Student-t (default: the
Bayesian counterpart of the Huber penalty, heavy tails with fitted degrees of freedom ``nu``) or
normal, a fitted noise scale ``sigma`` and per-run scales ``s_i = sigma / sqrt(w_i)`` (precision
weights: a mean of ``n`` seeds has ``w = n``).

The model is pure: it holds no sampler state. Inference lives in ``lawfit/bayes/inference.py``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import log_density

from .. import lsq
from ..errors import DataError
from ..numerics import float64
from .priors import Priors, resolve_priors

__all__ = ["LIKELIHOODS", "PAD", "UNIT", "Model", "build_model", "centring", "free_params_of",
           "two_point"]

LIKELIHOODS = ("student", "normal")
PAD = 64                        # runs are padded (masked) to a multiple of this: shared compiles
REPARAM_ARRAYS = ("shear", "shift", "unit", "loss_scale", "anchor_g", "anchor_c")  # beside runs
UNIT = 1e-3                    # reparameterised terms are linear above this share of the loss


@dataclass(frozen=True, eq=False)
class Model:
    """The numpyro model of one Problem.

    ``model(data, obs=None)`` is an ordinary numpyro model (sample sites: the free parameters in
    natural units, ``sigma``, ``nu``; observed site ``log_loss`` or ``loss`` over plate ``run``).
    The data (log variables, slots, frozen values, per-run scales) are arguments, not constants,
    so that one compiled sampler serves every dataset of the same shape.

    Attributes
    ----------
    law : lawfit.laws.Law
    space : {"log", "loss"}
        Where the likelihood lives (the objective's residual space).
    free_params : tuple of str
        The law parameter of every free slot.
    priors : Priors
    likelihood : {"student", "normal"}
    nu : float or None
        Fixed Student-t degrees of freedom (None: fitted).
    obs_name : str
        ``"log_loss"`` (log-space objectives) or ``"loss"``.
    data : dict
        ``log_vars`` (N, V), ``slots`` (N, P), ``fixed`` (k,), ``scale`` (N,).
    obs : numpy.ndarray
        (N,) observed values in the likelihood's space.
    reparam : tuple of bool
        Per free parameter: sampled as its term's value at the centre of the data
        (:func:`centring`).
    pairs : tuple of (int, int)
        (scale, exponent) free-parameter pairs sampled as their term's values at the two ends of
        the data (:func:`two_point`).
    """
    law: object
    space: str
    free_params: tuple
    priors: Priors
    likelihood: str
    nu: float | None
    obs_name: str
    data: dict
    obs: np.ndarray
    reparam: tuple = ()
    pairs: tuple = ()

    @property
    def n_free(self) -> int:
        """Number of free law parameters (sample sites before ``sigma``)."""
        return len(self.free_params)

    @property
    def n(self) -> int:
        """Number of runs."""
        return len(self.obs)

    def key(self) -> tuple:
        """What a compiled sampler depends on besides array shapes."""
        return (self.law.name, (self.law.source or {}).get("sha256"), self.space,
                self.free_params, self.priors.sites,
                self.priors.key(), self.likelihood, self.nu,
                self.reparam, self.pairs)

    def log_pred(self, data: Mapping, free_natural):
        """log L per run from the free parameters in natural units ((F,) array)."""
        internal = jnp.stack([jnp.log(free_natural[j]) if p in self.law.log_params
                              else free_natural[j] for j, p in enumerate(self.free_params)])
        phi = jnp.concatenate([internal, jnp.asarray(data["fixed"], jnp.float64)])
        return self.law.log_predict(phi[data["slots"]], data["log_vars"])

    def observation_dist(self, data: Mapping, params: Mapping):
        """The likelihood of every run given natural parameter values (site name -> value)."""
        free = jnp.stack([params[s] for s in self.priors.sites[: self.n_free]])
        lp = self.log_pred(data, free)
        mu = lp if self.space == "log" else jnp.exp(lp)
        s = params["sigma"] * data["scale"]
        if self.likelihood == "student":
            nu = params["nu"] if self.nu is None else self.nu
            return dist.StudentT(nu, mu, s)
        return dist.Normal(mu, s)

    def __call__(self, data: Mapping, obs=None):
        params = {s: numpyro.sample(s, dist.Gamma(2.0, 2.0 / data["loss_scale"]) if scaled else d)
                  for s, d, scaled in zip(self.priors.sites, self.priors.dists,
                                          self.priors.scaled or (False,) * len(self.priors.sites))}
        f = self.observation_dist(data, params)
        if "mask" in data:                      # padding runs (see ``padded``) add nothing
            f = f.mask(data["mask"])
        with numpyro.plate("run", data["scale"].shape[0]):
            numpyro.sample(self.obs_name, f, obs=obs)

    def arrays(self) -> dict:
        """The model's data as jax arrays (no padding)."""
        return {k: jnp.asarray(v) for k, v in self.data.items()}

    def padded(self):
        """(data, obs) as jax arrays padded with masked runs to a multiple of :data:`PAD`, so
        that one compiled sampler serves every dataset of up to that many runs."""
        n = self.n
        m = max(PAD, math.ceil(n / PAD) * PAD)

        def pad(a, fill):
            out = np.full((m,) + a.shape[1:], fill, dtype=a.dtype)
            out[:n] = a
            return jnp.asarray(out)
        data = {"log_vars": pad(self.data["log_vars"], 0.0), "slots": pad(self.data["slots"], 0),
                "fixed": jnp.asarray(self.data["fixed"]), "scale": pad(self.data["scale"], 1.0),
                "mask": pad(np.ones(n, bool), False)}
        data |= {k: jnp.asarray(self.data[k]) for k in REPARAM_ARRAYS}
        return data, pad(self.obs, float(self.obs[0]))

    # unconstrained flat vector <-> sites
    def transforms(self) -> list:
        """numpyro's bijection from the real line onto every prior's support, site order (the
        reparameterised scale parameters use :meth:`constrain`'s own map instead)."""
        return [biject_to(d.support) for d in self.priors.dists]

    def constrain(self, u, data: Mapping | None = None):
        """(..., D) unconstrained -> ({site: (...) natural value}, log|det J| (...)).

        Every site moves through numpyro's bijection onto its prior's support, except

        * the (scale, exponent) pairs (``pairs``, :func:`two_point`): their two coordinates are
          the term's values at the two ends of the data, ``t = unit * softplus(u)`` in loss
          units; the exponent is ``(log t1 - log t2) / (g1 - g2)`` and
          ``log A = log t1 - g1 * exponent - c`` (``anchor_g``, ``anchor_c``);
        * the centred scale parameters (``reparam``): their coordinate is the value of their
          term at the centre of the data, ``t = unit * softplus(u)`` in loss units (see
          :func:`centring`), and ``log A = log t - shear @ internal - shift``.
        """
        data = self.data if data is None else data
        ts = self.transforms()
        paired = {i for pair in self.pairs for i in pair}
        unit = jnp.asarray(data["unit"])
        params, logdet = {}, 0.0
        sites = self.priors.sites
        for i, (s, t) in enumerate(zip(sites, ts)):
            if i < self.n_free and ((self.reparam and self.reparam[i]) or i in paired):
                continue
            x = t(u[..., i])
            params[s] = x
            logdet = logdet + t.log_abs_det_jacobian(u[..., i], x)

        def log_term(v):          # log(unit * softplus(v)) and its log-derivative in v
            sp = jax.nn.softplus(v)
            return jnp.log(unit * sp), jax.nn.log_sigmoid(v) - jnp.log(sp)
        if self.pairs:
            g = jnp.asarray(data["anchor_g"])
            c = jnp.asarray(data["anchor_c"])
        for j, k in self.pairs:
            l1, d1 = log_term(u[..., j])
            l2, d2 = log_term(u[..., k])
            expo = (l1 - l2) / (g[j, 0] - g[j, 1])
            log_a = l1 - g[j, 0] * expo - c[j]
            params[sites[j]] = jnp.exp(log_a)
            params[sites[k]] = expo
            # d(A, exponent) / d(u_j, u_k) = A / |g1 - g2| * prod d log t / d u
            logdet = logdet + log_a - jnp.log(jnp.abs(g[j, 0] - g[j, 1])) + d1 + d2
        if any(self.reparam):
            internal = jnp.stack(
                [jnp.zeros_like(u[..., j]) if self.reparam[j]
                 else (jnp.log(params[s]) if self.free_params[j] in self.law.log_params
                       else params[s])
                 for j, s in enumerate(sites[: self.n_free])], -1)
            shear = jnp.asarray(data["shear"])
            shift = jnp.asarray(data["shift"])
            centre = internal @ shear.T + shift                  # (..., F)
            for j, s in enumerate(sites[: self.n_free]):
                if not self.reparam[j]:
                    continue
                term = unit * jax.nn.softplus(u[..., j])         # term value at the centre
                log_a = jnp.log(term) - centre[..., j]
                params[s] = jnp.exp(log_a)
                # d natural / d u = natural * (1 / term) * unit * sigmoid(u)
                logdet = logdet + log_a - jnp.log(term) + jnp.log(unit) \
                    + jax.nn.log_sigmoid(u[..., j])
        return params, logdet

    def unconstrain(self, values: Mapping) -> np.ndarray:
        """(D,) unconstrained vector of natural site values (a missing site: 0)."""
        ts = self.transforms()
        out = np.array([float(t.inv(jnp.asarray(values[s]))) if s in values else 0.0
                        for s, t in zip(self.priors.sites, ts)])
        if not (any(self.reparam) or self.pairs):
            return out
        unit = float(self.data["unit"])

        def inv_term(log_t):      # softplus^-1(exp(log_t) / unit)
            y = min(max(float(np.exp(log_t)) / unit, 1e-300), 1e300)
            return y + np.log(-np.expm1(-y)) if y < 30 else y
        nat = {s: (values[s] if s in values else float(ts[i](0.0)))
               for i, s in enumerate(self.priors.sites[: self.n_free])}
        internal = np.array([np.log(nat[s]) if self.free_params[j] in self.law.log_params
                             else nat[s] for j, s in enumerate(self.priors.sites[: self.n_free])])
        g, c = self.data["anchor_g"], self.data["anchor_c"]
        for j, k in self.pairs:
            out[j] = inv_term(internal[j] + g[j, 0] * internal[k] + c[j])
            out[k] = inv_term(internal[j] + g[j, 1] * internal[k] + c[j])
        if any(self.reparam):
            plain = np.where(np.asarray(self.reparam), 0.0, internal)
            centre = self.data["shear"] @ plain + self.data["shift"]
            for j in range(self.n_free):
                if self.reparam[j]:
                    out[j] = inv_term(internal[j] + centre[j])
        return out

    def potential(self, u, data: Mapping, obs):
        """Negative log posterior density in the unconstrained space (numpyro's log_density of
        this model, plus the log-Jacobian of the support transforms)."""
        params, logdet = self.constrain(u, data)
        lp, _ = log_density(self, (data,), {"obs": obs}, params)
        return -(lp + logdet)


def free_params_of(problem: lsq.Problem) -> tuple:
    """The law parameter of every free slot of ``problem`` (read from its slots)."""
    out = [None] * problem.n_free
    for j, p in enumerate(problem.law.params):
        for slot in np.unique(problem.slots[:, j]):
            if slot < problem.n_free:
                out[slot] = p
    return tuple(out)


@float64
def build_model(problem: lsq.Problem, free_names: Sequence[str], *, priors: Mapping | None = None,
                likelihood: str = "student", nu: float | None = None,
                weights=None, centre: bool = True, ends: bool = False) -> Model:
    """The numpyro model of ``problem``.

    Parameters
    ----------
    problem : lawfit.lsq.Problem
        Law, objective (its space decides the likelihood's), runs, slots, frozen values.
    free_names : sequence of str
        Name of every free slot (the sample sites).
    priors : mapping, optional
        The user's priors (see :func:`lawfit.bayes.priors.resolve_priors`).
    likelihood : {"student", "normal"}
    nu : float, optional
        Fixed Student-t degrees of freedom instead of a fitted ``nu``.
    weights : array_like, optional
        (N,) precision weights (default: the problem's, else 1).
    centre : bool
        Sample scale parameters as their term's value at the centre of the data
        (:func:`centring`); False samples every site in its own log or natural units.
    ends : bool
        Sample a term with one scale and one exponent as its values at the two ends of the
        data (:func:`two_point`); needs ``centre`` (False: such terms are centred).

    Returns
    -------
    Model

    Raises
    ------
    DataError
        Unknown likelihood, non-positive ``nu`` or weights, a bad prior.
    """
    if likelihood not in LIKELIHOODS:
        raise DataError(f"unknown likelihood {likelihood!r}: choose {' or '.join(LIKELIHOODS)}")
    if nu is not None and not (float(nu) > 0):
        raise DataError(f"Student-t degrees of freedom must be positive, got {nu}")
    w = problem.weights if weights is None else weights
    w = np.ones(problem.n) if w is None else np.asarray(w, np.float64)
    if w.shape != (problem.n,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise DataError(f"weights must be {problem.n} positive finite numbers (one per run)")
    fp = free_params_of(problem)
    pr = resolve_priors(problem.law, tuple(free_names), fp, priors, likelihood, nu,
                        loss_scale=float(np.min(problem.y)))
    space = problem.objective.space
    data = {"log_vars": np.asarray(problem.log_vars, np.float64),
            "slots": np.asarray(problem.slots, np.int32),
            "fixed": np.asarray(problem.fixed, np.float64),
            "scale": 1.0 / np.sqrt(w)}
    obs = np.log(problem.y) if space == "log" else np.asarray(problem.y, np.float64)
    f = len(fp)
    pairs, anchor_g, anchor_c = two_point(problem, fp, pr) if centre and ends else (
        (), np.zeros((f, 2)), np.zeros(f))
    reparam, shear, shift = centring(problem, fp, pr, {i for p in pairs for i in p}) \
        if centre else ((False,) * f, np.zeros((f, f)), np.zeros(f))
    data |= {"shear": shear, "shift": shift, "unit": np.float64(UNIT * np.median(problem.y)),
             "loss_scale": np.float64(np.min(problem.y)), "anchor_g": anchor_g,
             "anchor_c": anchor_c}
    return Model(problem.law, space, fp, pr, likelihood, None if nu is None else float(nu),
                 "log_loss" if space == "log" else "loss", data, obs, reparam, pairs)


def _scale_terms(t: np.ndarray, j: int, free_params, priors, law):
    """(rows, terms) where scale parameter ``j`` enters with coefficient 1, exactly one term
    per run, or None when ``j`` is not such a scale parameter (with a prior on (0, inf))."""
    if free_params[j] not in law.log_params or \
            priors.dists[j].support is not constraints.positive:
        return None
    rows, terms = np.nonzero(t[:, :, j])
    if len(rows) == 0 or len(np.unique(rows)) != len(rows) or not np.all(
            t[rows, terms, j] == 1.0):
        return None
    return rows, terms


def two_point(problem: lsq.Problem, free_params: Sequence[str], priors: Priors):
    """Which (scale, exponent) pairs are sampled as their term's values at the ends of the data.

    A term ``A X^-alpha`` (``log T = log A + g_n alpha + c_n``, ``g_n = -log X_n``) whose data
    see only part of its curve identifies little more than its level and slope: sampled as
    (log A, alpha), or as its value at the centre and alpha (:func:`centring`), the posterior of
    ``E + B D^-beta`` is a curved ridge from E = 0 (small beta) to the term vanishing (large
    beta), with a funnel at its end. Sampled as the term's values at the smallest and the
    largest ``g`` of its runs, in loss units (``unit * softplus(u)``, linear above
    ``UNIT * median loss``), the level at both ends of the data is a linear function of the
    coordinates and that ridge is a straight line, which a dense mass matrix follows. The
    priors are unchanged (on A and alpha, natural units; the Jacobian is in
    ``Model.constrain``).

    A pair qualifies when A qualifies for :func:`centring`, its term's other coefficients touch
    exactly one free parameter, an exponent with a prior on the whole real line that enters
    no other term, and ``g`` takes at least two values.

    Returns
    -------
    (tuple of (int, int), numpy.ndarray, numpy.ndarray)
        the pairs, ``anchor_g`` (F, 2): the exponent's coefficient at the two ends (row of the
        scale), ``anchor_c`` (F,): the term's mean offset.
    """
    f = len(free_params)
    g_out, c_out = np.zeros((f, 2)), np.zeros(f)
    if not problem.law.analytic or f == 0:
        return (), g_out, c_out
    t, c = problem.design()                                  # (N, K, F), (N, K)
    pairs, used = [], set()
    for j in range(f):
        found = _scale_terms(t, j, free_params, priors, problem.law)
        if found is None:
            continue
        rows, terms = found
        tt = t[rows, terms, :].copy()
        tt[:, j] = 0.0
        others = np.nonzero(np.any(tt != 0.0, axis=0))[0]
        if len(others) != 1:
            continue
        k = int(others[0])
        if (k in used or free_params[k] in problem.law.log_params
                or priors.dists[k].support is not constraints.real
                or np.count_nonzero(t[:, :, k]) != np.count_nonzero(tt[:, k])):
            continue
        g = tt[:, k]
        lo, hi = float(g.min()), float(g.max())
        if not hi - lo > 1e-6 * max(1.0, abs(lo), abs(hi)):
            continue
        pairs.append((j, k))
        used |= {j, k}
        g_out[j] = (lo, hi)
        c_out[j] = float(c[rows, terms].mean())
    return tuple(pairs), g_out, c_out


def centring(problem: lsq.Problem, free_params: Sequence[str], priors: Priors,
             exclude=frozenset()):
    """Which scale parameters are sampled as their term's value at the centre of the data.

    In ``log L = logsumexp_k(T[n, k] @ theta + c[n, k])`` (``Problem.design``) a scale parameter
    ``log A`` enters one term with coefficient 1, next to exponents times log variables that
    are far from 0 (log 1e9 = 21). Sampled as ``A`` (in logs), its posterior is a thin curved
    ridge with the exponent, and where a term is weakly identified (E + B D^-beta with a small
    beta: only the level and the slope are seen) the logs bend the ridge further: E, B and beta
    trade off linearly in loss units but not in log units. So the coordinate of such a
    parameter is the term's value at the mean log variables of its runs,
    ``t = exp(log A + shear @ theta + shift)`` (``shear`` holds the mean of the term's other
    coefficients), in loss units through a scaled softplus that is linear above
    ``UNIT * median loss`` and logarithmic below it (a term may still shrink to 0). The priors
    are unchanged (they stay on A, in natural units; the Jacobian is in ``Model.constrain``).

    A parameter qualifies when it is a scale parameter of the law (``log_params``) with a prior
    on the whole positive axis, enters exactly one term of every run it appears in with
    coefficient 1, and its term's other coefficients touch only exponents (not another
    reparameterised scale), and it is not in ``exclude`` (the scales of :func:`two_point`'s
    pairs). Laws without terms (jax laws) are sampled as before.

    Returns
    -------
    (tuple of bool, numpy.ndarray, numpy.ndarray)
        reparameterised flag per free parameter, ``shear`` (F, F), ``shift`` (F,).
    """
    f = len(free_params)
    none = ((False,) * f, np.zeros((f, f)), np.zeros(f))
    if not problem.law.analytic or f == 0:
        return none
    t, c = problem.design()                                  # (N, K, F), (N, K)
    shear, shift = np.zeros((f, f)), np.zeros(f)
    ok = np.zeros(f, bool)
    for j in range(f):
        found = None if j in exclude else _scale_terms(t, j, free_params, priors, problem.law)
        if found is None:
            continue
        rows, terms = found
        tt = t[rows, terms, :].copy()
        tt[:, j] = 0.0
        shear[j] = tt.mean(axis=0)
        shift[j] = c[rows, terms].mean()
        ok[j] = True
    changed = True
    while changed:           # a term's other coefficients may touch only plain coordinates
        changed = False
        for j in np.nonzero(ok)[0]:
            if np.any(shear[j][ok] != 0.0):
                ok[j] = False
                changed = True
    shear[~ok] = 0.0
    shift[~ok] = 0.0
    return tuple(bool(v) for v in ok), shear, shift
