"""Priors TOML files: read a user's priors into numpyro distributions.

One entry per parameter (law parameter name such as ``E`` or ``alpha``, a free name of a joint
fit such as ``"A[model_params]"``, or ``sigma`` / ``nu``), each an inline table naming a
distribution of ``numpyro.distributions`` (one of
:data:`lawfit.bayes.priors.TOML_DISTRIBUTIONS`) and its arguments::

    E = { dist = "LogNormal", loc = 0.0, scale = 1.0 }
    alpha = { dist = "Normal", loc = 0.3, scale = 0.2 }
    sigma = { dist = "HalfNormal", scale = 0.05 }

Entries may also sit under a ``[priors]`` table. The file is data: only the named distribution
classes are looked up, with numbers as arguments.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from ..bayes.priors import TOML_DISTRIBUTIONS
from ..errors import DataError

__all__ = ["read_priors"]


def read_priors(path: str | Path) -> dict:
    """Read a priors TOML file.

    Parameters
    ----------
    path : str or Path
        The TOML file (format in the module docstring).

    Returns
    -------
    dict
        ``{name: numpyro distribution}``; names are checked against the law later
        (:func:`lawfit.bayes.priors.resolve_priors`).

    Raises
    ------
    DataError
        Unreadable file, unknown distribution, bad arguments: one line saying what to fix.
    """
    import numpyro.distributions as dist
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"no such priors file: {p}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read priors file {p}: {exc}") from None
    if "priors" in doc:
        if not isinstance(doc["priors"], dict) or len(doc) != 1:
            raise DataError(f"{p}: put every prior under [priors] or none of them")
        doc = doc["priors"]
    if not doc:
        raise DataError(f"{p} defines no priors")
    out = {}
    for name, spec in doc.items():
        if not isinstance(spec, dict) or "dist" not in spec:
            raise DataError(f"{p}: {name} must be a table like "
                            f'{{ dist = "LogNormal", loc = 0.0, scale = 1.0 }}, got {spec!r}')
        kind = spec["dist"]
        if kind not in TOML_DISTRIBUTIONS:
            raise DataError(f"{p}: unknown distribution {kind!r} for {name}: choose one of "
                            f"{', '.join(TOML_DISTRIBUTIONS)}")
        kwargs = {k: v for k, v in spec.items() if k != "dist"}
        bad = [k for k, v in kwargs.items()
               if isinstance(v, bool) or not isinstance(v, (int, float))]
        if bad:
            raise DataError(f"{p}: arguments of {name} must be numbers, got {bad}")
        try:
            d = getattr(dist, kind)(**{k: float(v) for k, v in kwargs.items()},
                                    validate_args=True)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{p}: bad arguments for {kind} prior of {name}: "
                            f"{str(exc).splitlines()[0]}") from None
        out[name] = d
    return out
