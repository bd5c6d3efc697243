"""``lawfit fit``, ``predict``, ``simulate`` and ``run``: fit a law, predict from a saved fit,
draw a runs table from known parameters, run a sweep of training runs (the runners)."""
from __future__ import annotations

import math
import sys

from lawfit.cli.common import (
    Reporter,
    add_command,
    add_data_arguments,
    check_level,
    check_plot_out,
    check_target_accept,
    csv_list,
    fit_options,
    load,
    number,
    parse_assignments,
    parse_value,
    print_written,
)
from lawfit.errors import DataError

__all__ = ["cmd_fit", "cmd_predict", "cmd_run", "cmd_simulate", "register"]


# --- fit -------------------------------------------------------------------------------------

def _fit_add(p):
    add_data_arguments(p)
    p.add_argument("--recipe", default=None, choices=["hoffmann2022", "epoch2024", "zhang2024"],
                   help="a paper's procedure by name (zhang2024: two-stage joint fit over the "
                   "'factor' column)")
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples (lsq)")
    p.add_argument("--fitter", default="lsq", choices=["lsq", "bayes"])
    p.add_argument("--solver", default="newton", choices=["newton", "varpro"],
                   help="varpro: variable projection (with --objective mse)")
    p.add_argument("--joint", default=None, help="column whose values are subsets fitted jointly")
    p.add_argument("--share", default="", help="parameters shared by the joint subsets, e.g. E,beta")
    p.add_argument("--fix", default=None, help="frozen parameters, e.g. E=0.62,beta=0.081")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--priors", default=None, help="TOML file of priors (--fitter bayes)")
    p.add_argument("--chains", type=int, default=None, help="NUTS chains (--fitter bayes, default 4)")
    p.add_argument("--warmup", type=int, default=None, help="NUTS warm-up draws per chain (1000)")
    p.add_argument("--draws", type=int, default=None, help="NUTS draws per chain (1000)")
    p.add_argument("--likelihood", default=None, choices=["student", "normal"],
                   help="--fitter bayes: Student-t (default, robust) or normal residuals")
    p.add_argument("--target-accept", type=float, default=None,
                   help="--fitter bayes: NUTS target acceptance probability (default 0.9; raise "
                   "it, e.g. 0.99, when transitions diverge)")
    p.add_argument("--out", default=None, help="directory for fit.json and draws.parquet")
    p.add_argument("--overwrite", action="store_true", help="replace an existing fit in --out")
    p.add_argument("--plot", action="store_true", help="also draw the fit (PNG and PDF) into --out")
    p.add_argument("--pre-power", default=None, choices=["validate", "ats"],
                   help="find each curve's pre-power phase and fit only the power phase "
                   "(validate: lawfit's forward validation; ats: Lin et al. 2024)")


def cmd_fit(args) -> int:
    from lawfit import report
    from lawfit.analysis import recipes
    from lawfit.io import artefacts
    check_plot_out(args)
    bayes_flags = {k: getattr(args, k) for k in ("chains", "warmup", "draws", "likelihood",
                                                 "target_accept")
                   if getattr(args, k) is not None}
    if (bayes_flags or args.priors) and args.fitter != "bayes":
        raise DataError("--priors, --chains, --warmup, --draws, --likelihood and --target-accept "
                        "need --fitter bayes")
    if args.target_accept is not None:
        check_target_accept(args.target_accept)
    opts = fit_options(args)
    fixed = parse_assignments(args.fix or "", "--fix", numeric=True)
    if args.recipe == "zhang2024" and (args.fix or args.joint or args.share):   # before reading
        raise DataError("--recipe zhang2024 sets its own joint fit: drop --fix, --joint and "
                        "--share")
    bayes_options = dict(bayes_flags)
    if args.priors:
        from lawfit.io.priors import read_priors
        bayes_options["priors"] = read_priors(args.priors)
    if args.out:
        artefacts.check_out_dir(args.out, ["fit.json", "draws.parquet"]
                           + (["posterior.nc"] if args.fitter == "bayes" else []), args.overwrite,
                           runs=args.runs)
    frame, source = load(args)
    progress = Reporter(args.quiet)
    result = recipes.run_recipe(frame, args.recipe, law=args.law, bootstrap=args.bootstrap,
                                fitter=args.fitter, level=args.level, source=source,
                                progress=progress, bayes_options=bayes_options,
                                solver=args.solver, joint=args.joint, pre_power=args.pre_power,
                                share=csv_list(args.share) or (), fixed=fixed, **opts)
    print(report.params_table(result))
    if args.out:
        out = artefacts.write_fit(result, args.out, overwrite=args.overwrite)
        written = ["fit.json", "draws.parquet"] + (["posterior.nc"] if args.fitter == "bayes" else [])
        print("wrote " + ", ".join(str(out / n) for n in written), file=sys.stderr)
    if args.plot:
        from lawfit.plot import plot_fit
        print_written(plot_fit(result, frame, args.out, progress=progress))
    return 0


# --- predict ---------------------------------------------------------------------------------

def _predict_add(p):
    p.add_argument("fit_dir", help="directory written by `lawfit fit --out`")
    p.add_argument("--at", action="append", required=True,
                   help="one point, e.g. model_params=16e9,finetune_examples=1e6 (and group "
                   "columns such as task=...,method=...); repeat for more points")
    p.add_argument("--level", type=float, default=None, help="interval level (default: the fit's)")
    p.add_argument("--law", default=None, help="MODULE:FUNCTION of a fit made with your own law "
                   "(its source hash is checked)")
    p.add_argument("--interval", default="new-run", choices=["new-run", "curve"],
                   help="new-run (default): where one new run's loss will fall (curve uncertainty "
                   "plus the fitted residual scatter); curve: the fitted mean curve's interval")


def cmd_predict(args) -> int:
    import pandas as pd

    from lawfit.io.artefacts import load_fit
    check_level(args.level)
    result = load_fit(args.fit_dir, args.law)
    variables = {result.columns[r]: r for r in result.law.variables}
    rows = []
    for text in args.at:
        row = parse_assignments(text, "--at")
        if not row:
            raise DataError("--at expects COL=VALUE,..., e.g. model_params=16e9,"
                            "finetune_examples=1e6")
        per_row = any(c.startswith("@") for c in variables)   # X named per row (@COL)
        unknown = [k for k in row if k not in variables and k not in result.by]
        if unknown and not per_row:
            raise DataError(f"--at names {unknown[0]!r}, which the fit does not use: give "
                            f"{', '.join(sorted(variables))}"
                            + (f" and the group columns {', '.join(result.by)}"
                               if result.by else ""))
        for k in row:
            if k in variables or (per_row and k not in result.by):
                row[k] = number(row[k], f"--at {k}",
                                positive=variables.get(k) not in result.law.zero_ok)
                if row[k] < 0:
                    raise DataError(f"--at {k} must not be negative, got {row[k]:g}")
        rows.append(row)
    points = pd.DataFrame(rows)
    table = result.predict(points, level=args.level, interval=args.interval)
    level = result.level if args.level is None else args.level
    what = {"new-run": "where one new run's loss will fall (the curve's uncertainty plus the "
                       "fitted residual scatter of one run)",
            "curve": "the fitted mean curve's interval (a new run scatters beyond it: "
                     "--interval new-run)"}[args.interval]
    print(f"{level:.0%} interval (lo, hi): {args.interval}, {what}", file=sys.stderr)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(table.to_string(index=False))
    if (table["interval"] == "none").any():
        print("note: rows with interval 'none' have no draws (fit with --bootstrap N, or the "
              "interval was withheld: see fit.json)", file=sys.stderr)
    if table["extrapolated"].any():
        print("note: extrapolated rows lie outside the range the fit saw", file=sys.stderr)
    return 0


# --- simulate --------------------------------------------------------------------------------

def _simulate_add(p):
    p.add_argument("--paper", choices=["zhang2024"], default=None,
                   help="the paper's grid (Table 1b) and fitted parameters (Table 4)")
    p.add_argument("--law", default="multiplicative")
    p.add_argument("--params", default=None, help="law parameters, e.g. A=2e3,E=0.6,alpha=0.36,beta=0.08")
    p.add_argument("--grid", action="append", default=[],
                   help="COL=v1:v2:..., e.g. model_params=1e9:2e9:4e9 (repeat per column)")
    p.add_argument("--set", default=None, help="constant columns, e.g. task=demo,method=lora")
    p.add_argument("--noise", type=float, default=0.005, help="sd of additive Gaussian noise")
    p.add_argument("--seeds", type=int, default=3, help="repeats per configuration")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output runs table (.csv or .parquet)")
    p.add_argument("--overwrite", action="store_true")


def cmd_simulate(args) -> int:
    from pathlib import Path

    from lawfit.io.artefacts import atomic_write, prepare_out_file
    from lawfit.simulate import paper_grid, simulate
    out = Path(args.out)
    if out.suffix not in (".csv", ".parquet"):
        raise DataError(f"--out must end in .csv or .parquet, got {out.name}")
    if not (math.isfinite(args.noise) and args.noise >= 0):
        raise DataError(f"--noise must be a finite sd >= 0, got {args.noise}")
    if args.seeds < 1:
        raise DataError(f"--seeds must be >= 1, got {args.seeds}")
    if args.seed < 0:
        raise DataError(f"--seed must be >= 0, got {args.seed}")
    if args.paper:
        if args.params or args.grid or args.set or args.law != "multiplicative":
            raise DataError("--paper zhang2024 brings its own law, parameters and grid: drop "
                            "--law, --params, --grid and --set")
        prepare_out_file(out, args.overwrite)
        frame = paper_grid(noise=args.noise, seeds=args.seeds, seed=args.seed)
    else:
        if not args.params or not args.grid:
            raise DataError("give --paper zhang2024, or --params and --grid")
        grid = {}
        for g in args.grid:
            if "=" not in g or not g.split("=", 1)[0].strip():
                raise DataError(f"--grid expects COL=v1:v2:..., got {g!r}")
            k, v = (s.strip() for s in g.split("=", 1))
            if k in grid:
                raise DataError(f"--grid names {k!r} twice")
            grid[k] = [number(t, f"--grid {k}") for t in v.split(":")]
        extra = {k: parse_value(v) for k, v in parse_assignments(args.set or "", "--set").items()}
        clash = [k for k in extra if k in grid]
        if clash:
            raise DataError(f"--set and --grid both give column {clash[0]!r}")
        params = parse_assignments(args.params, "--params", numeric=True)
        prepare_out_file(out, args.overwrite)
        frame = simulate(args.law, params, grid, noise=args.noise, seeds=args.seeds,
                         seed=args.seed, extra=extra)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, (lambda t: frame.to_csv(t, index=False)) if out.suffix == ".csv"
                  else (lambda t: frame.to_parquet(t, index=False)))
    print(f"wrote {len(frame)} runs to {out}", file=sys.stderr)
    return 0


# --- run (runners) ---------------------------------------------------------------------------

def _run_add(p):
    try:
        from runners.cli import configure_parser
    except ModuleNotFoundError:      # installed without the runners
        p.add_argument("sweep")
        return
    configure_parser(p)


def cmd_run(args) -> int:
    try:
        from runners.cli import main as run_main
    except ModuleNotFoundError as exc:
        raise DataError(f"`lawfit run` needs the runners: pip install -e '.[runners]' ({exc})") from None
    return run_main(args)


# --- registration ----------------------------------------------------------------------------

def register(subparsers) -> None:
    """Add ``lawfit fit``, ``predict``, ``simulate`` and ``run`` to ``subparsers``."""
    add_command(subparsers, "fit", "fit a law per group and print parameters with intervals",
                _fit_add, cmd_fit)
    add_command(subparsers, "predict", "predict the loss with intervals from a saved fit",
                _predict_add, cmd_predict)
    add_command(subparsers, "simulate", "draw a runs table from known law parameters",
                _simulate_add, cmd_simulate)
    add_command(subparsers, "run", "run or resume a sweep of training runs (needs the runners extra)",
                _run_add, cmd_run)
