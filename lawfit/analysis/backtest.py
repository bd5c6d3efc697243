"""Extrapolation backtests: the held-out protocol of Zhang et al. 2024 (Section 3 and Table 2).

Hold out the largest X, the largest D, or named values; a run is held out when its X *or* its D is a
held-out value (so holding out the largest model and the largest D_f removes a cross of runs, and
what remains is strictly inside both). Fit each law on the rest, then per group:

- Delta_e: mean |prediction - loss| over the fitted runs,
- Delta_h: mean |prediction - loss| over the held-out runs (the paper's extrapolation error),
- coverage: the share of held-out runs whose loss lies inside the level interval of the fitted
  curve (quantiles of the draws' predictions; it describes the uncertainty of the *mean* curve, so
  it under-covers noisy observations by design),
- predictive coverage: the same with the residual scatter added: each draw's prediction plus
  Gaussian noise with the standard deviation of the group's fitted residuals (sum of squares over
  n - P degrees of freedom). This is the interval that should cover held-out runs at its level.

Losses are compared on configuration means (runs differing only in seed are averaged, as the fit
does). Several laws run on the same split, side by side (multiplicative vs additive = the paper's
Table 2). Pure: no printing, no files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from lawfit.errors import DataError
from lawfit.expr import Expr, filter_frame
from lawfit.fit import fit, variable_values
from lawfit.progress import counted
from lawfit.result import FitResult
from lawfit.table import average_seeds, default_by, require_columns
from lawfit.userlaw import resolve as resolve_law

__all__ = ["HOLDOUTS", "Backtest", "parse_holdout", "holdout_mask", "backtest"]

HOLDOUTS = ("largest", "largest-x", "largest-d")


def parse_holdout(text: str | Mapping) -> str | dict:
    """The hold-out rule from its text.

    Parameters
    ----------
    text : str or mapping
        ``largest`` | ``largest-x`` | ``largest-d`` | ``COL=V[:V...],COL=V``, or a mapping
        column -> value(s).

    Returns
    -------
    str or dict
        One of :data:`HOLDOUTS`, or column -> list of held-out values.
    """
    if isinstance(text, Mapping):
        return {k: [float(v) for v in (vals if isinstance(vals, (list, tuple)) else [vals])]
                for k, vals in text.items()}
    text = (text or "").strip()
    if text in HOLDOUTS:
        return text
    out: dict = {}
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        if "=" not in item:
            raise DataError(f"--holdout must be one of {', '.join(HOLDOUTS)} or COL=VALUE[:VALUE]"
                            f",...; got {item!r}")
        col, vals = item.split("=", 1)
        try:
            out.setdefault(col.strip(), []).extend(float(v) for v in vals.split(":"))
        except ValueError:
            raise DataError(f"--holdout {item!r}: held-out values must be numbers") from None
    if not out:
        raise DataError(f"--holdout must be one of {', '.join(HOLDOUTS)} or COL=VALUE,...")
    return out


def holdout_mask(frame: pd.DataFrame, spec, *, x: str, d: str, by: Sequence[str]) -> np.ndarray:
    """The held-out runs. ``largest``: per group of ``by``, the runs at the group's largest X or
    largest D; ``largest-x`` / ``largest-d`` one of them; a dict: runs whose column equals any
    listed value (relative tolerance 1e-9).

    Parameters
    ----------
    frame : pandas.DataFrame
        The runs (configuration means).
    spec : str or mapping
        The hold-out rule (:func:`parse_holdout`).
    x, d : str
        The X and D column specs (``@COL`` allowed).
    by : sequence of str
        The group columns.

    Returns
    -------
    numpy.ndarray
        (N,) bool, True for held-out runs.
    """
    spec = parse_holdout(spec)
    xv, dv = variable_values(frame, x), variable_values(frame, d)
    mask = np.zeros(len(frame), bool)
    if isinstance(spec, dict):
        for col, vals in spec.items():
            src = col
            if col in ("x", "X"):
                colv = xv
            elif col in ("d", "D"):
                colv = dv
            else:
                require_columns(frame, [src], what="--holdout column")
                colv = pd.to_numeric(frame[src], errors="coerce").to_numpy(np.float64)
            hit = np.zeros(len(frame), bool)
            for v in vals:
                hit |= np.isclose(colv, v, rtol=1e-9, atol=0)
            if not hit.any():
                present = sorted(set(np.round(colv[np.isfinite(colv)], 12)))[:12]
                raise DataError(f"--holdout {col}={':'.join(f'{v:g}' for v in vals)} matches no "
                                f"run; {col} takes the values {', '.join(f'{v:g}' for v in present)}")
            mask |= hit
        return mask
    keys = (frame[list(by)].astype(str).agg("\x1f".join, axis=1).to_numpy() if by
            else np.zeros(len(frame), dtype=object))
    for k in pd.unique(keys):
        m = keys == k
        if spec in ("largest", "largest-x"):
            mask |= m & np.isclose(xv, xv[m].max(), rtol=1e-9, atol=0)
        if spec in ("largest", "largest-d"):
            mask |= m & np.isclose(dv, dv[m].max(), rtol=1e-9, atol=0)
    return mask


@dataclass(frozen=True)
class Backtest:
    """Per law, the fit on the kept runs and its errors and coverage on the held-out runs
    (``summary``: one row per law x group; ``runs``: one row per law x configuration)."""
    laws: tuple
    holdout: object                # the parsed spec
    summary: pd.DataFrame          # one row per law x group
    runs: pd.DataFrame             # one row per law x evaluated configuration
    fits: dict                     # law -> FitResult (fitted on the kept runs)
    columns: dict                  # x, d, y column specs
    group_columns: tuple
    level: float
    source: dict = field(default_factory=dict)   # provenance of the runs table ("data")

    def comparison(self, metric: str = "delta_h") -> pd.DataFrame:
        """Wide table: one row per group, one column per law (the paper's Table 2 layout)."""
        if self.summary.empty:
            return pd.DataFrame()
        keys = [c for c in self.group_columns if c in self.summary.columns]
        wide = self.summary.pivot_table(index=keys, columns="law", values=metric,
                                        aggfunc="first", dropna=False)
        wide = wide[[law for law in self.laws if law in wide.columns]]
        wide.columns.name = None
        return wide.reset_index()

    def to_dict(self) -> dict:
        def rec(df):
            return df.astype(object).where(pd.notna(df), None).to_dict("records")
        return {"laws": list(self.laws),
                "holdout": self.holdout if isinstance(self.holdout, str) else
                {k: list(v) for k, v in self.holdout.items()},
                "rule": "a run is held out when its X or its D is a held-out value",
                "columns": self.columns, "group_columns": list(self.group_columns),
                "level": self.level,
                "metrics": {"delta_e": "mean |prediction - loss| over fitted runs",
                            "delta_h": "mean |prediction - loss| over held-out runs",
                            "coverage": "share of held-out runs inside the level interval of the "
                                        "fitted curve (parameter uncertainty only)",
                            "coverage_predictive": "the same with the fitted residual scatter "
                                                   "added (Gaussian)"},
                "summary": rec(self.summary), "comparison": rec(self.comparison()),
                "data": dict(self.source)}


def _evaluate(result: FitResult, table: pd.DataFrame, heldout: np.ndarray, law_name: str,
              group_cols: Sequence[str], level: float, rng) -> tuple[list, list]:
    cols = result.columns
    q = (1 - level) / 2
    summary, runs = [], []
    for g in result.groups:
        m = np.ones(len(table), bool)
        for k, v in g.key.items():
            m &= table[k].astype(str).to_numpy() == str(v)
        sub = table.loc[m]
        if not len(sub):
            continue
        v = np.column_stack([variable_values(sub, cols[r]) for r in result.law.variables])
        y = sub[cols["y"]].to_numpy(np.float64)
        h = heldout[m]
        pred = g.loss(v)
        err = np.abs(pred - y)
        n_fit = int((~h).sum())
        dof = max(n_fit - result.law.n_params, 1)
        sigma = float(np.sqrt(np.sum((pred[~h] - y[~h]) ** 2) / dof)) if n_fit else float("nan")
        lo = hi = plo = phi = np.full(len(y), np.nan)
        ld = g.loss_draws(v)
        if len(ld):
            lo, hi = np.quantile(ld, [q, 1 - q], axis=0)
            noisy = ld + rng.normal(0.0, sigma, ld.shape)
            plo, phi = np.quantile(noisy, [q, 1 - q], axis=0)
        inside = (y >= lo) & (y <= hi)
        pinside = (y >= plo) & (y <= phi)
        has_draws = len(ld) > 0
        summary.append({"law": law_name, **g.key, "n_fit": n_fit, "n_heldout": int(h.sum()),
                        "delta_e": float(err[~h].mean()) if n_fit else float("nan"),
                        "delta_h": float(err[h].mean()) if h.any() else float("nan"),
                        "max_abs_h": float(err[h].max()) if h.any() else float("nan"),
                        "coverage": float(inside[h].mean()) if h.any() and has_draws
                        else float("nan"),
                        "coverage_predictive": float(pinside[h].mean()) if h.any() and has_draws
                        else float("nan"),
                        "residual_sd": sigma, "n_draws": int(len(ld)), "status": g.status,
                        # why a coverage is missing: "withheld" (failed refits) or "none"
                        "interval": g.interval_status})
        part = sub[[c for c in group_cols if c in sub.columns]].copy()
        for k, val in g.key.items():
            part[k] = val
        part.insert(0, "law", law_name)
        part["x"], part["d"], part["loss"] = v[:, 0], v[:, 1], y
        part["prediction"], part["lo"], part["hi"] = pred, lo, hi
        part["pred_lo"], part["pred_hi"] = plo, phi
        part["heldout"] = h
        runs.append(part)
    return summary, runs


def backtest(frame: pd.DataFrame, laws: Sequence[str] = ("multiplicative", "additive"), *,
             holdout="largest", x: str | None = None, d: str | None = None, y: str = "loss",
             by: Sequence[str] | None = None, where: str | Expr | None = None, bootstrap: int = 100,
             seed: int = 0, level: float = 0.95, progress=None, source: dict | None = None,
             **fit_options) -> Backtest:
    """Hold out runs, fit each law on the rest, report Delta_e, Delta_h and interval coverage per
    group and law: ``lawfit backtest``.

    Parameters
    ----------
    frame : pandas.DataFrame
        The runs table.
    laws : sequence of str
        The laws compared on the same split (each once).
    holdout : str or mapping
        The hold-out rule (:func:`parse_holdout`).
    x, d, y, by, where
        Columns, grouping (default: task and method, as for ``lawfit fit``) and row filter.
    bootstrap : int
        Bootstrap resamples of each fit (the draws of the coverage).
    seed : int
        Random seed.
    level : float
        Interval level.
    progress : callable, optional
        ``progress(message)`` for long work.
    source : dict, optional
        Provenance of the runs table (``data`` in backtest.json).
    fit_options
        Further :func:`lawfit.fit` arguments (objective, delta, starts, joint, share, fixed,
        fitter, ...).

    Returns
    -------
    Backtest
    """
    if not laws:
        raise DataError("--laws needs at least one law")
    if len(set(map(str, laws))) != len(laws):
        raise DataError(f"--laws names a law twice: {', '.join(map(str, laws))}")
    law_objs = [resolve_law(name) for name in laws]
    for law in law_objs:
        if law.variables != ("x", "d"):
            raise DataError(f"the backtest holds out X and D values; law {law.name!r} has "
                            f"variables {law.variables}")
    spec = parse_holdout(holdout)
    frame = filter_frame(frame, where).reset_index(drop=True)
    x = x or law_objs[0].default_columns["x"]
    d = d or law_objs[0].default_columns["d"]
    by = list(default_by(frame) if by is None else by)
    require_columns(frame, [*by, y])
    joint = fit_options.get("joint")
    group_cols = [*by, *([joint] if joint else [])]
    flat = [c[1:] if c.startswith("@") else c for c in (x, d)]
    referenced = ([n for c in (x, d) if c.startswith("@") for n in frame[c[1:]].astype(str)])
    table = average_seeds(frame, y, [*flat, *group_cols, *dict.fromkeys(referenced)])
    table = table.reset_index(drop=True)
    heldout = holdout_mask(table, spec, x=x, d=d, by=group_cols)
    if heldout.all():
        raise DataError("the hold-out rule holds out every run: nothing is left to fit")
    if not heldout.any():
        raise DataError("the hold-out rule holds out no run")
    keep = table.loc[~heldout]
    gk = lambda df: set(map(tuple, df[group_cols].astype(str).to_numpy())) if group_cols else {()}
    lost = gk(table) - gk(keep)
    if lost:
        raise DataError(f"every run of group(s) {sorted(lost)[:3]} is held out: nothing to fit "
                        "there; choose another --holdout or exclude the group with --where")
    rng = np.random.default_rng(seed + 7919)
    fits, summary, runs = {}, [], []
    with counted(progress, "backtest refits", len(law_objs), unit="law") as advance:
        for law in law_objs:
            if progress:
                progress(f"law {law.name}: fitting {len(keep)} of {len(table)} configurations "
                         f"({int(heldout.sum())} held out)")
            res = fit(keep, law, x=x, d=d, y=y, by=by, bootstrap=bootstrap, seed=seed, level=level,
                      progress=progress, **fit_options)
            fits[law.name] = res
            s, r = _evaluate(res, table, heldout, law.name, group_cols, level, rng)
            summary += s
            runs += r
            advance()
    return Backtest(laws=tuple(law.name for law in law_objs), holdout=spec,
                    summary=pd.DataFrame(summary),
                    runs=pd.concat(runs, ignore_index=True) if runs else pd.DataFrame(),
                    fits=fits, columns={"x": x, "d": d, "y": y}, group_columns=tuple(group_cols),
                    level=level, source=dict(source or {}))
