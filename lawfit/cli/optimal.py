"""``lawfit optimal``: compute-optimal model size and tokens from a saved Chinchilla-law fit
(registered by ``register``, listed in ``lawfit.cli.main.COMMAND_MODULES``). Thin: one call into optimal.py."""
from __future__ import annotations

from lawfit.cli.common import add_command, csv_list, print_written
from lawfit.errors import DataError


def _optimal_add(p):
    p.add_argument("fit_dir", help="directory written by `lawfit fit --out` (a chinchilla-law fit, "
                   "e.g. --recipe epoch2024; its draws give the intervals)")
    p.add_argument("--compute", required=True,
                   help="training compute budget(s) in FLOP, comma separated, e.g. 5.88e23")
    p.add_argument("--flops-per-param-token", type=float, default=6.0,
                   help="k in C = k N D (default 6)")
    p.add_argument("--level", type=float, default=None, help="interval level (default: the fit's)")
    p.add_argument("--out", default=None, help="directory for optimal.json and the frontier plot")
    p.add_argument("--overwrite", action="store_true", help="replace an existing optimal.json")


def _budgets(text: str) -> list[float]:
    out = []
    for tok in csv_list(text) or []:
        try:
            out.append(float(tok))
        except ValueError:
            raise DataError(f"--compute expects FLOP numbers such as 5.88e23, got {tok!r}") from None
    if not out:
        raise DataError("--compute expects at least one budget in FLOP, e.g. 5.88e23")
    return out


def _fmt(s: dict) -> str:
    def f(v):
        return "-" if v is None else f"{v:.3g}"
    return f"{f(s['estimate'])} [{f(s['lo'])}, {f(s['hi'])}]"


def cmd_optimal(args) -> int:
    from pathlib import Path

    from lawfit.analysis.optimal import optimal
    from lawfit.io.artefacts import load_fit, prepare_out
    from lawfit.io.results import OPTIMAL_FILES, write_optimal
    compute = _budgets(args.compute)
    if args.out:
        prepare_out(args.out, OPTIMAL_FILES, args.overwrite)
    result = load_fit(args.fit_dir)
    opt = optimal(result, compute, flops_per_param_token=args.flops_per_param_token,
                  level=args.level)
    pct = f"{opt.level:.0%}"
    for e in opt.exponents:
        key = ", ".join(f"{k}={v}" for k, v in e["key"].items()) or "(all runs)"
        print(f"{key}: N_opt ~ C^a, a = {_fmt(e['a'])}; D_opt ~ C^b, b = {_fmt(e['b'])} "
              f"({pct} interval, {e['n_draws']} draws)")
        if e["share_no_optimum"]:
            print(f"  note: {e['share_no_optimum']:.1%} of the draws have alpha or beta <= 0 "
                  "(no compute-optimal point)")
        for r in opt.rows:
            if r["key"] == e["key"]:
                print(f"  C = {r['compute']:.3g} FLOP: N_opt {_fmt(r['model_params'])}, D_opt "
                      f"{_fmt(r['tokens'])} tokens, {_fmt(r['tokens_per_param'])} tokens per "
                      f"parameter, loss {_fmt(r['loss'])}")
    if args.out:
        from lawfit.plot import plot_optimal
        out = Path(args.out)
        print_written([*write_optimal(opt, out, overwrite=True), *plot_optimal(result, opt, out)])
    return 0


# --- registration ----------------------------------------------------------------------------

def register(subparsers) -> None:
    """Add ``lawfit optimal`` to ``subparsers``."""
    add_command(subparsers, "optimal", "compute-optimal model size and tokens (C = 6 N D) from a chinchilla fit",
                _optimal_add, cmd_optimal)
