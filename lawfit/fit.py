"""``lawfit.fit``: runs table in, :class:`~lawfit.result.FitResult` out.

Validates the table, splits it into groups, builds one :class:`~lawfit.lsq.Problem` per group
(a joint problem when subsets share parameters), and hands it to a fitter: least squares with
bootstrap draws, or the Bayesian fitter with posterior draws. Pure: no printing, no files; long
work reports through an optional ``progress(message)`` callback.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

import jax.numpy as jnp
import numpy as np
import pandas as pd

from lawfit.errors import DataError
from lawfit.table import (
    CONFIG_COLUMNS,
    average_seeds,
    default_by,
    duplicate_rows,
    frame_sha256,
    loss_trend,
    numeric_column,
    require_columns,
)

from . import lsq, quality, robust
from .expr import Expr, filter_with_record
from .laws import Law, check_params
from .objectives import Objective, make_objective
from .result import FitResult, GroupFit, Status, bootstrap_health
from .userlaw import resolve as resolve_law


@dataclass(frozen=True)
class Layout:
    """How a group's free parameter vector maps onto its subsets' law parameters."""
    subsets: tuple                  # subset labels (one ``None`` for a plain fit)
    free_names: tuple               # e.g. ("E", "beta", "A[model_params]", ...)
    free_params: tuple              # law parameter of each free slot, e.g. ("E", "beta", "A", ...)
    subset_slots: np.ndarray        # (n_subsets, P) index into concat(free, fixed)
    fixed: np.ndarray               # frozen internal values

    def internal(self, free: np.ndarray) -> np.ndarray:
        """(..., F) free vectors -> (..., n_subsets, P) internal law parameters."""
        free = np.asarray(free, np.float64)
        fixed = np.broadcast_to(self.fixed, free.shape[:-1] + self.fixed.shape)
        phi = np.concatenate([free, fixed], axis=-1)
        return phi[..., self.subset_slots]


def _resolve_columns(frame, law: Law, x, d, y, joint):
    cols = dict(law.default_columns)
    given = {"x": x, "d": d}
    for role in law.variables:
        if given.get(role):
            cols[role] = given[role]
    cols["y"] = y
    needed = [c for c in cols.values() if not c.startswith("@")]
    needed += [c[1:] for c in cols.values() if c.startswith("@")]
    if joint:
        needed.append(joint)
    require_columns(frame, needed)
    return cols


def variable_values(frame: pd.DataFrame, spec: str, zero_ok: bool = False) -> np.ndarray:
    """Values of a variable column; ``@COL`` reads, per row, the column named in COL (so that a
    joint fit's subsets can each use their own X, as the paper's model-size / pretraining-size /
    PET-size series do). ``zero_ok``: the law is defined at 0 (the rectified law's base-model row);
    negative values are refused all the same."""
    if not spec.startswith("@"):
        return _values(frame, spec, zero_ok)
    names = frame[spec[1:]].astype(str)
    require_columns(frame, sorted(set(names)), what=f"column (named in {spec[1:]!r})")
    out = np.empty(len(frame))
    for name in set(names):
        m = (names == name).to_numpy()
        out[m] = _values(frame.loc[m], name, zero_ok)
    return out


def _values(frame, col, zero_ok):
    if not zero_ok:
        return numeric_column(frame, col, positive=True)
    arr = numeric_column(frame, col, positive=False)
    if (arr < 0).any():
        numeric_column(frame.loc[arr < 0], col, positive=True)     # raises today's message
    return arr


def _layout(law: Law, subsets, share, fixed: Mapping[str, float]) -> Layout:
    unknown = [p for p in [*share, *fixed] if p not in law.params]
    if unknown:
        raise DataError(f"unknown parameter(s) {unknown} for law {law.name!r}: its parameters "
                        f"are {', '.join(law.params)}")
    check_params(law, fixed, "fixed parameter")
    fixed_names = [p for p in law.params if p in fixed]
    fixed_vals = law.to_internal({**{p: 1.0 for p in law.params}, **fixed})
    fixed_int = np.array([fixed_vals[law.params.index(p)] for p in fixed_names])
    joint = subsets != (None,)
    names, params, slot = [], [], {}
    for p in law.params:
        if p in fixed or (joint and p not in share):
            continue
        slot[(None, p)] = len(names)
        names.append(p)
        params.append(p)
    for s in subsets:
        for p in law.params:
            if p in fixed or (None, p) in slot:
                continue
            slot[(s, p)] = len(names)
            names.append(f"{p}[{s}]")
            params.append(p)
    n_free = len(names)
    if n_free == 0:
        raise DataError(f"every parameter of law {law.name!r} is fixed: nothing is left to fit "
                        "(use lawfit simulate or the law itself to evaluate fixed parameters)")
    slots = np.array([[n_free + fixed_names.index(p) if p in fixed else
                       slot.get((None, p), slot.get((s, p))) for p in law.params] for s in subsets])
    return Layout(tuple(subsets), tuple(names), tuple(params), slots, fixed_int)


def _grid_starts(law: Law, layout: Layout, starts, rng) -> np.ndarray:
    """Start vectors over the free parameters of a one-subset layout."""
    free_idx = [law.params.index(p) for p in layout.free_params]
    grid = law.grid()
    lo, hi = grid.min(axis=0), grid.max(axis=0)
    if isinstance(starts, (int, np.integer)) and not isinstance(starts, bool):
        if starts < 1:
            raise DataError(f"--starts must be 'grid' or a positive count, got {starts}")
        return rng.uniform(lo[free_idx], hi[free_idx], size=(int(starts), len(free_idx)))
    if starts != "grid":
        raise DataError(f"--starts must be 'grid' or a positive count, got {starts!r}")
    return np.unique(grid[:, free_idx], axis=0)


def _status(ms: lsq.MultiStart, law: Law, layout: Layout, problem: lsq.Problem,
            check_grid: bool = True) -> tuple[str, list]:
    """Status of a least-squares fit: not converged, a scale parameter at its floor, or (for fits
    started from the grid) an optimum outside the grid's span."""
    if not ms.converged:
        return Status.NOT_CONVERGED, ["no start converged: the estimate is the best point found"]
    # within a factor e^2 of the floor a scale term is below 1e-10 of every loss: effectively 0
    at = [n for n, t, b in zip(layout.free_names, ms.theta, problem.lower_bounds()) if t <= b + 2.0]
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
        if ms.theta[j] < lo[k] - 1e-9 * span or ms.theta[j] > hi[k] + 1e-9 * span:
            edge.append(layout.free_names[j])
    if edge:
        return Status.GRID_EDGE, [f"optimum outside the start grid in {', '.join(edge)}: another "
                                  "optimum may lie beyond the grid; widen it or give --starts N"]
    return Status.CONVERGED, []


def _solve_lsq(problem, law, layout, sub_problems, starts, solver, rng):
    """Multi-start (or, jointly, refine from the subsets' own optima)."""
    if len(layout.subsets) == 1:
        if solver == "varpro":
            if not law.analytic:
                raise DataError(f"--solver varpro needs a law with linear parameters; "
                                f"{law.name!r} is a jax law: use --solver newton")
            if problem.objective.name != "mse" or layout.fixed.size:
                raise DataError("--solver varpro needs --objective mse and no frozen parameters "
                                "(the linear parameters are solved exactly in squared error)")
            exps = _grid_starts(law, _layout(law, (None,), (), {p: 1.0 for p in law.linear}),
                                starts, rng)
            ms, coef = lsq.varpro(problem, exps)
            warn = ([f"variable projection gave non-positive {law.linear}: {coef.tolist()}"]
                    if (coef <= 0).any() else [])
            return ms, warn
        return lsq.multistart(problem, _grid_starts(law, layout, starts, rng)), []
    # joint: each subset alone first, then the joint problem from their optima
    sub_opt = []
    for sp in sub_problems:
        sub_layout = _layout(law, (None,), (), {})
        sub_opt.append(law.to_natural(lsq.multistart(sp, _grid_starts(law, sub_layout, starts,
                                                                       rng)).theta))
    sub_opt = np.array(sub_opt)                               # (n_subsets, P) natural
    cands = []
    for source in [*range(len(sub_opt)), "mean"]:
        free = np.empty(len(layout.free_names))
        for j, (name, p) in enumerate(zip(layout.free_names, layout.free_params)):
            k = law.params.index(p)
            if name == p:                                     # shared
                vals = sub_opt[:, k] if source == "mean" else sub_opt[[source], k]
                nat = np.exp(np.mean(np.log(vals))) if p in law.log_params else np.mean(vals)
            else:
                nat = sub_opt[layout.subsets.index(_subset_of(name)), k]
            free[j] = np.log(nat) if p in law.log_params else nat
        cands.append(free)
    return lsq.refine(problem, np.array(cands)), []


def _residual_scale(law, obj, theta_rows, log_vars, y, n_seeds, n_free) -> dict:
    """Scatter of one run about the fitted curve, in the objective's residual space: the
    seed-weighted residual sum of squares over the residual degrees of freedom (a mean of k seeds
    scatters sqrt(k) less than one run, the Bayesian fitter's sigma/sqrt(w) model)."""
    lp = np.asarray(law.log_predict(jnp.asarray(theta_rows), jnp.asarray(log_vars)))
    r = np.log(y) - lp if obj.space == "log" else y - np.exp(lp)
    dof = len(y) - n_free
    sd = float(np.sqrt(np.sum(n_seeds * r * r) / dof)) if dof > 0 else float("nan")
    return {"space": obj.space, "sd": sd, "dof": int(dof), "per": "one run (one seed)"}


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
    if dcol.startswith("@"):
        raise DataError("the pre-power phase needs a plain D column, not @COL")
    others = [cols[r] for r in law.variables if r != d_role] + ([joint] if joint else [])
    others = [c[1:] if c.startswith("@") else c for c in others]
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


def _subset_of(name: str):
    return name[name.index("[") + 1:-1]


def fit(frame: pd.DataFrame, law: str | Law = "multiplicative", *, x: str | None = None,
        d: str | None = None, y: str = "loss", by: Sequence[str] | None = None,
        objective: str | Objective | None = None, delta: float | None = None,
        starts: str | int = "grid", bootstrap: int = 0, seed: int = 0, fitter: str = "lsq",
        solver: str = "newton", joint: str | None = None, share: Sequence[str] = (),
        fixed: Mapping[str, float] | Callable[[dict], Mapping[str, float]] | None = None,
        seeds: str = "average", where: str | Expr | None = None, level: float = 0.95,
        source: dict | None = None, progress: Callable[[str], None] | None = None,
        bayes_options: dict | None = None, pre_power: str | None = None,
        fixed_draws: Callable[[dict], Mapping[str, np.ndarray]] | None = None) -> FitResult:
    """Fit ``law`` to the runs in ``frame``, per group of ``by`` columns.

    x, d, y: columns of the law's variables and of the loss (``@COL``: per row, the column named in
    COL). joint: a column whose values are subsets fitted together with the ``share``d parameters
    in common and the others per subset (Zhang et al. 2024 share E and beta across the model-size
    and pretraining-size runs). fixed: parameters frozen at given values (a mapping, or a function
    of the group key returning one). seeds: "average" runs that differ only in seed (default) or
    "keep" them as separate runs (the bootstrap then resamples configurations). bootstrap: number
    of resamples (least squares). fitter: "lsq" or "bayes". pre_power: "validate" (lawfit's) or
    "ats" (Lin et al. 2024) finds each curve's pre-power phase (lawfit.prepower) and fits the law
    on the power phase only (base-model rows D = 0 are dropped with it); what was excluded is in
    each group's ``info["pre_power"]`` and warnings. Intervals are conditional on that choice.
    fixed_draws: per group key, arrays (B,) of values of the ``fixed`` parameters, one per
    bootstrap resample (a two-stage recipe's first-stage draws): the bootstrap then takes B
    resamples and refits resample b with the frozen values of draw b, so that their uncertainty
    propagates (least squares only).
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
        raise DataError(f"--bootstrap must be >= 0, got {bootstrap}")
    if seeds not in ("average", "keep"):
        raise DataError(f"seeds must be 'average' or 'keep', got {seeds!r}")
    if fixed_draws is not None and fitter != "lsq":
        raise DataError("fixed_draws (paired frozen values per resample) needs the lsq fitter")
    if share and not joint:
        raise DataError("sharing parameters needs a joint fit: name the subset column with --joint")
    if solver == "varpro" and (obj.name != "mse" or (fixed and not callable(fixed))):
        raise DataError("--solver varpro needs --objective mse and no frozen parameters (the "
                        "linear parameters are solved exactly in squared error)")
    if fitter == "bayes" and obj.kind == "l1":
        raise DataError(f"--objective {obj.name} is a least-squares estimator: the Bayesian fitter's "
                        "likelihood is --likelihood student or normal (use huber or huber-log)")
    if bootstrap and fitter == "lsq" and robust.needs_irls(obj):
        raise DataError(f"bootstrap intervals are not offered for --objective {obj.name}"
                        + (f" --delta {obj.delta:g}" if obj.delta else "") + " (an IRLS fit per "
                        "resample does not yet converge reliably): use --bootstrap 0 for the point "
                        "estimate, or huber-log / --fitter bayes for intervals")
    src = source or {"path": None, "sha256": frame_sha256(frame), "rows": len(frame)}
    frame, where_record = filter_with_record(frame, where)
    if len(frame) == 0:
        raise DataError("the runs table has no rows")
    cols = _resolve_columns(frame, law, x, d, y, joint)
    by = list(default_by(frame) if by is None else by)
    require_columns(frame, by)
    # validate every column before any fitting
    zero_roles = set(law.zero_ok) | ({_d_role(law)} if pre_power else set())
    for role in law.variables:
        variable_values(frame, cols[role], role in zero_roles)
    numeric_column(frame, y, positive=True)
    var_cols = [c for c in (cols[r] for r in law.variables)]
    flat = [c[1:] if c.startswith("@") else c for c in var_cols]
    if seeds == "average":
        referenced = [n for c in var_cols if c.startswith("@") for n in frame[c[1:]].astype(str)]
        work = average_seeds(frame, y, [*flat, *by, *([joint] if joint else []),
                                        *dict.fromkeys(referenced)])
    else:
        work = frame.reset_index(drop=True).copy()
        work["n_seeds"] = 1
    dup = duplicate_rows(frame, [*flat, *by, *([joint] if joint else [])])
    row_keys = (frame[by].map(str).agg("\x1f".join, axis=1).to_numpy() if by
                else np.full(len(frame), ""))
    rng = np.random.default_rng(seed)
    groups = []
    for gkey, gdf in (work.groupby(by, sort=True, dropna=False) if by else [((), work)]):
        key = dict(zip(by, gkey if isinstance(gkey, tuple) else (gkey,)))
        key = {k: (v.item() if hasattr(v, "item") else v) for k, v in key.items()}
        phase = None
        if pre_power:
            gdf, *phase = _power_phase_runs(gdf, law, cols, pre_power, joint)
        frozen = fixed(key) if callable(fixed) else (fixed or {})
        subsets = tuple(sorted(gdf[joint].astype(str).unique())) if joint else (None,)
        layout = _layout(law, subsets, share, frozen)          # checks the names too
        n_free = len(layout.free_names)
        if len(gdf) < n_free:
            raise DataError(f"group {key} has {len(gdf)} runs but the fit has {n_free} free "
                            "parameters: add runs, fix parameters, or group more coarsely (--by)")
        n_dup = int(dup[row_keys == "\x1f".join(str(key[c]) for c in by)].sum()) if by \
            else int(dup.sum())
        notes = _data_warnings(gdf, key, layout, law, cols, joint, share, n_dup,
                               averaged=seeds == "average" and "seed" in frame.columns)
        groups.append((key, gdf.reset_index(drop=True), frozen, layout, phase, notes))
    out = []
    for gi, (key, gdf, frozen, layout, phase, notes) in enumerate(groups):
        if progress:
            progress(f"group {gi + 1}/{len(groups)} {key}: fitting {len(gdf)} runs")
        fdraws = None
        if fixed_draws is not None:
            given = fixed_draws(key)
            if sorted(given) != sorted(frozen):
                raise DataError(f"group {key}: fixed_draws give {sorted(given)} but the frozen "
                                f"parameters are {sorted(frozen)}")
            nat = np.ones((len(next(iter(given.values()))), law.n_params))
            for p, v in given.items():
                nat[:, law.params.index(p)] = v
            fdraws = law.to_internal(nat)[:, [law.params.index(p) for p in law.params
                                               if p in frozen]]
        fits = _fit_group(gdf, key, layout, law, obj, cols, joint, share, frozen, starts,
                          bootstrap, seeds, fitter, solver, rng, progress, bayes_options or {},
                          fdraws)
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
                "level": level, "pre_power": pre_power} | where_record
    return FitResult(law=law, objective=obj, fitter=fitter, columns=cols,
                     by=tuple(by) + ((joint,) if joint else ()), groups=tuple(out),
                     settings=settings, source=src, level=level)


_EXPONENT = {"x": "alpha", "d": "beta"}


def _data_warnings(gdf, key, layout, law, cols, joint, share, n_dup, averaged) -> dict:
    """What a user must know about a group's runs before trusting its fit: {subset or None:
    (warnings, exponents not identified)}."""
    notes, bad = [], False
    blank = [c for c, v in key.items() if v is None or (isinstance(v, float) and np.isnan(v))]
    for c in blank:
        notes.append(f"{len(gdf)} runs have a blank {c!r} and were fitted as their own group "
                     f"{c}=nan: fill the cells or exclude them with --where '{c} == {c}'")
    if n_dup:
        notes.append(f"{n_dup} {'row repeats' if n_dup == 1 else 'rows repeat'} another row's "
                     "configuration and seed (duplicated rows?): "
                     + ("averaged as if they were seeds" if averaged else
                        "fitted as independent runs"))
    n_free = len(layout.free_names)
    if len(gdf) == n_free:
        notes.append(f"{len(gdf)} runs for {n_free} free parameters: the law passes through every "
                     "run, nothing is left to estimate the error, and intervals mean nothing; add "
                     "runs or fix parameters (--fix)")
    values = np.stack([variable_values(gdf, cols[r], r in law.zero_ok) for r in law.variables], axis=-1)
    for j, role in enumerate(law.variables):
        exp = _EXPONENT.get(role, "its exponent")
        if np.unique(values[:, j]).size == 1 and exp in law.params:
            bad = True
            notes.append(f"{cols[role]} takes the single value {values[0, j]:g} in this group: "
                         f"the exponent {exp} is not identified (it trades off with the scale); "
                         f"add runs at other {cols[role]} values or fix {exp} with --fix")
    trend = loss_trend(values, gdf[cols["y"]].to_numpy(np.float64))
    if trend:
        bad = True
        notes.append(("the loss is the same for every run" if trend == "constant" else
                      f"the loss does not fall as {' or '.join(cols[r] for r in law.variables)} "
                      "grows") + ": a scaling law's exponents are not identified by these runs "
                     "(widening the start grid will not help); check the runs and the --y column")
    out = {None: (notes, bad)}
    if joint:
        labels = gdf[joint].astype(str).to_numpy()
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


def _fit_group(gdf, key, layout, law, obj, cols, joint, share, fixed, starts, n_boot, seeds,
               fitter, solver, rng, progress, bayes_options, fixed_draws=None):
    subsets = layout.subsets
    variables = np.stack([variable_values(gdf, cols[r], r in law.zero_ok) for r in law.variables],
                         axis=-1)
    yv = gdf[cols["y"]].to_numpy(np.float64)
    with np.errstate(divide="ignore"):
        log_vars = np.log(variables)            # log 0 = -inf: the law sees exactly 0
    labels = gdf[joint].astype(str).to_numpy() if joint else np.full(len(gdf), None)
    sub_index = np.array([subsets.index(s) for s in labels])
    problem = lsq.Problem(law, obj, log_vars, yv, layout.subset_slots[sub_index],
                          len(layout.free_names), layout.fixed)
    sub_problems = []
    if joint:
        for s in range(len(subsets)):
            m = sub_index == s
            if m.sum() < law.n_params:
                raise DataError(f"subset {joint}={subsets[s]} of group {key} has {m.sum()} runs, "
                                f"fewer than the {law.n_params} parameters of its own fit")
            sub_problems.append(lsq.Problem.simple(law, obj, log_vars[m], yv[m]))

    fixed_per_draw = None          # (B, n_fixed) frozen internal values paired with the draws
    if fitter == "bayes":
        from . import bayes  # numpyro is imported only when asked for
        weights = gdf["n_seeds"].to_numpy(float) if seeds == "average" else None
        post = bayes.fit_problem(problem, layout, rng=rng, progress=progress,
                                 **({"weights": weights} | bayes_options))
        free_hat, draws_free, status = post.estimate, post.draws, post.status
        objective_value = lsq.objective_value(problem, free_hat)
        warnings, info, method = list(post.warnings), dict(post.info), "posterior"
        posterior = post.data
    else:
        irls = robust.needs_irls(obj)
        if irls:   # l1 / tiny-delta Huber: start at the Huber(1e-3) optimum, then IRLS
            start_obj = make_objective("huber-log" if obj.space == "log" else "huber", 1e-3)
            ms0, warnings = _solve_lsq(dataclasses.replace(problem, objective=start_obj), law,
                                       layout, [dataclasses.replace(sp, objective=start_obj)
                                                for sp in sub_problems], starts, solver, rng)
            ms, irls_info = robust.solve(problem, ms0.theta)
        else:
            ms, warnings = _solve_lsq(problem, law, layout, sub_problems, starts, solver, rng)
        # a joint fit starts from its subsets' own optima, not from the grid
        status, w2 = _status(ms, law, layout, problem, check_grid=not joint)
        warnings = warnings + w2
        free_hat, objective_value = ms.theta, ms.value
        info = {"n_starts": ms.n_starts, "n_at_optimum": ms.n_at_optimum, "steps": ms.steps}
        if irls:
            info["irls"] = irls_info
        draws_free, method, posterior = np.zeros((0, len(free_hat))), None, None
        if fixed_draws is not None:
            n_boot = len(fixed_draws)
        if n_boot:
            clusters = (np.arange(len(gdf)) if seeds == "average" else
                        gdf.groupby([c for c in gdf.columns if c in CONFIG_COLUMNS or c == joint],
                                    dropna=False, sort=False).ngroup().to_numpy())
            weights = lsq.bootstrap_weights(n_boot, clusters, rng)
            cb = (lambda done, total: progress(f"  bootstrap {done}/{total}")) if progress else None
            if fixed_draws is None:
                draws_free, ok = lsq.bootstrap(problem, ms.candidates, weights, progress=cb)
            else:
                draws_free, ok = lsq.bootstrap_frozen(problem, ms.candidates, weights,
                                                      fixed_draws, progress=cb)
                fixed_per_draw = fixed_draws[ok]
            health = bootstrap_health(n_boot, int((~ok).sum()))
            info["bootstrap"] = health
            info["bootstrap_failed"] = health["failed"]
            if health["failed"]:
                warnings.append(health["message"])
            draws_free = draws_free[ok] if health["interval"] == "ok" else draws_free[:0]
            if fixed_per_draw is not None and health["interval"] != "ok":
                fixed_per_draw = fixed_per_draw[:0]
            method = "bootstrap"
    # scale parameters stop at this floor (lsq.Problem.lower_bounds): effectively 0 there
    info["scale_floor"] = float(np.exp(problem.lower_bounds()[np.isfinite(
        problem.lower_bounds())].min())) if np.isfinite(problem.lower_bounds()).any() else None
    info["joint"] = ({"column": joint, "shared": list(share), "fixed": dict(fixed),
                      "free": list(layout.free_names)} if joint else None)
    if fixed:
        info["frozen"] = {p: float(v) for p, v in fixed.items()}
    est_int = layout.internal(free_hat)                      # (n_subsets, P)
    info["residual"] = _residual_scale(law, obj, est_int[sub_index], log_vars, yv,
                                       gdf["n_seeds"].to_numpy(float) if seeds == "average"
                                       else np.ones(len(gdf)), len(layout.free_names))
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
        fq = _fit_quality(gdf[m], variables[m], yv[m], law, obj, est_int[s], cols,
                          len(layout.free_names) / len(subsets), seeds, joint)
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
                            info=info | {"n_seeds": int(gdf.loc[m, "n_seeds"].sum()),
                                         "fit_quality": fq},
                            posterior=posterior))
    return out


def _fit_quality(gdf, variables, y, law, obj, theta, cols, n_params, seeds, joint) -> dict:
    """The fit_quality block (lawfit.quality) of one subset's rows at internal parameters theta."""
    with np.errstate(divide="ignore"):          # a base-model row: log 0 = -inf, the law sees 0
        log_pred = np.asarray(law.log_predict(np.asarray(theta), np.log(variables)))
    log_space = obj.space == "log"
    r = log_pred - np.log(y) if log_space else np.exp(log_pred) - y
    names = [str(gdf[c[1:]].iloc[0]) if c.startswith("@") else c
             for c in (cols[role] for role in law.variables)]
    id_cols = [c for c in ("run_id", "model", "family") if c in gdf.columns]
    runs = [({c: gdf[c].iloc[i] for c in id_cols}
             | {nm: float(v) for nm, v in zip(names, variables[i])}) for i in range(len(y))]
    runs = [{k: (v.item() if hasattr(v, "item") else v) for k, v in d.items()} for d in runs]
    n_seeds = seed_ss = None
    if seeds == "average" and "seed_ss" in gdf.columns:
        n_seeds = gdf["n_seeds"].to_numpy(float)
        seed_ss = gdf["seed_ss"].to_numpy(float)
        if log_space:                       # delta method: var(log y) ~ var(y) / y^2
            seed_ss = seed_ss / y ** 2
    elif seeds == "keep":
        config = gdf.groupby([c for c in gdf.columns if c in CONFIG_COLUMNS or c == joint],
                             dropna=False, sort=False).ngroup().to_numpy()
        return quality.assess(r, variables, names, n_params=n_params, space=obj.space,
                              config=config, runs=runs)
    return quality.assess(r, variables, names, n_params=n_params, space=obj.space,
                          n_seeds=n_seeds, seed_ss=seed_ss, runs=runs)
