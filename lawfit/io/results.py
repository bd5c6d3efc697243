"""The analysis artefacts on disk, each written and read back here, side by side:

- ``critical.json`` and ``superiority.csv`` (:class:`~lawfit.analysis.critical.CriticalResult`),
- ``backtest.json``, ``backtest_runs.csv`` and ``fits/LAW/`` (:class:`~lawfit.analysis.backtest.Backtest`),
- ``optimal.json`` (:class:`~lawfit.analysis.optimal.OptimalResult`),
- ``suggest.json`` (:class:`~lawfit.analysis.suggest.Suggestion`).

Every ``write_*`` takes a result and a directory, refuses to replace an existing artefact unless
``overwrite`` (:func:`lawfit.io.artefacts.prepare_out`) and writes each file atomically
(:func:`lawfit.io.files.atomic_write`); it returns the paths written. Every ``read_*`` takes
that directory (or the JSON file itself) and gives the result back, its structure checked as data
first (nothing read is ever evaluated): a malformed file is a one-line :class:`DataError`.
What a document does not store (a critical result's per-draw roots, a suggestion's computation)
is not restored.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from lawfit.errors import DataError
from lawfit.io.artefacts import prepare_out, read_fit, write_fit, write_json
from lawfit.io.files import atomic_write

__all__ = ["write_critical", "read_critical", "read_critical_doc", "write_backtest",
           "read_backtest", "write_optimal", "read_optimal", "write_suggestion",
           "read_suggestion", "invalid_artefact", "checked_artefact", "CRITICAL_FILES",
           "BACKTEST_FILES", "OPTIMAL_FILES", "SUGGEST_FILES"]

CRITICAL_FILES = ("critical.json", "superiority.csv")
BACKTEST_FILES = ("backtest.json", "backtest_runs.csv")
OPTIMAL_FILES = ("optimal.json",)
SUGGEST_FILES = ("suggest.json",)


# --- shared ------------------------------------------------------------------------------------

def _json_path(path: str | Path, name: str) -> Path:
    p = Path(path)
    return p / name if p.is_dir() else p


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"no {path.name} in {path.parent}: give the --out directory of the "
                        "command that wrote it")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{path} is not valid JSON ({' '.join(str(exc).split())[:80]})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path} is not a JSON object")
    return doc


def _load(path: str | Path, name: str) -> tuple[Path, dict]:
    """The JSON document ``name`` (``path``: it, or its directory) and the file it came from."""
    path = _json_path(path, name)
    return path, _read_json(path)


@contextmanager
def checked_artefact(path: Path) -> Iterator[None]:
    """A context in which the artefact at ``path`` is read or drawn: a failed check of its
    structure (a KeyError, TypeError, ValueError or IndexError) leaves it as the one-line
    :func:`invalid_artefact` error for ``path``.

    Parameters
    ----------
    path : Path
        The artefact the work inside reads.
    """
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise invalid_artefact(path, exc) from None


def _write_document(doc: dict, out: str | Path, files: tuple[str, ...], overwrite: bool) -> list[Path]:
    """An artefact of one JSON document, ``files[0]``, written into directory ``out``."""
    out = prepare_out(out, files, overwrite)
    write_json(doc, out / files[0])
    return [out / files[0]]


def invalid_artefact(path: Path, exc: Exception) -> DataError:
    """The one-line error for an artefact at ``path`` whose content failed a check (``exc``)."""
    what = f"missing or malformed {exc}" if isinstance(exc, KeyError) else \
        " ".join(str(exc).split())[:100] or type(exc).__name__
    return DataError(f"{path} is not a valid lawfit artefact: {what} (it is data, checked and "
                     "never run; write it again with the command that made it)")


def _num(v, none: float = math.nan) -> float:
    """A JSON number back to float (``null``: ``none``)."""
    if v is None:
        return none
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"expected a number, got {v!r}")
    return float(v)


def _frame(records) -> pd.DataFrame:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise TypeError("expected a list of records")
    return pd.DataFrame(records).replace({None: np.nan}) if records else pd.DataFrame()


# --- critical ----------------------------------------------------------------------------------

def write_critical(res, out: str | Path, overwrite: bool = False) -> list[Path]:
    """Write ``critical.json`` and ``superiority.csv`` into directory ``out``.

    Parameters
    ----------
    res : lawfit.analysis.critical.CriticalResult
        The critical data sizes.
    out : str or Path
        The directory (created if missing).
    overwrite : bool
        Replace existing files of these names.

    Returns
    -------
    list of Path
        The files written.
    """
    out = prepare_out(out, CRITICAL_FILES, overwrite)
    write_json(res.to_dict(), out / "critical.json")
    atomic_write(out / "superiority.csv", lambda tmp: res.superiority.to_csv(tmp, index=False))
    return [out / n for n in CRITICAL_FILES]


def read_critical_doc(path: str | Path) -> dict:
    """The critical.json document (``path``: it, or its directory), its structure checked.

    Returns
    -------
    dict
        The document as written by :func:`write_critical`.
    """
    path, doc = _load(path, "critical.json")
    between = doc.get("between")
    search = doc.get("search")
    ok = (isinstance(between, list) and len(between) == 2
          and all(isinstance(m, str) for m in between)
          and isinstance(doc.get("rows"), list) and all(isinstance(r, dict) for r in doc["rows"])
          and isinstance(search, dict)
          and all(isinstance(search.get(k), (int, float)) and not isinstance(search.get(k), bool)
                  and search[k] > 0 for k in ("d_min", "d_max"))
          and isinstance(doc.get("level"), (int, float)) and 0 < doc["level"] < 1
          and isinstance(doc.get("d_name"), str) and isinstance(doc.get("x_name"), (str, type(None)))
          and isinstance(doc.get("superiority", []), (list, type(None))))
    if not ok:
        raise DataError(f"{path} is not a valid critical.json: it needs 'between' (two methods), "
                        "'rows', 'search' (d_min, d_max), 'level' and 'd_name' (write it again "
                        "with lawfit critical --out)")
    return doc


def read_critical(path: str | Path):
    """A :class:`~lawfit.analysis.critical.CriticalResult` from critical.json (``path``: it, or
    its directory). Interval bounds past the searched range come back as 0 / inf, missing ones
    as NaN, as :func:`~lawfit.analysis.critical.critical` made them; per-draw roots are not
    stored.

    Returns
    -------
    CriticalResult
    """
    from lawfit.analysis.critical import CriticalResult, CriticalRow, Crossing
    path = _json_path(path, "critical.json")
    doc = read_critical_doc(path)
    a, b = doc["between"]
    with checked_artefact(path):
        rows = []
        for r in doc["rows"]:
            crossings = []
            for c in r["crossings"]:
                lo = 0.0 if c["lo_beyond_range"] else _num(c["lo"])
                hi = math.inf if c["hi_beyond_range"] else _num(c["hi"])
                crossings.append(Crossing(
                    d=_num(c["d"]), lo=lo, hi=hi, better_below=str(c["better_below"]),
                    better_above=str(c["better_above"]), extrapolated=bool(c["extrapolated"]),
                    p_exists=_num(c["p_exists"]), slope=_num(c["slope_dlogd"]),
                    direction=1 if c["better_above"] == b else -1))
            if not isinstance(r["key"], dict) or not isinstance(r["d_measured"], dict):
                raise TypeError("'key' and 'd_measured' must be objects")
            rows.append(CriticalRow(
                key=dict(r["key"]), x=_num(r["x"]), x_name=str(r["x_name"]),
                crossings=tuple(crossings),
                p_no_crossing=None if r["p_no_crossing"] is None else _num(r["p_no_crossing"]),
                n_draws=int(r["n_draws"]), better_everywhere=r["better_everywhere"],
                x_extrapolated=bool(r["x_extrapolated"]),
                d_measured={str(k): [_num(v[0]), _num(v[1])] for k, v in r["d_measured"].items()},
                closed_form=r["closed_form"]))
        skipped = doc.get("skipped") or []
        if not all(isinstance(s, dict) for s in skipped):
            raise TypeError("'skipped' must be a list of objects")
        return CriticalResult(between=(a, b), x_name=doc["x_name"], d_name=doc["d_name"],
                              rows=tuple(rows), superiority=_frame(doc.get("superiority") or []),
                              level=float(doc["level"]), search=dict(doc["search"]),
                              method_column=str(doc.get("method_column", "method")),
                              skipped=tuple(dict(s) for s in skipped))


# --- backtest ----------------------------------------------------------------------------------

def write_backtest(bt, out: str | Path, overwrite: bool = False) -> list[Path]:
    """Write ``backtest.json``, ``backtest_runs.csv`` and each law's fit (``fits/LAW/``) into
    directory ``out``.

    Parameters
    ----------
    bt : lawfit.analysis.backtest.Backtest
        The backtest.
    out : str or Path
        The directory (created if missing).
    overwrite : bool
        Replace existing files of these names.

    Returns
    -------
    list of Path
        The files and fit directories written.
    """
    out = prepare_out(out, BACKTEST_FILES, overwrite)
    for law in bt.fits:        # a law's name becomes a directory name: refuse a path
        if law in (".", "..") or "/" in law or "\\" in law:
            raise DataError(f"law name {law!r} cannot name a directory under fits/")
    write_json(bt.to_dict(), out / "backtest.json")
    atomic_write(out / "backtest_runs.csv", lambda t: bt.runs.to_csv(t, index=False))
    fits = [write_fit(res, out / "fits" / law, overwrite=overwrite)
            for law, res in bt.fits.items()]
    return [out / n for n in BACKTEST_FILES] + fits


def read_backtest(path: str | Path):
    """A :class:`~lawfit.analysis.backtest.Backtest` from a directory written by
    :func:`write_backtest` (files and structure checked).

    Returns
    -------
    Backtest
    """
    from lawfit.analysis.backtest import Backtest
    path = Path(path)
    if path.name == "backtest.json" and path.is_file():
        path = path.parent
    for name in BACKTEST_FILES:
        if not (path / name).is_file():
            raise DataError(f"{path / name} is missing: a backtest directory holds backtest.json, "
                            "backtest_runs.csv and fits/ (write it again with lawfit backtest "
                            "--out)")
    doc = _read_json(path / "backtest.json")
    try:
        runs = pd.read_csv(path / "backtest_runs.csv")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path / 'backtest_runs.csv'}: "
                        f"{' '.join(str(exc).split())[:100]}") from None
    with checked_artefact(path / "backtest.json"):
        laws = doc["laws"]
        if not (isinstance(laws, list) and laws and all(isinstance(x, str) for x in laws)):
            raise ValueError("'laws' must be a list of law names")
        for law in laws:
            if not (path / "fits" / law).is_dir() or law in (".", "..") or "/" in law:
                raise ValueError(f"no fit directory fits/{law}")
        fits = {law: read_fit(path / "fits" / law) for law in laws}
        if not (isinstance(doc["summary"], list) and isinstance(doc["columns"], dict)
                and isinstance(doc["group_columns"], list)
                and isinstance(doc["level"], (int, float)) and 0 < doc["level"] < 1):
            raise ValueError("'summary', 'columns', 'group_columns' or 'level' has the wrong type")
        holdout = doc["holdout"]
        return Backtest(laws=tuple(laws), holdout=holdout,
                        summary=pd.DataFrame(doc["summary"]), runs=runs, fits=fits,
                        columns=doc["columns"], group_columns=tuple(doc["group_columns"]),
                        level=doc["level"], source=doc.get("data") or {})


# --- optimal -----------------------------------------------------------------------------------

def write_optimal(opt, out: str | Path, overwrite: bool = False) -> list[Path]:
    """Write ``optimal.json`` into directory ``out``.

    Parameters
    ----------
    opt : lawfit.analysis.optimal.OptimalResult
        The compute-optimal allocations.
    out : str or Path
        The directory (created if missing).
    overwrite : bool
        Replace an existing optimal.json.

    Returns
    -------
    list of Path
        The file written.
    """
    return _write_document(opt.as_dict(), out, OPTIMAL_FILES, overwrite)


def read_optimal(path: str | Path):
    """An :class:`~lawfit.analysis.optimal.OptimalResult` from optimal.json (``path``: it, or its
    directory), its structure checked.

    Returns
    -------
    OptimalResult
    """
    from lawfit.analysis.optimal import OptimalResult
    path, doc = _load(path, "optimal.json")
    with checked_artefact(path):
        rows, exps = doc["rows"], doc["exponents"]
        if not (isinstance(rows, list) and isinstance(exps, list)
                and all(isinstance(r, dict) and isinstance(r["key"], dict) for r in rows + exps)):
            raise TypeError("'rows' and 'exponents' must be lists of objects with a 'key'")
        k = _num(doc["flops_per_param_token"])
        level = _num(doc["level"])
        if not (k > 0 and 0 < level < 1):
            raise ValueError("'flops_per_param_token' must be positive and 'level' in (0, 1)")
        return OptimalResult(rows=rows, exponents=exps, flops_per_param_token=k, level=level,
                             columns=dict(doc.get("columns") or {}),
                             source=dict(doc.get("data") or {}))


# --- suggest -----------------------------------------------------------------------------------

def write_suggestion(res, out: str | Path, overwrite: bool = False) -> list[Path]:
    """Write ``suggest.json`` into directory ``out``.

    Parameters
    ----------
    res : lawfit.analysis.suggest.Suggestion
        The suggested batch.
    out : str or Path
        The directory (created if missing).
    overwrite : bool
        Replace an existing suggest.json.

    Returns
    -------
    list of Path
        The file written.
    """
    return _write_document(res.to_dict(), out, SUGGEST_FILES, overwrite)


def read_suggestion(path: str | Path):
    """A :class:`~lawfit.analysis.suggest.Suggestion` from suggest.json (``path``: it, or its
    directory), its structure checked; ``null`` numbers come back as NaN.

    Returns
    -------
    Suggestion
    """
    from lawfit.analysis.suggest import Suggestion
    path, doc = _load(path, "suggest.json")
    with checked_artefact(path):
        cost = doc["cost"]
        iv = doc["interval_now"]
        if not (isinstance(cost, dict) and isinstance(iv, list) and len(iv) == 2
                and isinstance(doc["target"], dict) and isinstance(doc["settings"], dict)
                and isinstance(doc["noise_sd"], dict) and isinstance(doc["notes"], list)):
            raise TypeError("'cost', 'interval_now', 'target', 'settings', 'noise_sd' or "
                            "'notes' has the wrong type")
        n = doc["n"]
        if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
            raise TypeError("'n' must be a whole number or null")
        return Suggestion(target=doc["target"], unit=str(doc["unit"]),
                          width_now=_num(doc["width_now"]),
                          interval_now=(_num(iv[0]), _num(iv[1])),
                          estimate=_num(doc["estimate"]), runs=_frame(doc["runs"]),
                          candidates=_frame(doc["candidates"]),
                          cost_expr=str(cost["expression"]),
                          budget=None if cost["budget"] is None else _num(cost["budget"]), n=n,
                          level=_num(doc["level"]), settings=doc["settings"],
                          source=dict(doc.get("data") or {}),
                          noise={str(k): _num(v) for k, v in doc["noise_sd"].items()},
                          notes=tuple(str(x) for x in doc["notes"]))
