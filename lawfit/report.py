"""Artefacts on disk and tables for people: ``fit.json`` (schema in DESIGN.md), the parameter draws
as parquet, and the text table the command line prints. Loading a fit directory back gives a
:class:`~lawfit.result.FitResult` whose predictions equal the original's.

Files are written atomically (temporary file, then rename); an existing artefact is never
overwritten unless asked.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .data import DataError
from .userlaw import for_artefact, provenance
from .objectives import make_objective
from .result import FitResult, GroupFit


def _num(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
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
        entry = {"key": _jsonable(g.key), "n_points": g.n_points, "status": g.status,
                 "objective_value": _num(g.objective_value), "params": params,
                 "interval": {"level": result.level, "method": g.interval_method,
                              "draws": int(len(g.draws)), "status": g.interval_status},
                 "ranges": {r: list(v) for r, v in g.ranges.items()},
                 "warnings": list(g.warnings),
                 "info": _jsonable({k: v for k, v in g.info.items() if k != "fit_quality"})}
        if "diagnostics" in g.info:
            entry["diagnostics"] = _jsonable(g.info["diagnostics"])
        if "fit_quality" in g.info:
            entry["fit_quality"] = _jsonable(g.info["fit_quality"])
        groups.append(entry)
    user_law = provenance(result.law)
    return {"lawfit_version": __version__, "law": result.law.name, "formula": result.law.formula,
            **({"law_source": user_law} if user_law else {}),
            "objective": result.objective.as_dict(), "fitter": result.fitter,
            "data": _jsonable(result.source), "columns": result.columns, "by": list(result.by),
            "settings": _jsonable(result.settings), "groups": groups}


def atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)    # mkstemp makes 0600; give the user's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare_out(out: str | Path, names, overwrite: bool = False) -> Path:
    """Create ``out`` if needed; refuse (DataError) to replace existing artefacts unless asked."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} exists and is not a directory")
    clash = [n for n in names if (out / n).exists()]
    if clash and not overwrite:
        raise DataError(f"{out / clash[0]} exists: choose another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(obj: dict, path: Path) -> None:
    def w(tmp):
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2)
            fh.write("\n")
    atomic_write(path, w)


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
        from .bayes import write_posteriors
        atomic_write(out / "posterior.nc", lambda tmp: write_posteriors(posteriors, tmp))
    else:
        (out / "posterior.nc").unlink(missing_ok=True)   # a stale posterior of an earlier fit
    write_json(fit_dict(result), out / "fit.json")
    return out


def load_fit(path: str | Path, law=None) -> FitResult:
    """Read a fit directory (or its fit.json) written by :func:`write_fit`. ``law``: the user law
    (object or ``MODULE:FUNCTION``) of a fit that records one; its source hash must match."""
    p = Path(path)
    fj = p / "fit.json" if p.is_dir() else p
    if not fj.exists():
        raise DataError(f"no fit.json in {path}: give the --out directory of `lawfit fit`")
    try:
        doc = json.loads(fj.read_text())
        law = for_artefact(doc, law)
        obj = doc["objective"]
        objective = make_objective(obj["name"], obj.get("delta"))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{fj} is not a lawfit fit.json ({exc})") from None
    draws_path = fj.parent / "draws.parquet"
    draws = pd.read_parquet(draws_path) if draws_path.exists() else pd.DataFrame()
    posteriors = []
    if (fj.parent / "posterior.nc").exists():
        from .bayes import read_posteriors
        posteriors = read_posteriors(fj.parent / "posterior.nc")
    groups = []
    for g in doc["groups"]:
        post = next((p for k, p in posteriors
                     if all(str(g["key"].get(c)) == str(v) for c, v in k.items())), None)
        est = np.array([g["params"][n]["estimate"] for n in law.params], dtype=np.float64)
        sel = draws
        for k, v in g["key"].items():
            if len(sel) and k in sel.columns:
                sel = sel[sel[k].astype(str) == str(v)]
        d = (sel[list(law.params)].to_numpy(np.float64) if len(sel)
             else np.zeros((0, law.n_params)))
        groups.append(GroupFit(key=g["key"], law=law, n_points=g["n_points"], status=g["status"],
                               objective_value=g["objective_value"] or float("nan"),
                               estimate=est, draws=d, interval_method=g["interval"]["method"],
                               ranges={r: tuple(v) for r, v in g["ranges"].items()},
                               warnings=tuple(g.get("warnings", ())),
                               info=g.get("info", {}) | ({"fit_quality": g["fit_quality"]}
                                                         if g.get("fit_quality") else {}),
                               posterior=post))
    return FitResult(law=law, objective=objective, fitter=doc["fitter"], columns=doc["columns"],
                     by=tuple(doc["by"]), groups=tuple(groups), settings=doc["settings"],
                     source=doc["data"], level=doc["groups"][0]["interval"]["level"] if doc["groups"] else 0.95)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.4g}"


def frozen_label(g: GroupFit) -> str:
    """How a frozen parameter is shown instead of an interval."""
    src = (g.info or {}).get("frozen_from")
    return f"(frozen: {src})" if src else "(frozen)"


def at_floor(g: GroupFit, name: str, value) -> bool:
    """True when scale parameter ``name`` sits at the solver's floor (within a factor e^2, as
    the ``at_bound`` status): the data support no positive value, it is effectively 0."""
    floor = (g.info or {}).get("scale_floor") if isinstance(g.info, dict) else None
    if floor is None or name not in g.law.log_params or value is None:
        return False
    return bool(math.isfinite(value) and value <= floor * math.exp(2.0))


def _fmt_param(g: GroupFit, name: str, v) -> str:
    return "0 (at bound)" if at_floor(g, name, v) else _fmt(v)


def quality_line(fq: dict) -> str:
    """One line of a group's fit_quality for the printed table."""
    parts = [f"fit quality: residual RMSE {fq['rmse']:.3g} ({fq['space']})"]
    w = fq.get("max_std_residual")
    if w:
        parts.append(f"largest standardized residual {w['value']:.2g}")
    s = fq.get("seeds")
    if s:
        parts.append(f"residual/seed scatter {s['scatter_ratio']:.2g}")
    tests = [f"{k} p={v['p']:.2g}" for k, v in (fq.get("structure") or {}).items() if v]
    if tests:
        parts.append("sign-runs test " + ", ".join(tests))
    return "; ".join(parts) + (" -> POOR FIT" if fq.get("poor_fit") else "")


def params_table(result: FitResult) -> str:
    """Readable table: one line per group and parameter, estimate and interval."""
    lines = []
    pct = f"{result.level:.0%}"
    for g in result.groups:
        key = ", ".join(f"{k}={v}" for k, v in g.key.items()) or "(all runs)"
        how = (f"{pct} {g.interval_method} interval, {len(g.draws)} draws"
               if g.interval_status == "ok" else
               f"{g.interval_method} interval withheld (see the warning)"
               if g.interval_status == "withheld" else "no interval (use --bootstrap N)")
        lines.append(f"{key}: {g.n_points} runs, {g.status}, objective "
                     f"{g.objective_value:.10g}; {how}")
        iv = g.interval(result.level)
        for j, name in enumerate(result.law.params):
            if name in g.frozen:
                lines.append(f"  {name:<8}{_fmt(g.estimate[j]):>12}   {frozen_label(g)}")
                continue
            lo, hi = (iv[0][j], iv[1][j]) if iv else (None, None)
            lines.append(f"  {name:<8}{_fmt_param(g, name, g.estimate[j]):>12}   "
                         f"[{_fmt_param(g, name, lo)}, {_fmt_param(g, name, hi)}]")
        fq = g.info.get("fit_quality") if isinstance(g.info, dict) else None
        if fq:
            lines.append("  " + quality_line(fq))
        diag = g.info.get("diagnostics") if isinstance(g.info, dict) else None
        if diag:
            lines.append("  diagnostics: " + ", ".join(
                f"{k} {_fmt(v) if isinstance(v, float) else v}" for k, v in diag.items()))
        for w in g.warnings:
            lines.append(f"  warning: {w}")
    return "\n".join(lines)
