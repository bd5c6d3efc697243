"""Extrapolation backtest on real finetuning runs (Lin et al. 2024, ../shared/data/lin2024):
for every model family with at least four sizes, on both tasks, hold out the largest model and the
largest finetuning size (a run is held out when either is), fit the multiplicative law
(Zhang et al. 2024) and the additive law on the rest, and report Delta_e / Delta_h side by side,
with the coverage of held-out runs by 95% bootstrap intervals.

    nice .venv/bin/python benchmarks/backtest_lin2024.py [--bootstrap 100] [--min-d 0]

Writes benchmarks/results/backtest_lin2024.csv (long), backtest_lin2024_table.md (side by side)
and docs/figures/backtest_lin2024_all.png (Delta_h bars, for the README). ``--min-d 12800`` also
drops the pre-power phase (files get the suffix _mind12800).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lawfit.analysis.backtest import backtest  # noqa: E402
from lawfit.plot import plot_backtest  # noqa: E402

DATA = Path(os.environ.get("LAWFIT_REFERENCE_DATA", ROOT.parent / "shared" / "data")) / "lin2024"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--min-d", type=float, default=0,
                    help="also drop runs with finetune_examples below this (the pre-power phase)")
    ap.add_argument("--starts", default="grid")
    args = ap.parse_args()
    starts = args.starts if args.starts == "grid" else int(args.starts)
    frame = pd.concat([pd.read_csv(p) for p in sorted(DATA.glob("lin2024_*.csv"))],
                      ignore_index=True)
    frame = frame[frame.finetune_examples > max(args.min_d - 1, 0)]
    sizes = frame.groupby("family").model_params.nunique()
    families = sorted(sizes[sizes >= 4].index)
    frame = frame[frame.family.isin(families)].reset_index(drop=True)
    t0 = time.perf_counter()
    bt = backtest(frame, ["multiplicative", "additive"], holdout="largest",
                  by=["task", "family"], bootstrap=args.bootstrap, starts=starts, seed=0)
    seconds = time.perf_counter() - t0
    suffix = "" if not args.min_d else f"_mind{int(args.min_d)}"
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    bt.summary.to_csv(out / f"backtest_lin2024{suffix}.csv", index=False)
    wide = bt.summary.pivot_table(index=["task", "family"], columns="law",
                                  values=["delta_e", "delta_h", "coverage_predictive"],
                                  aggfunc="first")
    wide.columns = [f"{m} {law}" for m, law in wide.columns]
    cols = ["delta_h multiplicative", "delta_h additive", "delta_e multiplicative",
            "delta_e additive", "coverage_predictive multiplicative",
            "coverage_predictive additive"]
    wide = wide[cols].reset_index()
    lines = [f"Families with >= 4 sizes: {', '.join(families)}; both tasks; held out: the "
             f"largest model and the largest D_f of each family (runs with D_f = 0 excluded"
             + (f", and D_f < {args.min_d:g}" if args.min_d else "") + f"); bootstrap "
             f"{args.bootstrap}; starts {args.starts}; {seconds:.0f} s on this machine.", "",
             wide.to_markdown(index=False, floatfmt=".4f"), "",
             "Mean over groups: " + ", ".join(
                 f"{law} Delta_h {bt.summary[bt.summary.law == law].delta_h.mean():.4f}"
                 for law in bt.laws)]
    (out / f"backtest_lin2024{suffix}_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not suffix:      # the README's bar chart (one family's panels: benchmarks/figures.py)
        plot_backtest(bt, ROOT / "docs" / "figures", name="backtest_lin2024_all",
                      formats=("png",), panels=False)


if __name__ == "__main__":
    main()
