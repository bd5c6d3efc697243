"""Critical data sizes: where two finetuning methods' loss curves cross in D.

For a value X of the other factor, a crossing is a D* with L_a(X, D*) = L_b(X, D*). The search is
numerical and exhaustive over a stated range: f(t) = L_a(X, e^t) - L_b(X, e^t) is evaluated on a
dense grid of t = log D (default D from 1 to 1e12, 64 points per factor of e, i.e. ~150 per decade),
every sign change is refined to a root by Brent's method, and every interior local minimum of |f|
that does not change sign is examined by a bounded minimisation of |f| so that a pair of roots
closer together than the grid spacing is not missed. No root in the range is reported as "no
crossing" (an empty list), never as an unchecked solver's answer.

Uncertainty comes from parameter draws (bootstrap replicates or posterior samples, one code path):
draw i of method a is paired with draw i of method b. When both methods come from one joint fit
(one bootstrap resample of the whole table, or one posterior) this keeps their correlation; when
they were fitted independently any pairing is a draw from the product of the two distributions,
and pairing by index is one. With unequal numbers of draws the first min(B_a, B_b) are used.

Each draw's roots are found the same way (the bracket refinement is a vectorised bisection over all
draws at once, to 1e-12 in log D). Draw roots are matched to the point estimate's roots: a root
"goes the same way" when f changes sign in the same direction (same method better below); each
estimate root takes the nearest same-direction draw root in log D, greedily in order of distance,
each draw root used once. A draw in which a crossing has no match contributes +inf or -inf: it
counts as lying above the searched range when the draw, at the estimate's root, is still on the
"below" side (the crossing moved up and out), and below the range otherwise. Interval bounds are
quantiles over all paired draws; an infinite bound (``null`` in JSON, with ``lo_beyond_range`` /
``hi_beyond_range``) says the interval reaches past the searched range. ``p_exists`` is the share of
draws in which the crossing was found; ``p_no_crossing`` the share of draws with no root at all.

``extrapolated`` flags a root outside the finetuning sizes that *either* method was measured at
(GroupFit.ranges["d"]): a crossing is only seen in data when both curves were measured there.

The paper's closed form (Zhang et al. 2024, Eq. 3) assumes a constant gap, E_a = E_b:
A_a X^-alpha_a D^-beta_a = A_b X^-alpha_b D^-beta_b gives D_c = H X^gamma with
H = (A_a/A_b)^(1/(beta_a-beta_b)), gamma = (alpha_b-alpha_a)/(beta_a-beta_b). It is reported next to
the numerical roots, labelled as such; with E_a != E_b it is not the crossing of the fitted curves.

A runs table may hold several series that must not be pooled into one fit (Zhang et al.'s model-size,
pretraining-size and PET-size runs, told apart by the ``factor`` column): ``check_series`` refuses
such a table unless the series are fitted separately. An X whose meaning depends on the method
(``pet_params``: prompt length for prompt tuning, LoRA rank for LoRA) does not compare two
different methods: such rows are skipped and listed in ``skipped`` (and refused when asked for
with ``at``).

Everything here is pure except :func:`critical_from_runs`, which fits first: results are frozen
dataclasses and ``to_dict()`` gives the critical.json document (written and read back by
lawfit/io/results.py). The root finder is lawfit/analysis/roots.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from lawfit.analysis.roots import BISECT_TOL, POINTS_PER_E, find_roots, find_roots_batch, log_grid, match_roots
from lawfit.errors import DataError
from lawfit.result import FitResult, GroupFit

__all__ = ["D_RANGE", "SERIES_COLUMN", "METHOD_DEPENDENT_X", "Crossing", "CriticalRow",
           "CriticalResult", "closed_form", "check_series", "method_dependent", "crossings",
           "superiority", "critical", "measured_x_values", "critical_from_runs"]

D_RANGE = (1.0, 1e12)
# POINTS_PER_E (grid points per unit of log D) and BISECT_TOL (draw roots, in log D): roots.py
SERIES_COLUMN = "factor"   # the column naming each run's series (the zhang2024 recipe's)
# X columns whose meaning depends on the method: prompt length (prompt tuning) vs rank (LoRA)
METHOD_DEPENDENT_X = ("pet_params",)


# --- the closed form --------------------------------------------------------------------------

def closed_form(A1: float, alpha1: float, beta1: float, A2: float, alpha2: float,
                beta2: float) -> tuple[float, float]:
    """Zhang et al. 2024 Eq. 3 under the constant-gap assumption (E_1 = E_2):
    D_c = H * X^gamma with H = (A1/A2)^(1/(beta1-beta2)), gamma = (alpha2-alpha1)/(beta1-beta2).

    Parameters
    ----------
    A1, alpha1, beta1, A2, alpha2, beta2 : float
        The two multiplicative laws' parameters.

    Returns
    -------
    (float, float)
        (H, gamma); (nan, nan) when beta1 == beta2 (parallel curves in log D).
    """
    db = beta1 - beta2
    if db == 0:
        return float("nan"), float("nan")
    log_h = (math.log(A1) - math.log(A2)) / db
    h = math.exp(log_h) if log_h < 709 else float("inf")
    return h, (alpha2 - alpha1) / db


# --- root finding (lawfit/analysis/roots.py) ----------------------------------------------------

def _grid(d_range, points_per_e=POINTS_PER_E) -> np.ndarray:
    return log_grid(d_range[0], d_range[1], points_per_e)


def _variables(x: float, log_d: np.ndarray) -> np.ndarray:
    return np.column_stack([np.full(len(log_d), float(x)), np.exp(log_d)])


def _check_law(g: GroupFit) -> None:
    if g.law.variables != ("x", "d"):
        raise DataError(f"critical data sizes need a law of X and D; law {g.law.name!r} has "
                        f"variables {g.law.variables}")


# --- what may be compared --------------------------------------------------------------------

def check_series(frame: pd.DataFrame, by, x: str | None, *, column: str = SERIES_COLUMN,
                 recipe: str | None = None) -> None:
    """Refuse (DataError) a runs table that holds several series in ``column`` when the fit would
    pool them: a fit of model-size, pretraining-size and PET-size runs together describes none of
    them, and its "crossings" answer no question.

    Parameters
    ----------
    frame : pandas.DataFrame
        The runs table, after ``--where``.
    by : sequence of str or None
        Grouping columns of the fit (None: the default).
    x : str or None
        The X column spec of the fit (``@factor`` reads each run's own X column).
    column : str
        The series column (the zhang2024 recipe's ``factor``).
    recipe : str, optional
        The recipe, if any (a recipe that fits the series separately is fine).
    """
    if column not in frame.columns or recipe == "zhang2024":
        return
    values = sorted(set(frame[column].astype(str)))
    if len(values) <= 1:
        return
    grouped = by is not None and column in by
    if grouped and x == f"@{column}":
        return
    opts = (f"--recipe zhang2024 (the paper's two-stage fit, one comparison per {column}), "
            f"--by task,{column} --x @{column} (each series alone, its own X), or keep one "
            f"series with --where \"{column} == '{values[0]}'\"")
    if grouped:
        raise DataError(f"grouping by {column!r} but X is {x or 'the default column'}: each "
                        f"series has its own X column; add --x @{column}")
    raise DataError(f"the runs table holds {len(values)} series in column {column!r} "
                    f"({', '.join(values)}) that one fit would mix: use {opts}")


def method_dependent(x_name: str) -> bool:
    """True for an X whose meaning depends on the method (e.g. ``pet_params``).

    Parameters
    ----------
    x_name : str
        An X column.

    Returns
    -------
    bool
    """
    return x_name in METHOD_DEPENDENT_X


# --- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Crossing:
    d: float                       # the root, D*, at the point estimates
    lo: float                      # interval bounds (may be 0 / inf: beyond the searched range)
    hi: float
    better_below: str
    better_above: str
    extrapolated: bool             # outside the D range of either method's runs
    p_exists: float                # share of paired draws in which this crossing was found
    slope: float                   # d(L_a - L_b)/d log D at the root (how sharply they cross)
    direction: int = 0             # sign of L_a - L_b just above the root (+1: b better above)

    def as_dict(self) -> dict:
        return {"d": self.d, "lo": _fin(self.lo) if self.lo != 0 else None, "hi": _fin(self.hi),
                "lo_beyond_range": self.lo == 0, "hi_beyond_range": self.hi == math.inf,
                "better_below": self.better_below, "better_above": self.better_above,
                "extrapolated": self.extrapolated, "p_exists": self.p_exists,
                "slope_dlogd": self.slope}


@dataclass(frozen=True)
class CriticalRow:
    key: dict                      # group key without the method column
    x: float
    x_name: str                    # the X column of this row (differs per factor in a joint fit)
    crossings: tuple               # of Crossing, ascending in D
    p_no_crossing: float | None    # share of paired draws without any root in the range
    n_draws: int
    better_everywhere: str | None  # when there is no crossing: the method better over the range
    x_extrapolated: bool           # X outside the range of either method's runs
    d_measured: dict               # method -> [min, max] finetuning size of its runs
    closed_form: dict | None       # the constant-gap closed form, where both laws are multiplicative
    draw_roots: list = field(default=None, repr=False)   # per paired draw: list of roots (D)

    def as_dict(self) -> dict:
        return {"key": dict(self.key), "x_name": self.x_name, "x": self.x,
                "crossings": [c.as_dict() for c in self.crossings],
                "p_no_crossing": self.p_no_crossing, "n_draws": self.n_draws,
                "better_everywhere": self.better_everywhere,
                "x_extrapolated": self.x_extrapolated,
                "d_measured": {k: list(v) for k, v in self.d_measured.items()},
                "closed_form": self.closed_form}


@dataclass(frozen=True)
class CriticalResult:
    between: tuple                 # (method_a, method_b)
    x_name: str
    d_name: str
    rows: tuple                    # of CriticalRow
    superiority: pd.DataFrame      # probability-of-superiority table
    level: float
    search: dict                   # the searched D range and grid
    method_column: str = "method"
    skipped: tuple = ()            # rows not compared: dicts of key, x_name, reason

    def to_dict(self) -> dict:
        """The critical.json document (read back by lawfit.io.results.read_critical)."""
        x_names = sorted({r.x_name for r in self.rows})
        sup = self.superiority.replace({np.nan: None}).to_dict("records")
        return {"between": list(self.between), "method_column": self.method_column,
                "x_name": self.x_name, "d_name": self.d_name,
                "x_names": x_names, "level": self.level, "search": self.search,
                "pairing": "draw i of method a with draw i of method b",
                "closed_form_note": "D_c = H * X^gamma of Zhang et al. 2024 Eq. 3, which assumes "
                                    "a constant gap (E_a = E_b); not the crossing of the fitted "
                                    "curves when E_a != E_b",
                "rows": [r.as_dict() for r in self.rows], "superiority": sup,
                "skipped": [dict(k) for k in self.skipped]}

    def table(self) -> pd.DataFrame:
        """One line per crossing (or per 'no crossing'), for printing."""
        out = []
        for r in self.rows:
            base = {**r.key, "x_name": r.x_name, "x": r.x, "x_extrapolated": r.x_extrapolated}
            cf = r.closed_form["d"] if r.closed_form else np.nan
            if not r.crossings:
                out.append(base | {"d": np.nan, "lo": np.nan, "hi": np.nan,
                                   "better_below": r.better_everywhere,
                                   "better_above": r.better_everywhere, "extrapolated": None,
                                   "p_no_crossing": r.p_no_crossing, "closed_form_d": cf})
            for c in r.crossings:
                out.append(base | {"d": c.d, "lo": c.lo, "hi": c.hi, "better_below": c.better_below,
                                   "better_above": c.better_above, "extrapolated": c.extrapolated,
                                   "p_no_crossing": r.p_no_crossing, "closed_form_d": cf})
        return pd.DataFrame(out)

    def printable(self) -> pd.DataFrame:
        """:meth:`table` as text for people: interval bounds past the searched range as
        "< D_MIN" / "> D_MAX" (not 0 / inf), "no crossing" rows spelled out, the
        ``extrapolated`` flags as yes/no."""
        df = self.table()
        if df.empty:
            return df
        dmin, dmax = self.search["d_min"], self.search["d_max"]

        def missing(v):
            return v is None or (isinstance(v, float) and math.isnan(v))

        def num(v):
            return "-" if missing(v) else f"{v:.4g}"

        def bound(v, side):
            if missing(v):
                return "-"
            if side == "lo" and v <= 0:
                return f"< {dmin:.4g}"
            if side == "hi" and not math.isfinite(v):
                return f"> {dmax:.4g}"
            return f"{v:.4g}"

        out = df.copy()
        out["d"] = ["no crossing" if missing(v) else num(v) for v in df["d"]]
        out["lo"] = [bound(v, "lo") for v in df["lo"]]
        out["hi"] = [bound(v, "hi") for v in df["hi"]]
        out["extrapolated"] = ["-" if missing(v) else ("yes" if v else "no")
                               for v in df["extrapolated"]]
        out["x_extrapolated"] = ["yes" if v else "no" for v in df["x_extrapolated"]]
        for c in ("x", "p_no_crossing", "closed_form_d"):
            out[c] = [num(v) for v in df[c]]
        return out


def _fin(v):
    return float(v) if v is not None and math.isfinite(v) else None


# --- the analysis ------------------------------------------------------------------------------

def _paired_draws(ga: GroupFit, gb: GroupFit) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(ga.draws), len(gb.draws))
    return ga.draws[:n], gb.draws[:n]


def _diff_fn(ga: GroupFit, gb: GroupFit, x: float, da: np.ndarray, db: np.ndarray):
    """f(rows, t) = L_a - L_b for parameter rows ``rows`` of (da, db) at log D = t, pointwise."""
    def fn(rows, t):
        v = _variables(x, np.asarray(t, np.float64))
        return np.exp(_log_loss_rows(ga.law, da[rows], v)) - np.exp(_log_loss_rows(gb.law, db[rows], v))
    return fn


@lru_cache(maxsize=None)
def _compiled(law):
    import jax
    return jax.jit(law.log_predict)


def _log_loss_rows(law, natural: np.ndarray, variables: np.ndarray) -> np.ndarray:
    """log L for parameter row i at variable row i: (M, P), (M, V) -> (M,). Compiled once per law
    and padded length (powers of two), so scalar root refinement costs microseconds, not the
    milliseconds of eager jax dispatch."""
    m = len(natural)
    size = 1 << max(m - 1, 0).bit_length()
    theta = law.to_internal(natural)
    lv = np.log(variables)
    if size > m:
        theta = np.concatenate([theta, np.repeat(theta[-1:], size - m, 0)])
        lv = np.concatenate([lv, np.repeat(lv[-1:], size - m, 0)])
    return np.asarray(_compiled(law)(theta, lv))[:m]


def _loss_grid(law, natural: np.ndarray, variables: np.ndarray) -> np.ndarray:
    """Loss for every parameter row (B, P) at every variable row (N, V) -> (B, N)."""
    b, n = len(natural), len(variables)
    th = np.repeat(law.to_internal(natural)[:, None, :], n, 1).reshape(b * n, -1)
    v = np.tile(variables, (b, 1))
    return np.exp(_log_loss_rows(law, law.to_natural(th), v)).reshape(b, n)


def _is_multiplicative(g: GroupFit) -> bool:
    return g.law.multiplicative_form


def _closed_form_entry(ga: GroupFit, gb: GroupFit, x: float) -> dict | None:
    if not (_is_multiplicative(ga) and _is_multiplicative(gb)):
        return None
    pa, pb = ga.params, gb.params
    h, gamma = closed_form(pa["A"], pa["alpha"], pa["beta"], pb["A"], pb["alpha"], pb["beta"])
    d = h * x ** gamma if math.isfinite(h) and math.isfinite(gamma) else float("nan")
    return {"label": "closed form under the constant-gap assumption (E_a = E_b), Zhang et al. "
                     "2024 Eq. 3; not the crossing of the fitted curves unless E_a = E_b",
            "H": _fin(h), "gamma": _fin(gamma), "d": _fin(d),
            "E_a": pa["E"], "E_b": pb["E"], "gap_constant": bool(pa["E"] == pb["E"])}


def crossings(ga: GroupFit, gb: GroupFit, x: float, *, names=("a", "b"),
              d_range=D_RANGE, points_per_e: int = POINTS_PER_E, level: float = 0.95,
              key: dict | None = None, x_name: str = "x") -> CriticalRow:
    """Every crossing in D of method a's and method b's fitted losses at X = ``x``, with intervals
    from the paired draws; see the module docstring for the conventions.

    Parameters
    ----------
    ga, gb : GroupFit
        The two methods' fitted groups (laws of X and D).
    x : float
        The value of X.
    names : (str, str)
        The methods' names.
    d_range : (float, float)
        The searched D range.
    points_per_e : int
        Grid points per unit of log D.
    level : float
        Interval level.
    key : dict, optional
        The group key without the method (recorded in the row).
    x_name : str
        The X column (recorded in the row).

    Returns
    -------
    CriticalRow
        Every crossing (none: ``better_everywhere`` names the method better over the range).
    """
    _check_law(ga)
    _check_law(gb)
    if not (x > 0 and math.isfinite(x)):
        raise DataError(f"X must be positive and finite, got {x}")
    t = _grid(d_range, points_per_e)
    v = _variables(x, t)
    f_est = (_loss_grid(ga.law, ga.estimate[None], v) - _loss_grid(gb.law, gb.estimate[None], v))[0]
    est_a, est_b = ga.estimate[None], gb.estimate[None]
    f_scalar = (lambda u: float(_diff_fn(ga, gb, x, est_a, est_b)(np.array([0]),
                                                                 np.array([u]))[0]))
    est = find_roots(f_scalar, t, f_est)
    lo_a, hi_a = ga.ranges["d"]
    lo_b, hi_b = gb.ranges["d"]
    # method better below/above: f = L_a - L_b > 0 means b has the lower loss
    better = {1: names[1], -1: names[0]}
    da, db = _paired_draws(ga, gb)
    n = len(da)
    p_no = None
    matched = np.zeros((len(est), 0))
    draw_roots = None
    if n:
        fn = _diff_fn(ga, gb, x, da, db)
        vals = _loss_grid(ga.law, da, v) - _loss_grid(gb.law, db, v)
        per_draw = find_roots_batch(fn, t, vals, BISECT_TOL)
        draw_roots = [[float(np.exp(r)) for r, _ in dr] for dr in per_draw]
        p_no = float(np.mean([len(dr) == 0 for dr in per_draw]))
        matched = np.empty((len(est), n))
        for i, dr in enumerate(per_draw):
            m = match_roots(est, dr)
            for j, (root, direction) in enumerate(est):
                if m[j] is not None:
                    matched[j, i] = m[j]
                else:   # the crossing left the range: which way?
                    f_here = float(fn(np.array([i]), np.array([root]))[0])
                    # direction = sign of f above the root; still "below"-signed -> moved up
                    matched[j, i] = np.inf if np.sign(f_here) != direction else -np.inf
    q = (1 - level) / 2
    out = []
    for j, (root, direction) in enumerate(est):
        d = float(np.exp(root))
        if n:
            # missing crossings sit at +-1e300: beyond either end of the searched range
            lo, hi = np.quantile(np.clip(matched[j], -1e300, 1e300), [q, 1 - q])
            lo = float(np.exp(lo)) if lo >= t[0] - 1e-9 else 0.0
            hi = float(np.exp(hi)) if hi <= t[-1] + 1e-9 else float("inf")
            p_exists = float(np.mean(np.isfinite(matched[j])))
        else:
            lo, hi, p_exists = float("nan"), float("nan"), float("nan")
        slope = (f_scalar(root + 1e-6) - f_scalar(root - 1e-6)) / 2e-6
        out.append(Crossing(d=d, lo=lo, hi=hi, better_below=better[-direction],
                            better_above=better[direction],
                            extrapolated=not (lo_a * (1 - 1e-12) <= d <= hi_a * (1 + 1e-12)
                                              and lo_b * (1 - 1e-12) <= d <= hi_b * (1 + 1e-12)),
                            p_exists=p_exists, slope=float(slope), direction=int(direction)))
    everywhere = None
    if not est:
        everywhere = better[int(np.sign(np.median(f_est)))] if np.any(f_est != 0) else None
    x_lo = max(ga.ranges["x"][0], gb.ranges["x"][0])
    x_hi = min(ga.ranges["x"][1], gb.ranges["x"][1])
    return CriticalRow(key=dict(key or {}), x=float(x), x_name=x_name, crossings=tuple(out), p_no_crossing=p_no,
                       n_draws=n, better_everywhere=everywhere,
                       x_extrapolated=not (x_lo * (1 - 1e-12) <= x <= x_hi * (1 + 1e-12)),
                       d_measured={names[0]: [lo_a, hi_a], names[1]: [lo_b, hi_b]},
                       closed_form=_closed_form_entry(ga, gb, x), draw_roots=draw_roots)


def superiority(ga: GroupFit, gb: GroupFit, x: float, d_grid, *, names=("a", "b"),
                key: dict | None = None, level: float = 0.95) -> pd.DataFrame:
    """Probability of superiority over a grid of D: the share of paired draws in which method a
    has the lower loss at (x, d), with both predicted losses and their intervals. Without draws
    the probability is undefined (NaN).

    Parameters
    ----------
    ga, gb : GroupFit
        The two methods' fitted groups.
    x : float
        The value of X.
    d_grid : array-like
        The values of D.
    names : (str, str)
        The methods' names (column ``p_A_better``, ``loss_A``, ``loss_B``).
    key : dict, optional
        Group columns to add to every row.
    level : float
        Interval level of the loss difference.

    Returns
    -------
    pandas.DataFrame
        One row per D.
    """
    d_grid = np.asarray(d_grid, np.float64)
    v = np.column_stack([np.full(len(d_grid), float(x)), d_grid])
    da, db = _paired_draws(ga, gb)
    n = len(da)
    la, lb = ga.loss(v), gb.loss(v)
    q = (1 - level) / 2
    rows = pd.DataFrame({**{k: [val] * len(d_grid) for k, val in (key or {}).items()},
                         "x": float(x), "d": d_grid, f"loss_{names[0]}": la,
                         f"loss_{names[1]}": lb})
    if n:
        fa = ga.loss_draws(v)[:n]
        fb = gb.loss_draws(v)[:n]
        diff = fa - fb
        rows[f"p_{names[0]}_better"] = np.mean(diff < 0, axis=0)
        rows["diff_lo"], rows["diff_hi"] = np.quantile(diff, [q, 1 - q], axis=0)
    else:
        rows[f"p_{names[0]}_better"] = np.nan
        rows["diff_lo"] = rows["diff_hi"] = np.nan
    rows["diff"] = la - lb
    rows["n_draws"] = n
    rows["extrapolated"] = ga.extrapolates(v) | gb.extrapolates(v)
    return rows


def _x_name(result: FitResult, g: GroupFit) -> str:
    col = result.columns["x"]
    return str(g.key.get(col[1:], col)) if col.startswith("@") else col


def critical(result: FitResult | tuple, between, *, at: dict | None = None,
             method_column: str = "method", d_range=D_RANGE, points_per_e: int = POINTS_PER_E,
             superiority_points: int = 61, x_values: dict | None = None,
             level: float | None = None) -> CriticalResult:
    """Critical data sizes between two methods for every group pair of ``result`` that differs
    only in ``method_column`` (e.g. per task, or per task x factor for the zhang2024 recipe).

    ``result``: one FitResult holding both methods, or a pair (result_a, result_b).
    ``at``: X column -> list of X values (e.g. {"model_params": [1e9, 2e9]}); groups whose X column
    is not named are skipped when ``at`` is given. Without ``at``, ``x_values`` (key tuple -> list,
    e.g. the measured X values) or five log-spaced values across the X range both methods span.
    ``superiority_points``: D grid of the probability-of-superiority table (log-spaced over the
    union of the two methods' measured D, widened by a factor of 10 on each side).

    Parameters
    ----------
    result : FitResult or (FitResult, FitResult)
        The fit(s) holding both methods' groups.
    between : (str, str)
        The two methods.
    at : dict, optional
        X column -> X values.
    method_column : str
        The group column naming the method.
    d_range : (float, float)
        The searched D range.
    points_per_e : int
        Grid points per unit of log D.
    superiority_points : int
        D values of the probability-of-superiority table.
    x_values : dict, optional
        Group key without the method -> X values (:func:`measured_x_values`).
    level : float, optional
        Interval level (default: the fit's).

    Returns
    -------
    CriticalResult
    """
    a, b = between
    if a == b:
        raise DataError(f"--between needs two different methods, got {a},{b}")
    results = result if isinstance(result, tuple) else (result,)
    groups, res_of = [], {}
    for r in results:
        for g in r.groups:
            groups.append(g)
            res_of[id(g)] = r
    first = results[0]
    level = first.level if level is None else level
    for g in groups:
        _check_law(g)
    if not any(method_column in g.key for g in groups):
        raise DataError(f"the fit has no {method_column!r} in its group keys: fit with --by "
                        f"including {method_column}")
    methods = sorted({str(g.key.get(method_column)) for g in groups})
    for m in (a, b):
        if m not in methods:
            raise DataError(f"method {m!r} is not among the fitted methods {methods}")

    def rest(g):
        return tuple(sorted((k, str(v)) for k, v in g.key.items() if k != method_column))

    ga_by = {rest(g): g for g in groups if str(g.key.get(method_column)) == a}
    gb_by = {rest(g): g for g in groups if str(g.key.get(method_column)) == b}
    common = [k for k in ga_by if k in gb_by]
    if not common:
        raise DataError(f"no group has both {a} and {b} (groups: "
                        f"{[g.key for g in groups]})")
    rows, sup, skipped = [], [], []
    x_names = set()
    for k in common:
        ga, gb = ga_by[k], gb_by[k]
        xname = _x_name(res_of[id(ga)], ga)
        if xname != _x_name(res_of[id(gb)], gb):
            continue
        if method_dependent(xname):
            if at is not None and xname in at:
                raise DataError(f"{xname} means different things for {a} and {b} (prompt "
                                "length vs LoRA rank): their losses along it do not compare; "
                                "compare along model_params or pretrain_tokens")
            skipped.append({"key": {kk: vv for kk, vv in ga.key.items() if kk != method_column},
                            "x_name": xname,
                            "reason": f"{xname} means different things for {a} and {b} "
                                      "(prompt length vs LoRA rank)"})
            continue
        if at is not None:
            if xname not in at:
                continue
            xs = list(at[xname])
        elif x_values is not None and k in x_values:
            xs = list(x_values[k])
        else:
            lo = min(ga.ranges["x"][0], gb.ranges["x"][0])
            hi = max(ga.ranges["x"][1], gb.ranges["x"][1])
            xs = list(np.geomspace(lo, hi, 5)) if hi > lo else [lo]
        x_names.add(xname)
        key = {kk: vv for kk, vv in ga.key.items() if kk != method_column}
        d_lo = min(ga.ranges["d"][0], gb.ranges["d"][0]) / 10
        d_hi = max(ga.ranges["d"][1], gb.ranges["d"][1]) * 10
        dgrid = np.geomspace(max(d_lo, d_range[0]), min(d_hi, d_range[1]), superiority_points)
        for x in xs:
            row = crossings(ga, gb, float(x), names=(a, b), d_range=d_range,
                            points_per_e=points_per_e, level=level, key=key, x_name=xname)
            rows.append(row)
            sup.append(superiority(ga, gb, float(x), dgrid, names=(a, b), key=key, level=level))
    if at is not None and not rows:
        have = sorted({_x_name(res_of[id(g)], g) for g in groups})
        raise DataError(f"--at names {sorted(at)} but the fitted X columns are {have}")
    if not rows and skipped:
        raise DataError(f"nothing to compare: {skipped[0]['reason']}; compare along model_params "
                        "or pretrain_tokens")
    x_name = x_names.pop() if len(x_names) == 1 else first.columns["x"]
    return CriticalResult(between=(a, b), x_name=x_name, d_name=first.columns["d"],
                          rows=tuple(rows),
                          superiority=pd.concat(sup, ignore_index=True) if sup else pd.DataFrame(),
                          level=level, method_column=method_column, skipped=tuple(skipped),
                          search={"d_min": d_range[0], "d_max": d_range[1],
                                  "grid_points": len(_grid(d_range, points_per_e)),
                                  "refinement": "brentq on sign changes (estimate), bisection "
                                                "to 1e-12 in log D (draws), bounded "
                                                "minimisation at near-tangencies"})


# --- from a runs table ---------------------------------------------------------------------------

def measured_x_values(result: FitResult, frame: pd.DataFrame, method_column: str = "method",
                      where=None) -> dict:
    """The X values at which runs were measured, per comparison: the ``x_values`` of
    :func:`critical` that ``lawfit critical`` uses by default (both methods' values pooled).

    Parameters
    ----------
    result : FitResult
        The fit of ``frame`` (its ``by`` includes ``method_column``).
    frame : pandas.DataFrame
        The runs table it was fitted on.
    method_column : str
        The column naming the method.
    where : str or lawfit.expr.Expr, optional
        The row filter the fit used.

    Returns
    -------
    dict
        Group key without the method (a sorted tuple of (column, text) pairs) -> ascending X values.
    """
    from lawfit.expr import filter_frame
    from lawfit.fit import variable_values
    fframe = filter_frame(frame, where) if where is not None else frame
    rest_cols = [c for c in result.by if c != method_column]
    x_values: dict = {}
    for g in result.groups:
        m = np.ones(len(fframe), bool)
        for c in rest_cols:
            m &= fframe[c].astype(str).to_numpy() == str(g.key[c])
        xs = variable_values(fframe.loc[m], _x_name(result, g))
        k = tuple(sorted((c, str(g.key[c])) for c in g.key if c != method_column))
        x_values[k] = sorted(set(x_values.get(k, [])) | set(xs.tolist()))
    return x_values


def critical_from_runs(frame: pd.DataFrame, between, *, law=None, recipe: str | None = None,
                       method_column: str = "method", at: dict | None = None, d_range=D_RANGE,
                       bootstrap: int = 200, level: float = 0.95, source: dict | None = None,
                       progress=None, **fit_options) -> tuple[CriticalResult, FitResult]:
    """Fit the two methods' runs and find their critical data sizes: ``lawfit critical RUNS``.

    Only the runs of the two methods are fitted, grouped by ``by`` (default: task where present)
    plus the method column; a table of several series (``factor``) is refused unless the fit
    keeps them apart (:func:`check_series`). Without ``at`` the crossings are sought at the
    measured X values of both methods (:func:`measured_x_values`).

    Parameters
    ----------
    frame : pandas.DataFrame
        The runs table.
    between : (str, str)
        The two methods.
    law : str or Law, optional
        The law (default multiplicative); not used with ``recipe="zhang2024"``.
    recipe : {"zhang2024"} or None
        Fit by the paper's two-stage procedure (:func:`lawfit.analysis.recipes.run_recipe`).
    method_column : str
        The column naming the method.
    at, d_range, level
        As for :func:`critical`.
    bootstrap : int
        Bootstrap resamples of the fit (the draws of the intervals).
    source, progress, fit_options
        Further :func:`lawfit.fit` arguments (x, d, y, by, where, objective, delta, starts,
        seeds, seed, ...).

    Returns
    -------
    (CriticalResult, FitResult)
        The critical data sizes and the fit they come from.
    """
    from lawfit.analysis.recipes import run_recipe
    from lawfit.expr import filter_frame
    a, b = between
    if a == b:
        raise DataError(f"--between needs two different methods, got {a},{b}")
    mc = method_column
    if not str(mc).strip():
        raise DataError("--method-column needs a column name")
    if mc not in frame.columns:
        raise DataError(f"the runs table has no {mc!r} column: name the method column with "
                        "--method-column")
    present = set(frame[mc].astype(str))
    for m in between:
        if m not in present:
            raise DataError(f"method {m!r} has no runs ({mc} takes {sorted(present)})")
    frame = frame[frame[mc].astype(str).isin(between)]
    opts = dict(fit_options)
    where = opts.get("where")
    check_series(filter_frame(frame, where), opts.get("by"), opts.get("x"), recipe=recipe)
    if opts.get("by") is None:
        opts["by"] = [c for c in ("task", mc) if c in frame.columns]
    elif mc not in opts["by"]:
        opts["by"] = [*opts["by"], mc]
    result = run_recipe(frame, recipe, law=law, bootstrap=bootstrap, level=level, source=source,
                        progress=progress, **opts)
    x_values = measured_x_values(result, frame, mc, where) if at is None else None
    res = critical(result, between, at=at, method_column=mc, d_range=d_range,
                   x_values=x_values, level=level)
    return res, result
