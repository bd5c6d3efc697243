"""Compare laws per group: PSIS-LOO of their Bayesian fits, with a held-out error beside it.

Every law is fitted with the Bayesian fitter to the same runs of every group; the expected log
predictive density (elpd, PSIS-LOO, on the loss scale in nats: fits whose likelihood lives in log
loss carry the Jacobian) ranks them, arviz's stacking gives weights, and Pareto k values above
arviz's threshold are reported (those runs' LOO estimates are unreliable). Beside it, a simple
held-out check: each law refitted without the runs at the largest D (the law's ``d`` column, or
its only variable) of every group, and the mean absolute error of its predictions there
(Delta_h of Zhang et al. 2024).

A group in which any law's posterior did not converge (R-hat > 1.01 or a divergent transition)
is not compared: its ranking is returned, marked ``comparable=False`` with the reason. A law
that converged but does not describe the runs (status ``poor_fit``) is compared: telling such a
law from a better one is what a comparison is for (its status and warnings stay in its row).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError
from ..table import default_by, is_per_row

__all__ = ["HOLDOUT_FITTERS", "TARGET_ACCEPT", "Comparison", "GroupComparison", "LawScore",
           "compare", "sampler_converged"]

HOLDOUT_FITTERS = ("lsq", "bayes", "none")
# NUTS' target acceptance of a comparison (a fit's default is 0.9): a comparison fits laws that
# do not describe the data, whose posteriors have edges (the additive law's D term vanishing at
# the largest D) where steps of the size 0.9 adapts to diverge; measured on the README's
# example (README, "Law comparison"; tests/test_compare_honest.py checks it converges)
TARGET_ACCEPT = 0.99


@dataclass(frozen=True)
class LawScore:
    """One law in one group.

    Attributes
    ----------
    law : str
    rank : int
        0 is the best (highest elpd).
    elpd_loo, se, elpd_diff, dse, p_loo, weight : float
        arviz's comparison: elpd and its standard error, the difference to the best and its
        standard error, the effective number of parameters, the stacking weight.
    pareto_k_max, pareto_k_threshold : float
    n_bad_k : int
        Runs whose Pareto k exceeds the threshold.
    heldout : dict or None
        ``{"mae", "n", "d"}``: mean absolute error on the ``n`` held-out runs at D = ``d``.
    status : str
        The Bayesian fit's status (``converged`` / ``not_converged``).
    diagnostics : dict
        R-hat, ESS, divergences, BFMI of the fit.
    warnings : tuple of str
    """
    law: str
    rank: int
    elpd_loo: float
    se: float
    elpd_diff: float
    dse: float
    p_loo: float
    weight: float
    pareto_k_max: float
    pareto_k_threshold: float
    n_bad_k: int
    heldout: dict | None
    status: str
    diagnostics: dict
    warnings: tuple = ()


@dataclass(frozen=True)
class GroupComparison:
    """The laws of one group, best first.

    Attributes
    ----------
    key : dict
        The group (``{"task": ..., "method": ...}``).
    n_runs : int
    scores : tuple of LawScore
        Best first.
    comparable : bool
        False when any law's posterior did not converge (:func:`sampler_converged`).
    reason : str or None
        Why the group is not compared (each failed law with R-hat, divergences, bulk ESS).
    heldout_runs : dict or None
        ``{"n", "d"}`` of the held-out runs of the first law.
    """
    key: dict
    n_runs: int
    scores: tuple
    comparable: bool
    reason: str | None = None
    heldout_runs: dict | None = None

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.key.items()) or "(all runs)"

    @property
    def best(self) -> LawScore:
        return self.scores[0]


@dataclass(frozen=True)
class Comparison:
    """The answer of :func:`compare`.

    Attributes
    ----------
    laws : tuple of str
    groups : tuple of GroupComparison
    holdout_fitter : str
    bayes : dict
        Sampler settings (without the priors' objects).
    source : dict or None
        Provenance of the runs table.
    fits : dict
        law -> the :class:`lawfit.result.FitResult` of its Bayesian fit (posteriors included).
    """
    laws: tuple
    groups: tuple
    holdout_fitter: str
    bayes: dict
    source: dict | None = None
    fits: dict = field(default_factory=dict, repr=False)

    @property
    def not_compared(self) -> list[str]:
        """``"group: reason"`` for every group that could not be compared."""
        return [f"{g.label}: {g.reason}" for g in self.groups if not g.comparable]

    def as_dict(self) -> dict:
        """The compare.json document: one row per (group, law)."""
        rows = []
        for g in self.groups:
            for s in g.scores:
                rows.append({"key": g.key, "law": s.law, "rank": s.rank,
                             "elpd_loo": s.elpd_loo, "se": s.se, "elpd_diff": s.elpd_diff,
                             "dse": s.dse, "p_loo": s.p_loo, "weight": s.weight,
                             "pareto_k_max": s.pareto_k_max,
                             "pareto_k_threshold": s.pareto_k_threshold,
                             "n_bad_k": s.n_bad_k, "heldout": s.heldout, "status": s.status,
                             "diagnostics": s.diagnostics, "comparable": g.comparable})
        return {"laws": list(self.laws), "criterion": "PSIS-LOO elpd (loss scale, nats)",
                "holdout": {"rule": "largest D per group", "fitter": self.holdout_fitter},
                "bayes": dict(self.bayes), "data": self.source, "rows": rows,
                "not_compared": self.not_compared}


def sampler_converged(diag: Mapping) -> bool:
    """Whether a posterior's chains converged: R-hat <= 1.01 and no divergent transition
    (the fit's status may say more, e.g. ``poor_fit``, which does not bar a comparison)."""
    from ..bayes import RHAT_MAX
    return bool(diag) and diag.get("r_hat_max", np.inf) <= RHAT_MAX and \
        diag.get("divergences", 1) == 0


def _diag_text(status: str, diag: Mapping) -> str:
    if not diag:
        return status
    return (f"{status} (R-hat {diag.get('r_hat_max', float('nan')):.4f}, "
            f"{diag.get('divergences', 0)} divergences, bulk ESS "
            f"{diag.get('ess_bulk_min', 0):.0f})")


def _group_label(key: Mapping, by: Sequence[str]) -> str:
    return "|".join(str(key[k]) for k in by)


def _holdout(frame: pd.DataFrame, law: str, fit_kwargs: Mapping, columns: Mapping,
             by: Sequence[str], fitter: str, bayes_options: Mapping, source, progress) -> dict:
    """Mean |prediction - loss| on the runs at the largest D of each group, fitted without
    them. ``columns``: the law's columns as its full fit resolved them."""
    from ..fit import fit
    from ..userlaw import resolve
    variables = resolve(law).variables
    dcol = columns["d"] if "d" in variables else columns[variables[-1]]
    if is_per_row(dcol):
        raise DataError("the held-out check needs a plain D column (not @COL)")
    work = frame.reset_index(drop=True)
    dmax = (work.groupby(list(by), dropna=False)[dcol].transform("max") if by
            else work[dcol].max())
    held = (work[dcol] >= dmax).to_numpy()
    train, test = work[~held], work[held]
    result = fit(train, law, fitter=fitter, source=source, progress=progress, **fit_kwargs,
                 **({"bayes_options": dict(bayes_options)} if fitter == "bayes" else {}))
    pred = result.predict(test[[*[columns[r] for r in variables], *by]])
    err = np.abs(pred["prediction"].to_numpy() - test[columns["y"]].to_numpy(np.float64))
    keys = (test[list(by)].astype(str).agg("|".join, axis=1).to_numpy() if by
            else np.full(len(test), ""))
    out = {}
    for k in dict.fromkeys(keys):
        m = keys == k
        out[k] = {"mae": float(np.mean(err[m])), "n": int(np.sum(m)),
                  "d": float(test.loc[m, dcol].max())}
    return out


def compare(frame: pd.DataFrame, laws: Sequence[str], *, x: str | None = None,
            d: str | None = None, y: str = "loss", by: Sequence[str] | None = None,
            where=None, objective=None, delta: float | None = None, starts="grid",
            seeds: str = "average", seed: int = 0, priors: Mapping | None = None,
            chains: int = 4, warmup: int = 1000, draws: int = 1000,
            likelihood: str = "student", target_accept: float = TARGET_ACCEPT,
            holdout_fitter: str = "lsq", source: dict | None = None,
            progress: Callable[[str], None] | None = None) -> Comparison:
    """Rank laws per group by PSIS-LOO of their Bayesian fits, with a held-out error beside it.

    Parameters
    ----------
    frame : pandas.DataFrame
        The runs table (one series: a table that pools several ``factor`` series is refused).
    laws : sequence of str
        At least two different law names (built-in or ``file.py:name``).
    x, d, y, by, where, objective, delta, starts, seeds, seed
        As for :func:`lawfit.fit`.
    priors : mapping, optional
        numpyro distributions by parameter name (apply to every law that has the parameter).
    chains, warmup, draws, likelihood, target_accept
        NUTS settings of every Bayesian fit (``target_accept`` 0.99 by default: see
        :data:`TARGET_ACCEPT`).
    holdout_fitter : {"lsq", "bayes", "none"}
        Fitter of the held-out check (``"none"`` skips it).
    source : dict, optional
        Provenance of the table (recorded in the result).
    progress : callable, optional
        ``progress(message)``, one line per stage.

    Returns
    -------
    Comparison
        Per group, every law's score best first, and whether the group could be compared.

    Raises
    ------
    DataError
        Fewer than two laws, a law named twice, an unknown law, bad sampler settings, a table
        that pools several series, laws that saw different runs.
    """
    from ..bayes import compare_loo, loo
    from ..expr import filter_frame
    from ..fit import fit
    from ..userlaw import resolve
    from .critical import check_series
    laws = list(laws)
    if len(laws) < 2:
        raise DataError(f"compare needs at least two laws, got {laws!r}")
    if len(set(laws)) != len(laws):
        raise DataError(f"a law is named twice: {laws!r}")
    for name in laws:
        resolve(name)
    if min(chains, warmup, draws) < 1:
        raise DataError("chains, warm-up and draws must be positive")
    if not 0.0 < target_accept < 1.0:
        raise DataError(f"target_accept must be between 0 and 1, got {target_accept}")
    if holdout_fitter not in HOLDOUT_FITTERS:
        raise DataError(f"holdout_fitter must be one of {', '.join(HOLDOUT_FITTERS)}, "
                        f"got {holdout_fitter!r}")
    kept = filter_frame(frame, where)
    check_series(kept, by, x)
    fit_kwargs = {"x": x, "d": d, "y": y, "by": by, "objective": objective, "delta": delta,
                  "starts": starts, "seeds": seeds, "seed": seed}
    bayes_options = {"chains": chains, "warmup": warmup, "draws": draws,
                     "likelihood": likelihood, "target_accept": target_accept}
    if priors:
        bayes_options["priors"] = dict(priors)
    fits = {}
    for name in laws:
        if progress:
            progress(f"law {name}: Bayesian fit")
        fits[name] = fit(frame, name, fitter="bayes", bayes_options=bayes_options, where=where,
                         source=source, progress=progress, **fit_kwargs)
    group_by = list(fits[laws[0]].settings.get("by") or
                    (by if by is not None else default_by(kept)))
    holdout = {}
    if holdout_fitter != "none":
        for name in laws:
            if progress:
                progress(f"law {name}: held-out check ({holdout_fitter})")
            holdout[name] = _holdout(kept, name, fit_kwargs, fits[name].settings["columns"],
                                     group_by, holdout_fitter, bayes_options, source, progress)
    ref = fits[laws[0]]
    groups = []
    for gi, g0 in enumerate(ref.groups):
        key = dict(g0.key)
        label = ", ".join(f"{k}={v}" for k, v in key.items()) or "(all runs)"
        loos = {}
        for name in laws:
            g = fits[name].groups[gi]
            if g.key != g0.key or g.n_points != g0.n_points:
                raise DataError(f"laws {laws[0]} and {name} saw different runs in group "
                                f"{label}: give the same x/d for every law")
            loos[name] = loo(g.posterior)
        table = compare_loo(loos)
        hkey = _group_label(key, list(key))
        scores = []
        for name, r in table.iterrows():
            lo, g = loos[name], fits[name].groups[gi]
            scores.append(LawScore(
                law=str(name), rank=int(r["rank"]), elpd_loo=float(r["elpd"]),
                se=float(r["se"]), elpd_diff=float(r["elpd_diff"]), dse=float(r["dse"]),
                p_loo=float(r["p"]), weight=float(r["weight"]),
                pareto_k_max=float(np.max(lo.pareto_k)), pareto_k_threshold=lo.good_k,
                n_bad_k=lo.n_bad_k, heldout=holdout.get(name, {}).get(hkey),
                status=str(getattr(g.status, "value", g.status)), diagnostics=dict(g.info.get("diagnostics") or {}),
                warnings=tuple(g.warnings)))
        bad = [s for s in scores if not sampler_converged(s.diagnostics)]
        reason = ("; ".join(f"{s.law} did not converge: "
                            + _diag_text(s.status, s.diagnostics) for s in bad)
                  if bad else None)
        h0 = holdout.get(laws[0], {}).get(hkey)
        groups.append(GroupComparison(key=key, n_runs=int(g0.n_points), scores=tuple(scores),
                                      comparable=not bad, reason=reason,
                                      heldout_runs=({"n": h0["n"], "d": h0["d"]} if h0
                                                    else None)))
    return Comparison(laws=tuple(laws), groups=tuple(groups), holdout_fitter=holdout_fitter,
                      bayes={k: v for k, v in bayes_options.items() if k != "priors"},
                      source=source, fits=fits)
