"""Priors of a Bayesian fit: the defaults of every law parameter and how a user's priors win.

Default priors (weakly informative, natural units; every one can be overridden, see
:func:`resolve_priors`):

==========================  ==============================  ===================================
parameter                   prior                           why
==========================  ==============================  ===================================
E (irreducible loss)        Gamma(2, 2 / min loss)          every term is positive, so E lies
                                                            below the smallest loss (mean);
                                                            density 0 at E = 0: no wall there
other scales (A, B)         LogNormal(0, 15)                log A within +-30: any X^alpha range
exponents (alpha, beta)     Normal(0, 1)                    sign left to the data (PET sizes
                                                            have alpha ~ 0, Zhang et al. Table 4)
sigma (noise scale)         HalfNormal(0.5)                 residuals in nats or log nats
nu (Student-t dof)          Gamma(2, 0.1)                   Juarez & Steel (2010); mean 20
==========================  ==============================  ===================================

A law written as a jax function (``lawfit.userlaw``) may state a plausible range per parameter
(``law.ranges``); its default prior then puts 95% of its mass on that range.

A priors TOML file (``lawfit/io/priors.py``) names distributions of :data:`TOML_DISTRIBUTIONS`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpyro.distributions as dist

from ..errors import DataError

__all__ = ["NOISE_SITES", "TOML_DISTRIBUTIONS", "Priors", "default_prior", "describe",
           "has_positive_support", "resolve_priors"]

NOISE_SITES = ("sigma", "nu")

# distributions a priors TOML file may name (numpyro.distributions classes)
TOML_DISTRIBUTIONS = ("Normal", "LogNormal", "HalfNormal", "HalfCauchy", "Cauchy", "StudentT",
                      "Exponential", "Gamma", "InverseGamma", "Uniform", "TruncatedNormal",
                      "Beta", "LogUniform")


def default_prior(param: str, law, loss_scale: float | None = None) -> dist.Distribution:
    """The default prior of a law parameter (natural units) or of ``sigma`` / ``nu``.

    Parameters
    ----------
    param : str
        A parameter of ``law`` (``E``, ``alpha``, ...) or a noise site (``sigma``, ``nu``).
    law : lawfit.laws.Law
        The law; its ``log_params`` (scale parameters) get priors on the positive axis.
    loss_scale : float, optional
        The smallest observed loss: the scale of E's prior (without it, LogNormal(0, 2)).

    Returns
    -------
    numpyro.distributions.Distribution
        A scalar distribution (see the module docstring's table).
    """
    if param == "sigma":
        return dist.HalfNormal(0.5)
    if param == "nu":
        return dist.Gamma(2.0, 0.1)
    if param in getattr(law, "ranges", {}):      # a jax law: its plausible range, as 95%
        lo, hi = law.ranges[param]
        if param in law.log_params:
            return dist.LogNormal((math.log(lo) + math.log(hi)) / 2, (math.log(hi / lo)) / 4)
        return dist.Normal((lo + hi) / 2, (hi - lo) / 4)
    if param == "E" and param in law.log_params:
        if loss_scale is not None and math.isfinite(loss_scale) and loss_scale > 0:
            return dist.Gamma(2.0, 2.0 / float(loss_scale))
        return dist.LogNormal(0.0, 2.0)
    if param in law.log_params:
        return dist.LogNormal(0.0, 15.0)
    return dist.Normal(0.0, 1.0)


def describe(d) -> str:
    """Readable text of a numpyro distribution, e.g. ``LogNormal(loc=0, scale=15)``.

    Parameters
    ----------
    d : numpyro.distributions.Distribution

    Returns
    -------
    str
    """
    name = type(d).__name__
    args = []
    for k in getattr(d, "arg_constraints", {}):
        v = getattr(d, k, None)
        if v is None:
            continue
        a = np.asarray(v)
        if a.ndim == 0:
            args.append(f"{k}={float(a):g}")
    if name == "TruncatedNormal" or (not args and hasattr(d, "base_dist")):
        base = getattr(d, "base_dist", None)
        low, high = getattr(d, "low", None), getattr(d, "high", None)
        inner = describe(base) if base is not None else ""
        return f"{name}({inner}, low={low}, high={high})"
    return f"{name}({', '.join(args)})"


def has_positive_support(d) -> bool:
    """Whether the support of distribution ``d`` lies on the non-negative axis."""
    lb = getattr(d.support, "lower_bound", None)
    try:
        return lb is not None and float(np.min(np.asarray(lb))) >= 0.0
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Priors:
    """Priors per site (free parameter names, ``sigma``, ``nu``), with where each came from.

    Attributes
    ----------
    sites : tuple of str
        Site names, free parameters first (in the layout's order), then the noise sites.
    dists : tuple of numpyro.distributions.Distribution
        The prior of every site, same order.
    sources : tuple of str
        ``"default"``, ``"law parameter X"`` or ``"free parameter X"`` per site.
    scaled : tuple of bool
        Whether a site's prior is scaled by the data (E's default: Gamma with the smallest loss
        as its mean); the model then takes the scale as data (``loss_scale``), so that one compiled
        sampler serves every group.
    """
    sites: tuple
    dists: tuple
    sources: tuple
    scaled: tuple = ()

    def key(self) -> tuple:
        """Text of every prior, data-scaled ones without their scale (a compile-cache key)."""
        return tuple("Gamma(concentration=2, rate=2/min loss)" if self.scaled and self.scaled[i]
                     else describe(d) for i, d in enumerate(self.dists))

    def as_dict(self) -> dict:
        """``{site: {"prior": text, "source": where it came from}}`` (for fit.json)."""
        return {s: {"prior": describe(d), "source": src}
                for s, d, src in zip(self.sites, self.dists, self.sources)}


def resolve_priors(law, free_names: Sequence[str], free_params: Sequence[str],
                   priors: Mapping | None, likelihood: str = "student",
                   nu: float | None = None, loss_scale: float | None = None) -> Priors:
    """The prior of every site of a fit.

    A user's entry keyed by the free name (``A[model_params]``) wins, then one keyed by the law
    parameter (``A``: every A of a joint fit), then :func:`default_prior`. ``sigma`` and ``nu``
    may be given too. Scale parameters (the law's ``log_params``, ``sigma``, ``nu``) need a prior
    on the positive axis.

    Parameters
    ----------
    law : lawfit.laws.Law
    free_names : sequence of str
        Name of every free parameter of the layout (``E``, ``A[model_params]``, ...).
    free_params : sequence of str
        The law parameter behind every free name (``E``, ``A``, ...).
    priors : mapping of str to numpyro distribution, or None
        The user's priors.
    likelihood : {"student", "normal"}
        ``"student"`` with ``nu=None`` adds the site ``nu``.
    nu : float or None
        Fixed Student-t degrees of freedom (no ``nu`` site).
    loss_scale : float, optional
        The smallest observed loss (scale of E's default prior).

    Returns
    -------
    Priors

    Raises
    ------
    DataError
        A prior for a parameter the law does not have, one that is not a scalar numpyro
        distribution, or a scale parameter's prior off the positive axis.
    """
    priors = dict(priors or {})
    noise = ["sigma"] + (["nu"] if likelihood == "student" and nu is None else [])
    valid = set(law.params) | set(free_names) | set(NOISE_SITES)
    unknown = sorted(k for k in priors if k not in valid)
    if unknown:
        raise DataError(f"prior for unknown parameter(s) {unknown}: law {law.name!r} has "
                        f"{', '.join([*dict.fromkeys([*law.params, *free_names]), *NOISE_SITES])}")
    sites, dists, sources, scaled = [], [], [], []
    for name, param in [*zip(free_names, free_params), *((s, s) for s in noise)]:
        if name in priors:
            d, src = priors[name], f"free parameter {name}" if name != param else f"{name}"
        elif param in priors:
            d, src = priors[param], f"law parameter {param}"
        else:
            d, src = default_prior(param, law, loss_scale), "default"
        if not isinstance(d, dist.Distribution):
            raise DataError(f"prior of {name} must be a numpyro distribution, got {d!r}")
        if d.batch_shape or d.event_shape:
            raise DataError(f"prior of {name} must be a scalar distribution, got batch shape "
                            f"{d.batch_shape} and event shape {d.event_shape}")
        if (param in law.log_params or param in NOISE_SITES) and not has_positive_support(d):
            raise DataError(f"prior of {name} must live on the positive axis ({name} is a scale "
                            f"parameter): {describe(d)} has support {d.support}; use e.g. "
                            "LogNormal, HalfNormal, Gamma")
        sites.append(name)
        dists.append(d)
        sources.append(src)
        scaled.append(src == "default" and param == "E" and isinstance(d, dist.Gamma))
    return Priors(tuple(sites), tuple(dists), tuple(sources), tuple(scaled))
