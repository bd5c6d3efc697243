"""Artefacts on disk: ``fit.json`` with the parameter draws (``draws.parquet``) and, for a
Bayesian fit, ``posterior.nc``, written and read here (:func:`write_fit` / :func:`read_fit`), and
strict JSON written atomically (:func:`write_json`). The analysis artefacts (critical.json,
backtest.json, optimal.json, suggest.json) are written and read in :mod:`lawfit.io.results` on
top of these. Reading a fit directory back gives a :class:`~lawfit.result.FitResult` whose
predictions equal the original's; everything read is checked as data, never evaluated.

Files are written atomically (:func:`lawfit.io.files.atomic_write`); an existing artefact is never
overwritten unless asked, and output directories are checked before any work (:func:`prepare_out`,
:func:`check_out_dir`, :func:`prepare_out_file`).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from lawfit import __version__
from lawfit.errors import DataError
from lawfit.io.files import atomic_write
from lawfit.objectives import make_objective
from lawfit.report import at_floor
from lawfit.result import FitResult, GroupFit, Status
from lawfit.userlaw import for_artefact, provenance

__all__ = ["atomic_write", "check_fit_doc", "check_out_dir", "fit_dict", "jsonable", "load_fit",
           "prepare_out", "prepare_out_file", "read_fit", "write_fit", "write_json"]


def _num(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def jsonable(obj):
    """``obj`` with numpy scalars as Python numbers, non-finite floats and pd.NA as None, tuples
    as lists and keys as text: what :func:`json.dump` writes as strict JSON."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(obj)
    if obj is pd.NA:
        return None
    return obj


def fit_dict(result: FitResult) -> dict:
    """The ``fit.json`` document."""
    groups = []
    for g in result.groups:
        iv = g.interval(result.level)
        params = {}
        for j, name in enumerate(result.law.params):
            params[name] = {"estimate": _num(g.estimate[j]),
                            "lo": _num(iv[0][j]) if iv else None,
                            "hi": _num(iv[1][j]) if iv else None}
            if name in g.frozen:
                params[name]["frozen"] = True
            if at_floor(g, name, g.estimate[j]):
                params[name]["at_bound"] = True      # effectively 0: the data support no value
        entry = {"key": jsonable(g.key), "n_points": g.n_points, "status": g.status,
                 "objective_value": _num(g.objective_value), "params": params,
                 "interval": {"level": result.level, "method": g.interval_method,
                              "draws": int(len(g.draws)), "status": g.interval_status},
                 "ranges": {r: list(v) for r, v in g.ranges.items()},
                 "warnings": list(g.warnings),
                 "info": jsonable({k: v for k, v in g.info.items() if k != "fit_quality"})}
        if "diagnostics" in g.info:
            entry["diagnostics"] = jsonable(g.info["diagnostics"])
        if "fit_quality" in g.info:
            entry["fit_quality"] = jsonable(g.info["fit_quality"])
        groups.append(entry)
    user_law = provenance(result.law)
    return {"lawfit_version": __version__, "law": result.law.name, "formula": result.law.formula,
            **({"law_source": user_law} if user_law else {}),
            "objective": result.objective.as_dict(), "fitter": result.fitter,
            "data": jsonable(result.source), "columns": result.columns, "by": list(result.by),
            "settings": jsonable(result.settings), "groups": groups}


def _run_files(directory: Path, ours=()) -> list[Path]:
    """The run rows of a runs-table directory (what :func:`lawfit.read_runs` would read)."""
    if (directory / "fit.json").is_file():      # a lawfit artefact directory, not a sweep's
        return []
    try:
        return [f for f in directory.glob("*.parquet")
                if not f.name.startswith(".") and f.name not in (*ours, "draws.parquet")]
    except OSError:
        return []


def _check_writable(directory: Path, what: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".lawfit-write-check.")
    except OSError as exc:
        raise DataError(f"cannot write into {what} {directory}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(tmp)


def prepare_out(out: str | Path, names, overwrite: bool = False, *, runs=None,
                check_rows: bool = True) -> Path:
    """Check and create an output directory before any work is done.

    Refuses (DataError) an existing artefact unless ``overwrite``, a path whose parent is a file,
    a place that cannot be written, and a sweep's runs directory (``runs``, or any directory that
    holds run rows): artefacts written there would be read back as runs.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} exists and is not a directory")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise DataError(f"--out {out}: {parent} is a file, not a directory")
    if runs is not None and Path(runs).is_dir() and out.exists() \
            and out.resolve() == Path(runs).resolve():
        raise DataError(f"--out {out} is the runs directory being read: artefacts written there "
                        "would be read back as runs; choose another directory")
    rows = _run_files(out, ours=names) if out.is_dir() and check_rows else []
    if rows:
        raise DataError(f"--out {out} holds run rows ({rows[0].name} and {len(rows) - 1} more): "
                        "it is a sweep's runs directory, and artefacts written there would be "
                        "read back as runs; choose another directory")
    clash = [n for n in names if (out / n).exists()]
    if clash and not overwrite:
        raise DataError(f"{out / clash[0]} exists: choose another --out or pass --overwrite")
    _make_dir(out, "--out")
    return out


def _make_dir(directory: Path, what: str) -> None:
    """Create ``directory`` (and missing parents) and check that a file can be written there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {what} {directory}: {exc.strerror or exc}") from None
    _check_writable(directory, what)


def check_out_dir(out: str | Path, names, overwrite: bool = False, *, runs=None) -> Path:
    """:func:`prepare_out`'s checks without leaving anything behind: directories it had to
    create to test that the place is writable are removed again. For checking before long work
    whose own input checks may still fail."""
    out = Path(out)
    missing = [p for p in (out, *out.parents) if not p.exists()]
    try:
        return prepare_out(out, names, overwrite, runs=runs)
    finally:
        for p in missing:          # deepest first; only the empty directories made here
            try:
                p.rmdir()
            except OSError:
                break


def prepare_out_file(out: str | Path, overwrite: bool = False) -> Path:
    """Check an output file's place before any work is done: not existing (unless
    ``overwrite``), a writable directory, and (for a .parquet table) not a sweep's runs
    directory, where the table would be read back as runs."""
    out = Path(out)
    if out.is_dir():
        raise DataError(f"--out {out} is a directory: give a file name")
    if out.exists() and not overwrite:
        raise DataError(f"{out} exists: choose another --out or pass --overwrite")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise DataError(f"--out {out}: {parent} is a file, not a directory")
    if out.suffix == ".parquet" and out.parent.is_dir():
        rows = _run_files(out.parent, ours=(out.name,))
        if rows:
            raise DataError(f"--out {out} is inside a sweep's runs directory ({rows[0].name} "
                            "and others): the table would be read back as runs; choose another "
                            "directory")
    missing = [p for p in out.parents if not p.exists()]
    try:
        _make_dir(out.parent, "the directory of --out")
    finally:
        for p in missing:          # made only to test the place; the writer makes it again
            try:
                p.rmdir()
            except OSError:
                break
    return out


def write_json(obj: dict, path: str | Path) -> Path:
    """Write ``obj`` (made :func:`jsonable`) as indented strict JSON to ``path``, atomically."""
    doc = jsonable(obj)

    def w(tmp):
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=2, allow_nan=False)
            fh.write("\n")
    return atomic_write(path, w)


def write_fit(result: FitResult, out: str | Path, overwrite: bool = False) -> Path:
    """Write ``fit.json`` and ``draws.parquet`` into directory ``out``, and for a Bayesian fit the
    arviz posteriors of every group into ``posterior.nc`` (NetCDF, one node per group)."""
    posteriors = []          # one per fitted problem: the subsets of a joint fit share one
    joint = (result.settings or {}).get("joint")
    for g in result.groups:
        if g.posterior is not None and all(g.posterior is not p for _, p in posteriors):
            posteriors.append(({k: v for k, v in g.key.items() if k != joint}, g.posterior))
    names = ["fit.json", "draws.parquet"] + (["posterior.nc"] if posteriors else [])
    out = prepare_out(out, names, overwrite)
    draws = result.draws
    atomic_write(out / "draws.parquet", lambda tmp: draws.to_parquet(tmp, index=False))
    if posteriors:
        from lawfit.io.posterior import write_posteriors
        atomic_write(out / "posterior.nc", lambda tmp: write_posteriors(posteriors, tmp))
    else:
        (out / "posterior.nc").unlink(missing_ok=True)   # a stale posterior of an earlier fit
    write_json(fit_dict(result), out / "fit.json")
    return out


_STATUSES = frozenset(v for k, v in vars(Status).items() if k.isupper() and isinstance(v, str))


def _bad(fj, what: str) -> DataError:
    return DataError(f"{fj} is not a valid lawfit fit.json: {what} (a fit.json is data: it is "
                     "checked, never run; write it again with lawfit fit --out)")


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_scalar(v) -> bool:
    return v is None or isinstance(v, (str, bool)) or _is_num(v)


def check_fit_doc(doc, fj="fit.json", law=None):
    """Validate a ``fit.json`` document's structure and types strictly (DataError if anything is
    off) and return its :class:`~lawfit.laws.Law` (a user law only as given again in ``law``,
    never imported from the document); the stored ``where`` expression is parsed and its tree
    validated, never evaluated."""
    from lawfit.expr import Expr, parse
    from lawfit.table import check_selection_record
    if not isinstance(doc, dict):
        raise _bad(fj, "the document is not a JSON object")
    for k in ("law", "objective", "fitter", "columns", "by", "settings", "data", "groups"):
        if k not in doc:
            raise _bad(fj, f"no {k!r}")
    if not isinstance(doc["law"], str):
        raise _bad(fj, "'law' is not a name")
    if not isinstance(doc.get("law_source", {}), dict):
        raise _bad(fj, "'law_source' must be an object")
    law = for_artefact(doc, law)
    obj = doc["objective"]
    if not (isinstance(obj, dict) and isinstance(obj.get("name"), str)
            and (obj.get("delta") is None or _is_num(obj.get("delta")))):
        raise _bad(fj, "'objective' needs a name and a numeric delta")
    if doc["fitter"] not in ("lsq", "bayes"):
        raise _bad(fj, f"unknown fitter {_short(doc['fitter'])}")
    cols = doc["columns"]
    if not (isinstance(cols, dict) and all(isinstance(k, str) and isinstance(v, str)
                                           for k, v in cols.items())
            and all(r in cols for r in (*law.variables, "y"))):
        raise _bad(fj, f"'columns' must map {', '.join((*law.variables, 'y'))} to column names")
    if not (isinstance(doc["by"], list) and all(isinstance(c, str) for c in doc["by"])):
        raise _bad(fj, "'by' must be a list of column names")
    if not isinstance(doc["data"], dict):
        raise _bad(fj, "'data' must be an object")
    settings = doc["settings"]
    if not isinstance(settings, dict):
        raise _bad(fj, "'settings' must be an object")
    where, tree = settings.get("where"), settings.get("where_tree")
    try:
        if where is not None:
            if not isinstance(where, str):
                raise DataError("settings.where is not text")
            parsed = parse(where)
            if tree is not None and Expr.from_json(tree) != parsed:
                raise DataError("settings.where and settings.where_tree disagree")
        elif tree is not None:
            raise DataError("settings.where_tree without settings.where")
        if settings.get("where_rows") is not None:
            check_selection_record(settings["where_rows"])
    except DataError as exc:
        raise _bad(fj, str(exc)) from None
    groups = doc["groups"]
    if not isinstance(groups, list):
        raise _bad(fj, "'groups' must be a list")
    for i, g in enumerate(groups):
        where_g = f"group {i + 1}"
        if not isinstance(g, dict):
            raise _bad(fj, f"{where_g} is not an object")
        if not (isinstance(g.get("key"), dict) and all(_is_scalar(v) for v in g["key"].values())):
            raise _bad(fj, f"{where_g}: 'key' must map columns to plain values")
        n = g.get("n_points")
        if not (isinstance(n, int) and not isinstance(n, bool) and n > 0):
            raise _bad(fj, f"{where_g}: 'n_points' must be a positive count")
        if g.get("status") not in _STATUSES:
            raise _bad(fj, f"{where_g}: unknown status {_short(g.get('status'))}")
        ov = g.get("objective_value")
        if not (ov is None or _is_num(ov)):
            raise _bad(fj, f"{where_g}: 'objective_value' is not a number")
        params = g.get("params")
        if not (isinstance(params, dict) and all(
                isinstance(params.get(p), dict) and _is_num(params[p].get("estimate"))
                and all(params[p].get(b) is None or _is_num(params[p].get(b)) for b in ("lo", "hi"))
                for p in law.params)):
            raise _bad(fj, f"{where_g}: 'params' needs a finite estimate of each of "
                       f"{', '.join(law.params)}")
        iv = g.get("interval")
        if not (isinstance(iv, dict) and _is_num(iv.get("level")) and 0 < iv["level"] < 1
                and iv.get("method") in (None, "bootstrap", "posterior")
                and isinstance(iv.get("draws"), int) and not isinstance(iv["draws"], bool)
                and iv["draws"] >= 0):
            raise _bad(fj, f"{where_g}: 'interval' needs a level in (0, 1), a method and a "
                       "draw count")
        ranges = g.get("ranges")
        if not (isinstance(ranges, dict) and all(
                isinstance(ranges.get(r), list) and len(ranges[r]) == 2
                and all(_is_num(v) and v >= 0 for v in ranges[r]) for r in law.variables)):
            raise _bad(fj, f"{where_g}: 'ranges' needs [min, max] >= 0 of "
                       f"{', '.join(law.variables)}")
        if not (isinstance(g.get("warnings", []), list)
                and all(isinstance(w, str) for w in g.get("warnings", []))):
            raise _bad(fj, f"{where_g}: 'warnings' must be a list of text")
        if not isinstance(g.get("info", {}), dict):
            raise _bad(fj, f"{where_g}: 'info' must be an object")
        if not isinstance(g.get("fit_quality") or {}, dict):
            raise _bad(fj, f"{where_g}: 'fit_quality' must be an object")
    return law


def _short(v) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _read_draws(path: Path, law, doc) -> pd.DataFrame:
    """draws.parquet, checked: present whenever the fit has draws, readable, finite, and with as
    many draws per group as fit.json says."""
    want = sum(g["interval"]["draws"] for g in doc["groups"])
    if not path.exists():
        if want:
            raise DataError(f"{path} is missing: the fit's intervals come from its "
                            f"{want} draws; copy draws.parquet next to fit.json")
        return pd.DataFrame()
    try:
        draws = pd.read_parquet(path)
    except Exception as exc:    # pyarrow raises many kinds for corrupt or empty files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {path}: {first} (is it a complete parquet file?)") from None
    if want == 0:
        return pd.DataFrame()
    missing = [p for p in law.params if p not in draws.columns]
    if missing:
        raise DataError(f"{path} has no column(s) {', '.join(missing)}")
    values = draws[list(law.params)]
    if not all(pd.api.types.is_numeric_dtype(values[c]) for c in values.columns) \
            or not np.isfinite(values.to_numpy(np.float64)).all():
        raise DataError(f"{path}: parameter draws must be finite numbers")
    return draws


def read_fit(path: str | Path, law=None) -> FitResult:
    """Read a fit directory (or its fit.json) written by :func:`write_fit`. ``law``: the user law
    (object or ``MODULE:FUNCTION``) of a fit that records one; its source hash must match.

    Everything read is checked as data (:func:`check_fit_doc`, the draws' columns and counts);
    nothing stored in it is evaluated.
    """
    p = Path(path)
    fj = p / "fit.json" if p.is_dir() else p
    if not fj.is_file():
        raise DataError(f"no fit.json in {path}: give the --out directory of `lawfit fit`")
    try:
        doc = json.loads(fj.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{fj} is not a lawfit fit.json ({str(exc)[:80]})") from None
    law = check_fit_doc(doc, fj, law)
    obj = doc["objective"]
    objective = make_objective(obj["name"], obj.get("delta"))
    draws = _read_draws(fj.parent / "draws.parquet", law, doc)
    posteriors = []
    if (fj.parent / "posterior.nc").exists():
        from lawfit.io.posterior import read_posteriors
        posteriors = read_posteriors(fj.parent / "posterior.nc")
    groups = []
    for g in doc["groups"]:
        post = next((p for k, p in posteriors
                     if all(str(g["key"].get(c)) == str(v) for c, v in k.items())), None)
        est = np.array([g["params"][n]["estimate"] for n in law.params], dtype=np.float64)
        sel = draws
        for k, v in g["key"].items():
            if len(sel) and k in sel.columns:      # a blank group cell is null in both files
                sel = sel[sel[k].isna() if v is None else
                          (sel[k].astype(str) == str(v)) & sel[k].notna()]
        d = (sel[list(law.params)].to_numpy(np.float64) if len(sel)
             else np.zeros((0, law.n_params)))
        if len(d) != g["interval"]["draws"]:
            raise DataError(f"{fj.parent / 'draws.parquet'} holds {len(d)} draws of group "
                            f"{g['key']} but fit.json says {g['interval']['draws']}: the two files "
                            "do not belong together")
        groups.append(GroupFit(key=g["key"], law=law, n_points=g["n_points"], status=g["status"],
                               objective_value=(float("nan") if g["objective_value"] is None
                                                else g["objective_value"]),
                               estimate=est, draws=d, interval_method=g["interval"]["method"],
                               ranges={r: tuple(v) for r, v in g["ranges"].items()},
                               warnings=tuple(g.get("warnings", ())),
                               info=g.get("info", {}) | ({"fit_quality": g["fit_quality"]}
                                                         if g.get("fit_quality") else {}),
                               posterior=post))
    return FitResult(law=law, objective=objective, fitter=doc["fitter"], columns=doc["columns"],
                     by=tuple(doc["by"]), groups=tuple(groups), settings=doc["settings"],
                     source=doc["data"],
                     level=doc["groups"][0]["interval"]["level"] if doc["groups"] else 0.95)


load_fit = read_fit     # the name used before read_fit/write_fit were paired
