"""Fit results and everything derived from parameter draws.

Bootstrap replicates and posterior samples are the same thing here: a (n_draws, P) array of natural
parameters per group. Intervals, predictions and (in critical.py) crossings are computed from draws
by one code path, whichever fitter produced them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import jax.numpy as jnp
import numpy as np
import pandas as pd

from .data import DataError
from .laws import Law
from .objectives import Objective


class Status:
    CONVERGED = "converged"
    NOT_CONVERGED = "not_converged"
    GRID_EDGE = "grid_edge"          # converged, but outside the span of the start grid
    AT_BOUND = "at_bound"            # converged with a scale parameter at its floor (effectively 0)
    POOR_FIT = "poor_fit"            # converged, but the law does not describe the runs (quality.py)


@dataclass(frozen=True)
class GroupFit:
    key: dict                      # group (and subset) column values
    law: Law
    n_points: int
    status: str
    objective_value: float
    estimate: np.ndarray           # (P,) natural parameters
    draws: np.ndarray              # (B, P) natural parameters (B may be 0)
    interval_method: str | None    # "bootstrap" | "posterior" | None
    ranges: dict                   # role -> (min, max) of the fitted runs
    warnings: tuple = ()
    info: dict = field(default_factory=dict)   # starts, joint layout, diagnostics, ...
    posterior: object = field(default=None, repr=False)  # arviz data of a Bayesian fit (not JSON)

    @property
    def params(self) -> dict:
        return dict(zip(self.law.params, map(float, self.estimate)))

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray] | None:
        if len(self.draws) == 0:
            return None
        q = (1 - level) / 2
        return (np.quantile(self.draws, q, axis=0), np.quantile(self.draws, 1 - q, axis=0))

    def log_loss(self, natural: np.ndarray, variables: np.ndarray) -> np.ndarray:
        """log L for natural parameters (..., P) at variables (N, V) -> (..., N)."""
        theta = jnp.asarray(self.law.to_internal(natural))[..., None, :]
        return np.asarray(self.law.log_predict(theta, jnp.log(jnp.asarray(variables))))

    def loss(self, variables: np.ndarray) -> np.ndarray:
        """Predicted loss at the estimate, variables (N, V) in role order."""
        return np.exp(self.log_loss(self.estimate, variables))

    def loss_draws(self, variables: np.ndarray) -> np.ndarray:
        """Predicted loss for every draw, (B, N)."""
        if len(self.draws) == 0:
            return np.zeros((0, len(variables)))
        return np.exp(self.log_loss(self.draws, variables))

    def extrapolates(self, variables: np.ndarray) -> np.ndarray:
        """(N,) True where a point lies outside the fitted range of any variable."""
        out = np.zeros(len(variables), bool)
        for j, role in enumerate(self.law.variables):
            lo, hi = self.ranges[role]
            out |= (variables[:, j] < lo * (1 - 1e-12)) | (variables[:, j] > hi * (1 + 1e-12))
        return out


@dataclass(frozen=True)
class FitResult:
    law: Law
    objective: Objective
    fitter: str
    columns: dict                  # role -> column name, and "y"
    by: tuple                      # grouping columns (joint subset column included)
    groups: tuple                  # of GroupFit
    settings: dict
    source: dict
    level: float = 0.95

    # --- lookup --------------------------------------------------------------------------
    def group(self, **key) -> GroupFit:
        hits = [g for g in self.groups if all(str(g.key.get(k)) == str(v) for k, v in key.items())]
        if len(hits) != 1:
            raise DataError(f"{len(hits)} groups match {key}: groups are "
                            f"{[g.key for g in self.groups]}")
        return hits[0]

    # --- tables --------------------------------------------------------------------------
    @property
    def params(self) -> pd.DataFrame:
        """One row per group and parameter: estimate and interval bounds."""
        rows = []
        for g in self.groups:
            iv = g.interval(self.level)
            for j, name in enumerate(self.law.params):
                rows.append({**g.key, "param": name, "estimate": float(g.estimate[j]),
                             "lo": float(iv[0][j]) if iv else np.nan,
                             "hi": float(iv[1][j]) if iv else np.nan, "status": g.status})
        return pd.DataFrame(rows)

    @property
    def draws(self) -> pd.DataFrame:
        """Long table of parameter draws: group columns, ``draw``, one column per parameter."""
        frames = []
        for g in self.groups:
            df = pd.DataFrame(g.draws, columns=list(self.law.params))
            df.insert(0, "draw", np.arange(len(df)))
            for k, v in reversed(list(g.key.items())):
                df.insert(0, k, v)
            frames.append(df)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    # --- predictions ---------------------------------------------------------------------
    def predict(self, frame: pd.DataFrame | Mapping, level: float | None = None) -> pd.DataFrame:
        """Predicted loss with an interval from the draws, for every row of ``frame`` (columns:
        the law's variable columns and, when there are several groups, the group columns).
        ``extrapolated`` flags rows outside the fitted range of their group."""
        level = self.level if level is None else level
        frame = pd.DataFrame(frame).reset_index(drop=True)
        cols = [self.columns[r] for r in self.law.variables]
        for c in cols:
            if c not in frame.columns:
                raise DataError(f"prediction needs column {c!r} (give it as {c}=VALUE)")
        keys = [k for k in self.by if k in frame.columns]
        if len(self.groups) > 1 and not keys:
            raise DataError("this fit has several groups: name the group, e.g. "
                            + ", ".join(f"{k}=..." for k in self.by))
        out = frame.copy()
        for c in ("prediction", "lo", "hi"):
            out[c] = np.nan
        out["extrapolated"] = False
        out["group_found"] = False
        q = (1 - level) / 2
        for g in self.groups:
            mask = np.ones(len(frame), bool)
            for k in keys:
                mask &= frame[k].astype(str).to_numpy() == str(g.key.get(k))
            if not mask.any():
                continue
            v = frame.loc[mask, cols].to_numpy(dtype=np.float64)
            zero = np.array([r in g.law.zero_ok for r in g.law.variables])   # e.g. rectified D
            if ((v < 0) | ((v == 0) & ~zero)).any() or not np.isfinite(v).all():
                raise DataError(f"prediction points must be positive and finite: {cols}")
            out.loc[mask, "prediction"] = g.loss(v)
            ld = g.loss_draws(v)
            if len(ld):
                out.loc[mask, "lo"] = np.quantile(ld, q, axis=0)
                out.loc[mask, "hi"] = np.quantile(ld, 1 - q, axis=0)
            out.loc[mask, "extrapolated"] = g.extrapolates(v)
            out.loc[mask, "group_found"] = True
        if not out["group_found"].all():
            missing = frame.loc[~out["group_found"], keys].drop_duplicates().to_dict("records")
            raise DataError(f"no fitted group for {missing[:3]}: groups are "
                            f"{[g.key for g in self.groups]}")
        return out.drop(columns="group_found")
