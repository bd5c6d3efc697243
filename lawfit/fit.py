"""``lawfit.fit``: runs table in, :class:`~lawfit.result.FitResult` out.

Validates the table (lawfit/table.py), splits it into groups, builds one
:class:`~lawfit.problem.GroupProblem` per group (a joint problem when subsets share parameters,
lawfit/problem.py), and hands it to a fitter: least squares with bootstrap draws (lawfit/lsq.py,
lawfit/robust.py), or the Bayesian fitter with posterior draws (lawfit/bayes/); every group's
fit is checked for quality (lawfit/quality.py). How each group is fitted travels in one
:class:`FitOptions`. Pure: no printing, no files; long work reports through an optional
``progress(message)`` callback. Computes in float64 (lawfit/numerics.py).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Callable, Mapping, Sequence

import jax
import numpy as np
import pandas as pd

from lawfit.errors import DataError
from lawfit.table import (
    CONFIG_COLUMNS,
    average_seeds,
    column_for,
    column_values,
    default_by,
    duplicate_rows,
    frame_sha256,
    is_per_row,
    loss_trend,
    numeric_column,
    referenced_columns,
    require_columns,
    resolve_columns,
    spec_column,
)

from . import lsq, quality, robust
from .batch import batchable, bootstrap_many, solve_groups
from .expr import Expr, filter_with_record
from .laws import Law
from .numerics import float64
from .objectives import Objective, make_objective
from .problem import GroupProblem, Layout, Status, build_layout, group_problem
from .progress import counted
from .result import FitResult, GroupFit, bootstrap_health
from .userlaw import resolve as resolve_law

__all__ = ["FitOptions", "fit"]


@dataclass(frozen=True)
class FitOptions:
    """How every group of one :func:`fit` call is fitted (validated by :func:`fit`)."""
    law: Law
    objective: Objective
    columns: Mapping[str, str]          # role -> column (``@COL``: named per row), and "y"
    joint: str | None = None            # subset column of a joint fit
    share: tuple[str, ...] = ()         # parameters shared across the subsets
    starts: str | int = "grid"
    bootstrap: int = 0
    seeds: str = "average"
    fitter: str = "lsq"
    solver: str = "newton"
    bayes_options: Mapping = field(default_factory=dict)


@lru_cache(maxsize=None)
def _log_predict(law: Law):
    """``law.log_predict`` compiled (one program per number of runs): describing thousands of
    groups op by op cost more than solving them (lawfit.batch)."""
    return jax.jit(law.log_predict)


def _residual_scale(obj, lp, y, n_seeds, n_free) -> dict:
    """Scatter of one run about the fitted curve (log predictions ``lp``), in the objective's
    residual space: the seed-weighted residual sum of squares over the residual degrees of freedom
    (a mean of k seeds scatters sqrt(k) less than one run, the Bayesian fitter's sigma/sqrt(w)
    model)."""
    r = np.log(y) - lp if obj.space == "log" else y - np.exp(lp)
    dof = len(y) - n_free
    sd = float(np.sqrt(np.sum(n_seeds * r * r) / dof)) if dof > 0 else float("nan")
    return {"space": obj.space, "sd": sd, "dof": int(dof), "per": "one run (one seed)"}


@dataclass(frozen=True, eq=False)
class _GroupRuns:
    """One group's runs: its rows of the table and, taken once for the whole table (describing
    thousands of groups column by column cost more than solving them), its arrays."""
    frame: pd.DataFrame             # the group's rows (read by position)
    variables: np.ndarray           # (n, V) the law's variables, natural units, in role order
    y: np.ndarray                   # (n,) loss
    n_seeds: np.ndarray             # (n,) seeds averaged into each run (1: seeds kept as runs)
    seed_ss: np.ndarray | None      # (n,) the seeds' sum of squares about their mean
    labels: np.ndarray | None       # (n,) subset label of each run (a joint fit), as text
    ids: dict                       # run-identifying columns present (run_id, model, family)

    @property
    def n(self) -> int:
        return len(self.y)

    @classmethod
    def of(cls, frame: pd.DataFrame, arrays: dict, rows: np.ndarray | None = None):
        """The group of ``frame``'s rows, its arrays taken at ``rows`` of the whole table's
        ``arrays`` (:func:`_table_arrays`); ``rows`` None: ``arrays`` are the group's own."""
        def take(a):
            return a if a is None or rows is None else a[rows]
        return cls(frame, take(arrays["variables"]), take(arrays["y"]),
                   take(arrays["n_seeds"]), take(arrays["seed_ss"]), take(arrays["labels"]),
                   {c: take(v) for c, v in arrays["ids"].items()})


_ID_COLUMNS = ("run_id", "model", "family")


def _table_arrays(frame: pd.DataFrame, law: Law, cols: Mapping[str, str], joint: str | None,
                  seeds: str) -> dict:
    """The arrays of :class:`_GroupRuns` for every row of ``frame`` (seeds averaged or kept)."""
    return {"variables": np.stack([column_values(frame, cols[r], r in law.zero_ok)
                                   for r in law.variables], axis=-1),
            "y": frame[cols["y"]].to_numpy(np.float64),
            "n_seeds": frame["n_seeds"].to_numpy(np.float64),
            "seed_ss": (frame["seed_ss"].to_numpy(np.float64)
                        if seeds == "average" and "seed_ss" in frame.columns else None),
            "labels": frame[joint].astype(str).to_numpy() if joint else None,
            "ids": {c: frame[c].to_numpy() for c in _ID_COLUMNS if c in frame.columns}}


def _duplicates_per_key(frame: pd.DataFrame, by: Sequence[str], dup: np.ndarray) -> dict:
    """Duplicated rows (``dup``) per group, keyed by the group's ``by`` values as text joined by
    \\x1f (values compared as text, as lawfit.table.key_matches does)."""
    if not by:
        return {}
    text = frame[by].map(str)
    keys = text.iloc[:, 0].to_numpy(object)
    for k in range(1, len(by)):
        keys = keys + "\x1f" + text.iloc[:, k].to_numpy(object)
    return dict(Counter(keys[dup]))


def _d_role(law: Law) -> str:
    """The role of the finetuning data size D: ``d``, or a one-variable law's only variable."""
    if "d" in law.variables:
        return "d"
    if len(law.variables) == 1:
        return law.variables[0]
    raise DataError(f"law {law.name!r} has no D variable (role 'd'): the pre-power phase is a "
                    "property of curves in D")


def _power_phase_runs(gdf: pd.DataFrame, law: Law, cols: dict, method: str, joint):
    """Keep the runs of every curve (one value of the other variables) in its power phase."""
    from . import prepower
    d_role = _d_role(law)
    dcol = cols[d_role]
    if is_per_row(dcol):
        raise DataError("the pre-power phase needs a plain D column, not @COL")
    others = [cols[r] for r in law.variables if r != d_role] + ([joint] if joint else [])
    others = [spec_column(c) for c in others]
    keep = np.zeros(len(gdf), bool)
    curves = []
    for ckey, cdf in (gdf.groupby(others, sort=True, dropna=False) if others else [((), gdf)]):
        ph = prepower.power_phase(cdf[dcol].to_numpy(float), cdf[cols["y"]].to_numpy(float),
                                  method)
        keep[gdf.index.get_indexer(cdf.index)] = cdf[dcol].to_numpy(float) >= ph.start
        ckey = ckey if isinstance(ckey, tuple) else (ckey,)
        curves.append({**{c: (v.item() if hasattr(v, "item") else v)
                          for c, v in zip(others, ckey)}, **ph.as_dict(),
                       "n_base_rows": int((cdf[dcol] == 0).sum())})
    n_out = int((~keep).sum())
    starts = sorted({c["start"] for c in curves})
    where = (f"D >= {starts[0]:g}" if len(starts) == 1 else
             f"D >= {starts[0]:g} to {starts[-1]:g} across {len(curves)} curves")
    note = (f"pre-power phase ({method}): {n_out} runs excluded, power phase {where} "
            f"({dcol})")
    return gdf[keep].reset_index(drop=True), {"method": method, "column": dcol, "curves": curves,
                                              "n_excluded": n_out}, note


@float64
def fit(frame: pd.DataFrame, law: str | Law = "multiplicative", *, x: str | None = None,
        d: str | None = None, y: str = "loss", by: Sequence[str] | None = None,
        objective: str | Objective | None = None, delta: float | None = None,
        starts: str | int = "grid", bootstrap: int = 0, seed: int = 0, fitter: str = "lsq",
        solver: str = "newton", joint: str | None = None, share: Sequence[str] = (),
        fixed: Mapping[str, float] | Callable[[dict], Mapping[str, float]] | None = None,
        seeds: str = "average", where: str | Expr | None = None, level: float = 0.95,
        source: dict | None = None, progress: Callable[[str], None] | None = None,
        bayes_options: dict | None = None, pre_power: str | None = None,
        fixed_draws: Callable[[dict], Mapping[str, np.ndarray]] | None = None,
        batch: bool = True) -> FitResult:
    """Fit ``law`` to the runs in ``frame``, per group of ``by`` columns.

    Parameters
    ----------
    frame : DataFrame
        The runs table (lawfit/table.py: one row per run).
    law : str or Law
        A registered law, ``MODULE:FUNCTION`` (lawfit/userlaw.py) or a :class:`Law`.
    x, d, y : str, optional
        Columns of the law's variables and of the loss (``@COL``: per row, the column named in
        COL); the law's default columns otherwise.
    by : sequence of str, optional
        Grouping columns (default: task and method where present).
    objective, delta : str or Objective, float, optional
        The objective (lawfit/objectives.py; default: the law's) and a Huber threshold.
    starts : "grid" or int
        The law's start grid, or that many random starts within its span.
    bootstrap : int
        Number of bootstrap resamples (least squares); 0 for none.
    seed : int
        Seed of every random choice (starts, resamples, chains).
    fitter : {"lsq", "bayes"}
        Least squares (lawfit/lsq.py) or the Bayesian fitter (lawfit/bayes/).
    solver : {"newton", "varpro"}
        Least-squares solver (varpro: squared error only).
    joint : str, optional
        A column whose values are subsets fitted together with the ``share``d parameters in common
        and the others per subset (Zhang et al. 2024 share E and beta across the model-size and
        pretraining-size runs).
    share : sequence of str
        Parameters shared by the subsets of a joint fit.
    fixed : mapping or callable, optional
        Parameters frozen at given values (a mapping, or a function of the group key returning one).
    seeds : {"average", "keep"}
        Average runs that differ only in seed (default) or keep them as separate runs (the
        bootstrap then resamples configurations).
    where : str or Expr, optional
        Row filter (lawfit/expr.py), recorded in the result.
    level : float
        Interval level.
    source : dict, optional
        Provenance of ``frame`` (path, sha256, rows); its hash otherwise.
    progress : callable, optional
        Called with one-line messages during long work.
    bayes_options : dict, optional
        Options of the Bayesian fitter (priors, likelihood, chains, warmup, draws, ...).
        ``vectorize_groups``: sample the NUTS chains of several groups in one compiled
        program, each (group, chain) with its own adaptation (lawfit.bayes.fit_problems): True,
        False, or "auto" (the default: on an accelerator; on CPU it measured slower than one
        group at a time). Recorded in ``settings["vectorized_groups"]``.
        ``retry`` (default True): a group whose chains did not converge is sampled once more,
        after divergent transitions at a target acceptance ten times closer to 1 (0.9 -> 0.99),
        after R-hat > 1.01 with twice the warm-up and draws; the first run's settings and
        diagnostics stay in its ``info["sampler"]["retried"]``.
    pre_power : {"validate", "ats"}, optional
        Find each curve's pre-power phase (lawfit/prepower.py) and fit the law on the power phase
        only (base-model rows D = 0 are dropped with it); what was excluded is in each group's
        ``info["pre_power"]`` and warnings. Intervals are conditional on that choice.
    fixed_draws : callable, optional
        Per group key, arrays (B,) of values of the ``fixed`` parameters, one per bootstrap
        resample (a two-stage recipe's first-stage draws): the bootstrap then takes B resamples
        and refits resample b with the frozen values of draw b, so that their uncertainty
        propagates (least squares only).
    batch : bool
        Solve the least-squares fits of many groups together (lawfit/batch.py: screening of
        every group's start grid at once, then batched Newton on the best starts of each); each
        group still gets its own optimum, convergence test and status. It applies to Newton fits
        from the start grid of plain (not joint) layouts with an objective Newton minimises
        directly (not l1/IRLS); other fits, and ``batch=False``, fit the groups one by one.
        Recorded in ``settings["batched"]``. The bootstrap resamples of batched groups are
        refitted together too (lawfit.batch.bootstrap_many; frozen-value draws included), with
        each group's resampling weights drawn as one by one, so the draws are the same up to
        solver rounding: ``settings["bootstrap_batched"]`` and each group's
        ``info["batch"]["bootstrap"]`` record it.

    Returns
    -------
    FitResult
        One :class:`GroupFit` per group (per subset of a joint fit), each with its status,
        estimate, draws, warnings and diagnostics.
    """
    law = resolve_law(law)
    obj = objective if isinstance(objective, Objective) else make_objective(objective, delta, law)
    if fitter not in ("lsq", "bayes"):
        raise DataError(f"unknown fitter {fitter!r}: choose lsq or bayes")
    if solver not in ("newton", "varpro"):
        raise DataError(f"unknown solver {solver!r}: choose newton or varpro")
    if not 0 < level < 1:
        raise DataError(f"level must be between 0 and 1, got {level}")
    if bootstrap < 0:
        raise DataError(f"bootstrap must be >= 0, got {bootstrap}", option="bootstrap")
    if seeds not in ("average", "keep"):
        raise DataError(f"seeds must be 'average' or 'keep', got {seeds!r}")
    if fixed_draws is not None and fitter != "lsq":
        raise DataError("fixed_draws (paired frozen values per resample) needs the lsq fitter")
    if share and not joint:
        raise DataError("sharing parameters needs a joint fit: name the subset column (joint)",
                        option="share")
    if solver == "varpro" and (obj.name != "mse" or (fixed and not callable(fixed))):
        raise DataError("solver 'varpro' needs objective 'mse' and no frozen parameters (the "
                        "linear parameters are solved exactly in squared error)")
    if fitter == "bayes" and obj.kind == "l1":
        raise DataError(f"objective {obj.name!r} is a least-squares estimator: the Bayesian "
                        "fitter's likelihood is student or normal (use objective huber or "
                        "huber-log)", option="objective")
    if bootstrap and fitter == "lsq" and robust.needs_irls(obj):
        raise DataError(f"bootstrap intervals are not offered for objective {obj.name!r}"
                        + (f" with delta {obj.delta:g}" if obj.delta else "") + " (an IRLS fit "
                        "per resample does not yet converge reliably): use bootstrap 0 for the "
                        "point estimate, or objective huber-log / fitter 'bayes' for intervals",
                        option="bootstrap")
    src = source or {"path": None, "sha256": frame_sha256(frame), "rows": len(frame)}
    frame, where_record = filter_with_record(frame, where)
    if len(frame) == 0:
        raise DataError("the runs table has no rows")
    cols = resolve_columns(frame, law.variables, law.default_columns, {"x": x, "d": d}, y,
                           joint)
    by = list(default_by(frame) if by is None else by)
    require_columns(frame, by)
    # validate every column before any fitting
    zero_roles = set(law.zero_ok) | ({_d_role(law)} if pre_power else set())
    for role in law.variables:
        column_values(frame, cols[role], role in zero_roles)
    numeric_column(frame, y, positive=True)
    var_cols = [c for c in (cols[r] for r in law.variables)]
    flat = [spec_column(c) for c in var_cols]
    if seeds == "average":
        work = average_seeds(frame, y, [*flat, *by, *([joint] if joint else []),
                                        *referenced_columns(frame, var_cols)])
    else:
        work = frame.reset_index(drop=True).copy()
        work["n_seeds"] = 1
    dup = duplicate_rows(frame, [*flat, *by, *([joint] if joint else [])])
    dup_of = _duplicates_per_key(frame, by, dup)
    work = work.reset_index(drop=True)        # positions: a group's rows index the arrays below
    arrays = None if pre_power else _table_arrays(work, law, cols, joint, seeds)
    rng = np.random.default_rng(seed)
    groups, layouts = [], {}
    for gkey, gdf in (work.groupby(by, sort=True, dropna=False) if by else [((), work)]):
        key = dict(zip(by, gkey if isinstance(gkey, tuple) else (gkey,)))
        key = {k: (v.item() if hasattr(v, "item") else v) for k, v in key.items()}
        phase = None
        if pre_power:
            gdf, *phase = _power_phase_runs(gdf, law, cols, pre_power, joint)
            runs = _GroupRuns.of(gdf, _table_arrays(gdf, law, cols, joint, seeds))
        else:
            runs = _GroupRuns.of(gdf, arrays, gdf.index.to_numpy())
        frozen = fixed(key) if callable(fixed) else (fixed or {})
        subsets = tuple(sorted(gdf[joint].astype(str).unique())) if joint else (None,)
        layout = _layout(layouts, law, subsets, share, frozen)  # checks the names too
        n_free = len(layout.free_names)
        if runs.n < n_free:
            raise DataError(f"group {key} has {runs.n} runs but the fit has {n_free} free "
                            "parameters: add runs, fix parameters, or group more coarsely (by)")
        n_dup = dup_of.get("\x1f".join(str(key[c]) for c in by), 0) if by else int(dup.sum())
        notes = _data_warnings(runs, key, layout, law, cols, joint, share, n_dup,
                               averaged=seeds == "average" and "seed" in frame.columns)
        groups.append((key, runs, frozen, layout, phase, notes))
    opts = FitOptions(law=law, objective=obj, columns=cols, joint=joint, share=tuple(share),
                      starts=starts, bootstrap=bootstrap, seeds=seeds, fitter=fitter,
                      solver=solver, bayes_options=dict(bayes_options or {}))
    prefit: list = [None] * len(groups)
    built: list = [None] * len(groups)
    batched = batch and len(groups) > 1 and batchable(fitter, solver, joint, obj, starts)
    if batched:
        if progress:
            progress(f"{len(groups)} groups: least squares, solved together (lawfit.batch)")
        built = [_group_of(runs, key, layout, opts) for key, runs, _, layout, _, _ in groups]
        prefit = solve_groups(built, progress=progress)
    vectorized = fitter == "bayes" and len(groups) > 1 and _vectorize_groups(opts.bayes_options)
    if vectorized:
        from . import bayes  # numpyro is imported only when asked for
        if progress:
            progress(f"{len(groups)} groups: NUTS chains of the groups sampled together "
                     "(lawfit.bayes.fit_problems)")
        built = [_group_of(runs, key, layout, opts) for key, runs, _, layout, _, _ in groups]
        weights = [runs.n_seeds if seeds == "average" else None for _, runs, *_ in groups]
        options = {k: v for k, v in opts.bayes_options.items()
                   if k not in ("vectorize_groups", "chain_method", "driver")}
        prefit = bayes.fit_problems(built, rng=rng, progress=progress, weights=weights,
                                    **options)
    preboot: list = [None] * len(groups)
    boot_batched = batched and (bootstrap > 0 or fixed_draws is not None)
    if boot_batched:
        preboot = _bootstrap_groups(groups, built, prefit, fixed_draws, opts, rng, progress)
    described = (_describe_together(groups, prefit, opts) if batched
                 else [None] * len(groups))
    out = []
    for gi, (key, runs, frozen, layout, phase, notes) in enumerate(groups):
        if progress:
            progress(f"group {gi + 1}/{len(groups)} {key}: "
                     + ("describing the fit" if batched or vectorized
                        else f"fitting {runs.n} runs"))
        fdraws = _fixed_draws_of(key, frozen, law, fixed_draws)
        fits = _fit_group(runs, key, layout, frozen, fdraws, opts, rng, progress, prefit[gi],
                          preboot[gi], built[gi], described[gi])
        if phase:
            fits = [replace(g, warnings=(phase[1], *g.warnings),
                            info=g.info | {"pre_power": phase[0]}) for g in fits]
        for g in fits:
            sub = notes.get(g.key.get(joint), ([], False)) if joint else ([], False)
            found, unidentified = notes[None][0] + sub[0], notes[None][1] or sub[1]
            if not found:
                out.append(g)
                continue
            kept = [w for w in g.warnings if not (unidentified and "widen it" in w)]
            out.append(replace(g, warnings=tuple(found + kept),
                               status=Status.NOT_IDENTIFIED if unidentified else g.status))
    settings = {"law": law.name, "columns": cols, "by": by, "objective": obj.as_dict(),
                "starts": starts, "bootstrap": bootstrap, "seed": seed, "fitter": fitter,
                "solver": solver, "joint": joint, "share": list(share), "seeds": seeds,
                "level": level, "pre_power": pre_power, "batched": batched,
                "bootstrap_batched": boot_batched} | where_record
    if fitter == "bayes":
        settings["vectorized_groups"] = vectorized
    return FitResult(law=law, objective=obj, fitter=fitter, columns=cols,
                     by=tuple(by) + ((joint,) if joint else ()), groups=tuple(out),
                     settings=settings, source=src, level=level)


def _layout(built: dict, law: Law, subsets: tuple, share, frozen: Mapping) -> Layout:
    """``build_layout(law, subsets, share, frozen)``, built once per distinct subsets and frozen
    values of a call (``built``: those already built; most groups of a call share one)."""
    key = (subsets, tuple(frozen.items()))
    try:
        return built[key]
    except KeyError:
        built[key] = build_layout(law, subsets, share, frozen)
        return built[key]
    except TypeError:                       # unhashable frozen values
        return build_layout(law, subsets, share, frozen)


def _fixed_draws_of(key: dict, frozen: Mapping[str, float], law: Law,
                    fixed_draws) -> np.ndarray | None:
    """A group's paired frozen values per resample, (B, n_fixed) internal units, from the
    ``fixed_draws`` callable of :func:`fit` (None without one)."""
    if fixed_draws is None:
        return None
    given = fixed_draws(key)
    if sorted(given) != sorted(frozen):
        raise DataError(f"group {key}: fixed_draws give {sorted(given)} but the frozen "
                        f"parameters are {sorted(frozen)}")
    nat = np.ones((len(next(iter(given.values()))), law.n_params))
    for p, v in given.items():
        nat[:, law.params.index(p)] = v
    return law.to_internal(nat)[:, [law.params.index(p) for p in law.params if p in frozen]]


def _clusters(gdf: pd.DataFrame, opts: FitOptions) -> np.ndarray:
    """What the bootstrap resamples: each run (seeds averaged) or each configuration."""
    if opts.seeds == "average":
        return np.arange(len(gdf))
    return gdf.groupby([c for c in gdf.columns if c in CONFIG_COLUMNS or c == opts.joint],
                       dropna=False, sort=False).ngroup().to_numpy()


def _bootstrap_groups(groups, built, prefit, fixed_draws, opts: FitOptions,
                      rng: np.random.Generator, progress) -> list:
    """The bootstrap of every group of a batched call at once (lawfit.batch.bootstrap_many):
    each group's resampling weights are drawn from ``rng`` in group order, exactly as the groups
    fitted one by one draw them, so the draws are the same either way. Returns per group
    ``(draws, converged)``."""
    law = opts.law
    fds = [_fixed_draws_of(key, frozen, law, fixed_draws) for key, _, frozen, *_ in groups]
    weights = []
    for (_, runs, *_), fd in zip(groups, fds):
        n_boot = len(fd) if fd is not None else opts.bootstrap
        weights.append(lsq.bootstrap_weights(n_boot, _clusters(runs.frame, opts), rng) if n_boot
                       else np.zeros((0, runs.n)))     # as one by one: nothing drawn
    total = sum(len(w) for w in weights)
    if progress:
        progress(f"{len(groups)} groups: {total} bootstrap resamples, refitted together "
                 "(lawfit.batch)")
    with counted(progress, "bootstrap", total, unit="resample") as advance:
        boots = bootstrap_many([g.problem for g in built], [f.candidates for f in prefit],
                               weights, fds, progress=advance)
    return boots


_EXPONENT = {"x": "alpha", "d": "beta"}
# several groups' NUTS chains in one program (lawfit.bayes.fit_problems): "auto" on an
# accelerator only; on CPU it measured slower than group by group
# (benchmarks/bench_bayes_groups.py)
VECTORIZE_GROUPS = "auto"


def _vectorize_groups(options: Mapping) -> bool:
    """Whether a Bayesian fit of several groups samples their chains together
    (``bayes_options["vectorize_groups"]``: True, False or "auto", the default)."""
    choice = options.get("vectorize_groups", VECTORIZE_GROUPS)
    if choice not in (True, False, "auto"):
        raise DataError(f"vectorize_groups must be true, false or 'auto', got {choice!r}")
    if options.get("driver", "lawfit") != "lawfit" or "weights" in options:
        if choice is True:
            raise DataError("vectorize_groups needs the lawfit driver (numpyro's MCMC samples "
                            "one group at a time) and each group's own weights")
        return False
    if choice == "auto":
        return jax.default_backend() != "cpu"
    return bool(choice)


def _data_warnings(runs: _GroupRuns, key, layout, law, cols, joint, share, n_dup, averaged) -> dict:
    """What a user must know about a group's runs before trusting its fit: {subset or None:
    (warnings, exponents not identified)}."""
    notes, bad = [], False
    blank = [c for c, v in key.items() if v is None or (isinstance(v, float) and np.isnan(v))]
    for c in blank:
        notes.append(f"{runs.n} runs have a blank {c!r} and were fitted as their own group "
                     f"{c}=nan: fill the cells or exclude them with --where '{c} == {c}'")
    if n_dup:
        notes.append(f"{n_dup} {'row repeats' if n_dup == 1 else 'rows repeat'} another row's "
                     "configuration and seed (duplicated rows?): "
                     + ("averaged as if they were seeds" if averaged else
                        "fitted as independent runs"))
    n_free = len(layout.free_names)
    if runs.n == n_free:
        notes.append(f"{runs.n} runs for {n_free} free parameters: the law passes through every "
                     "run, nothing is left to estimate the error, and intervals mean nothing; add "
                     "runs or fix parameters (--fix)")
    values = runs.variables
    for j, role in enumerate(law.variables):
        exp = _EXPONENT.get(role, "its exponent")
        if np.unique(values[:, j]).size == 1 and exp in law.params:
            bad = True
            notes.append(f"{cols[role]} takes the single value {values[0, j]:g} in this group: "
                         f"the exponent {exp} is not identified (it trades off with the scale); "
                         f"add runs at other {cols[role]} values or fix {exp} with --fix")
    trend = loss_trend(values, runs.y)
    if trend:
        bad = True
        notes.append(("the loss is the same for every run" if trend == "constant" else
                      f"the loss does not fall as {' or '.join(cols[r] for r in law.variables)} "
                      "grows") + ": a scaling law's exponents are not identified by these runs "
                     "(widening the start grid will not help); check the runs and the --y column")
    out = {None: (notes, bad)}
    if joint:
        labels = runs.labels
        for s in layout.subsets:
            m = labels == s
            sub = []
            for j, role in enumerate(law.variables):
                exp = _EXPONENT.get(role)
                if (exp in law.params and exp not in share and np.unique(values[m, j]).size == 1
                        and np.unique(values[:, j]).size > 1):
                    sub.append(f"{cols[role]} takes the single value {values[m][0, j]:g} in "
                               f"{joint}={s}: its exponent {exp} is not identified there")
            out[s] = (sub, bool(sub))
    return out


def _group_of(runs: _GroupRuns, key: dict, layout: Layout, opts: FitOptions) -> GroupProblem:
    """A group's problem (lawfit.problem.group_problem) from its runs."""
    law, joint = opts.law, opts.joint
    if joint:
        for s in layout.subsets:
            n_s = int((runs.labels == s).sum())
            if n_s < law.n_params:
                raise DataError(f"subset {joint}={s} of group {key} has {n_s} runs, "
                                f"fewer than the {law.n_params} parameters of its own fit")
    return group_problem(law, opts.objective, layout, runs.variables, runs.y, runs.labels)


def _fit_group(runs: _GroupRuns, key: dict, layout: Layout, frozen: Mapping[str, float],
               fixed_draws: np.ndarray | None, opts: FitOptions, rng: np.random.Generator,
               progress: Callable[[str], None] | None,
               prefit=None, preboot: tuple | None = None,
               group: GroupProblem | None = None,
               described: tuple | None = None) -> list[GroupFit]:
    """Fit one group's runs (a joint layout: one GroupFit per subset); ``prefit``: its
    least-squares fit (an ``lsq.LsqFit``) or posterior (a ``bayes.Posterior``), already solved
    with other groups (lawfit.batch, lawfit.bayes.fit_problems); ``preboot``: its bootstrap
    (draws, converged), refitted with the other groups' resamples (see
    :func:`_bootstrap_groups`); ``group``: its problem, when already built; ``described``: its
    fitted log losses and structure tests, computed with the other groups' (see
    :func:`_describe_together`)."""
    law, obj, cols, joint = opts.law, opts.objective, opts.columns, opts.joint
    subsets = layout.subsets
    group = group if group is not None else _group_of(runs, key, layout, opts)
    variables, yv = runs.variables, runs.y
    problem, sub_index, log_vars = group.problem, group.sub_index, group.problem.log_vars
    n_seeds = runs.n_seeds if opts.seeds == "average" else np.ones(runs.n)

    fixed_per_draw = None          # (B, n_fixed) frozen internal values paired with the draws
    if opts.fitter == "bayes":
        from . import bayes  # numpyro is imported only when asked for
        weights = n_seeds if opts.seeds == "average" else None
        options = {k: v for k, v in opts.bayes_options.items() if k != "vectorize_groups"}
        post = prefit if prefit is not None else bayes.fit_problem(
            group, rng=rng, progress=progress, **({"weights": weights} | options))
        free_hat, draws_free, status = post.estimate, post.draws, Status(post.status)
        objective_value = lsq.objective_value(problem, free_hat)
        warnings, info, method = list(post.warnings), dict(post.info), "posterior"
        posterior = post.data
    else:
        fitted = prefit if prefit is not None else _least_squares(group, opts, rng)
        status, warnings = fitted.status, list(fitted.warnings)
        free_hat, objective_value = fitted.theta, fitted.value
        info = {"n_starts": fitted.n_starts, "n_at_optimum": fitted.n_at_optimum,
                "steps": fitted.steps}
        stages = dict(fitted.info)
        if "batch" in stages:                  # how lawfit.batch screened this group's starts
            info["batch"] = stages.pop("batch")
        if stages:
            info["irls"] = stages
        draws_free, method, posterior = np.zeros((0, len(free_hat))), None, None
        n_boot = len(fixed_draws) if fixed_draws is not None else opts.bootstrap
        if preboot is not None and n_boot:     # refitted with the other groups' resamples
            draws_free, ok = preboot
            info["batch"] = info.get("batch", {}) | {"bootstrap": "batched"}
            if fixed_draws is not None:
                fixed_per_draw = fixed_draws[ok]
        elif n_boot:
            weights = lsq.bootstrap_weights(n_boot, _clusters(runs.frame, opts), rng)
            with counted(progress, "bootstrap", n_boot, unit="resample") as advance:
                seen = [0]

                def cb(done, total):
                    advance(done - seen[0])
                    seen[0] = done

                if fixed_draws is None:
                    draws_free, ok = lsq.bootstrap(problem, fitted.candidates, weights,
                                                   progress=cb)
                else:
                    draws_free, ok = lsq.bootstrap_frozen(problem, fitted.candidates, weights,
                                                          fixed_draws, progress=cb)
                    fixed_per_draw = fixed_draws[ok]
        if n_boot:
            health = bootstrap_health(n_boot, int((~ok).sum()))
            info["bootstrap"] = health
            info["bootstrap_failed"] = health["failed"]
            if health["failed"]:
                warnings.append(health["message"])
            draws_free = draws_free[ok] if health["interval"] == "ok" else draws_free[:0]
            if fixed_per_draw is not None and health["interval"] != "ok":
                fixed_per_draw = fixed_per_draw[:0]
            method = "bootstrap"
    # scale parameters stop at this floor (lawfit/problem.py, Problem.lower_bounds): effectively 0
    info["scale_floor"] = problem.scale_floor()
    info["joint"] = ({"column": joint, "shared": list(opts.share), "fixed": dict(frozen),
                      "free": list(layout.free_names)} if joint else None)
    if frozen:
        info["frozen"] = {p: float(v) for p, v in frozen.items()}
    est_int = layout.internal(free_hat)                      # (n_subsets, P)
    log_pred = np.asarray(_log_predict(law)(est_int[sub_index], np.asarray(log_vars)))
    info["residual"] = _residual_scale(obj, log_pred, yv, n_seeds, len(layout.free))
    if fixed_per_draw is not None:                           # frozen values paired per draw
        phi = np.concatenate([np.asarray(draws_free, np.float64), fixed_per_draw], axis=-1)
        draws_int = phi[..., layout.subset_slots]
    else:
        draws_int = layout.internal(draws_free)              # (B, n_subsets, P)
    out = []
    for s, label in enumerate(subsets):
        m = sub_index == s
        k = dict(key) | ({joint: label} if joint else {})
        ranges = {r: (float(variables[m, j].min()), float(variables[m, j].max()))
                  for j, r in enumerate(law.variables)}
        fq = _fit_quality(runs, m, described or _subset_log_pred(law, est_int[s], variables[m]),
                          law, obj, cols, len(layout.free) / len(subsets), opts.seeds, joint)
        sub_status, sub_warnings = status, list(warnings)
        if fq["poor_fit"]:
            sub_warnings.append(quality.warning_text(fq))
            if status == Status.CONVERGED:
                sub_status = Status.POOR_FIT
        out.append(GroupFit(key=k, law=law, n_points=int(m.sum()), status=sub_status,
                            objective_value=float(objective_value),
                            estimate=law.to_natural(est_int[s]),
                            draws=law.to_natural(draws_int[:, s, :]), interval_method=method,
                            ranges=ranges, warnings=tuple(sub_warnings),
                            info=info | {"n_seeds": int(runs.n_seeds[m].sum()),
                                         "fit_quality": fq},
                            posterior=posterior))
    return out


def _least_squares(group: GroupProblem, opts: FitOptions, rng: np.random.Generator) -> lsq.LsqFit:
    """The least-squares fit of a group, with its status: Newton multi-start (lawfit/lsq.py), or,
    for l1 and tiny-delta Huber objectives, IRLS (lawfit/robust.py) started at the Huber(1e-3)
    optimum."""
    obj = opts.objective
    if not robust.needs_irls(obj):
        return lsq.solve(group, opts.starts, opts.solver, rng)
    start_obj = make_objective("huber-log" if obj.space == "log" else "huber", 1e-3)
    start_group = replace(group, problem=replace(group.problem, objective=start_obj),
                          sub_problems=tuple(replace(sp, objective=start_obj)
                                             for sp in group.sub_problems))
    start = lsq.solve(start_group, opts.starts, opts.solver, rng)
    fitted = robust.solve(group.problem, start.theta)
    # a joint fit starts from its subsets' own optima, not from the grid
    status, warnings = lsq.lsq_status(fitted, group, check_grid=not group.layout.joint)
    return replace(fitted, status=status, warnings=tuple(warnings))


def _subset_log_pred(law: Law, theta: np.ndarray, variables: np.ndarray) -> tuple:
    """A subset's fitted log losses at its internal parameters theta (P,), and no structure tests
    (``(log_pred, None)``, as :func:`_fit_quality` takes them). (Evaluated at theta, not at
    theta repeated per run: jax's program differs in the last bit between the two.)"""
    with np.errstate(divide="ignore"):          # a base-model row: log 0 = -inf, the law sees 0
        return np.asarray(_log_predict(law)(np.asarray(theta), np.log(variables))), None


def _fit_quality(runs: _GroupRuns, m: np.ndarray, described: tuple, law, obj, cols, n_params,
                 seeds, joint) -> dict:
    """The fit_quality block (lawfit.quality) of one subset's rows ``m`` of a group's runs;
    ``described``: their fitted log losses (:func:`_subset_log_pred`) and structure tests
    (None: computed here; :func:`_describe_together` computes every group's at once)."""
    log_pred, tests = described
    variables, y = runs.variables[m], runs.y[m]
    log_space = obj.space == "log"
    r = _residuals(obj, log_pred, y)
    specs = [cols[role] for role in law.variables]
    first = runs.frame[m].iloc[0] if any(map(is_per_row, specs)) else {}
    rows = _RunRows({c: v[m] for c, v in runs.ids.items()},
                    [column_for(spec, first) for spec in specs], variables)
    n_seeds = seed_ss = None
    if seeds == "average" and runs.seed_ss is not None:
        n_seeds = runs.n_seeds[m]
        seed_ss = runs.seed_ss[m]
        if log_space:                       # delta method: var(log y) ~ var(y) / y^2
            seed_ss = seed_ss / y ** 2
    elif seeds == "keep":
        gdf = runs.frame[m]
        config = gdf.groupby([c for c in gdf.columns if c in CONFIG_COLUMNS or c == joint],
                             dropna=False, sort=False).ngroup().to_numpy()
        return quality.assess(r, variables, rows.names, n_params=n_params, space=obj.space,
                              config=config, runs=rows, tests=tests)
    return quality.assess(r, variables, rows.names, n_params=n_params, space=obj.space,
                          n_seeds=n_seeds, seed_ss=seed_ss, runs=rows, tests=tests)


def _residuals(obj: Objective, log_pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Prediction - observation in the objective's residual space (loss, or log loss)."""
    return log_pred - np.log(y) if obj.space == "log" else np.exp(log_pred) - y


def _describe_together(groups, prefit, opts: FitOptions) -> list[tuple]:
    """The fitted log losses and structure tests (lawfit.quality.structure_many) of every group
    of a batched call at once (plain layouts: one subset each); per group ``(log_pred,
    tests)``."""
    runs = [g[1] for g in groups]
    log_preds = [_subset_log_pred(opts.law, layout.internal(fitted.theta)[0], r.variables)[0]
                 for (_, r, _, layout, _, _), fitted in zip(groups, prefit)]
    residuals = np.concatenate([_residuals(opts.objective, lp, r.y)
                                for lp, r in zip(log_preds, runs)])
    tests = quality.structure_many(residuals, np.concatenate([r.variables for r in runs]),
                                   np.repeat(np.arange(len(runs)), [r.n for r in runs]))
    return list(zip(log_preds, tests))


class _RunRows(SequenceABC):
    """Per row of a group, the mapping that identifies its run (its identifying columns and its
    variables), made only for the rows asked for (quality.assess names one run)."""

    def __init__(self, ids: dict, names: list, variables: np.ndarray):
        self.ids, self.names, self.variables = ids, names, variables

    def __len__(self) -> int:
        return len(self.variables)

    def __getitem__(self, i):
        row = ({c: v[i] for c, v in self.ids.items()}
               | {nm: float(v) for nm, v in zip(self.names, self.variables[i])})
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
