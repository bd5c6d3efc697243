"""Inference: where the chains start, the NUTS driver, and :func:`fit_problem`, which turns one
:class:`~lawfit.lsq.Problem` into a :class:`~lawfit.bayes.posterior.Posterior`.

NUTS (numpyro's kernel, dense mass matrix, target acceptance 0.9) runs several chains (default
4 x 1,000 warm-up + 1,000 draws) from points dispersed around the posterior mode by its Laplace
covariance, so that R-hat can detect chains that disagree. The mode is found from the
least-squares optimum of the problem's own objective (a few quasi-Newton steps on the
unconstrained log posterior): where the data barely identify a parameter the least-squares point
sits at a bound (E = 1e-9, log E = -20) far from where the prior and likelihood together put the
mass, and chains started there spend their warm-up walking back.

One compiled single-chain program runs every chain of a fit in turn (progress counts chains;
"vectorized" runs them all in one program); programs are cached by the model's structure
(law, priors, likelihood) and the padded number of runs (``lawfit/bayes/model.py``), so the
groups of a table share one compilation.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.hmc import hmc

from .. import lsq
from ..errors import DataError
from ..numerics import float64
from ..problem import GroupProblem, Status
from ..progress import counted
from .model import Model, build_model
from .posterior import (
    RHAT_MAX,
    Posterior,
    diagnostic_warnings,
    diagnostics,
    posterior_summary,
    to_arviz,
)

__all__ = [
    "CHAINS",
    "CHAIN_METHODS",
    "DRAWS",
    "TARGET_ACCEPT",
    "WARMUP",
    "Samples",
    "fit_problem",
    "fit_problems",
    "free_draws",
    "init_values",
    "laplace_start",
    "lsq_optimum",
    "pointwise",
    "posterior_mode",
    "sample",
    "sample_groups",
]

CHAINS, WARMUP, DRAWS = 4, 1000, 1000
TARGET_ACCEPT = 0.9
CHAIN_METHOD = "sequential"     # measured faster than "vectorized" on 2 cores (benchmarks/)
CHAIN_METHODS = ("sequential", "vectorized")
DRIVERS = ("lawfit", "numpyro")
GROUP_CHUNK = 16         # groups in one NUTS program at most: memory, and a vmapped tree
                         # loop runs as long as its longest tree, so chunks stay modest


# --- where the chains start ------------------------------------------------------------------

def lsq_optimum(group: GroupProblem, rng) -> lsq.LsqFit:
    """The least-squares optimum of a group's problem under its own objective (grid multi-start;
    a joint layout is started from its subsets' optima, as ``lawfit.fit`` does): the group's
    problem and sub-problems are the ones ``lawfit.fit`` built (lawfit/problem.py)."""
    return lsq.solve(group, "grid", "newton", rng)


def init_values(model: Model, free_opt: np.ndarray) -> dict:
    """Natural values at the least-squares optimum (internal ``free_opt``), a robust noise scale
    from its residuals (MAD) and nu = 10; values outside a prior's support are left out (they
    start at the transform of 0)."""
    vals = {}
    for j, name in enumerate(model.priors.sites[: model.n_free]):
        p = model.free_params[j]
        vals[name] = float(np.exp(free_opt[j]) if p in model.law.log_params else free_opt[j])
    lp = np.asarray(model.log_pred(model.arrays(),
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
    if what == "value_and_grad":
        return jax.jit(jax.value_and_grad(model.potential))
    if what == "predictive":
        def one(u, key, data, obs):
            f = model.observation_dist(data, model.constrain(u, data)[0])
            return f.log_prob(obs), f.sample(key)

        def pred(u, data, obs, key):                 # u (S, D) -> loglik, replicated obs (S, N)
            keys = jax.random.split(key, u.shape[0])
            return jax.vmap(one, in_axes=(0, 0, None, None))(u, keys, data, obs)
        return jax.jit(pred)
    if what == "nuts":
        warmup, draws, chain_method, target_accept = extra
        init_kernel, sample_kernel = hmc(potential_fn_gen=lambda data, obs: (
            lambda u: model.potential(u, data, obs)), algo="NUTS")

        def one_chain(u0, key, inv_mass, data, obs):
            state = init_kernel(u0, warmup, inverse_mass_matrix=inv_mass, dense_mass=True,
                                target_accept_prob=target_accept, regularize_mass_matrix=False,
                                model_args=(data, obs), rng_key=key)

            def step(st, _):
                st = sample_kernel(st, model_args=(data, obs))
                return st, (st.z, st.diverging, st.num_steps, st.potential_energy, st.energy,
                            st.accept_prob, st.adapt_state.step_size)

            _, out = jax.lax.scan(step, state, None, length=warmup + draws)
            return jax.tree_util.tree_map(lambda a: a[warmup:], out)

        if chain_method == "one":      # one chain per call: "sequential" loops in Python
            return jax.jit(one_chain)

        def run(u0, keys, inv_mass, data, obs):
            return jax.vmap(one_chain, in_axes=(0, 0, None, None, None))(
                u0, keys, inv_mass, data, obs)
        if chain_method == "groups":   # (groups, chains): every group's data its own
            return jax.jit(jax.vmap(run))
        return jax.jit(run)
    raise ValueError(what)


def posterior_mode(model: Model, values: Mapping, max_steps: int = 200) -> tuple[dict, bool]:
    """The posterior mode near ``values`` (natural site values), by BFGS on the unconstrained
    log posterior (jax gradients).

    Parameters
    ----------
    model : Model
    values : mapping
        Starting point (the least-squares optimum, see :func:`init_values`).
    max_steps : int

    Returns
    -------
    (dict, bool)
        Natural values at the end point, and whether the potential decreased there (else the
        start is returned unchanged).
    """
    from scipy.optimize import minimize
    data, obs = model.padded()
    fn = _compiled(model, "value_and_grad")
    u0 = model.unconstrain(values)

    def f(u):
        v, g = fn(jnp.asarray(u), data, obs)
        v, g = float(v), np.asarray(g, np.float64)
        if not np.isfinite(v) or not np.all(np.isfinite(g)):
            return np.inf, np.zeros_like(u)
        return v, g
    v0 = f(u0)[0]
    res = minimize(f, u0, jac=True, method="BFGS", options={"maxiter": max_steps})
    if not (np.isfinite(res.fun) and res.fun <= v0):
        return dict(values), False
    params, _ = model.constrain(jnp.asarray(res.x))
    return {k: float(v) for k, v in params.items()}, True


def laplace_start(model: Model, values: Mapping, chains: int, key, spread: float = 0.5):
    """Where the chains start, and a guess of the posterior covariance for NUTS' mass matrix.

    The Hessian of the potential (negative log posterior, unconstrained space) at ``values``
    gives a Laplace covariance (eigenvalues made positive). Each chain starts at the point plus
    one draw from that covariance, every direction capped at ``spread`` unconstrained units:
    apart enough for R-hat to see chains that disagree, close enough to be in the bulk.

    Starting NUTS' adaptation from this covariance matters: the log-scale and exponent of one
    term are correlated at ~0.999 (log X is far from 0) and posterior scales are ~1e-3, so from
    the identity (and with numpyro's default shrinkage of the adapted matrix towards 1e-3 I,
    which is therefore switched off) NUTS needs hundreds of leapfrog steps per transition.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        u0 (chains, D) and the inverse mass matrix (D, D).
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


# --- sampling --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Samples:
    """Raw NUTS output (post warm-up), chains first.

    Attributes
    ----------
    params : dict
        site -> (chains, draws) natural values.
    stats : dict
        arviz-named sample statistics, (chains, draws) each: ``diverging``, ``n_steps``, ``lp``,
        ``energy`` (Hamiltonian, for E-BFMI), ``acceptance_rate``, ``step_size``.
    u : numpy.ndarray
        (chains, draws, D) unconstrained.
    seconds : float
    groups : int
        Groups sampled in the same compiled program (:func:`sample_groups`; 1: this one alone).
    """
    params: dict
    stats: dict
    u: np.ndarray
    seconds: float
    groups: int = 1

    @property
    def num_steps(self) -> np.ndarray:
        return self.stats["n_steps"]


def sample(model: Model, *, init: Mapping | None = None, chains: int = CHAINS,
           warmup: int = WARMUP, draws: int = DRAWS, chain_method: str = CHAIN_METHOD,
           target_accept: float = TARGET_ACCEPT, seed: int = 0,
           progress: Callable[[str], None] | None = None) -> Samples:
    """NUTS (numpyro's kernel, dense mass matrix adapted during warm-up); chains start around
    ``init`` (natural values) by :func:`laplace_start`. "sequential" runs one compiled
    single-chain program per chain (progress counts chains), "vectorized" every chain in one.

    Parameters
    ----------
    model : Model
    init : mapping, optional
        Natural site values to start from (e.g. :func:`posterior_mode`).
    chains, warmup, draws : int
    chain_method : {"sequential", "vectorized"}
    target_accept : float
    seed : int
    progress : callable, optional
        Counts the chains (:func:`lawfit.progress.counted`: a bar on a terminal).

    Returns
    -------
    Samples
    """
    if chains < 1 or warmup < 1 or draws < 1:
        raise DataError(f"chains, warm-up and draws must be positive, got {chains}, {warmup}, "
                        f"{draws}")
    if chain_method not in CHAIN_METHODS:
        raise DataError(f"chain_method must be sequential or vectorized, got {chain_method!r}")
    t0 = time.perf_counter()
    k_init, k_run = jax.random.split(jax.random.PRNGKey(seed))
    u0, cov = laplace_start(model, dict(init or {}), chains, k_init)
    data, obs = model.padded()
    keys = jax.random.split(k_run, chains)
    with counted(progress, "NUTS", chains, unit="chain") as advance:
        if chain_method == "vectorized":
            run = _compiled(model, "nuts", warmup, draws, "vectorized", target_accept)
            out = jax.block_until_ready(run(jnp.asarray(u0), keys, jnp.asarray(cov), data, obs))
            advance(chains)
        else:
            run = _compiled(model, "nuts", warmup, draws, "one", target_accept)
            per_chain = []
            for c in range(chains):
                per_chain.append(jax.block_until_ready(
                    run(jnp.asarray(u0[c]), keys[c], jnp.asarray(cov), data, obs)))
                advance()
            out = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *per_chain)
    z, div, steps, pot, energy, acc, eps = out
    z = np.asarray(z)
    params, _ = model.constrain(jnp.asarray(z))
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    stats = {"diverging": np.asarray(div), "n_steps": np.asarray(steps),
             "lp": -np.asarray(pot), "energy": np.asarray(energy),
             "acceptance_rate": np.asarray(acc), "step_size": np.asarray(eps)}
    return Samples(params, stats, z, time.perf_counter() - t0)




def sample_groups(models: Sequence[Model], *, inits: Sequence[Mapping], seeds: Sequence[int],
                  chains: int = CHAINS, warmup: int = WARMUP, draws: int = DRAWS,
                  target_accept: float = TARGET_ACCEPT, chunk: int = GROUP_CHUNK,
                  progress: Callable[[str], None] | None = None) -> list[Samples]:
    """NUTS for several groups' models of one structure at once: every (group, chain) in one
    compiled program (``jax.vmap`` of numpyro's functional NUTS kernel over groups and chains).

    Each group is sampled as :func:`sample` samples it: the same model and data (its runs
    padded with masked runs), chains started by :func:`laplace_start` around its ``init`` from
    its own ``seed``, and every (group, chain) keeps its own step size and dense mass matrix,
    adapted in its own warm-up (the adaptation state is per batch element, as numpyro's
    "vectorized" chains). Groups are not coupled: a group's draws depend on its data, ``init``
    and ``seed``, not on which other groups share its program. Groups with fewer runs than the
    largest are padded with masked runs (weight 0) to its padded length.

    Parameters
    ----------
    models : sequence of Model
        Models of one structure (the same ``Model.key()``: law, priors, likelihood, free
        parameters, reparameterisation).
    inits : sequence of mapping
        Per model, the natural site values its chains start around (e.g. :func:`posterior_mode`).
    seeds : sequence of int
        Per model, the seed :func:`sample` would be given.
    chains, warmup, draws, target_accept
        NUTS settings (see :func:`sample`).
    chunk : int
        At most this many groups in one program (the groups are split into chunks of nearly
        equal size, so at most two compiled shapes).
    progress : callable, optional
        Counts the chains of all groups.

    Returns
    -------
    list of Samples
        One per model, in order; ``seconds`` is the group's share of its chunk's wall time.

    Raises
    ------
    ValueError
        Models of different structures, or lists of different lengths.
    """
    g = len(models)
    if g == 0:
        return []
    if len(inits) != g or len(seeds) != g:
        raise ValueError("one init and one seed per model")
    if chains < 1 or warmup < 1 or draws < 1:
        raise DataError(f"chains, warm-up and draws must be positive, got {chains}, {warmup}, "
                        f"{draws}")
    if any(m.key() != models[0].key() for m in models):
        raise ValueError("sample_groups needs models of one structure (Model.key())")
    padded = [m.padded() for m in models]
    m_runs = max(int(obs.shape[0]) for _, obs in padded)
    starts = []
    for model, init, seed in zip(models, inits, seeds):
        k_init, k_run = jax.random.split(jax.random.PRNGKey(seed))
        u0, cov = laplace_start(model, dict(init or {}), chains, k_init)
        starts.append((u0, cov, jax.random.split(k_run, chains)))
    run = _compiled(models[0], "nuts", warmup, draws, "groups", target_accept)
    n_chunks = -(-g // max(1, chunk))
    bounds = [int(b) for b in np.linspace(0, g, n_chunks + 1).round()]
    out: list[Samples] = []
    with counted(progress, "NUTS", g * chains, unit="chain") as advance:
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            t0 = time.perf_counter()
            data = [_pad_runs(d, o, m_runs) for d, o in padded[lo:hi]]
            stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[d for d, _ in data])
            obs = jnp.stack([o for _, o in data])
            u0 = jnp.asarray(np.stack([s[0] for s in starts[lo:hi]]))
            cov = jnp.asarray(np.stack([s[1] for s in starts[lo:hi]]))
            keys = jnp.stack([s[2] for s in starts[lo:hi]])
            res = jax.block_until_ready(run(u0, keys, cov, stacked, obs))
            advance((hi - lo) * chains)
            share = (time.perf_counter() - t0) / (hi - lo)
            z, div, steps, pot, energy, acc, eps = (np.asarray(a) for a in res)
            for i, model in enumerate(models[lo:hi]):
                params, _ = model.constrain(jnp.asarray(z[i]))
                params = {k: np.asarray(v, np.float64) for k, v in params.items()}
                stats = {"diverging": div[i], "n_steps": steps[i], "lp": -pot[i],
                         "energy": energy[i], "acceptance_rate": acc[i], "step_size": eps[i]}
                out.append(Samples(params, stats, z[i], share, hi - lo))
    return out


def _pad_runs(data: Mapping, obs, m: int):
    """A model's padded (data, obs) padded further with masked runs to ``m`` runs."""
    n = int(obs.shape[0])
    if n == m:
        return data, obs
    extra = m - n

    def pad(a, fill):
        return jnp.concatenate([a, jnp.full((extra,) + a.shape[1:], fill, a.dtype)])
    out = dict(data)
    out |= {"log_vars": pad(data["log_vars"], 0.0), "slots": pad(data["slots"], 0),
            "scale": pad(data["scale"], 1.0), "mask": pad(data["mask"], False)}
    return out, pad(obs, obs[0])


_MCMC: dict = {}


def _whitened(model: Model):
    """The model's posterior as a numpyro model over whitened coordinates ``z``: ``u = mean +
    chol @ z`` with the Laplace mean and Cholesky factor as data, so that one ``MCMC`` object
    (``jit_model_args``) serves every group of the same shape, and an identity mass matrix in
    ``z`` is the Laplace covariance in ``u``."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints
    d = len(model.priors.sites)

    def whitened(data, obs):
        z = numpyro.sample("z", dist.ImproperUniform(constraints.real_vector, (), (d,)))
        u = data["u_mean"] + data["u_chol"] @ z
        numpyro.factor("log_posterior", -model.potential(u, data, obs))
        numpyro.deterministic("u", u)
    return whitened


def sample_numpyro(model: Model, *, init: Mapping | None = None, chains: int = CHAINS,
                   warmup: int = WARMUP, draws: int = DRAWS, chain_method: str = CHAIN_METHOD,
                   target_accept: float = TARGET_ACCEPT, seed: int = 0,
                   progress_bar: bool = False) -> Samples:
    """The same posterior as :func:`sample`, driven by numpyro's own ``MCMC``/``NUTS``.

    Chains start where :func:`sample`'s do (:func:`laplace_start`); the dense mass matrix is
    the Laplace covariance (through the whitening of :func:`_whitened`), adapted in warm-up.
    ``MCMC`` objects are cached by the model's structure and shape (``jit_model_args``), so a
    second group of the same shape does not compile again. Kept beside :func:`sample` for
    ``benchmarks/bench_bayes.py``, which measures both.
    """
    from numpyro.infer import MCMC, NUTS
    if chains < 1 or warmup < 1 or draws < 1:
        raise DataError(f"chains, warm-up and draws must be positive, got {chains}, {warmup}, "
                        f"{draws}")
    t0 = time.perf_counter()
    k_init, k_run = jax.random.split(jax.random.PRNGKey(seed))
    u0, cov = laplace_start(model, dict(init or {}), chains, k_init)
    data, obs = model.padded()
    mean = u0.mean(axis=0) if chains > 1 else u0[0]
    mean = model.unconstrain(dict(init or {})) if init else mean
    chol = np.linalg.cholesky(cov + 1e-12 * np.trace(cov) / len(cov) * np.eye(len(cov)))
    z0 = np.linalg.solve(chol, (u0 - mean).T).T
    data = dict(data) | {"u_mean": jnp.asarray(mean), "u_chol": jnp.asarray(chol)}
    key = (model.key(), int(obs.shape[0]), chains, warmup, draws, chain_method, target_accept,
           progress_bar)
    if key not in _MCMC:
        kernel = NUTS(_whitened(model), dense_mass=True, target_accept_prob=target_accept,
                      regularize_mass_matrix=False)
        _MCMC[key] = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains,
                          chain_method=chain_method, progress_bar=progress_bar,
                          jit_model_args=True)
    mcmc = _MCMC[key]
    mcmc.run(k_run, data, obs, init_params={"z": jnp.asarray(z0 if chains > 1 else z0[0])},
             extra_fields=("num_steps", "energy", "potential_energy", "accept_prob",
                           "adapt_state.step_size"))
    smp = mcmc.get_samples(group_by_chain=True)
    ex = mcmc.get_extra_fields(group_by_chain=True)
    z = np.asarray(jax.block_until_ready(smp["u"]))
    params, _ = model.constrain(jnp.asarray(z))
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    stats = {"diverging": np.asarray(ex["diverging"]), "n_steps": np.asarray(ex["num_steps"]),
             "lp": -np.asarray(ex["potential_energy"]), "energy": np.asarray(ex["energy"]),
             "acceptance_rate": np.asarray(ex["accept_prob"]),
             "step_size": np.asarray(ex["adapt_state.step_size"])}
    return Samples(params, stats, z, time.perf_counter() - t0)


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


@dataclass(frozen=True)
class _Start:
    """What one group's sampler starts from (:func:`_start`)."""
    model: Model
    lsq: lsq.LsqFit
    mode: dict
    moved: bool
    seed: int


def _start(group: GroupProblem, rng: np.random.Generator, progress, *, priors, likelihood, nu,
           weights, centre, ends, chains, warmup, draws) -> _Start:
    """Build a group's model and find where its chains start: the least-squares optimum, then
    the posterior mode; draws the group's sampler seed from ``rng`` (after the least squares,
    so one-by-one and vectorised fits of a table use the same seed per group)."""
    model = build_model(group.problem, group.layout.free_names, priors=priors,
                        likelihood=likelihood, nu=nu, weights=weights, centre=centre, ends=ends)
    ms = lsq_optimum(group, rng)
    mode, moved = posterior_mode(model, init_values(model, ms.theta))
    if progress:
        progress(f"  least-squares start: objective {ms.value:.6g} "
                 f"({'converged' if ms.converged else 'NOT converged'}); NUTS {chains} chains x "
                 f"({warmup} warm-up + {draws} draws)")
    return _Start(model, ms, mode, moved, int(rng.integers(2 ** 31 - 1)))


def _posterior(st: _Start, layout, smp: Samples, likelihood: str, nu, sampler: dict,
               progress) -> Posterior:
    """A group's :class:`Posterior` from its samples: pointwise log likelihood, arviz data,
    diagnostics of its own chains, status and provenance."""
    model, ms = st.model, st.lsq
    ll, rep = pointwise(model, smp, st.seed + 1)
    post = to_arviz(model, smp.params, smp.stats, layout.free_names, ll, rep)
    diag = diagnostics(post) | {"seconds": round(smp.seconds, 3),
                                "mean_leapfrog_steps": float(np.mean(smp.num_steps))}
    warns = diagnostic_warnings(diag)
    if not ms.converged:
        warns.append("the least-squares start did not converge: chains were started from the "
                     "best point found")
    status = (Status.NOT_CONVERGED
              if (not diag["r_hat_max"] <= RHAT_MAX or diag["divergences"] > 0)
              else Status.CONVERGED)
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
            "sampler": {"algorithm": "NUTS"} | sampler | {
                        "dense_mass": True, "seed": st.seed,
                        "centred": [s for s, r in zip(model.priors.sites, model.reparam) if r],
                        "two_point": [[model.priors.sites[j], model.priors.sites[k]]
                                      for j, k in model.pairs],
                        "init": ("posterior mode (from the least-squares optimum), dispersed by "
                                 "its Laplace covariance" if st.moved else
                                 "least-squares optimum, dispersed by its Laplace covariance")},
            "estimate": "posterior median",
            "lsq_start": {"objective_value": ms.value, "converged": bool(ms.converged),
                          "free": dict(zip(layout.free_names, map(float, ms.theta)))},
            "noise": posterior_summary(post, ["sigma", "nu"])}
    return Posterior(estimate=np.median(fd, axis=0), draws=fd, status=status,
                     warnings=tuple(warns), info=info, data=post)


@float64
def fit_problem(group: GroupProblem, *, rng: np.random.Generator | None = None,
                progress: Callable[[str], None] | None = None, priors: Mapping | None = None,
                likelihood: str = "student", nu: float | None = None, weights=None,
                chains: int = CHAINS, warmup: int = WARMUP, draws: int = DRAWS,
                chain_method: str = CHAIN_METHOD, target_accept: float = TARGET_ACCEPT,
                centre: bool = True, ends: bool = False, driver: str = "lawfit",
                retry: bool = True) -> Posterior:
    """Posterior of one problem (the Bayesian fitter behind ``lawfit.fit(fitter="bayes")``).

    Parameters
    ----------
    group : lawfit.problem.GroupProblem
        The (joint) problem, its layout (free names and subsets) and its subsets' own problems.
    rng : numpy.random.Generator, optional
        Seeds the least-squares start and the sampler.
    progress : callable, optional
        ``progress(message)`` for one line per stage.
    priors, likelihood, nu, weights
        See :func:`lawfit.bayes.model.build_model`.
    chains, warmup, draws, chain_method, target_accept
        NUTS settings (see :func:`sample`).
    centre : bool
        Sample scale parameters as their term's value at the centre of the data
        (:func:`lawfit.bayes.model.centring`; False: in their own logs, as before).
    ends : bool
        Sample a term with one scale and one exponent (``B D^-beta``) as its values at the two
        ends of the data (:func:`lawfit.bayes.model.two_point`; False: centred).
    driver : {"lawfit", "numpyro"}
        :func:`sample` (every chain in one compiled program) or :func:`sample_numpyro`
        (numpyro's ``MCMC``); ``benchmarks/bench_bayes.py`` measures both.
    retry : bool
        When the chains did not converge, sample once more (:func:`_retry_unconverged`): after
        divergent transitions at a target acceptance ten times closer to 1, after R-hat > 1.01
        with twice the warm-up and draws; the first run's settings and diagnostics are kept in
        ``info["sampler"]["retried"]``.

    Returns
    -------
    Posterior
        ``estimate`` the posterior median (internal units), ``draws``, ``status``,
        ``warnings``, ``info`` (diagnostics, priors, likelihood, sampler settings, the
        least-squares start) and ``data`` (the arviz DataTree).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    if driver not in DRIVERS:
        raise DataError(f"driver must be one of {', '.join(DRIVERS)}, got {driver!r}")
    st = _start(group, rng, progress, priors=priors, likelihood=likelihood, nu=nu,
                weights=weights, centre=centre, ends=ends, chains=chains, warmup=warmup,
                draws=draws)
    run = sample if driver == "lawfit" else sample_numpyro
    smp = run(st.model, init=st.mode, chains=chains, warmup=warmup, draws=draws,
              chain_method=chain_method, target_accept=target_accept, seed=st.seed,
              **({"progress": progress} if driver == "lawfit" else {}))
    sampler = {"chains": chains, "warmup": warmup, "draws": draws,
               "chain_method": chain_method, "target_accept": target_accept,
               "driver": driver, "vectorized_groups": 1}
    post = _posterior(st, group.layout, smp, likelihood, nu, sampler, progress)
    if retry:
        post = _retry_unconverged(post, st, group.layout, likelihood, nu, sampler, progress,
                                run, chain_method)
    return post


def retry_target(target_accept: float) -> float:
    """The target acceptance of a retry: ten times closer to 1 (0.9 -> 0.99, 0.99 -> 0.999)."""
    return 1.0 - (1.0 - target_accept) / 10.0


def _retry_unconverged(post: Posterior, st: _Start, layout, likelihood: str, nu,
                       sampler: dict, progress, run=None,
                       chain_method: str = CHAIN_METHOD) -> Posterior:
    """A group whose chains did not converge is sampled once more, from the same start and seed,
    with what its diagnostics ask for: after divergent transitions a target acceptance
    :func:`retry_target` (smaller steps), after R-hat > ``RHAT_MAX`` twice the warm-up and draws
    (longer chains), both when both. The returned posterior is the second run's, its diagnostics
    its own (a second run that still fails them is ``not_converged``); ``info["sampler"]
    ["retried"]`` keeps the first run's settings and diagnostics."""
    first = post.info["diagnostics"]
    diverged = first["divergences"] > 0
    disagree = not first["r_hat_max"] <= RHAT_MAX
    if not (diverged or disagree):
        return post
    run = sample if run is None else run
    ta = retry_target(sampler["target_accept"]) if diverged else sampler["target_accept"]
    warmup, draws = ((2 * sampler["warmup"], 2 * sampler["draws"]) if disagree else
                     (sampler["warmup"], sampler["draws"]))
    if progress:
        why = " and ".join(w for w, on in (
            (f"{first['divergences']} divergent transitions", diverged),
            (f"R-hat {first['r_hat_max']:.4f}", disagree)) if on)
        progress(f"  {why}: sampling again, target acceptance {ta}, {warmup} warm-up + "
                 f"{draws} draws per chain")
    smp = run(st.model, init=st.mode, chains=sampler["chains"], warmup=warmup, draws=draws,
              chain_method=chain_method, target_accept=ta, seed=st.seed,
              **({"progress": progress} if run is sample else {}))
    again = sampler | {"target_accept": ta, "warmup": warmup, "draws": draws,
                       "vectorized_groups": 1,
                       "retried": {"target_accept": sampler["target_accept"],
                                   "warmup": sampler["warmup"], "draws": sampler["draws"],
                                   "divergences": int(first["divergences"]),
                                   "r_hat_max": float(first["r_hat_max"]),
                                   "ess_bulk_min": float(first["ess_bulk_min"])}}
    return _posterior(st, layout, smp, likelihood, nu, again, progress)


@float64
def fit_problems(groups: Sequence[GroupProblem], *, rng: np.random.Generator | None = None,
                 progress: Callable[[str], None] | None = None,
                 weights: Sequence | None = None, priors: Mapping | None = None,
                 likelihood: str = "student", nu: float | None = None, chains: int = CHAINS,
                 warmup: int = WARMUP, draws: int = DRAWS, target_accept: float = TARGET_ACCEPT,
                 centre: bool = True, ends: bool = False,
                 chunk: int = GROUP_CHUNK, retry: bool = True) -> list[Posterior]:
    """Posteriors of several problems, their chains sampled together (:func:`sample_groups`).

    Every group gets the model, start, seed, sampler and diagnostics :func:`fit_problem` gives
    it: the groups are prepared in order (least-squares start, posterior mode, then a seed
    drawn from ``rng``, as a loop of :func:`fit_problem` over them draws it), grouped by model
    structure (``Model.key()``) and padded number of runs, and each such bucket is sampled by
    one compiled program over (group, chain), each with its own warm-up adaptation. R-hat,
    ESS and divergences are each group's own.

    Parameters
    ----------
    groups : sequence of lawfit.problem.GroupProblem
    rng : numpy.random.Generator, optional
    progress : callable, optional
    weights : sequence, optional
        Per group, its precision weights (or None); see :func:`build_model`.
    priors, likelihood, nu, chains, warmup, draws, target_accept, centre, ends, retry
        As for :func:`fit_problem` (the same for every group).
    chunk : int
        At most this many groups per program (:func:`sample_groups`).

    Returns
    -------
    list of Posterior
        One per group, in order; ``info["sampler"]["vectorized_groups"]`` is the number of
        groups sampled in its program.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    weights = [None] * len(groups) if weights is None else list(weights)
    if len(weights) != len(groups):
        raise ValueError("one weights entry per group")
    if chains < 1 or warmup < 1 or draws < 1:
        raise DataError(f"chains, warm-up and draws must be positive, got {chains}, {warmup}, "
                        f"{draws}")
    starts = []
    for i, (group, w) in enumerate(zip(groups, weights)):
        if progress:
            progress(f"group {i + 1}/{len(groups)}: where the chains start")
        starts.append(_start(group, rng, progress, priors=priors, likelihood=likelihood, nu=nu,
                             weights=w, centre=centre, ends=ends, chains=chains, warmup=warmup,
                             draws=draws))
    buckets: dict = {}
    for i, st in enumerate(starts):
        buckets.setdefault((st.model.key(), int(st.model.padded()[1].shape[0])), []).append(i)
    samples: list = [None] * len(groups)
    for members in buckets.values():
        if progress:
            progress(f"NUTS: {len(members)} group{'s' if len(members) != 1 else ''} "
                     f"sampled together, {chains} chains each")
        smp = sample_groups([starts[i].model for i in members],
                            inits=[starts[i].mode for i in members],
                            seeds=[starts[i].seed for i in members], chains=chains,
                            warmup=warmup, draws=draws, target_accept=target_accept,
                            chunk=chunk, progress=progress)
        for i, sm in zip(members, smp):
            samples[i] = sm
    out = []
    for i, (group, st) in enumerate(zip(groups, starts)):
        sampler = {"chains": chains, "warmup": warmup, "draws": draws,
                   "chain_method": "vectorized", "target_accept": target_accept,
                   "driver": "lawfit", "vectorized_groups": samples[i].groups}
        post = _posterior(st, group.layout, samples[i], likelihood, nu, sampler, progress)
        if retry:       # a group that did not converge is sampled again alone (as fit_problem)
            post = _retry_unconverged(post, st, group.layout, likelihood, nu, sampler, progress)
        out.append(post)
    return out
