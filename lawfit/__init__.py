"""lawfit: fit scaling laws to training runs and extrapolate them with honest uncertainty.

The public API is imported on first use (module ``__getattr__``): ``import lawfit`` costs
nothing, and ``lawfit.fit`` imports the fitting code (and jax) when it is first touched.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"      # the one place: pyproject.toml reads it (tool.setuptools.dynamic)

# public name -> the module that defines it (a new public name: here, in __all__ and below)
_API = {
    "DataError": "lawfit.errors",
    "compare": "lawfit.analysis.compare",
    "FitResult": "lawfit.result", "GroupFit": "lawfit.result", "Status": "lawfit.result",
    "LAWS": "lawfit.laws", "Law": "lawfit.laws", "get_law": "lawfit.laws", "law": "lawfit.laws",
    "Objective": "lawfit.objectives", "make_objective": "lawfit.objectives",
    "fit": "lawfit.fit",
    "optimal": "lawfit.analysis.optimal",
    "read_runs": "lawfit.io.runs",
    "suggest": "lawfit.analysis.suggest",
}

__all__ = ["DataError", "FitResult", "GroupFit", "LAWS", "Law", "Objective", "Status", "compare",
           "fit", "get_law", "law", "make_objective", "optimal", "read_runs", "suggest"]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'lawfit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value        # later look-ups do not come here again
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """``lawfit.fit`` is the function, as with an eager ``from .fit import fit``: when the
    submodule ``lawfit/fit.py`` is first imported (by anyone), Python would bind the package
    attribute ``fit`` to the module; the function of the same name is bound instead."""

    def __setattr__(self, name: str, value) -> None:
        if (_API.get(name) == f"{__name__}.{name}" and isinstance(value, types.ModuleType)
                and value.__name__ == f"{__name__}.{name}"):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:
    from lawfit.analysis.compare import compare
    from lawfit.analysis.optimal import optimal
    from lawfit.analysis.suggest import suggest
    from lawfit.errors import DataError
    from lawfit.fit import fit
    from lawfit.io.runs import read_runs
    from lawfit.laws import LAWS, Law, get_law, law
    from lawfit.objectives import Objective, make_objective
    from lawfit.result import FitResult, GroupFit, Status
