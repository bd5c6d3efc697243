"""The law registry, and any law a user can write as a jax function.

A law is a small frozen object: its name, the roles of its variables, its parameters, a pure jax
function giving log L from (internal) parameters and log variables, and a default start grid.
Scale parameters are fitted as their logs (a = log A, ...), as in Hoffmann et al. 2022 and Zhang
et al. 2024.

Two kinds of law share this one interface (``log_predict``):

* the built-in log-sum-exp laws (multiplicative, additive, chinchilla, power): log L is a
  log-sum-exp of terms linear in the internal parameters (``terms_fn``), for which lsq.py has
  exact analytic derivatives;
* laws written as a jax function ``f(p, *variables) -> loss`` with the :func:`law` decorator
  (``rectified`` among them, and any user's own): derivatives come from jax autodiff. A
  parameter whose plausible range is positive and spans two decades or more is searched and
  fitted as its log; the range sets the start grid and the Bayesian fitter's default prior.

Adding a law is one ``Law(...)`` entry or one decorated function at the bottom of this file.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Mapping

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from lawfit.errors import DataError

from .numerics import float64


@lru_cache(maxsize=None)
def _jitted(fn):
    import jax
    return jax.jit(fn)

__all__ = ["GRID_BUDGET", "LAWS", "Law", "ROLES", "check_params", "get_law", "law", "register",
           "source_hash"]


@dataclass(frozen=True, eq=False)  # hashed by identity: laws are registry singletons
class Law:
    """A scaling law: ``log_predict(theta, log_vars)`` and what fitting it needs (parameters, the
    ones fitted as logs, a start grid, default columns and objective). Identity is structural:
    ``multiplicative_form`` marks A * X^-alpha * D^-beta + E (critical data sizes have Zhang et al.'s
    closed form there), never the formula text."""
    name: str
    formula: str
    variables: tuple[str, ...]          # roles, in the order of the columns of log_vars
    params: tuple[str, ...]             # natural names, in internal vector order
    log_params: tuple[str, ...]         # fitted as their logs (internal value = log natural)
    terms_fn: Callable | None = field(repr=False)  # log_vars (..., V) -> T (..., K, P): z = T @ theta
    start_grid: Mapping[str, tuple] = field(repr=False, default_factory=dict)  # internal values
    basis_fn: Callable | None = field(repr=False, default=None)  # (exponents, log_vars) -> (N, k)
    linear: tuple[str, ...] = ()        # params linear given the others, in basis column order
    default_columns: Mapping[str, str] = field(default_factory=dict)   # role -> column
    default_objective: str = "huber"
    fn: Callable | None = field(repr=False, default=None)   # f(p, *variables) -> loss (jax)
    ranges: Mapping[str, tuple] = field(default_factory=dict)  # natural plausible ranges
    zero_ok: tuple[str, ...] = ()       # roles whose value may be 0 (e.g. the base-model row)
    multiplicative_form: bool = False   # A * X^-alpha * D^-beta + E: Zhang et al. Eq. 3 applies
    source: Mapping[str, str] | None = None   # module, function and source sha256 of a jax law

    @property
    def n_params(self) -> int:
        """Number of parameters."""
        return len(self.params)

    @property
    def analytic(self) -> bool:
        """True for the log-sum-exp laws with exact analytic derivatives in lsq.py."""
        return self.terms_fn is not None

    @property
    def nonlinear(self) -> tuple[str, ...]:
        """Parameters that are not linear given the others (variable projection's search)."""
        return tuple(p for p in self.params if p not in self.linear)

    def terms(self, log_vars) -> np.ndarray:
        """The terms' design rows (N, K, P) of log variables (N, V) as a numpy array, computed by
        one compiled program (``terms_fn`` called eagerly compiles one program per operation)."""
        return np.asarray(_jitted(self.terms_fn)(np.asarray(log_vars)))

    def log_predict(self, theta, log_vars):
        """log L at internal parameters ``theta`` (..., P) and log variables (..., V).

        Computes in the caller's jax precision (it is traced inside the solvers); lawfit's entry
        points run it in float64 (lawfit/numerics.py). Called directly, wrap the call in
        ``lawfit.numerics.float64`` or use :meth:`predict`."""
        if self.terms_fn is None:
            theta, log_vars = jnp.asarray(theta), jnp.asarray(log_vars)
            p = {name: (jnp.exp(theta[..., j]) if name in self.log_params else theta[..., j])
                 for j, name in enumerate(self.params)}
            # exp(-inf) = 0 exactly: a zero variable (base-model row) reaches f as 0
            return jnp.log(self.fn(p, *(jnp.exp(log_vars[..., i])
                                        for i in range(len(self.variables)))))
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
        """Internal vector(s) (..., P) -> natural parameters (exp of the log-scale ones)."""
        arr = np.array(theta, dtype=np.float64, copy=True)
        mask = np.array([p in self.log_params for p in self.params])
        arr[..., mask] = np.exp(arr[..., mask])
        return arr

    def grid(self) -> np.ndarray:
        """The default start grid, (S, P) internal values: the Cartesian product (built once per
        law; each call returns its own copy)."""
        return _grid(self).copy()

    @float64
    def predict(self, natural: Mapping[str, float], **variables) -> np.ndarray:
        """Loss at natural parameters, variables given by role name, e.g. ``x=1e9, d=1e5``."""
        theta = jnp.asarray(self.to_internal(natural))
        lv = jnp.stack([jnp.log(jnp.asarray(variables[v], dtype=jnp.float64))
                        for v in self.variables], axis=-1)
        return np.exp(np.asarray(self.log_predict(theta, lv)))


@lru_cache(maxsize=64)
def _grid(law: Law) -> np.ndarray:
    """:meth:`Law.grid`, computed once per law (thousands of groups of a call ask for it)."""
    axes = [np.asarray(law.start_grid[p], dtype=np.float64) for p in law.params]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=-1)


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
    """Add ``law`` to the registry under its name (``lawfit fit --law NAME``, ``get_law``).

    Parameters
    ----------
    law : Law

    Returns
    -------
    Law
        The same law (so that ``register`` can wrap a definition).
    """
    LAWS[law.name] = law
    return law


register(Law(
    name="multiplicative", formula="A * X^-alpha * D^-beta + E", multiplicative_form=True,
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


# --- laws written as jax functions ------------------------------------------------------------

GRID_BUDGET = 2000     # start grid size a decorated law aims at (points per parameter 3..8)
ROLES = ("x", "d")     # roles of a decorated law's first two variables (overridable: --x, --d)


def _log_scaled(lo: float, hi: float) -> bool:
    """A positive range spanning two decades or more is searched and fitted in log space."""
    return lo > 0 and hi / lo >= 100.0


def source_hash(fn: Callable) -> str:
    """sha256 of a function's source text (dedented): what fit.json records for a user law."""
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        text = getattr(fn, "__qualname__", repr(fn))
    return hashlib.sha256(text.encode()).hexdigest()


def _formula_text(fn: Callable) -> str:
    """The expression of a one-``return`` function, else its name."""
    try:
        lines = textwrap.dedent(inspect.getsource(fn)).splitlines()
    except (OSError, TypeError):
        return fn.__name__
    rets = [ln.strip()[len("return "):] for ln in lines if ln.strip().startswith("return ")]
    return rets[0] if len(rets) == 1 else fn.__name__


@float64
def _accepts_zero(fn, names, log_names, grid, n_vars, i) -> bool:
    """True when f is finite and positive with variable i = 0 (others 1) at every start."""
    theta = jnp.asarray(grid)
    p = {n: (jnp.exp(theta[:, j]) if n in log_names else theta[:, j]) for j, n in enumerate(names)}
    vs = [jnp.full(len(grid), 0.0 if k == i else 1.0) for k in range(n_vars)]
    try:
        out = np.asarray(fn(p, *vs), dtype=np.float64)
    except Exception:     # noqa: BLE001  the user's function simply cannot take a zero
        return False
    return bool(np.all(np.isfinite(out) & (out > 0)))


def law(params: Mapping[str, tuple[float, float]], variables: tuple[str, ...] | list, *,
        name: str | None = None, formula: str | None = None, objective: str = "huber",
        zero_ok: tuple[str, ...] | None = None) -> Callable[[Callable], Law]:
    """Turn a jax function ``f(p, *variables) -> loss`` into a :class:`Law`.

    Parameters
    ----------
    params : mapping
        Each parameter's plausible range ``(lo, hi)`` in natural units. A positive range spanning
        two decades or more is searched and fitted in log space (the value stays positive); the
        range sets the start grid (log- or evenly spaced) and the Bayesian default prior (its
        central 95%). Fits may leave the range: the status then says ``grid_edge``.
    variables : tuple of str
        Default columns of the function's variables, in argument order; the first two take the
        roles ``x`` and ``d`` (overridable with ``--x``/``--d`` or ``x=``/``d=``).
    name, formula : str, optional
        Default the function's name and its ``return`` expression.
    objective : str
        Default objective (``huber`` on the loss, as Zhang et al.).
    zero_ok : tuple of str, optional
        Columns that may be 0 (a base-model row at D = 0). By default a column may be 0 when the
        function is finite and positive there at every start of the grid (true of the rectified
        law, false of a power law in D).

    Returns
    -------
    Callable
        A decorator returning the :class:`Law`; ``lawfit.fit(frame, law)`` fits it.

    Examples
    --------
    >>> @law(params={"B": (1e-2, 1e4), "Dl": (1e-2, 1e7), "beta": (0.0, 2.0), "E": (1e-3, 10.0)},
    ...      variables=("finetune_examples",))
    ... def rectified(p, D):
    ...     return p["B"] / (p["Dl"] + D ** p["beta"]) + p["E"]
    """
    names = tuple(params)
    cols = tuple(variables)
    if not names or not cols:
        raise DataError("a law needs at least one parameter and one variable")
    for n, r in params.items():
        try:
            lo, hi = (float(v) for v in r)
        except (TypeError, ValueError):
            raise DataError(f"range of parameter {n!r} must be (lo, hi), got {r!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise DataError(f"range of parameter {n!r} must be finite with lo < hi, got {r!r}")

    def wrap(fn: Callable) -> Law:
        ranges = {n: (float(params[n][0]), float(params[n][1])) for n in names}
        log_names = tuple(n for n in names if _log_scaled(*ranges[n]))
        per = int(min(8, max(3, math.floor(GRID_BUDGET ** (1.0 / len(names))))))
        grid = {n: tuple(np.linspace(math.log(lo), math.log(hi), per) if n in log_names
                         else np.linspace(lo, hi, per)) for n, (lo, hi) in ranges.items()}
        roles = tuple(ROLES[i] if i < len(ROLES) else c for i, c in enumerate(cols))
        mesh = np.stack([m.ravel() for m in np.meshgrid(*(np.asarray(grid[n]) for n in names),
                                                          indexing="ij")], -1)
        if zero_ok is None:
            zero = tuple(roles[i] for i in range(len(cols))
                         if _accepts_zero(fn, names, log_names, mesh, len(cols), i))
        else:
            unknown = [c for c in zero_ok if c not in cols]
            if unknown:
                raise DataError(f"zero_ok names {unknown}, not among the variables {cols}")
            zero = tuple(roles[cols.index(c)] for c in zero_ok)
        return Law(name=name or fn.__name__, formula=formula or _formula_text(fn),
                   variables=roles, params=names, log_params=log_names, terms_fn=None,
                   start_grid=grid, default_columns=dict(zip(roles, cols)),
                   default_objective=objective, fn=fn, ranges=ranges, zero_ok=zero,
                   source={"module": getattr(fn, "__module__", None),
                           "function": getattr(fn, "__qualname__", getattr(fn, "__name__", None)),
                           "sha256": source_hash(fn)})
    return wrap


# Lin, Huang, Ye, Chen, Wang, Li, Ma, Wan, Zou, Liang 2024, "Selecting Large Language Model to
# Fine-tune via Rectified Scaling Law" (ICML 2024), Eq. 4: the pre-learned data size D_l bends the
# power law flat at small D, and the law is defined at D = 0 (the base model, B / D_l + E).
# Fitted by default as Lin et al. fit it: squared error on the log loss.
@law(params={"B": (1e-2, 1e4), "Dl": (1e-2, 1e7), "beta": (0.0, 2.0), "E": (1e-3, 10.0)},
     variables=("finetune_examples",), formula="B / (D_l + D^beta) + E", objective="mse-log",
     zero_ok=("finetune_examples",))   # stated, not probed: importing lawfit starts no jax backend
def rectified(p, D):
    return p["B"] / (p["Dl"] + D ** p["beta"]) + p["E"]


register(rectified)


def check_params(law: Law, params: Mapping, what: str = "parameter") -> None:
    """Raise DataError unless every value is a finite number and every scale parameter (fitted as
    its log: A, B, E) is positive.

    Parameters
    ----------
    law : Law
    params : mapping
        Parameter name -> natural value.
    what : str
        How the message names the values (e.g. "fixed parameter").
    """
    for p, v in params.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise DataError(f"{what} {p}={v!r} is not a number")
        if not np.isfinite(v):
            raise DataError(f"{what} {p}={v} is not finite")
        if p in law.log_params and not v > 0:
            raise DataError(f"{what} {p}={v:g} must be positive (a scale of law {law.name!r})")


def get_law(name: str) -> Law:
    """The registered law called ``name``.

    Parameters
    ----------
    name : str
        ``multiplicative``, ``additive``, ``chinchilla``, ``power``, ``rectified``, ...

    Returns
    -------
    Law
    """
    if not isinstance(name, str) or name not in LAWS:
        raise DataError(f"unknown law {name!r}: choose one of {', '.join(LAWS)}, or a law of your "
                        "own as MODULE:FUNCTION")
    return LAWS[name]
