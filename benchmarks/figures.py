"""The README's example figures (one of each plot type), small PNGs under docs/figures/.

    nice .venv/bin/python benchmarks/figures.py

- fit_example.png: En-De FMT and Prompt on the paper's model-size grid (simulated from Table 4,
  noise sd 0.005, 3 seeds), 95% bootstrap bands (100 resamples).
- critical_example.png / critical_example_superiority.png: FMT vs Prompt from the same fit.
- backtest_lin2024_opt_wmt19*.png: Lin et al. 2024 OPT family on WMT19, largest model and
  largest D_f held out, multiplicative vs additive.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lawfit  # noqa: E402
from lawfit.analysis.backtest import backtest  # noqa: E402
from lawfit.analysis.critical import critical  # noqa: E402
from lawfit.plot import plot_backtest, plot_critical, plot_fit  # noqa: E402
from lawfit.simulate import paper_grid  # noqa: E402

DATA = Path(os.environ.get("LAWFIT_REFERENCE_DATA", ROOT.parent / "shared" / "data"))
FIGS = ROOT / "docs" / "figures"


def main() -> None:
    f = paper_grid(noise=0.005, seeds=3, seed=0, tasks=("wmt14_en_de",),
                   methods=("fmt", "prompt"))
    f = f[f.factor == "model_params"].reset_index(drop=True)
    res = lawfit.fit(f, "multiplicative", bootstrap=100, seed=0)
    plot_fit(res, f, FIGS, name="fit_example", formats=("png",))
    cr = critical(res, ("fmt", "prompt"), at={"model_params": [1e9, 2e9, 4e9, 8e9, 16e9]})
    plot_critical(cr, FIGS, name="critical_example", formats=("png",))
    runs = pd.read_csv(DATA / "lin2024" / "lin2024_wmt19.csv")
    bt = backtest(runs, ["multiplicative", "additive"], holdout="largest",
                  by=["task", "family"], where="finetune_examples > 0 and family == 'OPT'",
                  bootstrap=100, seed=0)
    plot_backtest(bt, FIGS, name="backtest_lin2024_opt_wmt19", formats=("png",))
    print(cr.table().to_string(index=False))
    print(bt.summary.to_string(index=False))


if __name__ == "__main__":
    main()
