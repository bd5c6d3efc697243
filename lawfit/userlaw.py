"""Laws by name: a registered law, or a user's own as ``MODULE:FUNCTION``.

``MODULE:FUNCTION`` is code the user explicitly asked to run: MODULE is a Python file
(``my_laws.py``, ``path/to/my_laws.py``, or ``my_laws`` when ``my_laws.py`` exists in the working
directory) or an importable module name; FUNCTION must be decorated with :func:`lawfit.law`. The
law is named by the spec, and fit.json records its module, function and source hash
(:func:`provenance`). Loading a fit never imports anything by itself: commands that read a fit of
a user law take the same ``--law`` again, and :func:`check` compares the source hash.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

from lawfit.errors import DataError

from .laws import LAWS, Law, get_law

BUILTIN_MODULE = "lawfit.laws"


def resolve(spec: str | Law) -> Law:
    """The law named by ``spec``: a registered name or ``MODULE:FUNCTION``.

    Parameters
    ----------
    spec : str or Law
        ``rectified``, ``multiplicative``, ... or ``my_laws:rectified``; a Law is returned as is.

    Returns
    -------
    Law
        For ``MODULE:FUNCTION``, the user's law renamed to the spec (so that it cannot be taken
        for a registered law of the same name).
    """
    if isinstance(spec, Law):
        return spec
    if ":" not in spec:
        return get_law(spec)
    module, _, func = spec.rpartition(":")
    if not module or not func.isidentifier():
        raise DataError(f"--law {spec!r}: give MODULE:FUNCTION, e.g. my_laws:rectified")
    mod = _import(module, spec)
    obj = getattr(mod, func, None)
    if obj is None:
        raise DataError(f"--law {spec!r}: {module} has no {func!r}")
    if not isinstance(obj, Law):
        raise DataError(f"--law {spec!r}: {func} is not a law; decorate it with "
                        "@lawfit.law(params=..., variables=...)")
    if obj.fn is None:           # a built-in re-exported by the user's module
        return obj
    return replace(obj, name=spec, source=dict(obj.source or {}) | {"spec": spec, "module": module})


def _import(module: str, spec: str):
    path = Path(module if module.endswith(".py") else f"{module}.py")
    try:
        if path.is_file():
            name = f"lawfit_user_law_{abs(hash(str(path.resolve())))}"
            loader = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(loader)
            sys.modules[name] = mod
            loader.loader.exec_module(mod)
            return mod
        if module.endswith(".py") or "/" in module:
            raise DataError(f"--law {spec!r}: no file {path}")
        return importlib.import_module(module)
    except DataError:
        raise
    except ModuleNotFoundError as exc:
        raise DataError(f"--law {spec!r}: cannot import {module} ({exc}); give a file "
                        "path (my_laws.py) or an importable module") from None
    except Exception as exc:     # noqa: BLE001  the user's module failed: say so in one line
        raise DataError(f"--law {spec!r}: importing {module} failed: "
                        f"{type(exc).__name__}: {exc}") from None


def is_user_law(law: Law) -> bool:
    """A law that is not registered under its name (a user's own)."""
    return LAWS.get(law.name) is not law


def provenance(law: Law) -> dict | None:
    """What fit.json records of a user's law: spec, module, function and source sha256."""
    if not is_user_law(law) or law.source is None:
        return None
    spec = law.source.get("spec") or f"{law.source.get('module')}:{law.source.get('function')}"
    return {"spec": spec, "module": law.source.get("module"),
            "function": law.source.get("function"), "sha256": law.source.get("sha256")}


def for_artefact(doc: dict, given: str | Law | None) -> Law:
    """The law of a saved fit: its registered law by name, or the user law the caller gave again
    (``--law``), whose source hash must match the one recorded. Imports nothing by itself."""
    recorded = doc.get("law_source")
    name = doc["law"]
    if recorded is None:
        law = get_law(name) if given is None else resolve(given)
        if law.name != name:
            raise DataError(f"this fit is of law {name!r}, not {law.name!r}")
        return law
    if given is None:
        raise DataError(f"this fit is of the user law {recorded.get('spec', name)!r}: give "
                        f"--law {recorded.get('spec', name)} again (loading a fit never imports "
                        "code by itself)")
    law = resolve(given)
    have = (law.source or {}).get("sha256")
    if have != recorded.get("sha256"):
        raise DataError(f"the source of {recorded.get('spec', name)} has changed since this fit "
                        f"(sha256 {str(have)[:12]} now, {str(recorded.get('sha256'))[:12]} in "
                        "fit.json): refit, or restore the law's source")
    return law
