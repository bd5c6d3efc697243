"""What a Bayesian fit returns, and every diagnostic of it: the typed :class:`Posterior`, R-hat,
ESS, divergences, BFMI, PSIS-LOO and the comparison of several fits.

Every use of arviz by the fitter lives here (``to_arviz``, ``diagnostics``, ``loo``,
``compare_loo``), so that the next arviz API change touches one file; NetCDF files are read and
written by ``lawfit/io/posterior.py``.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BFMI_MIN", "ESS_MIN", "RHAT_MAX", "Loo", "Posterior", "compare_loo",
           "diagnostic_warnings", "diagnostics", "loo", "posterior_summary", "to_arviz"]

RHAT_MAX, ESS_MIN = 1.01, 400
BFMI_MIN = 0.3                  # arviz's rule of thumb: below it, momentum resampling is poor


def _az():
    import arviz
    return arviz


@dataclass(frozen=True)
class Posterior:
    """The posterior of one problem (what ``lawfit.fit(fitter="bayes")`` keeps per group).

    Attributes
    ----------
    estimate : numpy.ndarray
        (F,) posterior median of every free parameter (internal units: logs of scales).
    draws : numpy.ndarray
        (chains * draws, F) internal free vectors.
    status : str
        ``"converged"`` unless R-hat > :data:`RHAT_MAX` or a transition diverged
        (``"not_converged"``).
    warnings : tuple of str
    info : dict
        diagnostics, priors, likelihood, sampler settings, the least-squares start, noise.
    data : arviz DataTree
        posterior (natural units), sample stats, log likelihood, posterior predictive,
        observed and constant data; runs along dimension ``run``.
    """
    estimate: np.ndarray
    draws: np.ndarray
    status: str
    warnings: tuple = ()
    info: dict = field(default_factory=dict)
    data: object = field(default=None, repr=False)

    @property
    def diagnostics(self) -> dict:
        """R-hat, ESS, divergences, BFMI, time (see :func:`diagnostics`)."""
        return self.info.get("diagnostics", {})

    @property
    def converged(self) -> bool:
        return self.status == "converged"


def to_arviz(model, params: Mapping, stats: Mapping, free_names: Sequence[str],
             log_lik: np.ndarray, replicated: np.ndarray | None = None):
    """The arviz DataTree of a fit.

    Parameters
    ----------
    model : lawfit.bayes.model.Model
    params : mapping
        site -> (chains, draws) natural values.
    stats : mapping
        sample statistics, (chains, draws) each (arviz names: ``diverging``, ``energy``, ...).
    free_names : sequence of str
    log_lik, replicated : numpy.ndarray
        (chains, draws, N) pointwise log likelihood and replicated observations.

    Returns
    -------
    xarray.DataTree
    """
    az = _az()
    import numpyro
    n = model.n
    const = {f"log_{v}": model.data["log_vars"][:, j] for j, v in enumerate(model.law.variables)}
    if not np.allclose(model.data["scale"], 1.0):
        const["weight"] = 1.0 / model.data["scale"] ** 2
    groups = {"posterior": dict(params), "sample_stats": dict(stats),
              "log_likelihood": {model.obs_name: log_lik},
              "observed_data": {model.obs_name: model.obs},
              "constant_data": const}
    if replicated is not None:
        groups["posterior_predictive"] = {model.obs_name: replicated}
    dt = az.from_dict(groups, coords={"run": np.arange(n)},
                      dims={model.obs_name: ["run"], **{k: ["run"] for k in const}})
    dt.attrs.update({"inference_library": "numpyro", "inference_library_version":
                     numpyro.__version__, "lawfit_law": model.law.name,
                     "lawfit_formula": model.law.formula, "lawfit_observed": model.obs_name,
                     "lawfit_free": json.dumps(list(free_names)),
                     "lawfit_priors": json.dumps(model.priors.as_dict()),
                     "lawfit_likelihood": model.likelihood})
    return dt


def _max_over(ds) -> float:
    vals = [float(np.nanmax(np.asarray(ds[v]))) for v in ds.data_vars]
    return max(vals) if vals else float("nan")


def _min_over(ds) -> float:
    vals = [float(np.nanmin(np.asarray(ds[v]))) for v in ds.data_vars]
    return min(vals) if vals else float("nan")


def diagnostics(post) -> dict:
    """Convergence diagnostics of a posterior.

    Parameters
    ----------
    post : arviz DataTree

    Returns
    -------
    dict
        ``r_hat_max`` (rank normalised split R-hat, max over parameters; NaN for one chain),
        ``ess_bulk_min``, ``ess_tail_min``, ``divergences``, ``bfmi_min`` (E-BFMI, min over
        chains; NaN without an ``energy`` statistic), ``chains``, ``draws``.
    """
    az = _az()
    n_chains = post.posterior.sizes["chain"]
    r_hat = _max_over(az.rhat(post)) if n_chains > 1 else float("nan")
    stats = post.sample_stats
    div = stats.get("diverging")
    bfmi = float("nan")
    if "energy" in stats:
        bfmi = float(np.min(np.asarray(az.bfmi(post)["energy"])))
    return {"r_hat_max": r_hat,
            "ess_bulk_min": _min_over(az.ess(post, method="bulk")),
            "ess_tail_min": _min_over(az.ess(post, method="tail")),
            "divergences": int(np.asarray(div).sum()) if div is not None else 0,
            "bfmi_min": bfmi,
            "chains": int(n_chains), "draws": int(post.posterior.sizes["draw"])}


def diagnostic_warnings(diag: Mapping) -> list[str]:
    """One sentence per failed diagnostic (R-hat, ESS, divergences, BFMI), saying what to do."""
    out = []
    if not diag["r_hat_max"] <= RHAT_MAX:
        out.append(f"R-hat {diag['r_hat_max']:.4f} > {RHAT_MAX}: the chains disagree; run "
                   "longer or check the priors")
    ess = min(diag["ess_bulk_min"], diag["ess_tail_min"])
    if not ess >= ESS_MIN:
        out.append(f"effective sample size {ess:.0f} < {ESS_MIN} (bulk "
                   f"{diag['ess_bulk_min']:.0f}, tail {diag['ess_tail_min']:.0f}): intervals "
                   "are imprecise; draw more")
    if diag["divergences"]:
        out.append(f"{diag['divergences']} divergent transitions: the posterior may be biased; "
                   "raise --target-accept (e.g. 0.99) or tighten the priors")
    bfmi = diag.get("bfmi_min", float("nan"))
    if not np.isnan(bfmi) and bfmi < BFMI_MIN:
        out.append(f"E-BFMI {bfmi:.2f} < {BFMI_MIN}: the sampler explores the energy levels "
                   "poorly (heavy tails or a funnel); check the priors")
    return out


def posterior_summary(post, names: Sequence[str]) -> dict:
    """Median and central 90% interval of posterior variables (those present)."""
    out = {}
    for n in names:
        if n in post.posterior:
            v = np.asarray(post.posterior[n]).ravel()
            out[n] = {"median": float(np.median(v)), "q05": float(np.quantile(v, 0.05)),
                      "q95": float(np.quantile(v, 0.95))}
    return out


@dataclass(frozen=True)
class Loo:
    """PSIS-LOO of one fit, on the loss scale (log-space fits carry the Jacobian -log y).

    Attributes
    ----------
    elpd, se, p_loo : float
    pareto_k : numpy.ndarray
        (N,) Pareto k of every run.
    good_k : float
        arviz's sample-size dependent threshold (0.7 for S > 2200).
    warning : bool
    data : arviz ELPDData
    """
    elpd: float
    se: float
    p_loo: float
    pareto_k: np.ndarray
    good_k: float
    warning: bool
    data: object = None

    @property
    def n_bad_k(self) -> int:
        """Runs whose Pareto k exceeds :attr:`good_k`."""
        return int(np.sum(self.pareto_k > self.good_k))


def loo(post) -> Loo:
    """PSIS-LOO of a Bayesian fit, elpd on the scale of the loss (nats), so that fits in log
    space and in loss space compare.

    Parameters
    ----------
    post : arviz DataTree
        A posterior written by :func:`to_arviz` (attribute ``lawfit_observed`` names the
        observed variable).

    Returns
    -------
    Loo
    """
    az = _az()
    obs_name = post.attrs.get("lawfit_observed", "loss")
    kwargs = {}
    if obs_name == "log_loss":
        y = post.observed_data[obs_name]
        kwargs["log_jacobian"] = -y          # z = log y: log|dz/dy| = -log y = -z
    with warnings.catch_warnings():      # arviz warns on high Pareto k: reported in Loo
        warnings.simplefilter("ignore", UserWarning)
        res = az.loo(post, pointwise=True, var_name=obs_name, **kwargs)
    k = np.asarray(res.pareto_k).ravel()
    good = float(getattr(res, "good_k", 0.7) or 0.7)
    return Loo(elpd=float(res.elpd), se=float(res.se), p_loo=float(res.p), pareto_k=k,
               good_k=good, warning=bool(getattr(res, "warning", False) or np.any(k > good)),
               data=res)


def compare_loo(loos: Mapping[str, Loo]):
    """arviz's comparison (stacking weights) of several fits of the same runs.

    Parameters
    ----------
    loos : mapping of name to Loo

    Returns
    -------
    pandas.DataFrame
        Indexed by name, best first: rank, elpd, p, elpd_diff, weight, se, dse, warning.
    """
    az = _az()
    return az.compare({k: v.data for k, v in loos.items()}, round_to="none")
