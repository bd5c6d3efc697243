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

from lawfit.errors import DataError

from .laws import Law
from .objectives import Objective

# A bootstrap whose refits fail is biased towards the resamples that are easy to fit: its interval
# is computed from the converged refits only when at most this share failed, else withheld.
MAX_FAILED_SHARE = 0.05
NEW_RUN_NOISE_DRAWS = 20     # residual-noise draws per parameter draw for a new run's interval
INTERVALS = ("new-run", "curve")


def bootstrap_health(n_resamples: int, n_failed: int,
                     max_failed_share: float = MAX_FAILED_SHARE) -> dict:
    """Summary of a bootstrap's failed refits and whether its interval may be used.

    Parameters
    ----------
    n_resamples : int
        Resamples drawn.
    n_failed : int
        Refits that did not converge (dropped).
    max_failed_share : float
        Largest share of failed refits for which the interval is computed from the rest.

    Returns
    -------
    dict
        ``resamples``, ``failed``, ``failed_share``, ``max_failed_share``, ``interval``
        ("ok" or "withheld") and a one-line ``message``.
    """
    share = n_failed / n_resamples if n_resamples else 0.0
    ok = n_failed < n_resamples and share <= max_failed_share
    if ok:
        msg = (f"{n_failed} of {n_resamples} bootstrap refits ({share:.1%}) did not converge and "
               f"were dropped: the interval comes from the other {n_resamples - n_failed}")
    else:
        msg = (f"interval withheld: {n_failed} of {n_resamples} bootstrap refits ({share:.1%}) "
               f"did not converge, more than the {max_failed_share:.0%} an interval from the rest "
               "may lose without bias")
    return {"resamples": int(n_resamples), "failed": int(n_failed), "failed_share": share,
            "max_failed_share": max_failed_share, "interval": "ok" if ok else "withheld",
            "message": msg}


class Status:
    CONVERGED = "converged"
    NOT_CONVERGED = "not_converged"
    GRID_EDGE = "grid_edge"          # converged, but outside the span of the start grid
    AT_BOUND = "at_bound"            # converged with a scale parameter at its floor (effectively 0)
    NOT_IDENTIFIED = "not_identified"  # the runs cannot identify an exponent (see the warnings)
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

    @property
    def frozen(self) -> dict:
        """Parameters held at given values in this fit (``--fix``, or a two-stage recipe's
        first-stage values): name -> value. They have no interval of their own."""
        return dict((self.info or {}).get("frozen") or {})

    @property
    def interval_status(self) -> str:
        """"ok" (draws give intervals), "withheld" (too many bootstrap refits failed: see
        ``info["bootstrap"]``) or "none" (no draws were asked for)."""
        boot = (self.info or {}).get("bootstrap") or {}
        if boot.get("interval") == "withheld":
            return "withheld"
        return "ok" if len(self.draws) else "none"

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray] | None:
        """Central interval of every parameter from the draws ((P,), (P,)); None without draws.
        Frozen parameters get NaN bounds: they were not estimated here."""
        if len(self.draws) == 0:
            return None
        q = (1 - level) / 2
        lo, hi = np.quantile(self.draws, q, axis=0), np.quantile(self.draws, 1 - q, axis=0)
        for name in self.frozen:
            lo[self.law.params.index(name)] = hi[self.law.params.index(name)] = np.nan
        return lo, hi

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

    def new_run_draws(self, variables: np.ndarray, rng: np.random.Generator | None = None,
                      per_draw: int = NEW_RUN_NOISE_DRAWS) -> np.ndarray:
        """Loss of a new run (one seed) for every draw, (B * per_draw, N): each draw's curve plus
        the fitted residual scatter in the objective's residual space (``info["residual"]``):
        ``exp(log L + s t)`` for the ``-log`` objectives, ``L + s t`` otherwise, with t a
        Student-t variate on the residual degrees of freedom (s is estimated)."""
        res = (self.info or {}).get("residual") or {}
        if len(self.draws) == 0 or not res.get("sd") or not np.isfinite(res["sd"]):
            return np.zeros((0, len(variables)))
        rng = np.random.default_rng(0) if rng is None else rng
        lp = np.repeat(self.log_loss(self.draws, variables), per_draw, axis=0)
        noise = res["sd"] * rng.standard_t(max(res.get("dof", 1), 1), size=lp.shape)
        return np.exp(lp + noise) if res.get("space") == "log" else np.exp(lp) + noise

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
        """One row per group and parameter: estimate, interval bounds (NaN for a frozen
        parameter, or when the group has no interval), ``frozen`` and the fit's status."""
        rows = []
        for g in self.groups:
            iv = g.interval(self.level)
            for j, name in enumerate(self.law.params):
                rows.append({**g.key, "param": name, "estimate": float(g.estimate[j]),
                             "lo": float(iv[0][j]) if iv else np.nan,
                             "hi": float(iv[1][j]) if iv else np.nan,
                             "frozen": name in g.frozen, "status": g.status})
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
    def predict(self, frame: pd.DataFrame | Mapping, level: float | None = None,
                interval: str = "new-run") -> pd.DataFrame:
        """Predicted loss with an interval, for every row of ``frame`` (columns: the law's
        variable columns and, when there are several groups, the group columns).

        Parameters
        ----------
        frame : DataFrame or mapping
            Points to predict at.
        level : float, optional
            Interval level (default: the fit's).
        interval : {"new-run", "curve"}
            "new-run" (default): where the loss of one new run at that point is expected, the
            curve's uncertainty (the draws) plus the fitted residual scatter in the objective's
            residual space (log loss for ``-log`` objectives). "curve": the interval of the
            fitted mean curve alone (narrower; a new run falls outside it far more often).

        Returns
        -------
        DataFrame
            The input columns, ``prediction`` (the curve at the estimate), ``lo``, ``hi``,
            ``interval`` (which interval ``lo``/``hi`` are: "new-run", "curve", or "none" when
            the group has no draws or its interval was withheld) and ``extrapolated`` (outside
            the fitted range of the group).
        """
        if interval not in INTERVALS:
            raise DataError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
        level = self.level if level is None else level
        if not 0 < level < 1:
            raise DataError(f"level must be between 0 and 1, got {level}")
        frame = pd.DataFrame(frame).reset_index(drop=True)
        keys = [k for k in self.by if k in frame.columns]
        for role in self.law.variables:
            spec = self.columns[role]
            if spec.startswith("@"):
                names = sorted({str(g.key.get(spec[1:])) for g in self.groups})
                if not any(n in frame.columns for n in names):
                    raise DataError(f"prediction needs the {role} column, one of "
                                    f"{', '.join(names)} (the fit reads {role} from the column "
                                    f"named in {spec[1:]!r}), e.g. {names[0]}=VALUE")
            elif spec not in frame.columns:
                raise DataError(f"prediction needs column {spec!r} (give it as {spec}=VALUE)")
        # which group each row belongs to: its key columns agree, and for a variable read
        # through @COL, the row gives a value in the column the group's COL names
        match = np.zeros((len(self.groups), len(frame)), bool)
        group_cols = []
        for i, g in enumerate(self.groups):
            cols = [self.columns[r] if not self.columns[r].startswith("@")
                    else str(g.key.get(self.columns[r][1:])) for r in self.law.variables]
            group_cols.append(cols)
            if not all(c in frame.columns for c in cols):
                continue
            m = frame[cols].notna().all(axis=1).to_numpy().copy()
            for k in keys:
                m &= frame[k].astype(str).to_numpy() == str(g.key.get(k))
            match[i] = m
        several = match.sum(axis=0) > 1
        if several.any():
            row = int(np.flatnonzero(several)[0])
            hits = [self.groups[i] for i in np.flatnonzero(match[:, row])]
            differ = [k for k in self.by if len({str(g.key.get(k)) for g in hits}) > 1]
            raise DataError(f"point {row + 1} fits {len(hits)} groups of this fit: name the group "
                            "with " + ", ".join(f"{k}=... (one of "
                                                f"{sorted({str(g.key.get(k)) for g in hits})})"
                                                for k in differ))
        out = frame.copy()
        for c in ("prediction", "lo", "hi"):
            out[c] = np.nan
        out["interval"] = "none"
        out["extrapolated"] = False
        out["group_found"] = match.any(axis=0)
        q = (1 - level) / 2
        for g, cols, mask in zip(self.groups, group_cols, match):
            if not mask.any():
                continue
            v = frame.loc[mask, cols].to_numpy(dtype=np.float64)
            zero = np.array([r in g.law.zero_ok for r in g.law.variables])   # e.g. rectified D
            if ((v < 0) | ((v == 0) & ~zero)).any() or not np.isfinite(v).all():
                raise DataError(f"prediction points must be positive and finite: {cols}")
            out.loc[mask, "prediction"] = g.loss(v)
            ld = g.new_run_draws(v) if interval == "new-run" else g.loss_draws(v)
            if len(ld):
                out.loc[mask, "lo"] = np.quantile(ld, q, axis=0)
                out.loc[mask, "hi"] = np.quantile(ld, 1 - q, axis=0)
                out.loc[mask, "interval"] = interval
            out.loc[mask, "extrapolated"] = g.extrapolates(v)
        if not out["group_found"].all():
            row = int(np.flatnonzero(~out["group_found"].to_numpy())[0])
            raise DataError(f"no fitted group for point {row + 1} "
                            f"({frame.iloc[row].dropna().to_dict()}): groups are "
                            f"{[g.key for g in self.groups]}")
        return out.drop(columns="group_found")
