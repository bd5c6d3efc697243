"""Compute-optimal allocation from a fitted Chinchilla-form law (Hoffmann et al. 2022, Approach 3).

For L(N, D) = E + A / N^alpha + B / D^beta and a compute budget C = k N D (k = 6 FLOP per
parameter and token by default), the loss is smallest at

    N_opt = G (C / k)^a,   D_opt = (C / k)^b / G,   G = (alpha A / (beta B))^(1 / (alpha + beta)),
    a = beta / (alpha + beta),   b = alpha / (alpha + beta),

so tokens per parameter D_opt / N_opt = (C / k)^(b - a) / G^2. Every quantity is computed for the
estimate and for every parameter draw (bootstrap or posterior); the interval is the central
quantile range of the draws. A draw with alpha <= 0 or beta <= 0 has no interior optimum (the
loss falls forever along one axis): such draws are counted (``share_no_optimum``) and their
quantities sit beyond every finite value, so a bound that depends on them reads ``null``.
Pure: no printing, no files.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lawfit.errors import DataError
from lawfit.result import FitResult, GroupFit

__all__ = ["REQUIRED", "FLOPS_PER_PARAM_TOKEN", "OptimalResult", "check_law", "allocation",
           "optimal"]

REQUIRED = ("A", "B", "E", "alpha", "beta")
FLOPS_PER_PARAM_TOKEN = 6.0


@dataclass(frozen=True)
class OptimalResult:
    """Compute-optimal allocations per group and compute budget."""
    rows: list                      # dicts: key, compute, model_params, tokens, tokens_per_param, loss
    exponents: list                 # dicts: key, a, b (each {estimate, lo, hi}), share_no_optimum
    flops_per_param_token: float
    level: float
    columns: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"compute_model": f"C = {self.flops_per_param_token:g} * N * D",
                "flops_per_param_token": self.flops_per_param_token, "level": self.level,
                "columns": self.columns,
                "formulas": {"N_opt": "G * (C/k)^a", "D_opt": "(C/k)^b / G",
                             "G": "(alpha*A/(beta*B))^(1/(alpha+beta))",
                             "a": "beta/(alpha+beta)", "b": "alpha/(alpha+beta)"},
                "exponents": self.exponents, "rows": self.rows, "data": self.source}


def check_law(result: FitResult) -> None:
    """Raise DataError unless the fit is of a law E + A/N^alpha + B/D^beta in N and D.

    Parameters
    ----------
    result : FitResult
        The fit.
    """
    law = result.law
    if not set(REQUIRED) <= set(law.params) or law.variables != ("x", "d") or \
            law.name not in ("chinchilla", "additive"):
        raise DataError(f"compute-optimal allocation needs a fit of the chinchilla law "
                        f"(E + A/N^alpha + B/D^beta over parameters N and tokens D); this fit is "
                        f"of the {law.name} law ({law.formula})")


def allocation(params: np.ndarray, names: Sequence[str], compute: np.ndarray,
               k: float = FLOPS_PER_PARAM_TOKEN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N_opt, D_opt and the loss there.

    Parameters
    ----------
    params : numpy.ndarray
        (..., P) natural parameters.
    names : sequence of str
        The parameter names (columns of ``params``).
    compute : numpy.ndarray
        (C,) budgets in FLOP.
    k : float
        FLOP per parameter and token.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray)
        N_opt, D_opt, loss, each (..., C); NaN where alpha <= 0 or beta <= 0 (no interior
        optimum).
    """
    p = {n: np.asarray(params)[..., names.index(n), None] for n in REQUIRED}
    alpha, beta, A, B, E = p["alpha"], p["beta"], p["A"], p["B"], p["E"]
    ok = (alpha > 0) & (beta > 0) & (A > 0) & (B > 0)
    with np.errstate(all="ignore"):
        s = alpha + beta
        log_g = (np.log(alpha * A) - np.log(beta * B)) / s
        log_c = np.log(np.asarray(compute, np.float64) / k)
        log_n = log_g + beta / s * log_c
        log_d = log_c - log_n
        n, d = np.exp(log_n), np.exp(log_d)
        loss = E + A * n ** -alpha + B * d ** -beta
    bad = ~np.broadcast_to(ok, n.shape)
    return (np.where(bad, np.nan, n), np.where(bad, np.nan, d), np.where(bad, np.nan, loss))


def _summary(estimate: float, draws: np.ndarray, level: float, beyond: float = np.inf) -> dict:
    """{estimate, lo, hi} from draws; NaN draws (no optimum) count as ``beyond`` (+inf)."""
    out = {"estimate": float(estimate) if np.isfinite(estimate) else None, "lo": None, "hi": None}
    if len(draws):
        q = (1 - level) / 2
        lo, hi = np.quantile(np.where(np.isnan(draws), beyond, draws), [q, 1 - q])
        out["lo"] = float(lo) if np.isfinite(lo) else None
        out["hi"] = float(hi) if np.isfinite(hi) else None
    return out


def _finite_summary(estimate: float, draws: np.ndarray, level: float) -> dict:
    """{estimate, lo, hi} over the draws that have a value (an exponent exists only where
    alpha, beta > 0; the share without one is reported beside it)."""
    return _summary(estimate, draws[np.isfinite(draws)], level)


def optimal(result: FitResult, compute: float | Sequence[float], *,
            flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN,
            level: float | None = None) -> OptimalResult:
    """Compute-optimal model size and tokens for each group of a Chinchilla-law fit.

    Parameters
    ----------
    result : FitResult
        A fit of the ``chinchilla`` law (X = parameters N, D = training tokens), e.g. the
        ``epoch2024`` recipe's; its draws give the intervals.
    compute : float or sequence of float
        Training compute budgets C in FLOP.
    flops_per_param_token : float
        k in C = k N D (6: forward and backward pass of a dense Transformer).
    level : float, optional
        Interval level (default: the fit's).

    Returns
    -------
    OptimalResult
        ``rows``: per group and budget, ``model_params``, ``tokens``, ``tokens_per_param`` and
        ``loss``, each ``{estimate, lo, hi}``, and ``share_no_optimum`` of the draws;
        ``exponents``: per group, ``a`` and ``b`` (N_opt ~ C^a, D_opt ~ C^b).
    """
    check_law(result)
    compute = np.atleast_1d(np.asarray(compute, np.float64))
    if compute.size == 0 or not np.all(np.isfinite(compute)) or np.any(compute <= 0):
        raise DataError(f"compute budgets must be positive and finite FLOP, got {compute.tolist()}")
    if not (flops_per_param_token > 0 and np.isfinite(flops_per_param_token)):
        raise DataError(f"FLOP per parameter and token must be positive, got "
                        f"{flops_per_param_token}")
    level = result.level if level is None else level
    if not 0 < level < 1:
        raise DataError(f"level must be between 0 and 1, got {level}")
    names = list(result.law.params)
    ia, ib = names.index("alpha"), names.index("beta")
    rows, exps = [], []
    for g in result.groups:
        rows.extend(_group_rows(g, names, compute, flops_per_param_token, level))
        est_s = g.estimate[ia] + g.estimate[ib]
        da, db = (g.draws[:, ia], g.draws[:, ib]) if len(g.draws) else (np.zeros(0),) * 2
        ok = (da > 0) & (db > 0)
        with np.errstate(all="ignore"):
            a_draws = np.where(ok, db / (da + db), np.nan)
        exps.append({"key": g.key,
                     "a": _finite_summary(g.estimate[ib] / est_s, a_draws, level),
                     "b": _finite_summary(g.estimate[ia] / est_s, 1 - a_draws, level),
                     "share_no_optimum": float(np.mean(~ok)) if len(ok) else None,
                     "n_draws": int(len(g.draws)), "interval": g.interval_status})
    return OptimalResult(rows=rows, exponents=exps, flops_per_param_token=flops_per_param_token,
                         level=level, columns={"N": result.columns.get("x"),
                                               "D": result.columns.get("d")},
                         source=dict(result.source or {}))


def _group_rows(g: GroupFit, names, compute, k, level) -> list:
    n_e, d_e, l_e = (a[0] for a in allocation(g.estimate[None], names, compute, k))
    if len(g.draws):
        n_d, d_d, l_d = allocation(g.draws, names, compute, k)
    else:
        n_d = d_d = l_d = np.zeros((0, len(compute)))
    none = np.isnan(n_d)
    out = []
    for j, c in enumerate(compute):
        with np.errstate(all="ignore"):
            tpp_e, tpp_d = d_e[j] / n_e[j], d_d[:, j] / n_d[:, j]
        out.append({"key": g.key, "compute": float(c),
                    "model_params": _summary(n_e[j], n_d[:, j], level),
                    "tokens": _summary(d_e[j], d_d[:, j], level),
                    "tokens_per_param": _summary(tpp_e, tpp_d, level),
                    "loss": _summary(l_e[j], l_d[:, j], level),
                    "share_no_optimum": float(none[:, j].mean()) if len(n_d) else None,
                    "n_draws": int(len(n_d)), "interval": g.interval_status})
    return out
