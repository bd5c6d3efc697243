"""``lawfit.problem``: what one fit is, as arrays, before any solver sees it.

- :class:`Status`: the outcome of a fit (a string enum: JSON keeps the strings);
- :class:`Problem`: a law, an objective and the runs as arrays (log variables, losses, and the
  ``slots`` that map each run's law parameters into the vector of free and frozen values);
- :class:`Layout`: how a group's free parameters map onto its subsets' law parameters (a plain fit,
  a joint fit with shared parameters, frozen parameters); free parameters are ``(param, subset)``
  pairs, and ``"A[model_params]"`` is only their display name;
- :func:`build_layout`, :func:`grid_starts`: a layout and the start vectors of a multi-start;
- :class:`GroupProblem`, :func:`group_problem`: one group's problem and, for a joint fit, its
  subsets' own problems, built once and handed to the least-squares (lawfit.lsq) and Bayesian
  (lawfit.bayes) fitters alike.

Pure: arrays in, arrays out; no solver here (lawfit.lsq solves, and imports this module).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

from .errors import DataError
from .laws import Law, check_params
from .objectives import Objective

__all__ = ["FreeParam", "GroupProblem", "Layout", "Problem", "Status", "build_layout",
           "grid_starts", "group_problem"]


class Status(str, Enum):
    """Outcome of a fit. A ``str`` enum: ``Status.CONVERGED == "converged"``, and JSON, tables and
    f-strings show the plain value."""
    CONVERGED = "converged"
    NOT_CONVERGED = "not_converged"
    GRID_EDGE = "grid_edge"            # converged, but outside the span of the start grid
    AT_BOUND = "at_bound"              # converged with a scale parameter at its floor (effectively 0)
    NOT_IDENTIFIED = "not_identified"  # the runs cannot identify an exponent (see the warnings)
    POOR_FIT = "poor_fit"              # converged, but the law does not describe the runs (quality.py)

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


@dataclass(frozen=True, eq=False)
class Problem:
    """One fit: a law, an objective and the data as arrays.

    ``slots`` (N, P) maps each run's P law parameters into the full vector
    ``phi = concat(free, fixed)``: a plain fit has ``slots[i] = range(P)``; a joint fit gives runs of
    different subsets different slots for their own parameters and the same slots for shared ones;
    frozen parameters point into ``fixed``.
    """
    law: Law
    objective: Objective
    log_vars: np.ndarray            # (N, V) log of the law's variables
    y: np.ndarray                   # (N,) observed loss
    slots: np.ndarray               # (N, P) int
    n_free: int
    fixed: np.ndarray = field(default_factory=lambda: np.zeros(0))
    weights: np.ndarray | None = None  # (N,) base weights (1 when None)

    @classmethod
    def simple(cls, law: Law, objective: Objective, log_vars, y, weights=None) -> "Problem":
        """A plain fit of every law parameter to runs ``log_vars`` (N, V), ``y`` (N,).

        Parameters
        ----------
        law, objective : Law, Objective
            What is fitted, and how.
        log_vars : array (N, V)
            Log of the law's variables, in role order.
        y : array (N,)
            Observed losses.
        weights : array (N,), optional
            Base weights of the runs (1 when None).

        Returns
        -------
        Problem
        """
        n = len(y)
        return cls(law, objective, np.asarray(log_vars, np.float64), np.asarray(y, np.float64),
                   np.tile(np.arange(law.n_params), (n, 1)), law.n_params, np.zeros(0), weights)

    @property
    def n(self) -> int:
        """Number of runs."""
        return len(self.y)

    def design(self) -> tuple[np.ndarray, np.ndarray]:
        """(T, c): log L = logsumexp_k(T[n, k] @ free + c[n, k]) for every run n (a log-sum-exp law).

        The law's terms are scattered through ``slots`` into the full parameter vector, then the
        frozen parameters are folded into the offset c.
        """
        t = self.law.terms(self.log_vars)      # (N, K, P)
        n, k, p = t.shape
        full = np.zeros((n, k, self.n_free + len(self.fixed)))
        for j in range(p):   # unbuffered: two law parameters may share a slot
            np.add.at(full, (np.arange(n)[:, None], np.arange(k)[None, :], self.slots[:, [j]]),
                      t[:, :, j])
        return full[:, :, : self.n_free], full[:, :, self.n_free:] @ self.fixed

    def lower_bounds(self) -> np.ndarray:
        """(F,) lower bounds of the free parameters: scale parameters (fitted as logs) may not fall
        below 1e-11 of the smallest loss (there a term no longer changes any prediction, so the
        optimum is "at its bound", effectively 0); exponents are unbounded."""
        lb = np.full(self.n_free, -np.inf)
        floor = np.log(np.min(self.y)) - 25.0
        for j, p in enumerate(self.law.params):
            if p not in self.law.log_params:
                continue
            for slot in set(self.slots[:, j].tolist()):
                if slot < self.n_free:
                    # a jax law's scale parameter: 1e-11 of the bottom of its plausible range
                    lb[slot] = (np.log(self.law.ranges[p][0]) - 25.0 if p in self.law.ranges
                                else floor)
        return lb

    def scale_floor(self) -> float | None:
        """The smallest natural value a scale parameter may take (exp of the lowest finite lower
        bound), None when no free parameter is a scale."""
        lb = self.lower_bounds()
        return float(np.exp(lb[np.isfinite(lb)].min())) if np.isfinite(lb).any() else None


@dataclass(frozen=True)
class FreeParam:
    """One free parameter of a layout: the law parameter and the subset it belongs to (``None``:
    shared by every subset, or a plain fit)."""
    param: str
    subset: str | None = None

    @property
    def name(self) -> str:
        """Display name: ``E`` (shared) or ``A[model_params]`` (subset model_params's own)."""
        return self.param if self.subset is None else f"{self.param}[{self.subset}]"


@dataclass(frozen=True)
class Layout:
    """How a group's free parameter vector maps onto its subsets' law parameters."""
    subsets: tuple                  # subset labels (one ``None`` for a plain fit)
    free: tuple[FreeParam, ...]     # the free parameters, in vector order
    subset_slots: np.ndarray        # (n_subsets, P) index into concat(free, fixed)
    fixed: np.ndarray               # frozen internal values

    @property
    def free_names(self) -> tuple[str, ...]:
        """Display names of the free parameters, e.g. ("E", "beta", "A[model_params]", ...)."""
        return tuple(f.name for f in self.free)

    @property
    def free_params(self) -> tuple[str, ...]:
        """Law parameter of each free slot, e.g. ("E", "beta", "A", ...)."""
        return tuple(f.param for f in self.free)

    @property
    def joint(self) -> bool:
        """True for a joint layout (several subsets)."""
        return self.subsets != (None,)

    def internal(self, free: np.ndarray) -> np.ndarray:
        """(..., F) free vectors -> (..., n_subsets, P) internal law parameters."""
        free = np.asarray(free, np.float64)
        fixed = np.broadcast_to(self.fixed, free.shape[:-1] + self.fixed.shape)
        phi = np.concatenate([free, fixed], axis=-1)
        return phi[..., self.subset_slots]


def build_layout(law: Law, subsets: Sequence = (None,), share: Sequence[str] = (),
                 fixed: Mapping[str, float] | None = None) -> Layout:
    """The layout of a plain or joint fit.

    Parameters
    ----------
    law : Law
    subsets : sequence
        Subset labels of a joint fit; ``(None,)`` for a plain fit.
    share : sequence of str
        Parameters common to every subset of a joint fit (the others are per subset).
    fixed : mapping, optional
        Parameters frozen at given natural values.

    Returns
    -------
    Layout
        Shared (or plain) free parameters first, in law order, then each subset's own.
    """
    fixed = dict(fixed or {})
    unknown = [p for p in [*share, *fixed] if p not in law.params]
    if unknown:
        raise DataError(f"unknown parameter(s) {unknown} for law {law.name!r}: its parameters "
                        f"are {', '.join(law.params)}")
    check_params(law, fixed, "fixed parameter")
    subsets = tuple(subsets)
    fixed_names = [p for p in law.params if p in fixed]
    fixed_vals = law.to_internal({**{p: 1.0 for p in law.params}, **fixed})
    fixed_int = np.array([fixed_vals[law.params.index(p)] for p in fixed_names])
    joint = subsets != (None,)
    free: list[FreeParam] = []
    slot: dict = {}
    for p in law.params:
        if p in fixed or (joint and p not in share):
            continue
        slot[(None, p)] = len(free)
        free.append(FreeParam(p))
    for s in subsets:
        for p in law.params:
            if p in fixed or (None, p) in slot:
                continue
            slot[(s, p)] = len(free)
            free.append(FreeParam(p, s))
    n_free = len(free)
    if n_free == 0:
        raise DataError(f"every parameter of law {law.name!r} is fixed: nothing is left to fit "
                        "(use lawfit simulate or the law itself to evaluate fixed parameters)")
    slots = np.array([[n_free + fixed_names.index(p) if p in fixed else
                       slot.get((None, p), slot.get((s, p))) for p in law.params] for s in subsets])
    return Layout(subsets, tuple(free), slots, fixed_int)


def grid_starts(law: Law, layout: Layout, starts: str | int,
                rng: np.random.Generator) -> np.ndarray:
    """Start vectors over the free parameters of a one-subset layout.

    Parameters
    ----------
    law : Law
    layout : Layout
        A plain (one-subset) layout.
    starts : "grid" or int
        "grid": the law's start grid (duplicates removed); a count: that many starts drawn
        uniformly within the grid's span.
    rng : numpy Generator

    Returns
    -------
    array (S, F)
        Internal values of the free parameters.
    """
    free_idx = tuple(law.params.index(p) for p in layout.free_params)
    if isinstance(starts, (int, np.integer)) and not isinstance(starts, bool):
        if starts < 1:
            raise DataError(f"starts must be 'grid' or a positive count, got {starts}",
                            option="starts")
        grid = law.grid()
        lo, hi = grid.min(axis=0), grid.max(axis=0)
        return rng.uniform(lo[list(free_idx)], hi[list(free_idx)],
                           size=(int(starts), len(free_idx)))
    if starts != "grid":
        raise DataError(f"starts must be 'grid' or a positive count, got {starts!r}",
                        option="starts")
    return _unique_grid(law, free_idx).copy()


@lru_cache(maxsize=256)
def _unique_grid(law: Law, free_idx: tuple[int, ...]) -> np.ndarray:
    """The law's start grid over the parameters ``free_idx``, duplicates removed (once per law
    and set of free parameters: thousands of groups of a batched call ask for it)."""
    return np.unique(law.grid()[:, list(free_idx)], axis=0)


@dataclass(frozen=True, eq=False)
class GroupProblem:
    """One group's fit: the (joint) problem, its layout and, for a joint layout, each subset's own
    plain problem (a joint least-squares fit starts from the subsets' own optima)."""
    problem: Problem
    layout: Layout
    sub_problems: tuple[Problem, ...] = ()
    sub_index: np.ndarray | None = None     # (N,) subset of each run (index into layout.subsets)

    @property
    def law(self) -> Law:
        return self.problem.law


def group_problem(law: Law, objective: Objective, layout: Layout, variables: np.ndarray,
                  y: np.ndarray, labels: Sequence | None = None,
                  weights: np.ndarray | None = None) -> GroupProblem:
    """Build a group's problem and, for a joint layout, its subsets' own problems.

    Parameters
    ----------
    law, objective : Law, Objective
    layout : Layout
        From :func:`build_layout`.
    variables : array (N, V)
        The law's variables (natural units; 0 where the law allows it: log 0 = -inf reaches the
        law as exactly 0).
    y : array (N,)
        Losses.
    labels : sequence (N,), optional
        Subset label of every run (a joint layout); None for a plain fit.
    weights : array (N,), optional
        Base weights of the runs.

    Returns
    -------
    GroupProblem
    """
    y = np.asarray(y, np.float64)
    with np.errstate(divide="ignore"):
        log_vars = np.log(np.asarray(variables, np.float64))   # log 0 = -inf: the law sees 0
    if labels is None:
        sub_index = np.zeros(len(y), int)
    else:
        sub_index = np.array([layout.subsets.index(s) for s in labels], int)
    problem = Problem(law, objective, log_vars, y, layout.subset_slots[sub_index],
                      len(layout.free), layout.fixed, weights)
    subs = ()
    if layout.joint:
        subs = tuple(Problem.simple(law, objective, log_vars[sub_index == s],
                                    y[sub_index == s])
                     for s in range(len(layout.subsets)))
    return GroupProblem(problem, layout, subs, sub_index)
