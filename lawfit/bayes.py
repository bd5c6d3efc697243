"""Bayesian fits: a numpyro model built from any law, NUTS, arviz diagnostics, PSIS-LOO.

The model is generated from the :class:`~lawfit.lsq.Problem` (law, objective, runs, slots of a joint
layout, frozen parameters); there is no hand-written model per law. For every free slot of the
layout one sample site, named like the free parameter (``E``, ``alpha``, ``A[model_params]``), in
*natural* units; the law's log-scale parameters (A, B, E) get priors on the positive axis, so NUTS
moves in their logs exactly as the least-squares solver does.

Likelihood, on the residual space of the objective (DESIGN.md): ``log y ~ f(log L(theta), s_i)``
for the ``-log`` objectives, ``y ~ f(L(theta), s_i)`` otherwise, with ``f`` Student-t (default:
the Bayesian counterpart of the Huber penalty, heavy tails with fitted degrees of freedom ``nu``) or
normal, a fitted noise scale ``sigma`` and per-run scales ``s_i = sigma / sqrt(w_i)`` (precision
weights: a mean of ``n`` seeds has ``w = n``).

Default priors (weakly informative, natural units; every one can be overridden, see
:func:`resolve_priors`):

==========================  ==============================  ===================================
parameter                   prior                           why
==========================  ==============================  ===================================
E (irreducible loss)        LogNormal(0, 2)                 losses in nats: 95% in [0.02, 50]
other scales (A, B)         LogNormal(0, 15)                log A within +-30: any X^alpha range
exponents (alpha, beta)     Normal(0, 1)                    sign left to the data (PET sizes
                                                            have alpha ~ 0, Zhang et al. Table 4)
sigma (noise scale)         HalfNormal(0.5)                 residuals in nats or log nats
nu (Student-t dof)          Gamma(2, 0.1)                   Juarez & Steel (2010); mean 20
==========================  ==============================  ===================================

NUTS (dense mass matrix, target acceptance 0.9) runs several chains (default 4 x 1,000 warm-up +
1,000 draws) from points dispersed around the least-squares optimum by its Laplace covariance, so
R-hat can detect chains that disagree. The arviz object (posterior, posterior predictive, log
likelihood, observed and constant data, sample stats) is kept; diagnostics are R-hat (rank
normalised, split), bulk and tail ESS and divergences, with a warning when R-hat > 1.01, ESS < 400
or any transition diverged.

Every use of arviz lives in this module (``to_arviz``, ``diagnostics``, ``loo``, ``compare``,
``write_posteriors``, ``read_posteriors``) so that the next arviz API change touches one file.
Pure apart from ``write_posteriors``/``read_posteriors``/``read_priors``: no printing, progress
goes through the ``progress(message)`` callback.
"""
from __future__ import annotations

import json
import math
import time
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from lawfit.errors import DataError

from . import lsq

jax.config.update("jax_enable_x64", True)

import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.distributions.transforms import biject_to  # noqa: E402
from numpyro.infer.hmc import hmc  # noqa: E402
from numpyro.infer.util import log_density  # noqa: E402

CHAINS, WARMUP, DRAWS = 4, 1000, 1000
RHAT_MAX, ESS_MIN = 1.01, 400
PAD = 64                        # runs are padded (masked) to a multiple of this: shared compiles
TARGET_ACCEPT = 0.9
CHAIN_METHOD = "sequential"     # measured faster than "vectorized" on 2 cores (benchmarks/)
LIKELIHOODS = ("student", "normal")
NOISE_SITES = ("sigma", "nu")

# distributions a priors TOML file may name (numpyro.distributions classes)
TOML_DISTRIBUTIONS = ("Normal", "LogNormal", "HalfNormal", "HalfCauchy", "Cauchy", "StudentT",
                      "Exponential", "Gamma", "InverseGamma", "Uniform", "TruncatedNormal",
                      "Beta", "LogUniform")


# --- priors ----------------------------------------------------------------------------------

def default_prior(param: str, law) -> dist.Distribution:
    """The default prior of a law parameter (natural units) or of ``sigma`` / ``nu``."""
    if param == "sigma":
        return dist.HalfNormal(0.5)
    if param == "nu":
        return dist.Gamma(2.0, 0.1)
    if param in getattr(law, "ranges", {}):      # a jax law: its plausible range, as 95%
        lo, hi = law.ranges[param]
        if param in law.log_params:
            return dist.LogNormal((math.log(lo) + math.log(hi)) / 2, (math.log(hi / lo)) / 4)
        return dist.Normal((lo + hi) / 2, (hi - lo) / 4)
    if param in law.log_params:
        return dist.LogNormal(0.0, 2.0) if param == "E" else dist.LogNormal(0.0, 15.0)
    return dist.Normal(0.0, 1.0)


def describe(d) -> str:
    """Readable text of a numpyro distribution, e.g. ``LogNormal(loc=0, scale=15)``."""
    name = type(d).__name__
    args = []
    for k in getattr(d, "arg_constraints", {}):
        v = getattr(d, k, None)
        if v is None:
            continue
        a = np.asarray(v)
        if a.ndim == 0:
            args.append(f"{k}={float(a):g}")
    if name == "TruncatedNormal" or (not args and hasattr(d, "base_dist")):
        base = getattr(d, "base_dist", None)
        low, high = getattr(d, "low", None), getattr(d, "high", None)
        inner = describe(base) if base is not None else ""
        return f"{name}({inner}, low={low}, high={high})"
    return f"{name}({', '.join(args)})"


def _positive_support(d) -> bool:
    lb = getattr(d.support, "lower_bound", None)
    try:
        return lb is not None and float(np.min(np.asarray(lb))) >= 0.0
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Priors:
    """Priors per site (free parameter names, ``sigma``, ``nu``), with where each came from."""
    sites: tuple                     # site names, free parameters first, then noise sites
    dists: tuple                     # numpyro distributions, same order
    sources: tuple                   # "default" | "law parameter X" | "free parameter X"

    def as_dict(self) -> dict:
        return {s: {"prior": describe(d), "source": src}
                for s, d, src in zip(self.sites, self.dists, self.sources)}


def resolve_priors(law, free_names, free_params, priors: Mapping | None,
                   likelihood: str = "student", nu=None) -> Priors:
    """Priors for every site: a user's entry keyed by the free name (``A[model_params]``) wins,
    then one keyed by the law parameter (``A``: every A of a joint fit), then the default.
    ``sigma`` and ``nu`` may be given too. Scale parameters need a prior on the positive axis."""
    priors = dict(priors or {})
    noise = ["sigma"] + (["nu"] if likelihood == "student" and nu is None else [])
    valid = set(law.params) | set(free_names) | set(NOISE_SITES)
    unknown = sorted(k for k in priors if k not in valid)
    if unknown:
        raise DataError(f"prior for unknown parameter(s) {unknown}: law {law.name!r} has "
                        f"{', '.join([*dict.fromkeys([*law.params, *free_names]), *NOISE_SITES])}")
    sites, dists, sources = [], [], []
    for name, param in [*zip(free_names, free_params), *((s, s) for s in noise)]:
        if name in priors:
            d, src = priors[name], f"free parameter {name}" if name != param else f"{name}"
        elif param in priors:
            d, src = priors[param], f"law parameter {param}"
        else:
            d, src = default_prior(param, law), "default"
        if not isinstance(d, dist.Distribution):
            raise DataError(f"prior of {name} must be a numpyro distribution, got {d!r}")
        if d.batch_shape or d.event_shape:
            raise DataError(f"prior of {name} must be a scalar distribution, got batch shape "
                            f"{d.batch_shape} and event shape {d.event_shape}")
        if (param in law.log_params or param in NOISE_SITES) and not _positive_support(d):
            raise DataError(f"prior of {name} must live on the positive axis ({name} is a scale "
                            f"parameter): {describe(d)} has support {d.support}; use e.g. "
                            "LogNormal, HalfNormal, Gamma")
        sites.append(name)
        dists.append(d)
        sources.append(src)
    return Priors(tuple(sites), tuple(dists), tuple(sources))


def read_priors(path: str | Path) -> dict:
    """Read a priors TOML file into ``{name: numpyro distribution}``.

    One entry per parameter (law parameter name such as ``E`` or ``alpha``, a free name of a joint
    fit such as ``"A[model_params]"``, or ``sigma`` / ``nu``), each an inline table naming a
    distribution of ``numpyro.distributions`` and its arguments::

        E = { dist = "LogNormal", loc = 0.0, scale = 1.0 }
        alpha = { dist = "Normal", loc = 0.3, scale = 0.2 }
        sigma = { dist = "HalfNormal", scale = 0.05 }

    Entries may also sit under a ``[priors]`` table. Errors (unreadable file, unknown distribution,
    bad arguments) are :class:`DataError` with one line saying what to fix.
    """
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"no such priors file: {p}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read priors file {p}: {exc}") from None
    if "priors" in doc:
        if not isinstance(doc["priors"], dict) or len(doc) != 1:
            raise DataError(f"{p}: put every prior under [priors] or none of them")
        doc = doc["priors"]
    if not doc:
        raise DataError(f"{p} defines no priors")
    out = {}
    for name, spec in doc.items():
        if not isinstance(spec, dict) or "dist" not in spec:
            raise DataError(f"{p}: {name} must be a table like "
                            f'{{ dist = "LogNormal", loc = 0.0, scale = 1.0 }}, got {spec!r}')
        kind = spec["dist"]
        if kind not in TOML_DISTRIBUTIONS:
            raise DataError(f"{p}: unknown distribution {kind!r} for {name}: choose one of "
                            f"{', '.join(TOML_DISTRIBUTIONS)}")
        kwargs = {k: v for k, v in spec.items() if k != "dist"}
        bad = [k for k, v in kwargs.items()
               if isinstance(v, bool) or not isinstance(v, (int, float))]
        if bad:
            raise DataError(f"{p}: arguments of {name} must be numbers, got {bad}")
        try:
            d = getattr(dist, kind)(**{k: float(v) for k, v in kwargs.items()},
                                    validate_args=True)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{p}: bad arguments for {kind} prior of {name}: "
                            f"{str(exc).splitlines()[0]}") from None
        out[name] = d
    return out


# --- the model -------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Model:
    """The numpyro model of one Problem.

    ``model(data, obs=None)`` is an ordinary numpyro model (sample sites: the free parameters in
    natural units, ``sigma``, ``nu``; observed site ``log_loss`` or ``loss`` over plate ``run``).
    The data (log variables, slots, frozen values, per-run scales) are arguments, not constants,
    so that one compiled sampler serves every dataset of the same shape.
    """
    law: object
    space: str                       # "log" | "loss"
    free_params: tuple               # law parameter of every free slot
    priors: Priors
    likelihood: str
    nu: float | None                 # fixed Student-t dof (None: fitted)
    obs_name: str                    # "log_loss" (log-space objectives) or "loss"
    data: dict                       # log_vars (N, V), slots (N, P), fixed (k,), scale (N,)
    obs: np.ndarray                  # (N,) observed values in the likelihood's space

    @property
    def n_free(self) -> int:
        return len(self.free_params)

    @property
    def n(self) -> int:
        return len(self.obs)

    def key(self) -> tuple:
        """What the compiled sampler depends on besides array shapes."""
        return (self.law.name, (self.law.source or {}).get("sha256"), self.space, self.free_params, self.priors.sites,
                tuple(describe(d) for d in self.priors.dists), self.likelihood, self.nu)

    def log_pred(self, data, free_natural):
        """log L per run from the free parameters in natural units ((F,) array)."""
        internal = jnp.stack([jnp.log(free_natural[j]) if p in self.law.log_params
                              else free_natural[j] for j, p in enumerate(self.free_params)])
        phi = jnp.concatenate([internal, jnp.asarray(data["fixed"], jnp.float64)])
        return self.law.log_predict(phi[data["slots"]], data["log_vars"])

    def observation_dist(self, data, params: Mapping):
        """The likelihood of every run given natural parameter values (site name -> value)."""
        free = jnp.stack([params[s] for s in self.priors.sites[: self.n_free]])
        lp = self.log_pred(data, free)
        mu = lp if self.space == "log" else jnp.exp(lp)
        s = params["sigma"] * data["scale"]
        if self.likelihood == "student":
            nu = params["nu"] if self.nu is None else self.nu
            return dist.StudentT(nu, mu, s)
        return dist.Normal(mu, s)

    def __call__(self, data, obs=None):
        params = {s: numpyro.sample(s, d) for s, d in zip(self.priors.sites, self.priors.dists)}
        f = self.observation_dist(data, params)
        if "mask" in data:                      # padding runs (see ``padded``) add nothing
            f = f.mask(data["mask"])
        with numpyro.plate("run", data["scale"].shape[0]):
            numpyro.sample(self.obs_name, f, obs=obs)

    def padded(self):
        """(data, obs) as jax arrays padded with masked runs to a multiple of PAD, so that one
        compiled sampler serves every dataset of up to that many runs."""
        n = self.n
        m = max(PAD, int(math.ceil(n / PAD)) * PAD)

        def pad(a, fill):
            out = np.full((m,) + a.shape[1:], fill, dtype=a.dtype)
            out[:n] = a
            return jnp.asarray(out)
        data = {"log_vars": pad(self.data["log_vars"], 0.0), "slots": pad(self.data["slots"], 0),
                "fixed": jnp.asarray(self.data["fixed"]), "scale": pad(self.data["scale"], 1.0),
                "mask": pad(np.ones(n, bool), False)}
        return data, pad(self.obs, float(self.obs[0]))

    # unconstrained flat vector <-> sites (the transforms numpyro itself would use)
    def transforms(self):
        return [biject_to(d.support) for d in self.priors.dists]

    def constrain(self, u):
        """(..., D) unconstrained -> ({site: (...) natural value}, log|det J| (...))."""
        params, logdet = {}, 0.0
        for i, (s, t) in enumerate(zip(self.priors.sites, self.transforms())):
            x = t(u[..., i])
            params[s] = x
            logdet = logdet + t.log_abs_det_jacobian(u[..., i], x)
        return params, logdet

    def unconstrain(self, values: Mapping) -> np.ndarray:
        return np.array([float(t.inv(jnp.asarray(values[s]))) if s in values else 0.0
                         for s, t in zip(self.priors.sites, self.transforms())])

    def potential(self, u, data, obs):
        """Negative log posterior density in the unconstrained space (numpyro's log_density of
        this model, plus the log-Jacobian of the support transforms)."""
        params, logdet = self.constrain(u)
        lp, _ = log_density(self, (data,), {"obs": obs}, params)
        return -(lp + logdet)


def _free_params(problem: lsq.Problem) -> tuple:
    """Law parameter of every free slot (from the slots of the problem)."""
    out = [None] * problem.n_free
    for j, p in enumerate(problem.law.params):
        for slot in np.unique(problem.slots[:, j]):
            if slot < problem.n_free:
                out[slot] = p
    return tuple(out)


def build_model(problem: lsq.Problem, free_names, *, priors=None, likelihood="student",
                nu=None, weights=None) -> Model:
    """The numpyro model of ``problem``; see the module docstring for priors and likelihood."""
    if likelihood not in LIKELIHOODS:
        raise DataError(f"unknown likelihood {likelihood!r}: choose {' or '.join(LIKELIHOODS)}")
    if nu is not None and not (float(nu) > 0):
        raise DataError(f"Student-t degrees of freedom must be positive, got {nu}")
    w = problem.weights if weights is None else weights
    w = np.ones(problem.n) if w is None else np.asarray(w, np.float64)
    if w.shape != (problem.n,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise DataError(f"weights must be {problem.n} positive finite numbers (one per run)")
    fp = _free_params(problem)
    pr = resolve_priors(problem.law, tuple(free_names), fp, priors, likelihood, nu)
    space = problem.objective.space
    data = {"log_vars": np.asarray(problem.log_vars, np.float64),
            "slots": np.asarray(problem.slots, np.int32),
            "fixed": np.asarray(problem.fixed, np.float64),
            "scale": 1.0 / np.sqrt(w)}
    obs = np.log(problem.y) if space == "log" else np.asarray(problem.y, np.float64)
    return Model(problem.law, space, fp, pr, likelihood, None if nu is None else float(nu),
                 "log_loss" if space == "log" else "loss", data, obs)


# --- initialisation near the least-squares optimum -------------------------------------------

def lsq_optimum(problem: lsq.Problem, layout, rng) -> lsq.MultiStart:
    """The least-squares optimum of the problem's own objective (grid multi-start; a joint layout
    is started from its subsets' optima, as ``lawfit.fit`` does)."""
    from .fit import _solve_lsq
    sub_problems = []
    if len(layout.subsets) > 1:
        for s in range(len(layout.subsets)):
            m = np.all(problem.slots == layout.subset_slots[s], axis=1)
            sub_problems.append(lsq.Problem.simple(problem.law, problem.objective,
                                                   problem.log_vars[m], problem.y[m]))
    ms, _ = _solve_lsq(problem, problem.law, layout, sub_problems, "grid", "newton", rng)
    return ms


def init_values(model: Model, free_opt: np.ndarray) -> dict:
    """Natural values at the least-squares optimum (internal ``free_opt``), a robust noise scale
    from its residuals (MAD) and nu = 10; values outside a prior's support are left out (they
    start at the transform of 0)."""
    vals = {}
    for j, name in enumerate(model.priors.sites[: model.n_free]):
        p = model.free_params[j]
        vals[name] = float(np.exp(free_opt[j]) if p in model.law.log_params else free_opt[j])
    lp = np.asarray(model.log_pred({k: jnp.asarray(v) for k, v in model.data.items()},
                                   jnp.asarray([vals[s] for s in model.priors.sites[:model.n_free]])))
    pred = lp if model.space == "log" else np.exp(lp)
    r = (model.obs - pred) / model.data["scale"]
    mad = 1.4826 * np.median(np.abs(r - np.median(r)))
    vals["sigma"] = float(max(mad, 1e-3 * np.std(r), 1e-9 * (1 + np.abs(model.obs).max())))
    if "nu" in model.priors.sites:
        vals["nu"] = 10.0
    out = {}
    for name, d in zip(model.priors.sites, model.priors.dists):
        v = jnp.asarray(vals[name])
        if bool(d.support(v)) and np.isfinite(float(d.log_prob(v))):
            out[name] = vals[name]
    return out


_COMPILED: dict = {}


def _compiled(model: Model, what: str, *extra):
    """jit-compiled functions of a model structure, shared by every dataset of the same shape."""
    key = (what, model.key(), *extra)
    if key not in _COMPILED:
        _COMPILED[key] = _build(model, what, *extra)
    return _COMPILED[key]


def _build(model: Model, what: str, *extra):
    if what == "hessian":
        return jax.jit(jax.hessian(model.potential))
    if what == "predictive":
        def one(u, key, data, obs):
            f = model.observation_dist(data, model.constrain(u)[0])
            return f.log_prob(obs), f.sample(key)

        def pred(u, data, obs, key):                 # u (S, D) -> loglik, replicated obs (S, N)
            keys = jax.random.split(key, u.shape[0])
            return jax.vmap(one, in_axes=(0, 0, None, None))(u, keys, data, obs)
        return jax.jit(pred)
    if what == "nuts":
        chains, warmup, draws, chain_method, target_accept = extra
        init_kernel, sample_kernel = hmc(potential_fn_gen=lambda data, obs: (
            lambda u: model.potential(u, data, obs)), algo="NUTS")

        def one_chain(u0, key, inv_mass, data, obs):
            state = init_kernel(u0, warmup, inverse_mass_matrix=inv_mass, dense_mass=True,
                                target_accept_prob=target_accept, regularize_mass_matrix=False,
                                model_args=(data, obs), rng_key=key)

            def step(st, _):
                st = sample_kernel(st, model_args=(data, obs))
                return st, (st.z, st.diverging, st.num_steps, st.potential_energy,
                            st.accept_prob, st.adapt_state.step_size)

            _, out = jax.lax.scan(step, state, None, length=warmup + draws)
            return jax.tree_util.tree_map(lambda a: a[warmup:], out)

        def run(u0, keys, inv_mass, data, obs):
            if chain_method == "vectorized":
                return jax.vmap(one_chain, in_axes=(0, 0, None, None, None))(
                    u0, keys, inv_mass, data, obs)
            return jax.lax.map(lambda a: one_chain(a[0], a[1], inv_mass, data, obs), (u0, keys))
        return jax.jit(run)
    raise ValueError(what)


def laplace_start(model: Model, values: dict, chains: int, key, spread: float = 0.5):
    """Where the chains start, and a guess of the posterior covariance for NUTS' mass matrix.

    The Hessian of the potential (negative log posterior, unconstrained space) at the
    least-squares point gives a Laplace covariance (eigenvalues made positive). Each chain starts
    at the point plus one draw from that covariance, every direction capped at ``spread``
    unconstrained units: apart enough for R-hat to see chains that disagree, close enough to be
    in the bulk. Returns (u0 (chains, D), inverse mass matrix (D, D)).

    Starting NUTS' adaptation from this covariance matters: the log-scale and exponent of one
    term are correlated at ~0.999 (log X is far from 0) and posterior scales are ~1e-3, so from
    the identity (and with numpyro's default shrinkage of the adapted matrix towards 1e-3 I, which
    is therefore switched off) NUTS needs hundreds of leapfrog steps per transition.
    """
    u = model.unconstrain(values)
    data, obs = model.padded()
    h = np.asarray(_compiled(model, "hessian")(jnp.asarray(u), data, obs))
    d = len(u)
    if np.all(np.isfinite(h)):
        h = 0.5 * (h + h.T)
        ev, q = np.linalg.eigh(h)
        ev = np.maximum(np.abs(ev), 1e-10 * max(np.max(np.abs(ev)), 1e-300))
    else:
        ev, q = np.ones(d), np.eye(d)
    cov = (q / ev) @ q.T
    sd = np.minimum(1.0 / np.sqrt(ev), spread)
    zs = np.asarray(jax.random.normal(key, (chains, d)))
    return u[None, :] + (zs * sd) @ q.T, cov


# --- fitting ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Samples:
    """Raw NUTS output (post warm-up), chains first."""
    params: dict                     # site -> (chains, draws) natural values
    diverging: np.ndarray            # (chains, draws)
    num_steps: np.ndarray            # (chains, draws) leapfrog steps
    energy: np.ndarray               # (chains, draws) potential energy
    accept_prob: np.ndarray
    step_size: np.ndarray
    u: np.ndarray                    # (chains, draws, D) unconstrained
    seconds: float


def sample(model: Model, *, init: Mapping | None = None, chains: int = CHAINS,
           warmup: int = WARMUP, draws: int = DRAWS, chain_method: str = CHAIN_METHOD,
           target_accept: float = TARGET_ACCEPT, seed: int = 0) -> Samples:
    """NUTS (numpyro's kernel, dense mass matrix adapted during warm-up), every chain in one
    compiled program; chains start around ``init`` (natural values) by :func:`laplace_start`."""
    if chains < 1 or warmup < 1 or draws < 1:
        raise DataError(f"chains, warm-up and draws must be positive, got {chains}, {warmup}, "
                        f"{draws}")
    if chain_method not in ("sequential", "vectorized"):
        raise DataError(f"chain_method must be sequential or vectorized, got {chain_method!r}")
    t0 = time.perf_counter()
    k_init, k_run = jax.random.split(jax.random.PRNGKey(seed))
    u0, cov = laplace_start(model, dict(init or {}), chains, k_init)
    run = _compiled(model, "nuts", chains, warmup, draws, chain_method, target_accept)
    data, obs = model.padded()
    z, div, steps, energy, acc, eps = run(jnp.asarray(u0), jax.random.split(k_run, chains),
                                          jnp.asarray(cov), data, obs)
    z = np.asarray(jax.block_until_ready(z))
    params, _ = model.constrain(jnp.asarray(z))
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    return Samples(params, np.asarray(div), np.asarray(steps), np.asarray(energy),
                   np.asarray(acc), np.asarray(eps), z, time.perf_counter() - t0)


def free_draws(model: Model, samples: Samples) -> np.ndarray:
    """(chains * draws, F) internal free vectors (logs for the scale parameters)."""
    cols = []
    for j, name in enumerate(model.priors.sites[: model.n_free]):
        v = samples.params[name].reshape(-1)
        cols.append(np.log(v) if model.free_params[j] in model.law.log_params else v)
    return np.stack(cols, axis=-1)


def pointwise(model: Model, samples: Samples, seed: int):
    """Log likelihood of every run and replicated observations, both (chains, draws, N)."""
    c, n_draws, d = samples.u.shape
    data, obs = model.padded()
    ll, rep = _compiled(model, "predictive")(jnp.asarray(samples.u.reshape(-1, d)), data, obs,
                                              jax.random.PRNGKey(seed))
    n = model.n
    return (np.asarray(ll)[:, :n].reshape(c, n_draws, n),
            np.asarray(rep)[:, :n].reshape(c, n_draws, n))


def fit_problem(problem: lsq.Problem, layout, *, rng: np.random.Generator | None = None,
                progress: Callable[[str], None] | None = None, priors: Mapping | None = None,
                likelihood: str = "student", nu: float | None = None, weights=None,
                chains: int = CHAINS, warmup: int = WARMUP, draws: int = DRAWS,
                chain_method: str = CHAIN_METHOD, target_accept: float = TARGET_ACCEPT) -> dict:
    """Posterior of one problem (the Bayesian fitter behind ``lawfit.fit(fitter="bayes")``).

    Returns ``estimate`` (F,): the posterior median of every free parameter (internal units),
    ``draws`` (chains * draws, F) internal, ``status`` ("converged" unless R-hat > 1.01 or a
    transition diverged), ``warnings``, ``info`` (diagnostics, priors, likelihood, sampler
    settings, the least-squares starting point) and ``posterior`` (the arviz DataTree).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    model = build_model(problem, layout.free_names, priors=priors, likelihood=likelihood, nu=nu,
                        weights=weights)
    ms = lsq_optimum(problem, layout, rng)
    if progress:
        progress(f"  least-squares start: objective {ms.value:.6g} "
                 f"({'converged' if ms.converged else 'NOT converged'}); NUTS {chains} chains x "
                 f"({warmup} warm-up + {draws} draws)")
    seed = int(rng.integers(2 ** 31 - 1))
    smp = sample(model, init=init_values(model, ms.theta), chains=chains, warmup=warmup,
                 draws=draws, chain_method=chain_method, target_accept=target_accept, seed=seed)
    ll, rep = pointwise(model, smp, seed + 1)
    post = to_arviz(model, smp, layout.free_names, ll, rep)
    diag = diagnostics(post) | {"seconds": round(smp.seconds, 3),
                                "mean_leapfrog_steps": float(np.mean(smp.num_steps))}
    warns = diagnostic_warnings(diag)
    if not ms.converged:
        warns.append("the least-squares start did not converge: chains were started from the "
                        "best point found")
    status = ("not_converged" if (not diag["r_hat_max"] <= RHAT_MAX or diag["divergences"] > 0)
              else "converged")
    fd = free_draws(model, smp)
    if progress:
        progress(f"  NUTS done in {smp.seconds:.1f} s: r_hat_max {diag['r_hat_max']:.4f}, "
                 f"ess_bulk_min {diag['ess_bulk_min']:.0f}, ess_tail_min "
                 f"{diag['ess_tail_min']:.0f}, divergences {diag['divergences']}")
    info = {"diagnostics": diag,
            "priors": model.priors.as_dict(),
            "likelihood": {"family": likelihood, "space": model.space,
                           "observed": model.obs_name,
                           "nu": "fitted" if "nu" in model.priors.sites else nu,
                           "weights": ("none" if np.allclose(model.data["scale"], 1.0)
                                       else "precision: run scale sigma/sqrt(w)")},
            "sampler": {"algorithm": "NUTS", "chains": chains, "warmup": warmup, "draws": draws,
                        "chain_method": chain_method, "target_accept": target_accept,
                        "dense_mass": True, "seed": seed,
                        "init": "least-squares optimum, dispersed by its Laplace covariance"},
            "estimate": "posterior median",
            "lsq_start": {"objective_value": ms.value, "converged": bool(ms.converged),
                          "free": dict(zip(layout.free_names, map(float, ms.theta)))},
            "noise": posterior_summary(post, ["sigma", "nu"])}
    return {"estimate": np.median(fd, axis=0), "draws": fd, "status": status,
            "warnings": warns, "info": info, "posterior": post}


def diagnostic_warnings(diag: Mapping) -> list[str]:
    out = []
    if not diag["r_hat_max"] <= RHAT_MAX:
        out.append(f"R-hat {diag['r_hat_max']:.4f} > {RHAT_MAX}: the chains disagree; run "
                   "longer or check the priors")
    ess = min(diag["ess_bulk_min"], diag["ess_tail_min"])
    if not ess >= ESS_MIN:
        out.append(f"effective sample size {ess:.0f} < {ESS_MIN} (bulk "
                   f"{diag['ess_bulk_min']:.0f}, tail {diag['ess_tail_min']:.0f}): intervals "
                   "are imprecise; draw more")
    if diag["divergences"]:
        out.append(f"{diag['divergences']} divergent transitions: the posterior may be biased; "
                   "raise --target-accept (e.g. 0.99) or tighten the priors")
    return out


# --- arviz (every arviz call of lawfit is below this line) -----------------------------------

def _az():
    import arviz
    return arviz


def to_arviz(model: Model, samples: Samples, free_names, log_lik: np.ndarray,
             replicated: np.ndarray | None = None):
    """arviz DataTree: posterior (natural units), sample stats, log likelihood, posterior
    predictive, observed data and constant data; runs along dimension ``run``."""
    az = _az()
    n = model.n
    const = {f"log_{v}": model.data["log_vars"][:, j] for j, v in enumerate(model.law.variables)}
    if not np.allclose(model.data["scale"], 1.0):
        const["weight"] = 1.0 / model.data["scale"] ** 2
    groups = {"posterior": dict(samples.params),
              "sample_stats": {"diverging": samples.diverging, "n_steps": samples.num_steps,
                               "lp": -samples.energy, "acceptance_rate": samples.accept_prob,
                               "step_size": samples.step_size},
              "log_likelihood": {model.obs_name: log_lik},
              "observed_data": {model.obs_name: model.obs},
              "constant_data": const}
    if replicated is not None:
        groups["posterior_predictive"] = {model.obs_name: replicated}
    dt = az.from_dict(groups, coords={"run": np.arange(n)},
                      dims={model.obs_name: ["run"], **{k: ["run"] for k in const}})
    dt.attrs.update({"inference_library": "numpyro", "inference_library_version":
                     numpyro.__version__, "lawfit_law": model.law.name,
                     "lawfit_formula": model.law.formula, "lawfit_observed": model.obs_name,
                     "lawfit_free": json.dumps(list(free_names)),
                     "lawfit_priors": json.dumps(model.priors.as_dict()),
                     "lawfit_likelihood": model.likelihood})
    return dt


def _max_over(ds) -> float:
    vals = [float(np.nanmax(np.asarray(ds[v]))) for v in ds.data_vars]
    return max(vals) if vals else float("nan")


def _min_over(ds) -> float:
    vals = [float(np.nanmin(np.asarray(ds[v]))) for v in ds.data_vars]
    return min(vals) if vals else float("nan")


def diagnostics(post) -> dict:
    """R-hat (max), bulk and tail ESS (min) over every sampled parameter, and divergences."""
    az = _az()
    n_chains = post.posterior.sizes["chain"]
    r_hat = _max_over(az.rhat(post)) if n_chains > 1 else float("nan")
    div = post.sample_stats["diverging"] if "diverging" in post.sample_stats else None
    return {"r_hat_max": r_hat,
            "ess_bulk_min": _min_over(az.ess(post, method="bulk")),
            "ess_tail_min": _min_over(az.ess(post, method="tail")),
            "divergences": int(np.asarray(div).sum()) if div is not None else 0,
            "chains": int(n_chains), "draws": int(post.posterior.sizes["draw"])}


def posterior_summary(post, names) -> dict:
    """Median and central 90% interval of posterior variables (those present)."""
    out = {}
    for n in names:
        if n in post.posterior:
            v = np.asarray(post.posterior[n]).ravel()
            out[n] = {"median": float(np.median(v)), "q05": float(np.quantile(v, 0.05)),
                      "q95": float(np.quantile(v, 0.95))}
    return out


@dataclass(frozen=True)
class Loo:
    """PSIS-LOO of one fit, on the loss scale (log-space fits carry the Jacobian -log y)."""
    elpd: float
    se: float
    p_loo: float
    pareto_k: np.ndarray            # (N,)
    good_k: float                   # arviz's sample-size dependent threshold (0.7 for S > 2200)
    warning: bool
    data: object = None             # the arviz ELPDData

    @property
    def n_bad_k(self) -> int:
        return int(np.sum(self.pareto_k > self.good_k))


def loo(post) -> Loo:
    """PSIS-LOO of a Bayesian fit's arviz object, elpd on the scale of the loss (nats), so that
    fits in log space and in loss space compare."""
    az = _az()
    obs_name = post.attrs.get("lawfit_observed", "loss")
    kwargs = {}
    if obs_name == "log_loss":
        y = post.observed_data[obs_name]
        kwargs["log_jacobian"] = -y          # z = log y: log|dz/dy| = -log y = -z
    with warnings.catch_warnings():      # arviz warns on high Pareto k: reported in Loo
        warnings.simplefilter("ignore", UserWarning)
        res = az.loo(post, pointwise=True, var_name=obs_name, **kwargs)
    k = np.asarray(res.pareto_k).ravel()
    good = float(getattr(res, "good_k", 0.7) or 0.7)
    return Loo(elpd=float(res.elpd), se=float(res.se), p_loo=float(res.p), pareto_k=k,
               good_k=good, warning=bool(getattr(res, "warning", False) or np.any(k > good)),
               data=res)


def compare(loos: Mapping[str, Loo]):
    """arviz's comparison (stacking weights) of several fits of the same runs: a DataFrame
    indexed by name, best first, with rank, elpd, p, elpd_diff, weight, se, dse, warning."""
    az = _az()
    return az.compare({k: v.data for k, v in loos.items()}, round_to="none")


def write_posteriors(entries, path: str | Path) -> None:
    """Write arviz objects of several groups into one NetCDF file (h5netcdf): ``entries`` is a
    list of (group key dict, DataTree); group ``i`` lives under ``/group_i`` with its key as JSON
    in the attribute ``lawfit_key``."""
    import xarray as xr
    nodes = {}
    for i, (key, post) in enumerate(entries):
        sub = post.copy()
        sub.attrs = dict(post.attrs) | {"lawfit_key": json.dumps(key, default=str)}
        nodes[f"group_{i}"] = sub
    root = xr.DataTree.from_dict({f"/{name}": None for name in nodes})
    for name, sub in nodes.items():
        root[name] = sub
    root.attrs["lawfit_groups"] = len(nodes)
    root.to_netcdf(path, engine="h5netcdf")


def read_posteriors(path: str | Path) -> list[tuple[dict, object]]:
    """The (group key, DataTree) pairs written by :func:`write_posteriors` (loaded in memory)."""
    az = _az()
    try:
        root = az.from_netcdf(path, engine="h5netcdf")
    except Exception as exc:   # h5netcdf/h5py raise many kinds for corrupt files
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else exc}"
                        ) from None
    out = []
    for i in range(int(root.attrs.get("lawfit_groups", 0))):
        sub = root[f"group_{i}"].load()
        out.append((json.loads(sub.attrs["lawfit_key"]), sub))
    return out
