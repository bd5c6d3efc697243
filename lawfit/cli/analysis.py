"""``lawfit critical``, ``lawfit backtest`` and ``lawfit plot`` (registered by ``register``, listed
in ``lawfit.cli.main.COMMAND_MODULES``). Thin: each is one call into critical.py / backtest.py / plot.py.

``lawfit critical RUNS``: RUNS is a runs table, which is fitted here (the law per task x method,
``--bootstrap`` 200 resamples by default, or ``--recipe zhang2024``), or a directory written by
``lawfit fit --out`` (its fit.json and draws.parquet are used as they are, so a Bayesian fit's
posterior draws work the same way). With ``--out DIR`` it writes DIR/critical.json,
DIR/superiority.csv and, when it fitted, DIR/fit.json and DIR/draws.parquet.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lawfit.cli.common import (
    Reporter,
    add_command,
    add_data_arguments,
    check_plot_out,
    csv_list,
    fit_options,
    load,
    print_written,
)
from lawfit.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


def parse_at(values) -> dict | None:
    """``--at model_params=1e9,2e9 --at pretrain_tokens=84e9`` -> {column: [values]}; a token
    without ``=`` continues the previous column."""
    import numpy as np
    if not values:
        return None
    out: dict = {}
    for text in values:
        col = None
        for tok in [t.strip() for t in text.split(",") if t.strip()]:
            if "=" in tok:
                col, tok = (s.strip() for s in tok.split("=", 1))
            if col is None:
                raise DataError(f"--at expects COL=V1,V2,...; got {text!r}")
            try:
                v = float(tok)
            except ValueError:
                raise DataError(f"--at {text!r}: {tok!r} is not a number") from None
            if not (v > 0 and np.isfinite(v)):
                raise DataError(f"--at {text!r}: X values must be positive and finite")
            out.setdefault(col, []).append(v)
    return out


def _pair(text: str) -> tuple[str, str]:
    parts = csv_list(text) or []
    if len(parts) != 2 or parts[0] == parts[1]:
        raise DataError(f"--between expects two different methods, e.g. fmt,lora; got {text!r}")
    return parts[0], parts[1]


def _d_range(text: str) -> tuple[float, float]:
    import numpy as np
    try:
        lo, hi = (float(t) for t in text.split(","))
    except ValueError:
        raise DataError(f"--d-range expects LO,HI, e.g. 1,1e12; got {text!r}") from None
    if not (0 < lo < hi < np.inf):
        raise DataError(f"--d-range needs 0 < LO < HI, got {text!r}")
    return lo, hi


def _print_table(df: pd.DataFrame) -> None:
    import pandas as pd
    with pd.option_context("display.width", 220, "display.max_columns", 40,
                           "display.float_format", "{:.4g}".format):
        print(df.to_string(index=False))


# --- critical --------------------------------------------------------------------------------

def _critical_add(p):
    add_data_arguments(p)
    p.add_argument("--between", required=True, help="two methods, e.g. fmt,lora")
    p.add_argument("--at", action="append", default=None,
                   help="X values, e.g. model_params=1e9,2e9,4e9 (default: the measured X "
                   "values of both methods; for a fit directory, 5 values across its X range)")
    p.add_argument("--method-column", default="method", help="column naming the method")
    p.add_argument("--recipe", default=None, choices=["zhang2024"],
                   help="fit with the paper's two-stage joint procedure (column 'factor')")
    p.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap resamples when fitting here (default 200)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--d-range", default="1,1e12", help="searched D range LO,HI (default 1,1e12)")
    p.add_argument("--out", default=None, help="directory for critical.json (and the fit)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--plot", action="store_true", help="also draw the figures into --out")


def _is_fit_dir(path: str) -> bool:
    p = Path(path)
    return (p.is_dir() and (p / "fit.json").exists()) or p.name == "fit.json"


def cmd_critical(args) -> int:
    from lawfit.analysis.critical import critical, critical_from_runs
    from lawfit.io import artefacts, results
    between = _pair(args.between)
    at = parse_at(args.at)
    d_range = _d_range(args.d_range)
    check_plot_out(args)
    if not args.method_column.strip():
        raise DataError("--method-column needs a column name")
    opts = fit_options(args)
    progress = Reporter(args.quiet)
    fitted_here = not _is_fit_dir(args.runs)
    if not fitted_here:
        used = [f"--{k.replace('_', '-')}" for k in ("x", "d", "by", "where", "objective",
                                                     "delta", "recipe")
                if getattr(args, k) is not None]
        if used:
            raise DataError(f"{args.runs} is a fit directory: {', '.join(used)} only apply "
                            "when critical fits a runs table; refit with lawfit fit instead")
    if args.out:
        artefacts.check_out_dir(args.out, [*results.CRITICAL_FILES]
                                + (["fit.json", "draws.parquet"] if fitted_here else []),
                                args.overwrite, runs=args.runs)
    if fitted_here:
        frame, source = load(args)
        res, result = critical_from_runs(frame, between, law=args.law, recipe=args.recipe,
                                         method_column=args.method_column, at=at,
                                         d_range=d_range, bootstrap=args.bootstrap,
                                         level=args.level, source=source, progress=progress,
                                         **opts)
        if args.out:
            artefacts.write_fit(result, args.out, overwrite=args.overwrite)
    else:
        result = artefacts.load_fit(args.runs, args.law)
        res = critical(result, between, at=at, method_column=args.method_column,
                       d_range=d_range, level=args.level)
        progress(f"compared the methods of the fit in {args.runs}")
    _print_table(res.printable())
    for sk in res.skipped:
        key = ", ".join(f"{k}={v}" for k, v in sk["key"].items())
        print(f"note: not compared along {sk['x_name']} ({key}): {sk['reason']}", file=sys.stderr)
    if args.out:
        paths = results.write_critical(res, args.out, overwrite=True)   # checked above
        print(f"wrote {paths[0]} and {paths[1]}", file=sys.stderr)
        if args.plot:
            from lawfit.plot import plot_critical
            print_written(plot_critical(res, args.out, progress=progress))
    return 0


# --- backtest --------------------------------------------------------------------------------

def _backtest_add(p):
    add_data_arguments(p)
    p.add_argument("--holdout", default="largest",
                   help="largest (the largest X and the largest D of each group), largest-x, "
                   "largest-d, or COL=VALUE[:VALUE],... (a run is held out when its X or its D "
                   "is held out)")
    p.add_argument("--laws", default="multiplicative,additive",
                   help="laws compared on the same split (default multiplicative,additive)")
    p.add_argument("--bootstrap", type=int, default=100,
                   help="bootstrap resamples for the coverage of held-out runs (default 100)")
    p.add_argument("--level", type=float, default=0.95)
    p.add_argument("--out", default=None,
                   help="directory for backtest.json, backtest_runs.csv and the fits")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--plot", action="store_true", help="also draw the figures into --out")


def cmd_backtest(args) -> int:
    from lawfit.analysis.backtest import backtest, parse_holdout
    from lawfit.io import artefacts
    from lawfit.io.results import BACKTEST_FILES, write_backtest
    from lawfit.laws import get_law
    laws = csv_list(args.laws) or []
    if not laws:
        raise DataError(f"--laws needs at least one law, got {args.laws!r}")
    if len(set(laws)) != len(laws):
        raise DataError(f"--laws names a law twice: {args.laws!r}")
    for name in laws:
        get_law(name)
    holdout = parse_holdout(args.holdout)
    check_plot_out(args)
    if args.law:
        raise DataError("lawfit backtest compares laws: give them with --laws, not --law")
    opts = fit_options(args)
    if args.out:
        artefacts.check_out_dir(args.out, BACKTEST_FILES, args.overwrite, runs=args.runs)
    frame, source = load(args)
    progress = Reporter(args.quiet)
    bt = backtest(frame, laws, holdout=holdout, bootstrap=args.bootstrap, level=args.level,
                  progress=progress, source=source, **opts)
    _print_table(bt.summary.drop(columns=["n_draws"]))
    print("\nDelta_h (mean |prediction - loss| on held-out runs) by law:")
    _print_table(bt.comparison())
    if args.out:
        out = Path(args.out)
        write_backtest(bt, out, overwrite=args.overwrite)
        print(f"wrote {out / 'backtest.json'}, {out / 'backtest_runs.csv'} and "
              f"{out / 'fits'}/", file=sys.stderr)
        if args.plot:
            from lawfit.plot import plot_backtest
            print_written(plot_backtest(bt, out, progress=progress))
    return 0


# --- plot ------------------------------------------------------------------------------------

def _plot_add(p):
    p.add_argument("fit_dir", help="a directory written by lawfit fit, critical or backtest "
                   "--out: every artefact found there (fit.json, critical.json, backtest.json) "
                   "is drawn")
    p.add_argument("--runs", default=None, help="runs table to draw as points (default: the "
                   "table named in fit.json, when it still exists)")
    p.add_argument("--out", default=None, help="directory for the figures (default FIT_DIR)")
    p.add_argument("--format", default="png,pdf", help="png,pdf (default both)")
    p.add_argument("--law", default=None, help="MODULE:FUNCTION of a fit made with your own law "
                   "(its source hash is checked)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def cmd_plot(args) -> int:
    from lawfit.io.artefacts import load_fit, prepare_out
    from lawfit.io.results import checked_artefact, read_backtest, read_critical
    from lawfit.io.runs import read_runs
    from lawfit.plot import plot_backtest, plot_critical, plot_fit
    from lawfit.table import select_recorded
    d = Path(args.fit_dir)
    if not d.is_dir():
        raise DataError(f"{d} is not a directory: give the --out directory of lawfit fit, "
                        "critical or backtest")
    formats = tuple(csv_list(args.format) or ())
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad or not formats:
        raise DataError(f"--format takes png, pdf or svg, got {args.format!r}")
    if args.runs is not None and not Path(args.runs).exists():
        raise DataError(f"--runs {args.runs}: no such file or directory")
    out = Path(args.out) if args.out else d
    if not any((d / n).exists() for n in ("fit.json", "critical.json", "backtest.json")):
        raise DataError(f"{d} holds no fit.json, critical.json or backtest.json")
    # every artefact is read and checked before the first figure is written
    result = load_fit(d, args.law) if (d / "fit.json").exists() else None
    crit = read_critical(d / "critical.json") if (d / "critical.json").exists() else None
    bt = read_backtest(d) if (d / "backtest.json").exists() else None
    frame = None
    if result is not None:
        runs = args.runs or (result.source or {}).get("path")
        if runs and Path(runs).exists():
            frame, _ = read_runs(runs)
            if (result.settings or {}).get("where"):
                try:     # the fitted rows, by the positions the fit recorded
                    if not result.settings.get("where_rows"):
                        raise DataError("the fit records no fitted rows (an older fit.json)")
                    select_recorded(frame, result.settings["where_rows"])
                except DataError as exc:
                    print(f"note: {runs}: {exc}; drawing curves only", file=sys.stderr)
                    frame = None
        elif runs:
            print(f"note: runs table {runs} not found: drawing curves only (give --runs)",
                  file=sys.stderr)
    prepare_out(out, [], overwrite=True, check_rows=False)     # figures only: no parquet
    progress = Reporter(args.quiet)
    paths = []
    if result is not None:
        paths += plot_fit(result, frame, out, formats=formats, progress=progress)
    if crit is not None:
        with checked_artefact(d / "critical.json"):
            paths += plot_critical(crit, out, formats=formats, progress=progress)
    if bt is not None:
        with checked_artefact(d / "backtest.json"):
            paths += plot_backtest(bt, out, formats=formats, progress=progress)
    print_written(paths)
    return 0


# --- registration ----------------------------------------------------------------------------

def register(subparsers) -> None:
    """Add ``lawfit critical``, ``lawfit backtest``, ``lawfit plot`` to ``subparsers``."""
    add_command(subparsers, "critical", "critical data sizes where two methods' losses cross, with intervals",
                _critical_add, cmd_critical)
    add_command(subparsers, "backtest", "hold out the largest scales, fit the rest, measure extrapolation error",
                _backtest_add, cmd_backtest)
    add_command(subparsers, "plot", "draw the fits, critical data sizes and backtests saved in a directory",
                _plot_add, cmd_plot)
