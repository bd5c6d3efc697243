"""Bayesian fits: a numpyro model built from any law, NUTS, arviz diagnostics, PSIS-LOO.

One job per module, imported downward only:

* ``priors``    default priors of every law parameter, and how a user's priors win
* ``model``     the numpyro model of one :class:`~lawfit.lsq.Problem` (likelihood, sites, the
                centring reparameterisation of scale parameters)
* ``posterior`` the typed :class:`Posterior` result, arviz diagnostics (R-hat, ESS,
                divergences, E-BFMI), PSIS-LOO and the comparison of fits
* ``inference`` where the chains start (least squares, posterior mode, Laplace covariance),
                the NUTS driver and :func:`fit_problem`

Files live in ``lawfit/io``: ``io/priors.py`` (priors TOML), ``io/posterior.py`` (NetCDF).
Pure: no printing, progress goes through the ``progress(message)`` callback.
"""
from __future__ import annotations

from .inference import (
                        CHAINS,
                        DRAWS,
                        TARGET_ACCEPT,
                        WARMUP,
                        Samples,
                        fit_problem,
                        fit_problems,
                        free_draws,
                        init_values,
                        laplace_start,
                        lsq_optimum,
                        pointwise,
                        posterior_mode,
                        sample,
                        sample_groups,
)
from .model import LIKELIHOODS, Model, build_model, centring, free_params_of
from .posterior import (
                        ESS_MIN,
                        RHAT_MAX,
                        Loo,
                        Posterior,
                        compare_loo,
                        diagnostic_warnings,
                        diagnostics,
                        loo,
                        posterior_summary,
                        to_arviz,
)
from .priors import NOISE_SITES, Priors, default_prior, describe, resolve_priors

__all__ = ["CHAINS", "DRAWS", "ESS_MIN", "LIKELIHOODS", "NOISE_SITES", "RHAT_MAX",
           "TARGET_ACCEPT", "WARMUP", "Loo", "Model", "Posterior", "Priors", "Samples",
           "build_model", "centring", "compare_loo", "default_prior", "describe",
           "diagnostic_warnings", "diagnostics", "fit_problem", "fit_problems", "free_draws", "free_params_of",
           "init_values", "laplace_start", "loo", "lsq_optimum", "pointwise", "posterior_mode",
           "posterior_summary", "resolve_priors", "sample", "sample_groups", "to_arviz"]
