"""Which runs to launch next: candidate runs ranked by how much each is expected to narrow an
interval, per unit cost, and a batch chosen greedily.

The interval (the *target*) is one of
- the interval of a critical data size: the crossing in D of two methods' fitted losses at X
  (:class:`CrossingTarget`), in decades (log10 D);
- the interval of the fitted curve's loss at a point (:class:`PredictionTarget`), in nats;
- the interval of a law parameter of one group (:class:`ParameterTarget`).

How the expected width after adding runs is computed: a Bayesian (pseudo-Bayesian) c-optimal
design averaged over the fit's draws.

1. For each draw j of the current fit (bootstrap replicate or posterior sample; draws of the two
   methods paired by index, as in critical.py) the information of the runs already measured is
   ``Lambda_j = sum_r g_r g_r^T / s^2``: ``g_r`` the gradient of run r's prediction (loss, or log
   loss for the ``-log`` objectives) with respect to the internal parameters at draw j, one term
   per run (each seed a run), and ``s`` the fitted residual scatter of that method's runs.
2. The target's gradient ``h_j`` at draw j (for a crossing, by the implicit function theorem at
   draw j's own crossing: dt/dtheta = -(dL_a/dtheta_a, -dL_b/dtheta_b) / (d(L_a - L_b)/dt)) gives
   the linearised variance ``v_j = h_j^T Lambda_j^-1 h_j``.
3. A candidate run c adds ``g_c g_c^T / s^2``; by Sherman-Morrison its variance becomes
   ``v_j - (h_j^T Lambda_j^-1 g_c)^2 / (s^2 + g_c^T Lambda_j^-1 g_c)``. The variance after the
   runs does not depend on their outcomes in this linear-Gaussian model, so nothing needs to be
   simulated, and averaging over the draws is the expectation over what the parameters may be.
4. The expected width after adding runs is the current interval's width (from the draws, as
   ``lawfit critical`` / ``predict`` compute it) times ``sqrt(mean_j v_j(after) / v_j(now))``.
   Draws in which the target does not exist (no crossing in the searched range) do not enter the
   average.

Greedy batch: each pick maximises (width now - width after) / cost given the runs already picked
(their information is already in ``Lambda_j``), so the second pick accounts for the first: runs
that inform the same direction are not both chosen unless that still pays. Because the
information of a batch is the sum of its runs' information, conditioning on earlier picks needs no
simulated outcomes, and greedy selection is the standard sequential heuristic for such variance
criteria (the batch optimum is a combinatorial search).

Pure: no printing, no files (the command line is in lawfit/cli/suggest.py); long work reports through an
optional ``progress(message)`` callback.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from lawfit import __version__
from lawfit.errors import DataError
from lawfit.expr import filter_frame
from lawfit.fit import fit as fit_runs
from lawfit.numerics import float64
from lawfit.result import FitResult, GroupFit
from lawfit.table import column_values, frame_sha256, rows_matching, select_recorded

__all__ = ["COST_DEFAULT", "MIN_DRAWS", "CrossingTarget", "PredictionTarget", "ParameterTarget",
           "Suggestion", "candidate_grid", "evaluate_cost", "check_request", "suggest"]

COST_DEFAULT = "model_params * finetune_examples"
GRID_POINTS_PER_E = 4          # grid of log D on which per-draw crossings are bracketed
REFINE_STEPS = 4               # regula falsi steps in each bracket
BEYOND = 50.0                  # farthest a crossing that left the range is placed beyond it (ln D)
MIN_DRAWS = 20


# --- targets -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CrossingTarget:
    """The interval (in decades of D) of the crossing between methods ``between`` at X = ``x``.

    ``group``: the other group columns (e.g. ``{"task": "wmt14_en_de"}``) when the fit has several.
    ``crossing``: which crossing of the point estimate, counted from the smallest D (0 = first).
    ``x_column``: the column ``x`` is a value of, when named (it must be the fit's X column).
    """
    between: tuple
    x: float
    group: Mapping = field(default_factory=dict)
    crossing: int = 0
    d_range: tuple = (1.0, 1e12)
    method_column: str = "method"
    x_column: str | None = None

    def describe(self) -> str:
        return f"crossing of {self.between[0]} and {self.between[1]} at X={self.x:g}"


@dataclass(frozen=True)
class PredictionTarget:
    """The interval (in nats) of the fitted curve at ``point`` (law variable columns and, when
    the fit has several groups, group columns): ``predict``'s ``interval="curve"``. The interval
    of a new run adds the residual scatter, which no number of runs narrows."""
    point: Mapping

    def describe(self) -> str:
        return "prediction at " + ", ".join(f"{k}={v}" for k, v in self.point.items())


@dataclass(frozen=True)
class ParameterTarget:
    """The interval of law parameter ``param`` of the group named by ``group``."""
    param: str
    group: Mapping = field(default_factory=dict)

    def describe(self) -> str:
        return f"parameter {self.param}" + "".join(f", {k}={v}" for k, v in self.group.items())


# --- result ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Suggestion:
    """A batch of runs, in the order picked, and the expected widths.

    ``runs``: one row per pick: the candidate's columns, ``cost``, ``gain`` (expected narrowing
    given the earlier picks), ``width_after`` (expected width after adding this pick and every
    earlier one), ``width_alone`` (after adding this run alone).
    ``candidates``: every candidate with ``cost`` and ``width_alone``.
    """
    target: dict
    unit: str                      # unit of the widths: "log10 D", "nats", or the parameter's
    width_now: float               # the interval's width from the current draws
    interval_now: tuple            # (lo, hi) of the target now
    estimate: float                # the target at the point estimate
    runs: pd.DataFrame
    candidates: pd.DataFrame
    cost_expr: str
    budget: float | None
    n: int | None
    level: float
    settings: dict
    source: dict
    noise: dict                    # calibrated per-run noise sd per group
    notes: tuple = ()

    @property
    def width_after(self) -> float:
        return float(self.runs["width_after"].iloc[-1]) if len(self.runs) else self.width_now

    @property
    def total_cost(self) -> float:
        return float(self.runs["cost"].sum()) if len(self.runs) else 0.0

    def to_dict(self) -> dict:
        """The suggest.json document."""
        def rec(df):
            return [{k: _plain(v) for k, v in r.items()} for r in df.to_dict("records")]
        return _clean({"lawfit_version": __version__, "target": self.target, "unit": self.unit,
                "level": self.level, "estimate": _plain(self.estimate),
                "interval_now": [_plain(v) for v in self.interval_now],
                "width_now": _plain(self.width_now), "width_after": _plain(self.width_after),
                "cost": {"expression": self.cost_expr, "total": _plain(self.total_cost),
                         "budget": _plain(self.budget)},
                "n": self.n, "runs": rec(self.runs), "candidates": rec(self.candidates),
                "noise_sd": {k: _plain(v) for k, v in self.noise.items()},
                "method": "pseudo-Bayesian c-optimal design: at every draw, the linearised "
                          "variance of the target under the Fisher information of the fitted "
                          "runs plus the candidates' (noise: the fitted residual scatter); "
                          "expected width = width now x sqrt(mean variance ratio); greedy by "
                          "narrowing per unit cost",
                "notes": list(self.notes), "settings": self.settings, "data": self.source})


def _clean(obj):
    """Plain JSON values: numpy scalars to Python, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return _plain(obj)


def _plain(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if v is None or isinstance(v, (str, int, dict, list, tuple)):
        return v
    try:
        return None if pd.isna(v) else v
    except (TypeError, ValueError):
        return v


# --- gradients, information ---------------------------------------------------------------------

def _loss_and_grad(law, theta: np.ndarray, log_vars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Loss (J, N) and its gradient (J, N, P) with respect to the internal parameters, for
    parameter rows theta (J, P) at log variables (J, N, V) (or (N, V), shared). Every law is a
    log-sum-exp of terms linear in the internal parameters (laws.py): d log L = softmax(z) . T."""
    lv = np.asarray(log_vars, np.float64)
    if lv.ndim == 2:
        lv = np.broadcast_to(lv, (len(theta),) + lv.shape)
    j, n, v = lv.shape
    t = law.terms(lv.reshape(j * n, v))
    t = t.reshape(j, n, -1, theta.shape[1])
    z = np.einsum("jnkp,jp->jnk", t, theta)
    zmax = z.max(axis=-1, keepdims=True)
    w = np.exp(z - zmax)
    tot = w.sum(axis=-1, keepdims=True)
    loss = np.exp(zmax + np.log(tot))[..., 0]
    dlog = np.einsum("jnk,jnkp->jnp", w / tot, t)
    return loss, dlog * loss[..., None]


def _info_inverse(grads: np.ndarray, noise_var: float) -> np.ndarray:
    """(J, P, P) inverse of sum_r g g^T / s^2 per draw, from gradients (J, N, P). Directions the
    runs do not inform at all (e.g. a scale parameter at its floor, whose gradient vanishes) get
    no variance: no run informs them, and no target depends on them."""
    lam = np.einsum("jnp,jnq->jpq", grads, grads) / noise_var
    w, u = np.linalg.eigh(lam)
    floor = np.maximum(w.max(axis=-1, keepdims=True), 1e-300) * 1e-12
    inv = np.where(w > floor, 1.0 / np.where(w > floor, w, 1.0), 0.0)
    return np.einsum("jpk,jk,jqk->jpq", u, inv, u)


# --- target values on draws -------------------------------------------------------------

def _terms(law, x: float, log_d: np.ndarray) -> jnp.ndarray:
    lv = np.column_stack([np.full(len(log_d), math.log(x)), log_d])
    return law.terms_fn(jnp.asarray(lv))


@partial(jax.jit, static_argnames=("terms_a", "terms_b"))
def _crossing_values(tha, thb, ta, tb, t, ta0, tb0, t0, direction, slope, lo, hi, xlog,
                     terms_a, terms_b):
    """Per row of (tha, thb): the crossing of the estimate's direction nearest to ``t0`` on the
    grid ``t``, refined in its bracket; rows without one lie beyond the range end (see below)."""
    def lse(theta, terms):
        return jax.scipy.special.logsumexp(jnp.einsum("gkp,mp->mgk", terms, theta), axis=-1)
    f = jnp.exp(lse(tha, ta)) - jnp.exp(lse(thb, tb))                  # (M, G)
    sg = jnp.sign(f)
    change = (sg[:, :-1] * sg[:, 1:] < 0) & (sg[:, 1:] == direction)
    has = change.any(axis=1)
    mid = 0.5 * (t[:-1] + t[1:])
    k = jnp.argmin(jnp.where(change, jnp.abs(mid - t0)[None, :], jnp.inf), axis=1)
    a = t[k]
    b = t[k + 1]
    fa = jnp.take_along_axis(f, k[:, None], 1)[:, 0]
    fb = jnp.take_along_axis(f, k[:, None] + 1, 1)[:, 0]

    def f_at(u):                         # f at one log D per row
        lv = jnp.stack([jnp.full_like(u, xlog), u], -1)
        za = jnp.einsum("mkp,mp->mk", terms_a(lv), tha)
        zb = jnp.einsum("mkp,mp->mk", terms_b(lv), thb)
        return (jnp.exp(jax.scipy.special.logsumexp(za, -1))
                - jnp.exp(jax.scipy.special.logsumexp(zb, -1)))
    for _ in range(REFINE_STEPS):        # regula falsi with bisection safeguard in the bracket
        safe = jnp.where(has, fa - fb, 1.0)
        c = a + jnp.clip(fa / safe, 0.05, 0.95) * (b - a)
        fc = f_at(c)
        left = jnp.sign(fc) == jnp.sign(fa)
        a, fa = jnp.where(left, c, a), jnp.where(left, fc, fa)
        b, fb = jnp.where(left, b, c), jnp.where(left, fb, fc)
    safe = jnp.where(has, fa - fb, 1.0)
    root = a + jnp.clip(fa / safe, 0.0, 1.0) * (b - a)
    # no crossing of this direction in the range: it left through the end on the side where the
    # draw still has the "below" sign at t0 (as in critical.py); place it beyond that end by its
    # linearised displacement at the estimate's root, |f(t0) / f'(t0)| (capped at BEYOND), so that
    # it moves continuously as the draws contract instead of piling up at the end
    g0 = (jnp.exp(lse(tha, ta0)) - jnp.exp(lse(thb, tb0)))[:, 0]        # f at t0
    up = jnp.sign(g0) != direction
    step = jnp.clip(jnp.abs(g0 / slope), 0.0, BEYOND)
    beyond = jnp.where(up, hi + step, lo - step)
    return jnp.where(has, root, beyond)


class _CrossingEval:
    """Per-draw crossing near the estimate's root (see ``_crossing_values``): a draw without a
    crossing of the same direction lies beyond the searched range on the side the crossing left,
    as in critical.py; how far beyond is its linearised displacement (capped), so the width
    stays a continuous function of the draws (and may exceed the range: then it is an
    extrapolation, flagged in the result)."""

    def __init__(self, ga: GroupFit, gb: GroupFit, x: float, crossing, d_range):
        """``crossing``: the point estimate's :class:`lawfit.analysis.critical.Crossing` (its
        root, direction and slope come from critical.py's root finder)."""
        self.la, self.lb, self.x = ga.law, gb.law, x
        root = math.log(crossing.d)
        self.t0, self.direction = root, crossing.direction
        self.lo, self.hi = math.log(d_range[0]), math.log(d_range[1])
        n = max(int((self.hi - self.lo) * GRID_POINTS_PER_E) + 1, 32)
        self.t = np.linspace(self.lo, self.hi, n)
        self.ta, self.tb = _terms(self.la, x, self.t), _terms(self.lb, x, self.t)
        self.ta0 = _terms(self.la, x, np.array([root]))
        self.tb0 = _terms(self.lb, x, np.array([root]))
        self.slope = crossing.slope                       # d(L_a - L_b)/d log D at the root
        if not self.slope * self.direction > 0:           # a tangency: no finite displacement
            self.slope = self.direction * 1e-300

    def values(self, tha: np.ndarray, thb: np.ndarray) -> np.ndarray:
        """(M,) log D of each row's crossing."""
        out = np.empty(len(tha))
        for s in range(0, len(tha), 4096):
            sl = slice(s, s + 4096)
            a, b = tha[sl], thb[sl]
            m = len(a)
            size = 1 << max(m - 1, 0).bit_length()          # pad: few compiled shapes
            if size > m:
                a = np.concatenate([a, np.repeat(a[-1:], size - m, 0)])
                b = np.concatenate([b, np.repeat(b[-1:], size - m, 0)])
            v = _crossing_values(jnp.asarray(a), jnp.asarray(b), self.ta, self.tb,
                                 jnp.asarray(self.t), self.ta0, self.tb0, self.t0,
                                 float(self.direction), self.slope, self.lo, self.hi,
                                 math.log(self.x), self.la.terms_fn, self.lb.terms_fn)
            out[sl] = np.asarray(v)[:m]
        return out


# --- candidates and cost -------------------------------------------------------------------------

def candidate_grid(values: Mapping[str, Sequence]) -> pd.DataFrame:
    """The Cartesian product of ``values`` as a table, duplicates dropped.

    Parameters
    ----------
    values : mapping
        Column -> values.

    Returns
    -------
    pandas.DataFrame
    """
    import itertools
    names = list(values)
    rows = [dict(zip(names, combo)) for combo in itertools.product(*(values[n] for n in names))]
    return pd.DataFrame(rows, columns=names).drop_duplicates(ignore_index=True)


def evaluate_cost(candidates: pd.DataFrame, cost: str | None) -> np.ndarray:
    """Cost of every candidate from an expression of the safe grammar in lawfit.expr (default
    ``model_params * finetune_examples``, a FLOPs proxy for finetuning). Must be positive.

    Parameters
    ----------
    candidates : pandas.DataFrame
        The candidate runs.
    cost : str or None
        The expression (None: the default).

    Returns
    -------
    numpy.ndarray
        (N,) positive, finite costs.
    """
    from lawfit.expr import parse
    text = COST_DEFAULT if cost is None else str(cost)
    expr = parse(text)
    missing = sorted(set(expr.columns) - set(candidates.columns))
    if missing:
        raise DataError(f"--cost {text!r} uses column(s) {missing} that the candidates do not "
                        f"have (candidate columns: {', '.join(candidates.columns)}); give them "
                        "with --candidates or choose another --cost")
    values = np.asarray(expr.evaluate(candidates))
    if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
        raise DataError(f"--cost {text!r} must be a number per run, not a condition or text")
    values = np.broadcast_to(np.asarray(values, np.float64), (len(candidates),)).copy()
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        row = candidates[bad].iloc[0].to_dict()
        raise DataError(f"--cost {text!r} must be positive and finite for every candidate; it "
                        f"is {values[bad][0]} at {row}")
    return values


# --- the suggestion ------------------------------------------------------------------------------

def _match_group(result: FitResult, key: Mapping) -> list:
    return result.matching({k: v for k, v in key.items() if k in result.by})


def _one_group(result: FitResult, key: Mapping, what: str) -> GroupFit:
    hits = _match_group(result, key)
    if len(hits) != 1:
        cols = [c for c in result.by if c not in key]
        raise DataError(f"{what} matches {len(hits)} fitted groups (groups: "
                        f"{[g.key for g in result.groups]}): name the group with "
                        + ", ".join(f"{c}=..." for c in cols))
    return hits[0]


def check_request(frame: pd.DataFrame, target, *, candidates: pd.DataFrame | Mapping | None = None,
                  law: str = "multiplicative", x: str | None = None, by=None,
                  cost: str | None = None) -> None:
    """Everything about a suggestion request that can be checked against the runs table before
    the (long) fit: raises DataError on the first problem. :func:`suggest` calls it before
    fitting.

    Parameters
    ----------
    frame : pandas.DataFrame
        The runs table.
    target : CrossingTarget, PredictionTarget or ParameterTarget
        The target.
    candidates : DataFrame or mapping of column -> values, optional
        The candidate runs, as given to :func:`suggest`.
    law, x, by, cost
        The law, its X column, the grouping columns and the cost expression, as given to
        :func:`suggest`.
    """
    from lawfit.expr import parse
    from lawfit.table import default_by
    from lawfit.userlaw import resolve
    law_obj = resolve(law)
    xcol = x or law_obj.default_columns.get("x", "model_params")
    at_col = getattr(target, "x_column", None)
    if at_col is not None and at_col != xcol:
        raise DataError(f"--at names {at_col!r} but the law's X is {xcol!r} (set --x)")
    if isinstance(target, ParameterTarget) and target.param not in law_obj.params:
        raise DataError(f"--target-param {target.param!r} is not a parameter of law "
                        f"{law_obj.name!r} ({', '.join(law_obj.params)})")
    by = list(by) if by else default_by(frame)
    if isinstance(target, CrossingTarget):
        mc = target.method_column
        if mc not in frame.columns:
            raise DataError(f"the runs table has no {mc!r} column to take --between from")
        have = set(frame[mc].astype(str))
        for m in target.between:
            if m not in have:
                raise DataError(f"--between: method {m!r} has no runs ({mc} takes {sorted(have)})")
    given = list(candidates.columns) if isinstance(candidates, pd.DataFrame) else \
        list(candidates or {})
    if candidates is not None:
        unknown = [c for c in given if c not in frame.columns]
        if unknown:
            raise DataError(f"--candidates names column(s) {unknown} that the runs table does not "
                            f"have ({', '.join(map(str, frame.columns))})")
        for c in given:
            if c in (by or []):
                have = set(frame[c].astype(str))
                vals = candidates[c].tolist() if isinstance(candidates, pd.DataFrame) else \
                    candidates[c]
                bad = [v for v in vals if str(v) not in have]
                if bad:
                    raise DataError(f"--candidates {c}: {bad} have no runs to fit ({c} takes "
                                    f"{sorted(have)})")
    if cost is not None:
        cols = set(parse(cost).columns)
        unknown = sorted(cols - set(map(str, frame.columns)) - set(given))
        if unknown:
            raise DataError(f"--cost {cost!r} uses column(s) {unknown} that neither the runs "
                            "table nor --candidates has")


@float64
def suggest(frame: pd.DataFrame, target, *, candidates: pd.DataFrame | Mapping | None = None,
            n: int | None = None, budget: float | None = None, cost: str | None = None,
            law: str = "multiplicative", bootstrap: int = 200, seed: int = 0,
            fit_result: FitResult | None = None, level: float = 0.95,
            progress: Callable[[str], None] | None = None, source: dict | None = None,
            **fit_options) -> Suggestion:
    """Rank candidate runs by the expected narrowing of ``target``'s interval per unit cost and
    pick a batch greedily.

    Parameters
    ----------
    frame : pandas.DataFrame
        The runs measured so far (a runs table).
    target : CrossingTarget, PredictionTarget or ParameterTarget
        Whose interval to narrow.
    candidates : DataFrame or mapping of column -> values, optional
        Candidate runs (a mapping is expanded to its Cartesian product). Must give the law's
        variable columns and the group columns; columns not given default to: the target's
        methods (crossing) or group, the measured values of X and D (plus the target's X).
    n, budget : int, float, optional
        Batch size, or total cost allowed (exactly one; default ``n = 8``).
    cost : str, optional
        Cost per run as an expression over candidate columns (``lawfit.expr`` grammar); default
        ``model_params * finetune_examples``.
    law, bootstrap, seed, fit_options
        How the runs are fitted when ``fit_result`` is not given (``lawfit.fit`` arguments; the
        bootstrap gives the draws).
    fit_result : FitResult, optional
        A fit of ``frame`` with draws (bootstrap or posterior) to use instead of fitting here.
    level : float
        Interval level (default 0.95).

    Returns
    -------
    Suggestion
    """
    if n is not None and budget is not None:
        raise DataError("give --n or --budget, not both")
    if n is None and budget is None:
        n = 8
    if n is not None and (int(n) != n or n < 1):
        raise DataError(f"--n must be a positive integer, got {n}")
    if budget is not None and not (budget > 0 and math.isfinite(budget)):
        raise DataError(f"--budget must be positive, got {budget}")
    if not 0 < level < 1:
        raise DataError(f"level must be between 0 and 1, got {level}")
    if not isinstance(target, (CrossingTarget, PredictionTarget, ParameterTarget)):
        raise DataError(f"unknown target {target!r}")
    src = source or {"path": None, "sha256": frame_sha256(frame), "rows": len(frame)}
    fitted_here = fit_result is None
    if fit_result is None:
        if bootstrap < MIN_DRAWS:
            raise DataError(f"--bootstrap must be at least {MIN_DRAWS} (the draws carry the "
                            f"uncertainty suggest narrows), got {bootstrap}")
        check_request(frame, target, candidates=candidates, law=law, x=fit_options.get("x"),
                      by=fit_options.get("by"), cost=cost)
        if progress:
            progress(f"fitting {law} with {bootstrap} bootstrap resamples")
        to_fit = frame
        if isinstance(target, CrossingTarget) and target.method_column in frame.columns:
            # a crossing reads two methods: fit only theirs
            keep = frame[target.method_column].astype(str).isin([str(m) for m in target.between])
            if keep.any():
                to_fit = frame[keep]
        fit_result = fit_runs(to_fit, law, bootstrap=bootstrap, seed=seed, level=level,
                              source=src, progress=progress, **fit_options)
    result = fit_result
    if result.settings.get("joint"):
        raise DataError("suggest works on plain fits (one law per group), not joint fits")
    if result.law.variables != ("x", "d"):
        raise DataError(f"suggest needs a law of X and D; {result.law.name!r} has variables "
                        f"{result.law.variables}")
    xcol, dcol = result.columns["x"], result.columns["d"]
    if xcol.startswith("@") or dcol.startswith("@"):
        raise DataError("suggest needs plain X and D columns (not @COL)")
    space = result.objective.space
    if not result.settings.get("where"):
        work = frame
    elif fitted_here:                 # the caller's own filter
        work = filter_frame(frame, fit_options.get("where"))
    else:        # a saved fit's filter is never evaluated: its recorded rows are selected again
        try:
            if not result.settings.get("where_rows"):
                raise DataError("the fit records no fitted rows")
            work = select_recorded(frame, result.settings["where_rows"])
        except DataError as exc:
            raise DataError(f"the fit kept rows with --where {result.settings['where']!r} and "
                            f"{exc}: give the runs table it was fitted on") from None

    # the target: its groups, per-draw values (the interval now) and per-draw gradients
    notes = []
    if isinstance(target, CrossingTarget):
        a, b = target.between
        mc = target.method_column
        if a == b:
            raise DataError(f"--between needs two different methods, got {a},{b}")
        if mc not in result.by:
            raise DataError(f"the fit is not grouped by {mc!r}: fit with --by including it")
        if not (target.x > 0 and math.isfinite(target.x)):
            raise DataError(f"--at: X must be positive and finite, got {target.x}")
        if target.x_column is not None and target.x_column != xcol:
            raise DataError(f"--at names {target.x_column!r} but the fit's X is {xcol!r}")
        ga = _one_group(result, {**target.group, mc: a}, f"method {a!r}")
        gb = _one_group(result, {**target.group, mc: b}, f"method {b!r}")
        from lawfit.analysis.critical import crossings
        row = crossings(ga, gb, target.x, names=(a, b), d_range=target.d_range, level=level)
        if not row.crossings:
            raise DataError(f"the fitted {a} and {b} curves do not cross at {xcol}="
                            f"{target.x:g} in D {target.d_range[0]:g}..{target.d_range[1]:g} "
                            f"({row.better_everywhere} is better throughout): there is no "
                            "crossing to narrow; choose another --at or a --target")
        if target.crossing >= len(row.crossings) or target.crossing < 0:
            raise DataError(f"--crossing {target.crossing + 1}: the estimate has "
                            f"{len(row.crossings)} crossing(s) at {xcol}={target.x:g}")
        if len(row.crossings) > 1:
            notes.append(f"the fitted curves cross {len(row.crossings)} times at "
                         f"{xcol}={target.x:g}; the target is crossing {target.crossing + 1} "
                         f"(D = {row.crossings[target.crossing].d:.4g})")
        cr = row.crossings[target.crossing]
        direction = cr.direction                         # sign of L_a - L_b above the root
        groups = [ga, gb]
        thetas = _paired_internal(groups)
        ev = _CrossingEval(ga, gb, target.x, cr, target.d_range)
        t = ev.values(thetas[0], thetas[1])                               # ln D per draw
        inside = (t >= ev.lo) & (t <= ev.hi)
        lv = np.stack([np.full(len(t), math.log(target.x)), np.where(inside, t, ev.t0)], -1)
        la, dla = _loss_and_grad(ga.law, thetas[0], lv[:, None, :])
        lb, dlb = _loss_and_grad(gb.law, thetas[1], lv[:, None, :])
        eps = 1e-5
        lv2 = lv + np.array([0.0, eps])
        slope = ((_loss_and_grad(ga.law, thetas[0], lv2[:, None, :])[0]
                  - _loss_and_grad(gb.law, thetas[1], lv2[:, None, :])[0])
                 - (la - lb))[:, 0] / eps                              # d(L_a - L_b)/d ln D
        valid = inside & (slope * direction > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(valid, -1.0 / (slope * math.log(10)), 0.0)  # dt/d(L_a-L_b), decades
        h = [dla[:, 0, :] * scale[:, None], -dlb[:, 0, :] * scale[:, None]]
        values = t / math.log(10)
        estimate, unit = math.log10(cr.d), "log10 D"
        if (~valid).any():
            notes.append(f"the crossing lies outside D {target.d_range[0]:g}..{target.d_range[1]:g}"
                         f" (or is a tangency) in {int((~valid).sum())} of {len(valid)} draws; "
                         "those draws count in the interval, beyond the range, but not in the "
                         "expected narrowing")
        tdict = {"kind": "crossing", "between": [a, b], "x_column": xcol, "x": target.x,
                 "group": {k: _plain(v) for k, v in target.group.items()},
                 "crossing": target.crossing + 1, "d_range": list(target.d_range), "unit": unit}
    elif isinstance(target, PredictionTarget):
        point = dict(target.point)
        for c in (xcol, dcol):
            if c not in point:
                raise DataError(f"--target needs {c}=VALUE (the law's variables are {xcol} and "
                                f"{dcol})")
        try:
            pv = np.array([[float(point[xcol]), float(point[dcol])]])
        except (TypeError, ValueError):
            raise DataError(f"--target: {xcol} and {dcol} must be numbers") from None
        if not (np.isfinite(pv).all() and (pv > 0).all()):
            raise DataError("--target: the point must be positive and finite")
        unknown = [k for k in point if k not in result.by and k not in (xcol, dcol)]
        if unknown:
            raise DataError(f"--target names {unknown}, which are neither the law's variables "
                            f"({xcol}, {dcol}) nor group columns ({', '.join(result.by)})")
        g = _one_group(result, {k: v for k, v in point.items() if k in result.by}, "--target")
        groups = [g]
        thetas = _paired_internal(groups)
        loss, grad = _loss_and_grad(g.law, thetas[0], np.log(pv))
        values, h = loss[:, 0], [grad[:, 0, :]]
        valid = np.ones(len(values), bool)
        estimate, unit = float(g.loss(pv)[0]), "nats"
        tdict = {"kind": "prediction", "point": {k: _plain(v) for k, v in point.items()},
                 "group": {k: _plain(v) for k, v in g.key.items()}, "unit": unit}
    else:
        g = _one_group(result, target.group, f"--target-param {target.param}")
        if target.param not in g.law.params:
            raise DataError(f"--target-param {target.param!r} is not a parameter of law "
                            f"{g.law.name!r} ({', '.join(g.law.params)})")
        k = g.law.params.index(target.param)
        groups = [g]
        thetas = _paired_internal(groups)
        is_log = target.param in g.law.log_params
        values = np.exp(thetas[0][:, k]) if is_log else thetas[0][:, k].copy()
        hk = np.zeros_like(thetas[0])
        hk[:, k] = values if is_log else 1.0
        h = [hk]
        valid = np.ones(len(values), bool)
        estimate, unit = float(g.estimate[k]), target.param
        tdict = {"kind": "parameter", "param": target.param,
                 "group": {kk: _plain(v) for kk, v in g.key.items()}, "unit": unit}
    if valid.sum() < MIN_DRAWS // 2:
        raise DataError(f"the target exists in only {int(valid.sum())} of {len(valid)} draws: "
                        "its interval cannot be narrowed by this analysis; widen --d-range or "
                        "choose another target")
    q = (1 - level) / 2
    lo_now, hi_now = (float(v) for v in np.quantile(values, [q, 1 - q]))
    width_now = hi_now - lo_now
    if isinstance(target, CrossingTarget) and (hi_now > ev.hi / math.log(10) + 1e-9
                                               or lo_now < ev.lo / math.log(10) - 1e-9):
        notes.append("the interval reaches beyond the searched D range; draws whose crossing left "
                     "the range are placed beyond it by their linearised displacement, so the "
                     "widths are extrapolations")

    # information of the runs measured so far, per group and draw
    noise, inv, owners_key = {}, [], []
    for gi, g in enumerate(groups):
        sub = work[rows_matching(work, g.key)]
        lvm = np.log(np.column_stack([column_values(sub, xcol), column_values(sub, dcol)]))
        y = sub[result.columns["y"]].to_numpy(np.float64)
        pred = g.loss(np.exp(lvm))
        r = (np.log(pred) - np.log(y)) if space == "log" else (pred - y)
        noise_var = float(np.sum(r ** 2) / max(len(r) - g.law.n_params, 1))
        if not (noise_var > 0 and math.isfinite(noise_var)):
            raise DataError(f"group {g.key}: the fitted runs have no residual scatter, so the "
                            "value of a new run cannot be judged")
        noise[_key_text(g.key)] = noise_var
        loss, grad = _loss_and_grad(g.law, thetas[gi], lvm)
        if space == "log":
            grad = grad / loss[..., None]
        inv.append(_info_inverse(grad, noise_var))
        owners_key.append(g.key)
    nv = [noise[_key_text(g.key)] for g in groups]
    var = sum(np.einsum("jp,jpq,jq->j", hh, ii, hh) for hh, ii in zip(h, inv))
    valid &= var > 0
    var_now = np.where(valid, var, 1.0)

    # candidates, their cost and their gradients at every draw
    cand = _candidates(candidates, result, work, target, groups, xcol, dcol)
    costs = evaluate_cost(cand, cost)
    cand = cand.assign(cost=costs)
    lvc = np.log(np.column_stack([column_values(cand, xcol), column_values(cand, dcol)]))
    owner = np.full(len(cand), -1)
    for gi, g in enumerate(groups):
        owner[rows_matching(cand, g.key)] = gi
    if (owner < 0).all():
        raise DataError("no candidate belongs to a group the target depends on "
                        f"({[g.key for g in groups]}): check --candidates")
    if (owner < 0).any():
        notes.append(f"{int((owner < 0).sum())} candidates belong to no group the target depends "
                     "on and cannot narrow it")
    relevant = np.nonzero(owner >= 0)[0]
    gc = np.zeros((len(values), len(cand), thetas[0].shape[1]))
    for gi, g in enumerate(groups):
        m = np.nonzero(owner == gi)[0]
        if len(m):
            loss, grad = _loss_and_grad(g.law, thetas[gi], lvc[m])
            gc[:, m, :] = grad / loss[..., None] if space == "log" else grad

    def reduction(rows):
        """(J, len(rows)) variance reduction of adding each candidate to the picks so far."""
        out = np.zeros((len(values), len(rows)))
        for gi in range(len(groups)):
            sel = owner[rows] == gi
            if not sel.any():
                continue
            g_ = gc[:, rows[sel], :]                                     # (J, c, P)
            u = np.einsum("jpq,jcq->jcp", inv[gi], g_)
            a_ = np.einsum("jp,jcp->jc", h[gi], u)
            qq = np.einsum("jcp,jcp->jc", g_, u)
            out[:, sel] = a_ ** 2 / (nv[gi] + qq)
        return out

    def width_of(var_after):
        """Expected width from per-draw variances after (J, ...)."""
        ratio = np.clip(var_after / var_now.reshape((-1,) + (1,) * (var_after.ndim - 1)), 0, 1)
        return width_now * np.sqrt(ratio[valid].mean(axis=0))

    if progress:
        progress(f"{tdict['kind']} target: interval now [{lo_now:.4g}, {hi_now:.4g}] "
                 f"{unit}; scoring {len(cand)} candidates over {int(valid.sum())} draws")
    alone = np.full(len(cand), width_now)
    alone[relevant] = width_of(var[:, None] - reduction(relevant))
    picked, rows_out = [], []
    spent, current = 0.0, width_now
    limit = n if n is not None else len(cand)
    while len(picked) < limit:
        avail = np.array([i for i in relevant if i not in picked
                          and (budget is None or spent + costs[i] <= budget * (1 + 1e-12))],
                         dtype=int)
        if len(avail) == 0:
            break
        red = reduction(avail)
        w = width_of(var[:, None] - red)
        gain = current - w
        best = int(np.argmax(gain / costs[avail]))
        if not gain[best] > 1e-9 * max(abs(current), 1e-300):
            notes.append(f"stopped after {len(picked)} picks: no remaining candidate is expected "
                         "to narrow the interval")
            break
        i = int(avail[best])
        picked.append(i)
        gi = owner[i]
        var = var - red[:, best]
        u = np.einsum("jpq,jq->jp", inv[gi], gc[:, i, :])
        qq = np.einsum("jp,jp->j", gc[:, i, :], u)
        inv[gi] = inv[gi] - np.einsum("jp,jq->jpq", u, u) / (nv[gi] + qq)[:, None, None]
        spent += costs[i]
        rows_out.append({**cand.iloc[i].to_dict(), "gain": float(gain[best]),
                         "width_after": float(w[best]), "width_alone": float(alone[i])})
        current = float(w[best])
        if progress:
            progress(f"pick {len(picked)}: " + ", ".join(
                f"{kk}={_fmt(v)}" for kk, v in cand.iloc[i].to_dict().items() if kk != "cost")
                + f" -> expected width {current:.4g} {unit}")
    if n is not None and len(picked) < n and not any(nt.startswith("stopped") for nt in notes):
        notes.append(f"only {len(picked)} candidates were available"
                     + (" within the budget" if budget is not None else ""))
    runs = pd.DataFrame(rows_out, columns=[*cand.columns, "gain", "width_after", "width_alone"])
    runs.insert(0, "order", np.arange(1, len(runs) + 1))
    table = cand.assign(width_alone=alone, picked=False)
    table.loc[picked, "picked"] = True
    settings = {"law": result.law.name, "columns": result.columns, "by": list(result.by),
                "objective": result.objective.as_dict(), "fitter": result.fitter,
                "draws": len(values), "draws_used": int(valid.sum()),
                "interval_method": groups[0].interval_method,
                "fit_settings": result.settings, "seed": result.settings.get("seed", seed),
                "level": level}
    return Suggestion(target=tdict, unit=unit, width_now=width_now, interval_now=(lo_now, hi_now),
                      estimate=estimate, runs=runs, candidates=table,
                      cost_expr=COST_DEFAULT if cost is None else str(cost), budget=budget, n=n,
                      level=level, settings=settings, source=result.source or src,
                      noise={k: math.sqrt(v) for k, v in noise.items()}, notes=tuple(notes))


def _paired_internal(groups) -> list:
    """Internal draws of each group, paired by index (the first min(B) of each)."""
    n = min(len(g.draws) for g in groups)
    if n < MIN_DRAWS:
        raise DataError(f"the fit has {n} parameter draws; suggest needs at least {MIN_DRAWS}: "
                        "fit with --bootstrap 200 (or a Bayesian fit)")
    out = [g.law.to_internal(g.draws[:n]) for g in groups]
    ok = np.all([np.isfinite(t).all(axis=1) for t in out], axis=0)
    return [t[ok] for t in out]


def _fmt(v):
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def _key_text(key: Mapping) -> str:
    return ",".join(f"{k}={v}" for k, v in key.items()) or "all"


def _candidates(candidates, result: FitResult, work: pd.DataFrame, target, groups, xcol,
                dcol) -> pd.DataFrame:
    """The candidate table: given columns, defaults for the missing law and group columns."""
    if isinstance(candidates, pd.DataFrame):
        given = {c: list(dict.fromkeys(candidates[c].tolist())) for c in candidates.columns}
        table = candidates.reset_index(drop=True).copy()
    else:
        given = {k: list(v) for k, v in (candidates or {}).items()}
        table = None
    for k, v in given.items():
        if len(v) == 0:
            raise DataError(f"--candidates {k}: no values")
    defaults: dict = {}
    for c in result.by:
        if c in given:
            continue
        vals = list(dict.fromkeys(str(g.key[c]) for g in groups))
        defaults[c] = vals
    if xcol not in given:
        xs = set()
        for g in groups:
            xs |= set(column_values(work[rows_matching(work, g.key)], xcol).tolist())
        if isinstance(target, CrossingTarget):
            xs.add(float(target.x))
        elif isinstance(target, PredictionTarget):
            xs.add(float(target.point[xcol]))
        defaults[xcol] = sorted(xs)
    if dcol not in given:
        ds = set()
        for g in groups:
            ds |= set(column_values(work[rows_matching(work, g.key)], dcol).tolist())
        defaults[dcol] = sorted(ds)
    if table is None:
        table = candidate_grid({**given, **defaults})
    elif defaults:
        extra = candidate_grid(defaults)
        table = table.merge(extra, how="cross")
    for c in (xcol, dcol):
        vals = pd.to_numeric(table[c], errors="coerce").to_numpy(np.float64)
        bad = ~(np.isfinite(vals) & (vals > 0))
        if bad.any():
            raise DataError(f"--candidates {c}: values must be positive numbers, got "
                            f"{table[c][bad].iloc[0]!r}")
        table[c] = vals
    for c in result.by:
        table[c] = table[c].astype(str)
        fitted = sorted({str(g.key[c]) for g in result.groups})
        bad = sorted(set(table[c]) - set(fitted))
        if bad:
            raise DataError(f"--candidates {c}: {bad} were not fitted ({c} takes {fitted})")
    table = table.drop_duplicates(ignore_index=True)
    if len(table) == 0:
        raise DataError("no candidates")
    return table
