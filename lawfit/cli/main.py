"""The ``lawfit`` command: thin; every subcommand is one call into the API.

Exit status: 0 success, 2 bad input or usage (one line on stderr, no traceback), 1 a bug.
Subcommands register themselves in SUBCOMMANDS as (help, add_arguments, run).
"""
from __future__ import annotations

import argparse
import math
import sys
import time

from lawfit import __version__
from lawfit.errors import DataError

SUBCOMMANDS: dict[str, tuple] = {}


def subcommand(name: str, help: str, add_arguments):
    """Register ``fn(args) -> exit status`` as ``lawfit NAME``; ``add_arguments(parser)``."""
    def deco(fn):
        SUBCOMMANDS[name] = (help, add_arguments, fn)
        return fn
    return deco


class Progress:
    """Progress lines on stderr with elapsed time (quiet with --quiet)."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {message}", file=sys.stderr,
                  flush=True)


def _csv(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _value(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def number(text, what: str, *, positive: bool = False, integer: bool = False) -> float:
    """``text`` as a finite float (an int with ``integer``), or a one-line DataError naming
    ``what``."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise DataError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise DataError(f"{what}: {text!r} is not a finite number")
    if positive and not v > 0:
        raise DataError(f"{what} must be positive, got {text}")
    if integer:
        if not v.is_integer():
            raise DataError(f"{what} must be a whole number, got {text}")
        return int(v)
    return v


def check_level(level, what: str = "--level") -> float:
    if level is not None and not (math.isfinite(level) and 0 < level < 1):
        raise DataError(f"{what} must lie strictly between 0 and 1 (e.g. 0.95), got {level}")
    return level


def parse_assignments(text: str, what: str = "option", numeric: bool = False) -> dict:
    """``a=1,b=x`` -> {"a": "1", "b": "x"} (values as text), or floats with ``numeric``."""
    out = {}
    for item in _csv(text) or []:
        if "=" not in item:
            raise DataError(f"{what} expects NAME=VALUE,..., got {item!r}")
        k, v = (s.strip() for s in item.split("=", 1))
        if not k:
            raise DataError(f"{what}: a name is missing before '=' in {item!r}")
        if k in out:
            raise DataError(f"{what} names {k!r} twice")
        out[k] = number(v, f"{what} {k}") if numeric else v
    return out


def _starts(text: str):
    if text == "grid":
        return "grid"
    try:
        n = int(text)
    except ValueError:
        raise DataError(f"--starts must be 'grid' or a count, got {text!r}") from None
    if n < 1:
        raise DataError(f"--starts must be 'grid' or a positive count, got {text!r}")
    return n


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by every subcommand that fits a runs table."""
    p.add_argument("runs", help="runs table: CSV, TSV, parquet, or a sweep's parquet directory")
    p.add_argument("--law", default=None,
                   help="multiplicative (default), additive, chinchilla, power, rectified, or "
                   "your own @lawfit.law function as MODULE:FUNCTION (e.g. my_laws.py:mylaw)")
    p.add_argument("--x", default=None, help="column of the law's X (default model_params; "
                   "@COL reads per row the column named in COL)")
    p.add_argument("--d", default=None, help="column of D (default finetune_examples; "
                   "pretrain_tokens for chinchilla)")
    p.add_argument("--y", default="loss", help="loss column (default loss)")
    p.add_argument("--by", default=None, help="grouping columns, comma separated "
                   "(default: task and method where present)")
    p.add_argument("--where", default=None,
                   help="keep rows where a condition holds, e.g. \"finetune_examples > 0 and "
                   "method in ['fmt', 'lora']\" (lawfit's own grammar, see README; never run as "
                   "code)")
    p.add_argument("--objective", default=None, choices=["huber", "huber-log", "mse", "mse-log", "l1", "l1-log"],
                   help="default huber (finetuning laws), huber-log (chinchilla); l1/l1-log: least "
                   "absolute deviation (Epoch AI's published estimator), solved by IRLS")
    p.add_argument("--delta", type=float, default=None, help="Huber delta (default 1e-3)")
    p.add_argument("--starts", default="grid", help="'grid' (the law's start grid) or a count of "
                   "random starts over the grid's span")
    p.add_argument("--seeds", default="average", choices=["average", "keep"],
                   help="average runs that differ only in seed (default) or keep them")
    p.add_argument("--seed", type=int, default=0, help="random seed (bootstrap, random starts)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def check_target_accept(value: float) -> float:
    """NUTS' target acceptance probability must lie strictly between 0 and 1."""
    if not 0 < value < 1:
        raise DataError(f"--target-accept must be between 0 and 1 (e.g. 0.95), got {value}")
    return value


def fit_options(args) -> dict:
    """The shared fitting options, checked (the --where expression parsed) before any data is
    read."""
    from lawfit.expr import parse
    for flag in ("x", "d", "y", "by"):
        v = getattr(args, flag)
        if v is not None and not v.strip(" ,@"):
            raise DataError(f"--{flag} needs a column name, got {v!r}")
    if args.delta is not None and not (math.isfinite(args.delta) and args.delta > 0):
        raise DataError(f"--delta must be a positive number, got {args.delta}")
    if args.seed < 0:
        raise DataError(f"--seed must be >= 0, got {args.seed}")
    for flag in ("bootstrap", "chains", "warmup", "draws"):
        v = getattr(args, flag, None)
        if v is not None and v < (0 if flag == "bootstrap" else 1):
            raise DataError(f"--{flag} must be {'>= 0' if flag == 'bootstrap' else 'positive'}, "
                            f"got {v}")
    check_level(getattr(args, "level", None))
    where = parse(args.where) if args.where is not None else None
    return dict(x=args.x, d=args.d, y=args.y, by=_csv(args.by), where=where,
                objective=args.objective, delta=args.delta, starts=_starts(args.starts),
                seeds=args.seeds, seed=args.seed)


def load(args):
    from lawfit.io.runs import read_runs
    frame, source = read_runs(args.runs)
    return frame, source.as_dict()


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


@subcommand("fit", "fit a law per group and print parameters with intervals", _fit_add)
def cmd_fit(args) -> int:
    from lawfit import report
    from lawfit.analysis import recipes
    from lawfit.fit import fit
    from lawfit.io import artefacts
    if args.plot and not args.out:
        raise DataError("--plot needs --out DIR (the figures are written there)")
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
    if args.recipe == "zhang2024" and (args.fix or args.joint or args.share):
        raise DataError("--recipe zhang2024 sets its own joint fit: drop --fix, --joint and "
                        "--share")
    bayes_options = dict(bayes_flags)
    if args.priors:
        from lawfit.bayes import read_priors
        bayes_options["priors"] = read_priors(args.priors)
    if args.out:
        artefacts.check_out_dir(args.out, ["fit.json", "draws.parquet"]
                           + (["posterior.nc"] if args.fitter == "bayes" else []), args.overwrite,
                           runs=args.runs)
    frame, source = load(args)
    progress = Progress(args.quiet)
    common = dict(bootstrap=args.bootstrap, fitter=args.fitter, level=args.level, source=source,
                  progress=progress, bayes_options=bayes_options)
    if args.recipe == "zhang2024":
        opts = {k: v for k, v in opts.items() if k not in ("x", "objective", "delta")}
        opts["d"] = opts["d"] or "finetune_examples"
        if opts["by"] is None:
            opts.pop("by")
        result = recipes.zhang2024(frame, **opts, **common)
    else:
        preset = dict(recipes.RECIPES.get(args.recipe, {}))
        law = args.law or preset.pop("law", "multiplicative")
        preset.pop("law", None)
        for k in ("objective", "delta"):
            if opts[k] is None and k in preset:
                opts[k] = preset[k]
        if args.recipe and not args.bootstrap and "bootstrap" in preset:
            common["bootstrap"] = preset["bootstrap"]
        result = fit(frame, law, solver=args.solver, joint=args.joint, pre_power=args.pre_power,
                     share=_csv(args.share) or (), fixed=fixed,
                     **opts, **common)
    print(report.params_table(result))
    if args.out:
        out = artefacts.write_fit(result, args.out, overwrite=args.overwrite)
        written = ["fit.json", "draws.parquet"] + (["posterior.nc"] if args.fitter == "bayes" else [])
        print("wrote " + ", ".join(str(out / n) for n in written), file=sys.stderr)
    if args.plot:
        from lawfit.plot import plot_fit
        for path in plot_fit(result, frame, args.out):
            print(f"wrote {path}", file=sys.stderr)
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


@subcommand("predict", "predict the loss with intervals from a saved fit", _predict_add)
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


@subcommand("simulate", "draw a runs table from known law parameters", _simulate_add)
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
        extra = {k: _value(v) for k, v in parse_assignments(args.set or "", "--set").items()}
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


@subcommand("run", "run or resume a sweep of training runs (needs the runners extra)", _run_add)
def cmd_run(args) -> int:
    try:
        from runners.cli import main as run_main
    except ModuleNotFoundError as exc:
        raise DataError(f"`lawfit run` needs the runners: pip install -e '.[runners]' ({exc})") from None
    return run_main(args)


# --- main ------------------------------------------------------------------------------------

def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class _Parser(argparse.ArgumentParser):
    def error(self, message):      # one line, exit 2
        print(f"{self.prog}: error: {_one_line(message)}", file=sys.stderr)
        raise SystemExit(2)


def _load_plugins() -> None:
    """Subcommands living in other modules register on import."""
    import importlib
    for mod in ("lawfit.cli.analysis", "lawfit.cli.bayes", "lawfit.cli.optimal",
                "lawfit.cli.suggest"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name not in (mod, mod.split(".")[0]):
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = _Parser(prog="lawfit", description="Fit scaling laws to training runs and "
                     "extrapolate them with honest uncertainty.")
    parser.add_argument("--version", action="version", version=f"lawfit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (help_, add, _run) in SUBCOMMANDS.items():
        add(sub.add_parser(name, help=help_, description=help_))
    return parser


def _compilation_cache() -> None:
    """Keep compiled XLA programs between runs of the command (a fit's first run spends most of
    its time compiling). ``LAWFIT_CACHE_DIR`` moves the cache (default ~/.cache/lawfit/xla);
    an empty value turns it off. The library itself leaves jax's configuration alone."""
    import os
    from pathlib import Path
    where = os.environ.get("LAWFIT_CACHE_DIR", str(Path.home() / ".cache" / "lawfit" / "xla"))
    if not where or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    try:
        Path(where).mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    import jax
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def main(argv=None) -> int:
    _compilation_cache()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return SUBCOMMANDS[args.command][2](args)
    except DataError as exc:
        print(f"lawfit {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:         # a file the user named cannot be read or written
        print(f"lawfit {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lawfit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # run as `python -m lawfit.cli`: plugins register into the imported module `lawfit.cli`,
    # not into this __main__ copy, so dispatch through it
    from lawfit.cli.main import main as _main
    sys.exit(_main())
