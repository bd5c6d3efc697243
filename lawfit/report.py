"""Tables for people: the text a command prints for a fit (parameters, intervals, fit quality)."""
from __future__ import annotations

import math

from .result import FitResult, GroupFit


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
