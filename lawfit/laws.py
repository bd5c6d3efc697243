"""The law registry.

A law is a small frozen object: its name, the roles of its variables, its parameters, a pure jax
function giving log L from (internal) parameters and log variables, which parameters are linear
given the others, and a default start grid. Scale parameters (A, B, E) are fitted as their logs
(a = log A, ...), as in Hoffmann et al. 2022 and Zhang et al. 2024, so that every law is a
log-sum-exp of linear terms in log variables and the prediction is positive by construction.

Adding a law is one ``Law(...)`` entry at the bottom of this file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp


@dataclass(frozen=True, eq=False)  # hashed by identity: laws are registry singletons
class Law:
    name: str
    formula: str
    variables: tuple[str, ...]          # roles, in the order of the columns of log_vars
    params: tuple[str, ...]             # natural names, in internal vector order
    log_params: tuple[str, ...]         # fitted as their logs (internal value = log natural)
    terms_fn: Callable = field(repr=False)  # log_vars (..., V) -> T (..., K, P): z = T @ theta
    start_grid: Mapping[str, tuple] = field(repr=False, default_factory=dict)  # internal values
    basis_fn: Callable | None = field(repr=False, default=None)  # (exponents, log_vars) -> (N, k)
    linear: tuple[str, ...] = ()        # params linear given the others, in basis column order
    default_columns: Mapping[str, str] = field(default_factory=dict)   # role -> column
    default_objective: str = "huber"

    @property
    def n_params(self) -> int:
        return len(self.params)

    @property
    def nonlinear(self) -> tuple[str, ...]:
        return tuple(p for p in self.params if p not in self.linear)

    def log_predict(self, theta, log_vars):
        """log L at internal parameters ``theta`` (..., P) and log variables (..., V)."""
        z = jnp.einsum("...kp,...p->...k", self.terms_fn(log_vars), theta)
        return logsumexp(z, axis=-1)

    def to_internal(self, natural: Mapping[str, float] | np.ndarray) -> np.ndarray:
        """Natural parameters (dict or array in ``params`` order) -> internal vector (logs)."""
        arr = (np.array([natural[p] for p in self.params], dtype=np.float64)
               if isinstance(natural, Mapping) else np.array(natural, dtype=np.float64))
        mask = np.array([p in self.log_params for p in self.params])
        with np.errstate(divide="ignore", invalid="ignore"):
            arr[..., mask] = np.log(arr[..., mask])
        return arr

    def to_natural(self, theta) -> np.ndarray:
        arr = np.array(theta, dtype=np.float64, copy=True)
        mask = np.array([p in self.log_params for p in self.params])
        arr[..., mask] = np.exp(arr[..., mask])
        return arr

    def grid(self) -> np.ndarray:
        """The default start grid, (S, P) internal values: the Cartesian product."""
        axes = [np.asarray(self.start_grid[p], dtype=np.float64) for p in self.params]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=-1)

    def predict(self, natural: Mapping[str, float], **variables) -> np.ndarray:
        """Loss at natural parameters, variables given by role name, e.g. ``x=1e9, d=1e5``."""
        theta = jnp.asarray(self.to_internal(natural))
        lv = jnp.stack([jnp.log(jnp.asarray(variables[v], dtype=jnp.float64))
                        for v in self.variables], axis=-1)
        return np.exp(np.asarray(self.log_predict(theta, lv)))


# --- the laws -------------------------------------------------------------------------------
# Every law here is log L = logsumexp_k(z_k) with each term z_k linear in the internal parameters:
# z = T(log_vars) @ theta. ``terms`` gives T, (..., K, P); the solver builds exact gradients and
# Hessians from it (lsq.py), and log_predict is the same logsumexp for everyone.

def _multiplicative_terms(lv):
    one, zero = jnp.ones_like(lv[..., 0]), jnp.zeros_like(lv[..., 0])
    #            a    e     alpha        beta
    return jnp.stack([jnp.stack([one, zero, -lv[..., 0], -lv[..., 1]], -1),
                      jnp.stack([zero, one, zero, zero], -1)], -2)


def _multiplicative_basis(exps, lv):
    alpha, beta = exps[0], exps[1]
    return jnp.stack([jnp.exp(-alpha * lv[:, 0] - beta * lv[:, 1]), jnp.ones(lv.shape[0])], -1)


def _additive_terms(lv):
    one, zero = jnp.ones_like(lv[..., 0]), jnp.zeros_like(lv[..., 0])
    #            a    b     e     alpha        beta
    return jnp.stack([jnp.stack([one, zero, zero, -lv[..., 0], zero], -1),
                      jnp.stack([zero, one, zero, zero, -lv[..., 1]], -1),
                      jnp.stack([zero, zero, one, zero, zero], -1)], -2)


def _additive_basis(exps, lv):
    alpha, beta = exps[0], exps[1]
    return jnp.stack([jnp.exp(-alpha * lv[:, 0]), jnp.exp(-beta * lv[:, 1]),
                      jnp.ones(lv.shape[0])], -1)


def _power_terms(lv):
    one, zero = jnp.ones_like(lv[..., 0]), jnp.zeros_like(lv[..., 0])
    return jnp.stack([jnp.stack([one, zero, -lv[..., 0]], -1),
                      jnp.stack([zero, one, zero], -1)], -2)


def _power_basis(exps, lv):
    return jnp.stack([jnp.exp(-exps[0] * lv[:, 0]), jnp.ones(lv.shape[0])], -1)


# Hoffmann et al. 2022 grid (4,500 starts): alpha, beta in {0,.5,..,2}, e in {-1,-.5,..,1},
# a, b in {0,5,..,25}.
_HOFFMANN = {"A": (0, 5, 10, 15, 20, 25), "B": (0, 5, 10, 15, 20, 25),
             "E": (-1, -0.5, 0, 0.5, 1), "alpha": (0, 0.5, 1, 1.5, 2),
             "beta": (0, 0.5, 1, 1.5, 2)}
# finetuning laws: exponents are small (Zhang et al. Table 4: alpha 0.1-0.5, beta 0.015-0.15)
_FINETUNE = {"A": (0, 5, 10, 15, 20, 25), "E": (-2, -1, -0.5, 0, 0.5, 1),
             "alpha": (0, 0.1, 0.25, 0.5, 1, 2), "beta": (0, 0.05, 0.1, 0.25, 0.5, 1)}

LAWS: dict[str, Law] = {}


def register(law: Law) -> Law:
    LAWS[law.name] = law
    return law


register(Law(
    name="multiplicative", formula="A * X^-alpha * D^-beta + E",
    variables=("x", "d"), params=("A", "E", "alpha", "beta"), log_params=("A", "E"),
    terms_fn=_multiplicative_terms, start_grid=_FINETUNE,
    basis_fn=_multiplicative_basis, linear=("A", "E"),
    default_columns={"x": "model_params", "d": "finetune_examples"}, default_objective="huber"))

register(Law(
    name="additive", formula="A * X^-alpha + B * D^-beta + E",
    variables=("x", "d"), params=("A", "B", "E", "alpha", "beta"), log_params=("A", "B", "E"),
    terms_fn=_additive_terms,
    start_grid={"A": _FINETUNE["A"], "B": _FINETUNE["A"], "E": (-2, -1, 0, 1),
                "alpha": (0, 0.1, 0.3, 0.6, 1.2), "beta": (0, 0.1, 0.3, 0.6, 1.2)},   # 3,600
    basis_fn=_additive_basis, linear=("A", "B", "E"),
    default_columns={"x": "model_params", "d": "finetune_examples"}, default_objective="huber"))

register(Law(
    name="chinchilla", formula="E + A/N^alpha + B/D^beta",
    variables=("x", "d"), params=("A", "B", "E", "alpha", "beta"), log_params=("A", "B", "E"),
    terms_fn=_additive_terms, start_grid=_HOFFMANN,
    basis_fn=_additive_basis, linear=("A", "B", "E"),
    default_columns={"x": "model_params", "d": "pretrain_tokens"},
    default_objective="huber-log"))

register(Law(
    name="power", formula="A * X^-alpha + E",
    variables=("x",), params=("A", "E", "alpha"), log_params=("A", "E"),
    terms_fn=_power_terms, start_grid={k: _FINETUNE[k] for k in ("A", "E", "alpha")},
    basis_fn=_power_basis, linear=("A", "E"),
    default_columns={"x": "finetune_examples"}, default_objective="huber"))


def check_params(law: Law, params: Mapping, what: str = "parameter") -> None:
    """DataError unless every value is a finite number and every scale parameter (fitted as its
    log: A, B, E) is positive."""
    from .data import DataError
    for p, v in params.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise DataError(f"{what} {p}={v!r} is not a number")
        if not np.isfinite(v):
            raise DataError(f"{what} {p}={v} is not finite")
        if p in law.log_params and not v > 0:
            raise DataError(f"{what} {p}={v:g} must be positive (a scale of law {law.name!r})")


def get_law(name: str) -> Law:
    from .data import DataError
    if not isinstance(name, str) or name not in LAWS:
        raise DataError(f"unknown law {name!r}: choose one of {', '.join(LAWS)}")
    return LAWS[name]
